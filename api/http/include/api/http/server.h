// A small, hardened HTTP/1.1 server on Boost.Beast (C++20 coroutines, one coroutine per
// connection), modelled on Beast's advanced_server example: body and header limits, an idle
// timeout between requests and a read deadline for each request, a write timeout, a pipelining
// limit, a cap on requests per connection, TLS 1.3, a bounded blocking pool and graceful stop.
//
// Lifecycle: construct with options and a Router, start() binds, loads the TLS credentials (when
// configured) and spawns the io and pool threads. stop() stops accepting, closes idle keep-alive
// connections at once, lets requests in flight finish (within stop_grace), then drains the
// blocking pool: every job already accepted runs to completion and its response is written before
// the io threads are joined, so an acknowledged command is never lost to a shutdown. The
// destructor calls stop().
//
// Thread-safety: Exec::io handlers run on the io threads, possibly concurrently; they must be
// thread-safe and must not block. Exec::pool handlers (and every next_chunk() call) run on the
// blocking pool (pool_threads threads, at most pool_queue jobs waiting); the connection's
// coroutine awaits them without holding an io thread. The Router must not be changed after
// start(). start() and stop() are called from one controlling thread (not concurrently).
//
// Timeouts: a keep-alive connection waiting for its next request is closed after idle_timeout.
// Once the first byte of a request has arrived, the whole request (headers and body) must arrive
// within read_timeout, however slowly the client trickles it (slowloris): otherwise the server
// answers 408 (best effort) and closes. Each response write must finish within write_timeout.
//
// Pipelining: a client may send requests before reading earlier answers. The server handles them
// strictly in order, one at a time, and never reads ahead while a request is being handled
// (Beast reads at most 64 KiB at a time into the connection's buffer). At most max_pipelined
// consecutive requests are answered from bytes the client sent before reading the previous answer;
// the last of them carries `Connection: close`, and the unanswered rest is discarded (a client
// must be ready to retry them on a new connection, RFC 9112 section 9.3.2).
//
// Every response carries X-Request-Id: the request's own when it is a sane token
// ([A-Za-z0-9._-], at most 128 characters), otherwise a fresh random one.
//
// Message framing (RFC 9112 section 6): a request's body length must be unambiguous before its
// body is read, or a proxy in front of us and this server could split the byte stream into
// different requests (request smuggling). So, once the header has arrived and before any body
// byte is read, the server answers 400 and closes the connection when the request carries
// Transfer-Encoding in HTTP/1.0, Transfer-Encoding together with Content-Length, or codings
// whose last one is not `chunked`; and 501 (then closes) for codings it does not implement before
// a final `chunked` (`gzip, chunked`). The only Transfer-Encoding accepted is `chunked` alone. A
// request with two Host fields, an HTTP/1.1 request without one, or a Host that is not a valid
// authority answers 400 and closes (RFC 9112 section 3.2).
//
// HEAD (RFC 9110 section 9.3.2) is answered wherever GET is: the GET handler runs and the
// response goes out with its header fields (Content-Length the size of the body GET would send)
// and no body; a streamed body is not produced at all.
//
// A handler that throws answers 500 `internal_error`; RequestLog::handler_exception names the
// exception's class for the logs (never its message, which may quote input).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ledger/result.h"

namespace sechex::api {

struct Request {
  std::string method;                          // "GET", ...
  std::string path;                            // without the query string
  std::string query;                           // after '?', undecoded
  std::map<std::string, std::string> headers;  // names lower-cased
  // Names (lower-cased) of fields the request repeated: `headers` holds them joined with ", "
  // (RFC 9110 §5.3), so a route whose field takes one value refuses them (repeated()).
  std::vector<std::string> repeated_headers;
  std::string body;
  std::string request_id;
  std::string peer;             // socket peer address
  std::string scheme = "http";  // of this listener: "https" when it serves TLS
  // Values of the matched route's `{name}` segments, raw (undecoded: ids are opaque).
  std::map<std::string, std::string> params;
  std::string route;  // the matched route's path or pattern (route_access.h reads its rule)

  bool repeated(std::string_view lower_name) const {
    for (const auto& r : repeated_headers) {
      if (r == lower_name) return true;
    }
    return false;
  }
  const std::string* header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    return it == headers.end() ? nullptr : &it->second;
  }
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A streamed body: when set, `body` is ignored, the response goes out with chunked transfer
  // encoding, and the server calls next_chunk() (on the blocking pool, one call at a time) until
  // it returns an empty string. An error ends the connection without the final chunk, so the
  // client sees a truncated transfer rather than a short body that looks complete.
  std::function<Result<std::string>()> next_chunk;
  // Called once the response has been written (or its write failed), on the connection's io
  // thread: it must not block. For work that must not share the answer's time (a 202 that
  // answers before doing anything, identity_support.h accept_then).
  std::function<void()> after_write;
};

