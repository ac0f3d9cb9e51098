#include "api/http/client_ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace sechex::api {
namespace {

// As 16 bytes (IPv4 mapped into IPv6), so one comparison covers both families.
std::optional<std::array<unsigned char, 16>> to_bytes(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  const std::string s(text);
  std::array<unsigned char, 16> out{};
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

bool is_v4_mapped(const std::array<unsigned char, 16>& a) {
  for (int i = 0; i < 10; ++i) {
    if (a[i] != 0) return false;
  }
  return a[10] == 0xff && a[11] == 0xff;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> canonical_ip(std::string_view text) {
  const auto bytes = to_bytes(text);
  if (!bytes) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4_mapped(*bytes)) {
    if (inet_ntop(AF_INET, bytes->data() + 12, buf, sizeof(buf)) == nullptr) return std::nullopt;
  } else if (inet_ntop(AF_INET6, bytes->data(), buf, sizeof(buf)) == nullptr) {
    return std::nullopt;
  }
  return std::string(buf);
}

std::optional<TrustedProxies> TrustedProxies::parse(const std::vector<std::string>& cidrs) {
  TrustedProxies t;
  for (const auto& c : cidrs) {
    const auto slash = c.find('/');
    const auto addr = to_bytes(std::string_view(c).substr(0, slash));
    if (!addr) return std::nullopt;
    const bool v4 = is_v4_mapped(*addr) && c.find(':') == std::string::npos;
    int bits = v4 ? 32 : 128;
    if (slash != std::string::npos) {
      const auto tail = std::string_view(c).substr(slash + 1);
      const auto [end, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), bits);
      if (ec != std::errc() || end != tail.data() + tail.size() || tail.empty() || bits < 0 ||
          bits > (v4 ? 32 : 128)) {
        return std::nullopt;
      }
    }
    t.ranges_.push_back({*addr, v4 ? bits + 96 : bits});
  }
  return t;
}

bool TrustedProxies::contains(std::string_view ip) const {
  const auto a = to_bytes(ip);
  if (!a) return false;
  for (const auto& r : ranges_) {
    bool match = true;
    for (int bit = 0; bit < r.bits && match; bit += 8) {
      const int take = std::min(8, r.bits - bit);
      const auto mask = static_cast<unsigned char>(0xff << (8 - take));
      match = ((*a)[bit / 8] & mask) == (r.net[bit / 8] & mask);
    }
    if (match) return true;
  }
  return false;
}

std::string TrustedProxies::client_ip(std::string_view peer,
                                      const std::string* forwarded_for) const {
  const auto peer_ip = canonical_ip(peer).value_or(std::string(peer));
  if (forwarded_for == nullptr || ranges_.empty() || !contains(peer_ip)) return peer_ip;
  // Right to left: each hop appended the address it received the request from.
  std::string_view rest(*forwarded_for);
  while (!rest.empty()) {
    const auto comma = rest.rfind(',');
    const auto hop = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    const auto ip = canonical_ip(hop);
    if (!ip) return peer_ip;  // malformed: trust nothing further left
    if (!contains(*ip)) return *ip;
  }
  return peer_ip;
}

std::string client_key(std::string_view ip) {
  std::array<unsigned char, 16> addr{};
  const std::string text(ip);
  if (inet_pton(AF_INET6, text.c_str(), addr.data()) != 1) return text;
  std::fill(addr.begin() + 8, addr.end(), 0);
  std::array<char, INET6_ADDRSTRLEN> out{};
  if (inet_ntop(AF_INET6, addr.data(), out.data(), out.size()) == nullptr) return text;
  return std::string(out.data()) + "/64";
}

}  // namespace sechex::api
