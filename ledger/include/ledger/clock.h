// Injected time. Nothing in the ledger reads the wall clock directly, so tests can drive
// checkpoint timers and event times deterministically.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sechex {

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch (UTC).
  virtual std::int64_t now_micros() const = 0;
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
  void set_micros(std::int64_t t) { now_ = t; }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace sechex
