// The outgoing HTTP client of webhook deliveries (issue 15), libcurl underneath, hardened for
// URLs that admins type in and receivers that misbehave:
//   - SSRF: the address libcurl is about to connect to (after DNS, so a name that resolves to an
//     internal address, or re-resolves to one later, is caught) must be public: loopback,
//     private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), link-local (169.254/16,
//     fe80::/10, cloud metadata included), unspecified, multicast, broadcast, reserved and the
//     IPv4-mapped or NAT64 forms of those are refused unless `allow_private_targets`. Proxies
//     from the environment are ignored (the check must see the real peer).
//   - http and https only; no redirects are followed (a 3xx is a failure, it is not chased to
//     another host); TLS peers and host names verified against the system store.
//   - at most `timeout` (15 s) for the whole exchange; the response body is read up to
//     `max_response_bytes` (64 KiB) and the transfer cut there; Retry-After is read (seconds
//     form; an HTTP-date is ignored).
//
// Thread-safety: post() is reentrant (one curl easy handle per call).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct sockaddr;

namespace sechex::api::webhooks {

struct ClientOptions {
  std::chrono::milliseconds timeout{15'000};
  std::size_t max_response_bytes = 64 * 1024;
  bool allow_private_targets = false;  // ledgerd --webhook-allow-private-targets
};

struct HttpResult {
  long status = 0;    // 0: no HTTP answer (refused target, connect error, timeout, ...)
  std::string error;  // "" on an HTTP answer; else a short reason: "private_target", ...
  std::optional<std::int64_t> retry_after_seconds;
  std::string body;  // at most max_response_bytes
};

HttpResult post(const std::string& url,
                const std::vector<std::pair<std::string, std::string>>& headers,
                const std::string& body, const ClientOptions& options,
                const std::atomic<bool>* cancel = nullptr);

// Whether `address` (AF_INET or AF_INET6) is one a webhook may not reach without
// allow_private_targets (see above). Exposed for its table test.
bool is_internal_address(const sockaddr* address);

// Whether `url` is one an endpoint may be registered with: http:// or https:// with a host,
// no user info, at most 2048 characters; https only unless `allow_http`.
bool acceptable_url(std::string_view url, bool allow_http);

}  // namespace sechex::api::webhooks
