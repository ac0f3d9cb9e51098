// The identity commands of specs 002-004: register, verify, sign in (password or code), refresh,
// log out, change and reset a password, step-up re-authentication, admin unlock, GDPR erasure,
// and the mails of one-time secrets. api/routes parses a request, calls one of these and maps
// what it returns to HTTP; nothing here knows HTTP.
//
// Every command runs on the command path (api/app/commands.h) of its subject's partition: the
// state is read, decide.h decides, and the events are appended and applied before the next
// command of that partition decides, so "5 failures -> lock" holds under any concurrency.
// Argon2id work happens before the partition is taken (the PasswordHasher pool), so a sign-in
// holds its partition for a few projection reads only; the decision re-checks that the password
// it verified is still the account's (Refused::password_changed otherwise).
//
// Subjects and partitions:
//   - a user's events go to partition_for(user id); a new user's id is drawn until it falls in
//     the partition of its email hash, so registrations of one address serialise on one
//     partition and "duplicate -> email_taken" cannot race (expected 8 draws for 8 partitions);
//   - events about an email no account has (a failed sign-in) use "anon:" + hex(email hash),
//     and an unknown address is decided exactly like an account whose password never matches
//     (004 FR-010);
//   - policy changes use the subject "policy".
//
// Secrets: passwords reach only the hasher; verification, reset and refresh tokens and OTP codes
// are stored as keyed lookup hashes (lookup_hash.h) and compared in constant time; mails carry
// them sealed in MailQueued (appended with the event that caused the mail); logs never do.
//
// Errors: a command that refuses returns a Refusal (what was refused and the figures an answer
// needs); api/routes/src/refusals.cc is the one place it becomes a status and code. A command
// that could not run (the log or a projection failed, another node owns the partition, too
// many password checks at once) is a Refusal too (unavailable, not_owner, overloaded).
//
// Lifecycle: the dependencies are references that must outlive the object; QueueMail and the
// hooks are called on the thread running the command.
// Thread-safety: every method may be called concurrently; they block (fsync, Argon2id) and run
// on blocking-pool threads, never on io threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api/app/commands.h"
#include "api/crypto/jose.h"
#include "api/crypto/lookup_hash.h"
#include "api/crypto/passwords.h"
#include "api/identity/decide.h"
#include "api/identity/flags.h"
#include "api/identity/rules.h"
#include "ledger/event_builder.h"
#include "ledger/key_store.h"
#include "ledger/result.h"
#include "projections/ids.h"
#include "projections/sessions.h"
#include "projections/users.h"

