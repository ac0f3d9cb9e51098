// The identity rules as pure functions with an injected clock: every window the specs set
// (15 min, 30 min, 1 h, 24 h, 7 d, 5 min) is tested on both sides of its edge.
#include <gtest/gtest.h>

#include "api/identity/decide.h"

namespace sechex::api::identity {
namespace {

using namespace std::chrono_literals;

constexpr TimePoint kNow = time_from_micros(1'767'225'600'000'000);  // 2026-01-01T00:00:00Z
const Limits kLimits;

LoginState known(std::uint32_t failures, bool password_ok, bool verified = true) {
  LoginState s;
  s.account = LoginAccount{"active", verified, failures, std::nullopt};
  s.password_ok = password_ok;
  return s;
}

// 004 FR-012 and acceptance scenario 6: five consecutive failures lock for 30 minutes, and
// remainingAttempts counts down before that.
TEST(DecideLogin, FiveConsecutiveFailuresLockForThirtyMinutesFR012) {
  for (std::uint32_t before = 0; before < 4; ++before) {
    const auto d = decide_login(known(before, false), kLimits, kNow);
    EXPECT_EQ(d.outcome, LoginOutcome::invalid_credentials) << before;
    EXPECT_EQ(d.failure_reason, "wrong_password");
    EXPECT_EQ(d.consecutive_failures, before + 1);
    EXPECT_EQ(d.remaining_attempts, 4 - before);
    EXPECT_FALSE(d.lock_until);
  }
  const auto fifth = decide_login(known(4, false), kLimits, kNow);
  EXPECT_EQ(fifth.outcome, LoginOutcome::locked);
  EXPECT_EQ(fifth.lock_until, kNow + 30min);
  EXPECT_EQ(fifth.locked_until, *fifth.lock_until);
  EXPECT_EQ(fifth.retry_after_seconds, 1800);

  // While locked even the right password is refused, with the lock's end.
  auto locked = known(5, true);
  locked.account->locked_until = kNow + 30min;
  const auto during = decide_login(locked, kLimits, kNow + 30min - 1us);
  EXPECT_EQ(during.outcome, LoginOutcome::locked);
  EXPECT_EQ(during.locked_until, kNow + 30min);
  EXPECT_FALSE(during.lock_until) << "a refusal while locked does not extend the lock";
  EXPECT_EQ(during.retry_after_seconds, 1);
}

TEST(DecideLogin, AfterTheLockRunsOutTheUserStartsAfresh) {
  // The lockout projection no longer reports the lock (its time passed); the count is still 5.
  const auto wrong = decide_login(known(5, false), kLimits, kNow + 31min);
  EXPECT_EQ(wrong.outcome, LoginOutcome::invalid_credentials);
  EXPECT_EQ(wrong.consecutive_failures, 1u);
  EXPECT_EQ(wrong.remaining_attempts, 4u);
  EXPECT_EQ(decide_login(known(5, true), kLimits, kNow).outcome, LoginOutcome::ok);
}

TEST(DecideLogin, AnAdminLockHasNoEndAndNoRetryAfter) {
  auto s = known(0, true);
  s.account->locked_until = kNever;
  const auto d = decide_login(s, kLimits, kNow + days{365});
  EXPECT_EQ(d.outcome, LoginOutcome::locked);
  EXPECT_EQ(d.locked_until, kNever);
  EXPECT_EQ(d.retry_after_seconds, 0);
}

// 004 FR-011: at most 5 attempts per IP per 15 minutes, successes included.
TEST(DecideLogin, TheSixthAttemptFromOneIpWithinFifteenMinutesIsRateLimitedFR011) {
  auto s = known(0, true);
  s.ip_attempts = 4;
  EXPECT_EQ(decide_login(s, kLimits, kNow).outcome, LoginOutcome::ok);
  s.ip_attempts = 5;
  s.ip_window_frees_at = kNow + 15min - 10s;
  const auto d = decide_login(s, kLimits, kNow);
  EXPECT_EQ(d.outcome, LoginOutcome::rate_limited);
  EXPECT_EQ(d.retry_after_seconds, 15 * 60 - 10);
  EXPECT_TRUE(d.failure_reason.empty()) << "a refused attempt tests no password";
  // Unknown window edge: the whole window.
  s.ip_window_frees_at = TimePoint{};
  EXPECT_EQ(decide_login(s, kLimits, kNow).retry_after_seconds, 15 * 60);
}

// 004 FR-010: unknown email, wrong password and a disabled account answer alike, down to
// remainingAttempts and the lock after five tries.
TEST(DecideLogin, UnknownEmailWrongPasswordAndDisabledAccountAnswerAlikeFR010) {
  LoginState unknown;
  auto disabled = known(0, true);
  disabled.account->status = "disabled";
  for (std::uint32_t n = 0; n < 4; ++n) {
    unknown.unknown_email_failures = n;
    disabled.account->consecutive_failures = n;
    const auto a = decide_login(unknown, kLimits, kNow);
    const auto b = decide_login(known(n, false), kLimits, kNow);
    const auto c = decide_login(disabled, kLimits, kNow);
    for (const auto* d : {&a, &b, &c}) {
      EXPECT_EQ(d->outcome, LoginOutcome::invalid_credentials);
      EXPECT_EQ(d->remaining_attempts, 4 - n);
    }
    EXPECT_EQ(a.failure_reason, "unknown_email");
    EXPECT_EQ(c.failure_reason, "account_disabled");
  }
  // The fifth locks both for 30 minutes, and the lock is recorded for the unknown address too
  // (under its anon subject), so it ends, and starts afresh, exactly like an account's.
  unknown.unknown_email_failures = 4;
  const auto fifth = decide_login(unknown, kLimits, kNow);
  const auto fifth_known = decide_login(known(4, false), kLimits, kNow);
  for (const auto* d : {&fifth, &fifth_known}) {
    EXPECT_EQ(d->outcome, LoginOutcome::locked);
    EXPECT_EQ(d->locked_until, kNow + 30min);
    EXPECT_EQ(d->lock_until, kNow + 30min);
  }
  unknown.unknown_email_failures = 5;
  unknown.unknown_email_locked_until = kNow + 20min;
  auto locked_known = known(5, false);
  locked_known.account->locked_until = kNow + 20min;
  for (const auto& s : {unknown, locked_known}) {
    const auto d = decide_login(s, kLimits, kNow);
    EXPECT_EQ(d.outcome, LoginOutcome::locked);
    EXPECT_EQ(d.locked_until, kNow + 20min);
    EXPECT_FALSE(d.lock_until) << "no new lock while one is in force";
    const auto after = decide_login(s, kLimits, kNow + 20min);
    EXPECT_EQ(after.outcome, LoginOutcome::invalid_credentials) << "the lock ran out";
    EXPECT_EQ(after.remaining_attempts, 4u) << "and the count starts afresh";
  }
  // Failures spread over any time still add up for both (consecutive, not windowed).
  unknown.unknown_email_locked_until.reset();
  unknown.unknown_email_failures = 4;
  EXPECT_EQ(decide_login(unknown, kLimits, kNow + days{7}).outcome, LoginOutcome::locked);
}

TEST(DecideLogin, UnverifiedEmailIsToldOnlyAfterTheRightPassword) {
  EXPECT_EQ(decide_login(known(0, true, false), kLimits, kNow).outcome,
            LoginOutcome::email_not_verified);
  EXPECT_EQ(decide_login(known(0, false, false), kLimits, kNow).outcome,
            LoginOutcome::invalid_credentials);
  const auto d = decide_login(known(2, true, false), kLimits, kNow);
  EXPECT_EQ(d.consecutive_failures, 2u) << "not a failure towards the lock";
}

// 004 FR-007/scenario 13 (24 h) and FR-025/FR-028 (1 h, single use): the handler stores each
// link's own expiry; the edge is exclusive.
TEST(DecideLink, VerificationLinksLastTwentyFourHoursAndResetLinksOneHourOnceEach) {
  const LinkToken verify{true, true, kNow + kLimits.verify_token_ttl};
  EXPECT_EQ(decide_link(verify, kNow + 24h - 1us), LinkOutcome::ok);
  EXPECT_EQ(decide_link(verify, kNow + 24h), LinkOutcome::expired);
  const LinkToken reset{true, true, kNow + kLimits.reset_token_ttl};
  EXPECT_EQ(decide_link(reset, kNow + 1h - 1us), LinkOutcome::ok);
  EXPECT_EQ(decide_link(reset, kNow + 1h), LinkOutcome::expired);
  EXPECT_EQ(decide_link({true, false, kNow + 1h}, kNow), LinkOutcome::invalid)
      << "used or superseded";
  EXPECT_EQ(decide_link({}, kNow), LinkOutcome::invalid);
}

// 004 FR-020 and API.md: reusing a rotated refresh token revokes its family.
TEST(DecideRefresh, ARotatedTokenPresentedAgainIsReuseAndOnlyACurrentOneRotates) {
  EXPECT_EQ(decide_refresh({RefreshTokenState::current, true, true}), RefreshOutcome::rotate);
  EXPECT_EQ(decide_refresh({RefreshTokenState::rotated, true, true}),
            RefreshOutcome::reuse_detected);
  EXPECT_EQ(decide_refresh({RefreshTokenState::rotated, false, false}),
            RefreshOutcome::reuse_detected);
  EXPECT_EQ(decide_refresh({RefreshTokenState::revoked, true, true}), RefreshOutcome::invalid);
  EXPECT_EQ(decide_refresh({RefreshTokenState::unknown, true, true}), RefreshOutcome::invalid);
  EXPECT_EQ(decide_refresh({RefreshTokenState::current, false, true}), RefreshOutcome::invalid)
      << "idle-expired or logged-out session";
  EXPECT_EQ(decide_refresh({RefreshTokenState::current, true, false}), RefreshOutcome::invalid)
      << "locked or erased account";
}

// 002 idle timeout (24 h) and API.md rememberMe (7 d).
TEST(DecideSession, ActivityExtendsTheIdleExpiryByTwentyFourHoursOrSevenDays) {
  EXPECT_EQ(idle_expiry(false, kLimits, kNow), kNow + 24h);
  EXPECT_EQ(idle_expiry(true, kLimits, kNow), kNow + days{7});
}

OtpState live_code(bool matches, std::uint32_t failures = 0, std::uint32_t validations = 0) {
  OtpState s;
  s.code_exists = true;
  s.code_expires_at = kNow + kLimits.otp_ttl;
  s.code_matches = matches;
  s.failures = failures;
  s.validations = validations;
  return s;
}

// 002 "OTP expiration": 5 minutes.
TEST(DecideOtp, ACodeIsValidForFiveMinutes) {
  EXPECT_EQ(decide_otp(live_code(true), kLimits, kNow + 5min - 1us).outcome, OtpOutcome::ok);
  const auto late = decide_otp(live_code(true), kLimits, kNow + 5min);
  EXPECT_EQ(late.outcome, OtpOutcome::expired);
  EXPECT_TRUE(late.record_failure);
  OtpState none;
  EXPECT_EQ(decide_otp(none, kLimits, kNow).outcome, OtpOutcome::invalid_code);
}

// 002 "Per-email validation rate limit": more than 5 within 15 minutes -> 429 + Retry-After.
TEST(DecideOtp, TheSixthValidationWithinFifteenMinutesIsRateLimited) {
  EXPECT_EQ(decide_otp(live_code(true, 0, 4), kLimits, kNow).outcome, OtpOutcome::ok);
  auto s = live_code(true, 0, 5);
  s.validations_free_at = kNow + 14min;
  const auto d = decide_otp(s, kLimits, kNow);
  EXPECT_EQ(d.outcome, OtpOutcome::rate_limited);
  EXPECT_EQ(d.retry_after_seconds, 14 * 60);
  EXPECT_FALSE(d.record_failure);
}

// 002 "Account lockout after repeated failures": more than 10 failures in 1 hour lock until an
// admin unlocks.
TEST(DecideOtp, TheEleventhFailureWithinAnHourLocksUntilAnAdminUnlocks) {
  const auto tenth = decide_otp(live_code(false, 9), kLimits, kNow);
  EXPECT_EQ(tenth.outcome, OtpOutcome::invalid_code);
  EXPECT_EQ(tenth.failures_in_window, 10u);
  EXPECT_FALSE(tenth.lock_for_admin);
  const auto eleventh = decide_otp(live_code(false, 10), kLimits, kNow);
  EXPECT_EQ(eleventh.outcome, OtpOutcome::locked);
  EXPECT_TRUE(eleventh.lock_for_admin);
  auto locked = live_code(true);
  locked.locked_until = kNever;
  const auto after = decide_otp(locked, kLimits, kNow + 2h);
  EXPECT_EQ(after.outcome, OtpOutcome::locked) << "the 1 h window passing does not unlock";
  EXPECT_EQ(after.retry_after_seconds, 0);
}

TEST(RetryAfter, RoundsUpToWholeSecondsAndIsNeverZero) {
  EXPECT_EQ(retry_after_seconds(kNow + 1us, kNow), 1);
  EXPECT_EQ(retry_after_seconds(kNow + 1s, kNow), 1);
  EXPECT_EQ(retry_after_seconds(kNow + 1s + 1us, kNow), 2);
  EXPECT_EQ(retry_after_seconds(kNow - 5us, kNow), 1);
}

// ---- OAuth callbacks (003 US6, FR-006..FR-008; issue 17) ----

OAuthCallbackState callback_with(bool cookie, std::optional<OAuthStateSeen> state) {
  return OAuthCallbackState{cookie, std::move(state), "test"};
}

// FR-006 before everything: a browser without the binding learns nothing about the state.
TEST(DecideOAuthState, TheCookieIsCheckedFirstThenProviderUseAndExpiryFR006FR007FR008) {
  const OAuthStateSeen live{"test", kNow + 1s, false};
  EXPECT_EQ(decide_oauth_state(callback_with(true, live), kNow), OAuthStateOutcome::ok);
  for (const auto& state : {std::optional<OAuthStateSeen>(live), std::optional<OAuthStateSeen>(),
                            std::optional<OAuthStateSeen>({"test", kNow, true})}) {
    EXPECT_EQ(decide_oauth_state(callback_with(false, state), kNow),
              OAuthStateOutcome::cookie_mismatch);
  }
  EXPECT_EQ(decide_oauth_state(callback_with(true, std::nullopt), kNow),
            OAuthStateOutcome::unknown);
  EXPECT_EQ(
      decide_oauth_state(callback_with(true, OAuthStateSeen{"other", kNow + 1s, false}), kNow),
      OAuthStateOutcome::wrong_provider);
  EXPECT_EQ(decide_oauth_state(callback_with(true, OAuthStateSeen{"test", kNow + 1s, true}), kNow),
            OAuthStateOutcome::used);
  // Expired from the instant of expiry on; used wins over expired (the more precise answer).
  EXPECT_EQ(decide_oauth_state(callback_with(true, OAuthStateSeen{"test", kNow, false}), kNow),
            OAuthStateOutcome::expired);
  EXPECT_EQ(decide_oauth_state(callback_with(true, OAuthStateSeen{"test", kNow - 1s, true}), kNow),
            OAuthStateOutcome::used);
  EXPECT_EQ(to_string(OAuthStateOutcome::expired), "state_expired");
}

LoginAccount account(bool verified, std::string status = "active",
                     std::optional<TimePoint> locked = std::nullopt) {
  return LoginAccount{std::move(status), verified, 0, locked};
}

// Linking never captures an account whose address is unverified (pre-account takeover), and
// never trusts an address the provider did not verify.
TEST(DecideOAuthAccount, LinksOnlyVerifiedAddressesAndCreatesOnlyWithConsent) {
  OAuthAccountState s;
  s.linked = account(true);
  EXPECT_EQ(decide_oauth_account(s, kNow), OAuthAccountOutcome::sign_in);
  s.linked = account(true, "active", kNow + 1s);
  EXPECT_EQ(decide_oauth_account(s, kNow), OAuthAccountOutcome::locked);
  s.linked = account(true, "active", kNow);  // the lock ran out
  EXPECT_EQ(decide_oauth_account(s, kNow), OAuthAccountOutcome::sign_in);
  s.linked = account(true, "erased");
  EXPECT_EQ(decide_oauth_account(s, kNow), OAuthAccountOutcome::unavailable_account);

  OAuthAccountState n;  // no link
  n.by_email = account(true);
  n.provider_email_verified = false;
  EXPECT_EQ(decide_oauth_account(n, kNow), OAuthAccountOutcome::provider_unverified);
  n.provider_email_verified = true;
  EXPECT_EQ(decide_oauth_account(n, kNow), OAuthAccountOutcome::link_and_sign_in);
  n.by_email = account(false, "pending_verification");
  EXPECT_EQ(decide_oauth_account(n, kNow), OAuthAccountOutcome::local_unverified);
  n.consent = true;
  EXPECT_EQ(decide_oauth_account(n, kNow), OAuthAccountOutcome::local_unverified)
      << "consent never turns an unverified account into a link";
  n.by_email = account(true, "active", kNever);
  EXPECT_EQ(decide_oauth_account(n, kNow), OAuthAccountOutcome::locked);
  n.by_email.reset();
  EXPECT_EQ(decide_oauth_account(n, kNow), OAuthAccountOutcome::create);
  n.consent = false;
  EXPECT_EQ(decide_oauth_account(n, kNow), OAuthAccountOutcome::consent_required);
}

}  // namespace
}  // namespace sechex::api::identity
