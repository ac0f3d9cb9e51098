// Per-client request limits for the routes that answer 202 whatever the email (password forgot,
// verification resend, OTP request).
//
// Those routes record an event only when they mail a known account, so a limit counted from
// the projections would count known addresses only, and its 429 would tell a known address
// from an unknown one. This limiter counts every well-formed request of a client instead,
// whatever it names, so its 429 says nothing about any address. The per-account mail caps stay
// in the projections (silent, still 202).
//
// A sliding window of `limit` requests per `window` per key (the client IP's keyed hash).
// Refused requests are not counted: a client that waits Retry-After gets in. Counts live in
// memory only, per process: a restart forgets them, and each Kafka node counts its own
// clients. At most `max_keys` clients are tracked; when full, keys whose window has passed are
// dropped, then arbitrary ones until a tenth is free, so a flood of new keys costs one scan per
// max_keys / 10 of them rather than one each (a client with that many addresses is past any
// per-address limit anyway). Callers key clients by client_key() (client_ip.h): IPv6 by /64.
//
// Thread-safety: check() may be called from any thread (one mutex; the work under it is a map
// lookup and a few integers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ledger/clock.h"

namespace sechex::api {

class RequestLimiter {
 public:
  struct Verdict {
    bool allowed = true;
    // Refused: when the oldest counted request leaves the window (the earliest retry), and
    // whether this is the first refusal since the client was last allowed (audit it once per
    // burst rather than per request).
    TimePoint retry_at;
    bool first_refusal = false;
  };

  struct Options {
    std::uint32_t limit = 1;  // requests per window and client; 0 is taken as 1
    Micros window{0};
    std::size_t max_keys = 100'000;  // clients remembered at once
  };
  explicit RequestLimiter(Options options);

  // Counts the request when allowed.
  Verdict check(std::string_view key, TimePoint now);

  std::uint32_t limit() const { return limit_; }
  Micros window() const { return window_; }

 private:
  struct Entry {
    std::vector<TimePoint> times;  // allowed requests in the window, ascending, <= limit
    bool refused = false;          // refused since the last allowed request
  };
  void make_room(TimePoint now);

  const std::uint32_t limit_;
  const Micros window_;
  const std::size_t max_keys_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sechex::api
