// api/app/periodic_task.h: ticks once per period, a stop wakes a sleeping loop at once, a long
// tick sees the stop flag, and a tick stuck past the grace is reported rather than waited for.
#include "api/app/periodic_task.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

namespace sechex::api {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(PeriodicTask, TicksEveryPeriodAndAStopWakesItAtOnce) {
  std::atomic<int> ticks{0};
  PeriodicTask task(10ms, [&](const auto&) { ++ticks; });
  task.start();
  const auto deadline = Clock::now() + 5s;
  while (ticks < 3 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_GE(ticks.load(), 3);
  PeriodicTask idle(1h, [](const auto&) {});
  idle.start();
  const auto t0 = Clock::now();
  EXPECT_TRUE(idle.stop());
  EXPECT_LT(Clock::now() - t0, 1s) << "waited out the hour";
}

TEST(PeriodicTask, ALongTickSeesTheStopAndAStuckOneIsReported) {
  std::promise<void> entered;
  std::atomic<bool> saw_stop{false};
  PeriodicTask cooperative(1ms, [&, once = true](const std::atomic<bool>& stopping) mutable {
    if (once) entered.set_value();
    once = false;
    while (!stopping) std::this_thread::sleep_for(1ms);
    saw_stop = true;
  });
  cooperative.start();
  entered.get_future().wait();
  EXPECT_TRUE(cooperative.stop(5s));
  EXPECT_TRUE(saw_stop.load());

  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> stuck_entered;
  PeriodicTask stuck(1ms, [&, once = true](const auto&) mutable {
    if (!once) return;
    once = false;
    stuck_entered.set_value();
    released.wait();  // a call that ignores the stop
  });
  stuck.start();
  stuck_entered.get_future().wait();
  EXPECT_FALSE(stuck.stop(20ms));
  release.set_value();
  EXPECT_TRUE(stuck.stop());  // now it ends
}

// The mail worker and session activity: an hour's period, yet each wake gets its call, a wake
// during a call gets one more call after it, and run_at_start calls once without a wake.
TEST(PeriodicTask, AWakeCallsAtOnceAndAWakeDuringACallIsNotLost) {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  std::promise<void> in_second;
  std::promise<void> let_second_go;
  auto go = let_second_go.get_future().share();
  PeriodicTask task(1h, [&](const auto&) {
    int n = 0;
    {
      std::lock_guard l(mu);
      n = ++calls;
    }
    cv.notify_all();
    if (n == 2) {
      in_second.set_value();
      go.wait();
    }
  });
  const auto wait_for_calls = [&](int n) {
    std::unique_lock l(mu);
    return cv.wait_for(l, 5s, [&] { return calls >= n; });
  };
  task.start();
  task.wake();
  ASSERT_TRUE(wait_for_calls(1));
  task.wake();
  in_second.get_future().wait();
  task.wake();  // while the second call runs
  let_second_go.set_value();
  EXPECT_TRUE(wait_for_calls(3)) << "the wake during the second call was lost";
  EXPECT_TRUE(task.stop());
  {
    std::lock_guard l(mu);
    EXPECT_EQ(calls, 3);
  }

  std::atomic<int> at_start{0};
  PeriodicTask eager(1h, [&](const auto&) { ++at_start; }, {.run_at_start = true});
  eager.start();
  const auto deadline = Clock::now() + 5s;
  while (at_start == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(at_start.load(), 1);
}

TEST(PeriodicTask, AStoppedTaskStaysStoppedAndAStopFromInsideATickOnlyAsks) {
  std::atomic<int> calls{0};
  PeriodicTask never(1ms, [&](const auto&) { ++calls; });
  EXPECT_TRUE(never.stop());
  never.start();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(calls.load(), 0) << "start() after stop() started the loop";

  std::promise<bool> from_inside;
  PeriodicTask* self = nullptr;
  PeriodicTask stops_itself(1ms, [&](const auto&) {
    if (calls++ == 0) from_inside.set_value(self->stop());
  });
  self = &stops_itself;
  calls = 0;
  stops_itself.start();
  auto answer = from_inside.get_future();
  ASSERT_EQ(answer.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(answer.get());
  EXPECT_TRUE(stops_itself.stop());
  EXPECT_EQ(calls.load(), 1) << "the loop went on after the stop it asked for";
}

// The mail worker and session activity may be stopped from two places at once (an explicit
// stop and a destructor's, or two threads): one of them joins, neither crashes on a join that
// is no longer possible, and both see the loop ended.
TEST(PeriodicTask, TwoStopsAtOnceJoinTheLoopOnce) {
  for (int round = 0; round < 20; ++round) {
    std::promise<void> entered;
    PeriodicTask task(1ms, [&, once = true](const std::atomic<bool>& stopping) mutable {
      if (once) entered.set_value();
      once = false;
      while (!stopping) std::this_thread::sleep_for(1ms);
    });
    task.start();
    entered.get_future().wait();
    std::promise<void> go;
    auto start = go.get_future().share();
    bool a = false, b = false;
    std::thread first([&] {
      start.wait();
      a = task.stop();
    });
    std::thread second([&] {
      start.wait();
      b = task.stop();
    });
    go.set_value();
    first.join();
    second.join();
    EXPECT_TRUE(a && b) << round;
  }
}

}  // namespace
}  // namespace sechex::api
