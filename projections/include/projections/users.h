// Users projection.
//
//   users            user id -> JSON {"id","status","email_hash","email_verified",
//                    "registered_at","consent_version","roles":[...],
//                    "password_hash_sealed","password_event_id",
//                    "email_sealed","email_event_id"}   (nlohmann, keys sorted)
//   users_by_email   email hash (HMAC of the normalised address, from the event) -> user id
//
// status: "pending_verification" -> "active" (EmailVerified) -> "erased" (SubjectErased, which
// also drops the email index entry). The sealed password hash is kept with the id of the event
// that sealed it, because that id is part of the seal's AAD; the sealed address likewise (the
// API mails and shows it; erasure makes it unreadable).
#pragma once

#include "projections/projection.h"

namespace sechex::projections {

inline constexpr const char* kUsersCf = "users";
inline constexpr const char* kUsersByEmailCf = "users_by_email";

class UsersProjection final : public Projection {
 public:
  std::string name() const override { return "users"; }
  std::vector<std::string> column_families() const override { return {kUsersCf, kUsersByEmailCf}; }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
};

}  // namespace sechex::projections
