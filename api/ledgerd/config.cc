#include "config.h"

#include <boost/program_options.hpp>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "api/crypto/dpop.h"
#include "ledger/checkpoint.h"
#include "ledger/data_dir.h"
#include "ledger/kafka_log.h"
#include "projections/rate_limits.h"

namespace sechex::ledgerd {
namespace {

namespace po = boost::program_options;

class ConfigCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.ledgerd.config"; }
  std::string message(int code) const override {
    switch (static_cast<ConfigErrc>(code)) {
      case ConfigErrc::help_shown:
        return "help shown";
      case ConfigErrc::invalid:
        return "invalid configuration";
    }
    return "unknown configuration error";
  }
};

std::error_code invalid(std::ostream& err, const std::string& message) {
  err << "ledgerd: " << message << "\n";
  return ConfigErrc::invalid;
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}

// A flag's value, or what is wrong with it.
template <typename T>
using Checked = ResultOf<T, std::string>;

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

// "HOST:PORT" (HOST may be a bracketed IPv6 address) into its parts.
Checked<HostPort> split_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return std::string("must be HOST:PORT");
  HostPort out;
  out.host = listen.substr(0, colon);
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  int port = -1;
  try {
    std::size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) return std::string("bad port");
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

// Completes the mail settings from the flags, or says why they are unusable.
Checked<void> configure_mail(api::MailerConfig& mail, const std::string& password_file,
                             bool allow_plaintext, const std::string& data_dir) {
  if (!mail.smtp_url.empty() && mail.smtp_url.rfind("smtp://", 0) != 0 &&
      mail.smtp_url.rfind("smtps://", 0) != 0) {
    return std::string("--smtp-url must start with smtp:// or smtps://");
  }
  if (mail.username.empty() != password_file.empty()) {
    return std::string("--smtp-user and --smtp-password-file go together");
  }
  if (!password_file.empty()) {
    auto password = ledger::read_secret_file(password_file);
    if (!password) return std::move(password.error);
    mail.password = std::move(password.secret);
  }
  if (mail.public_url.rfind("http://", 0) != 0 && mail.public_url.rfind("https://", 0) != 0) {
    return std::string("--public-url must start with http:// or https://");
  }
  mail.require_tls = !allow_plaintext && !api::is_loopback_smtp_url(mail.smtp_url);
  mail.outbox_dir = data_dir + "/outbox";
  return boost::outcome_v2::success();
}

}  // namespace

const std::error_category& config_category() noexcept {
  static const ConfigCategory c;
  return c;
}

