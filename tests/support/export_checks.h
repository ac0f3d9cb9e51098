// Checks on `ledgerctl export --format jsonl` output shared by the retention tests of both logs.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "ledger/clock.h"
#include "ledger/time_format.h"

namespace sechex::testing {

// What an export after `retention run --days N` must show: fewer events than `all` (the
// export before), but not fewer than half of them (demo spreads its events over 100 days), a
// "pruned below seq" notice on stderr, and no event older than N + 1 days (the retention steps
// themselves are recent).
inline void expect_export_after_retention(const std::string& out, const std::string& err,
                                          std::ptrdiff_t all, int days) {
  const auto kept = std::count(out.begin(), out.end(), '\n');
  EXPECT_LT(kept, all);
  EXPECT_GT(kept, all / 2);
  EXPECT_NE(err.find("pruned below seq"), std::string::npos) << err;
  const auto cutoff =
      SystemClock::instance().now_micros() - static_cast<std::int64_t>(days + 1) * 86'400'000'000;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_GE(parse_rfc3339(j["time"].get<std::string>()).value(), cutoff) << line;
  }
}

}  // namespace sechex::testing
