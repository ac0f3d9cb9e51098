// The HTTP reference for bench/run: the smallest server built like ledgerd (Boost.Beast 1.74,
// one C++20 coroutine per connection, one io_context on N threads, keep-alive) that answers
// every request with a fixed 200 JSON body, with no routing, auth, limits, timeouts, metrics or
// access log. What ledgerd adds on top of Beast is the ratio bench/run reports.
// Usage: raw_http_server [--threads N]; prints "serving on 127.0.0.1:PORT" on stderr, runs until
// killed.
// clang-format off
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it
// clang-format on
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

asio::awaitable<void> session(tcp::socket socket) {
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    http::request<http::string_body> req;
    co_await http::async_read(socket, buffer, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = R"({"status":"ok"})";
    res.prepare_payload();
    co_await http::async_write(socket, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

// A strand per connection, as in ledgerd.
asio::awaitable<void> listen(asio::io_context& io, tcp::acceptor& acceptor) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(
        asio::make_strand(io), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) continue;
    auto executor = socket.get_executor();
    asio::co_spawn(executor, session(std::move(socket)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string_view(argv[i]) == "--threads")
      threads = static_cast<unsigned>(std::atoi(argv[i + 1]));
  }
  asio::io_context io(static_cast<int>(threads));
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  acceptor.listen(asio::socket_base::max_listen_connections);
  std::cerr << "serving on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
  asio::co_spawn(asio::make_strand(io), listen(io, acceptor), asio::detached);
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
}
