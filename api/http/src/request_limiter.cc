#include "api/http/request_limiter.h"

#include <algorithm>

namespace sechex::api {

RequestLimiter::RequestLimiter(Options options)
    : limit_(options.limit == 0 ? 1 : options.limit),
      window_(options.window),
      max_keys_(options.max_keys == 0 ? 1 : options.max_keys) {}

void RequestLimiter::make_room(TimePoint now) {
  std::erase_if(entries_, [&](const auto& kv) {
    return kv.second.times.empty() || kv.second.times.back() <= now - window_;
  });
  const auto target = max_keys_ - std::max<std::size_t>(1, max_keys_ / 10);
  while (entries_.size() > target) entries_.erase(entries_.begin());
}

RequestLimiter::Verdict RequestLimiter::check(std::string_view key, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(std::string(key));
  if (it == entries_.end()) {
    if (entries_.size() >= max_keys_) make_room(now);
    it = entries_.emplace(std::string(key), Entry{}).first;
  }
  auto& e = it->second;
  std::erase_if(e.times, [&](TimePoint t) { return t <= now - window_; });
  Verdict v;
  if (e.times.size() >= limit_) {
    v.allowed = false;
    // Below the limit again once enough of the oldest have left: times[size - limit].
    v.retry_at = e.times[e.times.size() - limit_] + window_;
    v.first_refusal = !e.refused;
    e.refused = true;
    return v;
  }
  e.refused = false;
  // Clock steps backwards keep the order: insert in place (rare; usually at the end).
  auto pos = e.times.end();
  while (pos != e.times.begin() && *(pos - 1) > now) --pos;
  e.times.insert(pos, now);
  return v;
}

}  // namespace sechex::api
