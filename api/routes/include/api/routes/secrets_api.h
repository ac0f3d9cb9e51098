// Protected resources of API.md: secrets, their owners' check-ins and the reveal of the
// server's share (specs 002 "Email Verification Enforcement" and "Server share reveal requires
// re-auth").
//
//   POST /v1/secrets                        (Bearer) -> 201 {secretId, createdAt}: the server
//                                            makes a random 32-byte share, sealed under the
//                                            owner's key (SecretCreated)
//   POST /v1/secrets/{id}/check-in          (Bearer) -> {secretId, lastCheckIn} (CheckIn)
//   POST /v1/secrets/{id}/reveal-share      (Bearer + X-Reauth-Token, <= 5 min) ->
//                                            {secretId, serverShare} (ShareRevealed, naming the
//                                            step-up grant)
//
// An unverified email answers 403 `email_not_verified` with details.resendUrl; another user's
// secret answers 404 (no hint that it exists); a missing or foreign reauth token 403
// `reauth_required`.
//
// Thread-safety: handlers are thread-safe and blocking (Exec::pool).
#pragma once

#include "api/identity/secrets.h"
#include "api/routes/identity_api.h"

namespace sechex::api {

class SecretsApi {
 public:
  SecretsApi(IdentityDeps deps, IdentityConfig config, identity::SecretCommands& secrets);
  void add_routes(RouteRegistry& routes);

  Response create(const Request& req, const Principal& who);
  Response check_in(const Request& req, const Principal& who);
  Response reveal_share(const Request& req, const Principal& who);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  identity::SecretCommands& secrets_;
};

}  // namespace sechex::api
