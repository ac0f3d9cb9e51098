#include "api/routes/account_api.h"

#include "api/routes/otp_api.h"
#include "identity_support.h"
#include "ledger/export.h"
#include "ledger/utf8.h"
#include "projections/audit.h"

namespace sechex::api {

using namespace identity_support;

namespace {

constexpr std::size_t kMaxExportedEvents = 10000;

// The seconds a password reset may be asked for per IP (the IP limit reveals nothing about an
// account) and per account (silently: the answer must not differ).
constexpr std::uint32_t kResetRequestsPerUser = 3;

}  // namespace

AccountApi::AccountApi(IdentityDeps deps, IdentityConfig config)
    : d_(std::move(deps)),
      config_(std::move(config)),
      forgot_limiter_(config_.limits.mail_requests_per_ip,
                      config_.limits.mail_request_ip_window_micros) {}

void AccountApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.guarded(
      "POST", "/v1/auth/password/change",
      [this](const Request& r, W w) { return change_password(r, w); }, Exec::pool);
  routes.open(
      "POST", "/v1/auth/password/forgot", [this](const Request& r) { return forgot_password(r); },
      Exec::pool);
  routes.open(
      "POST", "/v1/auth/password/reset", [this](const Request& r) { return reset_password(r); },
      Exec::pool);
  routes.guarded(
      "GET", "/v1/me/export", [this](const Request& r, W w) { return export_me(r, w); },
      Exec::read);
  routes.guarded(
      "DELETE", "/v1/me", [this](const Request& r, W w) { return erase_me(r, w); }, Exec::pool);
}

// ---- Change (004 FR-021..FR-023, FR-027) ----
Response AccountApi::change_password(const Request& req, const Principal& who) {
  RequestContext x(d_, config_, req);
  const auto user = who.subject;
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto current, required_string(body, "currentPassword"));
  SECHEX_TRY(const auto next, required_string(body, "newPassword"));
  const auto record = account_of(x.store(), user);
  if (!record) return json_error(404, "not_found", "no account for this token");
  const auto p = x.partition_of(user);
  if (!d_.commands.ownership().owns(p)) {
    return command_failed(OwnershipErrc::not_owner, d_.commands.ownership(), p);
  }
  auto phc = x.open_sealed(user, record->password_hash, "password_hash");
  if (!phc) return retry_later(503, "unavailable", "cannot read the account", 1);
  auto ok = d_.hasher.verify(phc.value(), current);
  if (!ok && ok.error() != PasswordErrc::too_long) {
    return command_failed(ok.error(), d_.commands.ownership(), p);
  }
  const bool current_ok = ok && ok.value();
  std::optional<std::string> new_phc;
  if (current_ok) {
    auto address = x.open_sealed(user, record->email, "email");
    SECHEX_TRYV(check_new_password(x.store(), next, address ? address.value() : std::string()));
    auto hashed = d_.hasher.hash(next);
    if (!hashed) return command_failed(hashed.error(), d_.commands.ownership(), p);
    new_phc = std::move(hashed).value();
  }
  const auto session = new_session(d_.lookup);
  if (!session) return json_error(500, "internal_error", "no randomness");
  const auto verified_event = record->password_hash.event_id;
  identity::LoginDecision decision;
  bool stale = false;
  auto ran = x.run(p, [&]() -> Result<Events> {
    const auto rec = account_of(x.store(), user);
    if (!rec || rec->password_hash.event_id != verified_event) {
      stale = true;
      return Events{};
    }
    identity::LoginState s;  // no IP limit: the caller holds a session already
    SECHEX_TRY(s.account, login_account(x, user, *rec));
    s.account->email_verified = true;  // the caller signed in, so it was verified
    s.password_ok = current_ok;
    decision = identity::decide_login(s, config_.limits, x.now);
    Events out;
    SECHEX_TRYV(record_password_attempt(x, user, "", decision, "", "_on_password_change", out));
    if (decision.outcome != identity::LoginOutcome::ok) return out;
    SECHEX_TRY(auto changed,
               x.event(user, user, [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                 SECHEX_TRY(auto sealed, b.seal("password_hash", *new_phc));
                 return b.finish(schema::CreatePasswordChanged(b.fbb(), sealed, true));
               }));
    out.push_back(std::move(changed));
    // Every session ends (the cutoff); the caller continues in a fresh one.
    SECHEX_TRY(auto started, x.event(user, user, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateSessionStarted(
          f, f.CreateString(session->session.str()), f.CreateString(session->family),
          bytes(f, session->refresh_hash), false,
          identity::idle_expiry(false, config_.limits, x.now), 0));
    }));
    out.push_back(std::move(started));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (stale) return retry_later(503, "unavailable", "the password changed meanwhile; retry", 1);
  switch (decision.outcome) {
    case identity::LoginOutcome::ok:
      return x.token_pair(UserId(user), session->session, session->refresh_token);
    case identity::LoginOutcome::locked:
      return account_locked(decision.locked_until, decision.retry_after_seconds);
    default:
      break;
  }
  return json_error(401, "invalid_credentials", "the current password is incorrect",
                    json{{"remainingAttempts", decision.remaining_attempts}}.dump());
}

