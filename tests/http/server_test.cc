// The HTTP server over real TCP: envelope, limits, hostile bytes, request ids, keep-alive,
// graceful stop and metrics (checked with promtool).
#include "api/http/server.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "api/http/access_log.h"
#include "api/http/metrics.h"

namespace sechex::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Client {
 public:
  explicit Client(std::uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  http::response<http::string_body> send(
      http::verb method, const std::string& target, const std::string& body = "",
      const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::write(stream_, req);
    return read();
  }
  http::response<http::string_body> read() {
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    return res;
  }
  void write_raw(const std::string& bytes) { asio::write(stream_, asio::buffer(bytes)); }
  // True when the server closed the connection.
  bool closed() {
    beast::error_code ec;
    char c;
    stream_.socket().read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

struct ServerFixture : ::testing::Test {
  void SetUp() override {
    Router router;
    add_health_and_metrics_routes(router, metrics, [] { return true; });
    router.add("POST", "/echo",
               [](const Request& r) { return json_ok(nlohmann::json(r.body).dump()); });
    router.add("GET", "/slow", [this](const Request&) {
      slow_started.set_value();
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // test-only blocking
      return json_ok("\"done\"");
    });
    router.add("GET", "/boom",
               [](const Request&) -> Response { throw std::runtime_error("handler bug"); });
    router.add("GET", "/weird", [](const Request&) {
      Response r = json_ok("1");
      r.status = 4242;  // a handler bug: outside HTTP's range
      return r;
    });
    router.add("GET", "/cookies", [](const Request& req) {
      Response r = json_ok("1");
      r.headers.emplace_back("Set-Cookie", "__Host-a=1; Secure; Path=/");
      r.headers.emplace_back("Set-Cookie", "__Host-b=2; Secure; Path=/");
      // An echoed header value carrying CR/LF must never split the response.
      const auto* v = req.header("x-echo");
      r.headers.emplace_back("X-Echo", v != nullptr ? *v + "\r\nInjected: yes" : "none");
      return r;
    });
    router.add("GET", "/headers", [](const Request& req) {
      const auto* dpop = req.header("dpop");
      const auto* cookie = req.header("cookie");
      return json_ok(nlohmann::json{{"dpop", dpop != nullptr ? *dpop : ""},
                                    {"cookie", cookie != nullptr ? *cookie : ""}}
                         .dump());
    });
    ServerOptions o;
    o.port = 0;
    o.body_limit = 1024;
    server = std::make_unique<HttpServer>(o, std::move(router), metrics.observer());
    ASSERT_TRUE(server->start());
  }
  Metrics metrics;
  std::promise<void> slow_started;
  std::unique_ptr<HttpServer> server;
};

nlohmann::json body_json(const http::response<http::string_body>& r) {
  return nlohmann::json::parse(r.body());
}

TEST_F(ServerFixture, HealthzAnswersWithTheEnvelope) {
  Client c(server->port());
  const auto r = c.send(http::verb::get, "/healthz");
  EXPECT_EQ(r.result_int(), 200u);
  EXPECT_EQ(r[http::field::content_type], "application/json");
  const auto j = body_json(r);
  EXPECT_EQ(j["data"]["status"], "ok");
  EXPECT_TRUE(j["error"].is_null());
}

TEST_F(ServerFixture, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Client c(server->port());
  auto r = c.send(http::verb::get, "/nope");
  EXPECT_EQ(r.result_int(), 404u);
  EXPECT_EQ(body_json(r)["error"]["code"], "not_found");
  EXPECT_TRUE(body_json(r)["data"].is_null());
  r = c.send(http::verb::delete_, "/healthz");
  EXPECT_EQ(r.result_int(), 405u);
  EXPECT_EQ(r[http::field::allow], "GET, HEAD") << "HEAD goes wherever GET does";
  EXPECT_EQ(body_json(r)["error"]["code"], "method_not_allowed");
}

TEST_F(ServerFixture, ErrorMessagesFollowAcceptLanguageWhileCodesStayTheSame) {
  Client c(server->port());
  auto zh = c.send(http::verb::get, "/nope", "", {{"Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8"}});
  EXPECT_EQ(zh.result_int(), 404u);
  EXPECT_EQ(body_json(zh)["error"]["code"], "not_found");
  EXPECT_EQ(body_json(zh)["error"]["message"], "未找到");
  EXPECT_EQ(zh["Content-Language"], "zh-CN");
  auto en = c.send(http::verb::get, "/nope", "", {{"Accept-Language", "en-US"}});
  EXPECT_EQ(body_json(en)["error"]["message"], "no such endpoint");
  EXPECT_EQ(en.count("Content-Language"), 0u);
  // Successes are untouched.
  auto ok = c.send(http::verb::get, "/healthz", "", {{"Accept-Language", "zh-CN"}});
  EXPECT_EQ(body_json(ok)["data"]["status"], "ok");
}

TEST_F(ServerFixture, OversizedBodyIs413AndTheConnectionCloses) {
  Client c(server->port());
  const auto r = c.send(http::verb::post, "/echo", std::string(2048, 'a'));
  EXPECT_EQ(r.result_int(), 413u);
  EXPECT_EQ(body_json(r)["error"]["code"], "payload_too_large");
  EXPECT_TRUE(c.closed());
  Client again(server->port());
  EXPECT_EQ(again.send(http::verb::post, "/echo", "small").result_int(), 200u);
}

TEST_F(ServerFixture, GarbageBytesGet400AndTheServerKeepsServing) {
  {
    Client c(server->port());
    // A TLS ClientHello-like prefix (with a NUL byte) where HTTP was expected.
    const char hello[] = "\x16\x03\x01\x02\x00 this is not http\r\n\r\n";
    c.write_raw(std::string(hello, sizeof(hello) - 1));
    const auto r = c.read();
    EXPECT_EQ(r.result_int(), 400u);
    EXPECT_EQ(body_json(r)["error"]["code"], "invalid_request");
  }
  {
    Client c(server->port());
    c.write_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n" + std::string(10000, 'X') + ": y\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 431u);
  }
  Client ok(server->port());
  EXPECT_EQ(ok.send(http::verb::get, "/healthz").result_int(), 200u);
}

TEST_F(ServerFixture, RequestIdIsEchoedWhenSaneAndGeneratedOtherwise) {
  Client c(server->port());
  auto r = c.send(http::verb::get, "/healthz", "", {{"X-Request-Id", "abc-123.x_y"}});
  EXPECT_EQ(r["X-Request-Id"], "abc-123.x_y");
  r = c.send(http::verb::get, "/healthz", "", {{"X-Request-Id", "bad id\"<script>"}});
  EXPECT_EQ(r["X-Request-Id"].size(), 32u);
  EXPECT_NE(r["X-Request-Id"], "bad id\"<script>");
  const std::string a(c.send(http::verb::get, "/healthz")["X-Request-Id"]);
  const std::string b(c.send(http::verb::get, "/healthz")["X-Request-Id"]);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

TEST_F(ServerFixture, OutOfRangeStatusBecomes500AndTheConnectionSurvives) {
  Client c(server->port());
  EXPECT_EQ(c.send(http::verb::get, "/weird").result_int(), 500u);
  EXPECT_EQ(c.send(http::verb::get, "/healthz").result_int(), 200u);
  server->stop();  // must not hang on a leaked connection entry
}

TEST_F(ServerFixture, SeveralSetCookieHeadersSurviveAndCrLfIsNeverEmitted) {
  Client c(server->port());
  const auto r = c.send(http::verb::get, "/cookies", "", {{"X-Echo", "v"}});
  EXPECT_EQ(r.count(http::field::set_cookie), 2u);
  EXPECT_EQ(r.count("Injected"), 0u);
  EXPECT_EQ(r.count("X-Echo"), 0u);  // the unsafe header was dropped, not rewritten
}

// RFC 9110 §5.3: a repeated field is one comma-separated list; the handler never sees only the
// last copy (two DPoP proofs must not pass as the second one alone, RFC 9449 §4.3). Cookie lines
// are joined the way one Cookie header holds them.
TEST_F(ServerFixture, ARepeatedHeaderReachesTheHandlerAsOneListNeverAsItsLastCopy) {
  Client c(server->port());
  c.write_raw(
      "GET /headers HTTP/1.1\r\nHost: x\r\nDPoP: first.proof.a\r\nDPoP: second.proof.b\r\n"
      "Cookie: a=1\r\nCookie: b=2\r\n\r\n");
  const auto r = c.read();
  ASSERT_EQ(r.result_int(), 200u) << r.body();
  const auto data = body_json(r)["data"];
  EXPECT_EQ(data["dpop"], "first.proof.a, second.proof.b");
  EXPECT_EQ(data["cookie"], "a=1; b=2");
}

TEST_F(ServerFixture, UnknownMethodsShareOneMetricsLabel) {
  Client c(server->port());
  for (const char* m : {"FOO", "BAR", "BAZ"}) {
    c.write_raw(std::string(m) + " /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 405u);
  }
  const auto text = c.send(http::verb::get, "/metrics").body();
  EXPECT_EQ(text.find("FOO"), std::string::npos);
  EXPECT_NE(text.find(R"(method="other",route="/healthz",status="405"} 3)"), std::string::npos)
      << text;
  // Latency is labelled by route and status too.
  EXPECT_NE(
      text.find(R"(sechex_http_request_duration_seconds_count{route="/healthz",status="405"} 3)"),
      std::string::npos)
      << text;
}

TEST_F(ServerFixture, LargeOversizedBodyStillGetsItsReadable413) {
  Client c(server->port());
  const std::string big(4 << 20, 'a');
  http::request<http::string_body> req{http::verb::post, "/echo", 11};
  req.set(http::field::host, "x");
  req.body() = big;
  req.prepare_payload();
  // Send only the headers and part of the body, as a client streaming a large upload would.
  std::ostringstream head;
  head << req.base();
  c.write_raw(head.str() + big.substr(0, 256 << 10));
  const auto r = c.read();
  EXPECT_EQ(r.result_int(), 413u);
}

TEST_F(ServerFixture, KeepAliveServesSeveralRequestsOnOneConnection) {
  Client c(server->port());
  for (int i = 0; i < 5; ++i) {
    const auto r = c.send(http::verb::post, "/echo", "n" + std::to_string(i));
    ASSERT_EQ(r.result_int(), 200u);
    EXPECT_EQ(body_json(r)["data"], "n" + std::to_string(i));
  }
}

TEST_F(ServerFixture, HandlerExceptionBecomes500WithoutKillingTheServer) {
  Client c(server->port());
  const auto r = c.send(http::verb::get, "/boom");
  EXPECT_EQ(r.result_int(), 500u);
  EXPECT_EQ(body_json(r)["error"]["code"], "internal_error");
  EXPECT_EQ(c.send(http::verb::get, "/healthz").result_int(), 200u);
}

TEST_F(ServerFixture, StopFinishesInFlightRequestsAndClosesIdleConnections) {
  Client idle(server->port());
  ASSERT_EQ(idle.send(http::verb::get, "/healthz").result_int(), 200u);  // now idle, kept alive
  Client busy(server->port());
  auto inflight =
      std::async(std::launch::async, [&] { return busy.send(http::verb::get, "/slow"); });
  slow_started.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  const auto r = inflight.get();
  EXPECT_EQ(r.result_int(), 200u);
  EXPECT_EQ(body_json(r)["data"], "done");
  EXPECT_TRUE(idle.closed());
}

TEST_F(ServerFixture, MetricsCountRequestsByRouteAndPassPromtool) {
  Client c(server->port());
  c.send(http::verb::get, "/healthz");
  c.send(http::verb::get, "/no/such/path/1");
  c.send(http::verb::get, "/no/such/path/2");
  const auto r = c.send(http::verb::get, "/metrics");
  ASSERT_EQ(r.result_int(), 200u);
  EXPECT_NE(r[http::field::content_type].find("text/plain; version=0.0.4"), std::string::npos);
  const auto text = r.body();
  EXPECT_NE(text.find("# TYPE sechex_http_requests_total counter"), std::string::npos);
  EXPECT_NE(
      text.find(R"(sechex_http_requests_total{method="GET",route="/healthz",status="200"} 1)"),
      std::string::npos)
      << text;
  // Raw paths never become labels: both unknown paths share one series.
  EXPECT_NE(text.find(R"(route="unmatched",status="404"} 2)"), std::string::npos) << text;
  EXPECT_EQ(text.find("/no/such/path"), std::string::npos);

  FILE* p = ::popen("promtool check metrics > /dev/null 2>&1", "w");
  ASSERT_NE(p, nullptr);
  std::fwrite(text.data(), 1, text.size(), p);
  EXPECT_EQ(::pclose(p), 0) << "promtool rejected the exposition:\n" << text;
}

TEST(AccessLog, WritesOneJsonLinePerRequestWithoutRawPaths) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "test-access", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_pattern("%v");
  ManualClock clock;
  Metrics metrics;
  Router router;
  add_health_and_metrics_routes(router, metrics, [] { return true; });
  ServerOptions o;
  o.port = 0;
  HttpServer server(o, std::move(router),
                    chain_observers({metrics.observer(), access_log(logger, clock)}));
  ASSERT_TRUE(server.start());
  {
    Client c(server.port());
    c.send(http::verb::get, "/healthz", "", {{"X-Request-Id", "req-42"}});
    c.send(http::verb::get, "/users/alice@example.com?token=secret");
  }
  server.stop();
  logger->flush();
  std::istringstream lines(out.str());
  std::string line;
  std::vector<nlohmann::json> entries;
  while (std::getline(lines, line)) entries.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(entries.size(), 2u) << out.str();
  EXPECT_EQ(entries[0]["route"], "/healthz");
  EXPECT_EQ(entries[0]["status"], 200);
  EXPECT_EQ(entries[0]["request_id"], "req-42");
  EXPECT_EQ(entries[0]["peer"], "127.0.0.1");
  EXPECT_EQ(entries[0]["ts"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(entries[1]["route"], "unmatched");
  EXPECT_EQ(entries[1]["status"], 404);
  EXPECT_EQ(out.str().find("alice@example.com"), std::string::npos);
  EXPECT_EQ(out.str().find("secret"), std::string::npos);
}

// Path parameters: `{name}` matches one non-empty segment, exact paths win, the more literal
// pattern wins, '%' escapes are refused, and metrics keep the pattern (bounded labels).
TEST(Router, PathParametersMatchOneSegmentAndExactPathsWin) {
  Router router;
  const auto answer = [](std::string what) {
    return [what](const Request&) { return json_ok(nlohmann::json(what).dump()); };
  };
  router.add("POST", "/v1/admin/users/{id}/unlock", answer("unlock"));
  router.add("POST", "/v1/admin/users/me/unlock", answer("exact"));
  router.add("GET", "/a/{x}/c", answer("param-first"));
  router.add("GET", "/a/b/{y}", answer("literal-first"));

  auto m = router.match("POST", "/v1/admin/users/u_123/unlock");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.route, "/v1/admin/users/{id}/unlock");
  EXPECT_EQ(m.params, (std::map<std::string, std::string>{{"id", "u_123"}}));
  EXPECT_EQ((*m.handler)(Request{}).body, json_ok("\"unlock\"").body);

  m = router.match("POST", "/v1/admin/users/me/unlock");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.route, "/v1/admin/users/me/unlock");
  EXPECT_TRUE(m.params.empty());

  m = router.match("GET", "/a/b/c");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.route, "/a/b/{y}");
  EXPECT_EQ(m.params.at("y"), "c");

  for (const char* path :
       {"/v1/admin/users//unlock", "/v1/admin/users/a/b/unlock", "/v1/admin/users/u%2F1/unlock",
        "/v1/admin/users/u_1/unlock/", "/v1/admin/users/u_1"}) {
    m = router.match("POST", path);
    EXPECT_EQ(m.handler, nullptr) << path;
    EXPECT_EQ(m.route, "unmatched") << path;
    EXPECT_TRUE(m.allowed.empty()) << path;
  }
  m = router.match("GET", "/v1/admin/users/u_1/unlock");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.route, "/v1/admin/users/{id}/unlock");
  EXPECT_EQ(m.allowed, std::vector<std::string>{"POST"});
}

TEST(Router, ServerPassesParametersAndLabelsMetricsWithThePattern) {
  Metrics metrics;
  Router router;
  add_health_and_metrics_routes(router, metrics, [] { return true; });
  router.add("POST", "/v1/users/{id}/unlock",
             [](const Request& r) { return json_ok(nlohmann::json(r.params.at("id")).dump()); });
  ServerOptions o;
  o.port = 0;
  HttpServer server(o, std::move(router), metrics.observer());
  ASSERT_TRUE(server.start());
  Client c(server.port());
  const auto ok = c.send(http::verb::post, "/v1/users/u_secret42/unlock");
  EXPECT_EQ(ok.result_int(), 200);
  EXPECT_EQ(nlohmann::json::parse(ok.body())["data"], "u_secret42");
  EXPECT_EQ(c.send(http::verb::post, "/v1/users/u%41/unlock").result_int(), 404);
  EXPECT_EQ(c.send(http::verb::get, "/v1/users/u_1/unlock").result_int(), 405);
  const auto text = c.send(http::verb::get, "/metrics").body();
  EXPECT_NE(text.find(R"(route="/v1/users/{id}/unlock")"), std::string::npos) << text;
  EXPECT_EQ(text.find("u_secret42"), std::string::npos) << text;
}

}  // namespace
}  // namespace sechex::api
