#include "api/webhooks/delivery.h"

#include <openssl/rand.h>

#include "api/crypto/webhook_signature.h"
#include "ledger/event_builder.h"

namespace sechex::api::webhooks {

namespace {

using projections::WebhookDelivery;
using projections::WebhookEndpoint;

double random_jitter() {
  std::uint32_t r = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r) != 1) return 0.5;
  return static_cast<double>(r) / 4294967296.0;
}

}  // namespace

DeliveryDecision decide_delivery(const WebhookDelivery& delivery, const HttpResult& result,
                                 const RetryPolicy& policy, std::int64_t now_micros,
                                 double jitter) {
  DeliveryDecision d;
  if (delivery.state != "pending") return d;
  d.attempt = delivery.attempts + 1;
  d.status =
      result.status > 0 && result.status < 1000 ? static_cast<std::uint32_t>(result.status) : 0;
  if (d.status >= 200 && d.status < 300) {
    d.kind = DeliveryDecision::Kind::delivered;
    return d;
  }
  d.kind = DeliveryDecision::Kind::failed;
  if (d.status == 0) {
    d.error = result.error.empty() ? "no_answer" : result.error;
  } else if (d.status >= 300 && d.status < 400) {
    d.error = "http " + std::to_string(d.status) + " (redirects are not followed)";
  } else {
    d.error = "http " + std::to_string(d.status);
  }
  const bool permanent = d.status == 410 || result.error == "private_target" ||
                         result.error == "endpoint_disabled" ||
                         result.error == "endpoint_unknown" || result.error == "secret_unreadable";
  d.disable_endpoint = d.status == 410;
  d.final = permanent || delivery.manual || policy.final(d.attempt);
  if (!d.final) {
    std::int64_t not_before = 0;
    if ((d.status == 429 || d.status == 503) && result.retry_after_seconds) {
      const auto s = std::min(*result.retry_after_seconds, kMaxRetryAfterSeconds);
      not_before = now_micros + s * 1'000'000;
    }
    d.next_attempt_at = policy.next_attempt_at(d.attempt, now_micros, jitter, not_before);
  }
  return d;
}

WebhookWorker::WebhookWorker(CommandPath& commands, ledger::KeyStore& keys, WorkerConfig config,
                             const Clock& clock, WorkerHooks hooks)
    : commands_(commands),
      keys_(keys),
      config_(std::move(config)),
      clock_(clock),
      hooks_(std::move(hooks)) {
  // A pass takes at most `batch` due deliveries; a backlog is worked off pass after pass, not
  // one batch per poll interval.
  task_ = std::make_unique<PeriodicTask>(
      config_.poll_interval,
      [this](const auto& stopping) {
        for (;;) {
          auto r = run_once();
          if (!r) {
            log("webhook delivery pass failed: " + r.error().message());
            return;
          }
          if (r.value().recorded < config_.batch || stopping) return;  // else more may be due
        }
      },
      PeriodicTask::Options{.run_at_start = true});
}

WebhookWorker::~WebhookWorker() { stop(); }

void WebhookWorker::start() { task_->start(); }

void WebhookWorker::stop() {
  cancel_ = true;
  task_->stop();
}

void WebhookWorker::notify() { task_->wake(); }

void WebhookWorker::log(const std::string& line) const {
  if (hooks_.log) hooks_.log(line);
}

Result<WebhookWorker::Pass> WebhookWorker::run_once() {
  std::lock_guard pass(run_mu_);
  if (cancel_) return Pass{};
  const auto& ownership = commands_.ownership();
  SECHEX_TRY(const auto due, projections::due_webhook_deliveries(
                                 commands_.projections(), clock_.now_micros(), config_.batch,
                                 [&](const WebhookDelivery& d) {
                                   return ownership.owns(commands_.partition_for(d.subject));
                                 }));
  std::size_t recorded = 0;
  for (const auto& d : due) {
    if (cancel_) break;
    auto r = attempt(d);
    if (!r) {
      log("webhook " + d.id + ": recording the outcome failed: " + r.error().message());
      continue;
    }
    if (r.value()) ++recorded;
  }
  return Pass{due.size(), recorded};
}

HttpResult WebhookWorker::send(const WebhookDelivery& d,
                               const std::optional<WebhookEndpoint>& endpoint) {
  HttpResult refused;
  if (!endpoint) {
    refused.error = "endpoint_unknown";
    return refused;
  }
  if (!endpoint->enabled) {
    refused.error = "endpoint_disabled";
    return refused;
  }
  auto secret_text =
      keys_.open_field(endpoint->id, endpoint->secret.event_id, "secret", endpoint->secret.sealed);
  if (!secret_text) {
    refused.error = "secret_unreadable";
    return refused;
  }
  auto secret = Secret::parse(std::string_view(
      reinterpret_cast<const char*>(secret_text.value().data()), secret_text.value().size()));
  if (!secret) {
    refused.error = "secret_unreadable";
    return refused;
  }
  const auto ts = clock_.now_micros() / 1'000'000;
  auto signature = sign(secret.value(), d.id, ts, d.payload);
  if (!signature) {
    refused.error = "signing_failed";
    return refused;
  }
  return net::post(endpoint->url,
                   {{"Content-Type", "application/json"},
                    {"webhook-id", d.id},
                    {"webhook-timestamp", std::to_string(ts)},
                    {"webhook-signature", signature.value()}},
                   d.payload, config_.client, &cancel_);
}