// ---- Forgot: 202 whatever the address (004 FR-024, FR-026) ----
Response AccountApi::forgot_password(const Request& req) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRYV(admit_client(x, forgot_limiter_, projections::kScopeResetRequestIp));
  return accept_for_address(x, email, [this](auto& later, const auto& user) {
    if (!user) return;  // nobody to mail
    auto token = identity::random_token(32);
    if (!token) return;
    const auto token_hash = d_.lookup.token(projections::kPurposePasswordReset, token.value());
    mail_secret(
        later, *user,
        {"password_reset", token.value(), *user, projections::kScopeResetRequestUser,
         identity::kHourMicros, kResetRequestsPerUser},
        // FR-026: only to verified addresses, and never for an erased account.
        [](const projections::UserRow& rec) { return rec.email_verified && rec.active(); },
        [&](ledger::EventBuilder& b) {
          auto& fb = b.fbb();
          return b.finish(schema::CreatePasswordResetRequested(
              fb, bytes(fb, token_hash), later.now + config_.limits.reset_token_micros));
        });
  });
}

// ---- Reset (004 FR-025, FR-027, FR-028, FR-040; scenarios 10-12) ----
Response AccountApi::reset_password(const Request& req) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto token, required_string(body, "token"));
  SECHEX_TRY(const auto next, required_string(body, "newPassword"));
  const auto hash = d_.lookup.token(projections::kPurposePasswordReset, token);
  const auto invalid = [] {
    return json_error(400, "token_invalid",
                      "this reset link is not valid (already used, or replaced by a newer one); "
                      "request a new one");
  };
  const auto expired = [] {
    return json_error(410, "token_expired", "this reset link has expired; request a new one");
  };
  auto found = projections::one_time_token(x.store(), hash);
  if (!found) return retry_later(503, "unavailable", "cannot read the token", 1);
  if (!found.value() || found.value()->purpose != projections::kPurposePasswordReset) {
    return invalid();
  }
  const auto user = found.value()->user;
  // Answer an expired or spent link before spending a hash on the new password.
  const auto early =
      identity::decide_link({true, found.value()->state == projections::OneTimeToken::State::live,
                             found.value()->expires_at},
                            x.now);
  if (early == identity::LinkOutcome::expired) return expired();
  if (early == identity::LinkOutcome::invalid) return invalid();
  const auto record = account_of(x.store(), user);
  if (!record) return invalid();
  auto address = x.open_sealed(user, record->email, "email");
  if (!address) return invalid();  // erased meanwhile
  SECHEX_TRYV(check_new_password(x.store(), next, address.value()));
  const auto p = x.partition_of(user);
  if (!d_.commands.ownership().owns(p)) {
    return command_failed(OwnershipErrc::not_owner, d_.commands.ownership(), p);
  }
  auto phc = d_.hasher.hash(next);
  if (!phc) return command_failed(phc.error(), d_.commands.ownership(), p);
  auto outcome = identity::LinkOutcome::invalid;
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto t, projections::one_time_token(x.store(), hash));
    identity::LinkToken link;
    if (t) link = {true, t->state == projections::OneTimeToken::State::live, t->expires_at};
    outcome = identity::decide_link(link, x.now);
    if (outcome != identity::LinkOutcome::ok) return Events{};
    Events out;
    SECHEX_TRY(
        auto reset, x.event(user, user, [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
          SECHEX_TRY(auto sealed, b.seal("password_hash", phc.value()));
          return b.finish(schema::CreatePasswordReset(b.fbb(), bytes(b.fbb(), hash), sealed));
        }));
    out.push_back(std::move(reset));
    // The owner has just proved control of the address: a lockout from wrong passwords ends
    // with the reset, the way to recover without waiting it out. An admin lock stays.
    const auto lock = locked_until(x.store(), user, x.now);
    if (lock && *lock != INT64_MAX) {
      SECHEX_TRY(auto unlocked, x.event(user, user, [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateAccountUnlocked(f, false, f.CreateString("password_reset")));
      }));
      out.push_back(std::move(unlocked));
    }
    SECHEX_TRYV(x.queue_mail(out, user, "password_reset_done", address.value(), ""));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  switch (outcome) {
    case identity::LinkOutcome::ok:
      if (d_.mail_queued) d_.mail_queued();
      return json_ok(json{{"status", "password_reset"}}.dump());
    case identity::LinkOutcome::expired:
      return expired();
    case identity::LinkOutcome::invalid:
      break;
  }
  return invalid();
}

