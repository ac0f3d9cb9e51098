#include "api/app/periodic_task.h"

namespace sechex::api {

PeriodicTask::PeriodicTask(std::chrono::milliseconds period, Tick tick)
    : period_(period), tick_(std::move(tick)) {}

PeriodicTask::~PeriodicTask() { stop(); }

void PeriodicTask::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void PeriodicTask::run() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return stopping_.load(); })) {
    lock.unlock();
    tick_(stopping_);
    lock.lock();
  }
  done_ = true;
  cv_.notify_all();
}

bool PeriodicTask::stop(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return true;
  std::unique_lock lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  const bool finished = grace == std::chrono::milliseconds::max()
                            ? (cv_.wait(lock, [this] { return done_; }), true)
                            : cv_.wait_for(lock, grace, [this] { return done_; });
  lock.unlock();
  if (finished) thread_.join();
  return finished;
}

}  // namespace sechex::api
