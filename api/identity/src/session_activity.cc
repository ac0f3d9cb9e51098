#include "api/identity/session_activity.h"

#include <algorithm>

#include "ledger/event_builder.h"
#include "projections/sessions.h"

namespace sechex::api {

SessionActivity::SessionActivity(CommandPath& commands, ledger::KeyStore& keys, const Clock& clock,
                                 identity::Limits limits, Micros interval)
    : commands_(commands),
      keys_(keys),
      clock_(clock),
      limits_(limits),
      interval_(effective_interval(limits, interval)),
      // Woken by seen(); the period is only a backstop.
      loop_(std::chrono::seconds(1),
            [this](const std::atomic<bool>& stopping) { record_queued(&stopping); }) {}

Micros SessionActivity::effective_interval(const identity::Limits& limits, Micros interval) {
  const auto idle = std::min(limits.idle, limits.remember_me_idle);
  return std::max(Micros{1}, std::min(interval, idle / 4));
}

SessionActivity::~SessionActivity() { stop(); }

void SessionActivity::start() { loop_.start(); }

void SessionActivity::stop() { loop_.stop(); }

void SessionActivity::seen(const projections::UserId& user, const projections::SessionId& session) {
  if (session.empty()) return;
  const auto now = clock_.now();
  {
    std::lock_guard l(mu_);
    auto [it, fresh] = last_.try_emplace(session.str(), now);
    if (!fresh && now - it->second < interval_) return;
    it->second = now;
    if (queue_.size() >= kMaxQueued) return;
    queue_.push_back({user.str(), session.str(), now});
    // The map only needs sessions seen within the interval; forget older ones now and then.
    if (last_.size() > 4 * kMaxQueued) {
      std::erase_if(last_, [&](const auto& e) { return now - e.second >= interval_; });
    }
  }
  loop_.wake();
}

std::size_t SessionActivity::drain() { return record_queued(nullptr); }

std::size_t SessionActivity::record_queued(const std::atomic<bool>* stopping) {
  std::deque<Seen> work;
  {
    std::lock_guard l(mu_);
    work.swap(queue_);
  }
  std::size_t n = 0;
  for (const auto& s : work) {
    // A stop does not wait for a full queue's appends (an fsync each): what is left is lost,
    // which only shortens those sessions' idle windows by an interval (see above).
    if (stopping != nullptr && *stopping) break;
    n += record(s) ? 1 : 0;
  }
  return n;
}

bool SessionActivity::record(const Seen& s) {
  const auto p = commands_.partition_for(s.user);
  if (!commands_.ownership().owns(p)) return false;  // its owner records its own traffic
  bool appended = false;
  auto ran = commands_.run(p, [&]() -> Result<std::vector<ledger::Bytes>> {
    SECHEX_TRY(const auto session, projections::session_row(commands_.projections(), s.session));
    if (!session || !session->active_at(s.at) || session->user != s.user) {
      return std::vector<ledger::Bytes>{};
    }
    ledger::EventBuilder b(&keys_, {.subject = s.user,
                                    .actor = s.user,
                                    .request_id = "",
                                    .time_micros = micros_of(s.at),
                                    .ip = std::nullopt,
                                    .user_agent = std::nullopt});
    auto& f = b.fbb();
    SECHEX_TRY(auto event,
               b.finish(schema::CreateSessionSeen(
                   f, f.CreateString(s.session),
                   micros_of(identity::idle_expiry(session->remember_me, limits_, s.at)))));
    appended = true;
    return std::vector<ledger::Bytes>{std::move(event)};
  });
  return ran && appended;
}

}  // namespace sechex::api
