// Outgoing payment notifications (API.md "Payments": webhooks out; spec 003 FR-038/039/041):
// the endpoints admins registered and every delivery to them, with its attempts and outcome.
// The delivery worker (api/webhooks) reads it; only the Webhook* events below change it.
//
//   webhook_endpoints   endpoint id -> JSON {"url","events":[...],"secret_sealed" (base64),
//                       "event_id" (hex, the seal's AAD),"enabled","disabled_reason",
//                       "created_at"}
//   webhook_deliveries  delivery id -> JSON {"subject" (the payment owner),"endpoint_id",
//                       "event_type","payload","state","attempts","next_attempt_at",
//                       "last_error","last_status","queued_at","done_at","manual"}
//                       state "pending" | "delivered" | "failed"; times in micros; manual: the
//                       pending attempt is an admin's retry (its failure is final at once)
//   webhook_due         be64(next_attempt_at) || delivery id -> ""  one per pending delivery
//   webhook_by_time     be64(INT64_MAX - queued_at) || delivery id -> ""  newest first (admin list)
//
// Events: WebhookEndpointRegistered adds an endpoint (an id that exists is ignored);
// WebhookEndpointDisabled disables it. WebhookDeliveryQueued adds a pending delivery due at once
// (ignored when the id exists). WebhookDelivered and WebhookDeliveryFailed apply only to a
// pending delivery of the event's subject (the first outcome wins, so a report repeated after a
// crash changes nothing); a non-final failure makes it due again at next_attempt_at.
// WebhookDeliveryRetried makes a failed delivery pending and due at the event's time, for one
// manual attempt.
//
// Expiry: as the mail outbox: a delivered entry goes 7 days after done_at, a failed one 30 days
// (the events stay in the log and the audit index); pending entries never expire.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"
#include "projections/users.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kWebhookEndpointsCf = "webhook_endpoints";
inline constexpr const char* kWebhookDeliveriesCf = "webhook_deliveries";
inline constexpr const char* kWebhookDueCf = "webhook_due";
inline constexpr const char* kWebhookByTimeCf = "webhook_by_time";
inline constexpr std::int64_t kWebhookDeliveredKeepMicros = 7LL * 24 * 3600 * 1'000'000;
inline constexpr std::int64_t kWebhookFailedKeepMicros = 30LL * 24 * 3600 * 1'000'000;

class WebhooksProjection final : public Projection {
 public:
  std::string name() const override { return "webhooks"; }
  std::vector<std::string> column_families() const override {
    return {kWebhookEndpointsCf, kWebhookDeliveriesCf, kWebhookDueCf, kWebhookByTimeCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override {
    return {kWebhookDeliveriesCf, kWebhookByTimeCf};
  }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

struct WebhookEndpoint {
  std::string id;
  std::string url;
  std::vector<std::string> events;
  SealedValue secret;  // field "secret", sealed under the endpoint id's key
  bool enabled = true;
  std::string disabled_reason;
  std::int64_t created_at = 0;
  bool subscribed(std::string_view type) const {
    for (const auto& e : events) {
      if (e == type) return true;
    }
    return false;
  }
};

struct WebhookDelivery {
  std::string id;
  std::string subject;
  std::string endpoint_id;
  std::string event_type;
  std::string payload;
  std::string state;
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_at = 0;
  std::string last_error;
  std::uint32_t last_status = 0;
  std::int64_t queued_at = 0;
  std::int64_t done_at = 0;
  bool manual = false;
};

Result<std::vector<WebhookEndpoint>> webhook_endpoints(const ProjectionStore& store);
Result<std::optional<WebhookEndpoint>> webhook_endpoint(const ProjectionStore& store,
                                                        std::string_view id);
Result<std::optional<WebhookDelivery>> webhook_delivery(const ProjectionStore& store,
                                                        std::string_view id);
// Pending deliveries due at `now_micros`, earliest first, at most `max`, those `want` accepts.
Result<std::vector<WebhookDelivery>> due_webhook_deliveries(
    const ProjectionStore& store, std::int64_t now_micros, std::size_t max,
    const std::function<bool(const WebhookDelivery&)>& want);
// Newest first, optionally of one state; cursor "" or a previous next_cursor (hex), else
// Errc::invalid_argument.
struct WebhookDeliveryPage {
  std::vector<WebhookDelivery> deliveries;
  std::string next_cursor;
};
Result<WebhookDeliveryPage> webhook_deliveries_page(const ProjectionStore& store,
                                                    std::string_view state, std::string_view cursor,
                                                    std::size_t limit);

}  // namespace sechex::projections
