#include "projections/sessions.h"

#include <nlohmann/json.hpp>
#include <set>

#include "codec.h"
#include "ledger/utf8.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

using nlohmann::json;

std::string bytes_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(v->data()), v->size());
}
std::string str_of(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

std::int64_t ends_at(const json& s) {
  const auto idle = s.value("idle_expires_at", std::int64_t{0});
  const auto absolute = s.value("absolute_expires_at", std::int64_t{0});
  return absolute > 0 ? std::min(idle, absolute) : idle;
}

// Every read goes through these: an entry over at the event's time counts as absent, which is
// what makes cleanup invisible to later events (projection.h). Entries of another subject
// count as absent too: apply() for one partition must touch only its own subjects' state, or
// partitions applied in parallel would race and a rebuild could order them differently.
Result<std::optional<json>> live_session(Txn& txn, const std::string& id, const std::string& user,
                                         std::int64_t at) {
  if (id.empty()) return std::optional<json>();
  SECHEX_TRY(auto stored, txn.get(kSessionsCf, id));
  if (!stored) return std::optional<json>();
  auto s = json::parse(*stored, nullptr, false);
  if (s.is_discarded() || !s.is_object()) return make_error_code(ledger::Errc::corruption);
  if (at >= ends_at(s) || s.value("user", "") != user) return std::optional<json>();
  return std::optional<json>(std::move(s));
}

Result<std::optional<json>> live_token(Txn& txn, const std::string& hash, const std::string& user,
                                       std::int64_t at) {
  if (hash.empty()) return std::optional<json>();
  SECHEX_TRY(auto stored, txn.get(kRefreshTokensCf, hash));
  if (!stored) return std::optional<json>();
  auto t = json::parse(*stored, nullptr, false);
  if (t.is_discarded() || !t.is_object()) return make_error_code(ledger::Errc::corruption);
  if (at >= t.value("expires_at", std::int64_t{0}) || t.value("user", "") != user) {
    return std::optional<json>();
  }
  return std::optional<json>(std::move(t));
}

void store_session(Txn& txn, const std::string& id, const json& s) {
  txn.put(kSessionsCf, id, ledger::json_text(s));
  txn.put(kSessionsByUserCf, sessions_user_prefix(s.value("user", "")) + id,
          codec::be64(ends_at(s)));
}

void add_token(Txn& txn, const std::string& hash, const std::string& family,
               const std::string& session, const std::string& user, std::int64_t at) {
  if (hash.empty()) return;
  const auto expires = at + kRefreshTokenMicros;
  json t{{"family", family},   {"session", session}, {"user", user},
         {"state", "current"}, {"issued_at", at},    {"expires_at", expires}};
  txn.put(kRefreshTokensCf, hash, ledger::json_text(t));
  if (!family.empty()) txn.put(kRefreshFamiliesCf, codec::lp(family) + hash, codec::be64(expires));
}

Result<void> end_session(Txn& txn, const std::string& id, const std::string& user, std::int64_t at,
                         const char* state, const std::string& reason) {
  SECHEX_TRY(auto s, live_session(txn, id, user, at));
  if (!s || (*s)["state"] != "active") return boost::outcome_v2::success();  // first end wins
  (*s)["state"] = state;
  (*s)["ended_at"] = at;
  (*s)["end_reason"] = reason;
  store_session(txn, id, *s);
  return boost::outcome_v2::success();
}

Result<void> end_all_sessions(Txn& txn, const std::string& user, std::int64_t at, const char* state,
                              const std::string& reason) {
  const auto prefix = sessions_user_prefix(user);
  SECHEX_TRY(auto rows, txn.scan(kSessionsByUserCf, prefix));
  for (const auto& [key, value] : rows) {
    if (value.size() != 8 || at >= codec::get_be64(value)) continue;
    SECHEX_TRYV(end_session(txn, key.substr(prefix.size()), user, at, state, reason));
  }
  return boost::outcome_v2::success();
}

Result<void> revoke_family(Txn& txn, const schema::RefreshTokenReuseDetected& e,
                           const std::string& user, std::int64_t at) {
  const auto presented = bytes_of(e.token_hash());
  std::set<std::string> sessions;
  if (e.session_id() != nullptr) sessions.insert(e.session_id()->str());
  std::string family = str_of(e.family_id());
  SECHEX_TRY(auto reused, live_token(txn, presented, user, at));
  if (family.empty() && reused) family = reused->value("family", "");
  std::vector<std::string> hashes;
  if (!presented.empty()) hashes.push_back(presented);
  if (!family.empty()) {
    const auto prefix = codec::lp(family);
    SECHEX_TRY(auto rows, txn.scan(kRefreshFamiliesCf, prefix));
    for (const auto& [key, value] : rows) {
      if (value.size() == 8 && at < codec::get_be64(value)) {
        hashes.push_back(key.substr(prefix.size()));
      }
    }
  }
  for (const auto& h : hashes) {
    SECHEX_TRY(auto t, live_token(txn, h, user, at));
    if (!t) continue;
    sessions.insert(t->value("session", ""));
    if ((*t)["state"] == "revoked") continue;
    (*t)["state"] = "revoked";
    txn.put(kRefreshTokensCf, h, ledger::json_text(*t));
  }
  for (const auto& id : sessions) {
    SECHEX_TRYV(end_session(txn, id, user, at, "revoked", "refresh_token_reuse"));
  }
  return boost::outcome_v2::success();
}

}  // namespace

