// ledgerd's configuration (api/ledgerd/config.h) without starting a node: defaults, the order
// of precedence (command line, SECHEX_<FLAG>, --config file), and one refusal per rule, each
// with the line an operator reads.
#include "config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace sechex::ledgerd {
namespace {

struct Parsed {
  Result<Config> config;
  std::string out, err;
};

Parsed parse(std::vector<std::string> args) {
  // ops/kafka/with-broker exports SECHEX_KAFKA_BROKERS to the test binaries: it would be read as
  // --kafka-brokers here.
  ::unsetenv("SECHEX_KAFKA_BROKERS");
  args.insert(args.begin(), "ledgerd");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  auto config = parse_config(static_cast<int>(argv.size()), argv.data(), out, err);
  return {std::move(config), out.str(), err.str()};
}

// The one line a refusal prints, without the "ledgerd: " prefix and the newline.
std::string refusal(std::vector<std::string> args) {
  auto p = parse(std::move(args));
  EXPECT_FALSE(p.config);
  if (p.config) return "";
  EXPECT_EQ(p.config.error(), ConfigErrc::invalid);
  EXPECT_TRUE(p.err.starts_with("ledgerd: ")) << p.err;
  EXPECT_TRUE(p.err.ends_with("\n"));
  return p.err.substr(9, p.err.size() - 10);
}

// Environment variables set for one test only.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(LedgerdConfig, DefaultsAreTheDocumentedOnes) {
  const auto p = parse({});
  ASSERT_TRUE(p.config) << p.err;
  const auto& c = p.config.value();
  EXPECT_EQ(c.server.address, "127.0.0.1");
  EXPECT_EQ(c.server.port, 8080);
  ASSERT_TRUE(c.metrics);
  EXPECT_EQ(*c.metrics, (std::pair<std::string, std::uint16_t>{"127.0.0.1", 9464}));
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.partitions, 8u);
  EXPECT_FALSE(c.kafka);
  EXPECT_EQ(c.ingest_topic, "ledger.ingest");
  EXPECT_EQ(c.transactional_id_prefix, "");
  EXPECT_EQ(c.limits.idle, std::chrono::hours{24});
  EXPECT_EQ(c.limits.remember_me_idle, std::chrono::days{7});
  EXPECT_EQ(c.mail.outbox_dir, "./data/outbox");
  EXPECT_EQ(c.server.idle_timeout, std::chrono::seconds(15));
  EXPECT_EQ(c.server.read_timeout, std::chrono::seconds(30));
}

TEST(LedgerdConfig, HelpIsWrittenToOutAndIsNotAnError) {
  const auto p = parse({"--help"});
  ASSERT_FALSE(p.config);
  EXPECT_EQ(p.config.error(), ConfigErrc::help_shown);
  EXPECT_NE(p.out.find("--metrics-listen"), std::string::npos);
  EXPECT_TRUE(p.err.empty());
}

TEST(LedgerdConfig, CommandLineBeatsEnvironmentWhichBeatsTheConfigFile) {
  testing::TempDir dir;
  {
    std::ofstream f(dir.sub("ledgerd.conf"));
    f << "data-dir = /from/file\npartitions = 4\nlisten = 127.0.0.1:7000\n";
  }
  const ScopedEnv env("SECHEX_PARTITIONS", "6");
  const ScopedEnv kek("SECHEX_KEK", "not-a-flag");  // secrets in the environment are not flags
  const auto p = parse({"--config", dir.sub("ledgerd.conf"), "--listen", "127.0.0.1:7001"});
  ASSERT_TRUE(p.config) << p.err;
  EXPECT_EQ(p.config.value().data_dir, "/from/file");
  EXPECT_EQ(p.config.value().partitions, 6u);
  EXPECT_EQ(p.config.value().server.port, 7001);
  EXPECT_EQ(refusal({"--config", dir.sub("missing.conf")}),
            "cannot read config file " + dir.sub("missing.conf"));
}

