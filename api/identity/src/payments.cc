#include "api/identity/payments.h"

#include <nlohmann/json.hpp>

#include "command_context.h"
#include "ledger/time_format.h"
#include "ledger/utf8.h"

namespace sechex::api::identity {

using namespace detail;

namespace {

constexpr const char* kDescriptionField = "description";
constexpr const char* kMetadataField = "metadata";

// The notification of a payment in `status` (API.md: ids, status, amount, currency; never the
// description or metadata, which are personal and sealed), in the Standard Webhooks payload
// shape {type, timestamp, data}.
std::string notification(std::string_view type, std::string_view payment_id,
                         std::string_view status, std::int64_t amount, std::string_view currency,
                         TimePoint at) {
  nlohmann::json data{{"paymentId", std::string(payment_id)},
                      {"status", std::string(status)},
                      {"amount", amount},
                      {"currency", std::string(currency)}};
  return ledger::json_text(nlohmann::json{
      {"type", std::string(type)}, {"timestamp", format_rfc3339(at)}, {"data", data}});
}

// One WebhookDeliveryQueued per enabled endpoint subscribed to `type`, appended to `out` under
// the payment owner's subject; whether any was.
Result<bool> queue_deliveries(Context& x, const std::string& owner, std::string_view type,
                              const std::string& payload, Events& out) {
  SECHEX_TRY(const auto endpoints, projections::webhook_endpoints(x.store()));
  bool any = false;
  for (const auto& e : endpoints) {
    if (!e.enabled || !e.subscribed(type)) continue;
    auto id = random_token(16);
    if (!id) return ledger::Errc::crypto_failure;
    SECHEX_TRY(auto queued, x.event(owner, Actor::system(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateWebhookDeliveryQueued(
          f, f.CreateString("msg_" + id.value()), f.CreateString(e.id),
          f.CreateString(std::string(type)), f.CreateString(payload)));
    }));
    out.push_back(std::move(queued));
    any = true;
  }
  return any;
}

}  // namespace

PaymentCommands::PaymentCommands(CommandDeps deps, std::function<void()> deliveries_queued)
    : d_(std::move(deps)), deliveries_queued_(std::move(deliveries_queued)) {}

Outcome<Payment> PaymentCommands::opened(const std::string& owner,
                                         projections::PaymentRow row) const {
  Payment p;
  // An unreadable seal (the owner erased) reads as absent: the amounts stay the owner's record.
  const auto open = [&](const projections::SealedValue& v,
                        const char* field) -> std::optional<std::string> {
    if (v.empty()) return std::nullopt;
    auto plain = d_.keys.open_field(owner, v.event_id, field, v.sealed);
    if (!plain) return std::nullopt;
    return std::string(plain.value().begin(), plain.value().end());
  };
  p.description = open(row.description, kDescriptionField);
  p.metadata_json = open(row.metadata, kMetadataField);
  p.row = std::move(row);
  return p;
}

