// What the JOSE sources share (private to api/crypto): sizes, OpenSSL handles, the ECDSA
// checks under EcPublicKey and the JSON helpers of JWS and claims. Definitions are inline.
#pragma once

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "api/crypto/jose.h"
#include "api/json/json_input.h"
#include "ledger/crypto.h"
#include "ledger/openssl_util.h"

namespace sechex::api::jose::detail {

using ledger::Errc;
using ledger::Hash;
namespace crypto = ledger::crypto;

inline constexpr std::size_t kCoordSize = 32;
inline constexpr std::size_t kSec1Size = 1 + 2 * kCoordSize;
inline constexpr std::size_t kP1363Size = 2 * kCoordSize;
// SEQUENCE { INTEGER r, INTEGER s } with 33-byte integers (leading zero) is the longest DER
// encoding for P-256; anything longer cannot be canonical.
inline constexpr std::size_t kMaxDerSize = 72;
inline constexpr std::size_t kJtiBytes = 16;
// The issuer stays within what the default verifier accepts, so it never mints a token that
// every verifier would then refuse.
inline constexpr std::size_t kMaxIssuedTokenSize = 8192;
inline constexpr std::size_t kMaxRoles = 100;
inline constexpr std::int64_t kMicrosPerSecond = 1'000'000;

using ledger::ossl::Bio;
using ledger::ossl::Bn;
using ledger::ossl::EcdsaSig;
using ledger::ossl::ErrorQueueScope;
using ledger::ossl::File;
using ledger::ossl::MdCtx;
using ledger::ossl::Pkey;
using ledger::ossl::PkeyCtx;

inline std::shared_ptr<evp_pkey_st> share(EVP_PKEY* pkey) {
  if (pkey == nullptr) return nullptr;
  return std::shared_ptr<evp_pkey_st>(pkey, EVP_PKEY_free);
}

inline ByteView bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::string string_of(const Bytes& b) { return {b.begin(), b.end()}; }

// Whole seconds since the epoch, rounding towards the past so a token is never considered
// expired late.
inline std::int64_t seconds_of(std::int64_t micros) {
  std::int64_t s = micros / kMicrosPerSecond;
  if (micros % kMicrosPerSecond < 0) --s;
  return s;
}

inline std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b) {
    return std::numeric_limits<std::int64_t>::max();
  }
  if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b) {
    return std::numeric_limits<std::int64_t>::min();
  }
  return a + b;
}

inline bool digest_verify(EVP_PKEY* pkey, ByteView message, const std::uint8_t* der,
                          std::size_t size) {
  MdCtx ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
         EVP_DigestVerify(ctx.get(), der, size, message.data(), message.size()) == 1;
}

// The order n of P-256 (SEC 2 section 2.4.2) and floor(n / 2), big-endian.
inline constexpr std::array<std::uint8_t, 32> kP256Order = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
inline constexpr std::array<std::uint8_t, 32> kP256HalfOrder = {
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};

// Whether the s half of a 64-byte r||s signature is at most n/2 (public values: no need for a
// constant-time comparison).
inline bool is_low_s(ByteView sig) {
  return !std::lexicographical_compare(kP256HalfOrder.begin(), kP256HalfOrder.end(),
                                       sig.begin() + kCoordSize, sig.begin() + 2 * kCoordSize);
}

// DER of (r, s) built from two 32-byte big-endian halves; false if OpenSSL cannot encode it.
inline bool p1363_to_der(ByteView sig, std::array<std::uint8_t, kMaxDerSize>& der,
                         std::size_t& size) {
  Bn r(BN_bin2bn(sig.data(), static_cast<int>(kCoordSize), nullptr));
  Bn s(BN_bin2bn(sig.data() + kCoordSize, static_cast<int>(kCoordSize), nullptr));
  EcdsaSig ecdsa(ECDSA_SIG_new());
  if (!r || !s || !ecdsa || ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) return false;
  r.release();  // owned by `ecdsa` now
  s.release();
  const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
  if (len <= 0 || static_cast<std::size_t>(len) > der.size()) return false;
  std::uint8_t* out = der.data();
  if (i2d_ECDSA_SIG(ecdsa.get(), &out) != len) return false;
  size = static_cast<std::size_t>(len);
  return true;
}

