// api/work_queue.h: jobs run in order, the bound counts held places (tickets) too, stop() runs
// everything accepted, and a throwing job neither stops the queue nor escapes.
#include "api/app/work_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sechex::api {
namespace {

TEST(WorkQueue, JobsRunInOrderAndTheBoundIsKept) {
  WorkQueue q({.max_queued = 3, .threads = 0});
  std::vector<int> ran;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(q.submit("k", [&ran, i] { ran.push_back(i); }));
  EXPECT_FALSE(q.submit("k", [] {})) << "full";
  EXPECT_EQ(q.drain(), 3u);
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(q.submit("k", [] {})) << "room again";
}

// One client's requests must take effect in the order it made them (its newest code is the one
// its newest mail carries), while different clients' work runs in parallel.
TEST(WorkQueue, JobsOfOneKeyRunInOrderOneAtATimeWhileOtherKeysRunAlongside) {
  WorkQueue q({.max_queued = 10'000, .threads = 4});
  std::mutex mu;
  std::map<std::string, std::vector<int>> seen;
  std::map<std::string, int> running;
  bool overlapped = false;
  for (int i = 0; i < 200; ++i) {
    for (const std::string key : {"a@example.com", "b@example.com", "c@example.com"}) {
      ASSERT_TRUE(q.submit(key, [&, key, i] {
        {
          std::lock_guard lock(mu);
          if (++running[key] > 1) overlapped = true;
        }
        std::this_thread::yield();
        std::lock_guard lock(mu);
        seen[key].push_back(i);
        --running[key];
      }));
    }
  }
  q.stop();
  EXPECT_FALSE(overlapped) << "two jobs of one key ran at once";
  for (const auto& [key, order] : seen) {
    ASSERT_EQ(order.size(), 200u) << key;
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << key;
  }
}

TEST(WorkQueue, ATicketHoldsItsPlaceUntilItsJobIsSubmittedOrDropped) {
  WorkQueue q({.max_queued = 2, .threads = 0});
  auto held = q.reserve();
  ASSERT_TRUE(held);
  EXPECT_TRUE(q.submit("k", [] {}));
  EXPECT_FALSE(q.submit("k", [] {})) << "the ticket counts against the bound";
  EXPECT_FALSE(q.reserve());
  bool ran = false;
  EXPECT_TRUE(held->submit("k", [&ran] { ran = true; }));
  EXPECT_FALSE(held->submit("k", [] {})) << "one job per ticket";
  EXPECT_EQ(q.drain(), 2u);
  EXPECT_TRUE(ran);
  {
    auto dropped = q.reserve();
    ASSERT_TRUE(dropped);
    EXPECT_TRUE(q.submit("k", [] {}));
    EXPECT_FALSE(q.submit("k", [] {}));
  }  // an unused ticket frees its place
  EXPECT_TRUE(q.submit("k", [] {}));
}

TEST(WorkQueue, StopRunsEveryAcceptedJobAndThenRefusesNewOnes) {
  std::atomic<int> ran{0};
  std::promise<void> gate;
  auto open = gate.get_future().share();
  WorkQueue q({.max_queued = 100, .threads = 1});
  EXPECT_TRUE(q.submit("k", [open, &ran] {
    open.wait();
    ++ran;
  }));
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(q.submit("k", [&ran] { ++ran; }));
  auto held = q.reserve();
  ASSERT_TRUE(held);
  std::thread stopper([&q] { q.stop(); });
  gate.set_value();
  stopper.join();
  EXPECT_EQ(ran.load(), 11);
  EXPECT_FALSE(q.submit("k", [] {}));
  EXPECT_FALSE(held->submit("k", [] {})) << "a ticket cannot queue into a stopped queue";
  EXPECT_FALSE(q.reserve());
}

TEST(WorkQueue, ReserveWaitsForAPlaceUpToItsDeadline) {
  WorkQueue q({.max_queued = 1, .threads = 0});
  ASSERT_TRUE(q.submit("k", [] {}));
  EXPECT_FALSE(q.reserve(std::chrono::milliseconds(20))) << "full, and nothing frees a place";
  std::thread drainer([&q] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    q.drain();
  });
  auto ticket = q.reserve(std::chrono::seconds(10));
  drainer.join();
  EXPECT_TRUE(ticket) << "the drain freed the place";
}

TEST(WorkQueue, AThrowingJobIsCountedAndTheNextOneStillRuns) {
  WorkQueue q({.max_queued = 10, .threads = 0});
  bool after = false;
  q.submit("k", [] { throw std::runtime_error("job bug"); });
  q.submit("k", [&after] { after = true; });
  EXPECT_EQ(q.drain(), 2u);
  EXPECT_TRUE(after);
  EXPECT_EQ(q.failed_jobs(), 1u);
}

}  // namespace
}  // namespace sechex::api