Outcome<PaymentCommands::Created> PaymentCommands::create(const Caller& c, const UserId& owner,
                                                          const PaymentRequest& request) {
  Context x(d_, config_, c);
  const auto& user = owner.str();
  const auto account = account_of(x.store(), user);
  if (!account || !account->email_verified) return Refused::email_not_verified;
  // Consent withdrawn (PATCH /v1/me): this processing needs it (004 FR-036).
  if (account->consent_version.empty()) return Refused::consent_required;
  const auto key_hash = d_.lookup.token("payment_idempotency", request.idempotency_key);
  const auto request_hash_raw = d_.lookup.token("payment_request", request.canonical_body);
  const auto request_hash = hex_of(request_hash_raw);
  auto id = random_token(16);
  if (!id) return Refused::internal;
  const auto new_id = "pay_" + id.value();
  std::string payment_id;
  bool replayed = false;
  bool queued = false;
  std::optional<Refusal> refused;
  SECHEX_TRYV(x.run(x.partition_of(user), [&]() -> Result<Events> {
    refused.reset();
    queued = false;
    SECHEX_TRY(auto kept,
               projections::idempotent_payment(x.store(), user, key_hash, micros_of(x.now)));
    switch (decide_create(kept, request_hash)) {
      case CreateDecision::replay:
        payment_id = kept->payment_id;
        replayed = true;
        return Events{};
      case CreateDecision::key_reused:
        refused = Refused::idempotency_key_reused;
        return Events{};
      case CreateDecision::create:
        break;
    }
    payment_id = new_id;
    replayed = false;
    SECHEX_TRY(auto made,
               x.event(user, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                 auto& f = b.fbb();
                 flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> description, metadata;
                 if (request.description) {
                   SECHEX_TRY(description, b.seal(kDescriptionField, *request.description));
                 }
                 if (request.metadata_json) {
                   SECHEX_TRY(metadata, b.seal(kMetadataField, *request.metadata_json));
                 }
                 return b.finish(schema::CreatePaymentCreated(
                     f, f.CreateString(new_id), bytes(f, key_hash), request.amount,
                     f.CreateString(request.currency), description, 0, bytes(f, request_hash_raw),
                     metadata));
               }));
    Events out;
    out.push_back(std::move(made));
    SECHEX_TRY(queued, queue_deliveries(x, user, "payment.created",
                                        notification("payment.created", new_id, "pending",
                                                     request.amount, request.currency, x.now),
                                        out));
    return out;
  }));
  if (refused) return *refused;
  if (queued && deliveries_queued_) deliveries_queued_();
  SECHEX_TRY(auto payment, get(owner, payment_id));
  return Created{std::move(payment), replayed};
}

Outcome<Payment> PaymentCommands::get(const UserId& owner, std::string_view id) const {
  auto row = projections::payment(d_.commands.projections(), owner.str(), id);
  if (!row) return Refusal::from_error(row.error());
  if (!row.value()) return Refused::not_found;
  return opened(owner.str(), std::move(*row.value()));
}

Outcome<PaymentsPage> PaymentCommands::list(const UserId& owner, std::string_view status,
                                            std::string_view cursor, std::size_t limit) const {
  auto page =
      projections::payments_page(d_.commands.projections(), owner.str(), status, cursor, limit);
  if (!page && page.error() == ledger::Errc::invalid_argument) return Refused::invalid_cursor;
  if (!page) return Refusal::from_error(page.error());
  PaymentsPage out;
  out.next_cursor = std::move(page.value().next_cursor);
  for (auto& row : page.value().rows) {
    SECHEX_TRY(auto p, opened(owner.str(), std::move(row)));
    out.payments.push_back(std::move(p));
  }
  return out;
}

Outcome<WebhookApplied> PaymentCommands::apply_webhook(const Caller& c,
                                                       const WebhookUpdate& update) {
  Context x(d_, config_, c);
  auto owner_or = projections::payment_owner(x.store(), update.payment_id);
  if (!owner_or) return Refusal::from_error(owner_or.error());
  if (!owner_or.value()) return Refused::not_found;
  const auto owner = *owner_or.value();
  bool duplicate = false;
  bool queued = false;
  std::optional<Refusal> refused;
  SECHEX_TRYV(x.run(x.partition_of(owner), [&]() -> Result<Events> {
    refused.reset();
    queued = false;
    SECHEX_TRY(duplicate, projections::webhook_seen(x.store(), kPaymentProvider, update.webhook_id,
                                                    micros_of(x.now)));
    if (duplicate) return Events{};
    SECHEX_TRY(auto row, projections::payment(x.store(), owner, update.payment_id));
    if (!row) {
      refused = Refused::not_found;
      return Events{};
    }
    const auto next = decide_transition(row->status, update.type);
    if (!next) {
      refused = Refused::invalid_transition;
      return Events{};
    }
    const auto body_hash = ledger::crypto::sha256(view_of(update.body));
    Events out;
    SECHEX_TRY(auto received, x.event(owner, Actor::system(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateWebhookReceived(
          f, f.CreateString(kPaymentProvider), f.CreateString(update.webhook_id),
          f.CreateVector(body_hash.data(), body_hash.size()), f.CreateString(update.payment_id),
          f.CreateString(update.type)));
    }));
    out.push_back(std::move(received));
    SECHEX_TRY(auto changed, x.event(owner, Actor::system(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreatePaymentStatusChanged(f, f.CreateString(update.payment_id),
                                                         f.CreateString(std::string(*next)),
                                                         f.CreateString(update.webhook_id)));
    }));
    out.push_back(std::move(changed));
    const auto type = "payment." + std::string(*next);
    SECHEX_TRY(queued, queue_deliveries(x, owner, type,
                                        notification(type, update.payment_id, *next, row->amount,
                                                     row->currency, x.now),
                                        out));
    return out;
  }));
  if (refused) return *refused;
  if (queued && deliveries_queued_) deliveries_queued_();
  return duplicate ? WebhookApplied::duplicate : WebhookApplied::applied;
}

