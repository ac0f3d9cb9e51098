// Session activity (002 "Active session tracking": an authenticated action extends the
// session; API.md: lastSeen written at most once a minute per session, not on every request).
//
// seen() is called after every successful authentication. It only consults an in-memory map and
// queues the session when its last recorded activity is one interval old or more; a background
// thread appends SessionSeen (new idle expiry: Limits::idle, 24 h by default, or
// remember_me_idle, 7 d, with rememberMe) through the command path of the user's
// partition. So a busy session costs one small event per interval, and a request never waits for
// it. Tokens without a session in the projection (operator tokens from ledgerctl) are skipped by
// the worker. A full queue drops the activity (the next request an interval later records it):
// losing one only shortens the session's idle window by that interval.
//
// The interval is min(`interval` (a minute), idle window / 4), see effective_interval().
// Why: the recorded activity lags the real one by up to an interval, so a session used without
// pause still expires `idle - interval` after its last recorded activity. With the default 24 h
// window a minute's lag is noise; with a window of a few minutes (ledgerd --session-idle) a
// minute's throttle would let a session in active use expire. A quarter of the window keeps at
// least three quarters of it after the last request, and bounds the cost to four events per
// window.
//
// Lifecycle: start() after catch-up, stop() before the command path goes. Thread-safety:
// seen() and stop() may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

#include "api/app/commands.h"
#include "api/app/periodic_task.h"
#include "api/identity/decide.h"
#include "ledger/clock.h"
#include "ledger/key_store.h"
#include "projections/ids.h"

namespace sechex::api {

class SessionActivity {
 public:
  SessionActivity(CommandPath& commands, ledger::KeyStore& keys, const Clock& clock,
                  identity::Limits limits, Micros interval = std::chrono::minutes{1});
  ~SessionActivity();
  SessionActivity(const SessionActivity&) = delete;
  SessionActivity& operator=(const SessionActivity&) = delete;

  void start();
  void stop();
  // An authenticated request of `user` in `session` (tokens without a session: ignored).
  void seen(const projections::UserId& user, const projections::SessionId& session);
  // Records what is queued now, on the caller's thread (tests); returns the events appended.
  std::size_t drain();

  // The throttle actually used: min(interval, shorter idle window / 4), at least 1 µs.
  static Micros effective_interval(const identity::Limits& limits, Micros interval);
  Micros interval() const { return interval_; }

 private:
  struct Seen {
    std::string user, session;
    TimePoint at;
  };
  bool record(const Seen& s);
  // Records what is queued now, until `stopping` (when given) turns true.
  std::size_t record_queued(const std::atomic<bool>* stopping);

  CommandPath& commands_;
  ledger::KeyStore& keys_;
  const Clock& clock_;
  const identity::Limits limits_;
  const Micros interval_;
  static constexpr std::size_t kMaxQueued = 10000;

  std::mutex mu_;
  std::unordered_map<std::string, TimePoint> last_;  // session -> last queued activity
  std::deque<Seen> queue_;
  PeriodicTask loop_;  // last: its thread uses the members above
};

}  // namespace sechex::api
