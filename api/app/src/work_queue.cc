#include "api/app/work_queue.h"

#include <algorithm>

namespace sechex::api {

WorkQueue::WorkQueue(Options options)
    : max_queued_(options.max_queued), lanes_(std::max(1u, options.threads)) {
  for (unsigned i = 0; i < options.threads; ++i) threads_.emplace_back([this, i] { run(i); });
}

WorkQueue::~WorkQueue() { stop(); }

std::size_t WorkQueue::lane_of(std::string_view key) const {
  return std::hash<std::string_view>{}(key) % lanes_.size();
}

std::size_t WorkQueue::push(std::string_view key, std::function<void()> job) {
  const auto lane = lane_of(key);
  lanes_[lane].jobs.push_back(std::move(job));
  ++queued_;
  return lane;
}

bool WorkQueue::submit(std::string_view key, std::function<void()> job) {
  std::size_t lane = 0;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || full()) return false;
    lane = push(key, std::move(job));
  }
  lanes_[lane].ready.notify_one();  // the lane's own thread, and no other
  return true;
}

std::optional<WorkQueue::Ticket> WorkQueue::reserve(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  space_.wait_for(lock, wait, [this] { return stopping_ || !full(); });
  if (stopping_ || full()) return std::nullopt;
  ++reserved_;
  return Ticket(this);
}

WorkQueue::Ticket::~Ticket() {
  if (queue_ == nullptr) return;
  {
    std::lock_guard lock(queue_->mu_);
    --queue_->reserved_;
  }
  queue_->space_.notify_one();
}

bool WorkQueue::Ticket::submit(std::string_view key, std::function<void()> job) {
  if (queue_ == nullptr) return false;
  auto* q = std::exchange(queue_, nullptr);
  std::size_t lane = 0;
  {
    std::lock_guard lock(q->mu_);
    --q->reserved_;
    if (q->stopping_) {
      q->space_.notify_one();
      return false;
    }
    lane = q->push(key, std::move(job));
  }
  q->lanes_[lane].ready.notify_one();
  return true;
}

void WorkQueue::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  for (auto& lane : lanes_) lane.ready.notify_all();
  space_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  drain();  // without threads, or accepted while they were leaving: none is dropped
}

std::size_t WorkQueue::drain() {
  std::unique_lock lock(mu_);
  std::size_t n = 0;
  for (std::size_t lane = 0; lane < lanes_.size(); ++lane) {
    while (run_one(lane, lock)) ++n;
  }
  return n;
}

std::uint64_t WorkQueue::failed_jobs() const {
  std::lock_guard lock(mu_);
  return failed_;
}

bool WorkQueue::run_one(std::size_t lane, std::unique_lock<std::mutex>& lock) {
  auto& jobs = lanes_[lane].jobs;
  if (jobs.empty()) return false;
  auto job = std::move(jobs.front());
  jobs.pop_front();
  --queued_;
  lock.unlock();
  space_.notify_one();
  bool ok = true;
  try {
    job();
  } catch (...) {
    ok = false;
  }
  job = nullptr;  // whatever the job held goes before the lock is taken again
  lock.lock();
  if (!ok) ++failed_;
  return true;
}

void WorkQueue::run(std::size_t lane) {
  std::unique_lock lock(mu_);
  for (;;) {
    auto& mine = lanes_[lane];
    mine.ready.wait(lock, [this, &mine] { return stopping_ || !mine.jobs.empty(); });
    if (mine.jobs.empty()) return;  // stopping, and nothing left
    run_one(lane, lock);
  }
}

}  // namespace sechex::api
