#include "api/server.h"

#include <openssl/rand.h>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

namespace sechex::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Methods a client can send are unbounded tokens; metric labels must not be.
std::string method_label(std::string_view m) {
  for (const char* known : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    if (m == known) return known;
  }
  return "other";
}

bool safe_header_value(std::string_view v) {
  return v.find_first_of("\r\n") == std::string_view::npos &&
         v.find('\0') == std::string_view::npos;
}

std::string new_request_id() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return "unavailable";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const auto b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

}  // namespace

Response json_ok(const std::string& data_json, unsigned status) {
  Response r;
  r.status = status;
  r.body = "{\"data\":" + data_json + ",\"error\":null}";
  return r;
}

Response json_error(unsigned status, std::string_view code, std::string_view message,
                    const std::string& details_json) {
  nlohmann::json err;
  err["code"] = code;
  err["message"] = message;
  err["details"] = nlohmann::json::parse(details_json, nullptr, false);
  if (err["details"].is_discarded()) err["details"] = nlohmann::json::object();
  Response r;
  r.status = status;
  r.body = nlohmann::json{{"data", nullptr}, {"error", err}}.dump();
  return r;
}

RequestObserver chain_observers(std::vector<RequestObserver> observers) {
  return [observers = std::move(observers)](const RequestLog& log) {
    for (const auto& o : observers) {
      if (o) o(log);
    }
  };
}

void Router::add(std::string method, std::string path, Handler handler, Exec exec) {
  routes_[std::move(path)][std::move(method)] = Route{std::move(handler), exec};
}

Router::Match Router::match(const std::string& method, const std::string& path) const {
  Match m;
  m.route = "unmatched";
  const auto it = routes_.find(path);
  if (it == routes_.end()) return m;
  m.route = path;
  const auto h = it->second.find(method);
  if (h != it->second.end()) {
    m.handler = &h->second.handler;
    m.exec = h->second.exec;
    return m;
  }
  for (const auto& [allowed, unused] : it->second) m.allowed.push_back(allowed);
  return m;
}

struct HttpServer::Impl {
  ServerOptions opts;
  Router router;
  RequestObserver observer;
  asio::io_context ioc;
  std::optional<asio::basic_socket_acceptor<tcp, asio::strand<asio::io_context::executor_type>>>
      acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;
  std::uint16_t port = 0;

  // Open connections, so stop() can close the idle ones instead of waiting for timeouts.
  struct Conn {
    beast::tcp_stream* stream;
    bool idle;
  };
  std::mutex mu;
  std::condition_variable drained;
  std::map<std::uint64_t, Conn> conns;
  std::uint64_t next_conn = 0;

  Impl(ServerOptions o, Router r, RequestObserver obs)
      : opts(std::move(o)),
        router(std::move(r)),
        observer(std::move(obs)),
        ioc(static_cast<int>(std::max(1u, opts.threads))) {}

  std::uint64_t add_conn(beast::tcp_stream* s) {
    std::lock_guard lock(mu);
    conns[++next_conn] = Conn{s, true};
    return next_conn;
  }
  void set_idle(std::uint64_t id, bool idle) {
    std::lock_guard lock(mu);
    conns[id].idle = idle;
  }
  void remove_conn(std::uint64_t id) {
    std::lock_guard lock(mu);
    conns.erase(id);
    drained.notify_all();
  }

  Response dispatch(const Request& req, std::string& route) {
    const auto m = router.match(req.method, req.path);
    route = m.route;
    if (m.handler == nullptr) {
      if (m.allowed.empty()) return json_error(404, "not_found", "no such endpoint");
      std::string allow;
      for (const auto& a : m.allowed) allow += (allow.empty() ? "" : ", ") + a;
      auto r = json_error(405, "method_not_allowed", "method not allowed for this endpoint");
      r.headers.emplace_back("Allow", allow);
      return r;
    }
    try {
      auto resp = (*m.handler)(req);
      // Interim: pool routes run inline and streamed bodies are collected before writing.
      if (resp.next_chunk) {
        for (;;) {
          auto chunk = resp.next_chunk();
          if (!chunk) return json_error(500, "internal_error", "internal error");
          if (chunk.value().empty()) break;
          resp.body += chunk.value();
        }
        resp.next_chunk = nullptr;
      }
      return resp;
    } catch (const std::exception&) {
      // A handler bug must not take the connection (or the process) down with it.
      return json_error(500, "internal_error", "internal error");
    }
  }

