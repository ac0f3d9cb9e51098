// ledgerd's wiring: opens the ledger (embedded or Kafka), its key store, projections and token
// keys, builds the APIs and their servers, runs the background loops, and stops them all in
// order when told to. See main.cc for the process around it.
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "api/app/commands.h"
#include "api/app/ownership.h"
#include "api/app/periodic_task.h"
#include "api/auth/auth.h"
#include "api/auth/route_access.h"
#include "api/auth/route_registry.h"
#include "api/crypto/jose.h"
#include "api/http/access_log.h"
#include "api/http/metrics.h"
#include "api/http/openapi.h"
#include "api/http/server.h"
#include "api/identity/session_activity.h"
#include "api/ingest/ingest_worker.h"
#include "api/mail/mail.h"
#include "api/routes/account_api.h"
#include "api/routes/admin_api.h"
#include "api/routes/exclusive_api.h"
#include "api/routes/identity_api.h"
#include "api/routes/ledger_api.h"
#include "api/routes/oauth_api.h"
#include "api/routes/otp_api.h"
#include "api/routes/payments_api.h"
#include "api/routes/secrets_api.h"
#include "api/webhooks/delivery.h"
#include "config.h"
#include "ledger/crypto.h"
#include "ledger/data_dir.h"
#include "ledger/event_builder.h"
#include "ledger/kafka_keys.h"
#include "ledger/kafka_log.h"
#include "ledger/retention.h"
#include "ledger/utf8.h"
#include "projections/store.h"
#include "schemas/events.h"
#include "schemas/json_codec.h"

namespace sechex::ledgerd {

using namespace sechex;

namespace {

// A request path as recorded in an event (CsrfRejected): any bytes a client sent, kept to
// well-formed UTF-8 of this many bytes (ledger/utf8.h).
constexpr std::size_t kMaxRecordedPath = 2048;

// Mirrors the ledger's own counters into Prometheus counters (which only go up).
class LedgerMetrics {
 public:
  // `records_of(p)`: the chain length to show for partition p.
  LedgerMetrics(api::Metrics& m, const ledger::Log& log,
                std::function<std::uint64_t(ledger::Partition)> records_of)
      : log_(log), records_of_(std::move(records_of)) {
    auto& reg = m.registry();
    events_ = &prometheus::BuildCounter()
                   .Name("sechex_ledger_events_appended_total")
                   .Help("Events appended durably to the log")
                   .Register(reg)
                   .Add({});
    appends_ = &prometheus::BuildCounter()
                    .Name("sechex_ledger_appends_total")
                    .Help("Append calls (batches) acknowledged")
                    .Register(reg)
                    .Add({});
    groups_ = &prometheus::BuildCounter()
                   .Name("sechex_ledger_commit_groups_total")
                   .Help("Synced RocksDB writes (group commits)")
                   .Register(reg)
                   .Add({});
    checkpoints_ = &prometheus::BuildCounter()
                        .Name("sechex_ledger_checkpoints_total")
                        .Help("Signed checkpoints written")
                        .Register(reg)
                        .Add({});
    auto& records = prometheus::BuildGauge()
                        .Name("sechex_ledger_partition_records")
                        .Help("Records per partition (chain length)")
                        .Register(reg);
    for (std::uint32_t p = 0; p < log.partition_count(); ++p) {
      records_.push_back(&records.Add({{"partition", std::to_string(p)}}));
    }
    m.on_scrape([this] { refresh(); });
  }

