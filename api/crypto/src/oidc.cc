// OpenID Connect ID tokens and PKCE (oidc.h).
#include "api/crypto/oidc.h"

#include <openssl/param_build.h>

#include "jose_internal.h"

namespace sechex::api::oidc {

using namespace jose::detail;
using jose::base64url_decode;
using jose::JoseErrc;
using ledger::Bytes;
using ledger::ByteView;

namespace {

constexpr std::size_t kMinRsaBits = 2048;
constexpr std::size_t kMaxRsaBits = 8192;
constexpr std::size_t kMaxSubject = 255;

using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)>;
using Params = std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)>;

const nlohmann::json* member(const nlohmann::json& o, const char* name) {
  const auto it = o.find(name);
  return it == o.end() ? nullptr : &*it;
}

bool is(const nlohmann::json* v, std::string_view want) {
  return v != nullptr && v->is_string() && v->get_ref<const std::string&>() == want;
}

// Whether a JWK may verify signatures at all (`use`, `key_ops`), whatever its type.
bool for_verifying(const nlohmann::json& jwk) {
  if (const auto* use = member(jwk, "use"); use != nullptr && !is(use, "sig")) return false;
  if (const auto* ops = member(jwk, "key_ops"); ops != nullptr) {
    if (!ops->is_array()) return false;
    for (const auto& op : *ops) {
      if (op.is_string() && op.get_ref<const std::string&>() == "verify") return true;
    }
    return false;
  }
  return true;
}

std::shared_ptr<evp_pkey_st> rsa_from_jwk(const nlohmann::json& jwk, std::size_t& modulus_bytes) {
  const auto* n = member(jwk, "n");
  const auto* e = member(jwk, "e");
  Bytes nb, eb;
  if (n == nullptr || e == nullptr || !n->is_string() || !e->is_string() ||
      !base64url_decode(n->get_ref<const std::string&>(), nb) ||
      !base64url_decode(e->get_ref<const std::string&>(), eb)) {
    return nullptr;
  }
  // Minimal big-endian integers only: a leading zero byte would make the size lie.
  if (nb.empty() || nb.front() == 0 || eb.empty() || eb.front() == 0 || eb.size() > 4) {
    return nullptr;
  }
  const auto bits = nb.size() * 8 - static_cast<std::size_t>(std::countl_zero(nb.front()));
  if (bits < kMinRsaBits || bits > kMaxRsaBits || (nb.back() & 1) == 0) return nullptr;
  std::uint64_t exponent = 0;
  for (const auto b : eb) exponent = (exponent << 8) | b;
  if (exponent < 65537 || (exponent & 1) == 0) return nullptr;

  ErrorQueueScope errors;
  Bn nbn(BN_bin2bn(nb.data(), static_cast<int>(nb.size()), nullptr));
  Bn ebn(BN_bin2bn(eb.data(), static_cast<int>(eb.size()), nullptr));
  ParamBld bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
  if (!nbn || !ebn || !bld ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, nbn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, ebn.get()) != 1) {
    return nullptr;
  }
  Params params(OSSL_PARAM_BLD_to_param(bld.get()), OSSL_PARAM_free);
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  modulus_bytes = nb.size();
  return share(pkey);
}

// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
bool verify_rs256(EVP_PKEY* pkey, ByteView message, ByteView signature) {
  ErrorQueueScope errors;
  MdCtx ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  return ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, pkey) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
         EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                          message.size()) == 1;
}

}  // namespace

std::string pkce_s256(std::string_view verifier) {
  const auto digest = ledger::crypto::sha256(bytes_of(verifier));
  return jose::base64url_encode(ByteView(digest.data(), digest.size()));
}

Result<ProviderKeys> ProviderKeys::from_jwks(std::string_view jwks) {
  auto parsed = parse_json_input(jwks);
  if (!parsed || !parsed.value().is_object()) return Errc::invalid_argument;
  const auto* list = member(parsed.value(), "keys");
  if (list == nullptr || !list->is_array() || list->size() > kMaxKeys) {
    return Errc::invalid_argument;
  }
  ProviderKeys out;
  for (const auto& jwk : *list) {
    if (!jwk.is_object() || !for_verifying(jwk)) continue;
    std::string kid;
    if (const auto* k = member(jwk, "kid"); k != nullptr) {
      if (!k->is_string()) continue;
      kid = k->get<std::string>();
    }
    if (out.keys_.contains(kid)) continue;
    const auto* alg = member(jwk, "alg");
    Key key;
    if (is(member(jwk, "kty"), "RSA")) {
      if (alg != nullptr && !is(alg, "RS256")) continue;
      key.alg = Alg::rs256;
      key.pkey = rsa_from_jwk(jwk, key.signature_size);
    } else if (is(member(jwk, "kty"), "EC")) {
      auto ec = jose::EcPublicKey::from_jwk(jwk);
      if (!ec) continue;
      key.alg = Alg::es256;
      key.ec = std::move(ec).value();
      key.signature_size = kP1363Size;
    }
    if (key.pkey || key.ec) out.keys_.emplace(std::move(kid), std::move(key));
  }
  if (out.keys_.empty()) return Errc::invalid_argument;
  return out;
}

