// Sliding-window rate-limit counters by email, IP and user, with expiry.
//
//   rate_limits   lp(scope) || lp(key) || be32(partition)
//                 -> be64 event times (micros), ascending, concatenated
//
// One entry per partition: an IP or an email hash is shared by subjects of every partition,
// and partitions are applied in parallel and in no fixed order relative to each other, so a
// shared entry would lose concurrent updates and depend on that order (rebuilds would differ).
// Each entry is written by its own partition only; readers add the partitions up.
//
// Keys never hold plaintext PII: email keys are the events' keyed email hashes, IP keys the
// envelope's Source.ip_hash (events without it count for no IP), user keys the opaque user id
// (the subject), RateLimited keys the event's key_hash. Each apply() appends the event's time,
// drops times older than kRateWindowMaxMicros before it and keeps at most kRateMaxSamples
// newest, so the value is a function of the events alone (deterministic, rebuild-identical).
// A reader asks "how many in the last W at now" with rate_count() or rate_window(); W may be
// anything up to kRateWindowMaxMicros (the longest window API.md uses: OTP failures per hour) and
// counts saturate at kRateMaxSamples (far above every limit API.md sets, 100/s per user included).
// An entry expires kRateWindowMaxMicros after its newest time: by then it counts zero for every
// window, and apply() would drop all of its times anyway, so cleanup deleting it earlier than a
// rebuild would changes nothing (projection.h).
//
// Scopes (what counts, and under which key):
//   login.failure.email  LoginFailed, by email_hash        login.failure.user  LoginFailed
//   login.attempt.ip     LoginFailed and LoginSucceeded, by Source.ip_hash
//   otp.request.user     OtpIssued
//   otp.failure.user     OtpFailed (emptied by AccountUnlocked: an admin's unlock starts the
//                        lockout count afresh, or the next wrong code would lock again at once)
//   otp.validation.user  OtpFailed and OtpVerified (002: validations per email; the subject is
//                        the account, or "anon:"+hex(email hash) for an unknown address)
//   reset.request.user   PasswordResetRequested
//   verify.request.user  EmailVerificationIssued
//   exclusive.user       ExclusiveActionValidated and ExclusiveRequestRejected, except
//   limited.exclusive.user  ExclusiveRequestRejected whose reason is "rate_limited", by user:
//                        the one record a second that stands for the refusals beyond the rate
//                        (counted apart, so they never fill exclusive.user's window)
//   limited.<scope>      RateLimited{scope}, by its key_hash (when and how often a limit fired)
// The per-IP limits of the routes that answer 202 for any address (forgot, resend, OTP request)
// are not counted here: those routes record events for known addresses only, so such counts
// would tell addresses apart (api/request_limiter.h counts every request instead). Their scope
// names below still name their RateLimited events.
#pragma once

#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kRateLimitsCf = "rate_limits";
inline constexpr std::int64_t kRateWindowMaxMicros = 3600LL * 1'000'000;
inline constexpr std::size_t kRateMaxSamples = 256;

inline constexpr const char* kScopeLoginFailureEmail = "login.failure.email";
inline constexpr const char* kScopeLoginFailureUser = "login.failure.user";
inline constexpr const char* kScopeLoginAttemptIp = "login.attempt.ip";
inline constexpr const char* kScopeOtpRequestUser = "otp.request.user";
inline constexpr const char* kScopeOtpRequestIp = "otp.request.ip";  // RateLimited only
inline constexpr const char* kScopeOtpFailureUser = "otp.failure.user";
inline constexpr const char* kScopeOtpValidationUser = "otp.validation.user";
inline constexpr const char* kScopeResetRequestUser = "reset.request.user";
inline constexpr const char* kScopeResetRequestIp = "reset.request.ip";  // RateLimited only
inline constexpr const char* kScopeOAuthStartIp = "oauth.start.ip";      // RateLimited only
inline constexpr const char* kScopeVerifyRequestUser = "verify.request.user";
inline constexpr const char* kScopeVerifyRequestIp = "verify.request.ip";  // RateLimited only
inline constexpr const char* kScopeExclusiveUser = "exclusive.user";
inline constexpr const char* kScopeLimitedPrefix = "limited.";
inline constexpr const char* kScopeExclusiveOverRate = "limited.exclusive.user";
// The ExclusiveRequestRejected reason of a refusal beyond the rate.
inline constexpr std::string_view kExclusiveOverRate = "rate_limited";

class RateLimitsProjection final : public Projection {
 public:
  std::string name() const override { return "rate_limits"; }
  std::vector<std::string> column_families() const override { return {kRateLimitsCf}; }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override { return {kRateLimitsCf}; }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

// The key prefix of one (scope, key) counter; its entries add the partition.
std::string rate_key(std::string_view scope, std::string_view key);
// Events in (now - window, now], read from the store and added up over partitions.
// Errc::invalid_argument for a window longer than the stored one.
Result<std::uint32_t> rate_count(const ProjectionStore& store, std::string_view scope,
                                 std::string_view key, TimePoint now, Micros window);
// The count, and for a limit it has reached, when it falls below that limit again if nothing
// more is recorded: the instant the limit-th newest time leaves the window. That
// is the exact Retry-After of a sliding-window limit, rather than the whole window.
struct RateWindow {
  std::uint32_t count = 0;
  TimePoint below_limit_at{};  // the epoch when count < limit
};
Result<RateWindow> rate_window(const ProjectionStore& store, std::string_view scope,
                               std::string_view key, TimePoint now, Micros window,
                               std::uint32_t limit);

}  // namespace sechex::projections
