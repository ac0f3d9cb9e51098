// Access tokens: the issuer, the verifier and its cache.
#include "jose_internal.h"

namespace sechex::api::jose {

using namespace detail;

// ---- access tokens ----

TokenIssuer::TokenIssuer(const KeyRing& ring, const Clock& clock, IssuerConfig config)
    : ring_(ring), clock_(clock), config_(std::move(config)) {}

Result<IssuedToken> TokenIssuer::issue(const TokenSubject& claims, std::chrono::seconds ttl) const {
  if (ttl.count() <= 0 || ttl > ring_.options().max_token_ttl || claims.sub.empty() ||
      claims.sid.empty() || claims.roles.size() > kMaxRoles) {
    return Errc::invalid_argument;
  }
  const auto snap = ring_.snapshot();
  SECHEX_TRY(auto jti, crypto::random_bytes(kJtiBytes));
  const std::int64_t now_s = seconds_of(clock_.now_micros());
  AccessClaims c;
  c.iss = config_.issuer;
  c.sub = claims.sub;
  c.aud = config_.audience;
  c.iat = now_s;
  c.exp = saturating_add(now_s, ttl.count());
  c.jti = base64url_encode(jti);
  c.sid = claims.sid;
  c.roles = claims.roles;
  c.operator_token = claims.operator_token;
  c.cnf_jkt = claims.cnf_jkt;

  nlohmann::ordered_json header;
  header["alg"] = "ES256";
  header["kid"] = snap->current.kid();
  header["typ"] = config_.typ;
  nlohmann::ordered_json payload;
  payload["iss"] = c.iss;
  payload["sub"] = c.sub;
  payload["aud"] = c.aud;
  payload["iat"] = c.iat;
  payload["exp"] = c.exp;
  payload["jti"] = c.jti;
  payload["sid"] = c.sid;
  payload["roles"] = c.roles;
  if (c.operator_token) payload["operator"] = true;
  if (!c.cnf_jkt.empty()) payload["cnf"] = {{"jkt", c.cnf_jkt}};
  std::string header_text, payload_text;
  try {
    header_text = header.dump();
    payload_text = payload.dump();
  } catch (const nlohmann::json::exception&) {
    return Errc::invalid_argument;  // a string that is not UTF-8
  }
  SECHEX_TRY(auto token, jws_sign_es256(snap->current, header_text, payload_text));
  if (token.size() > kMaxIssuedTokenSize) return Errc::invalid_argument;
  return IssuedToken{std::move(token), std::move(c), snap->current.kid()};
}

Result<VerifiedToken> verify_access_token(std::string_view token, const PublicKeys& keys,
                                          const VerifierConfig& config, std::int64_t now_micros) {
  JwsPolicy policy;
  policy.max_size = config.max_token_size;
  policy.require_kid = true;
  policy.typ = config.typ;
  policy.require_low_s = true;
  SECHEX_TRY(auto jws, jws_verify_es256(token, keys, policy));
  // Parsed only after the signature verified: unauthenticated bytes never reach the parser
  // beyond the (small) header.
  SECHEX_TRY(const auto payload, parse_object(jws.payload));

  AccessClaims c;
  SECHEX_TRYV(string_claim(payload, "iss", c.iss));
  if (c.iss != config.issuer) return JoseErrc::wrong_issuer;

  const auto aud = payload.find("aud");
  if (aud == payload.end()) return JoseErrc::missing_claim;
  bool audience_ok = false;
  if (aud->is_string()) {
    audience_ok = aud->get_ref<const std::string&>() == config.audience;
  } else if (aud->is_array() && !aud->empty()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return JoseErrc::bad_claim;
      audience_ok = audience_ok || a.get_ref<const std::string&>() == config.audience;
    }
  } else {
    return JoseErrc::bad_claim;
  }
  if (!audience_ok) return JoseErrc::wrong_audience;
  c.aud = config.audience;

  SECHEX_TRY(const auto exp, time_claim(payload, "exp"));
  SECHEX_TRY(const auto iat, time_claim(payload, "iat"));
  SECHEX_TRY(c.nbf, time_claim(payload, "nbf"));
  if (!exp || !iat) return JoseErrc::missing_claim;
  c.exp = *exp;
  c.iat = *iat;
  const std::int64_t now_s = seconds_of(now_micros);
  const std::int64_t latest =
      saturating_add(now_s, std::max<std::int64_t>(0, config.clock_skew.count()));
  if (now_s >= c.exp) return JoseErrc::expired;
  if ((c.nbf && *c.nbf > latest) || c.iat > latest) return JoseErrc::not_yet_valid;

