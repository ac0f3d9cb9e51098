#include "projections/access.h"

#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/time_format.h"
#include "ledger/utf8.h"
#include "projections/identity.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

// Cutoffs only move forward: an older event replayed later cannot re-validate tokens.
Result<void> raise_cutoff(Txn& txn, const std::string& user, std::int64_t at) {
  SECHEX_TRY(auto current, txn.get(kRevocationCutoffsCf, user));
  if (current && decode_cutoff(*current) >= at) return boost::outcome_v2::success();
  txn.put(kRevocationCutoffsCf, user, codec::be64(at));
  return boost::outcome_v2::success();
}

}  // namespace

std::int64_t decode_cutoff(std::string_view v) {
  if (v.size() != 8) return 0;
  std::uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<unsigned char>(v[i]);
  return static_cast<std::int64_t>(u);
}

namespace {

// One stored lockout, decoded once for every reader. An unreadable value (not a JSON object)
// is in force and needs an admin: it fails closed.
struct Lockout {
  bool readable = false;
  bool needs_admin_unlock = true;
  std::string locked_until_text;  // RFC 3339, "" when only an admin lifts it
  std::string kept_until_text;    // RFC 3339, "" unless an anon subject's admin lock
  std::string reason;
  std::string since;
  std::optional<std::int64_t> locked_until;
  std::optional<std::int64_t> kept_until;
};

Lockout decode_lockout(std::string_view value) {
  const auto j = nlohmann::json::parse(value, nullptr, false);
  Lockout l;
  if (!j.is_object()) return l;
  l.readable = true;
  l.needs_admin_unlock = j.value("needs_admin_unlock", false);
  l.locked_until_text = j.value("locked_until", "");
  l.kept_until_text = j.value("kept_until", "");
  l.reason = j.value("reason", "");
  l.since = j.value("since", "");
  l.locked_until = parse_rfc3339(l.locked_until_text);
  l.kept_until = parse_rfc3339(l.kept_until_text);
  return l;
}

bool in_force(const Lockout& l, std::int64_t now_micros) {
  if (!l.readable) return true;
  if (l.needs_admin_unlock) return !l.kept_until || now_micros < *l.kept_until;
  return l.locked_until && now_micros < *l.locked_until;
}

}  // namespace

bool is_locked(const std::string& lockout_json, std::int64_t now_micros) {
  return in_force(decode_lockout(lockout_json), now_micros);
}

bool lockout_expired(std::string_view lockout_json, std::int64_t now_micros) {
  const auto l = decode_lockout(lockout_json);
  // Only a readable lock that has ended is deleted; an unreadable one keeps failing closed.
  return l.readable && !in_force(l, now_micros);
}

Result<std::optional<TimePoint>> lock_in_force(const ProjectionStore& store,
                                               std::string_view subject, TimePoint now) {
  SECHEX_TRY(auto stored, store.get(kLockoutsCf, subject));
  if (!stored) return std::optional<TimePoint>{};
  const auto l = decode_lockout(*stored);
  if (!in_force(l, micros_of(now))) return std::optional<TimePoint>{};
  if (l.needs_admin_unlock) return std::optional<TimePoint>(TimePoint::max());
  return std::optional<TimePoint>(time_from_micros(l.locked_until.value_or(INT64_MAX)));
}

Result<std::vector<LockRow>> locks_in_force(const ProjectionStore& store,
                                            const std::optional<std::string>& subject,
                                            TimePoint now) {
  const auto now_micros = micros_of(now);
  SECHEX_TRY(auto rows, store.scan(kLockoutsCf, subject ? *subject : std::string()));
  std::vector<LockRow> out;
  for (const auto& [key, value] : rows) {
    if (subject && key != *subject) continue;  // the scan is by prefix
    const auto l = decode_lockout(value);
    if (!in_force(l, now_micros)) continue;
    out.push_back(LockRow{key, l.locked_until_text, l.needs_admin_unlock, l.reason, l.since,
                          l.kept_until_text});
  }
  return out;
}

Result<bool> session_revoked(const ProjectionStore& store, std::string_view id) {
  SECHEX_TRY(auto stored, store.get(kRevokedSessionsCf, id));
  return stored.has_value();
}

Result<std::optional<std::int64_t>> revocation_cutoff(const ProjectionStore& store,
                                                      std::string_view user) {
  SECHEX_TRY(auto stored, store.get(kRevocationCutoffsCf, user));
  if (!stored) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>(decode_cutoff(*stored));
}

bool AccessProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                               std::int64_t now_micros) const {
  return cf == kLockoutsCf && lockout_expired(value, now_micros);
}

Result<void> AccessProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                     Txn& txn) {
  const auto user = env.subject()->str();
  const auto at = env.time_micros();
  switch (env.event_type()) {
    case schema::Event::AccountLocked: {
      const auto* e = env.event_as_AccountLocked();
      nlohmann::json lock{
          {"locked_until", e->locked_until() > 0 ? format_rfc3339(e->locked_until()) : ""},
          {"needs_admin_unlock", e->needs_admin_unlock()},
          {"reason", e->reason() ? e->reason()->str() : ""},
          {"since", format_rfc3339(at)}};
      if (e->needs_admin_unlock() && user.starts_with(kAnonymousSubjectPrefix)) {
        lock["kept_until"] = format_rfc3339(at + kAnonAdminLockKeptMicros);
      }
      txn.put(kLockoutsCf, user, ledger::json_text(lock));
      break;
    }
    case schema::Event::AccountUnlocked:
      txn.del(kLockoutsCf, user);
      break;
    case schema::Event::SessionRevoked:
      if (const auto* e = env.event_as_SessionRevoked(); e->session_id()) {
        txn.put(kRevokedSessionsCf, e->session_id()->str(), format_rfc3339(at));
      }
      break;
    case schema::Event::RefreshTokenReuseDetected:
      if (const auto* e = env.event_as_RefreshTokenReuseDetected(); e->session_id()) {
        txn.put(kRevokedSessionsCf, e->session_id()->str(), format_rfc3339(at));
      }
      break;
    case schema::Event::LoggedOut: {
      const auto* e = env.event_as_LoggedOut();
      if (e->session_id()) txn.put(kRevokedSessionsCf, e->session_id()->str(), format_rfc3339(at));
      if (e->all_sessions()) SECHEX_TRYV(raise_cutoff(txn, user, at));
      break;
    }
    case schema::Event::PasswordChanged:
      if (env.event_as_PasswordChanged()->revoked_other_sessions()) {
        SECHEX_TRYV(raise_cutoff(txn, user, at));
      }
      break;
    case schema::Event::PasswordReset:
    case schema::Event::SubjectErased:
      SECHEX_TRYV(raise_cutoff(txn, user, at));
      break;
    default:
      break;
  }
  return boost::outcome_v2::success();
}

}  // namespace sechex::projections
