// A bounded queue of jobs run by a fixed set of background threads: work a request hands off so
// that it can answer first (the 202 routes of identity_support.h answer before they look at
// the account, so that their time says nothing about whether the address exists).
//
// Each job has a key; jobs of one key run one after the other in the order they were queued
// (all on the same thread), jobs of different keys in parallel on `threads` threads (the jobs
// here are fsync-bound appends: several threads let group commit batch them, and one key per
// address keeps one client's requests in the order it made them, so its newest code is the
// one that works).
//
// Lifecycle: the threads start with the constructor. stop() refuses new jobs, runs every job
// already accepted, and joins; the destructor calls it. Whatever jobs reference must outlive
// stop(): call it before tearing those down.
//
// Thread-safety: every method may be called from any thread. Jobs must not throw (an exception
// is caught and counted, the queue goes on) and should not block for long.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sechex::api {

class WorkQueue {
 public:
  struct Options {
    std::size_t max_queued = 1;  // jobs waiting at most, tickets included
    unsigned threads = 1;        // 0 runs none (tests: drain())
  };
  explicit WorkQueue(Options options);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // False when the queue is full or stopping: the job will never run.
  bool submit(std::string_view key, std::function<void()> job);

  // A place in the queue held for a job that is not ready to go yet (it waits for an answer to
  // be written): it counts against the bound from reserve() on, so a caller that got one can
  // promise the work will be queued. Move-only; dropping an unused ticket frees the place.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept : queue_(std::exchange(other.queue_, nullptr)) {}
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket();
    // Queues `job` in the held place. False (the job will never run) only when the queue
    // stopped meanwhile.
    bool submit(std::string_view key, std::function<void()> job);

   private:
    friend class WorkQueue;
    explicit Ticket(WorkQueue* q) : queue_(q) {}
    WorkQueue* queue_;
  };
  // A ticket, waiting up to `wait` for a place when the queue is full (the caller's own thread
  // blocks: call it from a blocking pool, never an io thread); nullopt when none came free in
  // time or the queue is stopping.
  std::optional<Ticket> reserve(std::chrono::milliseconds wait = std::chrono::milliseconds(0));

  void stop();
  // Runs the jobs queued now on the caller's thread; returns how many ran.
  std::size_t drain();
  std::uint64_t failed_jobs() const;

 private:
  void run(std::size_t lane);
  // Runs the next job of `lane`; false when it has none.
  bool run_one(std::size_t lane, std::unique_lock<std::mutex>& lock);
  std::size_t lane_of(std::string_view key) const;
  std::size_t push(std::string_view key, std::function<void()> job);  // under mu_; the lane
  bool full() const { return queued_ + reserved_ >= max_queued_; }

  const std::size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable space_;  // a place came free
  // One per thread (one when none). A submit wakes its lane's thread only.
  struct Lane {
    std::deque<std::function<void()>> jobs;
    std::condition_variable ready;  // a job was queued here, or stopping
  };
  std::vector<Lane> lanes_;
  std::size_t queued_ = 0;    // jobs in all lanes
  std::size_t reserved_ = 0;  // places held by live tickets
  bool stopping_ = false;
  std::uint64_t failed_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace sechex::api