std::string sessions_user_prefix(std::string_view user) { return codec::lp(user); }

Result<std::optional<std::int64_t>> session_end(const ProjectionStore& store, const UserId& user,
                                                const SessionId& session) {
  SECHEX_TRY(auto v,
             store.get(kSessionsByUserCf, sessions_user_prefix(user.str()) + session.str()));
  if (!v) return std::optional<std::int64_t>();
  if (v->size() != 8) return make_error_code(ledger::Errc::corruption);
  return std::optional<std::int64_t>(codec::get_be64(*v));
}

std::int64_t session_ends_at(std::string_view session_json) {
  const auto s = json::parse(session_json, nullptr, false);
  if (s.is_discarded() || !s.is_object()) return INT64_MIN;
  return ends_at(s);
}

bool is_session_active(std::string_view session_json, std::int64_t now_micros) {
  const auto s = json::parse(session_json, nullptr, false);
  if (s.is_discarded() || !s.is_object()) return false;  // unreadable state fails closed
  return s.value("state", "") == "active" && now_micros < ends_at(s);
}

bool SessionsProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                                 std::int64_t now_micros) const {
  if (cf == kSessionsCf) {
    const auto ends = session_ends_at(value);
    return ends != INT64_MIN && now_micros - kEndedSessionKept.count() >= ends;
  }
  if (cf == kRefreshTokensCf) {
    const auto t = json::parse(value, nullptr, false);
    if (t.is_discarded() || !t.is_object() || !t.contains("expires_at")) return false;
    return now_micros >= t.value("expires_at", std::int64_t{0});
  }
  if (cf == kSessionsByUserCf) {
    return value.size() == 8 && now_micros - kEndedSessionKept.count() >= codec::get_be64(value);
  }
  if (cf == kRefreshFamiliesCf) {
    return value.size() == 8 && now_micros >= codec::get_be64(value);
  }
  return false;
}

