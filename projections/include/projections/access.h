// Lockouts and revocations: what access checks consult on every request.
//
//   lockouts             user id -> JSON {"locked_until": RFC 3339 or "" (until an admin
//                        unlocks), "needs_admin_unlock", "reason", "since"}; deleted by
//                        AccountUnlocked. A lock whose time has passed is simply not in force:
//                        readers compare with their clock (is_locked), and the scheduled
//                        cleanup deletes it later (expired()); apply() never reads a lockout,
//                        so the deletion cannot change any later result, and the rebuild check
//                        compares live entries only (ProjectionStore::digest(now)). An admin
//                        lock of an "anon:" subject (an unknown email, locked so that it
//                        answers like an account) also has "kept_until", since +
//                        kAnonAdminLockKeptMicros: nobody could unlock it, and anyone can make
//                        one, so it must end by itself.
//   revoked_sessions     session id -> RFC 3339 time of revocation (SessionRevoked, LoggedOut,
//                        RefreshTokenReuseDetected)
//   revocation_cutoffs   user id -> be64 micros: tokens issued before this instant are invalid
//                        (LoggedOut with all_sessions, PasswordChanged revoking other sessions,
//                        PasswordReset, SubjectErased)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"

namespace sechex::projections {

inline constexpr const char* kLockoutsCf = "lockouts";
inline constexpr std::int64_t kAnonAdminLockKeptMicros = 24LL * 3600 * 1'000'000;
inline constexpr const char* kRevokedSessionsCf = "revoked_sessions";
inline constexpr const char* kRevocationCutoffsCf = "revocation_cutoffs";

class AccessProjection final : public Projection {
 public:
  std::string name() const override { return "access"; }
  std::vector<std::string> column_families() const override {
    return {kLockoutsCf, kRevokedSessionsCf, kRevocationCutoffsCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  // Only timed lockouts expire. Revocations stay: a revoked session id must keep refusing its
  // tokens, and cutoffs are one small entry per user.
  std::vector<std::string> expiring_column_families() const override { return {kLockoutsCf}; }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

// Whether a stored lockout value is in force at `now_micros`.
bool is_locked(const std::string& lockout_json, std::int64_t now_micros);
// Whether a lockout is over for good at `now_micros`: timed and past (a lock waiting for an
// admin never expires; unreadable values neither, so they keep failing closed).
bool lockout_expired(std::string_view lockout_json, std::int64_t now_micros);
// Decodes a revocation_cutoffs value (be64 micros); 0 when malformed.
std::int64_t decode_cutoff(std::string_view value);

class ProjectionStore;

// The end of the lockout of `subject` in force at `now`: TimePoint::max() when only an admin
// lifts it, nullopt when none is in force. An unreadable lockout is in force (fails closed).
Result<std::optional<TimePoint>> lock_in_force(const ProjectionStore& store,
                                               std::string_view subject, TimePoint now);
// One lockout row.
struct LockRow {
  std::string subject;
  std::string locked_until;  // RFC 3339, "" when only an admin lifts it
  bool needs_admin_unlock = false;
  std::string reason;
  std::string since;       // RFC 3339
  std::string kept_until;  // RFC 3339, "" unless an anon subject's admin lock (see above)
};
// The lockouts in force at `now`: of `subject` only, or of everyone (ledgerctl replay).
Result<std::vector<LockRow>> locks_in_force(const ProjectionStore& store,
                                            const std::optional<std::string>& subject,
                                            TimePoint now);

// Whether session `id` was revoked (its tokens refused whatever their age).
Result<bool> session_revoked(const ProjectionStore& store, std::string_view id);
// Tokens of `user` issued before this instant (micros) are refused; nullopt when none.
Result<std::optional<std::int64_t>> revocation_cutoff(const ProjectionStore& store,
                                                      std::string_view user);

}  // namespace sechex::projections