 private:
  void refresh() {
    const auto s = log_.stats();
    events_->Increment(static_cast<double>(s.events - last_.events));
    appends_->Increment(static_cast<double>(s.appends - last_.appends));
    groups_->Increment(static_cast<double>(s.commit_groups - last_.commit_groups));
    checkpoints_->Increment(static_cast<double>(s.checkpoints - last_.checkpoints));
    last_ = s;
    for (std::uint32_t p = 0; p < records_.size(); ++p) {
      records_[p]->Set(static_cast<double>(records_of_(ledger::Partition{p})));
    }
  }
  const ledger::Log& log_;
  std::function<std::uint64_t(ledger::Partition)> records_of_;
  prometheus::Counter* events_;
  prometheus::Counter* appends_;
  prometheus::Counter* groups_;
  prometheus::Counter* checkpoints_;
  std::vector<prometheus::Gauge*> records_;
  ledger::LogStats last_{};
};

int fail(const std::string& message) {
  std::cerr << "ledgerd: " << message << "\n";
  return 2;
}

}  // namespace

int serve(const Config& config, const std::function<int()>& wait_for_stop) {
  // The flags, by the names the wiring below was written with.
  const auto& data_dir = config.data_dir;
  const auto& key_name = config.key_name;
  const auto partitions = config.partitions;
  const bool kafka_mode = config.kafka;
  const auto& kafka_brokers = config.kafka_brokers;
  const auto& topic = config.topic;
  const auto replication_factor = config.replication_factor;
  const auto& txn_prefix = config.transactional_id_prefix;
  const auto& kafka_settings = config.kafka_settings;
  const auto& ingest_topic = config.ingest_topic;
  const bool no_ingest = config.no_ingest;
  const auto& tokens = config.tokens;
  const auto& password_options = config.password;
  const auto& identity_limits = config.limits;
  const auto& mail = config.mail;
  auto so = config.server;

  const ledger::DataDir dir{data_dir};
  std::string created;
  if (auto r = ledger::init_data_dir(dir, partitions, key_name, &created,
                                     /*embedded_log=*/!kafka_mode);
      !r) {
    return fail("cannot initialise " + data_dir + ": " + r.error().message());
  }
  if (!created.empty()) std::cerr << created;
  auto signer = ledger::CheckpointSigner::load(dir.signing_key(), key_name);
  if (!signer)
    return fail("checkpoint signing key " + dir.signing_key() + ": " + signer.error().message());
  auto kek = ledger::load_kek(dir);
  if (!kek) return fail("key-encryption key: " + kek.error().message());
  std::unique_ptr<ledger::Log> log_holder;
  ledger::KafkaLog* kafka = nullptr;
  ledger::KafkaKeys* kafka_keys = nullptr;  // owned by `keys`
  std::unique_ptr<ledger::KeyStore> keys;
  if (kafka_mode) {
    ledger::KafkaLogOptions ko;
    ko.brokers = kafka_brokers;
    ko.topic = topic;
    ko.partitions = partitions;
    ko.replication_factor = static_cast<std::int16_t>(replication_factor);
    ko.transactional_id_prefix = txn_prefix;
    ko.signer = &signer.value();
    ko.client_config = kafka_settings;
    ko.log = [](const std::string& line) { std::cerr << "ledgerd: " << line << "\n"; };
    auto opened = ledger::KafkaLog::open(ko);
    if (!opened) {
      return fail("cannot open the Kafka log " + topic + " at " + kafka_brokers + ": " +
                  opened.error().message());
    }
    kafka = opened.value().get();
    auto backend = std::make_unique<ledger::KafkaKeys>(*kafka);
    kafka_keys = backend.get();
    auto k = ledger::KeyStore::open(std::move(backend), std::move(kek).value());
    if (!k) {
      return fail(k.error() == ledger::Errc::key_invalid
                      ? "key-encryption key does not match this ledger"
                      : "cannot read the data keys in Kafka: " + kafka->last_error());
    }
    keys = std::move(k).value();
    log_holder = std::move(opened).value();
  } else {
    ledger::LogOptions lo;
    lo.path = dir.log_path();
    lo.signer = &signer.value();
    ledger::Fault fault;
    auto opened = ledger::LogStore::open(lo, &fault);
    if (!opened) {
      if (opened.error() == ledger::Errc::chain_broken) {
        return fail("refusing to start: chain broken at partition " +
                    std::to_string(fault.position.partition.value) + " seq " +
                    std::to_string(fault.position.seq.value) + ": " + fault.reason + " (" +
                    fault.detail + ")");
      }
      return fail("cannot open the ledger: " + opened.error().message());
    }
    auto k = ledger::KeyStore::open(*opened.value(), std::move(kek).value());
    if (!k) return fail("key-encryption key does not match this ledger");
    keys = std::move(k).value();
    log_holder = std::move(opened).value();
  }
  // Checked against the ledger (both modes) before anything hashes with it: a different key
  // would make every known email, code and token look unknown, silently.
  auto lookup_key = ledger::load_lookup_key(dir);
  if (!lookup_key) return fail("lookup-hash key: " + lookup_key.error().message());
  if (auto r = keys->check_lookup_key(lookup_key.value()); !r) {
    return fail(r.error() == ledger::Errc::key_invalid
                    ? "refusing to start: " + ledger::lookup_key_source(dir) +
                          " is not the lookup-hash key this ledger was first started with, so "
                          "known emails would look unknown; copy keys/lookup-key from the data "
                          "directory of the node that first started this ledger (or from its "
                          "backup), or set SECHEX_LOOKUP_KEY to its contents, and start again"
                    : "cannot check the lookup-hash key: " + r.error().message() +
                          (kafka != nullptr ? " " + kafka->last_error() : std::string()));
  }
  ledger::Log& log = *log_holder;
  auto ownership = api::PartitionOwnership::resolve(log.partition_count(), config.ownership);
  if (!ownership) return fail(ownership.error().why);

  auto read_models = projections::ProjectionStore::open(
      dir.projections_path(), log.partition_count(), projections::default_projections());
  if (!read_models) {
    return fail(read_models.error() == ledger::Errc::store_locked
                    ? "projections at " + dir.projections_path() + " are in use by another process"
                    : "cannot open projections: " + read_models.error().message());
  }

  const auto& clock = SystemClock::instance();
  auto ring =
      api::jose::KeyRing::load_or_create(api::jwt_keys_dir(data_dir), clock, tokens.ring_options());
  if (!ring) return fail("token signing keys: " + ring.error().message());
  api::jose::TokenVerifier verifier(*ring.value(), clock, tokens.verifier_config());

  api::Metrics metrics;
  // A Kafka partition this node does not write has no local head; its projected length is
  // what this node knows without a round trip to the cluster per scrape.
  LedgerMetrics ledger_metrics(metrics, log, [&](ledger::Partition p) -> std::uint64_t {
    if (kafka != nullptr && !kafka->writes(p)) return read_models.value()->position(p).value;
    return log.head(p).next.value;
  });
  auto& lag_gauge = prometheus::BuildGauge()
                        .Name("sechex_projection_lag_records")
                        .Help("Log records not yet applied to the projections")
                        .Register(metrics.registry())
                        .Add({});
  metrics.on_scrape([&] { lag_gauge.Set(static_cast<double>(read_models.value()->lag(log))); });
  // The Kafka writers' state: partitions this node writes now, and those whose writer another
  // one fenced (appends to them fail until a restart). The embedded log writes every partition.
  auto& writer_state = prometheus::BuildGauge()
                           .Name("sechex_ledger_partitions_writer")
                           .Help("Partitions by this node's writer state (writing, fenced)")
                           .Register(metrics.registry());
  auto& writing_gauge = writer_state.Add({{"state", "writing"}});
  auto& fenced_gauge = writer_state.Add({{"state", "fenced"}});
  metrics.on_scrape([&] {
    std::uint32_t writing = 0, fenced = 0;
    for (std::uint32_t i = 0; i < log.partition_count(); ++i) {
      const ledger::Partition p{i};
      if (kafka == nullptr || kafka->writes(p)) ++writing;
      if (kafka != nullptr && kafka->fenced(p)) ++fenced;
    }
    writing_gauge.Set(writing);
    fenced_gauge.Set(fenced);
  });
  auto& auth_rejections = prometheus::BuildCounter()
                              .Name("sechex_auth_rejected_total")
                              .Help("Requests refused by authentication, by reason")
                              .Register(metrics.registry());
  api::Authenticator auth(verifier, *read_models.value(), clock, [&](std::string_view reason) {
    auth_rejections.Add({{"reason", std::string(reason)}}).Increment();
  });
  auto& ingest_events = prometheus::BuildCounter()
                            .Name("sechex_ingest_events_total")
                            .Help("Application events appended through POST /v1/events")
                            .Register(metrics.registry())
                            .Add({});
  auto& append_latency =
      prometheus::BuildHistogram()
          .Name("sechex_command_append_seconds")
          .Help("Time to decide, append durably and apply one partition's events")
          .Register(metrics.registry())
          .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                           0.05, 0.1, 0.25, 1});
  api::CommandPath commands(log, *read_models.value(), ownership.value());
  // What the dashboard shows of the security events themselves (000 NFR-06): every event this
  // node chains by type (logins, lockouts, OTP, payments, ...: each event is counted once in a
  // cluster, by the node that owns its partition), and login failures by reason. Every series
  // exists from the start so rates and alerts have something to read.
  auto& events_by_type = prometheus::BuildCounter()
                             .Name("sechex_events_total")
                             .Help("Events chained by this node's commands, by type")
                             .Register(metrics.registry());
  std::map<std::string, prometheus::Counter*, std::less<>> event_counters;
  for (const auto& name : schemas::event_type_names()) {
    event_counters[name] = &events_by_type.Add({{"type", name}});
  }
  auto& login_failures = prometheus::BuildCounter()
                             .Name("sechex_login_failures_total")
                             .Help("Failed password logins, by reason")
                             .Register(metrics.registry());
  std::map<std::string, prometheus::Counter*, std::less<>> login_failure_counters;
  for (const char* reason : {"wrong_password", "unknown_email", "account_disabled", "locked",
                             "email_not_verified", "other"}) {
    login_failure_counters[reason] = &login_failures.Add({{"reason", reason}});
  }
  commands.set_observer([&](std::span<const ledger::Record> records) {
    for (const auto& r : records) {
      const auto* env = schemas::envelope_of(r.event.data());
      if (auto it = event_counters.find(schemas::event_type_name(env->event_type()));
          it != event_counters.end()) {
        it->second->Increment();
      }
      if (const auto* failed = env->event_as_LoginFailed()) {
        // Reasons come from decide(); anything unexpected is "other", never a new label.
        const auto reason = failed->reason() != nullptr ? failed->reason()->string_view() : "";
        auto it = login_failure_counters.find(reason);
        if (it == login_failure_counters.end()) it = login_failure_counters.find("other");
        it->second->Increment();
      }
    }
  });
  api::LedgerApi ledger_api(commands, *keys, auth, *ring.value(), clock,
                            {.on_append =
                                 [&](std::size_t n, std::chrono::steady_clock::duration d) {
                                   ingest_events.Increment(static_cast<double>(n));
                                   append_latency.Observe(std::chrono::duration<double>(d).count());
                                 },
                             .on_misdirected = [&] { metrics.count_rejected("misdirected"); }});
  // Mail delivery (api/mail/mail.h); started once the projections caught up, stopped before the
  // log.
  auto& mail_sent = prometheus::BuildCounter()
                        .Name("sechex_mail_sent_total")
                        .Help("Mails handed to their transport, by transport (smtp, file)")
                        .Register(metrics.registry());
  for (const char* t : {"smtp", "file"}) mail_sent.Add({{"transport", t}});
  auto& mail_failures = prometheus::BuildCounter()
                            .Name("sechex_mail_delivery_failures_total")
                            .Help("Mails given up after their last attempt (admin alert)")
                            .Register(metrics.registry())
                            .Add({});
  api::MailWorker mail_worker(
      commands, *keys, mail, clock,
      {.on_sent =
           [&](std::string_view t) {
             mail_sent.Add({{"transport", std::string(t)}}).Increment();
           },
       .on_final_failure = [&](std::string_view) { mail_failures.Increment(); },
       .log = [](const std::string& line) { std::cerr << "ledgerd: " << line << "\n"; }});
  // Webhooks out (api/webhooks/delivery.h); started once the projections caught up, stopped
  // before the log. A final failure mails the --admin-email addresses in its own append.
  auto& webhook_outcomes = prometheus::BuildCounter()
                               .Name("sechex_webhook_deliveries_total")
                               .Help(
                                   "Webhook delivery attempts recorded, by outcome "
                                   "(delivered, retry, failed: given up, the admin alert)")
                               .Register(metrics.registry());
  for (const char* o : {"delivered", "retry", "failed"}) webhook_outcomes.Add({{"outcome", o}});
  api::webhooks::WorkerConfig webhook_config;
  webhook_config.client.allow_private_targets = config.webhook_allow_private_targets;
  api::webhooks::WebhookWorker webhook_worker(
      commands, *keys, webhook_config, clock,
      {.on_delivered =
           [&](std::uint32_t) {
             webhook_outcomes.Add({{"outcome", "delivered"}}).Increment();
           },
       .on_retry =
           [&] {
             webhook_outcomes.Add({{"outcome", "retry"}}).Increment();
           },
       .on_final_failure =
           [&](const projections::WebhookDelivery&, const api::webhooks::DeliveryDecision&) {
             webhook_outcomes.Add({{"outcome", "failed"}}).Increment();
           },
       .log = [](const std::string& line) { std::cerr << "ledgerd: " << line << "\n"; },
       .queue_admin_alert = [&](const ledger::EventMeta& meta,
                                std::string_view what) -> Result<std::vector<ledger::Bytes>> {
         std::vector<ledger::Bytes> out;
         for (const auto& admin : mail.admin_emails) {
           auto alert = api::build_mail_queued(
               *keys, meta, {api::kMailAdminAlert, admin, std::string(what), "en"});
           if (!alert && alert.error() == ledger::Errc::erased) continue;
           if (!alert) return alert.error();
           out.push_back(std::move(alert.value().bytes));
         }
         return out;
       },
       .alert_queued = [&] { mail_worker.notify(); }});
  auto& cleaned = prometheus::BuildCounter()
                      .Name("sechex_projection_expired_deleted_total")
                      .Help(
                          "Expired projection entries deleted by the scheduled cleanup, by "
                          "column family")
                      .Register(metrics.registry());
  const api::LookupHasher lookup(lookup_key.value());
  auto hasher = api::PasswordHasher::create(password_options);
  if (!hasher) return fail("password hashing: " + hasher.error().message());
  api::jose::TokenIssuer issuer(*ring.value(), clock, tokens.issuer_config());
  const api::IdentityConfig identity_config{.public_origin = mail.public_url,
                                            .proxies = config.proxies};
  // Browser sessions: cookies and CSRF tokens (api/auth/csrf.h). A refusal is itself audited.
  // Tokens issued before this start are refused: the spent ones are remembered in memory.
  api::CsrfTokens csrf(lookup, clock.now());
  auth.enable_cookies(
      {.tokens = &csrf,
       .clock = &clock,
       .public_origin = mail.public_url,
       .on_csrf_rejected = [&](const api::Principal& who, const api::Request& req,
                               std::string_view reason) {
         auto recorded = commands.run(
             commands.partition_for(who.subject), [&]() -> Result<std::vector<ledger::Bytes>> {
               ledger::EventBuilder b(keys.get(), {.subject = who.subject,
                                                   .actor = who.subject,
                                                   .request_id = req.request_id,
                                                   .time_micros = clock.now_micros(),
                                                   .ip = std::nullopt,
                                                   .user_agent = std::nullopt});
               auto& f = b.fbb();
               SECHEX_TRY(auto event,
                          b.finish(schema::CreateCsrfRejected(
                              f, f.CreateString(ledger::to_utf8(req.path, kMaxRecordedPath)),
                              f.CreateString(std::string(reason)))));
               return std::vector<ledger::Bytes>{std::move(event)};
             });
         if (!recorded) {
           std::cerr << "ledgerd: recording a CSRF refusal failed: " << recorded.error().message()
                     << "\n";
         }
       }});
  // The routes that answer 202 whatever the address do their work after answering
  // (identity_support.h accept_then): fsync-bound appends, so as many threads as the blocking
  // pool for group commit. Stopped before the log closes.
  api::WorkQueue deferred({.max_queued = 1024, .threads = so.pool_threads});
  // Security alerts (spec 002: an account locked after too many wrong codes) are audit events
  // (AccountLocked), this counter and one log line naming the user id only.
  auto& security_alerts = prometheus::BuildCounter()
                              .Name("sechex_security_alerts_total")
                              .Help("Security alerts raised, by kind")
                              .Register(metrics.registry());
  auto& otp_lockout_alerts = security_alerts.Add({{"kind", "otp_lockout"}});
  const api::identity::CommandDeps command_deps{
      .commands = commands,
      .keys = *keys,
      .issuer = issuer,
      .hasher = *hasher.value(),
      .lookup = lookup,
      .disposable = api::identity::DisposableDomains::builtin(),
      .queue_mail = [&](const ledger::EventMeta& meta, std::string_view kind, std::string_view to,
                        std::string_view secret, std::string_view locale) -> Result<ledger::Bytes> {
        SECHEX_TRY(auto queued, api::build_mail_queued(*keys, meta,
                                                       {std::string(kind), std::string(to),
                                                        std::string(secret), std::string(locale)}));
        return std::move(queued.bytes);
      },
      .mail_queued = [&] { mail_worker.notify(); },
      .log = [](const std::string& line) { std::cerr << "ledgerd: " << line << "\n"; },
      .on_otp_lockout =
          [&](std::string_view user) {
            otp_lockout_alerts.Increment();
            std::cerr << "ledgerd: security alert otp_lockout: account " << user
                      << " locked after too many wrong codes; an admin must unlock it\n";
          },
      .on_otp_rate_limited =
          [](std::string_view subject) {
            std::cerr << "ledgerd: otp validation rate limit hit for " << subject << "\n";
          }};
  api::identity::IdentityCommands identity_commands(command_deps, {.limits = identity_limits});
  api::identity::SecretCommands secret_commands(command_deps, identity_commands);
  api::identity::PaymentCommands payment_commands(command_deps, [&] { webhook_worker.notify(); });
  api::oauth::HttpProviders oauth_providers(config.oauth_providers);
  api::identity::OAuthCommands oauth_commands(command_deps, {.limits = identity_limits},
                                              oauth_providers, config.oauth_state_lifetime);
  // Exclusive mode: attestations are checked against --attestation-roots (none: every chain is
  // refused, so only --allow-self-attestation devices can activate).
  std::optional<api::webauthn::TrustStore> attestation_roots;
  if (!config.attestation_roots_pem.empty()) {
    auto roots = api::webauthn::TrustStore::from_pem(config.attestation_roots_pem);
    if (!roots) {
      std::cerr << "ledgerd: --attestation-roots: a certificate does not parse\n";
      return 2;
    }
    attestation_roots = std::move(roots).value();
  }
  api::identity::ExclusiveConfig exclusive_config;
  exclusive_config.origin = config.public_origin;
  exclusive_config.rp_id = config.rp_id;
  exclusive_config.roots = attestation_roots ? &*attestation_roots : nullptr;
  exclusive_config.allow_self_attestation = config.allow_self_attestation;
  std::optional<api::webauthn::TrustStore> app_attest_roots;
  if (!config.app_attest_app_id.empty()) {
    auto roots = api::webauthn::TrustStore::from_pem(config.app_attest_roots_pem);
    if (!roots) {
      std::cerr << "ledgerd: --app-attest-roots: a certificate does not parse\n";
      return 2;
    }
    app_attest_roots = std::move(roots).value();
    exclusive_config.app_attest = api::webauthn::AppAttestApp{
        config.app_attest_app_id, config.app_attest_development, &*app_attest_roots};
  }
  exclusive_config.upgrade_url = config.public_origin + "/help/exclusive-mode#devices";
  // API.md: a proof's htu is --public-url plus the request's path.
  exclusive_config.public_url = config.mail.public_url;
  while (exclusive_config.public_url.ends_with('/')) exclusive_config.public_url.pop_back();
  exclusive_config.idle = config.exclusive_idle;
  exclusive_config.rate_per_second = config.exclusive_rate;
  if (config.dpop_nonce) {
    // Derived from the lookup-hash key, so every node of a deployment makes the same nonces.
    const auto key = lookup.token("dpop_nonce_key", "v1");
    exclusive_config.nonces =
        std::make_shared<const api::dpop::NonceSource>(ledger::Bytes(key.begin(), key.end()));
  }
  // 000 NFR-06: activations, refusals by stage and reason (spoofs and replays among them), and
  // the time the token and proof checks of a signed request take (NFR-02: < 5 ms).
  auto& exclusive_activations = prometheus::BuildCounter()
                                    .Name("sechex_exclusive_activations_total")
                                    .Help("Exclusive-mode activations accepted")
                                    .Register(metrics.registry())
                                    .Add({});
  auto& exclusive_refusals = prometheus::BuildCounter()
                                 .Name("sechex_exclusive_refusals_total")
                                 .Help(
                                     "Exclusive-mode activations and signed requests refused, "
                                     "by stage and reason")
                                 .Register(metrics.registry());
  for (const char* reason : {"spoof_attempt", "replay_detected"}) {
    exclusive_refusals.Add({{"stage", "request"}, {"reason", reason}});
  }
  auto& exclusive_proof_seconds =
      prometheus::BuildHistogram()
          .Name("sechex_exclusive_proof_check_seconds")
          .Help("Token and DPoP proof checks of one accepted signed request")
          .Register(metrics.registry())
          .Add({},
               prometheus::Histogram::BucketBoundaries{0.0001, 0.00015, 0.0002, 0.0003, 0.0005,
                                                       0.00075, 0.001, 0.002, 0.005, 0.01, 0.05});
  exclusive_config.on_activated = [&] { exclusive_activations.Increment(); };
  exclusive_config.on_refused = [&](std::string_view stage, std::string_view reason) {
    exclusive_refusals.Add({{"stage", std::string(stage)}, {"reason", std::string(reason)}})
        .Increment();
  };
  exclusive_config.on_proof_checked = [&](std::chrono::steady_clock::duration d) {
    exclusive_proof_seconds.Observe(std::chrono::duration<double>(d).count());
  };
  api::identity::ExclusiveCommands exclusive_commands(command_deps, identity_commands, verifier,
                                                      std::move(exclusive_config));
  const api::IdentityDeps identity_deps{
      .identity = identity_commands,
      .auth = auth,
      .lookup = lookup,
      .clock = clock,
      .deferred = deferred,
      .csrf = &csrf,
      .log = [](const std::string& line) { std::cerr << "ledgerd: " << line << "\n"; }};
  // 002 "Active session tracking": activity extends a session, recorded at most once a minute
  // (or a quarter of --session-idle when that is shorter, session_activity.h).
  api::SessionActivity activity(commands, *keys, clock, identity_limits);
  auth.on_authenticated([&](const api::Principal& who) {
    activity.seen(projections::UserId(who.subject), projections::SessionId(who.session));
  });
  api::IdentityApi identity_api(identity_deps, identity_config);
  api::AccountApi account_api(identity_deps, identity_config);
  api::SecretsApi secrets_api(identity_deps, identity_config, secret_commands);
  api::PaymentsApi payments_api(identity_deps, identity_config,
                                {.provider_secret = config.payment_webhook_secret,
                                 .allow_http_endpoints = config.webhook_allow_private_targets},
                                payment_commands);
  api::ExclusiveApi exclusive_api(identity_deps, identity_config, exclusive_commands);
  api::OtpApi otp_api(identity_deps, identity_config);
  api::AdminApi admin_api(identity_deps, identity_config);
  api::OAuthApi oauth_api(identity_deps, identity_config, oauth_commands);
  std::atomic<bool> caught_up{false};
  // Queued 202 work references the APIs above: on any way out of main it is finished (or
  // dropped) before they go. The servers, declared below, go first and may still queue some.
  struct StopBeforeTheApis {
    api::WorkQueue& queue;
    ~StopBeforeTheApis() { queue.stop(); }
  } stop_deferred{deferred};
  api::Router router;
  api::RouteRegistry routes(router, auth);
  ledger_api.add_routes(routes);
  identity_api.add_routes(routes);
  account_api.add_routes(routes);
  secrets_api.add_routes(routes);
  payments_api.add_routes(routes);
  exclusive_api.add_routes(routes);
  otp_api.add_routes(routes);
  admin_api.add_routes(routes);
  oauth_api.add_routes(routes);
  api::add_health_routes(router, [&] { return caught_up.load(); });
  // Last: the document marks what this router does not serve (/metrics is on its own listener).
  api::add_openapi_route(router, {{"GET", "/metrics"}});
  // Every served route has its rule in the one table (route_access.h), every rule a route, and
  // every restricted route its guard.
  if (const auto mismatches = routes.mismatches(); !mismatches.empty()) {
    std::string all;
    for (const auto& m : mismatches) all += "\n  " + m;
    return fail("the routes do not match the route table (api/auth/src/route_access.cc):" + all);
  }
  const auto access_logger = api::make_json_stderr_logger("access");
  api::HttpServer server(
      so, std::move(router),
      api::chain_observers({metrics.observer(), api::access_log(access_logger)}));
  // Metrics apart from the API (metrics.h): scrapers reach it, API clients do not.
  std::optional<api::HttpServer> metrics_server;
  if (config.metrics) {
    api::Router metrics_router;
    api::add_health_and_metrics_routes(metrics_router, metrics, [&] { return caught_up.load(); });
    auto mo = so;
    mo.address = config.metrics->first;
    mo.port = config.metrics->second;
    mo.threads = 1;
    mo.pool_threads = 1;
    mo.read_pool_threads = 1;
    metrics_server.emplace(mo, std::move(metrics_router), api::access_log(access_logger));
  }

  if (auto r = server.start(); !r) {
    return fail("cannot listen on " + config.listen + ": " + r.error().message);
  }
  if (metrics_server) {
    if (auto r = metrics_server->start(); !r) {
      return fail("cannot listen on --metrics-listen " + config.metrics_listen + ": " +
                  r.error().message);
    }
    std::cerr << "ledgerd: metrics on " << config.metrics->first << ":" << metrics_server->port()
              << "\n";
  }
  // Before the serving line, which tells tests and scripts that start-up is done.
  if (!commands.ownership().owns_all()) {
    std::cerr << "ledgerd: runs commands for partitions " << commands.ownership().describe()
              << " only; the others answer 421 misdirected\n";
  }
  std::cerr << "ledgerd: serving on " << so.address << ":" << server.port()
            << (so.tls_cert_file.empty() ? " (plain HTTP" : " (TLS 1.3") << ", ledger "
            << log.ledger_id() << ", " << log.partition_count() << " partitions, data in "
            << data_dir << ")\n";

  // Catch up before /readyz says ready; /healthz answers meanwhile. Then, in Kafka mode, start
  // chaining the ingest topic's records (on current projections, like any command).
  std::unique_ptr<api::IngestWorker> ingest_worker;
  std::thread catch_up([&] {
    const auto n = commands.sync_all();
    if (!n) {
      std::cerr << "ledgerd: projection catch-up failed: " << n.error().message() << "\n";
      if (n.error() == ledger::Errc::pruned) {
        // A node whose projections start below a retention cut (a new node, or one left
        // behind) cannot derive them from the log any more: it stays not ready.
        std::cerr << "ledgerd: these projections are behind the retention cut of the log and "
                     "cannot be derived from it: on a current node run `ledgerctl --data-dir DIR "
                     "projections snapshot --to COPY` (it may keep running), then stop this node, "
                     "replace its projections directory with COPY and start it again\n";
      }
      return;
    }
    std::cerr << "ledgerd: projections caught up (" << n.value() << " records applied)\n";
    mail_worker.start();
    webhook_worker.start();
    activity.start();
    if (kafka != nullptr && !no_ingest) {
      auto w = api::IngestWorker::start(
          *kafka, commands, *keys, clock,
          {.topic = ingest_topic,
           .group_id = txn_prefix + "ledger-ingest",
           .max_batch = 512,
           .log = [](const std::string& line) { std::cerr << "ledgerd: " << line << "\n"; }});
      if (!w) {
        std::cerr << "ledgerd: cannot consume " << ingest_topic << ": " << w.error().message()
                  << " " << kafka->last_error() << "\n";
        return;  // not ready: an operator must look
      }
      ingest_worker = std::move(w).value();
      std::cerr << "ledgerd: chaining records of " << ingest_topic << " exactly once\n";
    }
    caught_up = true;
  });

  // Time-based checkpoints for partitions that went quiet, and the token key ring re-read so
  // rotations made by `ledgerctl keys rotate` are picked up. Checkpoints never touch a partition
  // another node owns: a Kafka log signs only for partitions whose writer this process created,
  // and only appends create writers, which CommandPath refuses for non-owned partitions. The
  // embedded log has no other writer to fence and checkpoints every partition.
  api::PeriodicTask checkpointer(std::chrono::seconds(1), [&, ticks = 0u](const auto&) mutable {
    if (auto r = log.checkpoint_due(); !r) {
      std::cerr << "ledgerd: checkpointing failed: " << r.error().message() << "\n";
    }
    if (++ticks % 2 == 0) {
      if (auto r = ring.value()->reload(); !r) {
        std::cerr << "ledgerd: reloading token keys failed: " << r.error().message() << "\n";
      }
    }
  });
  checkpointer.start();

  // 003 FR-040: expired temporary data (sessions, idempotency keys, webhook ids, rate windows,
  // replay caches, timed lockouts) is deleted on its own schedule, on its own thread, never on
  // the request path: once the projections have caught up after start-up (a node restarted
  // more often than the interval still cleans), then every --cleanup-interval. The margin
  // covers events decided just before (store.h).
  std::optional<std::chrono::steady_clock::time_point> next_cleanup;
  api::PeriodicTask cleaner(std::chrono::seconds(1), [&](const auto&) {
    if (!caught_up) return;
    const auto now = std::chrono::steady_clock::now();
    if (next_cleanup && now < *next_cleanup) return;
    next_cleanup = now + config.cleanup_interval;
    const auto upto = clock.now_micros() - projections::ProjectionStore::kCleanupSafetyMargin;
    std::map<std::string, std::uint64_t> removed;
    const auto r = read_models.value()->cleanup(upto, UINT64_MAX, &removed);
    std::ostringstream line;
    line << "ledgerd: cleanup " << (r ? "removed " : "failed after removing ");
    std::uint64_t total = 0;
    for (const auto& [family, n] : removed) {
      cleaned.Add({{"family", family}}).Increment(static_cast<double>(n));
      total += n;
    }
    line << total << " expired entries";
    for (const auto& [family, n] : removed) line << ", " << family << " " << n;
    if (!r) line << ": " << r.error().message();
    line << "; next in " << config.cleanup_interval.count() << " s\n";
    std::cerr << line.str();
  });
  cleaner.start();

  // Retention (design card: 90-day windows; ledger/retention.h): on its own thread, once the
  // projections have caught up, then every --retention-interval. Each step is chained through
  // the command path into the partition it prunes before its payloads go, and never reaches
  // past what the projections applied; in Kafka mode a node prunes the partitions it owns.
  auto& retention_pruned = prometheus::BuildCounter()
                               .Name("sechex_retention_pruned_records_total")
                               .Help("Records whose payloads retention removed")
                               .Register(metrics.registry())
                               .Add({});
  auto& retention_runs = prometheus::BuildCounter()
                             .Name("sechex_retention_runs_total")
                             .Help("Retention runs by outcome (ok, failed)")
                             .Register(metrics.registry());
  // Both outcomes exist from the start, so an alert on failures has a series to watch.
  auto& retention_ok = retention_runs.Add({{"outcome", "ok"}});
  auto& retention_failed = retention_runs.Add({{"outcome", "failed"}});
  std::optional<std::chrono::steady_clock::time_point> next_retention;
  api::PeriodicTask retention(std::chrono::seconds(1), [&](const auto&) {
    if (!caught_up || config.retention_days == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (next_retention && now < *next_retention) return;
    next_retention = now + config.retention_interval;
    ledger::RetentionOptions ro;
    ro.before_micros =
        clock.now_micros() - static_cast<std::int64_t>(config.retention_days) * 86'400'000'000;
    ro.window_days = config.retention_days;
    if (auto id = ledger::crypto::random_bytes(8)) ro.run_id = ledger::to_hex(id.value());
    ro.limit = [&](ledger::Partition p) {
      return commands.ownership().owns(p) ? read_models.value()->position(p) : ledger::Seq{0};
    };
    if (!config.retention_archive_dir.empty()) {
      ro.before = [&](const std::vector<ledger::RetentionStep>& steps) -> Result<void> {
        SECHEX_TRY(auto path, ledger::write_archive_file(log, ledger::archive_ranges(steps),
                                                         config.retention_archive_dir,
                                                         "retention-" + ro.run_id + ".jsonl"));
        std::cerr << "ledgerd: retention run " << ro.run_id << " archived what goes to " << path
                  << "\n";
        return boost::outcome_v2::success();
      };
    }
    const auto report =
        ledger::run_retention(log, ro, [&](const ledger::RetentionStep& step) -> Result<void> {
          SECHEX_TRY(
              auto done, commands.run(step.partition, [&]() -> Result<std::vector<ledger::Bytes>> {
                SECHEX_TRY(auto event, ledger::retention_event(step, ro, log.partition_count(),
                                                               clock.now_micros()));
                return std::vector<ledger::Bytes>{std::move(event)};
              }));
          (void)done;
          return boost::outcome_v2::success();
        });
    if (!report) {
      retention_failed.Increment();
      std::cerr << "ledgerd: retention run " << ro.run_id << " failed: " << report.error().message()
                << "\n";
      return;
    }
    retention_ok.Increment();
    // Sign the chained steps now rather than within a minute: the run is evidence.
    if (!report.value().steps.empty()) {
      if (auto r = log.checkpoint_due(/*force=*/true); !r) {
        std::cerr << "ledgerd: checkpoint after retention failed: " << r.error().message() << "\n";
      }
    }
    retention_pruned.Increment(static_cast<double>(report.value().records));
    std::cerr << "ledgerd: retention run " << ro.run_id << " pruned " << report.value().records
              << " records older than " << config.retention_days << " days ("
              << report.value().bytes_freed << " payload bytes) in " << report.value().steps.size()
              << " chained steps; next in " << config.retention_interval.count() << " s\n";
  });
  retention.start();

  // Kafka mode: other nodes append to the partitions this one does not write; follow them so
  // reads (audit, auth's revocation checks) stay within about a second of the cluster.
  std::chrono::steady_clock::time_point next_cut_refresh{};
  api::PeriodicTask follower(std::chrono::milliseconds(500), [&](const auto& stopping) {
    if (!caught_up) return;
    // Erasures made by other nodes reach this node's key cache (off the request path).
    if (auto r = kafka_keys->refresh_if_stale(); !r && r.error() != ledger::Errc::closed) {
      std::cerr << "ledgerd: reading the data keys failed: " << r.error().message() << "\n";
    }
    // Retention cuts other nodes made, so answers say "pruned before ..." at once (reads that
    // meet a deleted range would find out anyway). At most once a second.
    if (const auto now = std::chrono::steady_clock::now(); now >= next_cut_refresh) {
      next_cut_refresh = now + std::chrono::seconds(1);
      if (auto r = kafka->refresh_retention(); !r && r.error() != ledger::Errc::closed) {
        std::cerr << "ledgerd: reading the retention cuts failed: " << r.error().message() << "\n";
      }
    }
    for (std::uint32_t i = 0; i < log.partition_count() && !stopping; ++i) {
      const ledger::Partition p{i};
      if (kafka->writes(p)) continue;  // the command path keeps it current
      auto r = commands.follow(p);
      if (!r && r.error() == ledger::Errc::closed) break;  // shutting down
      if (!r) {
        std::cerr << "ledgerd: following partition " << i << " failed: " << r.error().message()
                  << "\n";
      }
    }
  });
  if (kafka != nullptr) follower.start();

  const int sig = wait_for_stop();
  std::cerr << "ledgerd: stopping (signal " << sig << ")\n";
  server.stop();
  if (metrics_server) metrics_server->stop();
  // What was answered 202 is done before the log closes, and before Kafka reads are cut short.
  deferred.stop();
  // Reads that wait on an unreachable cluster (catch-up, the follower) end now, not after
  // their timeouts: a shutdown must fit in a supervisor's grace period.
  if (kafka != nullptr) kafka->interrupt();
  catch_up.join();
  activity.stop();
  mail_worker.stop();     // before the log closes; an SMTP transfer in flight is aborted
  webhook_worker.stop();  // likewise an HTTP delivery in flight
  if (ingest_worker) ingest_worker->stop();
  cleaner.stop();
  retention.stop();
  checkpointer.stop();
  // A Kafka call that ignores its timeout while no broker answers must not hold the stop past a
  // supervisor's grace period. Nothing is pending then (the server, ingest and checkpoints have
  // stopped) and the projections commit atomically, so leaving is safe.
  if (!follower.stop(std::chrono::seconds(5))) {
    std::cerr << "ledgerd: a read of the Kafka cluster did not end within 5 s of stopping; "
                 "exiting without waiting for it\n";
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
    std::cerr.flush();
    std::_Exit(0);
  }
  (void)log.checkpoint_due(/*force=*/true);
  // Buffered access-log lines go out before exit (shutdown() alone drops loggers unflushed).
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
  spdlog::shutdown();
  return 0;
}

}  // namespace sechex::ledgerd
