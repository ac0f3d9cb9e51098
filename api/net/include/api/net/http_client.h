// The outgoing HTTP client (libcurl underneath): webhook deliveries (issue 15) and the OpenID
// providers' discovery, JWKS and token endpoints (issue 17). Hardened for URLs that admins type
// in and peers that misbehave:
//   - SSRF: the address libcurl is about to connect to (after DNS, so a name that resolves to an
//     internal address, or re-resolves to one later, is caught) must be public: loopback,
//     private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), link-local (169.254/16,
//     fe80::/10, cloud metadata included), unspecified, multicast, broadcast, reserved and the
//     IPv4-mapped or NAT64 forms of those are refused unless `allow_private_targets`. Proxies
//     from the environment are ignored (the check must see the real peer).
//   - http and https only; no redirects are followed (a 3xx is a failure, it is not chased to
//     another host); TLS peers and host names verified against the system store.
//   - at most `timeout` (15 s) for the whole exchange; the response body is read up to
//     `max_response_bytes` (64 KiB) and the transfer cut there (`truncated`: a caller that
//     parses the body must refuse it); Retry-After is read (seconds form; an HTTP-date is
//     ignored).
//   - `ca_file`: trust exactly these CAs (PEM) instead of the system store, for a provider with
//     a private CA (tests run one).
//
// Thread-safety: post() and get() are reentrant (one curl easy handle per call).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct sockaddr;

namespace sechex::api::net {

struct ClientOptions {
  std::chrono::milliseconds timeout{15'000};
  std::size_t max_response_bytes = 64 * 1024;
  bool allow_private_targets = false;  // ledgerd --webhook-allow-private-targets
  std::string ca_file;                 // "" = the system store
  std::string user_agent = "Sechex-Ledger-Webhooks/1";
};

struct HttpResult {
  long status = 0;    // 0: no HTTP answer (refused target, connect error, timeout, ...)
  std::string error;  // "" on an HTTP answer; else a short reason: "private_target", ...
  std::optional<std::int64_t> retry_after_seconds;
  std::string body;        // at most max_response_bytes
  bool truncated = false;  // the answer was longer than max_response_bytes
};

HttpResult post(const std::string& url,
                const std::vector<std::pair<std::string, std::string>>& headers,
                const std::string& body, const ClientOptions& options,
                const std::atomic<bool>* cancel = nullptr);

HttpResult get(const std::string& url,
               const std::vector<std::pair<std::string, std::string>>& headers,
               const ClientOptions& options, const std::atomic<bool>* cancel = nullptr);

// Every byte outside RFC 3986's unreserved set percent-encoded.
std::string percent_encode(std::string_view text);
// application/x-www-form-urlencoded `name=value&...`, each part percent_encode()d (so also
// usable for a query string).
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

// Whether `address` (AF_INET or AF_INET6) is one a webhook may not reach without
// allow_private_targets (see above). Exposed for its table test.
bool is_internal_address(const sockaddr* address);

// Whether `url` is one an endpoint may be registered with: http:// or https:// with a host,
// no user info, at most 2048 characters; https only unless `allow_http`.
bool acceptable_url(std::string_view url, bool allow_http);

}  // namespace sechex::api::net
