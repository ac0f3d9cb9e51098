// A background thread that calls `tick` once per `period` until stopped: ledgerd's checkpointer
// and Kafka follower. The first call comes one period after start().
//
// `tick` gets a flag that turns true when a stop is asked for, so a long tick (one partition
// after another) can end early. stop(grace) asks, wakes a sleeping loop at once, and waits up to
// `grace` for the tick in progress to return: false when it did not (a call stuck in a client
// library that ignores its timeouts); the thread is then still running and the caller decides
// (ledgerd exits without it). The destructor stops and waits however long it takes.
//
// Thread-safety: start() and stop() from one controlling thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace sechex::api {

class PeriodicTask {
 public:
  using Tick = std::function<void(const std::atomic<bool>& stopping)>;
  PeriodicTask(std::chrono::milliseconds period, Tick tick);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void start();
  bool stop(std::chrono::milliseconds grace = std::chrono::milliseconds::max());

 private:
  void run();

  const std::chrono::milliseconds period_;
  const Tick tick_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace sechex::api
