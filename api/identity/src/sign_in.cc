// The commands that start or continue a session: login by password or code, refresh, logout,
// password change and reset.
#include "api/identity/commands.h"
#include "command_context.h"

namespace sechex::api::identity {

using namespace detail;

// Every refresh token of a session outlives no access token of it: the Authenticator refuses an
// ended session's tokens by its row, and a token without a row passes (operator tokens).
static_assert(Limits{}.access_token_ttl <= projections::kEndedSessionKept);

// ---- Login (004 FR-008..FR-012, API.md) ----
Outcome<SignedIn> IdentityCommands::login(const Caller& c, std::string_view email,
                                          Password password, bool remember_me) {
  Context x(d_, config_, c);
  // An address that is not even valid is looked up like any other, so it is answered like an
  // unknown one.
  const auto address = address_subject(email);
  const auto& subject = address.id;
  const auto p = x.partition_of(subject);
  SECHEX_TRYV(x.check_owner(p));

  // The expensive part, before the partition is taken. An unknown email costs the same.
  PasswordCheckResult checked;
  std::optional<std::string> rehashed;
  std::optional<projections::UserRow> record;
  if (address.user) record = account_of(x.store(), *address.user);
  if (record && !record->password_hash.empty()) {
    SECHEX_TRY(checked, check_password_of(x, *address.user, *record, password, p));
    if (checked.ok && d_.hasher.needs_rehash(checked.phc)) {
      if (auto h = d_.hasher.hash(password)) rehashed = std::move(h).value();
    }
  } else {
    auto dummy = d_.hasher.verify_dummy(password);
    if (!dummy && dummy.error() != PasswordErrc::too_long) return x.failed(dummy.error(), p);
  }

  const auto fresh = new_session(d_.lookup);
  if (!fresh) return Refused::internal;
  LoginDecision decision;
  bool stale = false;
  std::vector<std::string> roles;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    auto& store = x.store();
    LoginState s;
    SECHEX_TRY(const auto ip,
               projections::rate_window(store, projections::kScopeLoginAttemptIp, c.ip_hash, x.now,
                                        config_.limits.login_ip_window,
                                        config_.limits.login_attempts_per_ip));
    s.ip_attempts = ip.count;
    s.ip_window_frees_at = ip.below_limit_at;
    if (address.user) {
      if (const auto rec = account_of(store, *address.user)) {
        if (rec->password_hash.event_id != checked.against) {
          stale = true;  // the password changed while we were checking the old one
          return Events{};
        }
        SECHEX_TRY(s.account, login_account(x, *address.user, *rec));
        roles = rec->roles;
      }
    } else {
      SECHEX_TRY(s.unknown_email_failures, projections::login_failures(store, subject, x.now));
      s.unknown_email_locked_until = locked_until(store, subject, x.now);
    }
    s.password_ok = checked.ok;
    decision = decide_login(s, config_.limits, x.now);
    Events out;
    if (decision.outcome == LoginOutcome::rate_limited) {
      SECHEX_TRY(auto limited, x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateRateLimited(
            f, f.CreateString(projections::kScopeLoginAttemptIp), bytes(f, c.ip_hash),
            static_cast<std::uint32_t>(decision.retry_after_seconds)));
      }));
      out.push_back(std::move(limited));
      return out;
    }
    SECHEX_TRYV(record_password_attempt(x, subject, address.email_hash, decision, "", "", out));
    if (decision.outcome != LoginOutcome::ok) return out;
    SECHEX_TRYV(start_session(x, subject, *fresh, remember_me, schema::LoginMethod::Password, out));
    if (rehashed) {
      // Parameters changed since this hash was made: store the current kind, keep sessions.
      SECHEX_TRY(
          auto changed,
          x.event(subject, Actor::system(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
            SECHEX_TRY(auto sealed, b.seal("password_hash", *rehashed));
            return b.finish(schema::CreatePasswordChanged(b.fbb(), sealed, false));
          }));
      out.push_back(std::move(changed));
    }
    return out;
  }));
  if (stale) return Refused::password_changed;
  if (decision.outcome != LoginOutcome::ok) {
    return login_refusal(decision, Refused::invalid_credentials);
  }
  return x.signed_in(subject, roles, fresh->session, fresh->refresh_token);
}

// ---- Sign in with a code (002 OTP expiration, rate limiting, lockout) ----
Outcome<SignedIn> IdentityCommands::sign_in_with_code(const Caller& c, std::string_view email,
                                                      OtpCode code, bool remember_me) {
  Context x(d_, config_, c);
  const auto subject = address_subject(email);
  const auto p = x.partition_of(subject.id);
  SECHEX_TRYV(x.check_owner(p));
  const auto session = new_session(d_.lookup);
  if (!session) return Refused::internal;
  OtpDecision decision;
  std::vector<std::string> roles;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    Events out;
    const auto account =
        subject.user ? account_of(x.store(), *subject.user) : std::optional<projections::UserRow>();
    SECHEX_TRY(decision, check_code(x, subject, account, OtpPurpose::login, code, out));
    if (decision.outcome != OtpOutcome::ok) return out;
    if (account) roles = account->roles;
    SECHEX_TRYV(start_session(x, subject.id, *session, remember_me, schema::LoginMethod::Otp, out));
    return out;
  }));
  after_code_decision(x, decision, subject.id, subject.user.has_value());
  if (decision.outcome != OtpOutcome::ok) return code_refusal(decision, x.now);
  return x.signed_in(subject.id, roles, session->session, session->refresh_token);
}

