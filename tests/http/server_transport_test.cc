// The HTTP server's transport behaviour over real sockets: the blocking pool (overload, drain on
// stop), streamed bodies with bounded buffering, TLS 1.3 only, idle and read timeouts, the
// pipelining limit, many concurrent connections, and rejected requests counted by reason.
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/http/metrics.h"
#include "api/http/server.h"
#include "support/temp_dir.h"

namespace sechex::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A blocking HTTP client on a plain socket. Every read gives up after 10 s, so a server that
// never answers fails the test instead of hanging it.
class Client {
 public:
  explicit Client(std::uint16_t port, int rcvbuf = 0) : socket_(ioc_) {
    socket_.open(tcp::v4());
    if (rcvbuf > 0) socket_.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
    timeval tv{10, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  void write_raw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }
  void send(const std::string& target, const std::string& extra_headers = "") {
    write_raw("GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n");
  }
  http::response<http::string_body> read() {
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    return res;
  }
  // True when the server closed the connection (rather than the 10 s read limit passing).
  bool closed() {
    beast::error_code ec;
    char c;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }
  tcp::socket& socket() { return socket_; }
  beast::flat_buffer& buffer() { return buffer_; }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

ServerOptions test_options() {
  ServerOptions o;
  o.port = 0;
  return o;
}

std::unique_ptr<HttpServer> start(ServerOptions o, Router router, RequestObserver obs = {}) {
  auto server = std::make_unique<HttpServer>(std::move(o), std::move(router), std::move(obs));
  const auto r = server->start();
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? std::move(server) : nullptr;
}

// A gate that pool handlers wait on, and a count of the calls that reached them.
struct Gate {
  std::promise<void> open_promise;
  std::shared_future<void> open = open_promise.get_future().share();
  std::atomic<int> calls{0};
  std::atomic<int> waiting{0};
  Handler handler() {
    return [this](const Request&) {
      ++calls;
      ++waiting;
      open.wait();
      --waiting;
      return json_ok("\"released\"");
    };
  }
  void wait_for_waiters(int n) {
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (waiting < n && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(2));
    ASSERT_GE(waiting.load(), n);
  }
};

// The sechex_http_rejected_total sample for `reason`, once it equals `want` (the observer runs
// after the response is written, so a client can read the answer before it is counted), or
// whatever it is after 2 s.
std::string rejected(Metrics& m, const std::string& reason, const std::string& want = "1") {
  const std::string key = "sechex_http_rejected_total{reason=\"" + reason + "\"} ";
  std::string got = "absent";
  for (const auto deadline = Clock::now() + std::chrono::seconds(2); Clock::now() < deadline;) {
    const auto text = m.scrape();
    const auto at = text.find(key);
    if (at != std::string::npos) {
      got = text.substr(at + key.size(), text.find('\n', at) - at - key.size());
    }
    if (got == want) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return got;
}

// --- the blocking pool --------------------------------------------------------------------------

TEST(ServerPool, PoolHandlerDoesNotHoldTheOnlyIoThread) {
  Gate gate;
  Router router;
  router.add("GET", "/block", gate.handler(), Exec::pool);
  router.add("GET", "/healthz", [](const Request&) { return json_ok("1"); });
  auto o = test_options();
  o.threads = 1;
  auto server = start(o, std::move(router));
  ASSERT_TRUE(server);
  Client blocked(server->port());
  blocked.send("/block");
  gate.wait_for_waiters(1);
  Client other(server->port());
  other.send("/healthz");
  EXPECT_EQ(other.read().result_int(), 200u);  // answered while the pool job is still blocked
  gate.open_promise.set_value();
  const auto r = blocked.read();
  EXPECT_EQ(r.result_int(), 200u);
  EXPECT_EQ(r.body(), R"({"data":"released","error":null})");
}

TEST(ServerPool, ReadPoolServesReadsWhileEveryWritePoolThreadIsBlocked) {
  Gate gate;
  Router router;
  router.add("GET", "/block", gate.handler(), Exec::pool);
  router.add(
      "GET", "/read", [](const Request&) { return json_ok("\"read\""); }, Exec::read);
  auto o = test_options();
  o.pool_threads = 1;
  o.read_pool_threads = 1;
  auto server = start(o, std::move(router));
  ASSERT_TRUE(server);
  Client blocked(server->port());
  blocked.send("/block");
  gate.wait_for_waiters(1);
  Client reader(server->port());
  reader.send("/read");
  const auto r = reader.read();  // would hang if reads queued behind the blocked write job
  EXPECT_EQ(r.body(), R"({"data":"read","error":null})");
  gate.open_promise.set_value();
  EXPECT_EQ(blocked.read().result_int(), 200u);
}

TEST(ServerPool, FullQueueAnswers503OverloadedWithRetryAfterWithoutCallingTheHandler) {
  Gate gate;
  Metrics metrics;
  Router router;
  router.add("GET", "/block", gate.handler(), Exec::pool);
  auto o = test_options();
  o.pool_threads = 1;
  o.pool_queue = 1;
  auto server = start(o, std::move(router), metrics.observer());
  ASSERT_TRUE(server);
  Client running(server->port());
  running.send("/block");
  gate.wait_for_waiters(1);
  // One thread busy and one queue slot: of the next two requests one waits, one is refused.
  Client b(server->port());
  Client c(server->port());
  b.send("/block");
  c.send("/block");
  auto refused_then_other = [&]() -> std::pair<http::response<http::string_body>, Client*> {
    // The refusal comes at once; the queued request only after the gate opens.
    for (;;) {
      for (Client* cl : {&b, &c}) {
        int avail = 0;
        ::ioctl(cl->socket().native_handle(), FIONREAD, &avail);
        if (avail > 0) return {cl->read(), cl == &b ? &c : &b};
      }
      std::this_thread::sleep_for(milliseconds(2));
    }
  };
  auto [refusal, queued] = refused_then_other();
  EXPECT_EQ(refusal.result_int(), 503u);
  EXPECT_EQ(refusal[http::field::retry_after], "1");
  EXPECT_EQ(nlohmann::json::parse(refusal.body())["error"]["code"], "overloaded");
  EXPECT_EQ(gate.calls.load(), 1);
  gate.open_promise.set_value();
  EXPECT_EQ(running.read().result_int(), 200u);
  EXPECT_EQ(queued->read().result_int(), 200u);
  EXPECT_EQ(gate.calls.load(), 2);  // the refused request never reached the handler
  EXPECT_EQ(rejected(metrics, "overloaded"), "1");
}

TEST(ServerPool, StopWaitsForAPoolJobPastTheGraceAndWritesItsResponse) {
  Gate gate;
  Router router;
  router.add("POST", "/command", gate.handler(), Exec::pool);
  auto o = test_options();
  o.stop_grace = std::chrono::seconds(0);  // the job outlives the grace period
  auto server = start(o, std::move(router));
  ASSERT_TRUE(server);
  Client c(server->port());
  c.write_raw("POST /command HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  gate.wait_for_waiters(1);
  auto stopped = std::async(std::launch::async, [&] { server->stop(); });
  EXPECT_EQ(stopped.wait_for(milliseconds(200)), std::future_status::timeout);
  gate.open_promise.set_value();
  stopped.get();
  const auto r = c.read();  // acknowledged, not lost to the shutdown
  EXPECT_EQ(r.result_int(), 200u);
  EXPECT_FALSE(r.keep_alive());
}

// --- streamed bodies ----------------------------------------------------------------------------

TEST(ServerStreaming, FiftyMegabytesArriveIntactWithTheGeneratorOnlyAFewChunksAhead) {
  constexpr std::size_t kChunk = 64 << 10;
  constexpr std::size_t kChunks = 800;  // 50 MiB
  std::atomic<std::size_t> produced{0};
  Router router;
  router.add("GET", "/export", [&](const Request&) {
    Response r;
    r.content_type = "text/csv";
    r.next_chunk = [&produced, i = std::size_t{0}]() mutable -> Result<std::string> {
      if (i == kChunks) return std::string();
      ++produced;
      return std::string(kChunk, static_cast<char>('a' + i++ % 26));
    };
    return r;
  });
  auto server = start(test_options(), std::move(router));
  ASSERT_TRUE(server);
  Client c(server->port(), 64 << 10);
  c.send("/export");
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read_header(c.socket(), c.buffer(), parser);
  EXPECT_TRUE(parser.get().chunked());
  // The client reads nothing more: the server must stop producing once the socket buffers fill.
  std::size_t last = 0;
  for (int stable = 0; stable < 10;) {
    std::this_thread::sleep_for(milliseconds(20));
    stable = produced == last ? stable + 1 : 0;
    last = produced;
  }
  // Loopback socket buffers hold a few MiB at most (tcp_wmem max 4 MiB here); a server that
  // buffered the export would have produced all 50.
  EXPECT_LT(last * kChunk, std::size_t{12} << 20) << last << " chunks produced ahead";
  http::read(c.socket(), c.buffer(), parser);
  const auto& body = parser.get().body();
  ASSERT_EQ(body.size(), kChunk * kChunks);
  for (std::size_t i = 0; i < kChunks; ++i) {
    const char want = static_cast<char>('a' + i % 26);
    ASSERT_EQ(body.find_first_not_of(want, i * kChunk),
              i + 1 == kChunks ? std::string::npos : (i + 1) * kChunk)
        << "chunk " << i;
  }
  EXPECT_EQ(produced.load(), kChunks);
}

TEST(ServerStreaming, GeneratorErrorEndsTheConnectionWithoutTheLastChunk) {
  Router router;
  router.add("GET", "/export", [](const Request&) {
    Response r;
    r.next_chunk = [i = 0]() mutable -> Result<std::string> {
      if (i++ < 2) return std::string("part;");
      return ledger::Errc::io_error;
    };
    return r;
  });
  auto server = start(test_options(), std::move(router));
  ASSERT_TRUE(server);
  Client c(server->port());
  c.send("/export");
  http::response_parser<http::string_body> parser;
  beast::error_code ec;
  http::read(c.socket(), c.buffer(), parser, ec);
  EXPECT_EQ(ec, http::error::partial_message);  // truncated, never a short "complete" body
  EXPECT_EQ(parser.get().body(), "part;part;");
}

// --- TLS ----------------------------------------------------------------------------------------

struct TlsFiles {
  testing::TempDir dir;
  std::string cert = dir.sub("cert.pem");
  std::string key = dir.sub("key.pem");
  std::string other_key = dir.sub("other-key.pem");
  TlsFiles() {
    for (const auto& [c, k] : {std::pair{cert, key}, std::pair{dir.sub("other.pem"), other_key}}) {
      const auto cmd =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
          "-subj /CN=localhost -keyout " +
          k + " -out " + c + " >/dev/null 2>&1";
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed");
    }
  }
};

// Runs a shell command, returning its exit status and output (stdout and stderr).
std::pair<int, std::string> run(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  while (const auto n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(ServerTls, RefusesTls12AndServesHealthzOverTls13) {
  TlsFiles files;
  Metrics metrics;
  Router router;
  add_health_and_metrics_routes(router, metrics, [] { return true; });
  auto o = test_options();
  o.tls_cert_file = files.cert;
  o.tls_key_file = files.key;
  auto server = start(o, std::move(router));
  ASSERT_TRUE(server);
  const auto connect =
      "timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(server->port()) +
      " -servername localhost";
  const auto [v12, out12] = run(connect + " -tls1_2 </dev/null");
  EXPECT_NE(v12, 0) << out12;
  const auto [v13, out13] =
      run("printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | " +
          connect + " -tls1_3 -quiet");
  EXPECT_EQ(v13, 0) << out13;
  EXPECT_NE(out13.find("HTTP/1.1 200 OK"), std::string::npos) << out13;
  EXPECT_NE(out13.find(R"({"data":{"status":"ok"},"error":null})"), std::string::npos) << out13;
}

TEST(ServerTls, StartFailsClearlyForAMissingKeyOrAKeyThatDoesNotMatch) {
  TlsFiles files;
  {
    auto o = test_options();
    o.tls_cert_file = files.cert;
    o.tls_key_file = files.dir.sub("absent.pem");
    HttpServer server(o, Router{});
    const auto r = server.start();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ledger::Errc::key_missing);
    EXPECT_NE(r.error().message.find("absent.pem"), std::string::npos) << r.error().message;
  }
  {
    auto o = test_options();
    o.tls_cert_file = files.cert;
    o.tls_key_file = files.other_key;
    HttpServer server(o, Router{});
    const auto r = server.start();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ledger::Errc::key_invalid);
    EXPECT_NE(r.error().message.find("match"), std::string::npos) << r.error().message;
  }
  {
    auto o = test_options();
    o.tls_cert_file = files.key;  // a key where the certificate belongs
    o.tls_key_file = files.key;
    HttpServer server(o, Router{});
    const auto r = server.start();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ledger::Errc::key_invalid) << r.error().message;
  }
}

TEST(ServerTls, SilentClientIsDroppedAfterTheHandshakeTimeout) {
  TlsFiles files;
  auto o = test_options();
  o.tls_cert_file = files.cert;
  o.tls_key_file = files.key;
  o.handshake_timeout = milliseconds(300);
  auto server = start(o, Router{});
  ASSERT_TRUE(server);
  Client c(server->port());
  const auto t0 = Clock::now();
  EXPECT_TRUE(c.closed());
  EXPECT_GE(Clock::now() - t0, milliseconds(250));
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));
}

// --- timeouts and limits ------------------------------------------------------------------------

TEST(ServerLimits, SlowHeaderClientIsCutOffAfterReadTimeoutWhileStillSending) {
  Metrics metrics;
  Router router;
  router.add("GET", "/healthz", [](const Request&) { return json_ok("1"); });
  auto o = test_options();
  o.read_timeout = milliseconds(600);
  o.idle_timeout = std::chrono::seconds(10);
  auto server = start(o, std::move(router), metrics.observer());
  ASSERT_TRUE(server);
  Client c(server->port());
  std::atomic<bool> done{false};
  std::atomic<int> sent{0};
  // One byte every 200 ms, never finishing the headers: each byte is well inside any per-read
  // timeout, only a deadline for the whole request catches it.
  std::thread trickle([&] {
    const std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(100, 'p');
    for (const char ch : req) {
      if (done) return;
      beast::error_code ec;
      asio::write(c.socket(), asio::buffer(&ch, 1), ec);
      if (ec) return;
      ++sent;
      std::this_thread::sleep_for(milliseconds(200));
    }
  });
  const auto t0 = Clock::now();
  const bool closed = c.closed();
  const auto elapsed = Clock::now() - t0;
  done = true;
  trickle.join();
  EXPECT_TRUE(closed);
  EXPECT_GE(elapsed, milliseconds(550));
  EXPECT_LT(elapsed, milliseconds(2000));
  EXPECT_GE(sent.load(), 3);  // it was still sending when cut off
  EXPECT_EQ(rejected(metrics, "timeout"), "1");
}

TEST(ServerLimits, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  Router router;
  router.add("GET", "/healthz", [](const Request&) { return json_ok("1"); });
  auto o = test_options();
  o.idle_timeout = milliseconds(300);
  o.read_timeout = std::chrono::seconds(10);
  auto server = start(o, std::move(router));
  ASSERT_TRUE(server);
  Client c(server->port());
  c.send("/healthz");
  const auto r = c.read();
  ASSERT_EQ(r.result_int(), 200u);
  EXPECT_TRUE(r.keep_alive());
  const auto t0 = Clock::now();
  EXPECT_TRUE(c.closed());
  EXPECT_GE(Clock::now() - t0, milliseconds(250));
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));  // not the 10 s read timeout
}