  asio::awaitable<void> write(beast::tcp_stream& stream, const Response& resp,
                              const std::string& request_id, bool keep_alive, unsigned version,
                              boost::system::error_code& ec) {
    http::response<http::string_body> res;
    res.version(version);
    // Beast throws on statuses outside 100..999; a handler bug must not escape as an exception.
    res.result(resp.status >= 100 && resp.status <= 999 ? resp.status : 500);
    res.set(http::field::server, "sechex-ledgerd");
    res.set(http::field::content_type, resp.content_type);
    res.set("X-Request-Id", request_id);
    res.set("X-Content-Type-Options", "nosniff");
    res.set(http::field::cache_control, "no-store");
    // insert, not set: a response may carry several Set-Cookie headers. Values with CR/LF are
    // dropped so that a handler echoing input can never split the response.
    for (const auto& [k, v] : resp.headers) {
      if (safe_header_value(k) && safe_header_value(v)) res.insert(k, v);
    }
    res.body() = resp.body;
    res.keep_alive(keep_alive);
    res.prepare_payload();
    stream.expires_after(opts.write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    const auto id = add_conn(&stream);
    // The registry must never keep a pointer to a stream that is gone, whatever happens below.
    struct Unregister {
      Impl* self;
      std::uint64_t id;
      ~Unregister() { self->remove_conn(id); }
    } unregister{this, id};
    try {
      co_await serve(stream, id);
    } catch (const std::exception&) {
      // Nothing sensible to tell a client whose connection broke mid-response: close it.
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // Reads and discards what the client is still sending (bounded in bytes and time), so that
  // closing after an early refusal does not reset the connection before the client reads it.
  asio::awaitable<void> drain(beast::tcp_stream& stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(std::chrono::seconds(2));
    std::array<char, 16384> sink;
    for (std::size_t total = 0; total < (1u << 20) && !ec;) {
      total += co_await stream.async_read_some(asio::buffer(sink),
                                               asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::awaitable<void> serve(beast::tcp_stream& stream, std::uint64_t id) {
    std::string peer;
    {
      boost::system::error_code pec;
      const auto ep = stream.socket().remote_endpoint(pec);
      if (!pec) peer = ep.address().to_string();
    }
    beast::flat_buffer buffer;
    for (unsigned n = 0; n < opts.max_requests_per_connection; ++n) {
      if (stopping && buffer.size() == 0) break;
      http::request_parser<http::string_body> parser;
      parser.body_limit(opts.body_limit);
      parser.header_limit(opts.header_limit);
      stream.expires_after(opts.read_timeout);
      boost::system::error_code ec;
      set_idle(id, buffer.size() == 0);
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      set_idle(id, false);
      if (ec) {
        // Answer what the client got wrong; anything else (EOF, timeout, reset) just closes.
        std::optional<Response> refusal;
        if (ec == http::error::body_limit) {
          refusal = json_error(413, "payload_too_large", "request body exceeds the limit");
        } else if (ec == http::error::header_limit) {
          refusal = json_error(431, "invalid_request", "request headers too large");
        } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          refusal = json_error(400, "invalid_request", "malformed HTTP request");
        }
        if (refusal) {
          // The headers may have been parsed before the limit hit: keep the client's id.
          const auto it = parser.get().find("X-Request-Id");
          const std::string sent = it != parser.get().end() ? std::string(it->value()) : "";
          const std::string request_id = sane_request_id(sent) ? sent : new_request_id();
          boost::system::error_code wec;
          co_await write(stream, *refusal, request_id, false, 11, wec);
          if (observer) {
            observer(RequestLog{
                "other", "unparsed", refusal->status, {}, request_id, peer, refusal->body.size()});
          }
          if (!wec) co_await drain(stream);
        }
        break;
      }
      const auto started_at = std::chrono::steady_clock::now();
      auto& msg = parser.get();
      Request req;
      req.method = std::string(msg.method_string());
      const auto target = std::string(msg.target());
      const auto q = target.find('?');
      req.path = target.substr(0, q);
      if (q != std::string::npos) req.query = target.substr(q + 1);
      for (const auto& f : msg) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        req.headers[name] = std::string(f.value());
      }
      req.body = std::move(msg.body());
      req.peer = peer;
      const auto* rid = req.header("x-request-id");
      req.request_id = rid != nullptr && sane_request_id(*rid) ? *rid : new_request_id();
      std::string route;
      const auto resp = dispatch(req, route);
      const bool keep_alive =
          msg.keep_alive() && !stopping && n + 1 < opts.max_requests_per_connection;
      co_await write(stream, resp, req.request_id, keep_alive, msg.version(), ec);
      if (observer) {
        const auto label = method_label(req.method);
        observer(RequestLog{label, route, resp.status,
                            std::chrono::steady_clock::now() - started_at, req.request_id, peer,
                            resp.body.size()});
      }
      if (ec || !keep_alive) break;
    }
  }

  asio::awaitable<void> listen() {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor->async_accept(asio::make_strand(ioc),
                                                    asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acceptor->is_open() || stopping) co_return;
        // e.g. EMFILE: keep serving the connections we have, and do not spin while it lasts.
        asio::steady_timer backoff(co_await asio::this_coro::executor,
                                   std::chrono::milliseconds(50));
        co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      auto ex = socket.get_executor();
      asio::co_spawn(ex, session(std::move(socket)), asio::detached);
    }
  }
};

HttpServer::HttpServer(ServerOptions options, Router router, RequestObserver observer)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(router), std::move(observer))) {}

HttpServer::~HttpServer() { stop(); }

Result<void> HttpServer::start() {
  auto& s = *impl_;
  if (s.started) return ledger::Errc::invalid_argument;
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(s.opts.address, ec);
  if (ec) return std::make_error_code(std::errc::invalid_argument);
  // The acceptor lives on its own strand: the accept loop and stop()'s close never race.
  s.acceptor.emplace(asio::make_strand(s.ioc));
  const tcp::endpoint ep(addr, s.opts.port);
  s.acceptor->open(ep.protocol(), ec);
  if (!ec) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(ep, ec);
  if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return std::error_code(ec.value(), std::system_category());
  }
  s.port = s.acceptor->local_endpoint().port();
  asio::co_spawn(s.acceptor->get_executor(), s.listen(), asio::detached);
  s.started = true;
  for (unsigned i = 0; i < std::max(1u, s.opts.threads); ++i) {
    s.threads.emplace_back([&s] { s.ioc.run(); });
  }
  return boost::outcome_v2::success();
}

std::uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() {
  auto& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  asio::post(s.acceptor->get_executor(), [&s] {
    boost::system::error_code ec;
    s.acceptor->close(ec);
  });
  const auto deadline = std::chrono::steady_clock::now() + s.opts.stop_grace;
  std::unique_lock lock(s.mu);
  while (!s.conns.empty() && std::chrono::steady_clock::now() < deadline) {
    // Idle keep-alive connections would otherwise sit until their read timeout. Cancel them on
    // their own strand, after checking they still exist there.
    for (auto& [id, conn] : s.conns) {
      if (!conn.idle) continue;
      asio::post(conn.stream->get_executor(), [&s, cid = id] {
        std::lock_guard inner(s.mu);
        const auto it = s.conns.find(cid);
        if (it != s.conns.end() && it->second.idle) it->second.stream->cancel();
      });
    }
    s.drained.wait_for(lock, std::chrono::milliseconds(50));
  }
  lock.unlock();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

}  // namespace sechex::api
