// Users projection.
//
//   users            user id -> JSON {"id","status","email_hash","email_verified",
//                    "registered_at","consent_version","roles":[...],
//                    "password_hash_sealed","password_event_id",
//                    "email_sealed","email_event_id",
//                    "attributes_sealed","attributes_event_id",
//                    "display_name_sealed","display_name_event_id","locale"}
//                    (nlohmann, keys sorted)
//   users_by_email   email hash (HMAC of the normalised address, from the event) -> user id
//
// status: "pending_verification" -> "active" (EmailVerified) -> "erased" (SubjectErased, which
// also drops the email index entry). The sealed password hash is kept with the id of the event
// that sealed it, because that id is part of the seal's AAD; the sealed address likewise (the
// API mails and shows it; erasure makes it unreadable).
//
// Readers outside projections/ use UserRow (user_row, user_by_email), never the JSON above.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

// A sealed value as the users row keeps it: the ciphertext and the id of the event that sealed
// it (part of the seal's associated data). Both empty when there is none (never set, or erased).
struct SealedValue {
  ledger::Bytes sealed;
  ledger::Bytes event_id;
  bool empty() const { return sealed.empty(); }
};

// One `users` row.
struct UserRow {
  std::string id;
  std::string status;  // "pending_verification" | "active" | "erased"
  bool email_verified = false;
  std::string registered_at;  // RFC 3339
  std::string consent_version;
  std::vector<std::string> roles;
  SealedValue password_hash;  // sealed under field "password_hash"
  SealedValue email;          // sealed under field "email"
  // JSON {"region","segment"} set by an admin (UserAttributesSet), sealed under field
  // "attributes"; empty when never set or erased.
  SealedValue attributes;
  // ProfileUpdated: the name the user chose (sealed under field "display_name") and the
  // language of mails and messages ("" = negotiated per request).
  SealedValue display_name;
  std::string locale;

  bool active() const { return status == "active"; }
  bool has_role(std::string_view role) const {
    return std::find(roles.begin(), roles.end(), role) != roles.end();
  }
};

// The row of `user`: nullopt when there is none; Errc::corruption for a row that does not decode.
Result<std::optional<UserRow>> user_row(const ProjectionStore& store, std::string_view user);
// Every user row whose id starts with `prefix` ("" for all), in id order (ledgerctl replay);
// rows that do not decode are left out.
Result<std::vector<UserRow>> user_rows(const ProjectionStore& store, std::string_view prefix);

// The user whose address has this keyed hash, nullopt when none has.
Result<std::optional<std::string>> user_by_email(const ProjectionStore& store,
                                                 std::string_view email_hash);

inline constexpr const char* kUsersCf = "users";
inline constexpr const char* kUsersByEmailCf = "users_by_email";

class UsersProjection final : public Projection {
 public:
  std::string name() const override { return "users"; }
  std::vector<std::string> column_families() const override { return {kUsersCf, kUsersByEmailCf}; }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
};

}  // namespace sechex::projections