inline bool verify_p1363_with(EVP_PKEY* pkey, ByteView message, ByteView signature) {
  if (pkey == nullptr || signature.size() != kP1363Size) return false;
  ErrorQueueScope errors;
  std::array<std::uint8_t, kMaxDerSize> der{};
  std::size_t size = 0;
  return p1363_to_der(signature, der, size) && digest_verify(pkey, message, der.data(), size);
}

inline bool verify_der_with(EVP_PKEY* pkey, ByteView message, ByteView signature) {
  if (pkey == nullptr || signature.empty() || signature.size() > kMaxDerSize) return false;
  ErrorQueueScope errors;
  // d2i accepts some BER and stops at the end of the SEQUENCE; only the one canonical encoding is
  // a signature here, so the parse must consume everything and re-encode to the same bytes.
  // OpenSSL 3's ECDSA_verify happens to check the same; doing it here keeps the guarantee (and
  // the Wycheproof results) independent of the provider.
  const std::uint8_t* p = signature.data();
  const EcdsaSig ecdsa(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(signature.size())));
  if (!ecdsa || p != signature.data() + signature.size()) return false;
  const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
  if (len <= 0 || static_cast<std::size_t>(len) != signature.size()) return false;
  std::array<std::uint8_t, kMaxDerSize> canonical{};
  std::uint8_t* out = canonical.data();
  if (i2d_ECDSA_SIG(ecdsa.get(), &out) != len ||
      std::memcmp(canonical.data(), signature.data(), signature.size()) != 0) {
    return false;
  }
  return digest_verify(pkey, message, signature.data(), signature.size());
}

// Refuses to ask for a passphrase: the default callback would prompt on the terminal, which
// hangs a daemon.
inline int no_passphrase(char*, int, int, void*) { return -1; }

// ---- JSON ----

inline Result<nlohmann::json> parse_object(std::string_view text) {
  // Spelled out as failure(): nlohmann::json converts from almost anything, which makes the
  // implicit error construction of Result<json> ambiguous.
  auto parsed = parse_json_input(text);
  if (!parsed) {
    return boost::outcome_v2::failure(make_error_code(
        parsed.error().reason == "duplicate_key" ? JoseErrc::duplicate_key : JoseErrc::bad_json));
  }
  if (!parsed.value().is_object()) {
    return boost::outcome_v2::failure(make_error_code(JoseErrc::bad_json));
  }
  return std::move(parsed).value();
}

inline Result<void> string_claim(const nlohmann::json& claims, const char* name, std::string& out) {
  const auto it = claims.find(name);
  if (it == claims.end()) return JoseErrc::missing_claim;
  if (!it->is_string()) return JoseErrc::bad_claim;
  out = it->get<std::string>();
  if (out.empty()) return JoseErrc::bad_claim;
  return boost::outcome_v2::success();
}

// RFC 7519 NumericDate, restricted to integers (we only issue integers, and fractional seconds
// would only add rounding questions).
inline Result<std::optional<std::int64_t>> time_claim(const nlohmann::json& claims,
                                                      const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) return std::optional<std::int64_t>();
  if (!it->is_number_integer()) return JoseErrc::bad_claim;
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return JoseErrc::bad_claim;
  }
  return std::optional<std::int64_t>(it->get<std::int64_t>());
}

// A compact JWS split, its header decoded, with the header rules every verifier here shares
// applied: at most `max_size` bytes, three '.'-separated segments, a strict base64url JSON
// object header without `crit` (crit_not_supported) and without a key of its own (`jku`, `x5u`,
// `jwk`, `x5c`: embedded_key_rejected). The algorithm and key choice are the caller's, and only
// then decode_rest() decodes payload and signature (so a refused algorithm is reported as such
// whatever the other segments hold).
struct CompactParts {
  nlohmann::json header;
  std::string_view signing_input;  // header "." payload, as sent
  std::string_view payload_b64;
  std::string_view signature_b64;
  Bytes payload;    // after decode_rest()
  Bytes signature;  // after decode_rest()
};
Result<CompactParts> split_compact(std::string_view compact, std::size_t max_size);
Result<void> decode_rest(CompactParts& parts);

}  // namespace sechex::api::jose::detail
