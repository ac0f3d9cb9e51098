// The client IP of a request (API.md "Conventions"): the socket peer; when the peer is inside a
// trusted proxy range (`--trusted-proxy CIDR`, repeatable), the right-most address of
// X-Forwarded-For that is not itself a trusted proxy. Left of that, anything can be forged by
// the client, so it is never used. Addresses come back in canonical text form (inet_ntop), the
// form that is hashed for per-IP limits, so "::ffff:10.0.0.1" and "10.0.0.1" count as one.
//
// Thread-safety: immutable after construction.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sechex::api {

class TrustedProxies {
 public:
  TrustedProxies() = default;
  // "10.0.0.0/8", "192.0.2.7" (a single host), "2001:db8::/32". nullopt for anything else.
  static std::optional<TrustedProxies> parse(const std::vector<std::string>& cidrs);

  bool contains(std::string_view ip) const;
  // The client address for a request from `peer` with this X-Forwarded-For header (may be
  // null). Falls back to the peer when the header is absent or malformed.
  std::string client_ip(std::string_view peer, const std::string* forwarded_for) const;

 private:
  struct Range {
    std::array<unsigned char, 16> net{};  // IPv4 as IPv4-mapped IPv6
    int bits = 0;
  };
  std::vector<Range> ranges_;
};

// Canonical text of an IPv4 or IPv6 address (IPv4-mapped IPv6 becomes IPv4), or nullopt.
std::optional<std::string> canonical_ip(std::string_view text);

// The one key every per-client limit counts by (login attempts per IP, the mail routes' request
// limits), for an address as client_ip() returns it: an IPv4 address as it is, an IPv6 address
// by its /64 prefix ("2001:db8:1:2::/64"), since one subscriber commonly holds a whole /64 and
// could otherwise rotate through 2^64 addresses past any per-address limit (004 FR-011).
std::string client_key(std::string_view ip);

}  // namespace sechex::api
