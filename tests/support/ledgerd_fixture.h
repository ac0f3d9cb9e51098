// LedgerdHttpTest: the gtest fixture of the black-box identity tests (identity_http_test.cc,
// otp_http_test.cc), which drive a real ledgerd through HTTP only.
//
// What it starts: start() runs SECHEX_LEDGERD (the including target defines it, and
// SECHEX_LEDGERCTL) on a fresh data dir in a temp dir, listening on 127.0.0.1:0 with 4 partitions
// and `--trusted-proxy 127.0.0.1`, plus the test's extra flags, and waits for its "serving on"
// line (the port). No SMTP unless a test passes --smtp-url: ledgerd writes each mail as an .eml
// file to <data-dir>/outbox, which the mail helpers read (waiting up to 20 s for it).
//
// Lifecycle: one temp dir per test; start() may be called again after stop() (a restart on the
// same data, e.g. with other flags), each start logging to its own file (err0, err1, ...) so a
// restart is never found by the previous process's "serving" line. stop() sends SIGTERM and
// returns the exit code; TearDown() stops a running ledgerd. ctl() runs ledgerctl on the same
// data dir (most commands want ledgerd stopped, `tokens issue` does not). The child dies with the
// test binary (support/process.h), so a crashed test leaves no ledgerd behind.
//
// Client addresses: ledgerd trusts X-Forwarded-For from loopback, and every call() comes from a
// new client IP (198.51.100.1..250, round robin) unless the test names one, so per-IP limits
// (login attempts, reset requests) only bite where a test means them to.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/http.h"
#include "support/process.h"
#include "support/temp_dir.h"

#if !defined(SECHEX_LEDGERD) || !defined(SECHEX_LEDGERCTL)
#error "define SECHEX_LEDGERD and SECHEX_LEDGERCTL (the binaries' paths) for this test target"
#endif

namespace sechex::testing {

class LedgerdHttpTest : public ::testing::Test {
 protected:
  using json = nlohmann::json;
  static constexpr const char* kPassword = "Tr0ub4dor&3x";

  void start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {SECHEX_LEDGERD, "--data-dir",   data(), "--listen",
                                     "127.0.0.1:0",  "--partitions", "4",    "--trusted-proxy",
                                     "127.0.0.1"};
    args.insert(args.end(), extra.begin(), extra.end());
    proc_ = spawn(args, dir_.sub("err" + std::to_string(starts_++)));
    port_ = wait_for_serving_port(proc_);
    ASSERT_NE(port_, 0) << slurp(proc_.err_path);
    metrics_port_ = wait_for_serving_port(proc_, std::chrono::seconds(1), "metrics on");
    ASSERT_NE(metrics_port_, 0) << slurp(proc_.err_path);
  }
  void TearDown() override { stop(); }
  // SIGTERM and wait: the exit code (-1 when nothing runs).
  int stop() {
    if (proc_.pid <= 0) return -1;
    ::kill(proc_.pid, SIGTERM);
    const auto code = wait_exit(proc_.pid);
    proc_.pid = -1;
    return code;
  }
  std::string data() const { return dir_.sub("data"); }
  // The current (or last) ledgerd's stderr.
  std::string log() const { return slurp(proc_.err_path); }

