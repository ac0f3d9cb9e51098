// A small, hardened HTTP/1.1 server on Boost.Beast (C++20 coroutines, one coroutine per
// connection), modelled on Beast's advanced_server example: body and header limits, read and
// write timeouts, a cap on requests per connection, graceful stop.
//
// Lifecycle: construct with options and a Router, start() binds and spawns the io threads,
// stop() stops accepting, lets requests in flight finish (idle keep-alive connections are
// closed at once), and joins the threads. The destructor calls stop().
//
// Thread-safety: handlers run on the io threads, possibly concurrently; they must be
// thread-safe and must not block (no fsync, no Argon2, no disk-bound reads: those go to
// bounded pools). The Router must not be changed after start(). start() and stop() are called
// from one controlling thread (not concurrently with each other).
//
// Every response carries X-Request-Id: the request's own when it is a sane token
// ([A-Za-z0-9._-], at most 128 characters), otherwise a fresh random one.
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
  std::string body;
  std::string request_id;
  std::string peer;  // socket peer address

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
  pool,  // on the bounded blocking pool (fsync-bound appends, disk reads); when its queue is
         // full the server answers 503 `overloaded` with Retry-After without calling the handler
};

class Router {
 public:
  // `route` is the label used in metrics; exact path match.
  void add(std::string method, std::string path, Handler handler, Exec exec = Exec::io);
  struct Match {
    const Handler* handler = nullptr;
    Exec exec = Exec::io;
    std::string route;                 // the matched path, or "unmatched"
    std::vector<std::string> allowed;  // methods for the path, when the method did not match
  };
  Match match(const std::string& method, const std::string& path) const;

 private:
  struct Route {
    Handler handler;
    Exec exec = Exec::io;
  };
  std::map<std::string, std::map<std::string, Route>> routes_;  // path -> method -> route
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
};
// Observes every finished request (metrics, access logs). Called on io threads; must not block.
using RequestObserver = std::function<void(const RequestLog&)>;
// Calls each non-empty observer in turn.
RequestObserver chain_observers(std::vector<RequestObserver> observers);

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 = an ephemeral port (tests)
  unsigned threads = 2;
  std::size_t body_limit = 64 * 1024;
  std::uint32_t header_limit = 8 * 1024;
  std::chrono::seconds read_timeout{30};
  std::chrono::seconds write_timeout{30};
  unsigned max_requests_per_connection = 1000;
  std::chrono::seconds stop_grace{10};
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, Router router, RequestObserver observer = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving. Errors: the bind/listen error (system category), or
  // std::errc::invalid_argument for an unparsable address.
  Result<void> start();
  std::uint16_t port() const;
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sechex::api
