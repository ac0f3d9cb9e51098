// Payments (API.md "Payments"; spec 003 US5 isolation, FR-001/002, the "session expires
// mid-payment" and "duplicate notification" edge cases): a user's payment is one chained
// PaymentCreated under the user's subject; the payment provider's signed webhooks move it along
// pending -> succeeded | failed, succeeded -> refunded, each move a PaymentStatusChanged with the
// WebhookReceived that caused it, in one append on the owner's partition.
//
// The pure rules (currency table, idempotency and transition decisions) come first, then the
// commands. Like the exclusive commands, these live in api/identity for the Context and Refusal
// machinery they share; ARCHITECTURE.md's api/payments folder is where they go when the domains
// are split out.
//
// Idempotency: the Idempotency-Key is scoped to the user and kept 24 h (its keyed hash; the
// request's keyed hash beside it). create() decides on the owner's partition, so concurrent
// requests with one key are serialised: the first creates, the others (and any retry, from
// another session of the same user too) get that payment back as a replay; a different body
// under the key is idempotency_key_reused.
//
// Reads go only through the owner-keyed projection: another user's id is not_found, from the
// same single lookup a missing id takes.
//
// Thread-safety: as IdentityCommands (its deps must outlive it); all methods may run
// concurrently (create and apply_webhook block on the partition and an fsync).
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/identity/commands.h"
#include "projections/payments.h"
#include "projections/webhooks.h"

namespace sechex::api::identity {

// ---- Rules ----

// An ISO 4217 currency and its minor-unit exponent (JPY 0, EUR 2, KWD 3, CLF 4).
struct Currency {
  std::string_view code;
  int exponent = 2;
};
// The active ISO 4217 code `code` (upper case exactly), nullopt for anything else (funds, metals
// and testing codes are not payable currencies here).
std::optional<Currency> currency(std::string_view code);

// The largest amount accepted, in minor units: 2^53 - 1, so every client's JSON number holds it.
inline constexpr std::int64_t kMaxPaymentAmount = 9'007'199'254'740'991;

// Idempotency-Key: 1..255 printable ASCII characters (API.md).
bool valid_idempotency_key(std::string_view key);

enum class CreateDecision { create, replay, key_reused };
// What a POST with an Idempotency-Key does, given what the key made before (kept at `now`) and
// the keyed hash of this request.
CreateDecision decide_create(const std::optional<projections::IdempotentPayment>& kept,
                             std::string_view request_hash_hex);

// The status a provider's webhook `type` ("payment.succeeded", "payment.failed",
// "payment.refunded") moves a payment in `current` to; nullopt when the move is not allowed
// (an unknown type, a payment already final, a refund before its success).
std::optional<std::string_view> decide_transition(std::string_view current, std::string_view type);
bool known_webhook_type(std::string_view type);

// ---- Commands ----

inline constexpr const char* kPaymentProvider = "payments";

struct PaymentRequest {
  std::int64_t amount = 0;
  std::string currency;
  std::optional<std::string> description;
  std::optional<std::string> metadata_json;  // an object's JSON text
  std::string idempotency_key;
  std::string canonical_body;  // the request as canonical JSON: what "the same body" compares
};

// A payment as its owner sees it: the row with its sealed fields opened (nullopt when absent, or
// unreadable after the owner's erasure).
struct Payment {
  projections::PaymentRow row;
  std::optional<std::string> description;
  std::optional<std::string> metadata_json;
};

struct PaymentsPage {
  std::vector<Payment> payments;
  std::string next_cursor;
};

struct WebhookUpdate {
  std::string webhook_id;
  std::string type;
  std::string payment_id;
  std::string body;  // as received (its SHA-256 is chained)
};
enum class WebhookApplied { applied, duplicate };

// The event types endpoints subscribe to: payment.created and one per status change.
inline constexpr std::array<std::string_view, 4> kNotificationTypes = {
    "payment.created", "payment.succeeded", "payment.failed", "payment.refunded"};

struct NewEndpoint {
  std::string id;      // "whe_" + random
  std::string secret;  // whsec_...: shown once, stored sealed under the endpoint's key
  TimePoint created_at{};
};

class PaymentCommands {
 public:
  // `deliveries_queued` (may be empty) runs after an append that queued webhook deliveries.
  explicit PaymentCommands(CommandDeps deps, std::function<void()> deliveries_queued = {});

  // ---- Outgoing notifications (admin) ----
  // `url` is checked by the caller (api/webhooks acceptable_url); `events` a non-empty subset of
  // kNotificationTypes (else invalid_request... the route checks it too).
  Outcome<NewEndpoint> register_endpoint(const Caller& c, std::string_view admin,
                                         std::string_view url,
                                         const std::vector<std::string>& events);
  Outcome<std::vector<projections::WebhookEndpoint>> endpoints() const;
  // `state` "" | pending | delivered | failed; invalid_cursor for a cursor not handed out.
  Outcome<projections::WebhookDeliveryPage> deliveries(std::string_view state,
                                                       std::string_view cursor,
                                                       std::size_t limit) const;
  // One more attempt of a failed delivery, now (003 FR-039): not_found for an unknown id,
  // invalid_transition unless it failed.
  Outcome<projections::WebhookDelivery> retry_delivery(const Caller& c, std::string_view admin,
                                                       std::string_view id);

  struct Created {
    Payment payment;
    bool replayed = false;
  };
  // Refusals: email_not_verified, idempotency_key_reused, and what a command that could not run
  // answers (not_owner, unavailable).
  Outcome<Created> create(const Caller& c, const UserId& owner, const PaymentRequest& request);
  // not_found for a missing id and for another user's.
  Outcome<Payment> get(const UserId& owner, std::string_view id) const;
  // `status` "" for all; invalid_cursor for a cursor this did not hand out.
  Outcome<PaymentsPage> list(const UserId& owner, std::string_view status, std::string_view cursor,
                             std::size_t limit) const;
  // A verified webhook (its signature is the route's check): duplicate for a webhook-id seen
  // before (nothing recorded); not_found for an unknown payment; invalid_transition when the
  // move is not allowed from the payment's status (nothing recorded, so the provider's retry of
  // an early refund succeeds once the success has arrived).
  Outcome<WebhookApplied> apply_webhook(const Caller& c, const WebhookUpdate& update);

 private:
  Outcome<Payment> opened(const std::string& owner, projections::PaymentRow row) const;

  CommandDeps d_;
  CommandConfig config_;
  std::function<void()> deliveries_queued_;
};

}  // namespace sechex::api::identity
