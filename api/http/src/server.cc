#include "api/http/server.h"

#include <cxxabi.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <type_traits>

#include "api/http/api_error.h"
#include "api/http/i18n.h"

namespace sechex::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

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

// The last OpenSSL error on this thread, in words (and the queue cleared).
std::string openssl_error() {
  char buf[256] = "unknown OpenSSL error";
  unsigned long last = 0;
  while (const unsigned long e = ERR_get_error()) last = e;
  if (last != 0) ERR_error_string_n(last, buf, sizeof(buf));
  return buf;
}

// A fixed set of threads running jobs from a bounded queue. A job is accepted while a thread is
// idle or fewer than `queue_limit` jobs wait for one; drain() refuses new jobs, runs every job
// already accepted and joins the threads.
class BlockingPool {
 public:
  void start(unsigned threads, std::size_t queue_limit) {
    limit_ = queue_limit;
    for (unsigned i = 0; i < std::max(1u, threads); ++i) threads_.emplace_back([this] { run(); });
  }
  // Jobs must not throw.
  bool try_submit(std::function<void()>&& job) {
    std::lock_guard lock(mu_);
    if (closing_ || queue_.size() >= limit_ + idle_) return false;
    queue_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }
  bool closing() const {
    std::lock_guard lock(mu_);
    return closing_;
  }
  void drain() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [this] { return closing_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;
      auto job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      job();
      job = nullptr;  // whatever the job held goes before the lock is taken again
      lock.lock();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t limit_ = 0;
  std::size_t idle_ = 0;
  bool closing_ = false;
};

// The demangled class of the exception in flight, for logs: a class says what failed (a JSON
// type error, a bad_alloc) without what() quoting the input that made it fail.
std::string current_exception_class() {
  const auto* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? name.get() : type->name();
}

// `thrown` is set to the exception's class when the handler threw.
Response call_handler(const Handler& handler, const Request& req, std::string& thrown) noexcept {
  try {
    return handler(req);
  } catch (...) {
    // A handler bug must not take the connection (or the process) down with it.
    try {
      thrown = current_exception_class();
    } catch (...) {
      thrown = "unknown";
    }
    return json_error(500, "internal_error", "internal error");
  }
}

// Without the optional whitespace (RFC 9110 OWS) at either end.
std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// RFC 9112 section 3.2 / RFC 3986: host [":" port], where host is an IP literal in brackets or a
// reg-name / IPv4 address (unreserved, pct-encoded and sub-delims characters).
bool valid_host(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    if (close == std::string_view::npos) return false;
    for (const char c : h.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    h.remove_prefix(close + 1);
    if (h.empty()) return true;
    if (h.front() != ':') return false;
  } else {
    const auto colon = h.find(':');
    for (const char c : h.substr(0, colon)) {
      const bool ok = std::isalnum(static_cast<unsigned char>(c)) ||
                      std::string_view("-._~%!$&'()*+,;=").find(c) != std::string_view::npos;
      if (!ok) return false;
    }
    if (colon == std::string_view::npos) return true;
    h.remove_prefix(colon);
  }
  h.remove_prefix(1);  // ':'
  return h.size() <= 5 && std::all_of(h.begin(), h.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c));
         });
}

// Where the header that starts the buffer ends (just past its empty line), 0 when it has not
// all arrived.
std::size_t end_of_header(const beast::flat_buffer& buffer) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  const auto at = data.find("\r\n\r\n");
  return at == std::string_view::npos ? 0 : at + 4;
}

// Whether a line of the header (its first `size` bytes in `buffer`) continues the one above
// (obs-fold: starts with a space or a tab), which RFC 9112 section 5.2 lets a server refuse.
bool has_obs_fold(const beast::flat_buffer& buffer, std::size_t size) {
  const std::string_view header(static_cast<const char*>(buffer.data().data()), size);
  for (auto at = header.find('\n'); at != std::string_view::npos && at + 1 < header.size();
       at = header.find('\n', at + 1)) {
    if (header[at + 1] == ' ' || header[at + 1] == '\t') return true;
  }
  return false;
}

