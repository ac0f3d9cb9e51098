// RFC 3339 UTC timestamps <-> microseconds since the Unix epoch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/clock.h"

namespace sechex {

// "2026-11-22T23:08:42.123456Z" (fraction omitted when zero).
std::string format_rfc3339(std::int64_t micros);
inline std::string format_rfc3339(TimePoint t) { return format_rfc3339(micros_of(t)); }
// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (also 't'/'z'); nullopt otherwise.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

}  // namespace sechex
