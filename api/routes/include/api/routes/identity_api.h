// The identity routes of API.md ("Identity"), specs 002, 003 and 004:
//
//   POST /v1/auth/register              {email, password, consent:true} -> 201
//   POST /v1/auth/verify-email          {token}
//   POST /v1/auth/verify-email/resend   {email} -> 202 whatever the address; 429 past the
//                                       per-client limit (request_limiter.h)
//   POST /v1/auth/login                 {email, password, rememberMe?} -> token pair
//   POST /v1/auth/refresh               {refreshToken} -> new pair (rotation, reuse detection)
//   POST /v1/auth/logout | logout-all   (Bearer)
//   GET  /v1/auth/password/policy       the level in force and its rules
//   PUT  /v1/admin/policy/password      (admin) {level: "basic" | "high"}
//   GET  /v1/me · GET /v1/me/sessions   (Bearer)
//   PATCH /v1/me                        {displayName?, locale?, consent?} (audited; consent
//                                       false ends every session, identity/commands.h)
//   GET  /v1/auth/csrf                  (session) the CSRF token of the caller's session: by
//                                       Bearer, access cookie, or a current refresh cookie of
//                                       a live session (the access cookie may have expired)
//
// Browser sessions (csrf.h): every token pair is also set as __Host- cookies; refresh reads the
// refresh cookie when the body (which may be empty) names no token, and then the CSRF check
// applies (a refusal is audited as CsrfRejected); logout clears them, and login refuses a
// cross-site browser request.
//
// The commands (register, login, ...) are api/identity's (commands.h, which also says how
// subjects, partitions and secrets are handled); a handler parses, calls one, and maps what it
// returns (refusals.cc maps every refusal).
//
// Thread-safety: handlers are thread-safe and blocking (commands on Exec::pool, reads on
// Exec::read).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "api/app/commands.h"
#include "api/app/work_queue.h"
#include "api/auth/auth.h"
#include "api/auth/csrf.h"
#include "api/auth/route_registry.h"
#include "api/crypto/lookup_hash.h"
#include "api/http/client_ip.h"
#include "api/http/request_limiter.h"
#include "api/http/server.h"
#include "api/identity/commands.h"
#include "ledger/clock.h"

namespace sechex::api {

struct IdentityConfig {
  std::string public_origin;  // the site browsers use (csrf.h), e.g. "https://id.example.com"
  TrustedProxies proxies;
};

struct IdentityDeps {
  identity::IdentityCommands& identity;
  const Authenticator& auth;
  const LookupHasher& lookup;  // the keyed hash of a client's IP (client_key)
  const Clock& clock;
  // Work the routes that answer 202 whatever the address do after answering (identity_support.h
  // accept_then); stopped before these deps go.
  WorkQueue& deferred;
  // Browser sessions: refresh by cookie needs the CSRF check (null: cookies are not accepted).
  const CsrfTokens* csrf = nullptr;
  // One line per failure nobody else hears of (work done after its 202); may be empty.
  std::function<void(const std::string&)> log;
};

class IdentityApi {
 public:
  IdentityApi(IdentityDeps deps, IdentityConfig config);

  void add_routes(RouteRegistry& routes);

  Response register_user(const Request& req);
  Response verify_email(const Request& req);
  Response resend_verification(const Request& req);
  Response login(const Request& req);
  Response refresh(const Request& req);
  Response logout(const Request& req, const Principal& who, bool all);
  Response password_policy(const Request& req);
  Response set_password_policy(const Request& req, const Principal& admin);
  Response me(const Request& req, const Principal& who);
  Response update_me(const Request& req, const Principal& who);
  Response my_sessions(const Request& req, const Principal& who);
  Response csrf_token(const Request& req, const RouteRegistry::MaybeSignedIn& who);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  RequestLimiter resend_limiter_;
};

}  // namespace sechex::api