Result<void> SessionsProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                       Txn& txn) {
  const auto user = env.subject()->str();
  const auto at = env.time_micros();
  switch (env.event_type()) {
    case schema::Event::SessionStarted: {
      const auto* e = env.event_as_SessionStarted();
      const auto id = str_of(e->session_id());
      if (id.empty()) break;
      const auto idle = e->idle_expires_at() > 0
                            ? e->idle_expires_at()
                            : at + (e->remember_me() ? kRememberMeIdleMicros : kSessionIdleMicros);
      json s{{"user", user},
             {"family", str_of(e->family_id())},
             {"created_at", at},
             {"last_seen", at},
             {"idle_expires_at", idle},
             {"absolute_expires_at", e->absolute_expires_at()},
             {"remember_me", e->remember_me()},
             {"state", "active"},
             {"ended_at", 0},
             {"end_reason", ""}};
      store_session(txn, id, s);
      add_token(txn, bytes_of(e->refresh_token_hash()), str_of(e->family_id()), id, user, at);
      break;
    }
    case schema::Event::TokenRefreshed: {
      const auto* e = env.event_as_TokenRefreshed();
      const auto id = str_of(e->session_id());
      SECHEX_TRY(auto s, live_session(txn, id, user, at));
      if (!s || (*s)["state"] != "active") break;  // the API refused it; nothing to record
      const auto previous = bytes_of(e->previous_token_hash());
      SECHEX_TRY(auto prev, live_token(txn, previous, user, at));
      if (prev && (*prev)["state"] == "current") {
        (*prev)["state"] = "rotated";
        txn.put(kRefreshTokensCf, previous, ledger::json_text(*prev));
      }
      const auto family =
          e->family_id() != nullptr ? e->family_id()->str() : s->value("family", "");
      add_token(txn, bytes_of(e->refresh_token_hash()), family, id, user, at);
      (*s)["last_seen"] = at;
      (*s)["idle_expires_at"] =
          e->idle_expires_at() > 0
              ? e->idle_expires_at()
              : at + (s->value("remember_me", false) ? kRememberMeIdleMicros : kSessionIdleMicros);
      store_session(txn, id, *s);
      break;
    }
    case schema::Event::SessionSeen: {
      const auto* e = env.event_as_SessionSeen();
      const auto id = str_of(e->session_id());
      SECHEX_TRY(auto s, live_session(txn, id, user, at));
      if (!s || (*s)["state"] != "active") break;
      (*s)["last_seen"] = at;
      // Activity never shortens a session (a late event cannot undo a refresh's extension).
      const auto idle = s->value("idle_expires_at", std::int64_t{0});
      if (e->idle_expires_at() > idle) (*s)["idle_expires_at"] = e->idle_expires_at();
      store_session(txn, id, *s);
      break;
    }
    case schema::Event::RefreshTokenReuseDetected:
      SECHEX_TRYV(revoke_family(txn, *env.event_as_RefreshTokenReuseDetected(), user, at));
      break;
    case schema::Event::SessionRevoked: {
      const auto* e = env.event_as_SessionRevoked();
      const auto reason = str_of(e->reason());
      SECHEX_TRYV(end_session(txn, str_of(e->session_id()), user, at, "revoked",
                              reason.empty() ? "revoked" : reason));
      break;
    }
    case schema::Event::LoggedOut: {
      const auto* e = env.event_as_LoggedOut();
      SECHEX_TRYV(end_session(txn, str_of(e->session_id()), user, at, "logged_out", "logout"));
      if (e->all_sessions()) {
        SECHEX_TRYV(end_all_sessions(txn, user, at, "logged_out", "logout_all"));
      }
      break;
    }
    case schema::Event::PasswordChanged:
      if (env.event_as_PasswordChanged()->revoked_other_sessions()) {
        SECHEX_TRYV(end_all_sessions(txn, user, at, "revoked", "password_changed"));
      }
      break;
    case schema::Event::PasswordReset:
      SECHEX_TRYV(end_all_sessions(txn, user, at, "revoked", "password_reset"));
      break;
    case schema::Event::SubjectErased:
      SECHEX_TRYV(end_all_sessions(txn, user, at, "revoked", "subject_erased"));
      break;
    default:
      break;
  }
  return boost::outcome_v2::success();
}

std::int64_t SessionRow::ends_at() const {
  return absolute_expires_at > 0 ? std::min(idle_expires_at, absolute_expires_at) : idle_expires_at;
}

