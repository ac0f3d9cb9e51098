// Bearer-token authentication and role checks for API routes.
//
// A request is authenticated when its `Authorization: Bearer <token>` header carries an access
// token that jose::TokenVerifier accepts (signature, kid, typ, iss, aud, exp/nbf/iat; verified
// tokens are cached) AND whose session is still in force according to the revocation projection,
// which is read on every request (never cached): the token's `sid` is not in revoked_sessions and
// its `iat` is not before the user's revocation cutoff (logout-all, password change, erasure)
// unless its session began after the cutoff (a session started in the cutoff's own second).
//
// Answers (bodies in the API envelope):
//   401 `unauthorized`   no credentials, or not the Bearer scheme; WWW-Authenticate: Bearer
//   401 `invalid_token`  the token is refused or its session was revoked; the reason goes to the
//                        rejection callback (logs, metrics), never to the client
//   403 `forbidden`      authenticated, but none of the roles the route needs
//
// Thread-safety: authenticate() may be called concurrently. It reads RocksDB, so it belongs on
// the blocking pool (Exec::pool routes).
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api/jose.h"
#include "api/server.h"
#include "projections/store.h"

namespace sechex::api {

struct Principal {
  std::string subject;
  std::string session;
  std::vector<std::string> roles;
  std::int64_t issued_at = 0;  // seconds since the epoch (the token's iat)

  bool has_role(std::string_view role) const;
};

class Authenticator {
 public:
  // `on_reject(reason)` sees a stable snake_case reason for every refusal (missing_credentials,
  // bad_scheme, the jose reason code such as bad_signature or expired, session_revoked,
  // sessions_cut_off, revocation_unavailable, forbidden_role).
  Authenticator(const jose::TokenVerifier& verifier, const projections::ProjectionStore& store,
                std::function<void(std::string_view)> on_reject = {});

  // The principal, or the response to send instead. With `any_of_roles` empty, any
  // authenticated principal passes.
  std::variant<Principal, Response> authenticate(
      const Request& request, std::initializer_list<std::string_view> any_of_roles = {}) const;

 private:
  bool session_began_after(const std::string& sid, std::int64_t cutoff_micros) const;
  Response reject(unsigned status, std::string_view code, std::string_view message,
                  std::string_view reason) const;

  const jose::TokenVerifier& verifier_;
  const projections::ProjectionStore& store_;
  std::function<void(std::string_view)> on_reject_;
};

}  // namespace sechex::api
