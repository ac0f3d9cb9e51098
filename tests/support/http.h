// A blocking HTTP/1.1 client for tests that drive a running ledgerd (Boost.Beast).
#pragma once

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sechex::testing {

struct HttpReply {
  unsigned status = 0;  // 0: no answer (connection refused or reset, or `timeout` passed)
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased; the last of a repeated one
  std::vector<std::string> set_cookies;        // every Set-Cookie value, in order
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// One request on a fresh connection to 127.0.0.1:`port`, with extra request headers (a name
// listed twice is sent twice); the reply's headers are kept (names lower-cased).
inline HttpReply http_call_with(std::uint16_t port, boost::beast::http::verb verb,
                                const std::string& target, const Headers& headers,
                                const std::string& token = "", const std::string& body = "",
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// One request on a fresh connection to 127.0.0.1:`port`.
inline HttpReply http_call(std::uint16_t port, boost::beast::http::verb verb,
                           const std::string& target, const std::string& token = "",
                           const std::string& body = "",
                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  return http_call_with(port, verb, target, {}, token, body, timeout);
}

inline HttpReply http_call_with(std::uint16_t port, boost::beast::http::verb verb,
                                const std::string& target, const Headers& headers,
                                const std::string& token, const std::string& body,
                                std::chrono::milliseconds timeout) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  HttpReply out;
  try {
    asio::io_context ioc;
    beast::tcp_stream s(ioc);
    s.expires_after(timeout);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    // A name given twice in `headers` is sent twice (repeated-field tests); a name given once
    // replaces the default (Host, Authorization, Content-Type).
    std::vector<std::string> given;
    for (const auto& [name, value] : headers) {
      if (std::find(given.begin(), given.end(), name) != given.end()) {
        req.insert(name, value);
      } else {
        req.set(name, value);
        given.push_back(name);
      }
    }
    req.body() = body;
    req.prepare_payload();
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    out.status = res.result_int();
    out.body = res.body();
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(field.value());
      if (name == "set-cookie") out.set_cookies.emplace_back(field.value());
    }
  } catch (const std::exception&) {
    out.status = 0;
  }
  return out;
}

}  // namespace sechex::testing
