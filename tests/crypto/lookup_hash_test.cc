// LookupHasher: keyed lookup hashes are HMAC-SHA-256 under the lookup key of a length-prefixed,
// domain-separated message (lookup_hash.h). Checked against the plain one-shot HMAC
// (ledger::crypto::hmac_sha256, itself tested against RFC 4231) so that the keyed context kept
// for speed can never drift from what earlier builds stored in the log and projections.
#include "api/crypto/lookup_hash.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "ledger/crypto.h"

namespace sechex::api {
namespace {

ledger::Kek key(std::uint8_t fill) {
  return ledger::Kek::from_base64(ledger::crypto::base64_encode(ledger::Bytes(32, fill))).value();
}

// The message format of lookup_hash.cc, spelled out: kind, NUL, then three parts each with a
// 4-byte big-endian length.
std::string expected(std::uint8_t fill, std::string_view kind, std::string_view a,
                     std::string_view b = {}, std::string_view c = {}) {
  std::string data(kind);
  data.push_back('\0');
  for (const auto part : {a, b, c}) {
    const auto n = static_cast<std::uint32_t>(part.size());
    for (int i = 0; i < 4; ++i) data.push_back(static_cast<char>(n >> (24 - 8 * i)));
    data.append(part);
  }
  const ledger::Bytes k(32, fill);
  const auto h = ledger::crypto::hmac_sha256(
      k, ledger::ByteView(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
  EXPECT_TRUE(h);
  return std::string(h.value().begin(), h.value().end());
}

TEST(LookupHasher, EveryKindIsTheHmacOfItsDomainSeparatedMessage) {
  const LookupHasher lookup(key(7));
  EXPECT_EQ(lookup.email("ada@example.com"), expected(7, "email", "ada@example.com"));
  EXPECT_EQ(lookup.ip("203.0.113.9"), expected(7, "ip", "203.0.113.9"));
  EXPECT_EQ(lookup.ip(""), expected(7, "ip", ""));
  EXPECT_EQ(lookup.token("reset", "tok"), expected(7, "token", "reset", "tok"));
  EXPECT_EQ(lookup.otp("usr_1", "login", "12345678"),
            expected(7, "otp", "usr_1", "login", "12345678"));
  // Another key, another hash; the same text under two kinds, two hashes.
  EXPECT_NE(LookupHasher(key(8)).ip("203.0.113.9"), lookup.ip("203.0.113.9"));
  EXPECT_NE(lookup.email("x"), lookup.ip("x"));
  // Parts are length-prefixed: moving a byte between parts changes the hash.
  EXPECT_NE(lookup.token("ab", "c"), lookup.token("a", "bc"));
}

TEST(LookupHasher, ConcurrentHashesOfOneHasherAgreeWithTheOneShotHmac) {
  const LookupHasher lookup(key(3));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const auto ip = "198.51.100." + std::to_string((t * 500 + i) % 256);
        if (lookup.ip(ip) != expected(3, "ip", ip)) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace sechex::api