namespace sechex::api::identity {

using projections::SessionId;
using projections::UserId;

// What a caller presents (strong_id.h StrongText): a code or a step-up token cannot be passed
// where an address, a password or an id is expected. Password is crypto's (passwords.h).
using OtpCode = ledger::StrongText<struct OtpCodeTag>;
using ReauthToken = ledger::StrongText<struct ReauthTokenTag>;
// A step-up's proof: an OTP code of purpose reauth, or the account's password.
using StepUpProof = std::variant<OtpCode, Password>;
// A password change: the current password and the one to set.
struct PasswordChange {
  Password current;
  Password next;
};

// Who asks, from where and when: what a command's events record (EventMeta). `ip` and
// `user_agent` are sealed only under a real account's key; `ip_hash` (LookupHasher::ip of the
// client key) is what per-client limits count by.
struct Caller {
  std::string request_id;
  std::string ip;
  std::string ip_hash;
  std::optional<std::string> user_agent;
  std::string locale = "en";  // of the mails a command queues
  TimePoint now{};
};

// Why a command did not do what was asked, with what an answer needs to say.
enum class Refused {
  not_owner,               // another node owns the partition: `partition`
  overloaded,              // too many password checks at once; retry shortly
  unavailable,             // the log or a projection failed; retry shortly
  password_changed,        // the password changed while the old one was checked; retry
  internal,                // no randomness, an unusable stored hash, an unreadable secret
  email_taken,             // register: the address has an account
  invalid_email,           // register: `email_reason`
  weak_password,           // `password_check` against `policy`
  link_invalid,            // a verification or reset link: unknown, used or replaced (`link`)
  link_expired,            // ... past its expiry (`link`)
  rate_limited,            // `retry_after_seconds`
  account_locked,          // `locked_until` (INT64_MAX: until an admin unlocks), `retry_after...`
  email_not_verified,      // the right password, an unverified address
  invalid_credentials,     // a wrong email or password: `remaining_attempts`
  wrong_password,          // a signed-in caller's wrong password: `remaining_attempts`
  invalid_code,            // a wrong, spent or unknown OTP code
  code_expired,            // an OTP code past its expiry
  invalid_token,           // a refresh token that is not valid (or whose reuse was detected)
  no_account,              // the account a token names is gone
  not_found,               // no such user or secret
  reauth_required,         // no step-up grant for this session and token
  not_premium,             // exclusive mode: the account lacks the premium role
  attestation_failed,      // exclusive mode: `reason` (webauthn.h reason_code)
  device_unsupported,      // exclusive mode: `reason`, `url` (where to read about devices)
  invalid_role,            // set_roles: `reason` names the role that is unknown or in both lists
  spoof_attempt,           // exclusive mode: a DPoP proof that does not check out (`reason`)
  replay_detected,         // exclusive mode: a proof's jti seen within 5 minutes
  exclusive_locked,        // exclusive mode: 30 minutes without a validated request; start again
  feature_disabled,        // a feature flag (flags.h) does not match this user
  invalid_flag,            // set_flag: `reason` names the flag the product does not read
  dpop_nonce_required,     // exclusive mode with server nonces: `reason` is the nonce to use
  idempotency_key_reused,  // payments: the Idempotency-Key was used with another request body
  invalid_transition,      // payments: a webhook's status change not allowed from the current one
  invalid_cursor,          // a page cursor this server did not hand out
  unknown_provider,        // oauth: no sign-in provider of that name
  oauth_state_mismatch,    // oauth: the callback's state is not this browser's, unknown, used
                           // or expired (`reason`); `url` begins a new sign-in
  oauth_failed,            // oauth: the code or the ID token was refused (`reason`)
  provider_unavailable,    // oauth: the provider could not be reached or answered nonsense
  consent_required,        // oauth: no account yet and the sign-in was begun without consent
  provider_email_unverified,  // oauth: no link and the provider did not verify the address
  local_account_unverified,   // oauth: the address's account is unverified: not linked
  last_sign_in_method,        // oauth: unlinking would leave the account without a way in
  invalid_request,            // exclusive mode: a signed request's body is unusable (`reason`)
};

// The stable snake_case name of a refusal (for logs).
std::string_view to_string(Refused why);

enum class Link { verify_email, password_reset };

struct Refusal {
  Refused why = Refused::unavailable;
  std::int64_t retry_after_seconds = 0;  // rate_limited, account_locked
  TimePoint locked_until{};              // account_locked (kNever: an admin unlocks)
  std::uint32_t remaining_attempts = 0;  // invalid_credentials, wrong_password
  ledger::Partition partition{};         // not_owner: the partition and its owner, if known
  std::optional<std::string> owner;
  std::string email_reason;        // invalid_email (rules.h email_reason)
  PasswordCheck password_check;    // weak_password
  PasswordPolicy policy;           // weak_password
  Link link = Link::verify_email;  // link_invalid, link_expired
  std::string reason;              // attestation_failed, device_unsupported, oauth_*
  std::string url;  // device_unsupported: the upgrade guidance; oauth_state_mismatch: start again