// {"data": <data>, "error": null}
Response json_ok(const std::string& data_json, unsigned status = 200);
// {"data": null, "error": {"code": ..., "message": ..., "details": <details_json>}}
Response json_error(unsigned status, std::string_view code, std::string_view message,
                    const std::string& details_json = "{}");

using Handler = std::function<Response(const Request&)>;

// Where a route's handler runs.
enum class Exec {
  io,    // on the connection's io thread: cheap, non-blocking work only
  pool,  // on the bounded blocking pool (fsync-bound appends); when its queue is full the
         // server answers 503 `overloaded` with Retry-After without calling the handler
  read,  // on the bounded read pool (disk reads that never wait for an fsync), sized to the
         // cores: more threads than cores only add context switches to CPU-bound reads
};

// Routes are exact paths or patterns with parameter segments: `/v1/admin/users/{id}/unlock`.
// A `{name}` segment matches one non-empty path segment (no '/') holding no '%' (escapes are
// refused rather than guessed at: the path answers 404). An exact path wins over any pattern;
// among patterns, the one with a literal segment where another has a parameter wins, leftmost
// difference first (`/a/b/{x}` beats `/a/{y}/c` for `/a/b/c`).
class Router {
 public:
  // `path` is also the label used in metrics (the pattern, never the request's path).
  void add(std::string method, std::string path, Handler handler, Exec exec = Exec::io);
  struct Match {
    const Handler* handler = nullptr;
    Exec exec = Exec::io;
    std::string route;                 // the matched path or pattern, or "unmatched"
    std::vector<std::string> allowed;  // methods for the path, when the method did not match
    std::map<std::string, std::string> params;  // `{name}` -> the raw segment
  };
  Match match(const std::string& method, const std::string& path) const;
  // Every (method, path or pattern) registered, sorted.
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  struct Route {
    Handler handler;
    Exec exec = Exec::io;
  };
  using Methods = std::map<std::string, Route>;
  Match found(const std::string& method, const std::string& route, const Methods& methods) const;
  std::map<std::string, Methods> routes_;    // exact path -> method -> route
  std::map<std::string, Methods> patterns_;  // pattern with `{name}` segments -> method -> route
};

// What an observer learns about each finished request. `method` is bounded (known verbs or
// "other") and `route` is the matched pattern (or "unmatched"/"unparsed"), so both are safe as
// metric labels; the raw path is deliberately absent.
struct RequestLog {
  std::string_view method;
  std::string_view route;
  unsigned status = 0;
  std::chrono::steady_clock::duration elapsed{};
  std::string_view request_id;
  std::string_view peer;
  std::size_t response_bytes = 0;
  // Why the server refused the request without a handler answering it: "" for a request that
  // reached its handler (whatever the status), otherwise one of "payload_too_large",
  // "headers_too_large", "malformed_http", "overloaded" (blocking pool queue full), "timeout"
  // (the request did not arrive within read_timeout: logged as status 408 with no bytes, since
  // the connection is closed without an answer).
  std::string_view reject_reason;
  // The class of the exception a handler threw (it was answered 500), "" when none did.
  std::string_view handler_exception;
};
// Observes every finished request (metrics, access logs). Called on io threads; must not block.
using RequestObserver = std::function<void(const RequestLog&)>;
// Calls each non-empty observer in turn.
RequestObserver chain_observers(std::vector<RequestObserver> observers);

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 = an ephemeral port (tests)
  unsigned threads = 2;       // io threads
  std::size_t body_limit = 64 * 1024;
  std::uint32_t header_limit = 8 * 1024;
  // Timeouts are milliseconds so that tests can use short ones; assigning std::chrono::seconds
  // works unchanged.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(30)};   // whole request, 1st byte on
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(15)};   // between requests
  std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};  // each response write
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};  // TLS handshake
  unsigned max_requests_per_connection = 1000;
  unsigned max_pipelined = 16;  // see "Pipelining" above; 0 = no limit
  std::chrono::seconds stop_grace{10};
  // The blocking pool for Exec::pool handlers and streamed bodies. The work is fsync-bound, so
  // more threads than cores let group commit batch appends.
  unsigned pool_threads = 8;
  std::size_t pool_queue = 1024;   // jobs waiting for a free pool thread; more answer 503
  unsigned read_pool_threads = 0;  // Exec::read; 0 = the number of cores (queue: pool_queue)
  // TLS 1.3 (and nothing older) when both are set: PEM certificate chain and PEM private key.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, Router router, RequestObserver observer = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Why start() failed: the code, and in words what to fix.
  struct StartFailure {
    std::error_code code;
    std::string message;
  };
  // Binds and starts serving. Codes: the bind/listen error (system category),
  // std::errc::invalid_argument for an unparsable address or only one of the TLS files,
  // ledger::Errc::key_missing for an unreadable certificate or key file, ledger::Errc::key_invalid
  // for one that does not parse or a key that does not match the certificate.
  ResultOf<void, StartFailure> start();
  std::uint16_t port() const;
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sechex::api
