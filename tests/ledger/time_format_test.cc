#include "ledger/time_format.h"

#include <gtest/gtest.h>

namespace sechex {
namespace {

TEST(Rfc3339, FormatsUtcWithOptionalMicroseconds) {
  EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(1'767'225'600'000'000), "2026-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(1'767'225'600'000'001), "2026-01-01T00:00:00.000001Z");
  EXPECT_EQ(format_rfc3339(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(Rfc3339, ParsesZuluOffsetsAndFractions) {
  EXPECT_EQ(parse_rfc3339("2026-01-01T00:00:00Z"), 1'767'225'600'000'000);
  EXPECT_EQ(parse_rfc3339("2026-01-01T01:00:00+01:00"), 1'767'225'600'000'000);
  EXPECT_EQ(parse_rfc3339("2025-12-31T23:00:00-01:00"), 1'767'225'600'000'000);
  EXPECT_EQ(parse_rfc3339("2026-01-01T00:00:00.5Z"), 1'767'225'600'500'000);
  EXPECT_EQ(parse_rfc3339("2026-01-01t00:00:00z"), 1'767'225'600'000'000);
  const auto t = 1'700'000'000'123'456;
  EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t);
}

TEST(Rfc3339, RejectsMalformedAndImpossibleTimes) {
  for (const char* bad : {"", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z",
                          "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00.Z",
                          "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00Zjunk", "yesterday"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

}  // namespace
}  // namespace sechex
