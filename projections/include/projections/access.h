// Lockouts and revocations: what access checks consult on every request.
//
//   lockouts             user id -> JSON {"locked_until": RFC 3339 or "" (until an admin
//                        unlocks), "needs_admin_unlock", "reason", "since"}; deleted by
//                        AccountUnlocked. A lock whose time has passed is simply not in force:
//                        readers compare with their clock (is_locked), and the scheduled
//                        cleanup deletes it later; the rebuild digest check therefore compares
//                        stores cleaned at the same instant.
//   revoked_sessions     session id -> RFC 3339 time of revocation (SessionRevoked, LoggedOut,
//                        RefreshTokenReuseDetected)
//   revocation_cutoffs   user id -> be64 micros: tokens issued before this instant are invalid
//                        (LoggedOut with all_sessions, PasswordChanged revoking other sessions,
//                        PasswordReset, SubjectErased)
#pragma once

#include "projections/projection.h"

namespace sechex::projections {

inline constexpr const char* kLockoutsCf = "lockouts";
inline constexpr const char* kRevokedSessionsCf = "revoked_sessions";
inline constexpr const char* kRevocationCutoffsCf = "revocation_cutoffs";

class AccessProjection final : public Projection {
 public:
  std::string name() const override { return "access"; }
  std::vector<std::string> column_families() const override {
    return {kLockoutsCf, kRevokedSessionsCf, kRevocationCutoffsCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
};

// Whether a stored lockout value is in force at `now_micros`.
bool is_locked(const std::string& lockout_json, std::int64_t now_micros);
// Decodes a revocation_cutoffs value (be64 micros); 0 when malformed.
std::int64_t decode_cutoff(std::string_view value);

}  // namespace sechex::projections
