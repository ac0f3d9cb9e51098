// API.md "Client IP": the socket peer, or behind trusted proxies the right-most untrusted
// X-Forwarded-For address; and the keyed lookup hashes that stand in for it and for emails,
// codes and tokens in the log.
#include "api/http/client_ip.h"

#include <gtest/gtest.h>

#include "api/crypto/lookup_hash.h"
#include "ledger/crypto.h"

namespace sechex::api {
namespace {

TEST(ClientIp, WithoutTrustedProxiesTheForwardedHeaderIsIgnored) {
  const TrustedProxies none;
  const std::string xff = "203.0.113.9";
  EXPECT_EQ(none.client_ip("127.0.0.1", &xff), "127.0.0.1");
}

TEST(ClientIp, BehindATrustedProxyTheRightMostUntrustedAddressCounts) {
  const auto t = TrustedProxies::parse({"127.0.0.1", "10.0.0.0/8"}).value();
  const std::string chain = "198.51.100.1, 203.0.113.9, 10.1.2.3";
  // 198.51.100.1 may be forged by the client; 203.0.113.9 is what the first trusted hop saw.
  EXPECT_EQ(t.client_ip("127.0.0.1", &chain), "203.0.113.9");
  const std::string all_trusted = "10.0.0.1,10.0.0.2";
  EXPECT_EQ(t.client_ip("127.0.0.1", &all_trusted), "127.0.0.1");
  const std::string garbage = "203.0.113.9, not-an-ip";
  EXPECT_EQ(t.client_ip("127.0.0.1", &garbage), "127.0.0.1") << "malformed: trust nothing";
  EXPECT_EQ(t.client_ip("192.0.2.50", &chain), "192.0.2.50") << "untrusted peer";
  EXPECT_EQ(t.client_ip("127.0.0.1", nullptr), "127.0.0.1");
}

TEST(ClientIp, AddressesAreCanonicalSoOneClientCountsOnce) {
  EXPECT_EQ(canonical_ip("::ffff:10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(canonical_ip("2001:DB8:0:0::1"), "2001:db8::1");
  EXPECT_FALSE(canonical_ip("10.0.0.256"));
  EXPECT_FALSE(canonical_ip(""));
  EXPECT_FALSE(canonical_ip(std::string(100, '1')));
  const auto v6 = TrustedProxies::parse({"2001:db8::/32"}).value();
  EXPECT_TRUE(v6.contains("2001:db8:ffff::1"));
  EXPECT_FALSE(v6.contains("2001:db9::1"));
  EXPECT_FALSE(v6.contains("10.0.0.1"));
}

TEST(ClientIp, MalformedProxyRangesAreRefused) {
  for (const auto* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "nonsense", "::/129", ""}) {
    EXPECT_FALSE(TrustedProxies::parse({bad})) << bad;
  }
}

TEST(LookupHash, KindsUsersAndKeysAreSeparated) {
  const auto k1 = ledger::Kek::from_base64(ledger::crypto::base64_encode(ledger::Bytes(32, 1)));
  const auto k2 = ledger::Kek::from_base64(ledger::crypto::base64_encode(ledger::Bytes(32, 2)));
  const LookupHasher a(k1.value()), b(k2.value());
  EXPECT_EQ(a.email("ann@example.com"), a.email("ann@example.com"));
  EXPECT_EQ(a.email("ann@example.com").size(), 32u);
  EXPECT_NE(a.email("ann@example.com"), b.email("ann@example.com")) << "keyed";
  EXPECT_NE(a.email("10.0.0.1"), a.ip("10.0.0.1")) << "domain-separated";
  EXPECT_NE(a.otp("u1", "login", "12345678"), a.otp("u2", "login", "12345678"));
  EXPECT_NE(a.otp("u1", "login", "12345678"), a.otp("u1", "reauth", "12345678"));
  EXPECT_NE(a.token("refresh", "ab"), a.token("refreshab", ""));
}

// One key for every per-client limit (login attempts, the mail routes): IPv6 by its /64.
TEST(ClientKey, IpV6ClientsAreKeyedByTheirSlash64) {
  EXPECT_EQ(client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  EXPECT_EQ(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:2:ffff::9"));
  EXPECT_NE(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"));
  EXPECT_EQ(client_key("192.0.2.7"), "192.0.2.7") << "IPv4 as it is";
  EXPECT_EQ(client_key("not an address"), "not an address");
}

}  // namespace
}  // namespace sechex::api
