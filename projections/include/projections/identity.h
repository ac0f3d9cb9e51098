// Identity state the login, verification, reset, OTP and step-up commands decide on, beyond
// users (users.h), sessions (sessions.h), lockouts (access.h) and counters (rate_limits.h).
//
//   one_time_tokens   token hash -> JSON {"user","purpose","expires_at","state"}
//                     purpose "verify_email" | "password_reset"; state "live" | "used" |
//                     "superseded" (a newer token of the same purpose was issued: only the
//                     latest link works); expires_at in micros. Kept until expires_at plus
//                     kSpentTokenKeepMicros, so a late click still hears "expired" (410), not
//                     "invalid" (400).
//   user_tokens       lp(user) || purpose -> token hash of the latest token of that purpose
//   otp_codes         lp(user) || purpose -> JSON {"code_hash","expires_at"}: at most one
//                     live code per user and purpose ("login" | "reauth"); a new one replaces
//                     it, OtpVerified consumes it
//   login_failures    user id -> be32 consecutive password failures, set from LoginFailed's
//                     own count (the decision counted), removed by LoginSucceeded,
//                     AccountUnlocked, PasswordReset and SubjectErased. For an unknown email
//                     (subject "anon:<hash>") the same count || be64 end of life: the address
//                     is decided like an account (lock at 5, lockout under its anon subject in
//                     the access projection) so that its answers match a real account's, and
//                     the entry is dropped kAnonFailuresKeptMicros after its last failure
//                     (a real account's count has no end; attackers can make anon entries at
//                     will, so theirs must have one)
//   reauth_grants     reauth id (hex of the reauth token's keyed hash) -> JSON {"user",
//                     "expires_at"}
//   settings          "password_policy" -> "basic" | "high" (PolicyChanged{policy:"password"})
//                     "flag:" + name -> the rules JSON of the latest FlagChanged of that name
// where lp(x) = be32(len(x)) || x. Hashes are the keyed lookup hashes the API computes; no
// token, code or address is ever stored.
//
// Events under an "anon:<hash>" subject change login_failures only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kOneTimeTokensCf = "one_time_tokens";
inline constexpr const char* kUserTokensCf = "user_tokens";
inline constexpr const char* kOtpCodesCf = "otp_codes";
inline constexpr const char* kLoginFailuresCf = "login_failures";
inline constexpr const char* kReauthGrantsCf = "reauth_grants";
inline constexpr const char* kSettingsCf = "settings";
inline constexpr std::string_view kFlagSettingPrefix = "flag:";
// How long an unknown email's failure count outlives its last failure (login_failures).
inline constexpr std::int64_t kAnonFailuresKeptMicros = 24LL * 3600 * 1'000'000;

inline constexpr const char* kPurposeVerifyEmail = "verify_email";
inline constexpr const char* kPurposePasswordReset = "password_reset";
// Subject of events about an email no account has (a failed login): "anon:" + hex(email hash).
inline constexpr std::string_view kAnonymousSubjectPrefix = "anon:";
inline constexpr std::int64_t kSpentTokenKeepMicros = 7LL * 24 * 3600 * 1'000'000;

class IdentityProjection final : public Projection {
 public:
  std::string name() const override { return "identity"; }
  std::vector<std::string> column_families() const override {
    return {kOneTimeTokensCf, kUserTokensCf,   kOtpCodesCf,
            kLoginFailuresCf, kReauthGrantsCf, kSettingsCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override {
    return {kOneTimeTokensCf, kOtpCodesCf, kReauthGrantsCf, kLoginFailuresCf};
  }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

struct OneTimeToken {
  enum class State { live, used, superseded };
  std::string user;
  std::string purpose;
  std::int64_t expires_at = 0;
  State state = State::live;
};
// The token stored under `token_hash`, or nullopt when none (never issued, or long gone).
Result<std::optional<OneTimeToken>> one_time_token(const ProjectionStore& store,
                                                   std::string_view token_hash);

struct OtpCode {
  std::string code_hash;  // raw bytes of the keyed hash
  std::int64_t expires_at = 0;
};
Result<std::optional<OtpCode>> otp_code(const ProjectionStore& store, std::string_view user,
                                        std::string_view purpose);

// Consecutive password failures since the last success or unlock, at `now` (an anon entry past
// its end of life counts 0).
Result<std::uint32_t> login_failures(const ProjectionStore& store, std::string_view user,
                                     TimePoint now);

// The user a live reauth grant belongs to, or nullopt (unknown or expired at `now`).
Result<std::optional<std::string>> reauth_grant_user(const ProjectionStore& store,
                                                     std::string_view reauth_id, TimePoint now);

// "basic" unless an admin set another level.
Result<std::string> password_policy_level(const ProjectionStore& store);
// The rules JSON an admin last set for flag `name`, nullopt when never set.
Result<std::optional<std::string>> flag_rules_json(const ProjectionStore& store,
                                                   std::string_view name);

}  // namespace sechex::projections
