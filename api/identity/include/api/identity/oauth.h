// Sign-in with a third-party OpenID provider (issue 17; spec 003 US6, FR-005..FR-008; API.md
// "Identity"): begin, complete, and the links between provider identities and accounts.
//
// Begin (start): a fresh state of 256 random bits. The browser gets a cookie holding
// binding(state) = base64url(keyed hash of the state); the provider gets the state, the nonce
// and the PKCE S256 challenge, both derived from the state under the lookup key
// (nonce = kh("oauth-nonce", state), verifier = kh("oauth-pkce", state)), so nothing secret is
// stored and any node can complete the sign-in. OAuthLoginStarted{state hash, expiry (10 min by
// default), consent} is chained under "anon:oauth:" + hex(state hash) before the redirect.
//
// Complete (callback), in this order:
//   1. The cookie must equal binding(state) (constant time): the callback comes from the
//      browser that began the sign-in (FR-006; US6-1, US6-2). Then, on the state's partition,
//      the state must exist, be for this provider, unused and unexpired (FR-007), and is
//      consumed there (OAuthStateUsed) before anything else happens, so a state is redeemed
//      at most once however many callbacks race (FR-008; US6-3). A refusal here is
//      oauth_state_mismatch (400 state_mismatch) with `reason` and a `url` to start again.
//   2. A provider error (`error=access_denied`, ...) or a code the token endpoint refuses
//      (invalid_grant: used, expired, or a PKCE verifier that does not match because the code
//      was begun with another state) or an ID token that fails oidc.h's checks: oauth_failed
//      (401) with the reason; provider_unavailable (502) when it cannot be reached.
//   3. The account, on its partition (decide_oauth_account): the linked account; else the
//      account of the provider-verified address, linked (OAuthAccountLinked) only when that
//      account's address is verified too (never silently: pre-account takeover); else a new
//      account with consent (UserRegistered without a password, ConsentRecorded,
//      EmailVerified, OAuthAccountLinked). Then LoginSucceeded{OAuth}, SessionStarted and
//      OAuthLoginCompleted, as for a password sign-in.
// Every refusal is chained (OAuthLoginRefused with its reason), under the account once known,
// else under the state's subject.
//
// Unlink: OAuthAccountUnlinked, refused (last_sign_in_method) when the account has no
// password and no other link.
//
// Lifecycle: the dependencies must outlive the object. Thread-safety: all methods may be
// called concurrently; they block (fsync, the provider over the network): blocking-pool
// threads only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "api/identity/commands.h"
#include "api/oauth/providers.h"

namespace sechex::api::identity {

inline constexpr Micros kOAuthStateLifetime = std::chrono::minutes{10};

struct OAuthStarted {
  std::string location;  // the provider's authorization URL (302 target)
  std::string binding;   // the cookie value binding this browser to the state
};

struct OAuthCallback {
  std::string state;
  std::string code;
  std::string error;   // the provider's `error` parameter, "" when none
  std::string cookie;  // the binding cookie the browser sent, "" when none
};

struct OAuthLink {
  std::string provider;
  TimePoint linked_at{};
};

class OAuthCommands {
 public:
  // `state_lifetime`: how long a begun sign-in may take (ledgerd --oauth-state-seconds).
  OAuthCommands(CommandDeps deps, CommandConfig config, oauth::Providers& providers,
                Micros state_lifetime = kOAuthStateLifetime);
  Micros state_lifetime() const { return state_lifetime_; }

  bool has_provider(std::string_view name) const { return providers_.find(name) != nullptr; }
  // "/v1/auth/oauth/<provider>/start": where a refused callback sends the user again.
  static std::string start_path(std::string_view provider);

  Outcome<OAuthStarted> start(const Caller& c, std::string_view provider, bool consent,
                              bool remember_me);
  Outcome<SignedIn> complete(const Caller& c, std::string_view provider, const OAuthCallback& cb);

  Outcome<std::vector<OAuthLink>> links(const UserId& user) const;
  Outcome<void> unlink(const Caller& c, const UserId& user, std::string_view provider);

 private:
  CommandDeps d_;
  CommandConfig config_;
  oauth::Providers& providers_;
  Micros state_lifetime_;
};

}  // namespace sechex::api::identity
