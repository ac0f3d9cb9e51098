// The one retry policy of work that is tried again after a transient failure (mail delivery
// and webhook delivery): attempt n (1-based) failing transiently is tried again at
// now + base * 2^(n-1) (2 s, 4 s, 8 s with the defaults), and the failure of attempt
// max_attempts is final. The doubling stops at 2^20 (base * ~10^6), so no attempt number can
// overflow the time. A permanent failure is final at once; that is the caller's to tell.
//
// Thread-safety: a value; pure.
#pragma once

#include <chrono>
#include <cstdint>

namespace sechex::api {

struct RetryPolicy {
  std::chrono::microseconds base{std::chrono::seconds(2)};
  std::uint32_t max_attempts = 4;  // 1 + 3 retries

  // Whether the failure of `attempt` (1-based) is the last one.
  bool final(std::uint32_t attempt) const { return attempt >= max_attempts; }
  // When to try again after `attempt` failed at `now_micros`.
  std::int64_t next_attempt_at(std::uint32_t attempt, std::int64_t now_micros) const {
    const std::uint32_t shift = attempt == 0 ? 0 : (attempt - 1 < 20 ? attempt - 1 : 20);
    return now_micros + base.count() * (std::int64_t{1} << shift);
  }
  // The same delay stretched by up to a quarter by `jitter` in [0, 1) (so that many deliveries
  // failing together do not retry in lockstep), and never earlier than `not_before_micros` (a
  // receiver's Retry-After).
  std::int64_t next_attempt_at(std::uint32_t attempt, std::int64_t now_micros, double jitter,
                               std::int64_t not_before_micros) const {
    const auto plain = next_attempt_at(attempt, now_micros);
    const auto j = jitter < 0 ? 0.0 : (jitter >= 1 ? 0.999 : jitter);
    const auto stretched =
        plain + static_cast<std::int64_t>(static_cast<double>(plain - now_micros) * 0.25 * j);
    return stretched > not_before_micros ? stretched : not_before_micros;
  }
};

}  // namespace sechex::api
