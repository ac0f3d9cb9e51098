// Session activity (002 "Active session tracking": an authenticated action extends the
// session; API.md: lastSeen written at most once a minute per session, not on every request).
//
// seen() is called after every successful authentication. It only consults an in-memory map and
// queues the session when its last recorded activity is a minute old or more; a background
// thread appends SessionSeen (new idle expiry: 24 h, or 7 d with rememberMe) through the command
// path of the user's partition. So a busy session costs one small event a minute, and a request
// never waits for it. Tokens without a session in the projection (operator tokens from
// ledgerctl) are skipped by the worker. A full queue drops the activity (the next request a
// minute later records it): losing one only shortens the session's idle window by that minute.
//
// Lifecycle: start() after catch-up, stop() before the command path goes. Thread-safety:
// seen() and stop() may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "api/auth.h"
#include "api/commands.h"
#include "api/identity_decide.h"
#include "ledger/clock.h"
#include "ledger/key_store.h"

namespace sechex::api {

class SessionActivity {
 public:
  SessionActivity(CommandPath& commands, ledger::KeyStore& keys, const Clock& clock,
                  identity::Limits limits, std::int64_t interval_micros = identity::kMinuteMicros);
  ~SessionActivity();
  SessionActivity(const SessionActivity&) = delete;
  SessionActivity& operator=(const SessionActivity&) = delete;

  void start();
  void stop();
  void seen(const Principal& principal);
  // Records what is queued now, on the caller's thread (tests); returns the events appended.
  std::size_t drain();

 private:
  struct Seen {
    std::string user, session;
    std::int64_t at = 0;
  };
  bool record(const Seen& s);

  CommandPath& commands_;
  ledger::KeyStore& keys_;
  const Clock& clock_;
  const identity::Limits limits_;
  const std::int64_t interval_;
  static constexpr std::size_t kMaxQueued = 10000;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, std::int64_t> last_;  // session -> last queued activity
  std::deque<Seen> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sechex::api
