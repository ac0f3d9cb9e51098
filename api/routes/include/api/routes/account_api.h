// Account routes of API.md ("Identity"), specs 004 and 002:
//
//   POST   /v1/auth/password/change  (Bearer) {currentPassword, newPassword} -> a fresh token
//                                    pair; every other session is revoked (FR-021..FR-023, FR-027)
//   POST   /v1/auth/password/forgot  {email} -> 202 whatever the address (FR-024, FR-026: a
//                                    reset link is mailed only to a verified address)
//   POST   /v1/auth/password/reset   {token, newPassword} -> every session revoked, a
//                                    confirmation mail (FR-025, FR-027, FR-028, FR-040)
//   GET    /v1/me/export             (Bearer) GDPR access: profile, sessions and the caller's own
//                                    events with their sealed fields opened (FR-036)
//   DELETE /v1/me                    (Bearer + X-Reauth-Token, 002 step-up) GDPR erasure by
//                                    crypto-shredding: SubjectErased and the data key destroyed in
//                                    one durable write; sessions end; the chain still verifies
//
// A wrong current password counts like a failed login (LoginFailed, lock at 5), so the change
// form cannot be used to guess the password of a stolen session.
//
// Thread-safety: handlers are thread-safe and blocking (Exec::pool / Exec::read).
#pragma once

#include "api/routes/identity_api.h"

namespace sechex::api {

class AccountApi {
 public:
  AccountApi(IdentityDeps deps, IdentityConfig config);

  void add_routes(RouteRegistry& routes);

  Response change_password(const Request& req, const Principal& who);
  Response forgot_password(const Request& req);
  Response reset_password(const Request& req);
  Response export_me(const Request& req, const Principal& who);
  Response erase_me(const Request& req, const Principal& who);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  RequestLimiter forgot_limiter_;
};

}  // namespace sechex::api
