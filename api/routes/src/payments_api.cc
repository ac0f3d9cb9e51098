#include "api/routes/payments_api.h"

#include <algorithm>
#include <charconv>

#include "api/http/query.h"
#include "api/net/http_client.h"
#include "identity_support.h"
#include "ledger/time_format.h"

namespace sechex::api {

using namespace identity_support;

namespace {

// The top-level object is depth 1, so `metadata` (an object of depth <= 2, API.md) fits in 3.
constexpr JsonLimits kPaymentBody{3, 4096, 100};
constexpr JsonLimits kWebhookBody{4, 4096, 100};
constexpr std::size_t kDefaultPageSize = 20;
constexpr std::size_t kMaxPageSize = 100;

ApiError bad_field(const char* field, std::string_view reason, std::string_view message) {
  return invalid_request(reason, message, json{{"field", field}});
}

ApiResult<identity::PaymentRequest> payment_request(const Request& req) {
  identity::PaymentRequest out;
  if (req.repeated("idempotency-key")) {
    return invalid_request("repeated_header", "send exactly one Idempotency-Key header",
                           json{{"header", "Idempotency-Key"}});
  }
  const auto* key = req.header("idempotency-key");
  if (key == nullptr || key->empty()) {
    return ApiError{400, "idempotency_key_required",
                    "send an Idempotency-Key header (1 to 255 printable characters) so that a "
                    "retried request cannot pay twice"};
  }
  if (!identity::valid_idempotency_key(*key)) {
    return invalid_request("invalid_idempotency_key",
                           "Idempotency-Key must be 1 to 255 printable ASCII characters");
  }
  out.idempotency_key = *key;
  SECHEX_TRY(auto body, read_body(req, kPaymentBody));
  for (const auto& [name, value] : body.items()) {
    if (name != "amount" && name != "currency" && name != "description" && name != "metadata") {
      return invalid_request("unknown_field", "unknown field `" + name.substr(0, 64) + "`",
                             json{{"field", name.substr(0, 64)}});
    }
  }
  const auto amount = body.find("amount");
  if (amount == body.end()) return missing("amount");
  // A float (10.0, 1e3) is refused rather than truncated: amounts are integers of minor units.
  if (!amount->is_number_integer() ||
      (amount->is_number_unsigned()
           ? amount->get<std::uint64_t>() > static_cast<std::uint64_t>(identity::kMaxPaymentAmount)
           : amount->get<std::int64_t>() < 1)) {
    return bad_field("amount", "invalid_amount",
                     "amount must be a positive integer of the currency's minor units, at most "
                     "9007199254740991");
  }
  out.amount = amount->get<std::int64_t>();
  if (out.amount < 1) {
    return bad_field("amount", "invalid_amount", "amount must be a positive integer");
  }
  SECHEX_TRY(out.currency, required_string(body, "currency"));
  if (!identity::currency(out.currency)) {
    return bad_field("currency", "unknown_currency",
                     "currency must be an active ISO 4217 code in upper case, e.g. EUR");
  }
  if (const auto d = body.find("description"); d != body.end() && !d->is_null()) {
    if (!d->is_string()) return bad_field("description", "wrong_type", "description is a string");
    out.description = d->get<std::string>();
  }
  if (const auto m = body.find("metadata"); m != body.end() && !m->is_null()) {
    if (!m->is_object()) return bad_field("metadata", "wrong_type", "metadata is an object");
    if (json_depth(*m) > 2) {
      return bad_field("metadata", "too_deep", "metadata may nest at most 2 levels");
    }
    out.metadata_json = m->dump();
  }
  // What "the same body" compares: the fields as parsed (keys sorted), so spacing and key order
  // do not make a retry look like another request.
  out.canonical_body =
      json{{"amount", out.amount},
           {"currency", out.currency},
           {"description", out.description ? json(*out.description) : json()},
           {"metadata", out.metadata_json ? json::parse(*out.metadata_json) : json()}}
          .dump();
  return out;
}

json payment_json(const identity::Payment& p) {
  json history = json::array();
  for (const auto& c : p.row.history) {
    history.push_back(json{{"status", c.status}, {"at", format_rfc3339(c.at)}});
  }
  json metadata;
  if (p.metadata_json) {
    metadata = json::parse(*p.metadata_json, nullptr, false);
    if (metadata.is_discarded()) metadata = nullptr;
  }
  return json{{"id", p.row.id},
              {"amount", p.row.amount},
              {"currency", p.row.currency},
              {"description", p.description ? json(*p.description) : json()},
              {"metadata", metadata},
              {"status", p.row.status},
              {"createdAt", format_rfc3339(p.row.created_at)},
              {"updatedAt", format_rfc3339(p.row.updated_at)},
              {"history", history}};
}

ApiError bad_signature(webhooks::SignatureErrc why) {
  return ApiError{401, "invalid_signature",
                  "the webhook signature does not verify: " + make_error_code(why).message(),
                  json{{"reason", webhooks::reason(why)}}};
}

json endpoint_json(const projections::WebhookEndpoint& e) {
  return json{{"id", e.id},
              {"url", e.url},
              {"events", e.events},
              {"enabled", e.enabled},
              {"disabledReason", e.disabled_reason.empty() ? json() : json(e.disabled_reason)},
              {"createdAt", format_rfc3339(e.created_at)}};
}

json delivery_json(const projections::WebhookDelivery& d) {
  const bool pending = d.state == "pending";
  return json{{"id", d.id},
              {"endpointId", d.endpoint_id},
              {"type", d.event_type},
              {"status", d.state},
              {"attempts", d.attempts},
              {"lastStatusCode", d.last_status == 0 ? json() : json(d.last_status)},
              {"lastError", d.last_error.empty() ? json() : json(d.last_error)},
              {"queuedAt", format_rfc3339(d.queued_at)},
              {"nextAttemptAt", pending ? json(format_rfc3339(d.next_attempt_at)) : json()},
              {"finishedAt", pending ? json() : json(format_rfc3339(d.done_at))}};
}

// ?status&cursor&limit of the list routes; `statuses` are the values status may take.
struct PageQuery {
  std::string status, cursor;
  std::size_t limit = kDefaultPageSize;
};
ApiResult<PageQuery> page_query(const Request& req, const std::vector<std::string_view>& statuses) {
  const auto q = parse_query(req.query);
  if (!q) return invalid_request("invalid_parameter", "malformed or repeated query parameter");
  PageQuery out;
  for (const auto& [k, v] : *q) {
    if (k == "status") {
      if (std::find(statuses.begin(), statuses.end(), v) == statuses.end()) {
        std::string allowed;
        for (const auto s : statuses) allowed += (allowed.empty() ? "" : ", ") + std::string(s);
        return invalid_request("invalid_parameter", "status is one of " + allowed,
                               json{{"parameter", "status"}});
      }
      out.status = v;
    } else if (k == "cursor") {
      out.cursor = v;
    } else if (k == "limit") {
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out.limit);
      if (ec != std::errc() || end != v.data() + v.size() || out.limit < 1 ||
          out.limit > kMaxPageSize) {
        return invalid_request("invalid_parameter", "limit must be 1..100",
                               json{{"parameter", "limit"}});
      }
    } else {
      return invalid_request("invalid_parameter", "unknown parameter",
                             json{{"parameter", k.substr(0, 64)}});
    }
  }
  return out;
}

}  // namespace

