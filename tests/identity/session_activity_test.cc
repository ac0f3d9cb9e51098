// 002 "Active session tracking" / "Session activity window" and API.md ("lastSeen written at
// most once a minute per session, not on every request"): activity extends the idle expiry; a
// short idle window (ledgerd --session-idle) shortens the throttle to a quarter of it.
#include "api/identity/session_activity.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <type_traits>

#include "ledger/event_builder.h"
#include "projections/sessions.h"
#include "support/test_util.h"

namespace sechex::api {
namespace {

using projections::SessionId;
using projections::UserId;

// seen(user, session) cannot be called with the two swapped, nor with bare strings.
static_assert(!std::is_convertible_v<UserId, SessionId> &&
              !std::is_convertible_v<SessionId, UserId>);
static_assert(!std::is_convertible_v<std::string, UserId> &&
              !std::is_convertible_v<std::string, SessionId>);

using namespace std::chrono_literals;

// The stored form of times (projection rows hold micros since the epoch).
constexpr std::int64_t kSecondMicros = 1'000'000;
constexpr std::int64_t kDayMicros = 86'400 * kSecondMicros;

class SessionActivityTest : public ::testing::Test {
 protected:
  SessionActivityTest()
      : ledger_(testing::open_test_ledger(dir_.sub("log"), 2)),
        store_(
            projections::ProjectionStore::open(dir_.sub("p"), 2, projections::default_projections())
                .value()),
        commands_(*ledger_.log, *store_),
        activity_(commands_, *ledger_.keys, clock_, identity::Limits{}) {}

  // `idle` 0: the default windows (1 d, 7 d with rememberMe).
  void start_session(const std::string& user, const std::string& sid, bool remember_me,
                     Micros idle = Micros{0}) {
    const auto idle_micros = idle.count() != 0 ? idle.count() : (remember_me ? 7 : 1) * kDayMicros;
    ASSERT_TRUE(
        commands_.run(commands_.partition_for(user), [&]() -> Result<std::vector<ledger::Bytes>> {
          ledger::EventBuilder b(nullptr, {.subject = user,
                                           .actor = user,
                                           .request_id = "r",
                                           .time_micros = clock_.now_micros(),
                                           .ip = std::nullopt,
                                           .user_agent = std::nullopt});
          auto& f = b.fbb();
          SECHEX_TRY(auto e, b.finish(schema::CreateSessionStarted(
                                 f, f.CreateString(sid), f.CreateString("fam-" + sid), 0,
                                 remember_me, clock_.now_micros() + idle_micros, 0)));
          return std::vector<ledger::Bytes>{std::move(e)};
        }));
  }
  nlohmann::json session(const std::string& sid) {
    return nlohmann::json::parse(store_->get(projections::kSessionsCf, sid).value().value());
  }