// ---- Refresh: rotation with reuse detection (004 FR-018, FR-020) ----
Result<std::optional<RefreshHolder>> IdentityCommands::refresh_holder(std::string_view token,
                                                                      TimePoint now) const {
  SECHEX_TRY(auto st, projections::refresh_token_status(d_.commands.projections(),
                                                        d_.lookup.token("refresh", token), now));
  using S = projections::RefreshTokenStatus::State;
  if (st.state == S::unknown) return std::optional<RefreshHolder>();
  return std::optional<RefreshHolder>(
      RefreshHolder{UserId(st.user), SessionId(st.session_id), st.state == S::current});
}

bool IdentityCommands::session_live(const SessionId& session, TimePoint now) const {
  auto row = projections::session_row(d_.commands.projections(), session.str());
  return row && row.value() && row.value()->active_at(now);
}

Outcome<SignedIn> IdentityCommands::refresh(const Caller& c, std::string_view token,
                                            const RefreshHolder* read) {
  Context x(d_, config_, c);
  const auto hash = d_.lookup.token("refresh", token);
  std::string user;
  if (read != nullptr) {
    user = read->user.str();
  } else {
    auto first = projections::refresh_token_status(x.store(), hash, x.now);
    if (!first) return Refused::unavailable;
    if (first.value().state == projections::RefreshTokenStatus::State::unknown) {
      return Refused::invalid_token;
    }
    user = first.value().user;
  }
  auto next = random_token(32);
  if (!next) return Refused::internal;
  const auto next_hash = d_.lookup.token("refresh", next.value());
  auto outcome = RefreshOutcome::invalid;
  std::string session;
  std::vector<std::string> roles;
  SECHEX_TRYV(x.run(x.partition_of(user), [&]() -> Result<Events> {
    auto& store = x.store();
    SECHEX_TRY(auto st, projections::refresh_token_status(store, hash, x.now));
    using S = projections::RefreshTokenStatus::State;
    // The authoritative read, on the partition: a token that is not this user's is unknown.
    if (st.user != user) st.state = S::unknown;
    RefreshState rs;
    rs.token = st.state == S::current   ? RefreshTokenState::current
               : st.state == S::rotated ? RefreshTokenState::rotated
               : st.state == S::revoked ? RefreshTokenState::revoked
                                        : RefreshTokenState::unknown;
    session = st.session_id;
    SECHEX_TRY(const auto row, projections::session_row(store, st.session_id));
    rs.session_active = row && row->active_at(x.now);
    const bool remember_me = row && row->remember_me;
    const auto rec = account_of(store, user);
    rs.account_usable = rec && rec->active() && !locked_until(store, user, x.now);
    if (rec) roles = rec->roles;
    outcome = decide_refresh(rs);
    Events out;
    if (outcome == RefreshOutcome::reuse_detected) {
      SECHEX_TRY(auto reuse, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateRefreshTokenReuseDetected(
            f, f.CreateString(st.session_id), f.CreateString(st.family_id), bytes(f, hash)));
      }));
      out.push_back(std::move(reuse));
    } else if (outcome == RefreshOutcome::rotate) {
      SECHEX_TRY(auto rotated, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateTokenRefreshed(
            f, f.CreateString(st.session_id), f.CreateString(st.family_id), bytes(f, hash),
            bytes(f, next_hash), micros_of(idle_expiry(remember_me, config_.limits, x.now))));
      }));
      out.push_back(std::move(rotated));
    }
    return out;
  }));
  if (outcome != RefreshOutcome::rotate) return Refused::invalid_token;
  return x.signed_in(user, roles, SessionId(session), std::move(next).value());
}

// ---- Logout (004 FR-016, scenario 9) ----
Outcome<void> IdentityCommands::logout(const Caller& c, const UserId& user,
                                       const SessionId& session, bool all) {
  Context x(d_, config_, c);
  return x.run(x.partition_of(user.str()), [&]() -> Result<Events> {
    SECHEX_TRY(auto out, x.event(user.str(), Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateLoggedOut(f, f.CreateString(session.str()), all));
    }));
    Events events;
    events.push_back(std::move(out));
    return events;
  });
}

