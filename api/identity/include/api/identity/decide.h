// The identity rules as pure decide functions (ARCHITECTURE.md: (state, command, now) -> what
// to record and answer). Handlers read the state from the projections on the subject's
// partition, call these, and turn the decision into events and a response; nothing here reads a
// clock, a store or a random source, so every window is unit-tested with plain instants.
//
// Numbers (Limits) come from the specs and API.md; where two specs differ they apply to
// different flows (specs/README.md): login lockout 5 failures / 30 min (004 FR-012), login
// attempts 5 per IP per 15 min (004 FR-011), OTP validations 5 per 15 min per email and > 10
// failures per hour lock until an admin unlocks (002).
//
// Enumeration resistance (004 FR-010): an unknown email gets the same answers as a known one
// with a wrong password, including remainingAttempts and, after 5 failures, 423 with
// lockedUntil (counted per email hash over the lock window, since there is no account to lock).
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/clock.h"

namespace sechex::api::identity {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;

// Windows and lifetimes are durations and instants are TimePoints (ledger/clock.h), so a
// window cannot be passed as an instant.
struct Limits {
  std::uint32_t login_failures_to_lock = 5;      // 004 FR-012
  Micros login_lock = minutes{30};               // 004 FR-012
  std::uint32_t login_attempts_per_ip = 5;       // 004 FR-011
  Micros login_ip_window = minutes{15};          // 004 FR-011
  Micros verify_token_ttl = hours{24};           // 004 FR-007, scenario 13
  Micros reset_token_ttl = hours{1};             // 004 FR-025
  Micros otp_ttl = minutes{5};                   // 002 OTP expiration
  std::uint32_t otp_validations_per_window = 5;  // 002 per-email rate limit
  Micros otp_validation_window = minutes{15};
  std::uint32_t otp_failures_to_lock = 10;  // 002: more than 10 in 1 h
  Micros otp_failure_window = hours{1};
  Micros reauth_ttl = minutes{5};             // 002 step-up
  Micros access_token_ttl = hours{1};         // 004 FR-009
  Micros idle = days{1};                      // 002 idle timeout, API.md
  Micros remember_me_idle = days{7};          // API.md rememberMe
  Micros refresh_token_ttl = days{7};         // 004 FR-009
  std::uint32_t verify_resends_per_hour = 5;  // bounds mail sent per account
  // Password forgot and verification resend, per client IP, whatever the address
  // (request_limiter.h): 429 beyond.
  std::uint32_t mail_requests_per_ip = 5;
  Micros mail_request_ip_window = minutes{15};
  // Password reset mails per account per hour (silent beyond: the answer must not differ).
  std::uint32_t reset_requests_per_user = 3;
  // OTP codes (002 "OTP code generation"): per account per window, silent beyond; per client
  // IP per window whatever the address (request_limiter.h), 429 beyond.
  std::uint32_t otp_requests_per_user = 5;
  std::uint32_t otp_requests_per_ip = 20;
  Micros otp_request_window = minutes{15};
};

// Whole seconds a client waits for the instant `until`, rounded up, at least 1 (Retry-After).
std::int64_t retry_after_seconds(TimePoint until, TimePoint now);

// Whole seconds in a lifetime, for answers such as expiresIn (rounded down).
constexpr std::int64_t whole_seconds(Micros d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

// A lock only an admin lifts ends at this instant (stored as INT64_MAX).
inline constexpr TimePoint kNever = TimePoint::max();

// ---- Login (004 FR-010..FR-012) ----
struct LoginAccount {
  std::string status;  // users projection: "pending_verification" | "active" | "erased" | ...
  bool email_verified = false;
  std::uint32_t consecutive_failures = 0;
  // A lockout in force: its end, or kNever for one only an admin lifts.
  std::optional<TimePoint> locked_until;
};
struct LoginState {
  // Attempts (successes and failures) from the client's IP within login_ip_window, and
  // when they fall below the limit again (projections::rate_window, for Retry-After); the
  // epoch when unknown (the whole window is assumed).
  std::uint32_t ip_attempts = 0;
  TimePoint ip_window_frees_at{};
  // nullopt: no account has this email.
  std::optional<LoginAccount> account;
  // Unknown email only: the consecutive failures and the lock in force recorded under its
  // "anon:" subject. An unknown address is decided exactly like an account whose password
  // never matches (same counts, same lock and lockedUntil), so that no sequence of answers
  // tells it from a real one (004 FR-010).
  std::uint32_t unknown_email_failures = 0;
  std::optional<TimePoint> unknown_email_locked_until;
  // Whether the password matched the stored hash (false for an unknown email: a dummy hash
  // was verified instead, so the time taken is the same).
  bool password_ok = false;
};
enum class LoginOutcome {
  ok,                   // start a session
  invalid_credentials,  // 401, same for every reason
  email_not_verified,   // 403, only after the right password (it reveals nothing then)
  locked,               // 423 with lockedUntil
  rate_limited,         // 429 with Retry-After (the IP limit)
};
struct LoginDecision {
  LoginOutcome outcome = LoginOutcome::invalid_credentials;
  // Record LoginFailed with this reason and consecutive count ("" = record nothing of the
  // kind; ok records LoginSucceeded instead).
  std::string failure_reason;
  std::uint32_t consecutive_failures = 0;
  // Record AccountLocked until this instant (nullopt = no new lock).
  std::optional<TimePoint> lock_until;
  TimePoint locked_until{};  // for the 423 answer
  // For the 401 answer: attempts left before the lock (API.md details.remainingAttempts).
  std::uint32_t remaining_attempts = 0;
  std::int64_t retry_after_seconds = 0;
};
LoginDecision decide_login(const LoginState& state, const Limits& limits, TimePoint now);

// ---- Single-use links: email verification (24 h) and password reset (1 h) ----
struct LinkToken {
  bool known = false;
  bool live = false;  // not used and not superseded by a newer link
  TimePoint expires_at{};
};
enum class LinkOutcome {
  ok,
  invalid,  // 400 token_invalid: unknown, already used, or replaced by a newer link
  expired,  // 410 token_expired
};
LinkOutcome decide_link(const LinkToken& token, TimePoint now);

// ---- Refresh-token rotation with reuse detection (004 FR-020, API.md) ----
enum class RefreshTokenState { unknown, current, rotated, revoked };
struct RefreshState {
  RefreshTokenState token = RefreshTokenState::unknown;
  bool session_active = false;  // not ended, not idle- or absolutely expired at `now`
  bool account_usable = false;  // exists, not erased, not locked
};
enum class RefreshOutcome {
  rotate,          // TokenRefreshed: a new pair
  invalid,         // 401 invalid_token, nothing recorded
  reuse_detected,  // 401 invalid_token and RefreshTokenReuseDetected: the family is revoked
};
RefreshOutcome decide_refresh(const RefreshState& state);

// ---- Email OTP (002) ----
struct OtpState {
  // The account is locked (in force at `now`); kNever = until an admin unlocks.
  std::optional<TimePoint> locked_until;
  // Validations (successes and failures) for this email within the validation window, and
  // when they fall below the limit again (the epoch when unknown: the whole window).
  std::uint32_t validations = 0;
  TimePoint validations_free_at{};
  // Failures for this email within the failure window (before this attempt).
  std::uint32_t failures = 0;
  bool code_exists = false;  // a live code was issued and not yet used
  TimePoint code_expires_at{};
  bool code_matches = false;  // constant-time comparison of keyed hashes, done by the caller
};
enum class OtpOutcome {
  ok,            // OtpVerified: the code is consumed
  invalid_code,  // 401
  expired,       // 410 code_expired
  rate_limited,  // 429 with Retry-After
  locked,        // 423 account_locked (needs an admin when locked_until is INT64_MAX)
};
struct OtpDecision {
  OtpOutcome outcome = OtpOutcome::invalid_code;
  bool record_failure = false;  // OtpFailed with failures_in_window
  std::uint32_t failures_in_window = 0;
  bool lock_for_admin = false;  // AccountLocked{needs_admin_unlock} + alert + mail
  std::int64_t retry_after_seconds = 0;
};
OtpDecision decide_otp(const OtpState& state, const Limits& limits, TimePoint now);

// The session's new idle expiry after activity at `now` (002 "extend the session validity").
TimePoint idle_expiry(bool remember_me, const Limits& limits, TimePoint now);

// ---- OAuth sign-in callback (003 US6, FR-005..FR-008; issue 17) ----
// The state a callback presents, as its partition knows it.
struct OAuthStateSeen {
  std::string provider;
  TimePoint expires_at{};
  bool used = false;
};
struct OAuthCallbackState {
  // The browser's cookie is the keyed hash of this state (compared in constant time by the
  // caller): the callback comes from the browser that began the sign-in (FR-006).
  bool cookie_matches = false;
  std::optional<OAuthStateSeen> state;  // nullopt: never begun here
  std::string provider;                 // of the callback's path
};
enum class OAuthStateOutcome {
  ok,               // consume it (OAuthStateUsed) and redeem the code
  cookie_mismatch,  // another browser, or no cookie: a login CSRF or a hijack attempt (US6-1)
  unknown,          // no such state
  wrong_provider,   // begun for another provider
  used,             // already consumed (FR-008; US6-3)
  expired,          // past its 10 minutes (FR-007)
};
// The cookie is checked first: a browser that did not begin the sign-in learns nothing about
// the state (whether it exists, is used or expired).
OAuthStateOutcome decide_oauth_state(const OAuthCallbackState& s, TimePoint now);
// "cookie_mismatch", "unknown_state", ... (OAuthLoginRefused.reason, details.reason).
std::string_view to_string(OAuthStateOutcome o);

// Which account a verified provider identity signs into.
struct OAuthAccountState {
  // The account the provider identity is linked to, if any, and whether it can sign in.
  std::optional<LoginAccount> linked;
  // No link: the ID token's address, when it had one the provider verified
  // (email_verified: true), and the local account holding that address.
  bool provider_email_verified = false;
  std::optional<LoginAccount> by_email;
  bool consent = false;  // the sign-in was begun with consent to create an account
};
enum class OAuthAccountOutcome {
  sign_in,              // the linked account
  link_and_sign_in,     // link the identity to the verified account of its address (audited)
  create,               // a new account with the verified address, linked
  locked,               // the account is locked (423)
  unavailable_account,  // the linked or matching account cannot sign in (erased, ...)
  provider_unverified,  // no link and the provider did not verify the address
  local_unverified,     // the address's account is unverified: never linked silently
                        // (a pre-registered account would capture the victim's sign-in)
  consent_required,     // no account: begin again with consent
};
OAuthAccountOutcome decide_oauth_account(const OAuthAccountState& s, TimePoint now);
std::string_view to_string(OAuthAccountOutcome o);

}  // namespace sechex::api::identity