  testing::TempDir dir_;
  ManualClock clock_;
  testing::TestLedger ledger_;
  std::unique_ptr<projections::ProjectionStore> store_;
  CommandPath commands_;
  SessionActivity activity_;
};

TEST_F(SessionActivityTest, ActivityIsRecordedAtMostOnceAMinuteAndExtendsTheIdleExpiry) {
  start_session("ann", "s1", false);
  const auto started = clock_.now_micros();
  const struct { std::string subject, session; } ann{"ann", "s1"};
  clock_.advance_micros(10 * kSecondMicros);
  activity_.seen(UserId(ann.subject), SessionId(ann.session));
  clock_.advance_micros(30 * kSecondMicros);
  activity_.seen(UserId(ann.subject),
                 SessionId(ann.session));  // within the minute: not recorded again
  EXPECT_EQ(activity_.drain(), 1u);
  auto s = session("s1");
  EXPECT_EQ(s["last_seen"], started + 10 * kSecondMicros);
  EXPECT_EQ(s["idle_expires_at"], started + 10 * kSecondMicros + kDayMicros);

  clock_.advance_micros(31 * kSecondMicros);  // 61 s after the recorded activity
  activity_.seen(UserId(ann.subject), SessionId(ann.session));
  EXPECT_EQ(activity_.drain(), 1u);
  EXPECT_EQ(session("s1")["idle_expires_at"], clock_.now_micros() + kDayMicros);
}

TEST_F(SessionActivityTest, RememberMeSessionsAreExtendedBySevenDays) {
  start_session("bob", "s2", true);
  clock_.advance_micros(5 * kSecondMicros);
  activity_.seen(UserId("bob"), SessionId("s2"));
  EXPECT_EQ(activity_.drain(), 1u);
  EXPECT_EQ(session("s2")["idle_expires_at"], clock_.now_micros() + 7 * kDayMicros);
}

TEST_F(SessionActivityTest, TokensWithoutALiveSessionOfTheirUserRecordNothing) {
  start_session("cat", "s3", false);
  activity_.seen(UserId("operator"), SessionId("not-a-session"));  // a ledgerctl token
  activity_.seen(UserId("mallory"), SessionId("s3"));              // someone else's session id
  EXPECT_EQ(activity_.drain(), 0u);
  // An idle-expired session is not revived by a late request.
  clock_.advance_micros(kDayMicros + kSecondMicros);
  activity_.seen(UserId("cat"), SessionId("s3"));
  EXPECT_EQ(activity_.drain(), 0u);
  EXPECT_FALSE(projections::is_session_active(
      store_->get(projections::kSessionsCf, "s3").value().value_or(""), clock_.now_micros()));
}

TEST_F(SessionActivityTest, TheWorkerThreadRecordsAndStopsPromptly) {
  start_session("dan", "s4", false);
  activity_.start();
  clock_.advance_micros(2 * kSecondMicros);
  activity_.seen(UserId("dan"), SessionId("s4"));
  for (int i = 0; i < 500 && session("s4")["last_seen"] != clock_.now_micros(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(session("s4")["last_seen"], clock_.now_micros());
  activity_.stop();
}

TEST_F(SessionActivityTest, TheThrottleIsAQuarterOfAShortIdleWindowAndAMinuteOtherwise) {
  identity::Limits limits;
  EXPECT_EQ(SessionActivity::effective_interval(limits, 1min), 1min);
  EXPECT_EQ(activity_.interval(), 1min);
  limits.idle = 4s;
  limits.remember_me_idle = 20s;
  EXPECT_EQ(SessionActivity::effective_interval(limits, 1min), 1s) << "the shorter window decides";
  limits.idle = 10min;
  limits.remember_me_idle = 24h;
  EXPECT_EQ(SessionActivity::effective_interval(limits, 1min), 1min);
  limits.idle = 2us;
  EXPECT_EQ(SessionActivity::effective_interval(limits, 1min), 1us) << "never zero";
}

// 002 "Session activity window" with a 4 s idle window: a request every 1.5 s is recorded each
// time (a minute's throttle would record only the first, and the session would lapse 4 s after
// it while in use), so the session stays valid; 4 s without a request end it for good.
TEST_F(SessionActivityTest, AShortIdleWindowKeepsAnActiveSessionAliveAndEndsAnIdleOne) {
  identity::Limits limits;
  limits.idle = 4s;
  limits.remember_me_idle = 8s;
  SessionActivity activity(commands_, *ledger_.keys, clock_, limits);
  ASSERT_EQ(activity.interval(), 1s);
  start_session("eve", "s5", false, limits.idle);

  auto active = [&] {
    return projections::is_session_active(
        store_->get(projections::kSessionsCf, "s5").value().value_or(""), clock_.now_micros());
  };
  for (int i = 0; i < 6; ++i) {  // 9 s of use, more than twice the window
    clock_.advance_micros(1'500'000);
    ASSERT_TRUE(active()) << i;
    activity.seen(UserId("eve"), SessionId("s5"));
    EXPECT_EQ(activity.drain(), 1u) << i;
    EXPECT_EQ(session("s5")["idle_expires_at"], clock_.now_micros() + limits.idle.count()) << i;
  }
  clock_.advance_micros(500'000);
  activity.seen(UserId("eve"), SessionId("s5"));  // within the interval: not recorded again
  EXPECT_EQ(activity.drain(), 0u);
  EXPECT_TRUE(active());
  clock_.advance_micros(3'500'000);  // 4 s after the last recorded request
  EXPECT_FALSE(active());
  activity.seen(UserId("eve"), SessionId("s5"));
  EXPECT_EQ(activity.drain(), 0u) << "an idle-expired session is not revived";
  EXPECT_FALSE(active());
}

}  // namespace
}  // namespace sechex::api