TEST(LedgerdConfig, ListenersAreHostAndPortAndPlainHttpStaysOnLoopback) {
  EXPECT_EQ(refusal({"--listen", "127.0.0.1"}), "--listen must be HOST:PORT");
  EXPECT_EQ(refusal({"--listen", "127.0.0.1:80x"}), "--listen bad port");
  EXPECT_EQ(refusal({"--listen", "127.0.0.1:70000"}), "--listen bad port");
  EXPECT_EQ(refusal({"--metrics-listen", "localhost"}),
            "--metrics-listen must be HOST:PORT (or none)");
  EXPECT_EQ(refusal({"--listen", "0.0.0.0:8080"}),
            "refusing plain HTTP on non-loopback address 0.0.0.0 (configure TLS or pass "
            "--allow-insecure-http)");
  EXPECT_EQ(refusal({"--metrics-listen", "10.0.0.1:9464"}),
            "refusing plain HTTP on non-loopback address 10.0.0.1 (configure TLS or pass "
            "--allow-insecure-http)");
  EXPECT_EQ(refusal({"--tls-cert", "c.pem"}), "--tls-cert and --tls-key go together");
  const auto v6 = parse({"--listen", "[::1]:8443", "--metrics-listen", "none"});
  ASSERT_TRUE(v6.config) << v6.err;
  EXPECT_EQ(v6.config.value().server.address, "::1");
  EXPECT_FALSE(v6.config.value().metrics);
  EXPECT_TRUE(parse({"--listen", "0.0.0.0:8080", "--allow-insecure-http"}).config);
}

TEST(LedgerdConfig, LimitsAndWindowsAreChecked) {
  EXPECT_EQ(refusal({"--pool-threads", "0"}),
            "--pool-threads, --pool-queue and the timeouts must be positive");
  EXPECT_EQ(refusal({"--clock-skew", "601"}), "--clock-skew must be 0..600 seconds");
  EXPECT_EQ(refusal({"--session-idle", "0"}), "--session-idle must be 1..31622400 seconds");
  EXPECT_EQ(refusal({"--session-idle", "100", "--session-idle-remember-me", "50"}),
            "--session-idle-remember-me (50 s) must be at least --session-idle (100 s)");
  const auto p = parse({"--session-idle", "4", "--session-idle-remember-me", "8"});
  ASSERT_TRUE(p.config) << p.err;
  EXPECT_EQ(p.config.value().limits.idle, std::chrono::seconds{4});
  EXPECT_EQ(p.config.value().limits.remember_me_idle, std::chrono::seconds{8});
  EXPECT_EQ(refusal({"--no-such-flag"}), "unrecognised option '--no-such-flag' (see --help)");
  EXPECT_EQ(refusal({"--trusted-proxy", "not-a-cidr"}),
            "--trusted-proxy: not an address or CIDR range");
}

TEST(LedgerdConfig, KafkaFlagsGoTogetherAndDeriveTheirDefaults) {
  EXPECT_EQ(refusal({"--log", "disk"}), "--log must be embedded or kafka");
  EXPECT_EQ(refusal({"--log", "kafka"}), "--log kafka needs --kafka-brokers");
  EXPECT_EQ(refusal({"--kafka-brokers", "k:9092"}), "--kafka-brokers needs --log kafka");
  EXPECT_EQ(
      refusal({"--log", "kafka", "--kafka-brokers", "k:9092", "--kafka-replication-factor", "0"}),
      "--kafka-replication-factor must be -1 or 1..32767");
  EXPECT_EQ(refusal({"--log", "kafka", "--kafka-brokers", "k:9092", "--kafka-config", "novalue"}),
            "--kafka-config wants KEY=VALUE, not novalue");
  const auto p = parse({"--log", "kafka", "--kafka-brokers", "k:9092", "--topic", "demo.events",
                        "--kafka-config", "security.protocol=SASL_SSL"});
  ASSERT_TRUE(p.config) << p.err;
  const auto& c = p.config.value();
  EXPECT_TRUE(c.kafka);
  EXPECT_EQ(c.ingest_topic, "demo.events.ingest");
  EXPECT_EQ(c.transactional_id_prefix, "demo.events.");
  EXPECT_EQ(c.kafka_settings,
            (std::vector<std::pair<std::string, std::string>>{{"security.protocol", "SASL_SSL"}}));
}