  // Every call comes from a new client IP unless `ip` is given.
  HttpReply call(boost::beast::http::verb method, const std::string& target,
                 const json& body = nullptr, const std::string& token = "", std::string ip = "") {
    if (ip.empty()) ip = "198.51.100." + std::to_string(1 + next_ip_++ % 250);
    return http_call_with(port_, method, target, {{"X-Forwarded-For", ip}}, token,
                          body.is_null() ? "" : body.dump(), std::chrono::seconds(30));
  }
  HttpReply post(const std::string& target, const json& body, const std::string& token = "",
                 std::string ip = "") {
    return call(boost::beast::http::verb::post, target, body, token, std::move(ip));
  }
  // The Prometheus text of ledgerd's metrics listener.
  std::string metrics() {
    return http_call(metrics_port_, boost::beast::http::verb::get, "/metrics").body;
  }
  static json data_of(const HttpReply& r) { return parsed(r)["data"]; }
  static json error_of(const HttpReply& r) { return parsed(r)["error"]; }
  // The answer's JSON; a test failure naming the status and body when it is none (an empty
  // object is returned, so the test goes on to its next check instead of throwing).
  static json parsed(const HttpReply& r) {
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      ADD_FAILURE() << "not a JSON object (status " << r.status << "): " << r.body.substr(0, 300);
      return json::object();
    }
    return j;
  }
  // A reply header by lower-case name, "" when absent.
  static std::string header(const HttpReply& r, const std::string& name) {
    const auto it = r.headers.find(name);
    return it == r.headers.end() ? "" : it->second;
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {SECHEX_LEDGERCTL, "--data-dir", data()});
    return run(args, {"SECHEX_KEK="});
  }
  // An operator-issued admin token (ledgerctl tokens issue --role admin).
  std::string admin_token() {
    const auto issued = ctl({"tokens", "issue", "--role", "admin"});
    EXPECT_EQ(issued.code, 0) << issued.err;
    return issued.out.empty() ? "" : issued.out.substr(0, issued.out.size() - 1);
  }

  // ---- Mails in the outbox ----
  // The mails to `to`, oldest first, once there are at least `n` (what there is after 20 s).
  std::vector<std::string> mails_to(const std::string& to, std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    const auto outbox = std::filesystem::path(data()) / "outbox";
    std::vector<std::pair<std::filesystem::file_time_type, std::string>> mails;
    while (std::chrono::steady_clock::now() < deadline) {
      mails.clear();
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(outbox, ec)) {
        if (e.path().extension() != ".eml") continue;
        auto text = slurp(e.path().string());
        if (text.find("<" + to + ">") != std::string::npos ||
            text.find("To: " + to) != std::string::npos) {
          mails.emplace_back(e.last_write_time(), std::move(text));
        }
      }
      if (mails.size() >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::sort(mails.begin(), mails.end());
    std::vector<std::string> out;
    for (auto& m : mails) out.push_back(std::move(m.second));
    return out;
  }
  // The mails to `to` now, without waiting.
  std::size_t mail_count(const std::string& to) { return mails_to(to, 0).size(); }
  // The newest mail to `to` once there are at least `nth` ("" after 20 s).
  std::string mail_to(const std::string& to, std::size_t nth = 1) {
    const auto mails = mails_to(to, nth);
    return mails.size() >= nth && !mails.empty() ? mails.back() : "";
  }
  // The first mail to `to` that contains `needle`, waiting for it ("" after 20 s).
  std::string mail_with(const std::string& to, const std::string& needle) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    const auto outbox = std::filesystem::path(data()) / "outbox";
    while (std::chrono::steady_clock::now() < deadline) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(outbox, ec)) {
        if (e.path().extension() != ".eml") continue;
        auto text = slurp(e.path().string());
        if (text.find(to) != std::string::npos && text.find(needle) != std::string::npos) {
          return text;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
  }
  // The token of a mailed link (?token=...), "" when there is none.
  static std::string token_in(const std::string& mail) {
    std::smatch m;
    return std::regex_search(mail, m, std::regex(R"(\?token=([A-Za-z0-9_-]+))")) ? m[1].str() : "";
  }
  // API.md: the 8-digit code on a line of its own; "" when there is none.
  static std::string code_in(const std::string& mail) {
    std::istringstream lines(mail);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (std::regex_match(line, std::regex("[0-9]{8}"))) return line;
    }
    return "";
  }
  // The code of the `nth` mail to `to` (1 = the first ever sent to it).
  std::string nth_code(const std::string& to, std::size_t nth) {
    const auto mails = mails_to(to, nth);
    EXPECT_GE(mails.size(), nth) << log();
    return mails.size() >= nth ? code_in(mails[nth - 1]) : "";
  }

  // ---- Accounts and sessions ----
  // A registered, verified account (its verification mail is mail 1): its user id, "" after a
  // failure (which is reported).
  std::string verified(const std::string& email, const std::string& password = kPassword) {
    const auto reg =
        post("/v1/auth/register", {{"email", email}, {"password", password}, {"consent", true}});
    EXPECT_EQ(reg.status, 201u) << reg.body;
    if (reg.status != 201u) return "";
    const auto mails = mails_to(email, 1);
    EXPECT_FALSE(mails.empty()) << "no verification mail for " << email << "\n" << log();
    if (mails.empty()) return "";
    const auto v = post("/v1/auth/verify-email", {{"token", token_in(mails[0])}});
    EXPECT_EQ(v.status, 200u) << v.body;
    return v.status == 200u ? data_of(reg)["userId"].get<std::string>() : "";
  }
  HttpReply login(const std::string& email, const std::string& password, std::string ip = "") {
    return post("/v1/auth/login", {{"email", email}, {"password", password}}, "", std::move(ip));
  }
  // A fresh session's access token ("" after a failure, which is reported).
  std::string access_token(const std::string& email, const std::string& password = kPassword) {
    const auto in = login(email, password);
    EXPECT_EQ(in.status, 200u) << in.body;
    return in.status == 200u ? data_of(in)["accessToken"].get<std::string>() : "";
  }

  // ---- The audit API (GET /v1/admin/audit) ----
  std::vector<json> audit(const std::string& admin, const std::string& user,
                          const std::string& type) {
    const auto r =
        call(boost::beast::http::verb::get,
             "/v1/admin/audit?userId=" + user + "&type=" + type + "&limit=1000", nullptr, admin);
    EXPECT_EQ(r.status, 200u) << r.body;
    std::vector<json> out;
    if (r.status != 200u) return out;
    const auto entries = data_of(r)["entries"];  // a copy: the loop must not outlive data_of's
    for (const auto& e : entries) out.push_back(e);
    return out;
  }
  std::size_t audit_count(const std::string& admin, const std::string& user,
                          const std::string& type) {
    return audit(admin, user, type).size();
  }

  TempDir dir_;
  Process proc_;
  std::uint16_t port_ = 0;
  std::uint16_t metrics_port_ = 0;
  std::atomic<int> next_ip_{1};
  int starts_ = 0;
};

}  // namespace sechex::testing
