// The payment routes of API.md "Payments" (spec 003 US5; issue 15):
//
//   POST /v1/payments            (user; cookie sessions need CSRF) header Idempotency-Key
//                                (1..255 printable characters, exactly one) and
//                                {amount, currency, description?, metadata?} -> 201 the payment;
//                                the same key and body again -> 200 the same payment with
//                                `Idempotent-Replayed: true`; the key with another body -> 422
//                                idempotency_key_reused; no key -> 400 idempotency_key_required
//   GET  /v1/payments            (user) ?status&cursor&limit -> {payments, nextCursor}, newest
//                                first (limit 1..100, default 20)
//   GET  /v1/payments/{id}       (user) the caller's payment with its status history; 404 for
//                                a missing id and for another user's alike
//   POST /v1/webhooks/payments   (the payment provider) Standard Webhooks headers, body
//                                {type, data:{paymentId}} -> 200 {applied, duplicate}; 401
//                                invalid_signature (details.reason: webhook_signature.h), 409
//                                invalid_transition, 404 for an unknown payment, 503 when
//                                --payment-webhook-secret-file is not set
//   GET|POST /v1/admin/webhooks/endpoints   (admin) {url, events:[...]} -> 201 {id, url, events,
//                                enabled, createdAt, secret} (the secret only in this answer);
//                                GET lists them without secrets. `url` https:// (http:// too with
//                                --webhook-allow-private-targets), `events` a non-empty subset of
//                                payment.created|succeeded|failed|refunded
//   GET  /v1/admin/webhooks/deliveries       (admin) ?status&cursor&limit -> {deliveries,
//                                nextCursor}, newest first, with attempts and the last error
//   POST /v1/admin/webhooks/deliveries/{id}/retry  (admin) one more attempt of a failed delivery,
//                                now -> the delivery; 404 unknown, 409 invalid_transition unless
//                                it failed
//
// Body rules: `amount` a positive JSON integer of minor units up to 2^53 - 1, `currency` an
// active ISO 4217 code (upper case), `description` a string, `metadata` an object of depth <= 2;
// any other field is refused (400 invalid_request with details.reason and field).
//
// A payment as answered: {id, amount, currency, description, metadata, status, createdAt,
// updatedAt, history:[{status, at}]} (description and metadata null when not given).
//
// Thread-safety: handlers are thread-safe and blocking (Exec::pool for appends, Exec::read for
// reads).
#pragma once

#include <optional>

#include "api/crypto/webhook_signature.h"
#include "api/identity/payments.h"
#include "api/routes/identity_api.h"

namespace sechex::api {

struct PaymentsConfig {
  // The provider's webhook secret (--payment-webhook-secret-file); nullopt: webhooks answer 503.
  std::optional<webhooks::Secret> provider_secret;
  // --webhook-allow-private-targets: endpoints may be http:// (tests, development).
  bool allow_http_endpoints = false;
};

class PaymentsApi {
 public:
  PaymentsApi(IdentityDeps deps, IdentityConfig config, PaymentsConfig payments,
              identity::PaymentCommands& commands);
  void add_routes(RouteRegistry& routes);

  Response create(const Request& req, const Principal& who);
  Response list(const Request& req, const Principal& who);
  Response get(const Request& req, const Principal& who);
  Response webhook(const Request& req);
  Response register_endpoint(const Request& req, const Principal& admin);
  Response list_endpoints(const Request& req, const Principal& admin);
  Response list_deliveries(const Request& req, const Principal& admin);
  Response retry_delivery(const Request& req, const Principal& admin);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  PaymentsConfig payments_;
  identity::PaymentCommands& commands_;
};

}  // namespace sechex::api