bool SessionRow::active_at(TimePoint now) const {
  return state == "active" && micros_of(now) < ends_at();
}

namespace {
// A stored session value as a row; corruption when it does not decode.
Result<SessionRow> decode_session_row(std::string_view stored) {
  const auto s = json::parse(stored, nullptr, false);
  if (!s.is_object()) return ledger::Errc::corruption;
  SessionRow row;
  try {
    row.user = s.value("user", "");
    row.family = s.value("family", "");
    row.created_at = s.value("created_at", std::int64_t{0});
    row.last_seen = s.value("last_seen", std::int64_t{0});
    row.idle_expires_at = s.value("idle_expires_at", std::int64_t{0});
    row.absolute_expires_at = s.value("absolute_expires_at", std::int64_t{0});
    row.remember_me = s.value("remember_me", false);
    row.state = s.value("state", "");
    row.ended_at = s.value("ended_at", std::int64_t{0});
    row.end_reason = s.value("end_reason", "");
  } catch (const json::exception&) {
    return ledger::Errc::corruption;  // a field of the wrong type
  }
  return row;
}
}  // namespace

Result<std::optional<SessionRow>> session_row(const ProjectionStore& store, std::string_view id) {
  SECHEX_TRY(auto stored, store.get(kSessionsCf, id));
  if (!stored) return std::optional<SessionRow>{};
  SECHEX_TRY(auto row, decode_session_row(*stored));
  return std::optional<SessionRow>(std::move(row));
}

Result<std::vector<std::pair<std::string, SessionRow>>> active_sessions(
    const ProjectionStore& store, std::string_view user, TimePoint now) {
  const auto now_micros = micros_of(now);
  const auto prefix = sessions_user_prefix(user);
  SECHEX_TRY(auto rows, store.scan(kSessionsByUserCf, prefix));
  std::vector<std::pair<std::string, SessionRow>> out;
  for (const auto& [key, value] : rows) {
    if (value.size() != 8 || now_micros >= codec::get_be64(value)) continue;
    auto id = key.substr(prefix.size());
    auto row = session_row(store, id);
    // A row that does not decode is left out of the list, as before typed rows; a read error
    // fails the whole answer.
    if (!row && row.error() != ledger::Errc::corruption) return row.error();
    if (row && row.value() && row.value()->active_at(now)) {
      out.emplace_back(std::move(id), std::move(*row.value()));
    }
  }
  return out;
}

Result<std::vector<std::pair<std::string, SessionRow>>> all_active_sessions(
    const ProjectionStore& store, TimePoint now) {
  SECHEX_TRY(auto all, store.scan(kSessionsCf, ""));
  std::vector<std::pair<std::string, SessionRow>> out;
  for (auto& [id, stored] : all) {
    auto row = decode_session_row(stored);  // the scan has the value: no second read
    if (row && row.value().active_at(now)) out.emplace_back(std::move(id), std::move(row).value());
  }
  return out;
}

Result<RefreshTokenStatus> refresh_token_status(const ProjectionStore& store,
                                                std::string_view token_hash, TimePoint now) {
  RefreshTokenStatus out;
  SECHEX_TRY(auto stored, store.get(kRefreshTokensCf, token_hash));
  if (!stored) return out;
  const auto t = json::parse(*stored, nullptr, false);
  if (t.is_discarded() || !t.is_object()) return make_error_code(ledger::Errc::corruption);
  if (micros_of(now) >= t.value("expires_at", std::int64_t{0})) return out;
  const auto state = t.value("state", "");
  out.state = state == "current"   ? RefreshTokenStatus::State::current
              : state == "rotated" ? RefreshTokenStatus::State::rotated
                                   : RefreshTokenStatus::State::revoked;
  out.session_id = t.value("session", "");
  out.family_id = t.value("family", "");
  out.user = t.value("user", "");
  return out;
}

}  // namespace sechex::projections