Result<bool> WebhookWorker::attempt(const WebhookDelivery& due) {
  auto& store = commands_.projections();
  // Idempotence: only a delivery still pending and due is sent (another pass may have ended it).
  SECHEX_TRY(const auto fresh, projections::webhook_delivery(store, due.id));
  if (!fresh || fresh->state != "pending" || fresh->subject != due.subject ||
      fresh->next_attempt_at > clock_.now_micros()) {
    return false;
  }
  SECHEX_TRY(const auto endpoint, projections::webhook_endpoint(store, fresh->endpoint_id));
  const auto result = send(*fresh, endpoint);
  if (cancel_ && result.error == "cancelled") return false;  // stopping: tried again later
  const auto jitter = random_jitter();
  std::optional<DeliveryDecision> decided;
  bool alerted = false;
  SECHEX_TRY(const auto records,
             commands_.run(
                 commands_.partition_for(due.subject), [&]() -> Result<std::vector<ledger::Bytes>> {
                   alerted = false;
                   SECHEX_TRY(const auto current, projections::webhook_delivery(store, due.id));
                   if (!current) return std::vector<ledger::Bytes>{};
                   const auto now = clock_.now_micros();
                   const auto d = decide_delivery(*current, result, config_.policy, now, jitter);
                   if (d.kind == DeliveryDecision::Kind::none) {
                     return std::vector<ledger::Bytes>{};
                   }
                   const ledger::EventMeta meta{.subject = due.subject,
                                                .actor = "system",
                                                .request_id = "webhook:" + due.id,
                                                .time_micros = now,
                                                .ip = std::nullopt,
                                                .user_agent = std::nullopt};
                   std::vector<ledger::Bytes> out;
                   ledger::EventBuilder b(&keys_, meta);
                   auto& f = b.fbb();
                   if (d.kind == DeliveryDecision::Kind::delivered) {
                     SECHEX_TRY(auto e, b.finish(schema::CreateWebhookDelivered(
                                            f, f.CreateString(due.id), d.attempt, d.status)));
                     out.push_back(std::move(e));
                   } else {
                     SECHEX_TRY(auto e, b.finish(schema::CreateWebhookDeliveryFailed(
                                            f, f.CreateString(due.id), d.attempt, d.status,
                                            f.CreateString(d.error), d.final, d.next_attempt_at)));
                     out.push_back(std::move(e));
                     if (d.final && hooks_.queue_admin_alert) {
                       SECHEX_TRY(auto alerts, hooks_.queue_admin_alert(meta, "webhook:" + due.id));
                       alerted = !alerts.empty();
                       for (auto& a : alerts) out.push_back(std::move(a));
                     }
                   }
                   decided = d;
                   return out;
                 }));
  if (!decided || records.empty()) return false;
  if (decided->disable_endpoint && endpoint) {
    // The endpoint's own partition records that it is gone; a failure here is logged and the
    // next delivery to it (answered 410 again) tries once more.
    const auto r = commands_.run(
        commands_.partition_for(endpoint->id), [&]() -> Result<std::vector<ledger::Bytes>> {
          SECHEX_TRY(const auto current, projections::webhook_endpoint(store, endpoint->id));
          if (!current || !current->enabled) return std::vector<ledger::Bytes>{};
          ledger::EventBuilder b(&keys_, {.subject = endpoint->id,
                                          .actor = "system",
                                          .request_id = "webhook:" + due.id,
                                          .time_micros = clock_.now_micros(),
                                          .ip = std::nullopt,
                                          .user_agent = std::nullopt});
          auto& f = b.fbb();
          SECHEX_TRY(auto e,
                     b.finish(schema::CreateWebhookEndpointDisabled(
                         f, f.CreateString(endpoint->id), f.CreateString("http 410 gone"))));
          return std::vector<ledger::Bytes>{std::move(e)};
        });
    if (!r)
      log("webhook endpoint " + endpoint->id + ": disabling failed: " + r.error().message());
    else
      log("webhook endpoint " + endpoint->id + " disabled: the receiver answered 410 Gone");
  }
  if (decided->kind == DeliveryDecision::Kind::delivered) {
    if (hooks_.on_delivered) hooks_.on_delivered(decided->status);
  } else if (!decided->final) {
    if (hooks_.on_retry) hooks_.on_retry();
  } else {
    if (hooks_.on_final_failure) hooks_.on_final_failure(*fresh, *decided);
    if (alerted && hooks_.alert_queued) hooks_.alert_queued();
    log("webhook delivery " + due.id + " to endpoint " + fresh->endpoint_id +
        " given up after attempt " + std::to_string(decided->attempt) + ": " + decided->error);
  }
  return true;
}

}  // namespace sechex::api::webhooks
