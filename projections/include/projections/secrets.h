// Secrets (API.md "Protected resources"): which secret belongs to whom, its sealed server share
// and when its owner last checked in.
//
//   secrets            secret id -> JSON {"owner","created_at","last_check_in","revealed_at",
//                      "server_share_sealed" (base64 of the sealed bytes),"event_id" (hex of
//                      the SecretCreated event id, the seal's AAD)}   times in micros, 0 = never
//   secrets_by_owner   lp(owner) || secret id -> ""
//
// SecretCreated adds one (ignored when the id exists), CheckIn and ShareRevealed update it when
// the event's subject owns it (another subject's event about it changes nothing), and
// SubjectErased deletes the owner's secrets (their shares are unreadable from then on anyway).
#pragma once

#include <optional>
#include <string>

#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kSecretsCf = "secrets";
inline constexpr const char* kSecretsByOwnerCf = "secrets_by_owner";

class SecretsProjection final : public Projection {
 public:
  std::string name() const override { return "secrets"; }
  std::vector<std::string> column_families() const override {
    return {kSecretsCf, kSecretsByOwnerCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
};

struct Secret {
  std::string id;
  std::string owner;
  std::int64_t created_at = 0;
  std::int64_t last_check_in = 0;
  std::int64_t revealed_at = 0;
  std::string server_share_sealed;  // raw sealed bytes
  std::string event_id_hex;
};
Result<std::optional<Secret>> secret(const ProjectionStore& store, std::string_view id);

}  // namespace sechex::projections
