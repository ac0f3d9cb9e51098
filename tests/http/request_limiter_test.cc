// RequestLimiter (api/http/request_limiter.h): the per-client limit of the routes that answer 202
// whatever the address (API.md: forgot, resend and OTP request list 429).
#include "api/http/request_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace sechex::api {
namespace {

constexpr std::int64_t kSecond = 1'000'000;
constexpr std::int64_t kWindow = 15 * 60 * kSecond;
constexpr std::int64_t kT0 = 1'800'000'000 * kSecond;
constexpr TimePoint at(std::int64_t micros) { return time_from_micros(micros); }

TEST(RequestLimiter, TheSixthRequestWithinTheWindowIsRefusedUntilTheOldestLeaves) {
  RequestLimiter limiter({.limit = 5, .window = Micros{kWindow}});
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(limiter.check("ip-a", at(kT0 + i * 60 * kSecond)).allowed) << i;
  }
  const auto refused = limiter.check("ip-a", at(kT0 + 5 * 60 * kSecond));
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(micros_of(refused.retry_at), kT0 + kWindow) << "when the first request leaves";
  EXPECT_FALSE(limiter.check("ip-a", at(kT0 + kWindow - 1)).allowed) << "the edge is exclusive";
  EXPECT_TRUE(limiter.check("ip-a", at(kT0 + kWindow)).allowed);
  const auto again = limiter.check("ip-a", at(kT0 + kWindow + 1));
  EXPECT_FALSE(again.allowed) << "the slot freed is taken";
  EXPECT_EQ(micros_of(again.retry_at), kT0 + 60 * kSecond + kWindow) << "then the second leaves";
}

TEST(RequestLimiter, ClientsAreCountedApartAndRefusalsAreNotCounted) {
  RequestLimiter limiter({.limit = 2, .window = Micros{kWindow}});
  EXPECT_TRUE(limiter.check("ip-a", at(kT0)).allowed);
  EXPECT_TRUE(limiter.check("ip-a", at(kT0 + 1)).allowed);
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(limiter.check("ip-a", at(kT0 + 2 + i)).allowed);
  EXPECT_TRUE(limiter.check("ip-b", at(kT0 + 100)).allowed) << "another client is not limited";
  EXPECT_TRUE(limiter.check("ip-a", at(kT0 + kWindow)).allowed)
      << "refused requests did not push the window forward";
}

TEST(RequestLimiter, OnlyTheFirstRefusalOfABurstIsFlaggedForTheAudit) {
  RequestLimiter limiter({.limit = 1, .window = Micros{kWindow}});
  EXPECT_TRUE(limiter.check("ip-a", at(kT0)).allowed);
  EXPECT_TRUE(limiter.check("ip-a", at(kT0 + 1)).first_refusal);
  EXPECT_FALSE(limiter.check("ip-a", at(kT0 + 2)).first_refusal);
  EXPECT_FALSE(limiter.check("ip-a", at(kT0 + 3)).first_refusal);
  EXPECT_TRUE(limiter.check("ip-a", at(kT0 + kWindow)).allowed);
  EXPECT_TRUE(limiter.check("ip-a", at(kT0 + kWindow + 1)).first_refusal) << "a new burst";
}

TEST(RequestLimiter, TrackedClientsAreBoundedExpiredOnesGoFirst) {
  RequestLimiter limiter({.limit = 1, .window = Micros{kWindow}, .max_keys = 3});
  EXPECT_TRUE(limiter.check("old", at(kT0)).allowed);
  EXPECT_TRUE(limiter.check("b", at(kT0 + kWindow - 10)).allowed);
  EXPECT_TRUE(limiter.check("c", at(kT0 + kWindow - 10)).allowed);
  // Full: "old" has left its window and makes room; b and c are still limited.
  EXPECT_TRUE(limiter.check("d", at(kT0 + kWindow)).allowed);
  EXPECT_FALSE(limiter.check("b", at(kT0 + kWindow)).allowed);
  EXPECT_FALSE(limiter.check("c", at(kT0 + kWindow)).allowed);
  // Thousands of clients never grow it past the bound (nothing to observe but no crash and a
  // working limit for the newest).
  for (int i = 0; i < 5000; ++i) limiter.check("many-" + std::to_string(i), at(kT0 + kWindow + 1));
  EXPECT_FALSE(limiter.check("many-4999", at(kT0 + kWindow + 2)).allowed);
}

TEST(RequestLimiter, ConcurrentRequestsOfOneClientAllowExactlyTheLimit) {
  RequestLimiter limiter({.limit = 5, .window = Micros{kWindow}});
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (limiter.check("ip-a", at(kT0 + i)).allowed) allowed.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(allowed.load(), 5);
}

TEST(RequestLimiter, AFloodOfNewClientsKeepsTheBoundAndTheLimitOfTheNewest) {
  RequestLimiter limiter({.limit = 1, .window = Micros{kWindow}, .max_keys = 100});
  for (int i = 0; i < 10'000; ++i) limiter.check("flood-" + std::to_string(i), at(kT0 + i));
  EXPECT_FALSE(limiter.check("flood-9999", at(kT0 + 10'000)).allowed)
      << "the newest client is still limited after the evictions";
}

TEST(RequestLimiter, AZeroLimitIsTakenAsOne) {
  RequestLimiter limiter({.limit = 0, .window = Micros{kWindow}});
  EXPECT_TRUE(limiter.check("ip-a", at(kT0)).allowed);
  EXPECT_FALSE(limiter.check("ip-a", at(kT0 + 1)).allowed);
}

}  // namespace
}  // namespace sechex::api
