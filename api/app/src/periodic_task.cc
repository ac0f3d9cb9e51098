#include "api/app/periodic_task.h"

namespace sechex::api {

PeriodicTask::PeriodicTask(std::chrono::milliseconds period, Tick tick, Options options)
    : period_(period), tick_(std::move(tick)), options_(options) {}

PeriodicTask::~PeriodicTask() { stop(); }

void PeriodicTask::start() {
  std::lock_guard control(control_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
  loop_id_ = thread_.get_id();
}

void PeriodicTask::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void PeriodicTask::run() {
  loop_id_ = std::this_thread::get_id();  // before any tick can ask to stop
  std::unique_lock lock(mu_);
  woken_ = woken_ || options_.run_at_start;
  for (;;) {
    // Woken, or the period is up: either way a call is due, unless a stop was asked for.
    cv_.wait_for(lock, period_, [this] { return stopping_.load() || woken_; });
    if (stopping_) break;
    woken_ = false;
    lock.unlock();
    tick_(stopping_);
    lock.lock();
  }
  done_ = true;
  cv_.notify_all();
}

bool PeriodicTask::stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (loop_id_.load() == std::this_thread::get_id()) return false;  // from inside tick
  // One stopper joins at a time (an explicit stop and a destructor's, say).
  std::lock_guard control(control_);
  if (!thread_.joinable()) return true;
  std::unique_lock lock(mu_);
  const bool finished = grace == std::chrono::milliseconds::max()
                            ? (cv_.wait(lock, [this] { return done_; }), true)
                            : cv_.wait_for(lock, grace, [this] { return done_; });
  lock.unlock();
  if (finished) thread_.join();
  return finished;
}

}  // namespace sechex::api
