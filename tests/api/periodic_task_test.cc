// api/app/periodic_task.h: ticks once per period, a stop wakes a sleeping loop at once, a long
// tick sees the stop flag, and a tick stuck past the grace is reported rather than waited for.
#include "api/app/periodic_task.h"

#include <gtest/gtest.h>

#include <future>

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

}  // namespace
}  // namespace sechex::api
