// libFuzzer target for DPoP proofs (api/crypto/dpop.h): arbitrary bytes go to verify_proof, as a
// proof of RFC 9449 figure 13's request at its iat (seeds: the RFC's figures 2 and 13), and to
// normalize_htu. Every input must give a verdict without crashing, leaking or hitting UB, and
// what is accepted must obey the rules dpop.h promises.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/crypto/dpop.h"

namespace {

namespace dpop = sechex::api::dpop;

constexpr char kHtu[] = "https://resource.example.org/protectedresource";
constexpr char kToken[] = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
constexpr char kJkt[] = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
constexpr std::int64_t kIat = 1562262618;

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  dpop::ExpectedProof e;
  e.htm = "GET";
  e.htu = kHtu;
  e.access_token = std::string_view(kToken);
  e.jkt = std::string_view(kJkt);
  e.now_seconds = kIat;
  if (auto ok = dpop::verify_proof(input, e)) {
    check(input.size() <= dpop::ProofRules{}.max_size);
    check(ok.value().jkt == kJkt);
    check(!ok.value().jti.empty() && ok.value().jti.size() <= dpop::ProofRules{}.max_jti);
    check(ok.value().iat >= kIat - 30 && ok.value().iat <= kIat + 5);
  } else {
    check(dpop::reason_code(ok.error()) != "internal_error");
  }
  // Without the token and the binding, the same verdict or a pass the bound check would refuse.
  e.access_token.reset();
  e.jkt.reset();
  (void)dpop::verify_proof(input, e);
  if (auto htu = dpop::normalize_htu(input)) {
    check(htu->find_first_of("?#") == std::string::npos);
    check(dpop::normalize_htu(*htu) == htu);  // normalising twice changes nothing
  }
  return 0;
}
