// RetryPolicy (api/app/retry.h): the backoff of mail delivery (spec 003 FR-038: 1 + 3 retries).
#include "api/app/retry.h"

#include <gtest/gtest.h>

namespace sechex::api {
namespace {

constexpr std::int64_t kNow = 1'767'225'600'000'000;

TEST(RetryPolicy, EachTransientFailureDoublesTheWaitFromTheBase) {
  const RetryPolicy retry{std::chrono::seconds(2), 4};
  EXPECT_EQ(retry.next_attempt_at(1, kNow), kNow + 2'000'000);
  EXPECT_EQ(retry.next_attempt_at(2, kNow), kNow + 4'000'000);
  EXPECT_EQ(retry.next_attempt_at(3, kNow), kNow + 8'000'000);
}

TEST(RetryPolicy, TheFailureOfTheLastAttemptIsFinalFR038) {
  const RetryPolicy retry{std::chrono::seconds(2), 4};
  EXPECT_FALSE(retry.final(1));
  EXPECT_FALSE(retry.final(3));
  EXPECT_TRUE(retry.final(4));
  EXPECT_TRUE(retry.final(5));
}

TEST(RetryPolicy, TheDoublingStopsSoNoAttemptNumberOverflowsTheTime) {
  const RetryPolicy retry{std::chrono::seconds(2), 1'000'000};
  const auto capped = kNow + 2'000'000 * (std::int64_t{1} << 20);
  EXPECT_EQ(retry.next_attempt_at(21, kNow), capped);
  EXPECT_EQ(retry.next_attempt_at(1'000, kNow), capped);
  EXPECT_EQ(retry.next_attempt_at(UINT32_MAX, kNow), capped);
}

}  // namespace
}  // namespace sechex::api
