#include "api/identity/decide.h"

#include <algorithm>

namespace sechex::api::identity {

std::int64_t retry_after_seconds(TimePoint until, TimePoint now) {
  if (until <= now) return 1;
  return std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::seconds>(until - now).count());
}

LoginDecision decide_login(const LoginState& state, const Limits& limits, TimePoint now) {
  LoginDecision d;
  const auto limit = limits.login_failures_to_lock;
  // The IP limit comes first and counts every attempt, for known and unknown emails alike.
  if (state.ip_attempts >= limits.login_attempts_per_ip) {
    d.outcome = LoginOutcome::rate_limited;
    const auto frees_at =
        state.ip_window_frees_at > now ? state.ip_window_frees_at : now + limits.login_ip_window;
    d.retry_after_seconds = retry_after_seconds(frees_at, now);
    return d;
  }

  // An unknown address is a stand-in account that never matches, with its own failures and
  // lock (recorded under its anon subject), so it answers and locks like a real one.
  LoginAccount unknown;
  unknown.status = "unknown";
  unknown.consecutive_failures = state.unknown_email_failures;
  unknown.locked_until = state.unknown_email_locked_until;
  const auto& account = state.account ? *state.account : unknown;
  if (account.locked_until && *account.locked_until > now) {
    d.outcome = LoginOutcome::locked;
    d.failure_reason = "locked";
    d.consecutive_failures = account.consecutive_failures;
    d.locked_until = *account.locked_until;
    if (d.locked_until != kNever) d.retry_after_seconds = retry_after_seconds(d.locked_until, now);
    return d;
  }
  // Reaching the limit always locks, so a count at the limit without a lock in force means the
  // lock has run out: the user starts afresh.
  const auto before = account.consecutive_failures >= limit ? 0 : account.consecutive_failures;
  const bool usable = account.status == "active" || account.status == "pending_verification";
  if (!state.password_ok || !usable) {
    // A disabled account answers exactly like a wrong password (004 edge cases).
    const auto failures = before + 1;
    d.failure_reason = !state.account ? "unknown_email"
                       : usable       ? "wrong_password"
                                      : "account_disabled";
    d.consecutive_failures = failures;
    if (failures >= limit) {
      d.outcome = LoginOutcome::locked;
      d.lock_until = now + limits.login_lock;
      d.locked_until = *d.lock_until;
      d.retry_after_seconds = retry_after_seconds(d.locked_until, now);
    } else {
      d.outcome = LoginOutcome::invalid_credentials;
      d.remaining_attempts = limit - failures;
    }
    return d;
  }
  if (!account.email_verified) {
    // Only the owner of the password learns this; it is not a failure towards the lock.
    d.outcome = LoginOutcome::email_not_verified;
    d.failure_reason = "email_not_verified";
    d.consecutive_failures = before;
    return d;
  }
  d.outcome = LoginOutcome::ok;
  return d;
}

LinkOutcome decide_link(const LinkToken& token, TimePoint now) {
  if (!token.known) return LinkOutcome::invalid;
  if (token.expires_at <= now) return LinkOutcome::expired;
  if (!token.live) return LinkOutcome::invalid;
  return LinkOutcome::ok;
}

RefreshOutcome decide_refresh(const RefreshState& state) {
  switch (state.token) {
    case RefreshTokenState::rotated:
      return RefreshOutcome::reuse_detected;
    case RefreshTokenState::current:
      return state.session_active && state.account_usable ? RefreshOutcome::rotate
                                                          : RefreshOutcome::invalid;
    case RefreshTokenState::unknown:
    case RefreshTokenState::revoked:
      break;
  }
  return RefreshOutcome::invalid;
}

