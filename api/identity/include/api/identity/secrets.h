// The secrets of spec 002 ("Email Verification Enforcement", "Server share reveal requires
// re-auth"): an owner's secret holds a random 32-byte server share sealed under the owner's key
// (SecretCreated); the owner checks in (CheckIn) and, with a step-up grant at most 5 minutes
// old, reveals the share (ShareRevealed, naming the grant).
//
// Refusals (commands.h): email_not_verified while the owner's address is unverified; not_found
// for an unknown or another user's secret (no hint that it exists); reauth_required without a
// live grant of the caller's session.
//
// Lifecycle and thread-safety: as IdentityCommands, whose grants it checks; both must outlive it.
#pragma once

#include <string>
#include <string_view>

#include "api/identity/commands.h"

namespace sechex::api::identity {

class SecretCommands {
 public:
  SecretCommands(CommandDeps deps, const IdentityCommands& identity);

  struct Created {
    std::string id;  // "sec_" + random
    TimePoint created_at;
  };
  Outcome<Created> create(const Caller& c, const UserId& owner);
  Outcome<void> check_in(const Caller& c, const UserId& owner, std::string_view secret);
  // The plaintext share.
  Outcome<std::string> reveal_share(const Caller& c, const UserId& owner, const SessionId& session,
                                    std::string_view secret, ReauthToken reauth_token);

 private:
  CommandDeps d_;
  const IdentityCommands& identity_;
  CommandConfig config_;
};

}  // namespace sechex::api::identity
