#include "projections/secrets.h"

#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/crypto.h"
#include "ledger/utf8.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

using json = nlohmann::json;

std::string str_of(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

// The stored secret when `owner` owns it.
Result<std::optional<json>> owned(Txn& txn, const std::string& id, const std::string& owner) {
  SECHEX_TRY(auto stored, txn.get(kSecretsCf, id));
  if (!stored) return std::optional<json>{};
  auto j = json::parse(*stored, nullptr, false);
  // json converts from nearly anything: name the failure explicitly.
  if (!j.is_object()) return boost::outcome_v2::failure(make_error_code(ledger::Errc::corruption));
  if (j.value("owner", "") != owner) return std::optional<json>{};
  return std::optional<json>(std::move(j));
}

}  // namespace

Result<void> SecretsProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                      Txn& txn) {
  const auto owner = env.subject()->str();
  const auto at = env.time_micros();
  switch (env.event_type()) {
    case schema::Event::SecretCreated: {
      const auto* e = env.event_as_SecretCreated();
      const auto id = str_of(e->secret_id());
      if (id.empty()) break;
      SECHEX_TRY(auto existing, txn.get(kSecretsCf, id));
      if (existing) break;
      const auto* share = e->server_share_sealed();
      const auto* eid = env.event_id()->bytes();
      txn.put(kSecretsCf, id,
              ledger::json_text(
                  json{{"owner", owner},
                       {"created_at", at},
                       {"last_check_in", at},
                       {"revealed_at", 0},
                       {"server_share_sealed", share == nullptr
                                                   ? ""
                                                   : ledger::crypto::base64_encode(ledger::ByteView(
                                                         share->data(), share->size()))},
                       {"event_id", ledger::to_hex(ledger::ByteView(eid->data(), eid->size()))}}));
      txn.put(kSecretsByOwnerCf, codec::lp(owner) + id, "");
      break;
    }
    case schema::Event::CheckIn:
    case schema::Event::ShareRevealed: {
      const bool check_in = env.event_type() == schema::Event::CheckIn;
      const auto id = check_in ? str_of(env.event_as_CheckIn()->secret_id())
                               : str_of(env.event_as_ShareRevealed()->secret_id());
      SECHEX_TRY(auto s, owned(txn, id, owner));
      if (!s) break;
      (*s)[check_in ? "last_check_in" : "revealed_at"] = at;
      txn.put(kSecretsCf, id, ledger::json_text(*s));
      break;
    }
    case schema::Event::SubjectErased: {
      SECHEX_TRY(auto mine, txn.scan(kSecretsByOwnerCf, codec::lp(owner)));
      for (const auto& [key, unused] : mine) {
        (void)unused;
        txn.del(kSecretsCf, std::string_view(key).substr(4 + owner.size()));
        txn.del(kSecretsByOwnerCf, key);
      }
      break;
    }
    default:
      break;
  }
  return boost::outcome_v2::success();
}

Result<std::optional<Secret>> secret(const ProjectionStore& store, std::string_view id) {
  SECHEX_TRY(auto stored, store.get(kSecretsCf, id));
  if (!stored) return std::optional<Secret>{};
  const auto j = json::parse(*stored, nullptr, false);
  ledger::Bytes share;
  if (!j.is_object() || !ledger::crypto::base64_decode(j.value("server_share_sealed", ""), share)) {
    return ledger::Errc::corruption;
  }
  return std::optional<Secret>(
      Secret{std::string(id), j.value("owner", ""), j.value("created_at", std::int64_t{0}),
             j.value("last_check_in", std::int64_t{0}), j.value("revealed_at", std::int64_t{0}),
             std::string(share.begin(), share.end()), j.value("event_id", "")});
}

}  // namespace sechex::projections