  Refusal() = default;
  Refusal(Refused w) : why(w) {}  // NOLINT(google-explicit-constructor): `return Refused::x;`
  // A command that could not run: its error as a refusal (not_owner, overloaded, unavailable).
  static Refusal from_error(const std::error_code& ec);
  // not_owner for partition `p`, naming its owner when `ownership` knows it.
  static Refusal misdirected(ledger::Partition p, const PartitionOwnership& ownership);
};

template <typename T>
using Outcome = ResultOf<T, Refusal>;

// A session begun (sign-in, password change) or continued (refresh): its tokens.
struct SignedIn {
  UserId user;
  SessionId session;
  std::string refresh_token;  // the caller's only copy; stored as its keyed hash
  jose::IssuedToken access;
};

struct ReauthGrant {
  std::string token;  // for X-Reauth-Token; stored as reauth_id()
  std::int64_t expires_in_seconds = 0;
};

// An email address as the commands that take one see it: the keyed hash of its normalised form
// (an address that is not even valid is hashed as given, so it is answered like an unknown
// one), the account it names, and the subject its events go to: the account, or "anon:" +
// hex(hash) when there is none.
struct AddressSubject {
  std::string email_hash;
  std::optional<std::string> user;
  std::string id;
};

// The holder of a refresh token, as the CSRF check of a refresh by cookie needs it.
struct RefreshHolder {
  UserId user;
  SessionId session;
  bool current = false;  // not rotated or revoked (a rotated one still reaches reuse detection)
};

// The account a token names, with its address opened (nullopt once erased).
struct Profile {
  projections::UserRow row;
  std::optional<std::string> email;
  std::optional<std::string> display_name;  // opened; nullopt when never set or erased
};

// PATCH /v1/me: each field given is changed, the others kept.
struct ProfileChange {
  std::optional<std::string> display_name;  // valid UTF-8, checked by the caller
  std::optional<std::string> locale;        // "en", "zh-CN", or "" (negotiate per request)
  std::optional<bool> consent;              // false withdraws, true gives it again
};

// What GDPR access (004 FR-036) gives a user: the profile, the active sessions, and the user's
// own events through the per-subject audit index (at most kMaxExportedEvents, oldest first),
// rendered with sealed fields opened (ledger/export.h; an unrenderable record is marked in its
// place, never dropped in silence).
struct PersonalData {
  Profile profile;
  std::vector<std::pair<std::string, projections::SessionRow>> sessions;
  nlohmann::json events = nlohmann::json::array();
  bool truncated = false;
};
inline constexpr std::size_t kMaxExportedEvents = 10000;

// Builds the MailQueued event of one mail: kind ("verify_email", "password_reset", ...), the
// recipient, the secret the mail carries (token or code; may be empty) and the locale.
using QueueMail = std::function<Result<ledger::Bytes>(
    const ledger::EventMeta& meta, std::string_view kind, std::string_view to,
    std::string_view secret, std::string_view locale)>;

struct CommandDeps {
  CommandPath& commands;
  ledger::KeyStore& keys;
  const jose::TokenIssuer& issuer;
  PasswordHasher& hasher;
  const LookupHasher& lookup;
  const DisposableDomains& disposable;
  QueueMail queue_mail;               // may be empty: no mail is queued (tests of the rules alone)
  std::function<void()> mail_queued;  // after a mail's events are applied; may be empty
  // One line per failure nobody else hears of (work done after its 202); may be empty. Never
  // given an address, a code or a token.
  std::function<void(const std::string&)> log;
  // An account locked after too many wrong codes (a security alert, spec 002); may be empty.
  std::function<void(std::string_view user)> on_otp_lockout;
  // A subject past the code validation limit; may be empty.
  std::function<void(std::string_view subject)> on_otp_rate_limited;
};

struct CommandConfig {
  Limits limits;
  std::string consent_version = "2026-01";
};

enum class OtpPurpose { login, reauth };

class IdentityCommands {
 public:
  IdentityCommands(CommandDeps deps, CommandConfig config);

  const Limits& limits() const { return config_.limits; }
  const PartitionOwnership& ownership() const { return d_.commands.ownership(); }
  ledger::Partition partition_of(std::string_view subject) const;

  // ---- Registration and verification (004 FR-001..FR-007) ----
  struct Registered {
    UserId user;
    bool disposable = false;  // the address's domain is a disposable one (a warning)
  };
  // UserRegistered + ConsentRecorded + EmailVerificationIssued + the verify_email mail.
  Outcome<Registered> register_user(const Caller& c, std::string_view email, Password password);
  Outcome<void> verify_email(const Caller& c, std::string_view token);

  // ---- The mails of one-time secrets, done after a 202 that said nothing either way ----
  // Each is silent (nothing, or a log line): the account may not qualify, its per-account cap
  // may be reached, or the append may fail, and the client was told the same in every case.
  void mail_link(const Caller& c, const UserId& user, Link link);
  void mail_code(const Caller& c, const UserId& user, OtpPurpose purpose);
  // RateLimited{scope, ip hash} under "anon:ip:" + hex(ip hash), for the first refusal of a
  // client's burst by a per-client limiter; best effort.
  void record_client_limited(const Caller& c, const char* scope, std::int64_t retry_seconds);

  AddressSubject address_subject(std::string_view email) const;
  // The key that orders the mail work of one address: its keyed hash, as cheap to compute for
  // an unknown address as for a known one.
  std::string address_key(std::string_view email) const;

  // ---- Sign-in and sessions (004 FR-008..FR-020, 002 OTP) ----
  Outcome<SignedIn> login(const Caller& c, std::string_view email, Password password,
                          bool remember_me);
  Outcome<SignedIn> sign_in_with_code(const Caller& c, std::string_view email, OtpCode code,
                                      bool remember_me);
  Result<std::optional<RefreshHolder>> refresh_holder(std::string_view refresh_token,
                                                      TimePoint now) const;
  // Rotation with reuse detection (004 FR-018, FR-020). `read`: the holder the caller already
  // read for this token (refresh by cookie reads it for the CSRF check); its user names the
  // partition, so the token is not looked up a second time before the authoritative read on it.
  Outcome<SignedIn> refresh(const Caller& c, std::string_view refresh_token,
                            const RefreshHolder* read = nullptr);
  Outcome<void> logout(const Caller& c, const UserId& user, const SessionId& session, bool all);
  // A current refresh token's session that has not ended or expired.
  bool session_live(const SessionId& session, TimePoint now) const;