// API.md "Exclusive mode": the origin ceremonies must name and the RP id come from --public-url
// unless --rp-id says otherwise; roots are PEM files, refused when unreadable.
TEST(LedgerdConfig, AppAttestTakesAnAppIdItsOwnRootsAndDevelopmentOnlyWithThem) {
  testing::TempDir dir;
  const auto roots = dir.sub("apple.pem");
  std::ofstream(roots) << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const auto set = parse({"--app-attest-app-id", "A1B2C3D4E5.com.example.app", "--app-attest-roots",
                          roots, "--app-attest-allow-development"});
  ASSERT_TRUE(set.config) << set.err;
  EXPECT_EQ(set.config.value().app_attest_app_id, "A1B2C3D4E5.com.example.app");
  EXPECT_NE(set.config.value().app_attest_roots_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_TRUE(set.config.value().app_attest_development);
  EXPECT_TRUE(parse({}).config.value().app_attest_app_id.empty());
  const auto says = [](const Parsed& r, const std::string& what) {
    EXPECT_FALSE(r.config);
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  };
  says(parse({"--app-attest-allow-development"}), "needs --app-attest-app-id");
  says(parse({"--app-attest-roots", roots}), "needs --app-attest-app-id");
  says(parse({"--app-attest-app-id", "A1B2C3D4E5.com.example.app"}), "needs --app-attest-roots");
  says(parse({"--app-attest-app-id", "A1B2C3D4E5.com.example.app", "--app-attest-roots",
              dir.sub("missing.pem")}),
       "cannot read a PEM certificate");
  for (const char* bad : {"noteam", ".com.example", "TEAM.", "TEAM. app"}) {
    says(parse({"--app-attest-app-id", bad, "--app-attest-roots", roots}), "TEAMID.BUNDLE");
  }
}

// The per-user rate counter keeps 256 samples a window: a higher limit would never be reached.
// Browsers send the origin lowercase and without a default port: so must the expected one be.
TEST(LedgerdConfig, TheOriginIsSpelledAsBrowsersSpellIt) {
  const auto r = parse({"--public-url", "https://ID.Example.com:443/app/"});
  ASSERT_TRUE(r.config) << r.err;
  EXPECT_EQ(r.config.value().public_origin, "https://id.example.com");
  EXPECT_EQ(r.config.value().rp_id, "id.example.com");
  EXPECT_EQ(origin_of_url("http://Localhost:8080/x?y"), "http://localhost:8080");
}

TEST(LedgerdConfig, TheExclusiveRateIsOneTo256PerSecond) {
  EXPECT_EQ(parse({}).config.value().exclusive_rate, 100u);
  EXPECT_EQ(parse({"--exclusive-rate", "256"}).config.value().exclusive_rate, 256u);
  for (const char* bad : {"0", "257", "10000"}) {
    const auto r = parse({"--exclusive-rate", bad});
    EXPECT_FALSE(r.config) << bad;
    EXPECT_NE(r.err.find("--exclusive-rate must be 1..256"), std::string::npos) << r.err;
  }
}

// 003 FR-040: the cleanup of expired temporary data runs weekly unless configured.
TEST(LedgerdConfig, TheCleanupRunsWeeklyByDefaultAndTheIntervalIsBounded) {
  EXPECT_EQ(parse({}).config.value().cleanup_interval, std::chrono::hours(24 * 7));
  EXPECT_EQ(parse({"--cleanup-interval", "60"}).config.value().cleanup_interval,
            std::chrono::seconds(60));
  for (const char* bad : {"0", "-1", "7776001"}) {
    const auto r = parse({"--cleanup-interval", bad});
    EXPECT_FALSE(r.config) << bad;
    EXPECT_NE(r.err.find("--cleanup-interval must be 1..7776000"), std::string::npos) << r.err;
  }
}

// Design card: retention keeps 90 days unless configured; 0 keeps everything; nonsense is refused.
TEST(LedgerdConfig, RetentionKeepsNinetyDaysByDefaultDailyAndItsBoundsAreChecked) {
  const auto d = parse({}).config.value();
  EXPECT_EQ(d.retention_days, 90u);
  EXPECT_EQ(d.retention_interval, std::chrono::hours(24));
  EXPECT_EQ(parse({"--retention-days", "0"}).config.value().retention_days, 0u);
  EXPECT_EQ(parse({"--retention-days", "400", "--retention-interval", "3600"})
                .config.value()
                .retention_interval,
            std::chrono::seconds(3600));
  auto r = parse({"--retention-days", "3651"});
  EXPECT_FALSE(r.config);
  EXPECT_NE(r.err.find("--retention-days must be 0..3650"), std::string::npos) << r.err;
  r = parse({"--retention-days", "-5"});
  EXPECT_FALSE(r.config);
  for (const char* bad : {"0", "7776001"}) {
    r = parse({"--retention-interval", bad});
    EXPECT_FALSE(r.config) << bad;
    EXPECT_NE(r.err.find("--retention-interval must be 1..7776000"), std::string::npos) << r.err;
  }
}

TEST(LedgerdConfig, ThePaymentWebhookSecretFileMustBePrivateAndHoldAWhsecSecret) {
  testing::TempDir dir;
  const auto file = dir.sub("secret");
  const auto write = [&](const std::string& text, mode_t mode) {
    std::ofstream(file) << text;
    ::chmod(file.c_str(), mode);
  };
  EXPECT_FALSE(parse({}).config.value().payment_webhook_secret);
  write("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", 0600);
  const auto ok = parse({"--payment-webhook-secret-file", file});
  ASSERT_TRUE(ok.config) << ok.err;
  EXPECT_EQ(ok.config.value().payment_webhook_secret->text(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  write("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", 0640);
  EXPECT_NE(parse({"--payment-webhook-secret-file", file}).err.find("chmod 600"),
            std::string::npos);
  write("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", 0600);
  EXPECT_NE(parse({"--payment-webhook-secret-file", file}).err.find("does not hold whsec_"),
            std::string::npos);
  EXPECT_NE(parse({"--payment-webhook-secret-file", dir.sub("none")}).err.find("cannot read"),
            std::string::npos);
}

TEST(LedgerdConfig, ExclusiveModeTakesItsOriginAndRpFromThePublicUrl) {
  const auto defaults = parse({});
  ASSERT_TRUE(defaults.config) << defaults.err;
  EXPECT_EQ(defaults.config.value().public_origin, "http://127.0.0.1:8080");
  EXPECT_EQ(defaults.config.value().rp_id, "127.0.0.1");
  EXPECT_TRUE(defaults.config.value().attestation_roots_pem.empty());
  EXPECT_FALSE(defaults.config.value().allow_self_attestation);
  EXPECT_FALSE(defaults.config.value().dpop_nonce);
  const auto set = parse(
      {"--public-url", "https://id.example.com/app/", "--allow-self-attestation", "--dpop-nonce"});
  ASSERT_TRUE(set.config) << set.err;
  EXPECT_TRUE(set.config.value().dpop_nonce);
  EXPECT_EQ(set.config.value().public_origin, "https://id.example.com");
  EXPECT_EQ(set.config.value().rp_id, "id.example.com");
  EXPECT_TRUE(set.config.value().allow_self_attestation);
  const auto rp =
      parse({"--public-url", "https://login.example.com:8443", "--rp-id", "example.com"});
  ASSERT_TRUE(rp.config) << rp.err;
  EXPECT_EQ(rp.config.value().public_origin, "https://login.example.com:8443");
  EXPECT_EQ(rp.config.value().rp_id, "example.com");
  EXPECT_EQ(host_of_url("https://[::1]:8443/x"), "[::1]");

  testing::TempDir dir;
  const auto roots = dir.sub("roots.pem");
  std::ofstream(roots) << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const auto read = parse({"--attestation-roots", roots, "--attestation-roots", roots});
  ASSERT_TRUE(read.config) << read.err;
  EXPECT_EQ(read.config.value().attestation_roots_pem.find("-----BEGIN CERTIFICATE-----"), 0u);
  EXPECT_NE(read.config.value().attestation_roots_pem.rfind("-----BEGIN CERTIFICATE-----"), 0u)
      << "both files";
  EXPECT_EQ(refusal({"--attestation-roots", dir.sub("missing.pem")}),
            "--attestation-roots " + dir.sub("missing.pem") + ": cannot read a PEM certificate");
}

TEST(LedgerdConfig, MailAndOwnershipAreCheckedBeforeAnythingIsWritten) {
  EXPECT_EQ(refusal({"--smtp-url", "http://mail"}),
            "--smtp-url must start with smtp:// or smtps://");
  EXPECT_EQ(refusal({"--smtp-user", "u"}), "--smtp-user and --smtp-password-file go together");
  EXPECT_EQ(refusal({"--public-url", "ftp://x"}),
            "--public-url must start with http:// or https://");
  const auto own = refusal({"--owns-partitions", "0-"});
  EXPECT_NE(own.find("--owns-partitions"), std::string::npos) << own;
  testing::TempDir dir;
  const auto pw = dir.sub("pw");
  {
    std::ofstream f(pw);
    f << "s3cret\r\n";
  }
  ::chmod(pw.c_str(), 0644);
  EXPECT_EQ(refusal({"--smtp-user", "u", "--smtp-password-file", pw}),
            pw + " is readable by group or others (chmod 600 it)");
  ::chmod(pw.c_str(), 0600);
  const auto p = parse(
      {"--smtp-url", "smtp://127.0.0.1:2525", "--smtp-user", "u", "--smtp-password-file", pw});
  ASSERT_TRUE(p.config) << p.err;
  EXPECT_EQ(p.config.value().mail.password, "s3cret");
  EXPECT_FALSE(p.config.value().mail.require_tls) << "loopback SMTP may be plain";
}

}  // namespace
}  // namespace sechex::ledgerd
