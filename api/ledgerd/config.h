// ledgerd's configuration: every flag, from the command line, SECHEX_<FLAG> environment
// variables and an INI-style --config file (in that order of precedence), parsed and checked
// before anything is opened or written.
//
// Errors: ConfigErrc::help_shown after writing the help to `out` (exit 0), ConfigErrc::invalid
// after writing one line saying what is wrong to `err` (exit 2). Thread-safety: a pure function
// of its arguments and the environment.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "api/app/ownership.h"
#include "api/crypto/passwords.h"
#include "api/crypto/token_settings.h"
#include "api/crypto/webhook_signature.h"
#include "api/http/client_ip.h"
#include "api/http/server.h"
#include "api/identity/decide.h"
#include "api/mail/mail.h"
#include "api/oauth/providers.h"
#include "ledger/result.h"

namespace sechex::ledgerd {

enum class ConfigErrc { help_shown = 1, invalid };
const std::error_category& config_category() noexcept;
inline std::error_code make_error_code(ConfigErrc e) noexcept {
  return {static_cast<int>(e), config_category()};
}

struct Config {
  std::string listen;  // as given (HOST:PORT), for messages
  std::string metrics_listen;
  // The API listener: address, port, TLS files, threads, pools, timeouts.
  api::ServerOptions server;
  // The metrics listener's address and port; nullopt for --metrics-listen none.
  std::optional<std::pair<std::string, std::uint16_t>> metrics;
  std::string data_dir;
  std::string key_name;  // of the checkpoint signing key
  std::uint32_t partitions = 8;
  api::TokenSettings tokens;
  api::TrustedProxies proxies;
  api::PasswordHasher::Options password;
  api::identity::Limits limits;
  api::OwnershipFlags ownership;
  // Kafka mode (--log kafka).
  bool kafka = false;
  std::string kafka_brokers;
  std::string topic = "ledger.events";
  std::string transactional_id_prefix;
  std::vector<std::pair<std::string, std::string>> kafka_settings;
  std::string ingest_topic;
  bool no_ingest = false;
  int replication_factor = -1;
  api::MailerConfig mail;  // completed: password read, outbox under data_dir
  // Exclusive mode (API.md): the server's origin (of --public-url), the WebAuthn RP id
  // (--rp-id, default the host of --public-url), the attestation roots (the PEM text of every
  // --attestation-roots file) and --allow-self-attestation.
  std::string public_origin;
  std::string rp_id;
  std::string attestation_roots_pem;
  bool allow_self_attestation = false;
  bool dpop_nonce = false;              // --dpop-nonce: proofs carry a server nonce (RFC 9449 §9)
  std::string app_attest_app_id;        // --app-attest-app-id TEAMID.BUNDLE ("" = none)
  std::string app_attest_roots_pem;     // --app-attest-roots: Apple's App Attestation root
  bool app_attest_development = false;  // --app-attest-allow-development
  Micros exclusive_idle = std::chrono::minutes{30};  // --exclusive-idle SECONDS
  std::uint32_t exclusive_rate = 100;                // --exclusive-rate N per user per second
  // Payments: the provider's Standard Webhooks secret (--payment-webhook-secret-file, a 0600
  // file holding whsec_...); nullopt: incoming payment webhooks answer 503.
  std::optional<api::webhooks::Secret> payment_webhook_secret;
  // How often expired temporary data (sessions, idempotency keys, webhook ids, rate windows,
  // replay caches, timed lockouts) is deleted: --cleanup-interval SECONDS (003 FR-040: weekly).
  std::chrono::seconds cleanup_interval{7 * 24 * 3600};
  // Retention (design card: 90-day windows): event payloads older than --retention-days N are
  // removed every --retention-interval SECONDS (embedded log); 0 days keeps everything.
  std::uint32_t retention_days = 90;
  std::chrono::seconds retention_interval{24 * 3600};
  // --retention-archive-dir: each run first writes an archive of what it removes here.
  std::string retention_archive_dir;
  // --webhook-allow-private-targets: webhook endpoints may be http:// and internal addresses.
  bool webhook_allow_private_targets = false;
  // --oauth-providers FILE: the OpenID providers users may sign in with (api/oauth/providers.h
  // has the format); none: every provider route answers 404.
  std::vector<api::oauth::ProviderConfig> oauth_providers;
  Micros oauth_state_lifetime = std::chrono::minutes{10};  // --oauth-state-seconds
};

// scheme://host[:port] of an http(s) URL (its path dropped), and its host alone.
std::string origin_of_url(std::string_view url);
std::string host_of_url(std::string_view url);

Result<Config> parse_config(int argc, const char* const* argv, std::ostream& out,
                            std::ostream& err);

}  // namespace sechex::ledgerd

template <>
struct std::is_error_code_enum<sechex::ledgerd::ConfigErrc> : std::true_type {};
