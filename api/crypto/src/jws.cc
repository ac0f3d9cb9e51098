// Generic compact JWS (RFC 7515) signed with ES256, and its verifier's header rules.
#include "jose_internal.h"

namespace sechex::api::jose {

using namespace detail;

// ---- JWS ----

Result<std::string> jws_sign_es256(const SigningKey& key, std::string_view header_json,
                                   std::string_view payload) {
  std::string out = base64url_encode(header_json) + "." + base64url_encode(payload);
  SECHEX_TRY(auto sig, key.sign_p1363(bytes_of(out)));
  out += ".";
  out += base64url_encode(sig);
  return out;
}

namespace detail {

Result<CompactParts> split_compact(std::string_view compact, std::size_t max_size) {
  if (compact.size() > max_size) return JoseErrc::too_large;
  const auto dot1 = compact.find('.');
  if (dot1 == std::string_view::npos) return JoseErrc::malformed;
  const auto dot2 = compact.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || compact.find('.', dot2 + 1) != std::string_view::npos) {
    return JoseErrc::malformed;
  }
  Bytes header_bytes;
  if (!base64url_decode(compact.substr(0, dot1), header_bytes)) return JoseErrc::bad_base64;
  SECHEX_TRY(auto header, parse_object(string_of(header_bytes)));
  // RFC 7515 §4.1.11: an extension we do not implement might change what the signature means.
  if (header.contains("crit")) return JoseErrc::crit_not_supported;
  // The key must come from a set we trust. A key carried in (or fetched because of) the token
  // would let its author sign with a key of their own.
  for (const char* name : {"jku", "x5u", "jwk", "x5c"}) {
    if (header.contains(name)) return JoseErrc::embedded_key_rejected;
  }
  CompactParts parts;
  parts.header = std::move(header);
  parts.signing_input = compact.substr(0, dot2);
  parts.payload_b64 = compact.substr(dot1 + 1, dot2 - dot1 - 1);
  parts.signature_b64 = compact.substr(dot2 + 1);
  return parts;
}

Result<void> decode_rest(CompactParts& parts) {
  if (!base64url_decode(parts.payload_b64, parts.payload) ||
      !base64url_decode(parts.signature_b64, parts.signature)) {
    return JoseErrc::bad_base64;
  }
  return boost::outcome_v2::success();
}

}  // namespace detail

Result<VerifiedJws> jws_verify_es256(std::string_view compact, const PublicKeys& keys,
                                     const JwsPolicy& policy) {
  SECHEX_TRY(auto parts, split_compact(compact, policy.max_size));
  auto& header = parts.header;
  // Allowlist of exactly one algorithm, compared before any key is chosen: "none", HMAC keyed
  // with the public key, RSA and other curves never get as far as a verifier.
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "ES256") {
    return JoseErrc::alg_not_allowed;
  }
  if (policy.typ) {
    const auto typ = header.find("typ");
    if (typ == header.end() || !typ->is_string() ||
        typ->get_ref<const std::string&>() != *policy.typ) {
      return JoseErrc::bad_typ;
    }
  }
  const EcPublicKey* key = nullptr;
  std::string kid;
  if (const auto k = header.find("kid"); k != header.end()) {
    if (!k->is_string()) return JoseErrc::unknown_kid;
    kid = k->get<std::string>();
    const auto found = keys.find(kid);
    if (found == keys.end()) return JoseErrc::unknown_kid;
    key = &found->second;
  } else {
    if (policy.require_kid || keys.size() != 1) return JoseErrc::missing_kid;
    key = &keys.begin()->second;
  }

  SECHEX_TRYV(decode_rest(parts));
  const auto& sig = parts.signature;
  // RFC 7518 §3.4: exactly 64 bytes; shorter or padded encodings of r and s are not ES256.
  if (sig.size() != kP1363Size) return JoseErrc::bad_signature;
  if (policy.require_low_s && !is_low_s(sig)) return JoseErrc::high_s_signature;
  if (!key->verify_p1363(bytes_of(parts.signing_input), sig)) return JoseErrc::bad_signature;
  return VerifiedJws{std::move(header), string_of(parts.payload), std::move(kid)};
}

}  // namespace sechex::api::jose