  SECHEX_TRYV(string_claim(payload, "sub", c.sub));
  SECHEX_TRYV(string_claim(payload, "sid", c.sid));
  SECHEX_TRYV(string_claim(payload, "jti", c.jti));
  const auto roles = payload.find("roles");
  if (roles == payload.end()) return JoseErrc::missing_claim;
  if (!roles->is_array()) return JoseErrc::bad_claim;
  for (const auto& r : *roles) {
    if (!r.is_string()) return JoseErrc::bad_claim;
    c.roles.push_back(r.get<std::string>());
  }
  if (const auto op = payload.find("operator"); op != payload.end()) {
    if (!op->is_boolean()) return JoseErrc::bad_claim;
    c.operator_token = op->get<bool>();
  }
  if (const auto cnf = payload.find("cnf"); cnf != payload.end()) {
    // RFC 9449 §6.1: an object whose jkt is the thumbprint; any other shape is refused rather
    // than taken as an unbound token.
    if (!cnf->is_object()) return JoseErrc::bad_claim;
    const auto jkt = cnf->find("jkt");
    if (jkt == cnf->end() || !jkt->is_string() || jkt->get<std::string>().empty()) {
      return JoseErrc::bad_claim;
    }
    c.cnf_jkt = jkt->get<std::string>();
  }
  return VerifiedToken{std::move(c), std::move(jws.kid)};
}

std::size_t VerifiedTokenCache::HashOfHash::operator()(const ledger::Hash& h) const noexcept {
  // Already a uniform digest: any slice of it is as good a hash as any.
  std::size_t v = 0;
  std::memcpy(&v, h.data(), sizeof(v));
  return v;
}

std::optional<VerifiedToken> VerifiedTokenCache::find(std::string_view token,
                                                      std::int64_t now_micros,
                                                      std::uint64_t generation) const {
  if (capacity_ == 0) return std::nullopt;
  const Hash key = crypto::sha256(bytes_of(token));
  const std::lock_guard lock(mu_);
  const auto it = entries_.find(key);
  // A stale entry stays until evicted or overwritten: removing it here would make the eviction
  // order and the map disagree, and verification will refuse or replace it anyway.
  if (it == entries_.end() || it->second.generation != generation ||
      now_micros >= it->second.expires_micros) {
    return std::nullopt;
  }
  return it->second.verified;
}

void VerifiedTokenCache::insert(std::string_view token, const VerifiedToken& verified,
                                std::uint64_t generation) {
  if (capacity_ == 0) return;
  const Hash key = crypto::sha256(bytes_of(token));
  const std::int64_t exp = verified.claims.exp;
  // Saturating both ways: exp is whatever the (verified) token said, and a public caller may pass
  // any value; exp * 10^6 must not overflow for a date before 1677 either.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  const std::int64_t expires = exp >= kMax / kMicrosPerSecond   ? kMax
                               : exp <= kMin / kMicrosPerSecond ? kMin
                                                                : exp * kMicrosPerSecond;
  Entry entry{verified, expires, generation};
  const std::lock_guard lock(mu_);
  const auto [it, inserted] = entries_.try_emplace(key, std::move(entry));
  if (!inserted) {
    it->second = std::move(entry);
    return;
  }
  order_.push_back(key);
  while (entries_.size() > capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

std::size_t VerifiedTokenCache::size() const {
  const std::lock_guard lock(mu_);
  return entries_.size();
}

TokenVerifier::TokenVerifier(const KeyRing& ring, const Clock& clock, VerifierConfig config)
    : ring_(ring), clock_(clock), config_(std::move(config)), cache_(config_.cache_capacity) {}

Result<VerifiedToken> TokenVerifier::verify(std::string_view token) const {
  // Before hashing for the cache: an oversized token costs nothing beyond its length check.
  if (token.size() > config_.max_token_size) return JoseErrc::too_large;
  const auto snap = ring_.snapshot();
  const std::int64_t now = clock_.now_micros();
  if (auto hit = cache_.find(token, now, snap->generation)) return std::move(*hit);
  SECHEX_TRY(auto verified, verify_access_token(token, snap->keys, config_, now));
  cache_.insert(token, verified, snap->generation);
  return verified;
}

}  // namespace sechex::api::jose
