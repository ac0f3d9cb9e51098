// Webhooks out (API.md "Payments"; spec 003 FR-038/039/041): the delivery of queued payment
// notifications to admin-registered endpoints, signed the Standard Webhooks way.
//
// Flow. PaymentCommands queues one WebhookDeliveryQueued per subscribed endpoint in the same
// append as the payment event it tells of (the projection projections/webhooks.h lists them by
// due time). The WebhookWorker takes due deliveries of the partitions this node owns, opens the
// endpoint's secret, POSTs the payload with webhook-id = the delivery id (the same on every
// attempt: receivers deduplicate by it, FR-041), webhook-timestamp = now and webhook-signature,
// and records the outcome through the command path on the owner's partition.
//
// Retries (decide_delivery, pure; the policy is api/app/retry.h's, shared with the mail outbox):
// a 2xx is delivered. Attempt n failing is tried again after the policy's doubling delay with
// jitter; a 429 or 503 with Retry-After waits at least that long (at most an hour); the failure
// of the policy's last attempt (1 + 3 retries) is final. Final at once: 410 (the endpoint is
// also disabled: WebhookEndpointDisabled), a refused private target, a disabled or unknown
// endpoint, an unreadable secret, and any failure of an admin's manual retry. 3xx (redirects
// are never followed), other statuses, timeouts (15 s) and connection errors are failures.
//
// A final failure is the admin alert (FR-039): the WebhookDeliveryFailed event with final (the
// audit event and the database flag: state "failed"), an admin_alert mail to each --admin-email
// queued in the same append, and the worker's hook (ledgerd: a metric and a log line).
//
// Delivery guarantee: at least once. Before sending, the worker re-reads the delivery and skips
// it unless still pending and due; the outcome is recorded only while it is (first outcome
// wins). A crash between the receiver's 2xx and WebhookDelivered sends it again after restart,
// with the same webhook-id.
//
// Lifecycle: construct over a CommandPath, the KeyStore and a clock, all outliving it; start()
// after the projections caught up; stop() (or destruction) before they go: it cancels a transfer
// in flight. Thread-safety: notify() and stop() from any thread; run_once() is serialised with
// the worker thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/app/commands.h"
#include "api/app/periodic_task.h"
#include "api/app/retry.h"
#include "api/net/http_client.h"
#include "ledger/clock.h"
#include "ledger/event_builder.h"
#include "ledger/key_store.h"
#include "projections/webhooks.h"

namespace sechex::api::webhooks {

// The outgoing client's options and answers (api/net/http_client.h), as deliveries use them.
using net::ClientOptions;
using net::HttpResult;

// The longest Retry-After honoured (a receiver cannot park a delivery for days).
inline constexpr std::int64_t kMaxRetryAfterSeconds = 3600;

struct DeliveryDecision {
  enum class Kind { none, delivered, failed };
  Kind kind = Kind::none;
  std::uint32_t attempt = 0;  // the attempt just made (1-based)
  std::uint32_t status = 0;   // the HTTP status, 0 without one
  std::string error;          // failed: "http 503", "timeout", "private_target", ...
  bool final = false;
  std::int64_t next_attempt_at = 0;  // failed, not final
  bool disable_endpoint = false;     // 410 Gone
};

// What to record for `delivery` (as it stands before the attempt) after `result`, at
// `now_micros`; `jitter` in [0, 1) from the caller's random source.
DeliveryDecision decide_delivery(const projections::WebhookDelivery& delivery,
                                 const HttpResult& result, const RetryPolicy& policy,
                                 std::int64_t now_micros, double jitter);

// The MailQueued events of the admin alert about delivery `id` (one per admin address) under
// `meta` (the owner's subject, the same append), from ledgerd's mail module.
using QueueAdminAlert = std::function<Result<std::vector<ledger::Bytes>>(
    const ledger::EventMeta& meta, std::string_view what)>;

struct WorkerConfig {
  RetryPolicy policy{std::chrono::seconds(2), 4};
  ClientOptions client;
  std::chrono::milliseconds poll_interval{250};
  std::size_t batch = 32;
};

struct WorkerHooks {
  std::function<void(std::uint32_t status)> on_delivered;
  std::function<void()> on_retry;  // a failed attempt that will be tried again
  std::function<void(const projections::WebhookDelivery&, const DeliveryDecision&)>
      on_final_failure;
  std::function<void(const std::string& line)> log;
  QueueAdminAlert queue_admin_alert;   // may be empty: no alert mails
  std::function<void()> alert_queued;  // wakes the mail worker
};

class WebhookWorker {
 public:
  WebhookWorker(CommandPath& commands, ledger::KeyStore& keys, WorkerConfig config,
                const Clock& clock, WorkerHooks hooks = {});
  ~WebhookWorker();
  WebhookWorker(const WebhookWorker&) = delete;
  WebhookWorker& operator=(const WebhookWorker&) = delete;

  void start();
  void stop();
  // A delivery was queued (or retried by hand): deliver now rather than at the next poll.
  void notify();
  // Delivers what is due now, at most config.batch deliveries: how many it took and how many
  // outcomes it recorded.
  struct Pass {
    std::size_t taken = 0;
    std::size_t recorded = 0;
  };
  Result<Pass> run_once();

 private:
  Result<bool> attempt(const projections::WebhookDelivery& d);
  HttpResult send(const projections::WebhookDelivery& d,
                  const std::optional<projections::WebhookEndpoint>& endpoint);
  void log(const std::string& line) const;

  CommandPath& commands_;
  ledger::KeyStore& keys_;
  const WorkerConfig config_;
  const Clock& clock_;
  const WorkerHooks hooks_;
  std::atomic<bool> cancel_{false};
  std::mutex run_mu_;
  std::unique_ptr<PeriodicTask> task_;
};

}  // namespace sechex::api::webhooks