OtpDecision decide_otp(const OtpState& state, const Limits& limits, TimePoint now) {
  OtpDecision d;
  if (state.locked_until && *state.locked_until > now) {
    d.outcome = OtpOutcome::locked;
    if (*state.locked_until != kNever) {
      d.retry_after_seconds = retry_after_seconds(*state.locked_until, now);
    }
    return d;
  }
  // "More than 5 validation attempts within 15 minutes": the sixth is refused, unrecorded
  // (a refused attempt tests no code).
  if (state.validations >= limits.otp_validations_per_window) {
    d.outcome = OtpOutcome::rate_limited;
    const auto frees_at = state.validations_free_at > now ? state.validations_free_at
                                                          : now + limits.otp_validation_window;
    d.retry_after_seconds = retry_after_seconds(frees_at, now);
    return d;
  }
  if (state.code_exists && state.code_matches && state.code_expires_at > now) {
    d.outcome = OtpOutcome::ok;
    return d;
  }
  // The right code after its 5 minutes answers "expired" (ask for a new one), yet counts as a
  // failed validation like any other: the log cannot tell a late user from a lucky guess
  // without keeping the code, and the rate limits count recorded failures.
  const bool expired_but_right =
      state.code_exists && state.code_matches && state.code_expires_at <= now;
  d.outcome = expired_but_right ? OtpOutcome::expired : OtpOutcome::invalid_code;
  d.record_failure = true;
  d.failures_in_window = state.failures + 1;
  if (d.failures_in_window > limits.otp_failures_to_lock) {
    d.outcome = OtpOutcome::locked;
    d.lock_for_admin = true;
  }
  return d;
}

TimePoint idle_expiry(bool remember_me, const Limits& limits, TimePoint now) {
  return now + (remember_me ? limits.remember_me_idle : limits.idle);
}

// ---- OAuth sign-in callback ----
OAuthStateOutcome decide_oauth_state(const OAuthCallbackState& s, TimePoint now) {
  if (!s.cookie_matches) return OAuthStateOutcome::cookie_mismatch;
  if (!s.state) return OAuthStateOutcome::unknown;
  if (s.state->provider != s.provider) return OAuthStateOutcome::wrong_provider;
  if (s.state->used) return OAuthStateOutcome::used;
  if (now >= s.state->expires_at) return OAuthStateOutcome::expired;
  return OAuthStateOutcome::ok;
}

std::string_view to_string(OAuthStateOutcome o) {
  switch (o) {
    case OAuthStateOutcome::ok:
      return "ok";
    case OAuthStateOutcome::cookie_mismatch:
      return "cookie_mismatch";
    case OAuthStateOutcome::unknown:
      return "unknown_state";
    case OAuthStateOutcome::wrong_provider:
      return "wrong_provider";
    case OAuthStateOutcome::used:
      return "state_used";
    case OAuthStateOutcome::expired:
      return "state_expired";
  }
  return "unknown_state";
}

OAuthAccountOutcome decide_oauth_account(const OAuthAccountState& s, TimePoint now) {
  const auto usable = [&](const LoginAccount& a) -> std::optional<OAuthAccountOutcome> {
    if (a.status == "erased" || a.status.empty()) return OAuthAccountOutcome::unavailable_account;
    if (a.locked_until && *a.locked_until > now) return OAuthAccountOutcome::locked;
    return std::nullopt;
  };
  if (s.linked) {
    if (auto refused = usable(*s.linked)) return *refused;
    return OAuthAccountOutcome::sign_in;
  }
  if (!s.provider_email_verified) return OAuthAccountOutcome::provider_unverified;
  if (s.by_email) {
    if (!s.by_email->email_verified) return OAuthAccountOutcome::local_unverified;
    if (auto refused = usable(*s.by_email)) return *refused;
    return OAuthAccountOutcome::link_and_sign_in;
  }
  return s.consent ? OAuthAccountOutcome::create : OAuthAccountOutcome::consent_required;
}

std::string_view to_string(OAuthAccountOutcome o) {
  switch (o) {
    case OAuthAccountOutcome::sign_in:
      return "sign_in";
    case OAuthAccountOutcome::link_and_sign_in:
      return "link_and_sign_in";
    case OAuthAccountOutcome::create:
      return "create";
    case OAuthAccountOutcome::locked:
      return "account_locked";
    case OAuthAccountOutcome::unavailable_account:
      return "account_unavailable";
    case OAuthAccountOutcome::provider_unverified:
      return "provider_email_unverified";
    case OAuthAccountOutcome::local_unverified:
      return "local_account_unverified";
    case OAuthAccountOutcome::consent_required:
      return "consent_required";
  }
  return "account_unavailable";
}

}  // namespace sechex::api::identity