PaymentsApi::PaymentsApi(IdentityDeps deps, IdentityConfig config, PaymentsConfig payments,
                         identity::PaymentCommands& commands)
    : d_(std::move(deps)),
      config_(std::move(config)),
      payments_(std::move(payments)),
      commands_(commands) {}

void PaymentsApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.guarded(
      "POST", "/v1/payments", [this](const Request& r, W w) { return create(r, w); }, Exec::pool);
  routes.guarded(
      "GET", "/v1/payments", [this](const Request& r, W w) { return list(r, w); }, Exec::read);
  routes.guarded(
      "GET", "/v1/payments/{id}", [this](const Request& r, W w) { return get(r, w); }, Exec::read);
  routes.open(
      "POST", "/v1/webhooks/payments", [this](const Request& r) { return webhook(r); }, Exec::pool);
  routes.guarded(
      "POST", "/v1/admin/webhooks/endpoints",
      [this](const Request& r, W w) { return register_endpoint(r, w); }, Exec::pool);
  routes.guarded(
      "GET", "/v1/admin/webhooks/endpoints",
      [this](const Request& r, W w) { return list_endpoints(r, w); }, Exec::read);
  routes.guarded(
      "GET", "/v1/admin/webhooks/deliveries",
      [this](const Request& r, W w) { return list_deliveries(r, w); }, Exec::read);
  routes.guarded(
      "POST", "/v1/admin/webhooks/deliveries/{id}/retry",
      [this](const Request& r, W w) { return retry_delivery(r, w); }, Exec::pool);
}

Response PaymentsApi::create(const Request& req, const Principal& caller) {
  SECHEX_TRY(const auto request, payment_request(req));
  SECHEX_TRY(const auto created, answered(commands_.create(caller_of(d_, config_, req),
                                                           UserId(caller.subject), request)));
  auto r = json_ok(payment_json(created.payment).dump(), created.replayed ? 200 : 201);
  if (created.replayed) r.headers.emplace_back("Idempotent-Replayed", "true");
  return r;
}

Response PaymentsApi::list(const Request& req, const Principal& caller) {
  SECHEX_TRY(const auto q, page_query(req, {"pending", "succeeded", "failed", "refunded"}));
  const auto& [status, cursor, limit] = q;
  SECHEX_TRY(const auto page,
             answered(commands_.list(UserId(caller.subject), status, cursor, limit)));
  json payments = json::array();
  for (const auto& p : page.payments) payments.push_back(payment_json(p));
  return json_ok(json{{"payments", payments},
                      {"nextCursor", page.next_cursor.empty() ? json() : json(page.next_cursor)}}
                     .dump());
}

Response PaymentsApi::get(const Request& req, const Principal& caller) {
  SECHEX_TRY(const auto p, answered(commands_.get(UserId(caller.subject), req.params.at("id"))));
  return json_ok(payment_json(p).dump());
}

