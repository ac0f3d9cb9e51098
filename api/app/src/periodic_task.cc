#include "api/app/periodic_task.h"

namespace sechex::api {

PeriodicTask::PeriodicTask(std::chrono::milliseconds period, Tick tick, Options options)
    : period_(period), tick_(std::move(tick)), options_(options) {}

PeriodicTask::~PeriodicTask() { stop(); }

void PeriodicTask::start() {
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void PeriodicTask::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void PeriodicTask::run() {
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
  std::unique_lock lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  if (!thread_.joinable()) return true;
  if (thread_.get_id() == std::this_thread::get_id()) return false;  // from inside tick
  const bool finished = grace == std::chrono::milliseconds::max()
                            ? (cv_.wait(lock, [this] { return done_; }), true)
                            : cv_.wait_for(lock, grace, [this] { return done_; });
  lock.unlock();
  if (finished) thread_.join();
  return finished;
}

}  // namespace sechex::api
