#include "projections/users.h"

#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/crypto.h"
#include "ledger/time_format.h"
#include "ledger/utf8.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

bool decode_sealed(const nlohmann::json& row, const char* sealed_key, const char* event_key,
                   SealedValue& out) {
  return codec::decode_sealed(row.value(sealed_key, ""), row.value(event_key, ""), out);
}

// One stored users value of `user`; corruption when it does not decode.
Result<UserRow> decode_user_row(std::string_view user, std::string_view value) {
  const auto j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object()) return ledger::Errc::corruption;
  UserRow row;
  try {
    row.id = j.value("id", std::string(user));
    row.status = j.value("status", "");
    row.email_verified = j.value("email_verified", false);
    row.registered_at = j.value("registered_at", "");
    row.consent_version = j.value("consent_version", "");
    row.roles = j.value("roles", std::vector<std::string>{});
    row.locale = j.value("locale", "");
  } catch (const nlohmann::json::exception&) {
    return ledger::Errc::corruption;  // a field of the wrong type
  }
  if (!decode_sealed(j, "password_hash_sealed", "password_event_id", row.password_hash) ||
      !decode_sealed(j, "email_sealed", "email_event_id", row.email) ||
      !decode_sealed(j, "attributes_sealed", "attributes_event_id", row.attributes) ||
      !decode_sealed(j, "display_name_sealed", "display_name_event_id", row.display_name)) {
    return ledger::Errc::corruption;
  }
  return row;
}

}  // namespace

Result<std::optional<UserRow>> user_row(const ProjectionStore& store, std::string_view user) {
  SECHEX_TRY(auto stored, store.get(kUsersCf, user));
  if (!stored) return std::optional<UserRow>{};
  SECHEX_TRY(auto row, decode_user_row(user, *stored));
  return std::optional<UserRow>(std::move(row));
}

Result<std::vector<UserRow>> user_rows(const ProjectionStore& store, std::string_view prefix) {
  SECHEX_TRY(auto rows, store.scan(kUsersCf, prefix));
  std::vector<UserRow> out;
  for (const auto& [id, value] : rows) {
    // A row that does not decode is left out (ledgerctl lists what it can read).
    if (auto row = decode_user_row(id, value)) out.push_back(std::move(row).value());
  }
  return out;
}

Result<std::optional<std::string>> user_by_email(const ProjectionStore& store,
                                                 std::string_view email_hash) {
  return store.get(kUsersByEmailCf, email_hash);
}

Result<void> UsersProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                    Txn& txn) {
  // Most events (sessions, signed requests, mail) leave the row as it is: do not read it for them.
  switch (env.event_type()) {
    case schema::Event::UserRegistered:
    case schema::Event::EmailVerified:
    case schema::Event::RoleGranted:
    case schema::Event::PasswordChanged:
    case schema::Event::PasswordReset:
    case schema::Event::ConsentRecorded:
    case schema::Event::ProfileUpdated:
    case schema::Event::UserAttributesSet:
    case schema::Event::SubjectErased:
      break;
    default:
      return boost::outcome_v2::success();
  }
  const auto subject = env.subject()->str();
  SECHEX_TRY(auto stored, txn.get(kUsersCf, subject));
  nlohmann::json user = stored ? nlohmann::json::parse(*stored, nullptr, false) : nlohmann::json();
  if (user.is_discarded()) return ledger::Errc::corruption;
  const auto* id = env.event_id()->bytes();
  const auto event_id = ledger::to_hex(ledger::ByteView(id->data(), id->size()));
  bool changed = true;
  switch (env.event_type()) {
    case schema::Event::UserRegistered: {
      const auto* e = env.event_as_UserRegistered();
      user = nlohmann::json{
          {"id", subject},
          {"status", "pending_verification"},
          {"email_hash", codec::hex_of(e->email_hash())},
          {"email_verified", false},
          {"registered_at", format_rfc3339(env.time_micros())},
          {"consent_version", e->consent_version() ? e->consent_version()->str() : ""},
          {"roles", nlohmann::json::array()},
          {"password_hash_sealed", codec::b64_of(e->password_hash_sealed())},
          {"password_event_id", event_id},
          {"email_sealed", codec::b64_of(e->email_sealed())},
          {"email_event_id", event_id}};
      if (e->email_hash() != nullptr && e->email_hash()->size() > 0) {
        txn.put(kUsersByEmailCf,
                std::string_view(reinterpret_cast<const char*>(e->email_hash()->data()),
                                 e->email_hash()->size()),
                subject);
      }
      break;
    }
    case schema::Event::EmailVerified:
      if (user.is_null()) return boost::outcome_v2::success();
      user["email_verified"] = true;
      if (user["status"] == "pending_verification") user["status"] = "active";
      break;
    case schema::Event::RoleGranted: {
      if (user.is_null()) return boost::outcome_v2::success();
      const auto* e = env.event_as_RoleGranted();
      const auto role = e->role() ? e->role()->str() : "";
      auto roles = user.value("roles", nlohmann::json::array());
      auto it = std::find(roles.begin(), roles.end(), role);
      if (e->granted() && it == roles.end()) roles.push_back(role);
      if (!e->granted() && it != roles.end()) roles.erase(it);
      std::sort(roles.begin(), roles.end());
      user["roles"] = roles;
      break;
    }
    case schema::Event::PasswordChanged:
      if (user.is_null()) return boost::outcome_v2::success();
      user["password_hash_sealed"] =
          codec::b64_of(env.event_as_PasswordChanged()->password_hash_sealed());
      user["password_event_id"] = event_id;
      break;
    case schema::Event::PasswordReset:
      if (user.is_null()) return boost::outcome_v2::success();
      user["password_hash_sealed"] =
          codec::b64_of(env.event_as_PasswordReset()->password_hash_sealed());
      user["password_event_id"] = event_id;
      break;
    case schema::Event::ConsentRecorded:
      if (user.is_null()) return boost::outcome_v2::success();
      if (const auto* e = env.event_as_ConsentRecorded(); e->consent_version()) {
        user["consent_version"] = e->granted() ? e->consent_version()->str() : "";
      }
      break;
    case schema::Event::ProfileUpdated: {
      if (user.is_null()) return boost::outcome_v2::success();
      const auto* e = env.event_as_ProfileUpdated();
      if (e->display_name_sealed() != nullptr && e->display_name_sealed()->size() > 0) {
        user["display_name_sealed"] = codec::b64_of(e->display_name_sealed());
        user["display_name_event_id"] = event_id;
      }
      if (e->locale() != nullptr) user["locale"] = e->locale()->str();
      break;
    }
    case schema::Event::UserAttributesSet:
      if (user.is_null()) return boost::outcome_v2::success();
      user["attributes_sealed"] =
          codec::b64_of(env.event_as_UserAttributesSet()->attributes_sealed());
      user["attributes_event_id"] = event_id;
      break;
    case schema::Event::SubjectErased: {
      if (user.is_null()) return boost::outcome_v2::success();
      ledger::Bytes hash;
      if (ledger::from_hex(user.value("email_hash", ""), hash) && !hash.empty()) {
        txn.del(kUsersByEmailCf,
                std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
      }
      user["status"] = "erased";
      user["email_hash"] = "";
      user["password_hash_sealed"] = "";
      user["email_sealed"] = "";
      user["attributes_sealed"] = "";
      user["display_name_sealed"] = "";
      break;
    }
    default:
      changed = false;
  }
  if (changed && !user.is_null()) txn.put(kUsersCf, subject, ledger::json_text(user));
  return boost::outcome_v2::success();
}

}  // namespace sechex::projections