Response PaymentsApi::webhook(const Request& req) {
  if (!payments_.provider_secret) {
    return ApiError{503, "unavailable", "payment webhooks are not configured on this server",
                    json{{"reason", "not_configured"}}};
  }
  for (const char* h : {"webhook-id", "webhook-timestamp", "webhook-signature"}) {
    if (req.repeated(h)) return bad_signature(webhooks::SignatureErrc::missing_header);
  }
  const auto header = [&](const char* name) {
    const auto* v = req.header(name);
    return v == nullptr ? std::string_view() : std::string_view(*v);
  };
  const webhooks::Message m{header("webhook-id"), header("webhook-timestamp"),
                            header("webhook-signature"), req.body};
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(d_.clock.now().time_since_epoch()).count();
  if (auto ok = webhooks::verify(*payments_.provider_secret, m, now); !ok) {
    return bad_signature(static_cast<webhooks::SignatureErrc>(ok.error().value()));
  }
  SECHEX_TRY(const auto body, read_body(req, kWebhookBody));
  SECHEX_TRY(const auto type, required_string(body, "type"));
  if (!identity::known_webhook_type(type)) {
    return invalid_request("unknown_type",
                           "type is one of payment.succeeded, payment.failed, payment.refunded",
                           json{{"field", "type"}});
  }
  const auto data = body.find("data");
  if (data == body.end() || !data->is_object()) return missing("data");
  SECHEX_TRY(const auto payment_id, required_string(*data, "paymentId"));
  const identity::WebhookUpdate update{std::string(m.id), type, payment_id, req.body};
  SECHEX_TRY(const auto applied,
             answered(commands_.apply_webhook(caller_of(d_, config_, req), update)));
  const bool duplicate = applied == identity::WebhookApplied::duplicate;
  return json_ok(json{{"applied", !duplicate}, {"duplicate", duplicate}}.dump());
}

Response PaymentsApi::register_endpoint(const Request& req, const Principal& admin) {
  SECHEX_TRY(const auto body, read_body(req, kBodyLimits));
  for (const auto& [name, value] : body.items()) {
    if (name != "url" && name != "events") {
      return invalid_request("unknown_field", "unknown field `" + name.substr(0, 64) + "`",
                             json{{"field", name.substr(0, 64)}});
    }
  }
  SECHEX_TRY(const auto url, required_string(body, "url"));
  if (!net::acceptable_url(url, payments_.allow_http_endpoints)) {
    return bad_field("url", "invalid_url",
                     payments_.allow_http_endpoints
                         ? "url must be an http:// or https:// URL with a host"
                         : "url must be an https:// URL with a host (no user info)");
  }
  const auto events = body.find("events");
  if (events == body.end()) return missing("events");
  std::vector<std::string> types;
  if (!events->is_array() || events->empty()) {
    return bad_field("events", "invalid_events", "events is a non-empty array of event types");
  }
  for (const auto& t : *events) {
    if (!t.is_string() ||
        std::find(identity::kNotificationTypes.begin(), identity::kNotificationTypes.end(),
                  t.get<std::string>()) == identity::kNotificationTypes.end()) {
      return bad_field("events", "invalid_events",
                       "events are payment.created, payment.succeeded, payment.failed, "
                       "payment.refunded");
    }
    if (std::find(types.begin(), types.end(), t.get<std::string>()) == types.end()) {
      types.push_back(t.get<std::string>());
    }
  }
  SECHEX_TRY(const auto made, answered(commands_.register_endpoint(caller_of(d_, config_, req),
                                                                   admin.subject, url, types)));
  auto r = json_ok(json{{"id", made.id},
                        {"url", url},
                        {"events", types},
                        {"enabled", true},
                        {"createdAt", format_rfc3339(made.created_at)},
                        {"secret", made.secret}}
                       .dump(),
                   201);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Response PaymentsApi::list_endpoints(const Request&, const Principal&) {
  SECHEX_TRY(const auto all, answered(commands_.endpoints()));
  json out = json::array();
  for (const auto& e : all) out.push_back(endpoint_json(e));
  return json_ok(json{{"endpoints", out}}.dump());
}

Response PaymentsApi::list_deliveries(const Request& req, const Principal&) {
  SECHEX_TRY(const auto q, page_query(req, {"pending", "delivered", "failed"}));
  SECHEX_TRY(const auto page, answered(commands_.deliveries(q.status, q.cursor, q.limit)));
  json out = json::array();
  for (const auto& d : page.deliveries) out.push_back(delivery_json(d));
  return json_ok(json{{"deliveries", out},
                      {"nextCursor", page.next_cursor.empty() ? json() : json(page.next_cursor)}}
                     .dump());
}

Response PaymentsApi::retry_delivery(const Request& req, const Principal& admin) {
  SECHEX_TRY(const auto d, answered(commands_.retry_delivery(caller_of(d_, config_, req),
                                                             admin.subject, req.params.at("id"))));
  return json_ok(delivery_json(d).dump());
}

}  // namespace sechex::api
