#include "projections/webhooks.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/utf8.h"
#include "projections/store.h"

namespace sechex::projections {

namespace {

using json = nlohmann::json;

constexpr const char* kPending = "pending";
constexpr const char* kDelivered = "delivered";
constexpr const char* kFailed = "failed";

std::optional<json> object_of(std::string_view value) {
  auto j = json::parse(value, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

std::string text_of(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

std::string due_key(std::int64_t at, std::string_view id) {
  auto k = codec::be64(at);
  k.append(id);
  return k;
}
std::string time_key(std::int64_t queued_at, std::string_view id) {
  return due_key(std::numeric_limits<std::int64_t>::max() - queued_at, id);
}

// When an ended delivery's entries go (kept 7 days once delivered, 30 once failed).
std::int64_t kept_until(const json& d) {
  const auto state = d.value("state", "");
  const auto done = d.value("done_at", std::int64_t{0});
  if (state == kDelivered) return done + kWebhookDeliveredKeepMicros;
  if (state == kFailed) return done + kWebhookFailedKeepMicros;
  return 0;
}

Result<WebhookDelivery> delivery_of(std::string_view id, std::string_view stored) {
  const auto j = object_of(stored);
  if (!j) return ledger::Errc::corruption;
  WebhookDelivery d;
  d.id = std::string(id);
  d.subject = j->value("subject", "");
  d.endpoint_id = j->value("endpoint_id", "");
  d.event_type = j->value("event_type", "");
  d.payload = j->value("payload", "");
  d.state = j->value("state", "");
  d.attempts = j->value("attempts", std::uint32_t{0});
  d.next_attempt_at = j->value("next_attempt_at", std::int64_t{0});
  d.last_error = j->value("last_error", "");
  d.last_status = j->value("last_status", std::uint32_t{0});
  d.queued_at = j->value("queued_at", std::int64_t{0});
  d.done_at = j->value("done_at", std::int64_t{0});
  d.manual = j->value("manual", false);
  return d;
}

Result<WebhookEndpoint> endpoint_of(std::string_view id, std::string_view stored) {
  const auto j = object_of(stored);
  if (!j) return ledger::Errc::corruption;
  WebhookEndpoint e;
  e.id = std::string(id);
  e.url = j->value("url", "");
  if (const auto ev = j->find("events"); ev != j->end() && ev->is_array()) {
    for (const auto& t : *ev) {
      if (t.is_string()) e.events.push_back(t.get<std::string>());
    }
  }
  if (!codec::decode_sealed(j->value("secret_sealed", ""), j->value("event_id", ""), e.secret)) {
    return ledger::Errc::corruption;
  }
  e.enabled = j->value("enabled", false);
  e.disabled_reason = j->value("disabled_reason", "");
  e.created_at = j->value("created_at", std::int64_t{0});
  return e;
}

// The pending delivery `id` of `subject` as stored, or nullopt (unknown, another subject's,
// ended, or expired at `at`: treated as absent, projection.h).
Result<std::optional<json>> pending(Txn& txn, std::string_view subject, std::string_view id) {
  SECHEX_TRY(auto stored, txn.get(kWebhookDeliveriesCf, id));
  if (!stored) return std::optional<json>{};
  auto d = object_of(*stored);
  if (!d) return boost::outcome_v2::failure(make_error_code(ledger::Errc::corruption));
  if (d->value("subject", "") != subject || d->value("state", "") != kPending) {
    return std::optional<json>{};
  }
  return d;
}

void store_delivery(Txn& txn, std::string_view id, const json& d) {
  txn.put(kWebhookDeliveriesCf, id, ledger::json_text(d));
  txn.put(kWebhookByTimeCf, time_key(d.value("queued_at", std::int64_t{0}), id),
          codec::be64(kept_until(d)));
}

}  // namespace

bool WebhooksProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                                 std::int64_t now_micros) const {
  if (cf == kWebhookByTimeCf) {
    if (value.size() != 8) return false;
    const auto until = codec::get_be64(value);
    return until != 0 && now_micros >= until;
  }
  const auto d = object_of(value);
  if (!d) return false;  // keep what cannot be read
  const auto until = kept_until(*d);
  return until != 0 && now_micros >= until;
}

Result<void> WebhooksProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                       Txn& txn) {
  const auto subject = env.subject()->string_view();
  const auto at = env.time_micros();
  switch (env.event_type()) {
    case schema::Event::WebhookEndpointRegistered: {
      const auto* e = env.event_as_WebhookEndpointRegistered();
      const auto id = text_of(e->endpoint_id());
      if (id.empty() || id != subject) return boost::outcome_v2::success();
      SECHEX_TRY(auto known, txn.get(kWebhookEndpointsCf, id));
      if (known) return boost::outcome_v2::success();
      json events = json::array();
      const auto list = text_of(e->events());
      for (std::size_t from = 0; from < list.size();) {
        const auto comma = std::min(list.find(',', from), list.size());
        if (comma > from) events.push_back(list.substr(from, comma - from));
        from = comma + 1;
      }
      const auto* eid = env.event_id()->bytes();
      txn.put(kWebhookEndpointsCf, id,
              ledger::json_text(
                  json{{"url", text_of(e->url())},
                       {"events", events},
                       {"secret_sealed", codec::b64_of(e->secret_sealed())},
                       {"event_id", ledger::to_hex(ledger::ByteView(eid->data(), eid->size()))},
                       {"enabled", true},
                       {"disabled_reason", ""},
                       {"created_at", at}}));
      return boost::outcome_v2::success();
    }
    case schema::Event::WebhookEndpointDisabled: {
      const auto* e = env.event_as_WebhookEndpointDisabled();
      const auto id = text_of(e->endpoint_id());
      if (id != subject) return boost::outcome_v2::success();
      SECHEX_TRY(auto stored, txn.get(kWebhookEndpointsCf, id));
      if (!stored) return boost::outcome_v2::success();
      auto j = object_of(*stored);
      if (!j) return ledger::Errc::corruption;
      (*j)["enabled"] = false;
      (*j)["disabled_reason"] = text_of(e->reason());
      txn.put(kWebhookEndpointsCf, id, ledger::json_text(*j));
      return boost::outcome_v2::success();
    }
    case schema::Event::WebhookDeliveryQueued: {
      const auto* e = env.event_as_WebhookDeliveryQueued();
      const auto id = text_of(e->delivery_id());
      if (id.empty()) return boost::outcome_v2::success();
      SECHEX_TRY(auto known, txn.get(kWebhookDeliveriesCf, id));
      if (known) return boost::outcome_v2::success();
      store_delivery(txn, id,
                     json{{"subject", subject},
                          {"endpoint_id", text_of(e->endpoint_id())},
                          {"event_type", text_of(e->event_type())},
                          {"payload", text_of(e->payload_json())},
                          {"state", kPending},
                          {"attempts", 0},
                          {"next_attempt_at", at},
                          {"last_error", ""},
                          {"last_status", 0},
                          {"queued_at", at},
                          {"done_at", 0},
                          {"manual", false}});
      txn.put(kWebhookDueCf, due_key(at, id), "");
      return boost::outcome_v2::success();
    }
    case schema::Event::WebhookDelivered:
    case schema::Event::WebhookDeliveryFailed: {
      const bool ok = env.event_type() == schema::Event::WebhookDelivered;
      const auto id = ok ? text_of(env.event_as_WebhookDelivered()->delivery_id())
                         : text_of(env.event_as_WebhookDeliveryFailed()->delivery_id());
      SECHEX_TRY(auto d, pending(txn, subject, id));
      if (!d) return boost::outcome_v2::success();
      txn.del(kWebhookDueCf, due_key(d->value("next_attempt_at", std::int64_t{0}), id));
      if (ok) {
        const auto* e = env.event_as_WebhookDelivered();
        (*d)["state"] = kDelivered;
        (*d)["attempts"] = e->attempt();
        (*d)["last_status"] = e->status_code();
        (*d)["last_error"] = "";
        (*d)["done_at"] = at;
      } else {
        const auto* e = env.event_as_WebhookDeliveryFailed();
        (*d)["attempts"] = e->attempt();
        (*d)["last_status"] = e->status_code();
        (*d)["last_error"] = text_of(e->error());
        if (e->final()) {
          (*d)["state"] = kFailed;
          (*d)["done_at"] = at;
        } else {
          (*d)["next_attempt_at"] = e->next_attempt_at();
          txn.put(kWebhookDueCf, due_key(e->next_attempt_at(), id), "");
        }
      }
      store_delivery(txn, id, *d);
      return boost::outcome_v2::success();
    }
    case schema::Event::WebhookDeliveryRetried: {
      const auto id = text_of(env.event_as_WebhookDeliveryRetried()->delivery_id());
      SECHEX_TRY(auto stored, txn.get(kWebhookDeliveriesCf, id));
      if (!stored) return boost::outcome_v2::success();
      auto d = object_of(*stored);
      if (!d) return ledger::Errc::corruption;
      // An entry already expired at the event's time is absent (projection.h).
      const auto until = kept_until(*d);
      if (d->value("subject", "") != subject || d->value("state", "") != kFailed ||
          (until != 0 && at >= until)) {
        return boost::outcome_v2::success();
      }
      (*d)["state"] = kPending;
      (*d)["next_attempt_at"] = at;
      (*d)["done_at"] = 0;
      (*d)["manual"] = true;
      store_delivery(txn, id, *d);
      txn.put(kWebhookDueCf, due_key(at, id), "");
      return boost::outcome_v2::success();
    }
    default:
      return boost::outcome_v2::success();
  }
}

Result<std::vector<WebhookEndpoint>> webhook_endpoints(const ProjectionStore& store) {
  SECHEX_TRY(const auto rows, store.scan(kWebhookEndpointsCf, ""));
  std::vector<WebhookEndpoint> out;
  for (const auto& [id, value] : rows) {
    SECHEX_TRY(auto e, endpoint_of(id, value));
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::optional<WebhookEndpoint>> webhook_endpoint(const ProjectionStore& store,
                                                        std::string_view id) {
  SECHEX_TRY(const auto stored, store.get(kWebhookEndpointsCf, id));
  if (!stored) return std::optional<WebhookEndpoint>{};
  SECHEX_TRY(auto e, endpoint_of(id, *stored));
  return std::optional<WebhookEndpoint>(std::move(e));
}

Result<std::optional<WebhookDelivery>> webhook_delivery(const ProjectionStore& store,
                                                        std::string_view id) {
  SECHEX_TRY(const auto stored, store.get(kWebhookDeliveriesCf, id));
  if (!stored) return std::optional<WebhookDelivery>{};
  SECHEX_TRY(auto d, delivery_of(id, *stored));
  return std::optional<WebhookDelivery>(std::move(d));
}

Result<std::vector<WebhookDelivery>> due_webhook_deliveries(
    const ProjectionStore& store, std::int64_t now_micros, std::size_t max,
    const std::function<bool(const WebhookDelivery&)>& want) {
  std::vector<WebhookDelivery> out;
  std::error_code failed;
  SECHEX_TRYV(store.for_each(kWebhookDueCf, "", "", [&](std::string_view key, std::string_view) {
    if (out.size() >= max || key.size() <= 8) return out.size() < max;
    if (codec::get_be64(key) > now_micros) return false;
    auto d = webhook_delivery(store, key.substr(8));
    if (!d) {
      failed = d.error();
      return false;
    }
    if (d.value() && d.value()->state == kPending && (!want || want(*d.value()))) {
      out.push_back(std::move(*d.value()));
    }
    return true;
  }));
  if (failed) return failed;
  return out;
}

Result<WebhookDeliveryPage> webhook_deliveries_page(const ProjectionStore& store,
                                                    std::string_view state, std::string_view cursor,
                                                    std::size_t limit) {
  std::string start;
  if (!cursor.empty()) {
    ledger::Bytes after;
    if (!ledger::from_hex(cursor, after) || after.size() <= 8)
      return ledger::Errc::invalid_argument;
    start.assign(reinterpret_cast<const char*>(after.data()), after.size());
    start.push_back('\0');
  }
  WebhookDeliveryPage page;
  std::size_t scanned = 0;
  std::string last;
  bool more = false;
  std::error_code failed;
  SECHEX_TRYV(
      store.for_each(kWebhookByTimeCf, "", start, [&](std::string_view key, std::string_view) {
        if (page.deliveries.size() == limit || scanned == 1000) {
          more = true;
          return false;
        }
        ++scanned;
        last = std::string(key);
        if (key.size() <= 8) return true;
        auto d = webhook_delivery(store, key.substr(8));
        if (!d) {
          failed = d.error();
          return false;
        }
        if (d.value() && (state.empty() || d.value()->state == state)) {
          page.deliveries.push_back(std::move(*d.value()));
        }
        return true;
      }));
  if (failed) return failed;
  if (more) page.next_cursor = ledger::to_hex(ledger::as_bytes(last));
  return page;
}

}  // namespace sechex::projections
