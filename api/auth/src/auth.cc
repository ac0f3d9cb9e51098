#include "api/auth/auth.h"

#include <algorithm>

#include "projections/access.h"
#include "projections/sessions.h"

namespace sechex::api {

std::optional<std::string_view> authorization_credential(std::string_view value,
                                                         std::string_view scheme) {
  if (value.size() <= scheme.size() + 1 || value[scheme.size()] != ' ') return std::nullopt;
  const bool same = std::equal(scheme.begin(), scheme.end(), value.begin(), [](char a, char b) {
    return a == static_cast<char>(std::tolower(static_cast<unsigned char>(b)));
  });
  if (!same) return std::nullopt;
  return value.substr(scheme.size() + 1);
}

bool Principal::has_role(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

Authenticator::Authenticator(const jose::TokenVerifier& verifier,
                             const projections::ProjectionStore& store, const Clock& clock,
                             std::function<void(std::string_view)> on_reject)
    : verifier_(verifier), store_(store), clock_(clock), on_reject_(std::move(on_reject)) {}

ApiError Authenticator::reject(ApiError r, std::string_view reason) const {
  if (on_reject_) on_reject_(reason);
  if (r.status == 401) {
    // RFC 6750 §3: name the scheme; add error="invalid_token" when a token was presented.
    r.headers.emplace_back("WWW-Authenticate",
                           r.code == "invalid_token"
                               ? R"(Bearer realm="sechex", error="invalid_token")"
                               : R"(Bearer realm="sechex")");
  }
  return r;
}

// `iat` has whole seconds, so a token of a session started in the same second as a cutoff
// (a password change answers with a fresh session) looks older than the cutoff. Its session's
// own start, in microseconds, tells the two apart.
bool Authenticator::session_began_after(const std::string& sid, std::int64_t cutoff) const {
  if (sid.empty()) return false;
  auto row = projections::session_row(store_, sid);
  return row && row.value() && row.value()->created_at >= cutoff;
}

void Authenticator::enable_cookies(CookieAuth cookies) { cookies_ = std::move(cookies); }
void Authenticator::csrf_rejected(const Principal& who, const Request& request,
                                  std::string_view reason) const {
  if (on_reject_) on_reject_(reason);
  if (cookies_.on_csrf_rejected) cookies_.on_csrf_rejected(who, request, reason);
}
ApiResult<void> Authenticator::require_csrf(const Principal& who, const Request& request,
                                            std::string_view message) const {
  const auto checked = check_csrf(request, who.session, *cookies_.tokens, cookies_.clock->now(),
                                  cookies_.public_origin);
  if (checked) return pass();
  csrf_rejected(who, request, csrf_reason(checked.error()));
  return boost::outcome_v2::failure(csrf_refusal(checked.error(), message));
}
std::optional<std::string> Authenticator::next_csrf_token(const Principal& who,
                                                          const Request& request) const {
  if (!who.via_cookie || cookies_.tokens == nullptr || !is_state_changing(request.method)) {
    return std::nullopt;
  }
  auto token = cookies_.tokens->issue(who.session, cookies_.clock->now());
  if (!token) return std::nullopt;
  return std::move(token).value();
}
ApiError Authenticator::missing_credentials() const {
  return reject({401, "unauthorized", "authentication required"}, "missing_credentials");
}
bool Authenticator::presents_credentials(const Request& request) const {
  const auto* header = request.header("authorization");
  if (header != nullptr && !header->empty()) return true;
  return cookies_.tokens != nullptr && cookie(request, kAccessCookie).has_value();
}
void Authenticator::on_authenticated(std::function<void(const Principal&)> hook) {
  on_authenticated_ = std::move(hook);
}

ApiResult<Principal> Authenticator::authenticate(const Request& request) const {
  const auto access = access_of(request.method, request.route);
  if (!access) {
    return reject({403, "forbidden", "this operation is not open to anyone"}, "route_without_rule");
  }
  return authenticate(request, *access == Access::anyone ? Access::user : *access);
}

ApiResult<Principal> Authenticator::authenticate(const Request& request, Access access) const {
  const auto* header = request.header("authorization");
  std::optional<std::string> from_cookie;
  if ((header == nullptr || header->empty()) && cookies_.tokens != nullptr) {
    from_cookie = cookie(request, kAccessCookie);
  }
  if ((header == nullptr || header->empty()) && !from_cookie) return missing_credentials();
  std::string_view token;
  if (from_cookie) {
    token = *from_cookie;
  } else {
    const auto bearer = authorization_credential(*header, "bearer");
    if (!bearer) return reject({401, "unauthorized", "use the Bearer scheme"}, "bad_scheme");
    token = *bearer;
  }

  auto verified = verifier_.verify(token);
  if (!verified) {
    return reject({401, "invalid_token", "the access token is invalid or expired"},
                  jose::reason_code(verified.error()));
  }
  const auto& claims = verified.value().claims;
  // An exclusive-mode session token is bound to a device key (cnf.jkt) and is worth nothing
  // without a proof signed by that key (RFC 9449 §7.1; API.md): never as a bearer token.
  if (!claims.cnf_jkt.empty()) {
    return reject(
        {401, "invalid_token", "this token is bound to a device key and needs a DPoP proof"},
        "proof_required");
  }

  // Revocation is checked on every request, never cached: logout must take effect at once. An
  // operator token is its own session, revoked by sid alone: a cutoff of its shared sub is not
  // its own.
  auto revoked = projections::session_revoked(store_, claims.sid);
  auto cutoff = claims.operator_token ? Result<std::optional<std::int64_t>>(std::nullopt)
                                      : projections::revocation_cutoff(store_, claims.sub);
  auto session_end = claims.sid.empty()
                         ? Result<std::optional<std::int64_t>>(std::nullopt)
                         : projections::session_end(store_, projections::UserId(claims.sub),
                                                    projections::SessionId(claims.sid));
  if (!revoked || !cutoff || !session_end) {
    // Failing closed: without the revocation state we cannot tell a revoked token from a good one.
    if (on_reject_) on_reject_("revocation_unavailable");
    return ApiError{503, "unavailable", "cannot check the session right now"};
  }
  if (revoked.value()) {
    return reject({401, "invalid_token", "the access token is invalid or expired"},
                  "session_revoked");
  }
  if (cutoff.value() && claims.iat * 1'000'000 < *cutoff.value() &&
      !session_began_after(claims.sid, *cutoff.value())) {
    return reject({401, "invalid_token", "the access token is invalid or expired"},
                  "sessions_cut_off");
  }
  // Ended sessions are in revoked_sessions or behind a cutoff; this catches the idle expiry.
  if (session_end.value() && clock_.now_micros() >= *session_end.value()) {
    return reject({401, "invalid_token", "the access token is invalid or expired"},
                  "session_expired");
  }

  Principal p{claims.sub,           claims.sid, claims.roles, claims.iat, from_cookie.has_value(),
              claims.operator_token};
  if (access == Access::user && p.operator_token) {
    return reject({403, "forbidden", "operator tokens cannot act as a user"}, "operator_token");
  }
  // A browser attaches cookies to any site's request: state changes need proof of this site.
  if (p.via_cookie && is_state_changing(request.method)) {
    SECHEX_TRYV(require_csrf(p, request,
                             "this request needs a CSRF token from GET /v1/auth/csrf and must come "
                             "from this site"));
  }
  // A device route is never satisfied by a bearer token (RouteRegistry::device_signed).
  const bool role_ok = access == Access::admin    ? p.has_role("admin")
                       : access == Access::ingest ? p.has_role("admin") || p.has_role("service")
                                                  : access != Access::device;
  if (!role_ok) {
    return reject({403, "forbidden", "this operation needs another role"}, "forbidden_role");
  }
  if (on_authenticated_) on_authenticated_(p);
  return p;
}

}  // namespace sechex::api
