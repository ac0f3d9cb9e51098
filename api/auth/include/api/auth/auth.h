// Bearer-token authentication and role checks for API routes.
//
// Who may call a route is declared in one table (route_access.h): authenticate(request) reads
// the rule of the matched route. Operator tokens (`ledgerctl tokens issue`, claim "operator")
// are refused on `user` routes (403 `forbidden`, reason operator_token) whatever their role, so
// a service token can neither end sessions nor read a profile. Each operator token is its own
// session: it is revoked by its `sid` alone, never by a cutoff of its `sub` (which operator
// tokens share, e.g. "operator"), so ending one never ends the others.
//
// A request is authenticated when its `Authorization: Bearer <token>` header carries an access
// token that jose::TokenVerifier accepts (signature, kid, typ, iss, aud, exp/nbf/iat; verified
// tokens are cached) AND whose session is still in force according to the projections, which
// are read on every request (never cached): the token's `sid` is not in revoked_sessions; its
// `iat` is not before the user's revocation cutoff (logout-all, password change, erasure)
// unless its session began after the cutoff (a session started in the cutoff's own second);
// and when the sessions projection has the session, it is active at `clock` now (002: an
// idle-expired session needs a new login even though its last access token has not expired).
// Tokens without a session row (operator tokens from `ledgerctl tokens issue`) pass that last
// check; session rows are kept an hour past their end (sessions.h) so that an ended session's
// tokens never lose theirs.
//
// Answers (bodies in the API envelope):
//   401 `unauthorized`   no credentials, or not the Bearer scheme; WWW-Authenticate: Bearer
//   401 `invalid_token`  the token is refused or its session was revoked; the reason goes to the
//                        rejection callback (logs, metrics), never to the client
//   403 `forbidden`      authenticated, but not as the route's rule needs (a role is missing,
//                        or an operator token on a user route); also for a route the table
//                        has no rule for (fail closed)
//
// Thread-safety: authenticate() may be called concurrently. It reads RocksDB, so it belongs on
// the blocking pool (Exec::pool routes).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth/csrf.h"
#include "api/auth/route_access.h"
#include "api/crypto/jose.h"
#include "api/http/server.h"
#include "ledger/clock.h"
#include "projections/store.h"

namespace sechex::api {

// The credential of an Authorization header value in `scheme` (lowercase, e.g. "bearer",
// "dpop"): what follows "<scheme> ", the scheme compared case-insensitively (RFC 7235) and
// exactly one space before a non-empty credential; nullopt otherwise.
std::optional<std::string_view> authorization_credential(std::string_view value,
                                                         std::string_view scheme);

struct Principal {
  std::string subject;
  std::string session;
  std::vector<std::string> roles;
  std::int64_t issued_at = 0;   // seconds since the epoch (the token's iat)
  bool via_cookie = false;      // authenticated by the __Host-access cookie (csrf.h)
  bool operator_token = false;  // issued by ledgerctl for an operator or application

  bool has_role(std::string_view role) const;
};

class Authenticator {
 public:
  // `on_reject(reason)` sees a stable snake_case reason for every refusal (missing_credentials,
  // bad_scheme, the jose reason code such as bad_signature or expired, session_revoked,
  // sessions_cut_off, session_expired, revocation_unavailable, forbidden_role, operator_token,
  // proof_required (a key-bound exclusive-mode token presented without its DPoP proof),
  // route_without_rule). `clock` must outlive the Authenticator.
  Authenticator(const jose::TokenVerifier& verifier, const projections::ProjectionStore& store,
                const Clock& clock, std::function<void(std::string_view)> on_reject = {});

  // Browser sessions (csrf.h): without an Authorization header the `__Host-access` cookie is
  // accepted, and a state-changing request so authenticated must pass the CSRF check, else
  // 403 `csrf_rejected` (reported to on_csrf_rejected, which records the audit event). Call
  // before serving; off by default.
  struct CookieAuth {
    CsrfTokens* tokens = nullptr;
    const Clock* clock = nullptr;
    std::string public_origin;
    std::function<void(const Principal&, const Request&, std::string_view reason)> on_csrf_rejected;
  };
  void enable_cookies(CookieAuth cookies);
  // The CSRF check of a state-changing request `who` made with the browser's cookies, as
  // authenticate() makes it for the access cookie, for a credential it does not see (refresh
  // by cookie): success, or 403 csrf_rejected (`message` says what the page must do), reported
  // to the rejection callback and CookieAuth::on_csrf_rejected. Cookies must be enabled.
  ApiResult<void> require_csrf(const Principal& who, const Request& request,
                               std::string_view message) const;
  // The token the answer to a state change made by cookie hands back (header X-CSRF-Token), so
  // a page goes on with the next one after spending one; nullopt for other requests.
  std::optional<std::string> next_csrf_token(const Principal& who, const Request& request) const;
  // Whether the request carries a credential authenticate() would look at (an Authorization
  // header, or the access cookie when cookies are enabled): an open route that serves signed-in
  // callers differently asks this before authenticating.
  bool presents_credentials(const Request& request) const;
  // The 401 of a request that presents no credential (reported as missing_credentials).
  ApiError missing_credentials() const;
  // Told of every successful authentication (session activity, session_activity.h); must be
  // cheap and never block. Call before serving.
  void on_authenticated(std::function<void(const Principal&)> hook);

  // The principal the rule of the request's route admits (route_access.h; an `anyone` route's
  // handler that looks at its caller gets `user`), or the refusal to answer instead.
  ApiResult<Principal> authenticate(const Request& request) const;
  // The same under an explicit rule.
  ApiResult<Principal> authenticate(const Request& request, Access access) const;

 private:
  bool session_began_after(const std::string& sid, std::int64_t cutoff_micros) const;
  void csrf_rejected(const Principal& who, const Request& request, std::string_view reason) const;
  // `error`, with `reason` reported to on_reject and a 401's WWW-Authenticate header.
  ApiError reject(ApiError error, std::string_view reason) const;

  const jose::TokenVerifier& verifier_;
  const projections::ProjectionStore& store_;
  const Clock& clock_;
  std::function<void(std::string_view)> on_reject_;
  CookieAuth cookies_;
  std::function<void(const Principal&)> on_authenticated_;
};

}  // namespace sechex::api
