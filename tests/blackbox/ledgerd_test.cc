// ledgerd as a process: starts on its embedded default, serves /healthz, and /metrics on a
// listener of its own, stops cleanly on SIGTERM, and refuses unsafe or broken configurations with
// exit code 2 (among them a lookup-hash key other than the one the ledger was first started with).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "ledger/key_store.h"
#include "support/process.h"
#include "support/test_util.h"

namespace sechex::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

using testing::slurp;
using testing::spawn;
using testing::wait_exit;

std::string get(std::uint16_t port, const std::string& target, unsigned* status) {
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  *status = res.result_int();
  return res.body();
}

// /metrics is served on its own listener (--metrics-listen), never beside the API: its
// counters say why each forged token failed, which the API's 401 does not (issue 12).
TEST(Ledgerd, ServesHealthAndMetricsOnItsOwnListenerAndStopsCleanlyOnSigterm) {
  testing::TempDir dir;
  auto p = spawn({SECHEX_LEDGERD, "--data-dir", dir.sub("data"), "--listen", "127.0.0.1:0"},
                 dir.sub("err"));
  const auto port = testing::wait_for_serving_port(p);
  ASSERT_NE(port, 0) << slurp(p.err_path);
  const auto metrics_port =
      testing::wait_for_serving_port(p, std::chrono::seconds(1), "metrics on");
  ASSERT_NE(metrics_port, 0) << slurp(p.err_path);
  ASSERT_NE(metrics_port, port);
  unsigned status = 0;
  EXPECT_NE(get(port, "/healthz", &status).find("\"status\":\"ok\""), std::string::npos);
  EXPECT_EQ(status, 200u);
  (void)get(port, "/metrics", &status);
  EXPECT_EQ(status, 404u) << "metrics must not be served beside the API";
  EXPECT_NE(get(metrics_port, "/healthz", &status).find("\"status\":\"ok\""), std::string::npos);
  const auto metrics = get(metrics_port, "/metrics", &status);
  EXPECT_EQ(status, 200u);
  EXPECT_NE(metrics.find("sechex_ledger_partition_records{partition=\"7\"} 0"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("sechex_ledger_events_appended_total"), std::string::npos);
  EXPECT_NE(metrics.find("sechex_projection_lag_records 0"), std::string::npos) << metrics;
  // Spec 003 FR-039: the mail alert counter exists from the start, so alerts can rate() it.
  EXPECT_NE(metrics.find("sechex_mail_delivery_failures_total 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sechex_mail_sent_total{transport=\"file\"} 0"), std::string::npos);
  // Ready once the projections caught up with the (empty) log.
  for (int i = 0; i < 100; ++i) {
    get(port, "/readyz", &status);
    if (status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(status, 200u);
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(wait_exit(p.pid), 0) << slurp(p.err_path);
  // The access log is JSON lines on stderr.
  EXPECT_NE(
      slurp(p.err_path).find(R"("msg":"request","method":"GET","route":"/healthz","status":200)"),
      std::string::npos)
      << slurp(p.err_path);
  // It created the data directory with its keys on first start.
  EXPECT_TRUE(std::filesystem::exists(dir.sub("data/keys/checkpoint-ed25519.pem")));
  EXPECT_TRUE(std::filesystem::exists(dir.sub("data/log/CURRENT")));
}

TEST(Ledgerd, RefusesPlainHttpOnANonLoopbackAddress) {
  testing::TempDir dir;
  auto p = spawn({SECHEX_LEDGERD, "--data-dir", dir.sub("data"), "--listen", "0.0.0.0:0"},
                 dir.sub("err"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  EXPECT_NE(slurp(p.err_path).find("refusing plain HTTP"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.sub("data"))) << "nothing may be written";
}

TEST(Ledgerd, MetricsListenerFollowsTheSameTransportRulesAndCanBeTurnedOff) {
  testing::TempDir dir;
  auto p = spawn({SECHEX_LEDGERD, "--data-dir", dir.sub("data"), "--listen", "127.0.0.1:0",
                  "--metrics-listen", "0.0.0.0:0"},
                 dir.sub("err1"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  EXPECT_NE(slurp(dir.sub("err1")).find("refusing plain HTTP on non-loopback address 0.0.0.0"),
            std::string::npos)
      << slurp(dir.sub("err1"));
  p = spawn({SECHEX_LEDGERD, "--data-dir", dir.sub("data"), "--listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1"},
            dir.sub("err2"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  EXPECT_NE(slurp(dir.sub("err2")).find("--metrics-listen must be HOST:PORT (or none)"),
            std::string::npos);
  p = spawn({SECHEX_LEDGERD, "--data-dir", dir.sub("data"), "--listen", "127.0.0.1:0",
             "--metrics-listen", "none"},
            dir.sub("err3"));
  ASSERT_NE(testing::wait_for_serving_port(p), 0) << slurp(dir.sub("err3"));
  EXPECT_EQ(slurp(dir.sub("err3")).find("metrics on"), std::string::npos);
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(wait_exit(p.pid), 0);
}

TEST(Ledgerd, TakesOptionsFromEnvironmentAndConfigFileWithCommandLineFirst) {
  testing::TempDir dir;
  {
    std::ofstream cfg(dir.sub("ledgerd.conf"));
    cfg << "listen = 0.0.0.0:0\ndata-dir = " << dir.sub("from-file") << "\n";
  }
  // The config file's non-loopback address is refused: proof the file was read.
  auto p = spawn({SECHEX_LEDGERD, "--config", dir.sub("ledgerd.conf")}, dir.sub("err1"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  EXPECT_NE(slurp(dir.sub("err1")).find("refusing plain HTTP on non-loopback address 0.0.0.0"),
            std::string::npos)
      << slurp(dir.sub("err1"));
  // The environment beats the file...
  ::setenv("SECHEX_LISTEN", "127.0.0.2:notaport", 1);
  p = spawn({SECHEX_LEDGERD, "--config", dir.sub("ledgerd.conf")}, dir.sub("err2"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  EXPECT_NE(slurp(dir.sub("err2")).find("bad port"), std::string::npos) << slurp(dir.sub("err2"));
  // ...and the command line beats both.
  p = spawn({SECHEX_LEDGERD, "--config", dir.sub("ledgerd.conf"), "--listen", "10.0.0.1:0"},
            dir.sub("err3"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  EXPECT_NE(slurp(dir.sub("err3")).find("address 10.0.0.1"), std::string::npos)
      << slurp(dir.sub("err3"));
  ::unsetenv("SECHEX_LISTEN");
  EXPECT_FALSE(std::filesystem::exists(dir.sub("from-file"))) << "nothing may be written";
}

TEST(Ledgerd, BadFlagsAndABusyPortExitTwo) {
  testing::TempDir dir;
  auto p = spawn({SECHEX_LEDGERD, "--no-such-flag"}, dir.sub("err1"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  p = spawn({SECHEX_LEDGERD, "--listen", "127.0.0.1:notaport"}, dir.sub("err2"));
  EXPECT_EQ(wait_exit(p.pid), 2);

  asio::io_context ioc;
  asio::ip::tcp::acceptor taken(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = taken.local_endpoint().port();
  p = spawn({SECHEX_LEDGERD, "--data-dir", dir.sub("data"), "--listen",
             "127.0.0.1:" + std::to_string(port)},
            dir.sub("err3"));
  EXPECT_EQ(wait_exit(p.pid), 2);
  EXPECT_NE(slurp(dir.sub("err3")).find("cannot listen"), std::string::npos)
      << slurp(dir.sub("err3"));
}

TEST(Ledgerd, RefusesUnusableSmtpSettingsBeforeWritingAnything) {
  testing::TempDir dir;
  const auto data = dir.sub("data");
  {
    std::ofstream(dir.sub("open-password")) << "hunter2\n";
    ::chmod(dir.sub("open-password").c_str(), 0644);
  }
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--smtp-url", "http://mail.example.com"}, "smtp:// or smtps://"},
      {{"--smtp-user", "ops"}, "go together"},
      {{"--smtp-user", "ops", "--smtp-password-file", dir.sub("open-password")},
       "readable by group or others"},
      {{"--smtp-user", "ops", "--smtp-password-file", dir.sub("missing")}, "cannot read"},
      {{"--public-url", "javascript:alert(1)"}, "--public-url"},
  };
  int n = 0;
  for (const auto& [flags, why] : cases) {
    std::vector<std::string> args = {SECHEX_LEDGERD, "--data-dir", data, "--listen", "127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    const auto err = dir.sub("err" + std::to_string(++n));
    auto p = spawn(args, err);
    EXPECT_EQ(wait_exit(p.pid), 2) << why;
    EXPECT_NE(slurp(err).find(why), std::string::npos) << slurp(err);
    EXPECT_EQ(slurp(err).find("hunter2"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(data)) << "nothing may be written";
}

TEST(Ledgerd, RefusesToStartWithAnotherLookupKeyThanTheLedgersFirst) {
  testing::TempDir dir;
  const auto data = dir.sub("data");
  const auto key_file = data + "/keys/lookup-key";
  // The environment must not supply the key: this test is about the file.
  const std::vector<std::string> env = {"SECHEX_KEK=", "SECHEX_LOOKUP_KEY="};
  const std::vector<std::string> args = {SECHEX_LEDGERD, "--data-dir", data, "--listen",
                                         "127.0.0.1:0"};
  auto start_and_stop = [&](const std::string& err) {
    auto p = spawn(args, err, env);
    ASSERT_NE(testing::wait_for_serving_port(p), 0) << slurp(err);
    ::kill(p.pid, SIGTERM);
    EXPECT_EQ(wait_exit(p.pid), 0) << slurp(err);
  };
  start_and_stop(dir.sub("err1"));  // creates the key and stores its check
  const auto original = slurp(key_file);
  ASSERT_FALSE(original.empty());

  // A lost key file regenerated: valid, but not the ledger's.
  std::filesystem::remove(key_file);
  ASSERT_TRUE(ledger::Kek::generate_file(key_file));
  ASSERT_NE(slurp(key_file), original);
  auto p = spawn(args, dir.sub("err2"), env);
  EXPECT_EQ(wait_exit(p.pid), 2);
  const auto err = slurp(dir.sub("err2"));
  EXPECT_NE(err.find("refusing to start: the lookup-hash key file " + key_file +
                     " is not the lookup-hash key this ledger was first started with"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("copy keys/lookup-key from the data directory of the node that first"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("serving on"), std::string::npos) << err;

  // The original key back: it starts again.
  std::filesystem::remove(key_file);
  testing::write_file(key_file, original);
  ::chmod(key_file.c_str(), 0600);
  start_and_stop(dir.sub("err3"));
}

}  // namespace
}  // namespace sechex::api
