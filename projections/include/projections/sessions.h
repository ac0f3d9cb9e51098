// Sessions and refresh-token families: which logins are alive, and which refresh token of a
// family is the one that may be used next (API.md: rotation; reusing a rotated token revokes
// the whole family).
//
//   sessions          session id -> JSON {"user","family","created_at","last_seen",
//                     "idle_expires_at","absolute_expires_at","remember_me","state",
//                     "ended_at","end_reason"}   (times in micros; absolute 0 = none;
//                     state "active" | "revoked" | "logged_out"; ended_* 0/"" while active)
//   sessions_by_user  lp(user) || session id -> be64(end of life), the session's current
//                     ends_at(), kept equal to it on every refresh
//   refresh_tokens    token hash -> JSON {"family","session","user","state","issued_at",
//                     "expires_at"}   (state "current" | "rotated" | "revoked")
//   refresh_families  lp(family) || token hash -> be64(token expiry)
// where lp(x) = be32(len(x)) || x. Keys hold only opaque ids and keyed hashes.
//
// Events: SessionStarted creates a session and its first token; TokenRefreshed marks the
// previous token rotated, adds the new one and moves last_seen and the idle expiry;
// SessionSeen (authenticated activity, at most once a minute per session) moves last_seen and
// extends the idle expiry; RefreshTokenReuseDetected revokes every token of the family and every
// session they belong to; SessionRevoked and LoggedOut end one session, LoggedOut{all_sessions},
// PasswordReset and SubjectErased end all of the user's sessions, and so does PasswordChanged with
// revoked_other_sessions (the event does not name the caller's session, and the access
// projection's cutoff already invalidates every token issued before it; the API starts a fresh
// session for the caller).
//
// Lifetimes (API.md): idle 24 h, 7 d with rememberMe, used when an event carries no idle
// expiry of its own; refresh tokens 7 d from issue. An ended session stays (state says why)
// until its natural end of life, so /v1/me/sessions and replays can tell "revoked" from
// "expired"; a rotated or revoked token stays until its own expiry so that its reuse is still
// recognised. Every entry carries its end of life, and expired()/cleanup delete it afterwards;
// apply() ignores entries already over at the event's time (projection.h). A session row is
// deleted (with its sessions_by_user entry) only kEndedSessionKept after its end: the
// Authenticator refuses access tokens of a session whose row says it is over, and an access token
// (1 h) issued before the end must still find that row (with an idle window shorter than the token,
// --session-idle).
#pragma once

#include "projections/ids.h"
#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kSessionsCf = "sessions";
// At least the longest access-token lifetime (identity::Limits::access_token_ttl, 1 h).
inline constexpr Micros kEndedSessionKept = std::chrono::hours{1};
inline constexpr const char* kSessionsByUserCf = "sessions_by_user";
inline constexpr const char* kRefreshTokensCf = "refresh_tokens";
inline constexpr const char* kRefreshFamiliesCf = "refresh_families";

inline constexpr std::int64_t kSessionIdleMicros = 24LL * 3600 * 1'000'000;
inline constexpr std::int64_t kRememberMeIdleMicros = 7LL * 24 * 3600 * 1'000'000;
inline constexpr std::int64_t kRefreshTokenMicros = 7LL * 24 * 3600 * 1'000'000;

class SessionsProjection final : public Projection {
 public:
  std::string name() const override { return "sessions"; }
  std::vector<std::string> column_families() const override {
    return {kSessionsCf, kSessionsByUserCf, kRefreshTokensCf, kRefreshFamiliesCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override { return column_families(); }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

// Key prefix of one user's entries in sessions_by_user (append the session id for one entry).
std::string sessions_user_prefix(std::string_view user);

// The end of `session` of `user` as sessions_by_user keeps it (its ends_at(), no JSON to parse:
// the Authenticator reads it on every request), or nullopt when there is no such entry.
Result<std::optional<std::int64_t>> session_end(const ProjectionStore& store, const UserId& user,
                                                const SessionId& session);

// When a stored session value stops being usable whatever its state: the earlier of its idle
// and absolute expiry; INT64_MIN when unreadable.
std::int64_t session_ends_at(std::string_view session_json);
// Whether a stored session value is a live session at `now_micros` (active and not expired).
bool is_session_active(std::string_view session_json, std::int64_t now_micros);

// One `sessions` row (times in micros).
struct SessionRow {
  std::string user;
  std::string family;
  std::int64_t created_at = 0;
  std::int64_t last_seen = 0;
  std::int64_t idle_expires_at = 0;
  std::int64_t absolute_expires_at = 0;  // 0 = none
  bool remember_me = false;
  std::string state;  // "active" | "revoked" | "logged_out"
  std::int64_t ended_at = 0;
  std::string end_reason;

  // When the session stops being usable whatever its state: the earlier of its expiries.
  std::int64_t ends_at() const;
  // Active and not expired at `now`.
  bool active_at(TimePoint now) const;
};

// The row of session `id`: nullopt when there is none; Errc::corruption when it does not decode.
Result<std::optional<SessionRow>> session_row(const ProjectionStore& store, std::string_view id);

// The user's sessions that are active at `now`, by id.
Result<std::vector<std::pair<std::string, SessionRow>>> active_sessions(
    const ProjectionStore& store, std::string_view user, TimePoint now);
// Everyone's (ledgerctl replay), by id; rows that do not decode are left out.
Result<std::vector<std::pair<std::string, SessionRow>>> all_active_sessions(
    const ProjectionStore& store, TimePoint now);

// What a presented refresh token means at `now`.
struct RefreshTokenStatus {
  enum class State {
    unknown,  // never issued, or expired (the API answers invalid_token)
    current,  // usable if its session is active
    rotated,  // already exchanged: presenting it again is reuse (revoke the family)
    revoked,  // its family was revoked
  };
  State state = State::unknown;
  std::string session_id;
  std::string family_id;
  std::string user;
};
Result<RefreshTokenStatus> refresh_token_status(const ProjectionStore& store,
                                                std::string_view token_hash, TimePoint now);

}  // namespace sechex::projections
