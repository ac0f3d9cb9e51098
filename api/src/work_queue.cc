#include "api/work_queue.h"

namespace sechex::api {

WorkQueue::WorkQueue(std::size_t max_queued, unsigned threads) : max_queued_(max_queued) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

WorkQueue::~WorkQueue() { stop(); }

bool WorkQueue::submit(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || full()) return false;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
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

bool WorkQueue::Ticket::submit(std::function<void()> job) {
  if (queue_ == nullptr) return false;
  auto* q = std::exchange(queue_, nullptr);
  {
    std::lock_guard lock(q->mu_);
    --q->reserved_;
    if (q->stopping_) {
      q->space_.notify_one();
      return false;
    }
    q->queue_.push_back(std::move(job));
  }
  q->cv_.notify_one();
  return true;
}

void WorkQueue::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  space_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  drain();  // without threads, or accepted while they were leaving: none is dropped
}

std::size_t WorkQueue::drain() {
  std::unique_lock lock(mu_);
  std::size_t n = 0;
  while (run_one(lock)) ++n;
  return n;
}

std::uint64_t WorkQueue::failed_jobs() const {
  std::lock_guard lock(mu_);
  return failed_;
}

bool WorkQueue::run_one(std::unique_lock<std::mutex>& lock) {
  if (queue_.empty()) return false;
  auto job = std::move(queue_.front());
  queue_.pop_front();
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

void WorkQueue::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left
    run_one(lock);
  }
}

}  // namespace sechex::api