Result<Config> parse_config(int argc, const char* const* argv, std::ostream& out,
                            std::ostream& err) {
  std::string listen, metrics_listen, data_dir, tls_cert, tls_key, key_name;
  std::uint32_t partitions = 8;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  api::ServerOptions so;
  unsigned idle_seconds = 15, read_seconds = 30;
  po::options_description desc("ledgerd options");
  desc.add_options()("help,h", "show help")(
      "listen", po::value(&listen)->default_value("127.0.0.1:8080"), "HOST:PORT")(
      "metrics-listen", po::value(&metrics_listen)->default_value("127.0.0.1:9464"),
      "HOST:PORT of the listener serving /metrics (and /healthz, /readyz) apart from the API, "
      "or `none`; TLS and --allow-insecure-http apply as to --listen")(
      "data-dir", po::value(&data_dir)->default_value("./data"), "data directory")(
      "partitions", po::value(&partitions)->default_value(8), "partitions for a new ledger")(
      "threads", po::value(&threads)->default_value(threads), "I/O threads (default: cores)")(
      "pool-threads", po::value(&so.pool_threads)->default_value(so.pool_threads),
      "threads for blocking work (appends, disk reads)")(
      "read-pool-threads", po::value(&so.read_pool_threads)->default_value(0),
      "threads for disk reads (0: as many as cores)")(
      "pool-queue", po::value(&so.pool_queue)->default_value(so.pool_queue),
      "blocking jobs allowed to wait; beyond that requests answer 503 overloaded")(
      "idle-timeout", po::value(&idle_seconds)->default_value(idle_seconds),
      "seconds a keep-alive connection may sit idle between requests")(
      "read-timeout", po::value(&read_seconds)->default_value(read_seconds),
      "seconds a request may take to arrive, from its first byte")(
      "tls-cert", po::value(&tls_cert), "TLS certificate (PEM)")("tls-key", po::value(&tls_key),
                                                                 "TLS private key (PEM)")(
      "allow-insecure-http", "permit plain HTTP on a non-loopback address")(
      "key-name", po::value(&key_name)->default_value(ledger::kDefaultKeyName),
      "checkpoint key name");
  api::TokenSettings tokens;
  std::int64_t skew_seconds = tokens.clock_skew.count();
  desc.add_options()("token-issuer", po::value(&tokens.issuer)->default_value(tokens.issuer),
                     "`iss` of access tokens (ledgerctl tokens issue must use the same)")(
      "token-audience", po::value(&tokens.audience)->default_value(tokens.audience),
      "`aud` of access tokens")("clock-skew", po::value(&skew_seconds)->default_value(skew_seconds),
                                "seconds of clock skew forgiven on token nbf/iat");
  // Identity (api/routes/identity_api.h): clients behind proxies, and the Argon2id pool.
  std::vector<std::string> trusted_proxies;
  api::PasswordHasher::Options password_options;
  api::identity::Limits identity_limits;
  std::int64_t session_idle_seconds = api::identity::whole_seconds(identity_limits.idle);
  std::int64_t remember_me_idle_seconds =
      api::identity::whole_seconds(identity_limits.remember_me_idle);
  desc.add_options()("trusted-proxy", po::value(&trusted_proxies),
                     "CIDR, repeatable: proxies whose X-Forwarded-For names the client")(
      "otp-validations-per-window",
      po::value(&identity_limits.otp_validations_per_window)
          ->default_value(identity_limits.otp_validations_per_window),
      "OTP validations allowed per address per 15 minutes (spec 002: 5); the lockout after "
      "more than 10 failures in an hour applies whatever this is")(
      "session-idle", po::value(&session_idle_seconds)->default_value(session_idle_seconds),
      "seconds without an authenticated request after which a session ends (spec 002: 24 h)")(
      "session-idle-remember-me",
      po::value(&remember_me_idle_seconds)->default_value(remember_me_idle_seconds),
      "the same for sessions started with rememberMe (API.md: 7 d); at least --session-idle")(
      "password-memory-kib",
      po::value(&password_options.params.m_cost_kib)
          ->default_value(password_options.params.m_cost_kib),
      "Argon2id memory per hash (OWASP minimum 19456); hashes made with other parameters are "
      "rehashed at the next login")(
      "password-passes",
      po::value(&password_options.params.t_cost)->default_value(password_options.params.t_cost),
      "Argon2id passes (OWASP minimum 2)")("password-threads",
                                           po::value(&password_options.threads)->default_value(0),
                                           "threads hashing passwords (0: as many as cores)")(
      "password-queue",
      po::value(&password_options.max_queue)->default_value(password_options.max_queue),
      "password checks allowed to wait; beyond that logins answer 503 overloaded");
  // Multi-node deployments (api/app/ownership.h): commands only for the partitions this node owns.
  std::vector<std::string> partition_owners;
  desc.add_options()(
      "owns-partitions", po::value<std::string>(),
      "partitions this node runs commands for: all (default), none, or a LIST like 0-3,6; "
      "commands for the others answer 421 misdirected")(
      "partition-owner", po::value(&partition_owners),
      "LIST=URL, repeatable: the node serving partitions this one does not own, named in 421 "
      "answers (e.g. 4-7=http://10.0.0.2:8080)");
  // Kafka mode (ARCHITECTURE.md "Kafka mode"; README "Running against a Kafka cluster").
  std::string log_kind = "embedded", kafka_brokers, topic = "ledger.events", txn_prefix;
  std::vector<std::string> kafka_config;
  std::string ingest_topic;
  bool no_ingest = false;
  int replication_factor = -1;
  desc.add_options()("log", po::value(&log_kind)->default_value(log_kind),
                     "where the log lives: embedded (RocksDB in --data-dir) or kafka")(
      "kafka-brokers", po::value(&kafka_brokers), "HOST:PORT[,...] (bootstrap) with --log kafka")(
      "topic", po::value(&topic)->default_value(topic), "Kafka topic of the ledger")(
      "kafka-config", po::value(&kafka_config),
      "KEY=VALUE, repeatable: a librdkafka setting for every client (security.protocol, "
      "sasl.*, ssl.*)")("kafka-replication-factor",
                        po::value(&replication_factor)->default_value(replication_factor),
                        "replication of topics this node creates (-1: the broker default)")(
      "kafka-ingest-topic", po::value(&ingest_topic),
      "topic applications may produce raw events to, chained exactly once (default "
      "ledger.ingest for topic ledger.events, else <topic>.ingest)")(
      "no-kafka-ingest", po::bool_switch(&no_ingest), "do not consume the ingest topic")(
      "kafka-transactional-id-prefix", po::value(&txn_prefix),
      "writers use transactional.id PREFIX + ledger-<partition>; default: empty for topic "
      "ledger.events, else \"<topic>.\" so ledgers sharing a cluster never fence each other");
  // Email (api/mail/mail.h): SMTP through libcurl, or .eml files in <data-dir>/outbox by default.
  api::MailerConfig mail;
  std::string smtp_password_file;
  desc.add_options()("smtp-url", po::value(&mail.smtp_url),
                     "smtp://HOST:PORT (STARTTLS required unless loopback) or smtps://HOST:PORT; "
                     "default: mails are written as .eml files to <data-dir>/outbox")(
      "smtp-from", po::value(&mail.from)->default_value(mail.from), "From of every mail")(
      "smtp-user", po::value(&mail.username), "SMTP AUTH user (with --smtp-password-file)")(
      "smtp-password-file", po::value(&smtp_password_file),
      "file holding the SMTP password on its first line (mode 0600 or stricter)")(
      "smtp-allow-plaintext", "permit smtp:// without STARTTLS to a non-loopback server")(
      "admin-email", po::value(&mail.admin_emails)->composing(),
      "repeatable: administrators mailed when a mail or a webhook delivery is given up after "
      "its last retry (003 FR-039)")(
      "public-url", po::value(&mail.public_url)->default_value(mail.public_url),
      "base URL of the links in mails (verify-email, reset-password); its origin is the one "
      "WebAuthn ceremonies and DPoP proofs must name");
  std::string rp_id;
  std::vector<std::string> attestation_root_files;
  bool allow_self_attestation = false;
  bool dpop_nonce = false;
  std::string app_attest_app_id;
  std::string app_attest_roots_file;
  bool app_attest_development = false;
  desc.add_options()("rp-id", po::value(&rp_id),
                     "WebAuthn relying party id (default: the host of --public-url)")(
      "attestation-roots", po::value(&attestation_root_files),
      "PEM bundle of trusted device attestation roots, repeatable (exclusive mode; none: every "
      "attestation chain is refused)")(
      "allow-self-attestation", po::bool_switch(&allow_self_attestation),
      "accept packed self attestation (development only: nothing vouches for the device)")(
      "app-attest-app-id", po::value(&app_attest_app_id),
      "TEAMID.BUNDLE: native iOS apps of this id activate exclusive mode with App Attest "
      "(with --app-attest-roots)")(
      "app-attest-roots", po::value(&app_attest_roots_file),
      "PEM of Apple's App Attestation root CA, the only anchor App Attest chains may end at "
      "(required with --app-attest-app-id; kept apart from --attestation-roots)")(
      "app-attest-allow-development", po::bool_switch(&app_attest_development),
      "also accept App Attest keys of development builds (aaguid appattestdevelop)")(
      "dpop-nonce", po::bool_switch(&dpop_nonce),
      "exclusive mode: DPoP proofs must carry a server nonce (RFC 9449 section 9; stateless, "
      "valid 1 to 2 minutes, handed out in DPoP-Nonce)");
  std::int64_t exclusive_idle_seconds = 1800;
  std::uint32_t exclusive_rate = 100;
  desc.add_options()(
      "exclusive-idle", po::value(&exclusive_idle_seconds)->default_value(exclusive_idle_seconds),
      "seconds without a validated request before an exclusive session locks (000: 1800)")(
      "exclusive-rate", po::value(&exclusive_rate)->default_value(exclusive_rate),
      "validated requests per user per second in exclusive mode, then 429 (001: 100)");
  std::int64_t cleanup_interval_seconds = 7 * 24 * 3600;
  desc.add_options()(
      "cleanup-interval",
      po::value(&cleanup_interval_seconds)->default_value(cleanup_interval_seconds),
      "seconds between deletions of expired temporary data (003 FR-040: weekly); the first runs "
      "once the projections have caught up after start-up");
  std::uint32_t retention_days = 90;
  std::int64_t retention_interval_seconds = 24 * 3600;
  std::string retention_archive_dir;
  desc.add_options()(
      "retention-days", po::value(&retention_days)->default_value(retention_days),
      "remove event payloads older than N days (their hashes stay, so verification holds); 0 "
      "keeps everything (design card: 90)")(
      "retention-interval",
      po::value(&retention_interval_seconds)->default_value(retention_interval_seconds),
      "seconds between retention runs; the first runs once the projections have caught up")(
      "retention-archive-dir", po::value(&retention_archive_dir),
      "before each retention run removes anything, write an archive of it here (verify with "
      "`ledgerctl verify --archive FILE`); a run whose archive fails removes nothing");
  bool webhook_allow_private = false;
  desc.add_options()("webhook-allow-private-targets", po::bool_switch(&webhook_allow_private),
                     "webhook endpoints may be http:// and resolve to loopback, private or "
                     "link-local addresses (tests and development only: SSRF)");
  std::string payment_webhook_secret_file;
  desc.add_options()("payment-webhook-secret-file", po::value(&payment_webhook_secret_file),
                     "file (mode 0600 or stricter) holding the payment provider's Standard "
                     "Webhooks secret, whsec_...; without it POST /v1/webhooks/payments answers "
                     "503");
  std::string oauth_providers_file;
  desc.add_options()("oauth-providers", po::value(&oauth_providers_file),
                     "JSON file of the OpenID providers users may sign in with (issuer, client "
                     "id, client secret file, redirect URI; README \"Sign-in with a provider\")");
  std::uint32_t oauth_state_seconds = 600;
  desc.add_options()("oauth-state-seconds", po::value(&oauth_state_seconds),
                     "how long a provider sign-in may take from start to callback, 1..3600 "
                     "(default 600)");
  std::string config_file;
  desc.add_options()("config", po::value(&config_file),
                     "INI-style file of the same options (name = value)");
  po::variables_map vm;
  try {
    // Precedence: command line, then SECHEX_<OPTION> environment variables (SECHEX_DATA_DIR for
    // --data-dir), then the config file. po::store keeps the first value it sees.
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::store(
        po::parse_environment(
            desc,
            [&desc](const std::string& var) -> std::string {
              if (var.rfind("SECHEX_", 0) != 0) return "";
              std::string name = var.substr(7);
              for (auto& c : name) {
                c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
              }
              // Only known options: SECHEX_KEK and friends are not flags.
              return desc.find_nothrow(name, false) != nullptr && name != "config" ? name : "";
            }),
        vm);
    if (vm.count("config")) {
      const auto path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) return invalid(err, "cannot read config file " + path);
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return invalid(err, std::string(e.what()) + " (see --help)");
  }
  if (vm.count("help")) {
    out << desc;
    return ConfigErrc::help_shown;
  }
  const auto api_listen = split_listen(listen);
  if (!api_listen) return invalid(err, "--listen " + api_listen.error());
  const bool metrics_listener = metrics_listen != "none";
  HostPort metrics_at{"127.0.0.1", 0};
  if (metrics_listener) {
    auto parsed = split_listen(metrics_listen);
    if (!parsed) return invalid(err, "--metrics-listen " + parsed.error() + " (or none)");
    metrics_at = std::move(parsed).value();
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return invalid(err, "--tls-cert and --tls-key go together");
  }
  if (so.pool_threads == 0 || so.pool_queue == 0 || idle_seconds == 0 || read_seconds == 0) {
    return invalid(err, "--pool-threads, --pool-queue and the timeouts must be positive");
  }
  for (const auto& h : {api_listen.value().host, metrics_at.host}) {
    if (tls_cert.empty() && !is_loopback(h) && !vm.count("allow-insecure-http")) {
      return invalid(err, "refusing plain HTTP on non-loopback address " + h +
                              " (configure TLS or pass --allow-insecure-http)");
    }
  }

  if (skew_seconds < 0 || skew_seconds > 600)
    return invalid(err, "--clock-skew must be 0..600 seconds");
  // Session idle windows (spec 002 "Session Idle Timeout"); a year bounds them far from overflow.
  constexpr std::int64_t kMaxIdleSeconds = 366LL * 24 * 3600;
  if (session_idle_seconds <= 0 || session_idle_seconds > kMaxIdleSeconds) {
    return invalid(err,
                   "--session-idle must be 1.." + std::to_string(kMaxIdleSeconds) + " seconds");
  }
  if (remember_me_idle_seconds <= 0 || remember_me_idle_seconds > kMaxIdleSeconds) {
    return invalid(err, "--session-idle-remember-me must be 1.." + std::to_string(kMaxIdleSeconds) +
                            " seconds");
  }
  if (remember_me_idle_seconds < session_idle_seconds) {
    return invalid(err, "--session-idle-remember-me (" + std::to_string(remember_me_idle_seconds) +
                            " s) must be at least --session-idle (" +
                            std::to_string(session_idle_seconds) + " s)");
  }
  identity_limits.idle = std::chrono::seconds{session_idle_seconds};
  identity_limits.remember_me_idle = std::chrono::seconds{remember_me_idle_seconds};
  if (log_kind != "embedded" && log_kind != "kafka")
    return invalid(err, "--log must be embedded or kafka");
  const bool kafka_mode = log_kind == "kafka";
  if (kafka_mode && kafka_brokers.empty()) return invalid(err, "--log kafka needs --kafka-brokers");
  if (!kafka_mode && !kafka_brokers.empty())
    return invalid(err, "--kafka-brokers needs --log kafka");
  if (replication_factor == 0 || replication_factor < -1 || replication_factor > 32767) {
    return invalid(err, "--kafka-replication-factor must be -1 or 1..32767");
  }
  std::vector<std::pair<std::string, std::string>> kafka_settings;
  for (const auto& kv : kafka_config) {
    auto setting = ledger::parse_kafka_setting(kv);
    if (!setting) return invalid(err, "--kafka-config wants KEY=VALUE, not " + kv);
    kafka_settings.push_back(std::move(*setting));
  }
  if (!vm.count("kafka-transactional-id-prefix")) {
    txn_prefix = ledger::default_transactional_id_prefix(topic);
  }
  if (ingest_topic.empty()) {
    ingest_topic = topic == "ledger.events" ? "ledger.ingest" : topic + ".ingest";
  }
  tokens.clock_skew = std::chrono::seconds(skew_seconds);
  if (auto mail_ok =
          configure_mail(mail, smtp_password_file, vm.count("smtp-allow-plaintext") > 0, data_dir);
      !mail_ok) {
    return invalid(err, mail_ok.error());
  }
  // Syntax now, before anything is written; partition numbers once the log says how many.
  auto ownership_flags = api::OwnershipFlags::parse(
      vm.count("owns-partitions")
          ? std::optional<std::string_view>(vm["owns-partitions"].as<std::string>())
          : std::nullopt,
      partition_owners);
  if (!ownership_flags) return invalid(err, ownership_flags.error().why);

  auto proxies = api::TrustedProxies::parse(trusted_proxies);
  if (!proxies) return invalid(err, "--trusted-proxy: not an address or CIDR range");

  if (exclusive_idle_seconds <= 0 || exclusive_idle_seconds > kMaxIdleSeconds) {
    return invalid(err,
                   "--exclusive-idle must be 1.." + std::to_string(kMaxIdleSeconds) + " seconds");
  }
  // The per-user rate counter keeps kRateMaxSamples samples a window: a higher limit could never
  // be reached, and would switch the limit (and the replay cache's bound) off.
  if (exclusive_rate == 0 || exclusive_rate > projections::kRateMaxSamples) {
    return invalid(err,
                   "--exclusive-rate must be 1.." + std::to_string(projections::kRateMaxSamples));
  }
  // The PEM text of a roots file, or nullopt when it cannot be read or holds no certificate.
  const auto read_pem = [](const std::string& file) -> std::optional<std::string> {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return std::nullopt;
    }
    return text.str() + "\n";
  };
  std::string roots_pem;
  for (const auto& file : attestation_root_files) {
    const auto pem = read_pem(file);
    if (!pem)
      return invalid(err, "--attestation-roots " + file + ": cannot read a PEM certificate");
    roots_pem += *pem;
  }

  Config c;
  c.listen = listen;
  c.metrics_listen = metrics_listen;
  c.server = so;
  c.server.address = api_listen.value().host;
  c.server.port = api_listen.value().port;
  c.server.threads = threads;
  c.server.tls_cert_file = tls_cert;
  c.server.tls_key_file = tls_key;
  c.server.idle_timeout = std::chrono::seconds(idle_seconds);
  c.server.read_timeout = std::chrono::seconds(read_seconds);
  if (metrics_listener) c.metrics.emplace(metrics_at.host, metrics_at.port);
  c.data_dir = data_dir;
  c.key_name = key_name;
  c.partitions = partitions;
  c.tokens = tokens;
  c.proxies = std::move(*proxies);
  c.password = password_options;
  c.limits = identity_limits;
  c.ownership = std::move(ownership_flags).value();
  c.kafka = kafka_mode;
  c.kafka_brokers = kafka_brokers;
  c.topic = topic;
  c.transactional_id_prefix = txn_prefix;
  c.kafka_settings = std::move(kafka_settings);
  c.ingest_topic = ingest_topic;
  c.no_ingest = no_ingest;
  c.replication_factor = replication_factor;
  c.public_origin = origin_of_url(mail.public_url);
  c.rp_id = rp_id.empty() ? host_of_url(mail.public_url) : rp_id;
  c.attestation_roots_pem = std::move(roots_pem);
  c.allow_self_attestation = allow_self_attestation;
  c.dpop_nonce = dpop_nonce;
  if (app_attest_development && app_attest_app_id.empty()) {
    return invalid(err, "--app-attest-allow-development needs --app-attest-app-id");
  }
  if (!app_attest_app_id.empty()) {
    const auto dot = app_attest_app_id.find('.');
    if (dot == 0 || dot == std::string::npos || dot + 1 == app_attest_app_id.size() ||
        app_attest_app_id.find_first_of(" \t\r\n") != std::string::npos) {
      return invalid(err, "--app-attest-app-id '" + app_attest_app_id +
                              "': expected TEAMID.BUNDLE (e.g. A1B2C3D4E5.com.example.app)");
    }
    if (app_attest_roots_file.empty()) {
      return invalid(err,
                     "--app-attest-app-id needs --app-attest-roots (Apple's App Attestation "
                     "root CA)");
    }
    const auto pem = read_pem(app_attest_roots_file);
    if (!pem) {
      return invalid(
          err, "--app-attest-roots " + app_attest_roots_file + ": cannot read a PEM certificate");
    }
    c.app_attest_app_id = app_attest_app_id;
    c.app_attest_roots_pem = *pem;
    c.app_attest_development = app_attest_development;
  } else if (!app_attest_roots_file.empty()) {
    return invalid(err, "--app-attest-roots needs --app-attest-app-id");
  }
  constexpr std::int64_t kMaxCleanupInterval = 90LL * 24 * 3600;
  if (cleanup_interval_seconds < 1 || cleanup_interval_seconds > kMaxCleanupInterval) {
    return invalid(
        err, "--cleanup-interval must be 1.." + std::to_string(kMaxCleanupInterval) + " seconds");
  }
  c.cleanup_interval = std::chrono::seconds{cleanup_interval_seconds};
  // Ten years is longer than any retention rule we know of; more is a typo.
  if (retention_days > 3650) return invalid(err, "--retention-days must be 0..3650");
  if (retention_interval_seconds < 1 || retention_interval_seconds > kMaxCleanupInterval) {
    return invalid(
        err, "--retention-interval must be 1.." + std::to_string(kMaxCleanupInterval) + " seconds");
  }
  c.retention_days = retention_days;
  c.retention_interval = std::chrono::seconds{retention_interval_seconds};
  c.retention_archive_dir = retention_archive_dir;
  c.webhook_allow_private_targets = webhook_allow_private;
  for (const auto& a : mail.admin_emails) {
    if (!api::check_mail_request({api::kMailAdminAlert, a, "check:address", "en"})) {
      return invalid(err, "--admin-email " + a + ": not a mail address");
    }
  }
  c.exclusive_idle = std::chrono::seconds{exclusive_idle_seconds};
  c.exclusive_rate = exclusive_rate;
  if (!payment_webhook_secret_file.empty()) {
    const auto& file = payment_webhook_secret_file;
    auto line = ledger::read_secret_file(file);
    if (!line) return invalid(err, "--payment-webhook-secret-file: " + line.error);
    auto secret = api::webhooks::Secret::parse(line.secret);
    if (!secret) {
      return invalid(err, "--payment-webhook-secret-file: " + file +
                              " does not hold whsec_ followed by base64 of 24 to 64 bytes");
    }
    c.payment_webhook_secret = std::move(secret).value();
  }
  if (!oauth_providers_file.empty()) {
    auto providers = api::oauth::load_provider_configs(oauth_providers_file);
    if (!providers) return invalid(err, "--oauth-providers: " + providers.error());
    c.oauth_providers = std::move(providers).value();
  }
  if (oauth_state_seconds < 1 || oauth_state_seconds > 3600) {
    return invalid(err, "--oauth-state-seconds must be 1..3600");
  }
  c.oauth_state_lifetime = std::chrono::seconds{oauth_state_seconds};
  c.mail = std::move(mail);
  return c;
}

std::string origin_of_url(std::string_view url) {
  // As browsers spell an origin (RFC 6454 §6.1): lowercase scheme and host, no default port;
  // the same normalisation as DPoP's htu, so client data and proofs agree with each other.
  const auto normal = api::dpop::normalize_htu(url);
  const std::string u = normal ? *normal : std::string(url);
  const auto scheme = u.find("://");
  if (scheme == std::string::npos) return u;
  return u.substr(0, u.find('/', scheme + 3));
}

std::string host_of_url(std::string_view url) {
  const auto origin = origin_of_url(url);
  const auto scheme = origin.find("://");
  auto host = std::string_view(origin).substr(scheme == std::string::npos ? 0 : scheme + 3);
  if (host.starts_with('[')) return std::string(host.substr(0, host.find(']') + 1));  // IPv6
  return std::string(host.substr(0, host.find(':')));
}

}  // namespace sechex::ledgerd
