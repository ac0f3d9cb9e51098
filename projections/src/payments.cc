#include "projections/payments.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/utf8.h"
#include "projections/store.h"

namespace sechex::projections {

namespace {

using json = nlohmann::json;

std::optional<json> object_of(std::string_view value) {
  auto j = json::parse(value, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

std::string text_of(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

std::string time_key(std::string_view owner, std::int64_t created_at, std::string_view id) {
  auto k = codec::lp(owner);
  codec::put_be64(k, std::numeric_limits<std::int64_t>::max() - created_at);
  k.append(id);
  return k;
}

std::string bytes_key(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? "" : std::string(reinterpret_cast<const char*>(v->data()), v->size());
}

Result<PaymentRow> row_of(std::string_view stored) {
  const auto j = object_of(stored);
  if (!j) return ledger::Errc::corruption;
  PaymentRow r;
  r.id = j->value("id", "");
  r.amount = j->value("amount", std::int64_t{0});
  r.currency = j->value("currency", "");
  r.status = j->value("status", "");
  r.created_at = j->value("created_at", std::int64_t{0});
  r.updated_at = j->value("updated_at", std::int64_t{0});
  const auto event_id = j->value("event_id", "");
  if (!codec::decode_sealed(j->value("description_sealed", ""), event_id, r.description) ||
      !codec::decode_sealed(j->value("metadata_sealed", ""), event_id, r.metadata)) {
    return ledger::Errc::corruption;
  }
  if (const auto h = j->find("history"); h != j->end() && h->is_array()) {
    for (const auto& c : *h) {
      if (!c.is_object()) return ledger::Errc::corruption;
      r.history.push_back(
          {c.value("status", ""), c.value("at", std::int64_t{0}), c.value("webhook_id", "")});
    }
  }
  return r;
}

Result<void> created(const schema::Envelope& env, Txn& txn) {
  const auto* e = env.event_as_PaymentCreated();
  const auto id = text_of(e->payment_id());
  if (id.empty()) return boost::outcome_v2::success();
  SECHEX_TRY(auto known, txn.get(kPaymentsOwnerCf, id));
  if (known) return boost::outcome_v2::success();
  const auto owner = env.subject()->string_view();
  const auto at = env.time_micros();
  const auto* eid = env.event_id()->bytes();
  const json row{
      {"id", id},
      {"amount", e->amount_minor()},
      {"currency", text_of(e->currency())},
      {"status", "pending"},
      {"created_at", at},
      {"updated_at", at},
      {"description_sealed", codec::b64_of(e->description_sealed())},
      {"metadata_sealed", codec::b64_of(e->metadata_sealed())},
      {"event_id", ledger::to_hex(ledger::ByteView(eid->data(), eid->size()))},
      {"history", json::array({{{"status", "pending"}, {"at", at}, {"webhook_id", ""}}})}};
  txn.put(kPaymentsCf, codec::lp(owner) + id, ledger::json_text(row));
  txn.put(kPaymentsByTimeCf, time_key(owner, at, id), "");
  txn.put(kPaymentsOwnerCf, id, owner);
  if (const auto key = bytes_key(e->idempotency_key_hash()); !key.empty()) {
    txn.put(kPaymentsByIdempotencyCf, codec::lp(owner) + key,
            ledger::json_text(json{{"payment_id", id},
                                   {"request_hash", codec::hex_of(e->request_hash())},
                                   {"expires_at", at + kIdempotencyWindowMicros}}));
  }
  return boost::outcome_v2::success();
}

Result<void> status_changed(const schema::Envelope& env, Txn& txn) {
  const auto* e = env.event_as_PaymentStatusChanged();
  const auto key = codec::lp(env.subject()->string_view()) + text_of(e->payment_id());
  SECHEX_TRY(auto stored, txn.get(kPaymentsCf, key));
  if (!stored) return boost::outcome_v2::success();  // not this subject's payment
  auto row = object_of(*stored);
  if (!row) return ledger::Errc::corruption;
  const auto status = text_of(e->status());
  (*row)["status"] = status;
  (*row)["updated_at"] = env.time_micros();
  (*row)["history"].push_back(json{{"status", status},
                                   {"at", env.time_micros()},
                                   {"webhook_id", text_of(e->provider_event_id())}});
  txn.put(kPaymentsCf, key, ledger::json_text(*row));
  return boost::outcome_v2::success();
}

}  // namespace

bool PaymentsProjection::expired(std::string_view, std::string_view, std::string_view value,
                                 std::int64_t now_micros) const {
  const auto j = object_of(value);
  if (!j || !(*j)["expires_at"].is_number_integer()) return false;  // keep what cannot be read
  return now_micros >= (*j)["expires_at"].get<std::int64_t>();
}

Result<void> PaymentsProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                       Txn& txn) {
  switch (env.event_type()) {
    case schema::Event::PaymentCreated:
      return created(env, txn);
    case schema::Event::PaymentStatusChanged:
      return status_changed(env, txn);
    case schema::Event::WebhookReceived: {
      const auto* e = env.event_as_WebhookReceived();
      const auto id = text_of(e->provider_event_id());
      if (id.empty()) return boost::outcome_v2::success();
      txn.put(kPaymentWebhooksCf, codec::lp(text_of(e->provider())) + id,
              ledger::json_text(json{{"payment_id", text_of(e->payment_id())},
                                     {"expires_at", env.time_micros() + kWebhookDedupeMicros}}));
      return boost::outcome_v2::success();
    }
    default:
      return boost::outcome_v2::success();
  }
}

Result<std::optional<PaymentRow>> payment(const ProjectionStore& store, std::string_view owner,
                                          std::string_view id) {
  SECHEX_TRY(auto stored, store.get(kPaymentsCf, codec::lp(owner) + std::string(id)));
  if (!stored) return std::optional<PaymentRow>{};
  SECHEX_TRY(auto row, row_of(*stored));
  return std::optional<PaymentRow>(std::move(row));
}

Result<PaymentPage> payments_page(const ProjectionStore& store, std::string_view owner,
                                  std::string_view status, std::string_view cursor,
                                  std::size_t limit) {
  const auto prefix = codec::lp(owner);
  std::string start = prefix;
  if (!cursor.empty()) {
    // The cursor is the hex of the last index entry's key after the owner's prefix.
    ledger::Bytes after;
    if (!ledger::from_hex(cursor, after) || after.size() <= 8)
      return ledger::Errc::invalid_argument;
    start.append(reinterpret_cast<const char*>(after.data()), after.size());
    start.push_back('\0');
  }
  PaymentPage page;
  std::size_t scanned = 0;
  std::string last;
  bool more = false;
  Result<void> failed = boost::outcome_v2::success();
  SECHEX_TRYV(
      store.for_each(kPaymentsByTimeCf, prefix, start, [&](std::string_view key, std::string_view) {
        if (page.rows.size() == limit || scanned == kMaxPaymentScan) {
          more = true;
          return false;
        }
        ++scanned;
        last = std::string(key.substr(prefix.size()));
        auto got = payment(store, owner, last.substr(8));
        if (!got) {
          failed = got.error();
          return false;
        }
        if (got.value() && (status.empty() || got.value()->status == status)) {
          page.rows.push_back(std::move(*got.value()));
        }
        return true;
      }));
  SECHEX_TRYV(failed);
  if (more) page.next_cursor = ledger::to_hex(ledger::as_bytes(last));
  return page;
}

Result<std::optional<IdempotentPayment>> idempotent_payment(const ProjectionStore& store,
                                                            std::string_view owner,
                                                            std::string_view key_hash,
                                                            std::int64_t now_micros) {
  SECHEX_TRY(auto stored,
             store.get(kPaymentsByIdempotencyCf, codec::lp(owner) + std::string(key_hash)));
  if (!stored) return std::optional<IdempotentPayment>{};
  const auto j = object_of(*stored);
  if (!j) return ledger::Errc::corruption;
  IdempotentPayment p{j->value("payment_id", ""), j->value("request_hash", ""),
                      j->value("expires_at", std::int64_t{0})};
  if (now_micros >= p.expires_at) return std::optional<IdempotentPayment>{};
  return std::optional<IdempotentPayment>(std::move(p));
}

Result<std::optional<std::string>> payment_owner(const ProjectionStore& store,
                                                 std::string_view id) {
  return store.get(kPaymentsOwnerCf, id);
}

Result<bool> webhook_seen(const ProjectionStore& store, std::string_view provider,
                          std::string_view id, std::int64_t now_micros) {
  SECHEX_TRY(auto stored, store.get(kPaymentWebhooksCf, codec::lp(provider) + std::string(id)));
  if (!stored) return false;
  const auto j = object_of(*stored);
  if (!j) return ledger::Errc::corruption;
  return now_micros < j->value("expires_at", std::int64_t{0});
}

}  // namespace sechex::projections
