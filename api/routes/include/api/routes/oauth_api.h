// Sign-in with a third-party OpenID provider (API.md "Identity"; spec 003 US6; issue 17):
//
//   GET    /v1/auth/oauth/{provider}/start     ?consent=true&rememberMe=true (both optional)
//          -> 302 to the provider, Set-Cookie __Host-oauth (the state's binding, 10 min);
//          404 not_found for an unknown provider, 502 provider_unavailable, 429 past the
//          per-client limit (a start records an event, so it is limited like the mail routes)
//   GET    /v1/auth/oauth/{provider}/callback  ?code&state (or ?error&state)
//          -> the token pair as for a password login (JSON and __Host- cookies), the binding
//          cookie cleared; 400 state_mismatch (details.reason, details.startUrl), 401
//          oauth_failed (details.reason), 403 consent_required / email_not_verified, 409
//          account_exists (the address's account is unverified: never linked silently), 423,
//          502
//   GET    /v1/me/links                         (user) {links: [{provider, linkedAt}]}
//   DELETE /v1/me/links/{provider}              (user; CSRF for cookie sessions) -> 204; 404,
//          409 last_sign_in_method
//
// The commands are api/identity/oauth.h's (which says what each checks, in which order).
// Thread-safety: handlers are thread-safe and blocking (Exec::pool).
#pragma once

#include "api/identity/oauth.h"
#include "api/routes/identity_api.h"

namespace sechex::api {

class OAuthApi {
 public:
  OAuthApi(IdentityDeps deps, IdentityConfig config, identity::OAuthCommands& oauth);
  void add_routes(RouteRegistry& routes);

  Response start(const Request& req);
  Response callback(const Request& req);
  Response links(const Request& req, const Principal& who);
  Response unlink(const Request& req, const Principal& who);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  identity::OAuthCommands& oauth_;
  RequestLimiter start_limiter_;
};

}  // namespace sechex::api
