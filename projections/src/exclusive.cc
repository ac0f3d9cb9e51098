#include "projections/exclusive.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/crypto.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

using json = nlohmann::json;

std::string text_of(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

std::string device_key(std::string_view user, std::string_view device) {
  return codec::lp(user) + std::string(device);
}
std::string by_user_key(std::string_view user, std::string_view session) {
  return codec::lp(user) + std::string(session);
}

std::optional<json> object_of(std::string_view value) {
  auto j = json::parse(value, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

bool decode_sealed(const json& row, const char* sealed_key, const std::string& event_id,
                   SealedValue& out) {
  return codec::decode_sealed(row.value(sealed_key, ""), event_id, out);
}

// Marks the user's challenge used when `hash` is the one outstanding.
Result<void> use_challenge(Txn& txn, std::string_view user,
                           const flatbuffers::Vector<std::uint8_t>* hash) {
  if (hash == nullptr || hash->size() == 0) return boost::outcome_v2::success();
  SECHEX_TRY(auto stored, txn.get(kExclusiveChallengeCf, user));
  if (!stored) return boost::outcome_v2::success();
  auto row = object_of(*stored);
  if (!row || row->value("hash", "") != codec::hex_of(hash)) return boost::outcome_v2::success();
  (*row)["used"] = true;
  txn.put(kExclusiveChallengeCf, user, row->dump());
  return boost::outcome_v2::success();
}

// Rewrites the session row `id` with `change` applied; nothing when there is none.
template <typename Change>
Result<void> update_session(Txn& txn, std::string_view id, Change&& change) {
  SECHEX_TRY(auto stored, txn.get(kExclusiveSessionsCf, id));
  if (!stored) return boost::outcome_v2::success();
  auto row = object_of(*stored);
  if (!row) return ledger::Errc::corruption;
  change(*row);
  txn.put(kExclusiveSessionsCf, id, row->dump());
  return boost::outcome_v2::success();
}

void end(json& session, std::int64_t at, std::string_view state, std::string_view reason) {
  if (session.value("state", "") != "active") return;  // the first end wins
  session["state"] = std::string(state);
  session["end_reason"] = std::string(reason);
  session["ended_at"] = at;
}

Result<ExclusiveSessionRow> decode_session(std::string_view id, std::string_view value) {
  const auto j = object_of(value);
  if (!j) return ledger::Errc::corruption;
  ExclusiveSessionRow row;
  try {
    row.id = std::string(id);
    row.user = j->value("user", "");
    row.device_id = j->value("device_id", "");
    row.jkt = j->value("jkt", "");
    row.started_at = j->value("started_at", std::int64_t{0});
    row.expires_at = j->value("expires_at", std::int64_t{0});
    row.last_validated = j->value("last_validated", std::int64_t{0});
    row.state = j->value("state", "");
    row.end_reason = j->value("end_reason", "");
  } catch (const json::exception&) {
    return ledger::Errc::corruption;
  }
  return row;
}

Result<DeviceRow> decode_device(std::string_view value) {
  const auto j = object_of(value);
  if (!j) return ledger::Errc::corruption;
  DeviceRow row;
  try {
    row.id = j->value("id", "");
    row.thumbprint = j->value("thumbprint", "");
    const auto event_id = j->value("event_id", "");
    if (!decode_sealed(*j, "key_sealed", event_id, row.key) ||
        !decode_sealed(*j, "name_sealed", event_id, row.name)) {
      return ledger::Errc::corruption;
    }
    row.format = j->value("format", "");
    row.attestation_type = j->value("attestation_type", "");
    row.aaguid_hex = j->value("aaguid", "");
    row.chain_fingerprint = j->value("chain_fingerprint", "");
    row.created_at = j->value("created_at", std::int64_t{0});
    row.active = j->value("state", "") == "active";
  } catch (const json::exception&) {
    return ledger::Errc::corruption;
  }
  return row;
}

}  // namespace

bool ExclusiveProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                                  std::int64_t now_micros) const {
  if (cf == kExclusiveByUserCf) {
    return value.size() == 8 && now_micros >= codec::get_be64(value) + kExclusiveSessionKeptMicros;
  }
  const auto j = object_of(value);
  if (!j || !(*j)["expires_at"].is_number_integer()) return false;  // keep what cannot be read
  const auto expires_at = (*j)["expires_at"].get<std::int64_t>();
  if (cf == kExclusiveChallengeCf) return now_micros >= expires_at + kChallengeKeptMicros;
  if (cf == kExclusiveSessionsCf) return now_micros >= expires_at + kExclusiveSessionKeptMicros;
  return false;
}

Result<void> ExclusiveProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                        Txn& txn) {
  const auto user = env.subject()->string_view();
  const auto at = env.time_micros();
  const auto* id = env.event_id()->bytes();
  const auto event_id = ledger::to_hex(ledger::ByteView(id->data(), id->size()));
  switch (env.event_type()) {
    case schema::Event::ExclusiveChallengeIssued: {
      const auto* e = env.event_as_ExclusiveChallengeIssued();
      txn.put(kExclusiveChallengeCf, user,
              json{{"hash", codec::hex_of(e->challenge_hash())},
                   {"sealed", codec::b64_of(e->challenge_sealed())},
                   {"event_id", event_id},
                   {"expires_at", e->expires_at()},
                   {"used", false}}
                  .dump());
      return boost::outcome_v2::success();
    }
    case schema::Event::ExclusiveActivated: {
      const auto* e = env.event_as_ExclusiveActivated();
      SECHEX_TRYV(use_challenge(txn, user, e->challenge_hash()));
      const auto device = text_of(e->device_id());
      const auto session = text_of(e->exclusive_session_id());
      const auto dkey = device_key(user, device);
      SECHEX_TRY(auto known, txn.get(kExclusiveDevicesCf, dkey));
      if (!known && !device.empty()) {
        txn.put(kExclusiveDevicesCf, dkey,
                json{{"id", device},
                     {"thumbprint", text_of(e->device_key_thumbprint())},
                     {"key_sealed", codec::b64_of(e->device_key_sealed())},
                     {"name_sealed", codec::b64_of(e->device_model_sealed())},
                     {"event_id", event_id},
                     {"format", text_of(e->attestation_format())},
                     {"attestation_type", text_of(e->attestation_type())},
                     {"aaguid", codec::hex_of(e->aaguid())},
                     {"chain_fingerprint", text_of(e->chain_fingerprint())},
                     {"created_at", at},
                     {"state", "active"}}
                    .dump());
      }
      if (!session.empty()) {
        txn.put(kExclusiveSessionsCf, session,
                json{{"user", user},
                     {"device_id", device},
                     {"jkt", text_of(e->device_key_thumbprint())},
                     {"started_at", at},
                     {"expires_at", e->expires_at()},
                     {"last_validated", at},
                     {"state", "active"}}
                    .dump());
        txn.put(kExclusiveByUserCf, by_user_key(user, session), codec::be64(e->expires_at()));
      }
      return boost::outcome_v2::success();
    }
    case schema::Event::ExclusiveRequestRejected:
      return use_challenge(txn, user, env.event_as_ExclusiveRequestRejected()->challenge_hash());
    case schema::Event::ExclusiveActionValidated:
      return update_session(
          txn, text_of(env.event_as_ExclusiveActionValidated()->exclusive_session_id()),
          [&](json& s) { s["last_validated"] = at; });
    case schema::Event::ExclusiveLocked: {
      const auto* e = env.event_as_ExclusiveLocked();
      return update_session(txn, text_of(e->exclusive_session_id()),
                            [&](json& s) { end(s, at, "locked", text_of(e->reason())); });
    }
    case schema::Event::ExclusiveEnded: {
      const auto* e = env.event_as_ExclusiveEnded();
      return update_session(txn, text_of(e->exclusive_session_id()),
                            [&](json& s) { end(s, at, "ended", text_of(e->reason())); });
    }
    case schema::Event::ExclusiveDeviceRemoved: {
      const auto device = text_of(env.event_as_ExclusiveDeviceRemoved()->device_id());
      SECHEX_TRY(auto stored, txn.get(kExclusiveDevicesCf, device_key(user, device)));
      if (stored) {
        auto row = object_of(*stored);
        if (!row) return ledger::Errc::corruption;
        (*row)["state"] = "removed";
        (*row)["removed_at"] = at;
        txn.put(kExclusiveDevicesCf, device_key(user, device), row->dump());
      }
      SECHEX_TRY(auto sessions, txn.scan(kExclusiveByUserCf, codec::lp(user)));
      for (const auto& [key, value] : sessions) {
        const auto session = key.substr(codec::lp(user).size());
        SECHEX_TRYV(update_session(txn, session, [&](json& s) {
          if (s.value("device_id", "") == device) end(s, at, "ended", "device_removed");
        }));
      }
      return boost::outcome_v2::success();
    }
    default:
      return boost::outcome_v2::success();
  }
}

