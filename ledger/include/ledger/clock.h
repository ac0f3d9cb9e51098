// Injected time. Nothing in the ledger reads the wall clock directly, so tests can drive
// checkpoint timers and event times deterministically.
//
// Time in memory is typed: an instant is a `TimePoint` (microseconds since the Unix epoch, UTC)
// and a length of time is `Micros` (or any std::chrono duration, which converts exactly), so an
// instant cannot be passed where a window is expected and `now + window` is the only way to get
// an expiry. What is stored and signed (event envelopes, FlatBuffers fields, projection rows)
// stays int64 microseconds since the epoch: `micros_of` and `time_from_micros` convert at that
// boundary and nowhere else. "Never" (a lock only an admin lifts) is `TimePoint::max()`, whose
// stored form is INT64_MAX.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sechex {

using Micros = std::chrono::microseconds;
using TimePoint = std::chrono::sys_time<Micros>;

// The stored form of an instant, and back.
constexpr std::int64_t micros_of(TimePoint t) { return t.time_since_epoch().count(); }
constexpr TimePoint time_from_micros(std::int64_t micros) { return TimePoint{Micros{micros}}; }

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch (UTC).
  virtual std::int64_t now_micros() const = 0;
  TimePoint now() const { return time_from_micros(now_micros()); }
};

class SystemClock final : public Clock {
 public:
  std::int64_t now_micros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static const SystemClock& instance() {
    static const SystemClock clock;
    return clock;
  }
};

// A clock tests move by hand. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t start_micros = 1'767'225'600'000'000)  // 2026-01-01
      : now_(start_micros) {}
  std::int64_t now_micros() const override { return now_.load(); }
  void advance_micros(std::int64_t d) { now_ += d; }
  void advance(Micros d) { now_ += d.count(); }
  void set_micros(std::int64_t t) { now_ = t; }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace sechex
