#include "projections/outbox.h"

#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/crypto.h"
#include "ledger/utf8.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

using nlohmann::json;

std::string str_of(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

constexpr const char* kPending = "pending";
constexpr const char* kDelivered = "delivered";
constexpr const char* kFailed = "failed";

std::string due_key(std::int64_t at, std::string_view message_id) {
  return codec::be64(std::max<std::int64_t>(at, 0)) + std::string(message_id);
}

// When a stored entry stops being kept; INT64_MAX while pending or unreadable.
std::int64_t keep_until(const json& e) {
  const auto state = e.value("state", "");
  const auto done = e.value("done_at", std::int64_t{0});
  if (state == kDelivered) return done + kOutboxDeliveredKeepMicros;
  if (state == kFailed) return done + kOutboxFailedKeepMicros;
  return INT64_MAX;
}

// The live entry of `id` for `subject` at `at`: expired entries and other subjects' entries count
// as absent (projection.h; sessions.cc explains why other subjects' state is off limits).
Result<std::optional<json>> live_entry(Txn& txn, const std::string& id, std::string_view subject,
                                       std::int64_t at) {
  if (id.empty()) return std::optional<json>();
  SECHEX_TRY(auto stored, txn.get(kOutboxCf, id));
  if (!stored) return std::optional<json>();
  auto e = json::parse(*stored, nullptr, false);
  if (e.is_discarded() || !e.is_object()) return make_error_code(ledger::Errc::corruption);
  if (at >= keep_until(e) || e.value("subject", "") != subject) return std::optional<json>();
  return std::optional<json>(std::move(e));
}

Result<OutboxEntry> decode(std::string_view message_id, std::string_view value) {
  const auto e = json::parse(value, nullptr, false);
  if (e.is_discarded() || !e.is_object()) return make_error_code(ledger::Errc::corruption);
  OutboxEntry out;
  try {
    out.message_id = std::string(message_id);
    out.subject = e.value("subject", "");
    out.event_id_hex = e.value("event_id", "");
    out.kind = e.value("kind", "");
    out.locale = e.value("locale", "");
    for (auto [field, target] :
         {std::pair{"to_sealed", &out.to_sealed}, std::pair{"secret_sealed", &out.secret_sealed}}) {
      ledger::Bytes raw;
      if (!ledger::crypto::base64_decode(e.value(field, ""), raw)) {
        return make_error_code(ledger::Errc::corruption);
      }
      target->assign(raw.begin(), raw.end());
    }
    out.state = e.value("state", "");
    out.attempts = e.value("attempts", std::uint32_t{0});
    out.next_attempt_at = e.value("next_attempt_at", std::int64_t{0});
    out.last_error = e.value("last_error", "");
    out.queued_at = e.value("queued_at", std::int64_t{0});
    out.done_at = e.value("done_at", std::int64_t{0});
  } catch (const json::exception&) {  // a field of the wrong type
    return make_error_code(ledger::Errc::corruption);
  }
  return out;
}

Result<void> queue(Txn& txn, const schema::Envelope& env, const schema::MailQueued& e) {
  const auto id = str_of(e.message_id());
  const auto subject = env.subject()->string_view();
  const auto at = env.time_micros();
  SECHEX_TRY(auto existing, live_entry(txn, id, subject, at));
  if (id.empty() || existing) return boost::outcome_v2::success();  // idempotent
  const auto* eid = env.event_id()->bytes();
  const json entry{{"subject", std::string(subject)},
                   {"event_id", ledger::to_hex(ledger::ByteView(eid->data(), eid->size()))},
                   {"kind", str_of(e.kind())},
                   {"locale", str_of(e.locale())},
                   {"to_sealed", codec::b64_of(e.to_sealed())},
                   {"secret_sealed", codec::b64_of(e.secret_sealed())},
                   {"state", kPending},
                   {"attempts", 0},
                   {"next_attempt_at", at},
                   {"last_error", ""},
                   {"queued_at", at},
                   {"done_at", 0}};
  txn.put(kOutboxCf, id, ledger::json_text(entry));
  txn.put(kOutboxDueCf, due_key(at, id), "");
  return boost::outcome_v2::success();
}

// Applies an outcome to a pending entry: `update` changes the JSON; the due index follows.
template <typename Update>
Result<void> outcome(Txn& txn, const schema::Envelope& env, const std::string& id,
                     Update&& update) {
  const auto at = env.time_micros();
  SECHEX_TRY(auto e, live_entry(txn, id, env.subject()->string_view(), at));
  if (!e || e->value("state", "") != kPending) return boost::outcome_v2::success();
  txn.del(kOutboxDueCf, due_key(e->value("next_attempt_at", std::int64_t{0}), id));
  update(*e, at);
  if ((*e)["state"] == kPending) {
    txn.put(kOutboxDueCf, due_key(e->value("next_attempt_at", std::int64_t{0}), id), "");
  }
  txn.put(kOutboxCf, id, ledger::json_text(*e));
  return boost::outcome_v2::success();
}

}  // namespace