// Why a request's header makes its framing or target unsafe to act on (RFC 9112 sections 3.2,
// 6.1, 6.3; see server.h "Message framing"), with the status to answer; nullopt when it is fine.
struct FramingRefusal {
  unsigned status;
  std::string_view detail;
};
std::optional<FramingRefusal> framing_refusal(const http::request_header<>& h) {
  const auto hosts = h.count(http::field::host);
  if (hosts > 1) return FramingRefusal{400, "more than one Host header field"};
  if (hosts == 0 && h.version() >= 11) return FramingRefusal{400, "no Host header field"};
  const auto sv = [](beast::string_view v) { return std::string_view(v.data(), v.size()); };
  if (hosts == 1 && !valid_host(trim_ows(sv(h[http::field::host])))) {
    return FramingRefusal{400, "the Host header field is not a valid authority"};
  }
  const auto lengths = h.count(http::field::content_length);
  if (lengths > 1 ||
      (lengths == 1 && sv(h[http::field::content_length]).find(',') != std::string_view::npos)) {
    // RFC 9112 section 6.3 lets a recipient fold equal values into one; refusing is safer.
    return FramingRefusal{400, "more than one Content-Length"};
  }
  if (h.count(http::field::transfer_encoding) == 0) return std::nullopt;
  if (h.version() < 11) return FramingRefusal{400, "Transfer-Encoding in an HTTP/1.0 request"};
  if (h.count(http::field::content_length) != 0) {
    return FramingRefusal{400, "both Transfer-Encoding and Content-Length"};
  }
  std::vector<std::string_view> codings;
  const auto range = h.equal_range(http::field::transfer_encoding);
  for (auto it = range.first; it != range.second; ++it) {
    auto v = sv(it->value());
    while (true) {
      const auto comma = v.find(',');
      const auto coding = trim_ows(v.substr(0, comma));
      if (!coding.empty()) codings.push_back(coding);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  if (codings.empty() || !iequals(codings.back(), "chunked")) {
    return FramingRefusal{400, "the last transfer coding is not chunked"};
  }
  if (codings.size() > 1) return FramingRefusal{501, "only the chunked transfer coding is served"};
  return std::nullopt;
}

Response overloaded() {
  auto r = json_error(503, "overloaded", "the server is busy, retry shortly");
  r.headers.emplace_back("Retry-After", "1");
  return r;
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
  auto details = nlohmann::json::parse(details_json, nullptr, false);
  if (!details.is_object()) details = nlohmann::json::object();
  return ApiError{status, std::string(code), std::string(message), std::move(details)}.response();
}

RequestObserver chain_observers(std::vector<RequestObserver> observers) {
  return [observers = std::move(observers)](const RequestLog& log) {
    for (const auto& o : observers) {
      if (o) o(log);
    }
  };
}

namespace {

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    out.push_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

bool is_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Whether `pattern` matches `path`: the parameters, and per segment 1 for a literal, 0 for a
// parameter (the larger score is the more specific route).
bool match_pattern(std::string_view pattern, std::string_view path,
                   std::map<std::string, std::string>& params, std::vector<int>& score) {
  const auto want = segments(pattern);
  const auto have = segments(path);
  if (want.size() != have.size()) return false;
  params.clear();
  score.clear();
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (is_param(want[i])) {
      if (have[i].empty() || have[i].find('%') != std::string_view::npos) return false;
      params.emplace(std::string(want[i].substr(1, want[i].size() - 2)), std::string(have[i]));
      score.push_back(0);
    } else {
      if (want[i] != have[i]) return false;
      score.push_back(1);
    }
  }
  return true;
}

}  // namespace

void Router::add(std::string method, std::string path, Handler handler, Exec exec) {
  const auto segs = segments(path);
  const bool pattern = std::any_of(segs.begin(), segs.end(), is_param);
  (pattern ? patterns_ : routes_)[std::move(path)][std::move(method)] =
      Route{std::move(handler), exec};
}

Router::Match Router::found(const std::string& method, const std::string& route,
                            const Methods& methods) const {
  Match m;
  m.route = route;
  auto h = methods.find(method);
  // RFC 9110 section 9.1: HEAD works wherever GET does (the server drops the body).
  if (h == methods.end() && method == "HEAD") h = methods.find("GET");
  if (h != methods.end()) {
    m.handler = &h->second.handler;
    m.exec = h->second.exec;
    return m;
  }
  for (const auto& [allowed, unused] : methods) {
    m.allowed.push_back(allowed);
    if (allowed == "GET" && !methods.contains("HEAD")) m.allowed.emplace_back("HEAD");
  }
  return m;
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto* table : {&routes_, &patterns_}) {
    for (const auto& [path, methods] : *table) {
      for (const auto& [method, unused] : methods) out.emplace_back(method, path);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Router::Match Router::match(const std::string& method, const std::string& path) const {
  if (const auto it = routes_.find(path); it != routes_.end()) {
    return found(method, it->first, it->second);
  }
  const std::pair<const std::string, Methods>* best = nullptr;
  std::map<std::string, std::string> best_params, params;
  std::vector<int> best_score, score;
  for (const auto& entry : patterns_) {
    if (!match_pattern(entry.first, path, params, score)) continue;
    if (best == nullptr || score > best_score) {
      best = &entry;
      best_params = params;
      best_score = score;
    }
  }
  if (best == nullptr) {
    Match m;
    m.route = "unmatched";
    return m;
  }
  auto m = found(method, best->first, best->second);
  m.params = std::move(best_params);
  return m;
}

struct HttpServer::Impl {
  // Declaration order matters: the io_context's destructor destroys the frames of connections
  // still pending, and those unregister themselves, so everything they touch is declared first.
  ServerOptions opts;
  Router router;
  RequestObserver observer;
  std::optional<ssl::context> tls;
  std::atomic<bool> stopping{false};

  // Open connections, so stop() can close the idle ones instead of waiting for timeouts.
  enum class State {
    idle,      // waiting for the first byte of a request (or in the TLS handshake)
    reading,   // a request has started arriving
    handling,  // in a handler (possibly on the pool) or writing the response
  };
  struct Conn {
    beast::tcp_stream* stream;
    State state;
  };
  std::mutex mu;
  std::condition_variable drained;
  std::map<std::uint64_t, Conn> conns;
  std::uint64_t next_conn = 0;

  BlockingPool pool;
  BlockingPool read_pool;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<asio::basic_socket_acceptor<tcp, asio::strand<asio::io_context::executor_type>>>
      acceptor;
  std::vector<std::thread> threads;
  bool started = false;
  bool stopped = false;
  std::uint16_t port = 0;

  Impl(ServerOptions o, Router r, RequestObserver obs)
      : opts(std::move(o)),
        router(std::move(r)),
        observer(std::move(obs)),
        ioc(static_cast<int>(std::max(1u, opts.threads))) {}

  std::uint64_t add_conn(beast::tcp_stream* s) {
    std::lock_guard lock(mu);
    conns[++next_conn] = Conn{s, State::idle};
    return next_conn;
  }
  void set_state(std::uint64_t id, State state) {
    std::lock_guard lock(mu);
    conns[id].state = state;
  }
  void remove_conn(std::uint64_t id) {
    std::lock_guard lock(mu);
    conns.erase(id);
    drained.notify_all();
  }

  using StartFailure = HttpServer::StartFailure;
  ResultOf<void, StartFailure> load_tls() {
    const auto& cert = opts.tls_cert_file;
    const auto& key = opts.tls_key_file;
    if (cert.empty() && key.empty()) return boost::outcome_v2::success();
    if (cert.empty() || key.empty()) {
      return StartFailure{std::make_error_code(std::errc::invalid_argument),
                          "TLS needs both a certificate file and a key file"};
    }
    for (const auto& [what, path] : {std::pair{"certificate", cert}, std::pair{"key", key}}) {
      std::ifstream in(path);
      if (!in) {
        return StartFailure{ledger::Errc::key_missing, std::string("cannot read the TLS ") + what +
                                                           " file " + path + ": " +
                                                           std::strerror(errno)};
      }
    }
    ERR_clear_error();
    tls.emplace(ssl::context::tls_server);
    SSL_CTX* ctx = tls->native_handle();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
      return StartFailure{ledger::Errc::crypto_failure,
                          "cannot restrict TLS to version 1.3: " + openssl_error()};
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
      return StartFailure{ledger::Errc::key_invalid,
                          "the TLS certificate file " + cert +
                              " does not hold a usable PEM certificate: " + openssl_error()};
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return StartFailure{ledger::Errc::key_invalid,
                          "the TLS key file " + key + " does not hold a usable PEM private key " +
                              "matching the certificate: " + openssl_error()};
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return StartFailure{ledger::Errc::key_invalid, "the TLS private key in " + key +
                                                         " does not match the certificate in " +
                                                         cert + ": " + openssl_error()};
    }
    return boost::outcome_v2::success();
  }

  // Runs fn() on the blocking pool while the calling coroutine waits without holding its io
  // thread; resumes on the coroutine's own executor (the connection's strand). nullopt when the
  // pool refused the job (queue full or draining): fn never ran. fn must not throw.
  //
  // Everything in the co_await expression below is trivially destructible on purpose: GCC 12 can
  // destroy the temporaries of a co_await full-expression twice (seen as a double release of an
  // executor captured by the initiation lambda), so fn holds references only and the executor is
  // taken from the handler rather than captured.
  template <class T, class Fn>
  asio::awaitable<std::optional<T>> on_pool(Fn fn, BlockingPool* target = nullptr) {
    static_assert(std::is_trivially_destructible_v<Fn>);
    BlockingPool& p = target != nullptr ? *target : pool;
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::optional<T>)>(
        [&p](auto handler, Fn f) {
          // std::function needs a copyable job; the awaitable handler is move-only.
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          const bool queued = p.try_submit([h, f]() mutable {
            std::optional<T> out(f());
            const auto ex = asio::get_associated_executor(*h);
            asio::post(ex, [hh = std::move(*h), out = std::move(out)]() mutable {
              std::move(hh)(std::move(out));
            });
          });
          if (!queued) {
            const auto ex = asio::get_associated_executor(*h);
            asio::post(ex, [hh = std::move(*h)]() mutable { std::move(hh)(std::optional<T>()); });
          }
        },
        asio::use_awaitable, std::move(fn));
  }

  template <class Body>
  void fill_header(http::response<Body>& res, const Response& resp, const std::string& request_id,
                   bool keep_alive, unsigned version) {
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
    res.keep_alive(keep_alive);
  }

  // Writes a response with a body in memory; returns the body bytes written. The answer to a
  // HEAD request (`head_only`) has the header GET's would have, Content-Length included, and no
  // body; a streamed response's is the header alone.
  template <class Stream>
  asio::awaitable<std::size_t> write(Stream& stream, const Response& resp,
                                     const std::string& request_id, bool keep_alive,
                                     unsigned version, bool head_only,
                                     boost::system::error_code& ec) {
    beast::get_lowest_layer(stream).expires_after(opts.write_timeout);
    if (head_only) {
      http::response<http::empty_body> res;
      fill_header(res, resp, request_id, keep_alive, version);
      if (resp.next_chunk) {
        if (version >= 11) res.chunked(true);
      } else {
        res.content_length(resp.body.size());
      }
      http::response_serializer<http::empty_body> sr(res);
      co_await http::async_write_header(stream, sr, asio::redirect_error(asio::use_awaitable, ec));
      co_return 0;
    }
    http::response<http::string_body> res;
    fill_header(res, resp, request_id, keep_alive, version);
    res.body() = resp.body;
    res.prepare_payload();
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    co_return resp.body.size();
  }

  // Writes a streamed response: the header, then each chunk as next_chunk() produces it (on the
  // pool, one call at a time, never ahead of the socket), then the last chunk. Memory stays at
  // one chunk however long the body. When next_chunk() fails, `ec` is set and the last chunk is
  // never sent, so the client sees a truncated transfer. HTTP/1.0 clients get the body delimited
  // by the connection's close instead of chunks. Returns the body bytes written.
  template <class Stream>
  asio::awaitable<std::size_t> write_streamed(Stream& stream, const Response& resp,
                                              const std::string& request_id, bool keep_alive,
                                              unsigned version, boost::system::error_code& ec) {
    auto& lowest = beast::get_lowest_layer(stream);
    const bool chunked = version >= 11;
    http::response<http::empty_body> res;
    fill_header(res, resp, request_id, keep_alive && chunked, version);
    if (chunked) res.chunked(true);
    http::response_serializer<http::empty_body> sr(res);
    lowest.expires_after(opts.write_timeout);
    co_await http::async_write_header(stream, sr, asio::redirect_error(asio::use_awaitable, ec));
    std::size_t total = 0;
    auto waited = std::chrono::steady_clock::duration::zero();
    while (!ec) {
      auto next = co_await on_pool<Result<std::string>>([&resp]() -> Result<std::string> {
        try {
          return resp.next_chunk();
        } catch (...) {
          // Nothing can be answered any more: the transfer ends truncated.
          return std::make_error_code(std::errc::io_error);
        }
      });
      if (!next) {
        // The pool is full: the header is out, so a 503 is no longer possible. Wait for room,
        // as long as a write would be allowed to take, unless the pool is shutting down.
        if (pool.closing() || waited >= opts.write_timeout) {
          ec = asio::error::operation_aborted;
          break;
        }
        asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        waited += std::chrono::milliseconds(5);
        continue;
      }
      waited = {};
      if (!*next) {
        ec = asio::error::connection_aborted;
        break;
      }
      const std::string& chunk = next->value();
      lowest.expires_after(opts.write_timeout);
      if (chunk.empty()) {
        if (chunked) {
          const auto last = http::make_chunk_last();
          co_await asio::async_write(stream, last, asio::redirect_error(asio::use_awaitable, ec));
        }
        break;
      }
      if (chunked) {
        const auto framed = http::make_chunk(asio::buffer(chunk));
        co_await asio::async_write(stream, framed, asio::redirect_error(asio::use_awaitable, ec));
      } else {
        co_await asio::async_write(stream, asio::buffer(chunk),
                                   asio::redirect_error(asio::use_awaitable, ec));
      }
      if (!ec) total += chunk.size();
    }
    co_return total;
  }

  asio::awaitable<void> session(tcp::socket socket) {
    std::string peer;
    {
      boost::system::error_code pec;
      const auto ep = socket.remote_endpoint(pec);
      if (!pec) peer = ep.address().to_string();
    }
    if (tls) {
      TlsStream stream(std::move(socket), *tls);
      co_await session_on(stream, peer);
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await session_on(stream, peer);
    }
  }

  template <class Stream>
  asio::awaitable<void> session_on(Stream& stream, const std::string& peer) {
    constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
    auto& lowest = beast::get_lowest_layer(stream);
    const auto id = add_conn(&lowest);
    // The registry must never keep a pointer to a stream that is gone, whatever happens below.
    struct Unregister {
      Impl* self;
      std::uint64_t id;
      ~Unregister() { self->remove_conn(id); }
    } unregister{this, id};
    try {
      boost::system::error_code ec;
      if constexpr (kTls) {
        lowest.expires_after(opts.handshake_timeout);
        co_await stream.async_handshake(ssl::stream_base::server,
                                        asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
      }
      const bool clean = co_await serve(stream, id, peer);
      if constexpr (kTls) {
        if (clean) {
          // close_notify, so the client can tell our close from a truncation.
          lowest.expires_after(std::chrono::seconds(1));
          co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
        }
      }
    } catch (const std::exception&) {
      // Nothing sensible to tell a client whose connection broke mid-response: close it.
    }
    boost::system::error_code ignored;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // Reads and discards what the client is still sending (bounded in bytes and time), so that
  // closing after an early refusal does not reset the connection before the client reads it.
  template <class Stream>
  asio::awaitable<void> drain(Stream& stream) {
    auto& lowest = beast::get_lowest_layer(stream);
    boost::system::error_code ec;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest.expires_after(std::chrono::seconds(2));
    std::array<char, 16384> sink;
    for (std::size_t total = 0; total < (1u << 20) && !ec;) {
      total += co_await lowest.async_read_some(asio::buffer(sink),
                                               asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // Answers a request whose framing cannot be trusted and closes: nothing after it can be taken
  // for the start of a request. `header`, when parsed, gives the client's request id.
  template <class Stream>
  asio::awaitable<void> refuse_framing(Stream& stream, const std::string& peer, FramingRefusal bad,
                                       const http::request_header<>* header) {
    const auto refusal =
        json_error(bad.status, bad.status == 501 ? "not_implemented" : "invalid_request",
                   bad.detail, nlohmann::json{{"reason", "message_framing"}}.dump());
    std::string sent;
    if (header != nullptr) {
      if (const auto it = header->find("X-Request-Id"); it != header->end()) {
        sent = std::string(it->value());
      }
    }
    const std::string request_id = sane_request_id(sent) ? sent : new_request_id();
    boost::system::error_code wec;
    const auto bytes = co_await write(stream, refusal, request_id, false, 11, false, wec);
    log_rejection(refusal, "malformed_http", request_id, peer, bytes);
    if (!wec) co_await drain(stream);
  }

  void log_rejection(const Response& r, std::string_view reason, const std::string& request_id,
                     const std::string& peer, std::size_t bytes) {
    if (!observer) return;
    observer(RequestLog{"other", "unparsed", r.status, {}, request_id, peer, bytes, reason, {}});
  }

  // Serves requests until the connection should close. Returns true when it ends in an orderly
  // way (a TLS close_notify is worth sending), false after a transport error or timeout.
  template <class Stream>
  asio::awaitable<bool> serve(Stream& stream, std::uint64_t id, const std::string& peer) {
    auto& lowest = beast::get_lowest_layer(stream);
    beast::flat_buffer buffer;
    unsigned pipelined = 0;  // requests answered from bytes sent before the previous answer
    for (unsigned n = 0; n < opts.max_requests_per_connection; ++n) {
      boost::system::error_code ec;
      if (buffer.size() == 0) {
        if (stopping) co_return true;
        // Between requests: only the idle timeout applies, until the first byte arrives.
        set_state(id, State::idle);
        lowest.expires_after(opts.idle_timeout);
        const auto got = co_await stream.async_read_some(
            buffer.prepare(16384), asio::redirect_error(asio::use_awaitable, ec));
        buffer.commit(got);
        if (ec) co_return false;  // idle timeout, EOF, reset, or stop() closing idle connections
        pipelined = 1;
      } else {
        ++pipelined;
      }
      set_state(id, State::reading);
      http::request_parser<http::string_body> parser;
      parser.body_limit(opts.body_limit);
      parser.header_limit(opts.header_limit);
      // One deadline for the whole request, however slowly its bytes trickle in. The header
      // first, whole and raw: its framing decides where this request's body ends and the next
      // one begins, and a folded line (obs-fold) is judged before the parser joins it to the
      // line above, where a proxy in front might have read it as a field of its own.
      lowest.expires_after(opts.read_timeout);
      std::size_t header_end = 0;
      while ((header_end = end_of_header(buffer)) == 0 && buffer.size() <= opts.header_limit) {
        const auto got = co_await stream.async_read_some(
            buffer.prepare(16384), asio::redirect_error(asio::use_awaitable, ec));
        buffer.commit(got);
        if (ec) break;
      }
      if (!ec && header_end != 0 && has_obs_fold(buffer, header_end)) {
        set_state(id, State::handling);
        co_await refuse_framing(stream, peer, {400, "a folded header line (obs-fold)"}, nullptr);
        co_return false;
      }
      if (!ec) {
        co_await http::async_read_header(stream, buffer, parser,
                                         asio::redirect_error(asio::use_awaitable, ec));
      }
      if (!ec) {
        if (const auto bad = framing_refusal(parser.get())) {
          set_state(id, State::handling);
          co_await refuse_framing(stream, peer, *bad, &parser.get());
          co_return false;
        }
        const auto fields = std::distance(parser.get().begin(), parser.get().end());
        if (!parser.is_done()) {
          co_await http::async_read(stream, buffer, parser,
                                    asio::redirect_error(asio::use_awaitable, ec));
        }
        // A chunked body's trailer fields land among the header fields, after every check
        // above (a trailing Host or X-Forwarded-For would override the checked one).
        if (!ec && std::distance(parser.get().begin(), parser.get().end()) != fields) {
          set_state(id, State::handling);
          co_await refuse_framing(stream, peer, {400, "trailer fields are not accepted"},
                                  &parser.get());
          co_return false;
        }
      }
      set_state(id, State::handling);
      if (ec) {
        // Answer what the client got wrong; anything else (EOF, reset) just closes.
        std::optional<Response> refusal;
        std::string_view reason;
        if (ec == http::error::body_limit) {
          refusal = json_error(413, "payload_too_large", "request body exceeds the limit");
          reason = "payload_too_large";
        } else if (ec == http::error::header_limit) {
          refusal = json_error(431, "invalid_request", "request headers too large");
          reason = "headers_too_large";
        } else if (ec == beast::error::timeout) {
          // tcp_stream closed the socket when the deadline passed: nothing can be sent. Logged
          // as 408, the status a client that could still listen would have got.
          const auto r = json_error(408, "request_timeout", "request not received in time");
          log_rejection(r, "timeout", new_request_id(), peer, 0);
          co_return false;
        } else if (ec == http::error::bad_transfer_encoding ||
                   ec == http::error::bad_content_length) {
          // Beast's own framing checks (a second Transfer-Encoding after chunked, Content-Length
          // beside it, conflicting lengths): the same answer as framing_refusal()'s.
          refusal = json_error(400, "invalid_request", "ambiguous message framing",
                               nlohmann::json{{"reason", "message_framing"}}.dump());
          reason = "malformed_http";
        } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          refusal = json_error(400, "invalid_request", "malformed HTTP request");
          reason = "malformed_http";
        }
        if (refusal) {
          // The headers may have been parsed before the limit hit: keep the client's id.
          const auto it = parser.get().find("X-Request-Id");
          const std::string sent = it != parser.get().end() ? std::string(it->value()) : "";
          const std::string request_id = sane_request_id(sent) ? sent : new_request_id();
          boost::system::error_code wec;
          const auto bytes = co_await write(stream, *refusal, request_id, false, 11, false, wec);
          log_rejection(*refusal, reason, request_id, peer, bytes);
          if (!wec) co_await drain(stream);
        }
        co_return false;
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
        // A repeated field is one list (RFC 9110 §5.3), never "the last one wins": a second
        // DPoP proof or Authorization then fails their checks instead of hiding the first.
        auto [it, fresh] = req.headers.try_emplace(name, std::string(f.value()));
        if (!fresh) {
          if (!req.repeated(name)) req.repeated_headers.push_back(name);
          it->second += name == "cookie" ? "; " : ", ";
          it->second.append(f.value().data(), f.value().size());
        }
      }
      req.body = std::move(msg.body());
      req.peer = peer;
      req.scheme = tls ? "https" : "http";
      const auto* rid = req.header("x-request-id");
      req.request_id = rid != nullptr && sane_request_id(*rid) ? *rid : new_request_id();

      auto m = router.match(req.method, req.path);
      req.params = std::move(m.params);
      req.route = m.route;
      Response resp;
      std::string_view reject;
      std::string thrown;
      if (m.handler == nullptr) {
        if (m.allowed.empty()) {
          resp = json_error(404, "not_found", "no such endpoint");
        } else {
          std::string allow;
          for (const auto& a : m.allowed) allow += (allow.empty() ? "" : ", ") + a;
          resp = json_error(405, "method_not_allowed", "method not allowed for this endpoint");
          resp.headers.emplace_back("Allow", allow);
        }
      } else if (m.exec != Exec::io) {
        auto out = co_await on_pool<Response>(
            [&handler = *m.handler, &req, &thrown] { return call_handler(handler, req, thrown); },
            m.exec == Exec::read ? &read_pool : &pool);
        if (out) {
          resp = std::move(*out);
        } else {
          resp = overloaded();
          reject = "overloaded";
        }
      } else {
        resp = call_handler(*m.handler, req, thrown);
      }

      if (const auto* lang = req.header("accept-language")) {
        localise_error(resp, negotiate_language(*lang));
      }
      const bool pipeline_full =
          opts.max_pipelined != 0 && pipelined >= opts.max_pipelined && buffer.size() != 0;
      const bool keep_alive = msg.keep_alive() && !stopping && !pipeline_full &&
                              n + 1 < opts.max_requests_per_connection;
      const bool head = req.method == "HEAD";
      const auto bytes =
          resp.next_chunk && !head
              ? co_await write_streamed(stream, resp, req.request_id, keep_alive, msg.version(), ec)
              : co_await write(stream, resp, req.request_id, keep_alive, msg.version(), head, ec);
      // The request's time ends with its answer written: the work an answer starts (a 202's
      // mail) is not the request's, and counting it would show a known address in the log.
      const auto elapsed = std::chrono::steady_clock::now() - started_at;
      if (resp.after_write) resp.after_write();
      if (observer) {
        const auto label = method_label(req.method);
        observer(RequestLog{label, m.route, resp.status, elapsed, req.request_id, peer, bytes,
                            reject, thrown});
      }
      if (ec) co_return false;
      if (!keep_alive || (resp.next_chunk && !head && msg.version() < 11)) {
        // Unanswered pipelined requests may be waiting: do not reset the answers sent.
        if (buffer.size() != 0) co_await drain(stream);
        co_return true;
      }
    }
    co_return true;
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

  // Waits until no connection is left, or until `deadline`, meanwhile cancelling (on their own
  // strands, after checking they still exist there) connections in a state that `cancel` names.
  void wait_connections(std::chrono::steady_clock::time_point deadline, bool cancel_reading,
                        bool only_handling) {
    std::unique_lock lock(mu);
    for (;;) {
      bool waiting = false;
      for (auto& [id, conn] : conns) {
        if (conn.state == State::handling) waiting = true;
        if (!only_handling) waiting = true;
        const bool cancel =
            conn.state == State::idle || (cancel_reading && conn.state == State::reading);
        if (!cancel) continue;
        asio::post(conn.stream->get_executor(), [this, cid = id, cancel_reading] {
          std::lock_guard inner(mu);
          const auto it = conns.find(cid);
          if (it == conns.end()) return;
          const auto st = it->second.state;
          if (st == State::idle || (cancel_reading && st == State::reading)) {
            it->second.stream->cancel();
          }
        });
      }
      if (!waiting || std::chrono::steady_clock::now() >= deadline) return;
      drained.wait_for(lock, std::chrono::milliseconds(50));
    }
  }
};

HttpServer::HttpServer(ServerOptions options, Router router, RequestObserver observer)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(router), std::move(observer))) {}

HttpServer::~HttpServer() { stop(); }

ResultOf<void, HttpServer::StartFailure> HttpServer::start() {
  auto& s = *impl_;
  if (s.started) return StartFailure{ledger::Errc::invalid_argument, "already started"};
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(s.opts.address, ec);
  if (ec) {
    return StartFailure{std::make_error_code(std::errc::invalid_argument),
                        "not an IP address: " + s.opts.address};
  }
  SECHEX_TRYV(s.load_tls());
  // The acceptor lives on its own strand: the accept loop and stop()'s close never race.
  s.acceptor.emplace(asio::make_strand(s.ioc));
  const tcp::endpoint ep(addr, s.opts.port);
  s.acceptor->open(ep.protocol(), ec);
  if (!ec) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(ep, ec);
  if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return StartFailure{std::error_code(ec.value(), std::system_category()),
                        "cannot listen: " + ec.message()};
  }
  s.port = s.acceptor->local_endpoint().port();
  // Connections awaiting the pool have no pending io: keep run() from returning meanwhile.
  s.work.emplace(s.ioc.get_executor());
  s.pool.start(s.opts.pool_threads, s.opts.pool_queue);
  s.read_pool.start(s.opts.read_pool_threads != 0
                        ? s.opts.read_pool_threads
                        : std::max(1u, std::thread::hardware_concurrency()),
                    s.opts.pool_queue);
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
  // 1. Requests in flight finish within the grace period; idle connections close at once.
  s.wait_connections(std::chrono::steady_clock::now() + s.opts.stop_grace, false, false);
  // 2. Every job the pool accepted runs to completion (new ones are refused)...
  s.pool.drain();
  s.read_pool.drain();
  // 3. ...and its response is written before the io threads go, even when the job outlived the
  // grace period. Connections still reading a request are closed now.
  s.wait_connections(std::chrono::steady_clock::now() + s.opts.write_timeout, true, true);
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

}  // namespace sechex::api