TEST(ServerLimits, PipelinedRequestsAreAnsweredInOrderUpToMaxPipelinedThenClosed) {
  Router router;
  router.add("GET", "/id", [](const Request& r) { return json_ok("\"" + r.request_id + "\""); });
  auto server = start(test_options(), std::move(router));  // max_pipelined = 16
  ASSERT_TRUE(server);
  Client c(server->port());
  std::string burst;
  for (int i = 0; i < 20; ++i) {
    burst += "GET /id HTTP/1.1\r\nHost: x\r\nX-Request-Id: p" + std::to_string(i) + "\r\n\r\n";
  }
  c.write_raw(burst);  // twenty requests before reading any answer
  for (int i = 0; i < 16; ++i) {
    const auto r = c.read();
    ASSERT_EQ(r.result_int(), 200u) << i;
    EXPECT_EQ(r["X-Request-Id"], "p" + std::to_string(i));
    EXPECT_EQ(r.keep_alive(), i < 15) << i;
  }
  EXPECT_TRUE(c.closed());  // requests 17..20 are left for the client to retry
}

TEST(ServerLimits, ThousandConcurrentConnectionsEachGetTheirAnswer) {
  constexpr int kConns = 1000;
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  const rlim_t need = 2 * kConns + 200;  // both ends live in this process
  if (lim.rlim_cur < need) {
    if (lim.rlim_max < need) {
      GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max << " is below the " << need
                   << " descriptors this test needs";
    }
    rlimit raised = lim;
    raised.rlim_cur = need;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
  }
  Router router;
  router.add("GET", "/n", [](const Request& r) { return json_ok("\"" + r.request_id + "\""); });
  auto server = start(test_options(), std::move(router));
  ASSERT_TRUE(server);
  // Plain sockets on one io_context: a Client each would add an epoll instance per connection.
  asio::io_context ioc;
  std::vector<tcp::socket> sockets;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), server->port());
  for (int i = 0; i < kConns; ++i) {
    sockets.emplace_back(ioc).connect(ep);
    timeval tv{10, 0};
    ::setsockopt(sockets.back().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  // All connections are open before any is answered: the server holds them all at once.
  for (int i = 0; i < kConns; ++i) {
    const auto req =
        "GET /n HTTP/1.1\r\nHost: x\r\nX-Request-Id: c" + std::to_string(i) + "\r\n\r\n";
    asio::write(sockets[i], asio::buffer(req));
  }
  int ok = 0;
  for (int i = 0; i < kConns; ++i) {
    beast::flat_buffer buf;
    http::response<http::string_body> r;
    beast::error_code ec;
    http::read(sockets[i], buf, r, ec);
    ok += !ec && r.result_int() == 200u && r["X-Request-Id"] == "c" + std::to_string(i);
  }
  EXPECT_EQ(ok, kConns);
  sockets.clear();
  server.reset();
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

TEST(ServerLimits, RejectionsAreCountedByReasonAndPassPromtool) {
  Metrics metrics;
  Router router;
  add_health_and_metrics_routes(router, metrics, [] { return true; });
  router.add("POST", "/echo", [](const Request& r) { return json_ok(r.body); });
  auto o = test_options();
  o.body_limit = 16;
  auto server = start(o, std::move(router), metrics.observer());
  ASSERT_TRUE(server);
  {
    Client c(server->port());
    c.write_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" +
                std::string(100, 'a'));
    EXPECT_EQ(c.read().result_int(), 413u);
  }
  {
    Client c(server->port());
    c.write_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10000, 'b') +
                "\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 431u);
  }
  {
    Client c(server->port());
    c.write_raw("GET /healthz HTTP/1.1\r\nHost x\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 400u);
  }
  for (const char* reason : {"payload_too_large", "headers_too_large", "malformed_http"}) {
    EXPECT_EQ(rejected(metrics, reason), "1") << reason;
  }
  EXPECT_EQ(rejected(metrics, "overloaded", "0"), "0");  // exported before the first one
  Client c(server->port());
  c.send("/metrics");
  const auto text = c.read().body();
  FILE* p = ::popen("promtool check metrics > /dev/null 2>&1", "w");
  ASSERT_NE(p, nullptr);
  std::fwrite(text.data(), 1, text.size(), p);
  EXPECT_EQ(::pclose(p), 0) << "promtool rejected the exposition:\n" << text;
}

// ---- Message framing (RFC 9112 sections 3.2, 6.1, 6.3): request smuggling ----

// A server with POST /echo and GET /secret, counting the calls that reach /secret.
struct FramingServer {
  std::atomic<int> secret_calls{0};
  std::atomic<int> echo_calls{0};
  std::unique_ptr<HttpServer> server;
  FramingServer() {
    Router router;
    router.add("POST", "/echo", [this](const Request& r) {
      ++echo_calls;
      return json_ok(nlohmann::json(r.body).dump());
    });
    router.add("GET", "/secret", [this](const Request&) {
      ++secret_calls;
      return json_ok("\"secret\"");
    });
    server = start(test_options(), std::move(router));
  }
};

// Sends `head` + "\r\n" + a complete second request hidden where the first one's body would be;
// expects one answer of `status`, then the connection closed, and neither handler called.
void expect_refused_and_closed(FramingServer& fs, const std::string& head, unsigned status) {
  Client c(fs.server->port());
  c.write_raw(head + "\r\n" + "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto res = c.read();
  EXPECT_EQ(res.result_int(), status) << head;
  EXPECT_EQ(nlohmann::json::parse(res.body())["error"]["details"]["reason"], "message_framing")
      << head;
  EXPECT_FALSE(res.keep_alive()) << head;
  EXPECT_TRUE(c.closed()) << head;
  EXPECT_EQ(fs.secret_calls.load(), 0) << "the smuggled request was served: " << head;
  EXPECT_EQ(fs.echo_calls.load(), 0) << head;
}

TEST(ServerFraming, TransferEncodingNotEndingInChunkedIsRefusedAndNothingBehindItIsServed) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  for (const char* coding : {"gzip", "xchunked", "chunked, identity", "chunkedx", "identity"}) {
    expect_refused_and_closed(
        fs, std::string("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + coding + "\r\n",
        400);
  }
  // Split over two field lines, the last coding is still what counts.
  expect_refused_and_closed(
      fs,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
      400);
}

TEST(ServerFraming, TransferEncodingWithContentLengthIsRefusedWhateverTheHeaderOrder) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  for (const char* coding : {"gzip", "chunked"}) {
    const std::string te = std::string("Transfer-Encoding: ") + coding + "\r\n";
    const std::string cl = "Content-Length: 36\r\n";
    expect_refused_and_closed(fs, "POST /echo HTTP/1.1\r\nHost: x\r\n" + te + cl, 400);
    expect_refused_and_closed(fs, "POST /echo HTTP/1.1\r\nHost: x\r\n" + cl + te, 400);
  }
}

TEST(ServerFraming, UnimplementedCodingsBeforeChunkedAnswer501AndTransferEncodingInHttp10Is400) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  expect_refused_and_closed(
      fs, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n", 501);
  expect_refused_and_closed(fs, "POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n",
                            400);
}

// A folded line (obs-fold) is joined by the parser to the line above; a proxy in front may take
// it for a field of its own (here a Transfer-Encoding the server would never see).
TEST(ServerFraming, FoldedHeaderLinesAreRefused) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  expect_refused_and_closed(fs,
                            "POST /echo HTTP/1.1\r\nHost: x\r\nX-Pad: a\r\n Transfer-Encoding: "
                            "chunked\r\nContent-Length: 0\r\n",
                            400);
  expect_refused_and_closed(
      fs, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\tchunked\r\n", 400);
}

// Content-Length must be one decimal number, once (RFC 9112 section 6.3 allows folding equal
// values; a server that refuses cannot disagree with anyone about them).
TEST(ServerFraming, RepeatedContentLengthIsRefusedEvenWithEqualValues) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  expect_refused_and_closed(fs, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\n", 400);
  expect_refused_and_closed(
      fs, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n", 400);
}

// Trailer fields of a chunked body would land among the checked header fields (a trailing Host
// or X-Forwarded-For overriding the real one): refused.
TEST(ServerFraming, TrailerFieldsAreRefused) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  Client c(fs.server->port());
  c.write_raw(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\nGET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto res = c.read();
  EXPECT_EQ(res.result_int(), 400u);
  EXPECT_EQ(nlohmann::json::parse(res.body())["error"]["details"]["reason"], "message_framing");
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(fs.echo_calls.load(), 0);
  EXPECT_EQ(fs.secret_calls.load(), 0);
}

TEST(ServerFraming, ChunkedAloneStillWorksAndKeepsTheConnection) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  Client c(fs.server->port());
  c.write_raw(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n");
  const auto res = c.read();
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(nlohmann::json::parse(res.body())["data"], "hello");
  c.send("/secret");
  EXPECT_EQ(c.read().result_int(), 200u);
  EXPECT_EQ(fs.secret_calls.load(), 1);
}

TEST(ServerFraming, MissingDuplicateOrInvalidHostIsRefused) {
  FramingServer fs;
  ASSERT_TRUE(fs.server);
  for (const char* head :
       {"GET /secret HTTP/1.1\r\n", "GET /secret HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
        "GET /secret HTTP/1.1\r\nHost: a\r\nhost: a\r\n", "GET /secret HTTP/1.1\r\nHost: a/b\r\n",
        "GET /secret HTTP/1.1\r\nHost: a@b\r\n", "GET /secret HTTP/1.1\r\nHost: a:80x\r\n",
        "GET /secret HTTP/1.1\r\nHost: [::1\r\n"}) {
    Client c(fs.server->port());
    c.write_raw(std::string(head) + "\r\n");
    const auto res = c.read();
    EXPECT_EQ(res.result_int(), 400u) << head;
    EXPECT_TRUE(c.closed()) << head;
  }
  EXPECT_EQ(fs.secret_calls.load(), 0);
  // Valid authorities, and HTTP/1.0 without Host (it has none to send).
  for (const char* head :
       {"GET /secret HTTP/1.1\r\nHost: id.example.com:8443\r\n",
        "GET /secret HTTP/1.1\r\nHost: [::1]:80\r\n", "GET /secret HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        "GET /secret HTTP/1.1\r\nHost: \r\n", "GET /secret HTTP/1.0\r\n"}) {
    Client c(fs.server->port());
    c.write_raw(std::string(head) + "\r\n");
    EXPECT_EQ(c.read().result_int(), 200u) << head;
  }
  EXPECT_EQ(fs.secret_calls.load(), 5);
}

// ---- HEAD (RFC 9110 section 9.3.2) ----

TEST(ServerHead, HeadIsAnsweredWhereverGetIsWithItsHeaderAndNoBody) {
  std::atomic<int> chunks{0};
  Router router;
  router.add("GET", "/doc", [](const Request&) { return json_ok("\"0123456789\""); });
  router.add("GET", "/stream", [&chunks](const Request&) {
    Response r;
    r.next_chunk = [&chunks]() -> Result<std::string> {
      return ++chunks == 1 ? std::string("part") : std::string();
    };
    return r;
  });
  router.add("POST", "/only-post", [](const Request&) { return json_ok("1"); });
  auto server = start(test_options(), std::move(router));
  ASSERT_TRUE(server);
  Client c(server->port());
  // HEAD, then GET on the same connection: a body after the HEAD answer would be read as the
  // start of the GET answer and fail the parse below.
  c.write_raw("HEAD /doc HTTP/1.1\r\nHost: x\r\n\r\nGET /doc HTTP/1.1\r\nHost: x\r\n\r\n");
  http::response_parser<http::string_body> head_parser;
  head_parser.skip(true);  // a HEAD answer has no body whatever its Content-Length says
  http::read(c.socket(), c.buffer(), head_parser);
  const auto& head = head_parser.get();
  const auto get = c.read();
  EXPECT_EQ(head.result_int(), 200u);
  EXPECT_EQ(get.result_int(), 200u);
  EXPECT_EQ(head[http::field::content_length], std::to_string(get.body().size()));
  EXPECT_EQ(head[http::field::content_type], get[http::field::content_type]);
  EXPECT_TRUE(head.body().empty());

  // A streamed body is not produced for HEAD at all.
  c.write_raw("HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  http::response_parser<http::string_body> stream_head;
  stream_head.skip(true);
  http::read(c.socket(), c.buffer(), stream_head);
  EXPECT_EQ(stream_head.get().result_int(), 200u);
  EXPECT_EQ(chunks.load(), 0);

  // Allow lists HEAD beside GET; HEAD where there is no GET is 405.
  c.write_raw("DELETE /doc HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read()[http::field::allow], "GET, HEAD");
  c.write_raw("HEAD /only-post HTTP/1.1\r\nHost: x\r\n\r\n");
  http::response_parser<http::string_body> refused;
  refused.skip(true);
  http::read(c.socket(), c.buffer(), refused);
  EXPECT_EQ(refused.get().result_int(), 405u);
}

// ---- A handler that throws ----

TEST(ServerErrors, AHandlerThatThrowsAnswers500AndTheObserverNamesTheExceptionClassOnly) {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> seen;  // route, exception class
  Router router;
  router.add("GET", "/boom", [](const Request&) -> Response {
    throw std::invalid_argument("secret-input-do-not-log");
  });
  router.add(
      "GET", "/boom-pool", [](const Request&) -> Response { throw 42; }, Exec::pool);
  router.add("GET", "/fine", [](const Request&) { return json_ok("1"); });
  auto server = start(test_options(), std::move(router), [&](const RequestLog& log) {
    std::lock_guard lock(mu);
    seen.emplace_back(std::string(log.route), std::string(log.handler_exception));
  });
  ASSERT_TRUE(server);
  Client c(server->port());
  for (const char* path : {"/boom", "/boom-pool", "/fine"}) {
    c.send(path);
    const auto res = c.read();
    EXPECT_EQ(res.result_int(), std::string(path) == "/fine" ? 200u : 500u) << path;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (Clock::now() < deadline) {
    std::lock_guard lock(mu);
    if (seen.size() == 3) break;
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], (std::pair<std::string, std::string>{"/boom", "std::invalid_argument"}));
  EXPECT_EQ(seen[1], (std::pair<std::string, std::string>{"/boom-pool", "int"}));
  EXPECT_EQ(seen[2], (std::pair<std::string, std::string>{"/fine", ""}));
}

// Response::after_write: the work a 202 hands off starts only once its answer is out.
TEST(ServerAfterWrite, RunsOnceAfterTheAnswerIsWrittenForIoAndPoolHandlers) {
  std::atomic<int> calls{0};
  std::promise<void> released;
  auto release = released.get_future().share();
  Router router;
  for (const auto& [path, exec] : {std::pair{"/io", Exec::io}, std::pair{"/pool", Exec::pool}}) {
    router.add(
        "POST", path,
        [&calls, release](const Request&) {
          auto r = json_ok("\"accepted\"", 202);
          r.after_write = [&calls, release] {
            ++calls;
            release.wait();  // the answer must already be with the client
          };
          return r;
        },
        exec);
  }
  // Two io threads: each after_write below blocks one (allowed here only to prove the order).
  auto o = test_options();
  o.threads = 2;
  auto server = start(o, std::move(router));
  ASSERT_TRUE(server);
  Client io(server->port());
  io.write_raw("POST /io HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(io.read().result_int(), 202u);
  Client pool(server->port());
  pool.write_raw("POST /pool HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(pool.read().result_int(), 202u);
  released.set_value();
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (calls.load() < 2 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(2));
  EXPECT_EQ(calls.load(), 2);
}

}  // namespace
}  // namespace sechex::api