Result<std::optional<ChallengeRow>> live_challenge(const ProjectionStore& store,
                                                   std::string_view user, TimePoint now) {
  SECHEX_TRY(auto stored, store.get(kExclusiveChallengeCf, user));
  if (!stored) return std::optional<ChallengeRow>{};
  const auto j = object_of(*stored);
  if (!j) return ledger::Errc::corruption;
  ChallengeRow row;
  try {
    if (j->value("used", true) || micros_of(now) >= j->value("expires_at", std::int64_t{0})) {
      return std::optional<ChallengeRow>{};
    }
    row.expires_at = j->value("expires_at", std::int64_t{0});
    if (!ledger::from_hex(j->value("hash", ""), row.hash) ||
        !decode_sealed(*j, "sealed", j->value("event_id", ""), row.sealed)) {
      return ledger::Errc::corruption;
    }
  } catch (const json::exception&) {
    return ledger::Errc::corruption;
  }
  return std::optional<ChallengeRow>(std::move(row));
}

Result<std::vector<DeviceRow>> active_devices(const ProjectionStore& store, std::string_view user) {
  SECHEX_TRY(auto rows, store.scan(kExclusiveDevicesCf, codec::lp(user)));
  std::vector<DeviceRow> out;
  for (const auto& [key, value] : rows) {
    SECHEX_TRY(auto row, decode_device(value));
    if (row.active) out.push_back(std::move(row));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
  return out;
}

Result<std::optional<DeviceRow>> device_row(const ProjectionStore& store, std::string_view user,
                                            std::string_view device_id) {
  SECHEX_TRY(auto stored, store.get(kExclusiveDevicesCf, device_key(user, device_id)));
  if (!stored) return std::optional<DeviceRow>{};
  SECHEX_TRY(auto row, decode_device(*stored));
  return std::optional<DeviceRow>(std::move(row));
}

Result<std::optional<ExclusiveSessionRow>> exclusive_session(const ProjectionStore& store,
                                                             std::string_view id) {
  SECHEX_TRY(auto stored, store.get(kExclusiveSessionsCf, id));
  if (!stored) return std::optional<ExclusiveSessionRow>{};
  SECHEX_TRY(auto row, decode_session(id, *stored));
  return std::optional<ExclusiveSessionRow>(std::move(row));
}

Result<std::vector<ExclusiveSessionRow>> active_exclusive_sessions(const ProjectionStore& store,
                                                                   std::string_view user,
                                                                   TimePoint now) {
  SECHEX_TRY(auto index, store.scan(kExclusiveByUserCf, codec::lp(user)));
  std::vector<ExclusiveSessionRow> out;
  for (const auto& [key, value] : index) {
    SECHEX_TRY(auto row, exclusive_session(store, key.substr(codec::lp(user).size())));
    if (row && row->active_at(now)) out.push_back(std::move(*row));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.started_at > b.started_at; });
  return out;
}

}  // namespace sechex::projections