Result<jose::VerifiedJws> verify_signature(std::string_view compact, const ProviderKeys& keys,
                                           std::size_t max_size) {
  SECHEX_TRY(auto parts, split_compact(compact, max_size));
  const auto& header = parts.header;
  const auto* alg = member(header, "alg");
  const bool rs256 = is(alg, "RS256");
  if (!rs256 && !is(alg, "ES256")) return JoseErrc::alg_not_allowed;
  const auto& table = keys.keys_;
  std::string kid;
  decltype(table.begin()) found;
  if (const auto* k = member(header, "kid"); k != nullptr) {
    if (!k->is_string()) return JoseErrc::unknown_kid;
    kid = k->get<std::string>();
    found = table.find(kid);
    if (found == table.end()) return JoseErrc::unknown_kid;
  } else {
    if (table.size() != 1) return JoseErrc::missing_kid;
    found = table.begin();
  }
  const auto& key = found->second;
  // The key's own type decides the algorithm: a header cannot turn an RSA key into anything else.
  if ((key.alg == ProviderKeys::Alg::rs256) != rs256) return JoseErrc::alg_not_allowed;
  SECHEX_TRYV(decode_rest(parts));
  if (parts.signature.size() != key.signature_size) return JoseErrc::bad_signature;
  const auto input = bytes_of(parts.signing_input);
  const bool ok = rs256 ? verify_rs256(key.pkey.get(), input, parts.signature)
                        : key.ec->verify_p1363(input, parts.signature);
  if (!ok) return JoseErrc::bad_signature;
  return jose::VerifiedJws{std::move(parts.header), string_of(parts.payload), std::move(kid)};
}

Result<IdTokenClaims> verify_id_token(std::string_view token, const ProviderKeys& keys,
                                      const IdTokenExpectations& expect) {
  SECHEX_TRY(auto jws, verify_signature(token, keys, expect.max_size));
  // RFC 7519 §5.1: typ is optional; when present for a JWT it says "JWT".
  if (const auto* typ = member(jws.header, "typ"); typ != nullptr && !is(typ, "JWT")) {
    return JoseErrc::bad_typ;
  }
  SECHEX_TRY(const auto claims, parse_object(jws.payload));
  IdTokenClaims out;
  out.kid = std::move(jws.kid);
  out.alg = jws.header["alg"].get<std::string>();
  std::string iss;
  SECHEX_TRYV(string_claim(claims, "iss", iss));
  if (iss != expect.issuer) return JoseErrc::wrong_issuer;
  SECHEX_TRYV(string_claim(claims, "sub", out.sub));
  if (out.sub.size() > kMaxSubject) return JoseErrc::bad_claim;

  const auto* aud = member(claims, "aud");
  if (aud == nullptr) return JoseErrc::missing_claim;
  bool ours = false;
  std::size_t audiences = 0;
  if (aud->is_string()) {
    ours = aud->get_ref<const std::string&>() == expect.client_id;
    audiences = 1;
  } else if (aud->is_array() && !aud->empty()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return JoseErrc::bad_claim;
      ours = ours || a.get_ref<const std::string&>() == expect.client_id;
    }
    audiences = aud->size();
  } else {
    return JoseErrc::bad_claim;
  }
  if (!ours) return JoseErrc::wrong_audience;
  if (const auto* azp = member(claims, "azp"); azp != nullptr) {
    if (!azp->is_string()) return JoseErrc::bad_claim;
    if (azp->get_ref<const std::string&>() != expect.client_id) {
      return JoseErrc::wrong_authorized_party;
    }
  } else if (audiences > 1) {
    return JoseErrc::wrong_authorized_party;
  }

  const auto now = seconds_of(expect.now_micros);
  const auto skew = static_cast<std::int64_t>(expect.clock_skew.count());
  SECHEX_TRY(const auto exp, time_claim(claims, "exp"));
  SECHEX_TRY(const auto iat, time_claim(claims, "iat"));
  SECHEX_TRY(const auto nbf, time_claim(claims, "nbf"));
  if (!exp || !iat) return JoseErrc::missing_claim;
  if (now >= *exp) return JoseErrc::expired;
  if (*iat > saturating_add(now, skew)) return JoseErrc::not_yet_valid;
  if (nbf && *nbf > saturating_add(now, skew)) return JoseErrc::not_yet_valid;
  if (saturating_add(*iat, static_cast<std::int64_t>(expect.max_age.count())) < now) {
    return JoseErrc::expired;
  }
  out.iat = *iat;
  out.exp = *exp;

  const auto* nonce = member(claims, "nonce");
  if (nonce == nullptr) return JoseErrc::missing_claim;
  if (!nonce->is_string()) return JoseErrc::bad_claim;
  if (expect.nonce.empty() ||
      !ledger::crypto::constant_time_equal(bytes_of(nonce->get_ref<const std::string&>()),
                                           bytes_of(expect.nonce))) {
    return JoseErrc::wrong_nonce;
  }

  if (const auto* email = member(claims, "email"); email != nullptr) {
    if (!email->is_string()) return JoseErrc::bad_claim;
    out.email = email->get<std::string>();
  }
  if (const auto* verified = member(claims, "email_verified"); verified != nullptr) {
    if (!verified->is_boolean()) return JoseErrc::bad_claim;
    out.email_verified = verified->get<bool>();
  }
  if (const auto* name = member(claims, "name"); name != nullptr && name->is_string()) {
    out.name = name->get<std::string>();
  }
  return out;
}

}  // namespace sechex::api::oidc