// ---- Change (004 FR-021..FR-023, FR-027) ----
Outcome<SignedIn> IdentityCommands::change_password(const Caller& c, const UserId& user,
                                                    const PasswordChange& change) {
  const auto& [current, next] = change;
  Context x(d_, config_, c);
  const auto& id = user.str();
  const auto record = account_of(x.store(), id);
  if (!record) return Refused::no_account;
  const auto p = x.partition_of(id);
  SECHEX_TRYV(x.check_owner(p));
  SECHEX_TRY(const auto checked, check_password_of(x, id, *record, current, p));
  std::optional<std::string> new_phc;
  if (checked.ok) {
    auto address = x.open_sealed(id, record->email, "email");
    SECHEX_TRYV(check_new_password(x.store(), next, address ? address.value() : std::string()));
    auto hashed = d_.hasher.hash(next);
    if (!hashed) return x.failed(hashed.error(), p);
    new_phc = std::move(hashed).value();
  }
  const auto session = new_session(d_.lookup);
  if (!session) return Refused::internal;
  LoginDecision decision;
  bool stale = false;
  std::vector<std::string> roles;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    const auto rec = account_of(x.store(), id);
    if (!rec || rec->password_hash.event_id != checked.against) {
      stale = true;
      return Events{};
    }
    roles = rec->roles;
    LoginState s;  // no IP limit: the caller holds a session already
    SECHEX_TRY(s.account, login_account(x, id, *rec));
    s.account->email_verified = true;  // the caller signed in, so it was verified
    s.password_ok = checked.ok;
    decision = decide_login(s, config_.limits, x.now);
    Events out;
    SECHEX_TRYV(record_password_attempt(x, id, "", decision, "", "_on_password_change", out));
    if (decision.outcome != LoginOutcome::ok) return out;
    SECHEX_TRY(auto changed,
               x.event(id, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                 SECHEX_TRY(auto sealed, b.seal("password_hash", *new_phc));
                 return b.finish(schema::CreatePasswordChanged(b.fbb(), sealed, true));
               }));
    out.push_back(std::move(changed));
    // Every session ends (the cutoff); the caller continues in a fresh one.
    SECHEX_TRYV(start_session(x, id, *session, false, std::nullopt, out));
    return out;
  }));
  if (stale) return Refused::password_changed;
  if (decision.outcome != LoginOutcome::ok) return login_refusal(decision, Refused::wrong_password);
  return x.signed_in(id, roles, session->session, session->refresh_token);
}

// ---- Reset (004 FR-025, FR-027, FR-028, FR-040; scenarios 10-12) ----
Outcome<void> IdentityCommands::reset_password(const Caller& c, std::string_view token,
                                               Password next) {
  Context x(d_, config_, c);
  const auto hash = d_.lookup.token(projections::kPurposePasswordReset, token);
  const auto refused = [](LinkOutcome o) { return link_refusal(o, Link::password_reset); };
  auto found = projections::one_time_token(x.store(), hash);
  if (!found) return Refused::unavailable;
  if (!found.value() || found.value()->purpose != projections::kPurposePasswordReset) {
    return refused(LinkOutcome::invalid);
  }
  const auto user = found.value()->user;
  // Answer an expired or spent link before spending a hash on the new password.
  const auto early = decide_link(link_of(found.value()), x.now);
  if (early != LinkOutcome::ok) return refused(early);
  const auto record = account_of(x.store(), user);
  if (!record) return refused(LinkOutcome::invalid);
  auto address = x.open_sealed(user, record->email, "email");
  if (!address) return refused(LinkOutcome::invalid);  // erased meanwhile
  SECHEX_TRYV(check_new_password(x.store(), next, address.value()));
  const auto p = x.partition_of(user);
  SECHEX_TRYV(x.check_owner(p));
  auto phc = d_.hasher.hash(next);
  if (!phc) return x.failed(phc.error(), p);
  auto outcome = LinkOutcome::invalid;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto t, projections::one_time_token(x.store(), hash));
    outcome = decide_link(link_of(t), x.now);
    if (outcome != LinkOutcome::ok) return Events{};
    Events out;
    SECHEX_TRY(
        auto reset,
        x.event(user, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
          SECHEX_TRY(auto sealed, b.seal("password_hash", phc.value()));
          return b.finish(schema::CreatePasswordReset(b.fbb(), bytes(b.fbb(), hash), sealed));
        }));
    out.push_back(std::move(reset));
    // The owner has just proved control of the address: a lockout from wrong passwords ends
    // with the reset, the way to recover without waiting it out. An admin lock stays.
    const auto lock = locked_until(x.store(), user, x.now);
    if (lock && *lock != kNever) {
      SECHEX_TRY(auto unlocked, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateAccountUnlocked(f, false, f.CreateString("password_reset")));
      }));
      out.push_back(std::move(unlocked));
    }
    SECHEX_TRYV(x.queue_mail(out, user, kMailPasswordResetDone, address.value(), ""));
    return out;
  }));
  if (outcome != LinkOutcome::ok) return refused(outcome);
  if (d_.mail_queued) d_.mail_queued();
  return boost::outcome_v2::success();
}

}  // namespace sechex::api::identity