  // ---- Passwords (004 FR-003, FR-004, FR-021..FR-028, FR-041) ----
  PasswordPolicy password_policy() const;
  Outcome<PasswordPolicy> set_password_policy(const Caller& c, std::string_view admin,
                                              PasswordLevel level);
  // Every session ends; the caller continues in the fresh one returned.
  Outcome<SignedIn> change_password(const Caller& c, const UserId& user,
                                    const PasswordChange& change);
  Outcome<void> reset_password(const Caller& c, std::string_view token, Password next);

  // ---- Step-up, unlock, GDPR (002, 004 FR-036) ----
  Outcome<ReauthGrant> reauth(const Caller& c, const UserId& user, const SessionId& session,
                              const StepUpProof& proof);
  // The grant of (session, token) in force at `now` for `user`.
  bool reauth_granted(const UserId& user, const SessionId& session, ReauthToken token,
                      TimePoint now) const;
  // The id a step-up grant is recorded under (hex of the keyed hash of session and token).
  std::string reauth_id(const SessionId& session, ReauthToken token) const;
  // API.md: an admin grants and revokes roles (only "admin" and "premium" exist); one RoleGranted
  // per change, by "admin:" + admin; roles already held or absent are left as they are. The
  // user's roles after it. not_found for no such user; invalid_role for another name, or one in
  // both lists (`reason` names it).
  Outcome<std::vector<std::string>> set_roles(const Caller& c, const UserId& user,
                                              const std::vector<std::string>& grant,
                                              const std::vector<std::string>& revoke,
                                              const UserId& admin);
  // AccountUnlocked{by_admin, reason} by "admin:" + admin.
  Outcome<void> unlock(const Caller& c, const UserId& user, std::string_view reason,
                       const UserId& admin);

  // ---- Attributes and feature flags (000 FR-08; flags.h) ----
  // UserAttributesSet by "admin:" + admin, replacing the user's attributes (sealed under the
  // user's key). not_found for no such user.
  Outcome<Attributes> set_attributes(const Caller& c, const UserId& user,
                                     const Attributes& attributes, const UserId& admin);
  // The user's attributes (none set: both empty); internal when they cannot be opened.
  Outcome<Attributes> attributes(const projections::UserRow& user) const;
  struct Flag {
    FlagRules rules;   // the default (enabled for everyone) when never set
    bool set = false;  // an admin has set it
  };
  // invalid_flag for a name not in kKnownFlags.
  Outcome<Flag> flag(std::string_view name) const;
  // FlagChanged{name, rules JSON} by "admin:" + admin under the "policy" subject.
  Outcome<Flag> set_flag(const Caller& c, std::string_view name, const FlagRules& rules,
                         const UserId& admin);
  // Whether flag `name` matches `user` now (read from the projections on every call, so a
  // change takes effect at the next request); unavailable / internal when it cannot be read.
  Outcome<bool> flag_on_for(std::string_view name, const projections::UserRow& user) const;
  Outcome<void> erase(const Caller& c, const UserId& user, const SessionId& session,
                      ReauthToken reauth_token);
  Outcome<Profile> profile(const UserId& user) const;
  // PATCH /v1/me (003 US7-2, 004 FR-036): ProfileUpdated by the user (the name sealed), and a
  // ConsentRecorded when consent changes. Withdrawing it ends every session of the user (the
  // caller's too) and stops the processing that needs it: payments, secrets and exclusive mode
  // answer consent_required until it is given again. The account stays readable, exportable and
  // erasable (the user's own rights need no consent).
  Outcome<void> update_profile(const Caller& c, const UserId& user, const SessionId& session,
                               const ProfileChange& change);
  // The user's sessions active at `now`, by id.
  Outcome<std::vector<std::pair<std::string, projections::SessionRow>>> sessions(
      const UserId& user, TimePoint now) const;
  Outcome<PersonalData> personal_data(const UserId& user, TimePoint now) const;

 private:
  class Run;
  CommandDeps d_;
  CommandConfig config_;
  // flag() runs on every signed request of exclusive mode: the rules of each flag as last
  // parsed, with the stored JSON they came from, so an unchanged flag is not parsed again.
  struct ParsedFlag {
    std::string stored;
    FlagRules rules;
  };
  mutable std::mutex flags_mu_;
  mutable std::map<std::string, ParsedFlag, std::less<>> parsed_flags_;
};

}  // namespace sechex::api::identity