// ---- GDPR access (004 FR-036) ----
Response AccountApi::export_me(const Request& req, const Principal& who) {
  RequestContext x(d_, config_, req);
  const auto user = who.subject;
  const auto record = account_of(x.store(), user);
  if (!record) return json_error(404, "not_found", "no account for this token");
  const auto profile = profile_json(x, user, *record);
  json sessions = json::array();
  if (auto active = projections::active_sessions(x.store(), user, x.now)) {
    for (const auto& [id, s] : active.value()) {
      sessions.push_back(json{{"sessionId", id}, {"session", session_json(s)}});
    }
  }
  // The caller's own events, through the per-subject audit index, with sealed fields opened.
  json events = json::array();
  bool truncated = false;
  std::vector<ledger::Position> positions;
  projections::AuditScan mine;
  mine.subject = user;
  auto walked =
      projections::for_each_audit_entry(x.store(), mine, [&](const projections::AuditEntry& entry) {
        if (positions.size() == kMaxExportedEvents) {
          truncated = true;
          return false;
        }
        positions.push_back(entry.position);
        return true;
      });
  if (!walked) return retry_later(503, "unavailable", "cannot read the audit index", 1);
  auto& log = d_.commands.log();
  for (const auto& pos : positions) {
    auto records = log.read_range(pos.partition, pos.seq, ledger::Seq{pos.seq.value + 1}, 1);
    if (!records || records.value().empty()) continue;  // dropped by retention
    // One unrenderable record is marked in its place (export.h), never dropped in silence.
    events.push_back(ledger::render_record(records.value().front(), &d_.keys));
  }
  return json_ok(ledger::json_text(json{{"profile", profile},
                                        {"sessions", sessions},
                                        {"events", events},
                                        {"truncated", truncated},
                                        {"exportedAt", format_rfc3339(x.now)}}));
}

// ---- GDPR erasure with step-up (002 "Account deletion requires re-auth", 004 FR-036) ----
Response AccountApi::erase_me(const Request& req, const Principal& caller) {
  RequestContext x(d_, config_, req);
  const auto user = caller.subject;
  const auto reauth_required = [] {
    return json_error(403, "reauth_required",
                      "deleting the account needs a re-authentication within the last 5 minutes",
                      json{{"reauthUrl", "/v1/auth/reauth"}}.dump());
  };
  const auto* presented = req.header("x-reauth-token");
  if (presented == nullptr || presented->empty()) return reauth_required();
  if (!reauth_granted(x.store(), d_.lookup, caller, *presented, x.now)) return reauth_required();
  const auto p = x.partition_of(user);
  auto ran = d_.commands.run_locked(p, [&]() -> Result<void> {
    SECHEX_TRY(auto erased, d_.keys.is_erased(user));
    if (erased) return boost::outcome_v2::success();
    SECHEX_TRY(auto appended, d_.keys.erase(user, user, "gdpr_erasure_request", x.now));
    (void)appended;
    return boost::outcome_v2::success();
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  return json_ok(json{{"status", "erased"}}.dump());
}

}  // namespace sechex::api