Outcome<NewEndpoint> PaymentCommands::register_endpoint(const Caller& c, std::string_view admin,
                                                        std::string_view url,
                                                        const std::vector<std::string>& events) {
  Context x(d_, config_, c);
  auto id = random_token(16);
  auto key = ledger::crypto::random_bytes(32);
  if (!id || !key) return Refused::internal;
  const auto endpoint = "whe_" + id.value();
  const auto secret = "whsec_" + ledger::crypto::base64_encode(key.value());
  std::string joined;
  for (const auto& e : events) joined += (joined.empty() ? "" : ",") + e;
  SECHEX_TRYV(x.run(x.partition_of(endpoint), [&]() -> Result<Events> {
    SECHEX_TRY(auto registered,
               x.event(endpoint, Actor::admin(admin),
                       [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                         SECHEX_TRY(auto sealed, b.seal("secret", secret));
                         auto& f = b.fbb();
                         return b.finish(schema::CreateWebhookEndpointRegistered(
                             f, f.CreateString(endpoint), f.CreateString(std::string(url)),
                             f.CreateString(joined), sealed));
                       }));
    Events out;
    out.push_back(std::move(registered));
    return out;
  }));
  return NewEndpoint{endpoint, secret, x.now};
}

Outcome<std::vector<projections::WebhookEndpoint>> PaymentCommands::endpoints() const {
  auto all = projections::webhook_endpoints(d_.commands.projections());
  if (!all) return Refusal::from_error(all.error());
  return std::move(all).value();
}

Outcome<projections::WebhookDeliveryPage> PaymentCommands::deliveries(std::string_view state,
                                                                      std::string_view cursor,
                                                                      std::size_t limit) const {
  auto page = projections::webhook_deliveries_page(d_.commands.projections(), state, cursor, limit);
  if (!page && page.error() == ledger::Errc::invalid_argument) return Refused::invalid_cursor;
  if (!page) return Refusal::from_error(page.error());
  return std::move(page).value();
}

Outcome<projections::WebhookDelivery> PaymentCommands::retry_delivery(const Caller& c,
                                                                      std::string_view admin,
                                                                      std::string_view id) {
  Context x(d_, config_, c);
  auto found = projections::webhook_delivery(x.store(), id);
  if (!found) return Refusal::from_error(found.error());
  if (!found.value()) return Refused::not_found;
  const auto owner = found.value()->subject;
  std::optional<Refusal> refused;
  SECHEX_TRYV(x.run(x.partition_of(owner), [&]() -> Result<Events> {
    refused.reset();
    SECHEX_TRY(const auto current, projections::webhook_delivery(x.store(), id));
    if (!current || current->state != "failed") {
      refused = current ? Refusal(Refused::invalid_transition) : Refusal(Refused::not_found);
      return Events{};
    }
    SECHEX_TRY(auto retried, x.event(owner, Actor::admin(admin), [&](ledger::EventBuilder& b) {
      return b.finish(
          schema::CreateWebhookDeliveryRetried(b.fbb(), b.fbb().CreateString(std::string(id))));
    }));
    Events out;
    out.push_back(std::move(retried));
    return out;
  }));
  if (refused) return *refused;
  if (deliveries_queued_) deliveries_queued_();
  auto now = projections::webhook_delivery(x.store(), id);
  if (!now || !now.value()) return Refused::internal;
  return std::move(*now.value());
}

}  // namespace sechex::api::identity
