// Access-token validation against its floor, measured in the same run: raw OpenSSL ES256
// verification (EVP_DigestVerifyInit + EVP_DigestVerify with the P-256 key) of the token's JWS
// signing input and DER signature, both prepared outside the loop. Ours: verify_access_token
// (size and segment checks, base64url, header and claims JSON, P1363 -> DER, the same
// EVP_DigestVerify, claim checks) and TokenVerifier with a cache hit (SHA-256 of the token, one
// locked lookup, a copy of the claims). Target: uncached <= 1.2x the raw verify time.
#include <benchmark/benchmark.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>
#include <string>

#include "api/crypto/dpop.h"
#include "api/crypto/jose.h"
#include "api/crypto/token_settings.h"
#include "support/temp_dir.h"

using namespace sechex;
namespace jose = sechex::api::jose;

namespace {

// One key ring (in a temp dir) and one admin token, shared by the three benchmarks.
struct TokenFixture {
  sechex::testing::TempDir dir;
  api::TokenSettings settings;
  std::unique_ptr<jose::KeyRing> ring;
  std::string token;
  EVP_PKEY* pkey = nullptr;  // the ring's public key, for the raw reference
  std::string signing_input;
  std::basic_string<unsigned char> der;  // the token's signature, DER-encoded

  TokenFixture() {
    ring = jose::KeyRing::load_or_create(dir.sub("jwt"), SystemClock::instance(),
                                         settings.ring_options())
               .value();
    jose::TokenIssuer issuer(*ring, SystemClock::instance(), settings.issuer_config());
    token = issuer.issue({"bench-admin", "bench-session", {"admin"}}, std::chrono::seconds(3600))
                .value()
                .token;
    const auto dot2 = token.rfind('.');
    signing_input = token.substr(0, dot2);
    ledger::Bytes sig;
    if (!jose::base64url_decode(std::string_view(token).substr(dot2 + 1), sig) ||
        sig.size() != 64) {
      return;
    }
    ECDSA_SIG* ecdsa = ECDSA_SIG_new();
    ECDSA_SIG_set0(ecdsa, BN_bin2bn(sig.data(), 32, nullptr),
                   BN_bin2bn(sig.data() + 32, 32, nullptr));
    unsigned char* out = nullptr;
    const int len = i2d_ECDSA_SIG(ecdsa, &out);
    if (len > 0) der.assign(out, static_cast<std::size_t>(len));
    OPENSSL_free(out);
    ECDSA_SIG_free(ecdsa);

    auto point = ring->snapshot()->current.public_key().sec1();
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
        OSSL_PARAM_construct_end()};
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
      pkey = nullptr;
    }
    EVP_PKEY_CTX_free(ctx);
  }
  ~TokenFixture() { EVP_PKEY_free(pkey); }
  TokenFixture(const TokenFixture&) = delete;
  TokenFixture& operator=(const TokenFixture&) = delete;

  static TokenFixture& get() {
    static TokenFixture f;
    return f;
  }
};

// The reference: what any ES256 verifier has to do at least, on the same bytes.
void BM_RawEs256Verify(benchmark::State& state) {
  auto& f = TokenFixture::get();
  if (f.pkey == nullptr || f.der.empty()) return state.SkipWithError("fixture");
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, f.pkey) == 1 &&
                    EVP_DigestVerify(ctx, f.der.data(), f.der.size(),
                                     reinterpret_cast<const unsigned char*>(f.signing_input.data()),
                                     f.signing_input.size()) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) state.SkipWithError("raw verify failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawEs256Verify)->MinTime(1.0);
// Both cores: the reference of the exclusive-mode validation rate (exclusive_bench.py).
BENCHMARK(BM_RawEs256Verify)->MinTime(1.0)->Threads(2)->UseRealTime();

// Ours, uncached: everything verify_access_token checks, from the compact token on.
void BM_VerifyAccessTokenUncached(benchmark::State& state) {
  auto& f = TokenFixture::get();
  const auto snap = f.ring->snapshot();
  const auto config = f.settings.verifier_config();
  for (auto _ : state) {
    auto r = jose::verify_access_token(f.token, snap->keys, config,
                                       SystemClock::instance().now_micros());
    if (!r) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyAccessTokenUncached)->MinTime(1.0);

// Ours, cached: what the server pays per request for a token it has seen (before the
// revocation check, which the caller does on every request).
void BM_TokenVerifierCached(benchmark::State& state) {
  auto& f = TokenFixture::get();
  jose::TokenVerifier verifier(*f.ring, SystemClock::instance(), f.settings.verifier_config());
  if (!verifier.verify(f.token)) return state.SkipWithError("verify failed");
  for (auto _ : state) {
    auto r = verifier.verify(f.token);
    if (!r) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TokenVerifierCached)->MinTime(1.0);

// Ours: a DPoP proof (RFC 9449 §4.3) as ledgerd checks one per exclusive-mode request, against
// the raw verify above: three base64url segments, the header and claims JSON, the jwk imported
// (a device's key is imported once and then found by its bytes), its thumbprint against the
// token's cnf.jkt, the signature, htm, htu, iat and ath. One proof, checked over and over
// (its jti is the caller's replay check, not this function's).
void BM_DpopProofVerify(benchmark::State& state) {
  auto device = jose::SigningKey::generate();
  if (!device) return state.SkipWithError("keygen");
  const auto& pub = device.value().public_key();
  const std::string token = "bench.session.token";
  const auto now = SystemClock::instance().now_micros() / 1'000'000;
  const nlohmann::json header{{"typ", "dpop+jwt"},
                              {"alg", "ES256"},
                              {"jwk",
                               {{"kty", "EC"},
                                {"crv", "P-256"},
                                {"x", jose::base64url_encode(pub.x())},
                                {"y", jose::base64url_encode(pub.y())}}}};
  const nlohmann::json claims{{"jti", "bench-proof-0001"},
                              {"htm", "POST"},
                              {"htu", "https://bench.example/v1/secure/exclusive/validate"},
                              {"iat", now},
                              {"ath", api::dpop::ath_of(token)}};
  const auto text = [](const nlohmann::json& j) {
    const auto s = j.dump();
    return jose::base64url_encode(
        ledger::ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  };
  const auto input = text(header) + "." + text(claims);
  const auto sig = device.value().sign_p1363(
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
  if (!sig) return state.SkipWithError("sign");
  const auto proof = input + "." + jose::base64url_encode(ledger::ByteView(sig.value()));
  const auto jkt = pub.thumbprint();
  const api::dpop::ExpectedProof expected{
      "POST", "https://bench.example/v1/secure/exclusive/validate", token, jkt, now};
  for (auto _ : state) {
    auto r = api::dpop::verify_proof(proof, expected);
    if (!r) state.SkipWithError("proof refused");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DpopProofVerify)->MinTime(1.0);

}  // namespace