bool OutboxProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                               std::int64_t now_micros) const {
  if (cf != kOutboxCf) return false;
  const auto e = json::parse(value, nullptr, false);
  if (e.is_discarded() || !e.is_object()) return false;
  try {
    return now_micros >= keep_until(e);
  } catch (const json::exception&) {
    return false;  // unreadable values are never expired
  }
}

Result<void> OutboxProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                     Txn& txn) {
  try {
    switch (env.event_type()) {
      case schema::Event::MailQueued:
        return queue(txn, env, *env.event_as_MailQueued());
      case schema::Event::MailDelivered: {
        const auto* d = env.event_as_MailDelivered();
        return outcome(txn, env, str_of(d->message_id()), [&](json& e, std::int64_t at) {
          e["state"] = kDelivered;
          e["attempts"] = d->attempts();
          e["done_at"] = at;
        });
      }
      case schema::Event::MailDeliveryFailed: {
        const auto* f = env.event_as_MailDeliveryFailed();
        return outcome(txn, env, str_of(f->message_id()), [&](json& e, std::int64_t at) {
          e["attempts"] = f->attempt();
          e["last_error"] = str_of(f->error());
          if (f->final()) {
            e["state"] = kFailed;
            e["done_at"] = at;
          } else {
            e["next_attempt_at"] = f->next_attempt_at();
          }
        });
      }
      default:
        return boost::outcome_v2::success();
    }
  } catch (const json::exception&) {  // a stored field of the wrong type
    return make_error_code(ledger::Errc::corruption);
  }
}

Result<std::vector<OutboxEntry>> due_mails(const ProjectionStore& store, std::int64_t now_micros,
                                           std::size_t max,
                                           const std::function<bool(const OutboxEntry&)>& want) {
  std::vector<OutboxEntry> out;
  std::error_code failed;
  SECHEX_TRYV(
      store.for_each(kOutboxDueCf, "", "", [&](std::string_view key, std::string_view) -> bool {
        if (out.size() >= max) return false;
        if (key.size() <= 8) return true;  // not a key this projection writes
        if (codec::get_be64(key) > now_micros) return false;
        const auto id = key.substr(8);
        auto stored = store.get(kOutboxCf, id);
        if (!stored) {
          failed = stored.error();
          return false;
        }
        if (!stored.value()) return true;
        auto entry = decode(id, *stored.value());
        if (!entry) {
          failed = entry.error();
          return false;
        }
        if (entry.value().state == kPending && (!want || want(entry.value()))) {
          out.push_back(std::move(entry).value());
        }
        return true;
      }));
  if (failed) return failed;
  return out;
}

Result<std::optional<OutboxEntry>> mail_state(const ProjectionStore& store,
                                              std::string_view message_id) {
  SECHEX_TRY(auto stored, store.get(kOutboxCf, message_id));
  if (!stored) return std::optional<OutboxEntry>();
  SECHEX_TRY(auto entry, decode(message_id, *stored));
  return std::optional<OutboxEntry>(std::move(entry));
}

Result<std::vector<OutboxEntry>> failed_mails(const ProjectionStore& store, std::size_t max) {
  std::vector<OutboxEntry> out;
  std::error_code failed;
  SECHEX_TRYV(store.for_each(kOutboxCf, "", "", [&](std::string_view key, std::string_view value) {
    if (out.size() >= max) return false;
    auto entry = decode(key, value);
    if (!entry) {
      failed = entry.error();
      return false;
    }
    if (entry.value().state == kFailed) out.push_back(std::move(entry).value());
    return true;
  }));
  if (failed) return failed;
  return out;
}

}  // namespace sechex::projections
