// The one stoppable background loop of ledgerd: a thread that calls `tick` once per `period`
// and whenever woken, until stopped. The checkpointer and the Kafka follower tick on a period;
// the mail worker and session activity tick when woken (a mail queued, a session seen) with the
// period as a backstop.
//
// The first call comes one period after start(), or at once with Options::run_at_start. wake()
// makes the next call come now; a wake during a call makes another call follow it at once, so
// no wake is lost. `tick` gets a flag that turns true when a stop is asked for, so a long tick
// (one partition after another) can end early. stop(grace) asks, wakes a sleeping loop at once,
// and waits up to `grace` for the tick in progress to return: false when it did not (a call
// stuck in a client library that ignores its timeouts); the thread is then still running and the
// caller decides (ledgerd exits without it). A stopped task stays stopped: start() after stop()
// starts nothing. The destructor stops and waits however long it takes.
//
// Thread-safety: start(), stop() and wake() from any thread (stoppers take turns; the first to
// see the loop end joins it). A stop() from inside `tick` only asks (the loop ends after that
// call) and returns false.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace sechex::api {

// Outside the class: a nested struct with member initializers cannot be a default argument of
// its enclosing class's constructor (GCC).
struct PeriodicTaskOptions {
  bool run_at_start = false;  // the first call right after start()
};

class PeriodicTask {
 public:
  using Tick = std::function<void(const std::atomic<bool>& stopping)>;
  using Options = PeriodicTaskOptions;
  PeriodicTask(std::chrono::milliseconds period, Tick tick, Options options = {});
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void start();
  void wake();
  bool stop(std::chrono::milliseconds grace = std::chrono::milliseconds::max());

 private:
  void run();

  const std::chrono::milliseconds period_;
  const Tick tick_;
  const Options options_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;  // guarded by mu_
  bool done_ = false;   // guarded by mu_
  std::mutex control_;  // start() and the joining part of stop()
  std::thread thread_;  // guarded by control_
  std::atomic<std::thread::id> loop_id_{};
};

}  // namespace sechex::api
