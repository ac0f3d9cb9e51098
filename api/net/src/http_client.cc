#include "api/net/http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <mutex>

namespace sechex::api::net {

namespace {

bool internal_v4(std::uint32_t a) {  // host byte order
  const auto in = [a](std::uint32_t net, int bits) {
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  return in(0x00000000, 8) ||   // "this network"
         in(0x0A000000, 8) ||   // 10/8
         in(0x64400000, 10) ||  // 100.64/10 carrier-grade NAT
         in(0x7F000000, 8) ||   // loopback
         in(0xA9FE0000, 16) ||  // link-local, cloud metadata (169.254.169.254)
         in(0xAC100000, 12) ||  // 172.16/12
         in(0xC0000000, 24) ||  // 192.0.0/24 IETF protocol assignments
         in(0xC0000200, 24) ||  // TEST-NET-1
         in(0xC0A80000, 16) ||  // 192.168/16
         in(0xC6120000, 15) ||  // 198.18/15 benchmarking
         in(0xC6336400, 24) ||  // TEST-NET-2
         in(0xCB007100, 24) ||  // TEST-NET-3
         in(0xE0000000, 4) ||   // multicast
         in(0xF0000000, 4);     // reserved, broadcast
}

std::uint32_t v4_at(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

bool internal_v6(const std::uint8_t* b) {
  static const std::uint8_t zero[16] = {};
  if (std::memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return true;  // :: and ::1
  static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, mapped, 12) == 0) return internal_v4(v4_at(b + 12));
  static const std::uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, nat64, 12) == 0) return internal_v4(v4_at(b + 12));
  if (b[0] == 0x20 && b[1] == 0x02) return internal_v4(v4_at(b + 2));  // 6to4 2002::/16
  if ((b[0] & 0xfe) == 0xfc) return true;                              // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;              // fe80::/10 link-local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;              // fec0::/10 site-local
  if (b[0] == 0xff) return true;                                       // multicast
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return true;  // docs
  static const std::uint8_t discard[8] = {0x01, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, discard, 8) == 0) return true;  // 100::/64
  // The IPv4-compatible form ::a.b.c.d (deprecated) carries an IPv4 address too.
  if (std::memcmp(b, zero, 12) == 0) return internal_v4(v4_at(b + 12));
  return false;
}

struct Exchange {
  const ClientOptions* options = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  bool refused_target = false;
  bool truncated = false;
  HttpResult result;
};

curl_socket_t open_socket(void* clientp, curlsocktype purpose, curl_sockaddr* address) {
  auto* x = static_cast<Exchange*>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN ||
      (!x->options->allow_private_targets && is_internal_address(&address->addr))) {
    x->refused_target = true;
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype, address->protocol);
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* userp) {
  auto* x = static_cast<Exchange*>(userp);
  const auto len = size * n;
  const auto room = x->options->max_response_bytes - x->result.body.size();
  if (len > room) {
    x->result.body.append(data, room);
    x->truncated = true;
    return 0;  // cut the transfer: nobody needs more of a receiver's answer
  }
  x->result.body.append(data, len);
  return len;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* userp) {
  auto* x = static_cast<Exchange*>(userp);
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size() && strncasecmp(line.data(), kName.data(), kName.size()) == 0) {
    auto v = line.substr(kName.size());
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) {
      v.remove_suffix(1);
    }
    std::int64_t seconds = 0;
    bool digits = !v.empty() && v.size() <= 9;
    for (const char c : v) {
      if (c < '0' || c > '9') {
        digits = false;
        break;
      }
      seconds = seconds * 10 + (c - '0');
    }
    if (digits) x->result.retry_after_seconds = seconds;
  }
  return size * n;
}

int on_progress(void* clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* x = static_cast<Exchange*>(clientp);
  return x->cancel != nullptr && x->cancel->load() ? 1 : 0;
}

}  // namespace

bool is_internal_address(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    return internal_v4(ntohl(v4->sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    return internal_v6(v6->sin6_addr.s6_addr);
  }
  return true;  // anything else (unix sockets) is not a webhook target
}

bool acceptable_url(std::string_view url, bool allow_http) {
  if (url.size() > 2048) return false;
  std::string_view rest;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else if (allow_http && url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return false;
  }
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  for (const char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return false;
    }
  }
  return true;
}

namespace {

HttpResult perform(const std::string& url,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   const std::string* body, const ClientOptions& options,
                   const std::atomic<bool>* cancel) {
  // libcurl's global set-up is not thread-safe: once, before any handle (the mail module does
  // the same; a second curl_global_init is counted, harmless).
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Exchange x;
  x.options = &options;
  x.cancel = cancel;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    x.result.error = "client_unavailable";
    return x.result;
  }
  curl_slist* list = nullptr;
  for (const auto& [name, value] : headers) {
    list = curl_slist_append(list, (name + ": " + value).c_str());
  }
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> owned(list, curl_slist_free_all);
  auto* h = curl.get();
  const auto timeout = static_cast<long>(options.timeout.count());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
  if (body != nullptr) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &x);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  const auto rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && x.truncated && status > 0)) {
    x.result.status = status;
    x.result.truncated = x.truncated;
    return x.result;
  }
  x.result.status = 0;
  if (x.refused_target) {
    x.result.error = "private_target";
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    x.result.error = "timeout";
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    x.result.error = "cancelled";
  } else {
    x.result.error = std::string("curl: ") + curl_easy_strerror(rc);
  }
  return x.result;
}

}  // namespace

HttpResult post(const std::string& url,
                const std::vector<std::pair<std::string, std::string>>& headers,
                const std::string& body, const ClientOptions& options,
                const std::atomic<bool>* cancel) {
  return perform(url, headers, &body, options, cancel);
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alnum || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out.push_back('&');
    out += percent_encode(name);
    out.push_back('=');
    out += percent_encode(value);
  }
  return out;
}

HttpResult get(const std::string& url,
               const std::vector<std::pair<std::string, std::string>>& headers,
               const ClientOptions& options, const std::atomic<bool>* cancel) {
  return perform(url, headers, nullptr, options, cancel);
}

}  // namespace sechex::api::net
