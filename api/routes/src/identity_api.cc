#include "api/routes/identity_api.h"

#include <nlohmann/json.hpp>

#include "api/json/json_input.h"
#include "identity_support.h"
#include "ledger/crypto.h"
#include "ledger/time_format.h"
#include "projections/access.h"
#include "projections/identity.h"
#include "projections/rate_limits.h"
#include "projections/sessions.h"
#include "projections/users.h"

namespace sechex::api {

using namespace identity_support;

// The Authenticator refuses an ended session's tokens by its row, and a token without a row
// passes (operator tokens): rows must outlive every access token of their session.
static_assert(identity::Limits{}.access_token_micros <= projections::kEndedSessionKeptMicros);

IdentityApi::IdentityApi(IdentityDeps deps, IdentityConfig config)
    : d_(std::move(deps)),
      config_(std::move(config)),
      resend_limiter_(config_.limits.mail_requests_per_ip,
                      config_.limits.mail_request_ip_window_micros) {}

void IdentityApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  auto post = [&](const char* path, Response (IdentityApi::*h)(const Request&)) {
    routes.open(
        "POST", path, [this, h](const Request& r) { return (this->*h)(r); }, Exec::pool);
  };
  post("/v1/auth/register", &IdentityApi::register_user);
  post("/v1/auth/verify-email", &IdentityApi::verify_email);
  post("/v1/auth/verify-email/resend", &IdentityApi::resend_verification);
  post("/v1/auth/login", &IdentityApi::login);
  post("/v1/auth/refresh", &IdentityApi::refresh);
  routes.guarded(
      "POST", "/v1/auth/logout", [this](const Request& r, W w) { return logout(r, w, false); },
      Exec::pool);
  routes.guarded(
      "POST", "/v1/auth/logout-all", [this](const Request& r, W w) { return logout(r, w, true); },
      Exec::pool);
  routes.open(
      "GET", "/v1/auth/password/policy", [this](const Request& r) { return password_policy(r); },
      Exec::read);
  routes.guarded(
      "PUT", "/v1/admin/policy/password",
      [this](const Request& r, W w) { return set_password_policy(r, w); }, Exec::pool);
  routes.guarded(
      "GET", "/v1/me", [this](const Request& r, W w) { return me(r, w); }, Exec::read);
  routes.guarded(
      "GET", "/v1/me/sessions", [this](const Request& r, W w) { return my_sessions(r, w); },
      Exec::read);
  routes.open(
      "GET", "/v1/auth/csrf", [this](const Request& r) { return csrf_token(r); }, Exec::read);
}

// ---- Register (004 FR-001..FR-007, 003 email validation) ----
Response IdentityApi::register_user(const Request& req) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRY(const auto password, required_string(body, "password"));
  const auto consent = body.find("consent");
  if (consent == body.end() || !consent->is_boolean() || !consent->get<bool>()) {
    return json_error(400, "consent_required",
                      "registration needs consent to the processing of your data (consent: true)",
                      json{{"field", "consent"}}.dump());
  }
  auto checked = identity::check_email(email, d_.disposable);
  if (!checked) {
    return json_error(400, "invalid_email", "the email address is not valid",
                      json{{"reason", identity::email_reason(checked.error())}}.dump());
  }
  const auto& address = checked.value().address;
  SECHEX_TRYV(check_new_password(x.store(), password, address));
  const auto email_hash = d_.lookup.email(address);
  const auto p = x.partition_of(hex_of(email_hash));
  if (!d_.commands.ownership().owns(p)) {
    return command_failed(OwnershipErrc::not_owner, d_.commands.ownership(), p);
  }
  auto phc = d_.hasher.hash(password);
  if (!phc) return command_failed(phc.error(), d_.commands.ownership(), p);
  // An id in the email's partition: one partition decides every registration of the address.
  std::string user;
  for (int i = 0; i < 10000 && user.empty(); ++i) {
    auto id = identity::random_token(16);
    if (!id) return json_error(500, "internal_error", "no randomness");
    if (x.partition_of("u_" + id.value()) == p) user = "u_" + id.value();
  }
  if (user.empty()) return json_error(500, "internal_error", "cannot place the account");
  auto token = identity::random_token(32);
  if (!token) return json_error(500, "internal_error", "no randomness");
  const auto token_hash = d_.lookup.token(projections::kPurposeVerifyEmail, token.value());
  const auto disposable = checked.value().disposable;

  bool taken = false;
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto existing, projections::user_by_email(x.store(), email_hash));
    if (existing) {
      taken = true;
      return Events{};
    }
    Events out;
    SECHEX_TRY(
        auto registered, x.event(user, user, [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
          SECHEX_TRY(auto sealed_email, b.seal("email", address));
          SECHEX_TRY(auto sealed_password, b.seal("password_hash", phc.value()));
          auto& f = b.fbb();
          return b.finish(
              schema::CreateUserRegistered(f, sealed_email, bytes(f, email_hash), sealed_password,
                                           f.CreateString(config_.consent_version), disposable));
        }));
    out.push_back(std::move(registered));
    SECHEX_TRY(auto consented, x.event(user, user, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateConsentRecorded(f, f.CreateString(config_.consent_version),
                                                    true, f.CreateString("account")));
    }));
    out.push_back(std::move(consented));
    SECHEX_TRY(auto issued, x.event(user, "system", [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateEmailVerificationIssued(
          f, bytes(f, token_hash), x.now + config_.limits.verify_token_micros));
    }));
    out.push_back(std::move(issued));
    SECHEX_TRYV(x.queue_mail(out, user, "verify_email", address, token.value()));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (taken) {
    return json_error(409, "email_taken", "an account with this email already exists");
  }
  if (d_.mail_queued) d_.mail_queued();
  json warnings = json::array();
  if (disposable) warnings.push_back("disposable_email");
  return json_ok(
      json{{"userId", user}, {"status", "pending_verification"}, {"warnings", warnings}}.dump(),
      201);
}

// ---- Verify email (004 FR-006, FR-007, scenarios 13-15) ----
Response IdentityApi::verify_email(const Request& req) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto token, required_string(body, "token"));
  const auto hash = d_.lookup.token(projections::kPurposeVerifyEmail, token);
  const auto invalid = [] {
    return json_error(400, "token_invalid",
                      "this verification link is not valid (already used, or replaced by a newer "
                      "one); request a new one",
                      json{{"resendUrl", "/v1/auth/verify-email/resend"}}.dump());
  };
  auto found = projections::one_time_token(x.store(), hash);
  if (!found) return retry_later(503, "unavailable", "cannot read the token", 1);
  if (!found.value() || found.value()->purpose != projections::kPurposeVerifyEmail) {
    return invalid();
  }
  const auto user = found.value()->user;
  const auto p = x.partition_of(user);
  auto outcome = identity::LinkOutcome::invalid;
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto t, projections::one_time_token(x.store(), hash));
    identity::LinkToken link;
    if (t) {
      link = {true, t->state == projections::OneTimeToken::State::live, t->expires_at};
    }
    outcome = identity::decide_link(link, x.now);
    if (outcome != identity::LinkOutcome::ok) return Events{};
    SECHEX_TRY(auto verified, x.event(user, user, [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateEmailVerified(b.fbb(), bytes(b.fbb(), hash)));
    }));
    Events out;
    out.push_back(std::move(verified));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  switch (outcome) {
    case identity::LinkOutcome::ok:
      return json_ok(json{{"status", "verified"}}.dump());
    case identity::LinkOutcome::expired:
      return json_error(410, "token_expired",
                        "this verification link has expired; request a new one",
                        json{{"resendUrl", "/v1/auth/verify-email/resend"}}.dump());
    case identity::LinkOutcome::invalid:
      break;
  }
  return invalid();
}

// ---- Resend the verification mail: 202 whatever the address (no enumeration) ----
Response IdentityApi::resend_verification(const Request& req) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRYV(admit_client(x, resend_limiter_, projections::kScopeVerifyRequestIp));
  return accept_for_address(x, email, [this](auto& later, const auto& user) {
    if (!user) return;  // nobody to mail
    auto token = identity::random_token(32);
    if (!token) return;
    const auto token_hash = d_.lookup.token(projections::kPurposeVerifyEmail, token.value());
    mail_secret(
        later, *user,
        {"verify_email", token.value(), "system", projections::kScopeVerifyRequestUser,
         identity::kHourMicros, config_.limits.verify_resends_per_hour},
        [](const projections::UserRow& rec) { return !rec.email_verified; },
        [&](ledger::EventBuilder& b) {
          auto& f = b.fbb();
          return b.finish(schema::CreateEmailVerificationIssued(
              f, bytes(f, token_hash), later.now + config_.limits.verify_token_micros));
        });
  });
}

// ---- Login (004 FR-008..FR-012, API.md) ----
Response IdentityApi::login(const Request& req) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRY(const auto password, required_string(body, "password"));
  // Login CSRF: a foreign page must not sign the browser into the attacker's account.
  if (auto site = check_same_site(req, config_.public_origin); !site) {
    return csrf_refusal(site.error(), "log in from this site");
  }
  const auto remember = body.find("rememberMe");
  const bool remember_me =
      remember != body.end() && remember->is_boolean() && remember->get<bool>();

  // An address that is not even valid is looked up like any other, so it is answered like an
  // unknown one.
  const auto address_subject_of = address_subject(x, email);
  const auto& email_hash = address_subject_of.email_hash;
  const auto& user = address_subject_of.user;
  const auto& subject = address_subject_of.id;
  const auto p = x.partition_of(subject);
  if (!d_.commands.ownership().owns(p)) {
    return command_failed(OwnershipErrc::not_owner, d_.commands.ownership(), p);
  }

  // The expensive part, before the partition is taken. An unknown email costs the same.
  bool password_ok = false;
  ledger::Bytes verified_event;  // the password the check was against
  std::optional<std::string> rehashed;
  std::optional<projections::UserRow> record;
  if (user) record = account_of(x.store(), *user);
  if (record && !record->password_hash.empty()) {
    auto phc = x.open_sealed(*user, record->password_hash, "password_hash");
    if (!phc) return retry_later(503, "unavailable", "cannot read the account", 1);
    auto ok = d_.hasher.verify(phc.value(), password);
    if (!ok) {
      if (ok.error() == PasswordErrc::too_long) {
        password_ok = false;
      } else if (ok.error() == PasswordErrc::malformed_hash) {
        return json_error(500, "internal_error", "the stored password hash is unusable");
      } else {
        return command_failed(ok.error(), d_.commands.ownership(), p);
      }
    } else {
      password_ok = ok.value();
    }
    verified_event = record->password_hash.event_id;
    if (password_ok && d_.hasher.needs_rehash(phc.value())) {
      if (auto h = d_.hasher.hash(password)) rehashed = std::move(h).value();
    }
  } else {
    auto dummy = d_.hasher.verify_dummy(password);
    if (!dummy && dummy.error() != PasswordErrc::too_long) {
      return command_failed(dummy.error(), d_.commands.ownership(), p);
    }
  }

  const auto fresh = new_session(d_.lookup);
  if (!fresh) return json_error(500, "internal_error", "no randomness");
  identity::LoginDecision decision;
  bool stale = false;
  auto ran = x.run(p, [&]() -> Result<Events> {
    auto& store = x.store();
    identity::LoginState s;
    SECHEX_TRY(const auto ip,
               projections::rate_window(store, projections::kScopeLoginAttemptIp, x.ip_hash(),
                                        x.now, config_.limits.login_ip_window_micros,
                                        config_.limits.login_attempts_per_ip));
    s.ip_attempts = ip.count;
    s.ip_window_frees_at = ip.below_limit_at;
    if (user) {
      const auto rec = account_of(store, *user);
      if (rec) {
        if (rec->password_hash.event_id != verified_event) {
          stale = true;  // the password changed while we were checking the old one
          return Events{};
        }
        SECHEX_TRY(s.account, login_account(x, *user, *rec));
      }
    } else {
      SECHEX_TRY(s.unknown_email_failures, projections::login_failures(store, subject, x.now));
      s.unknown_email_locked_until = locked_until(store, subject, x.now);
    }
    s.password_ok = password_ok;
    decision = identity::decide_login(s, config_.limits, x.now);
    Events out;
    if (decision.outcome == identity::LoginOutcome::rate_limited) {
      SECHEX_TRY(auto limited, x.event(subject, subject, [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateRateLimited(
            f, f.CreateString(projections::kScopeLoginAttemptIp), bytes(f, x.ip_hash()),
            static_cast<std::uint32_t>(decision.retry_after_seconds)));
      }));
      out.push_back(std::move(limited));
      return out;
    }
    SECHEX_TRYV(record_password_attempt(x, subject, email_hash, decision, "", "", out));
    if (decision.outcome != identity::LoginOutcome::ok) return out;
    SECHEX_TRYV(start_session(x, subject, *fresh, remember_me, schema::LoginMethod::Password, out));
    if (rehashed) {
      // Parameters changed since this hash was made: store the current kind, keep sessions.
      SECHEX_TRY(auto changed,
                 x.event(subject, "system", [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                   SECHEX_TRY(auto sealed, b.seal("password_hash", *rehashed));
                   return b.finish(schema::CreatePasswordChanged(b.fbb(), sealed, false));
                 }));
      out.push_back(std::move(changed));
    }
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (stale) return retry_later(503, "unavailable", "the password changed meanwhile; retry", 1);

  switch (decision.outcome) {
    case identity::LoginOutcome::ok:
      return x.token_pair(UserId(subject), fresh->session, fresh->refresh_token);
    case identity::LoginOutcome::rate_limited:
      return retry_later(429, "rate_limited", "too many login attempts from this address",
                         decision.retry_after_seconds,
                         json{{"retryAfter", decision.retry_after_seconds}});
    case identity::LoginOutcome::locked:
      return account_locked(decision.locked_until, decision.retry_after_seconds);
    case identity::LoginOutcome::email_not_verified:
      return json_error(403, "email_not_verified", "verify your email address before logging in",
                        json{{"resendUrl", "/v1/auth/verify-email/resend"}}.dump());
    case identity::LoginOutcome::invalid_credentials:
      break;
  }
  return json_error(401, "invalid_credentials", "the email or password is incorrect",
                    json{{"remainingAttempts", decision.remaining_attempts}}.dump());
}

// ---- Refresh: rotation with reuse detection (004 FR-018, FR-020) ----
Response IdentityApi::refresh(const Request& req) {
  RequestContext x(d_, config_, req);
  // A browser refreshing by cookie may send no body at all.
  SECHEX_TRY(const auto body, req.body.empty() && d_.csrf != nullptr
                                  ? ApiResult<json>(json::object())
                                  : read_body(req));
  auto presented = string_field(body, "refreshToken");
  const bool by_cookie = !presented && d_.csrf != nullptr;
  if (by_cookie) presented = cookie(req, kRefreshCookie);
  if (!presented) return missing("refreshToken");
  const auto invalid = [] {
    auto r = json_error(401, "invalid_token", "the refresh token is not valid; log in again");
    r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return r;
  };
  const auto hash = d_.lookup.token("refresh", *presented);
  auto first = projections::refresh_token_status(x.store(), hash, x.now);
  if (!first) return retry_later(503, "unavailable", "cannot read the session", 1);
  if (first.value().state == projections::RefreshTokenStatus::State::unknown) return invalid();
  if (by_cookie) {
    // A cookie the browser attached on its own proves nothing: the page must show it is ours.
    const auto checked =
        check_csrf(req, first.value().session_id, *d_.csrf, x.now, config_.public_origin);
    if (!checked) {
      d_.auth.csrf_rejected(Principal{first.value().user, first.value().session_id, {}, 0, true},
                            req, csrf_reason(checked.error()));
      return csrf_refusal(checked.error(), "refreshing by cookie needs this site's CSRF token");
    }
  }
  const auto user = first.value().user;
  const auto p = x.partition_of(user);
  auto next = identity::random_token(32);
  if (!next) return json_error(500, "internal_error", "no randomness");
  const auto next_hash = d_.lookup.token("refresh", next.value());
  auto outcome = identity::RefreshOutcome::invalid;
  std::string session;
  auto ran = x.run(p, [&]() -> Result<Events> {
    auto& store = x.store();
    SECHEX_TRY(auto st, projections::refresh_token_status(store, hash, x.now));
    using S = projections::RefreshTokenStatus::State;
    identity::RefreshState rs;
    rs.token = st.state == S::current   ? identity::RefreshTokenState::current
               : st.state == S::rotated ? identity::RefreshTokenState::rotated
               : st.state == S::revoked ? identity::RefreshTokenState::revoked
                                        : identity::RefreshTokenState::unknown;
    session = st.session_id;
    SECHEX_TRY(const auto row, projections::session_row(store, st.session_id));
    rs.session_active = row && row->active_at(x.now);
    const bool remember_me = row && row->remember_me;
    const auto rec = account_of(store, user);
    rs.account_usable = rec && rec->active() && !locked_until(store, user, x.now);
    outcome = identity::decide_refresh(rs);
    Events out;
    if (outcome == identity::RefreshOutcome::reuse_detected) {
      SECHEX_TRY(auto reuse, x.event(user, user, [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateRefreshTokenReuseDetected(
            f, f.CreateString(st.session_id), f.CreateString(st.family_id), bytes(f, hash)));
      }));
      out.push_back(std::move(reuse));
    } else if (outcome == identity::RefreshOutcome::rotate) {
      SECHEX_TRY(auto rotated, x.event(user, user, [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateTokenRefreshed(
            f, f.CreateString(st.session_id), f.CreateString(st.family_id), bytes(f, hash),
            bytes(f, next_hash), identity::idle_expiry(remember_me, config_.limits, x.now)));
      }));
      out.push_back(std::move(rotated));
    }
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (outcome != identity::RefreshOutcome::rotate) return invalid();
  return x.token_pair(UserId(user), SessionId(session), next.value());
}

// ---- Logout (004 FR-016, scenario 9) ----
Response IdentityApi::logout(const Request& req, const Principal& principal, bool all) {
  RequestContext x(d_, config_, req);
  const auto p = x.partition_of(principal.subject);
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(
        auto out, x.event(principal.subject, principal.subject, [&](ledger::EventBuilder& b) {
          auto& f = b.fbb();
          return b.finish(schema::CreateLoggedOut(f, f.CreateString(principal.session), all));
        }));
    Events events;
    events.push_back(std::move(out));
    return events;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  auto r = json_ok(json{{"status", all ? "logged_out_everywhere" : "logged_out"}}.dump());
  r.headers.emplace_back("Set-Cookie", cleared_cookie(kAccessCookie));
  r.headers.emplace_back("Set-Cookie", cleared_cookie(kRefreshCookie));
  return r;
}

// ---- Password policy (004 FR-003, FR-004, FR-041) ----
Response IdentityApi::password_policy(const Request& req) {
  RequestContext x(d_, config_, req);
  return json_ok(policy_json(current_policy(x.store())).dump());
}

Response IdentityApi::set_password_policy(const Request& req, const Principal& admin) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto level_text, required_string(body, "level"));
  const auto level = identity::parse_level(level_text);
  if (!level) return invalid_request("invalid_level", "level must be \"basic\" or \"high\"");
  const auto p = x.partition_of(kPolicySubject);
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto changed,
               x.event(kPolicySubject, "admin:" + admin.subject, [&](ledger::EventBuilder& b) {
                 auto& f = b.fbb();
                 return b.finish(schema::CreatePolicyChanged(
                     f, f.CreateString("password"),
                     f.CreateString(std::string(identity::to_string(*level)))));
               }));
    Events out;
    out.push_back(std::move(changed));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  return json_ok(policy_json(identity::PasswordPolicy::for_level(*level)).dump());
}

// ---- The caller's own profile and sessions (GDPR access starts here) ----
Response IdentityApi::me(const Request& req, const Principal& principal) {
  RequestContext x(d_, config_, req);
  const auto rec = account_of(x.store(), principal.subject);
  if (!rec) return json_error(404, "not_found", "no account for this token");
  return json_ok(profile_json(x, principal.subject, *rec).dump());
}

Response IdentityApi::my_sessions(const Request& req, const Principal& principal) {
  RequestContext x(d_, config_, req);
  auto sessions = projections::active_sessions(x.store(), principal.subject, x.now);
  if (!sessions) return retry_later(503, "unavailable", "cannot read the sessions", 1);
  json out = json::array();
  for (const auto& [id, s] : sessions.value()) {
    out.push_back(json{{"sessionId", id},
                       {"current", id == principal.session},
                       {"createdAt", format_rfc3339(s.created_at)},
                       {"lastSeen", format_rfc3339(s.last_seen)},
                       {"idleExpiresAt", format_rfc3339(s.idle_expires_at)},
                       {"rememberMe", s.remember_me}});
  }
  return json_ok(json{{"sessions", out}}.dump());
}

// ---- CSRF token of the caller's session (csrf.h) ----
Response IdentityApi::csrf_token(const Request& req) {
  RequestContext x(d_, config_, req);
  if (d_.csrf == nullptr) return json_error(404, "not_found", "browser sessions are not enabled");
  auto who = d_.auth.authenticate(req);
  std::string session;
  if (who) {
    session = who.value().session;
  } else if (const auto refresh = cookie(req, kRefreshCookie)) {
    // The access cookie (1 h) may be gone while the refresh cookie (7 d) lives, and refreshing
    // by cookie needs this token: a current refresh token of a live session also gets one. A
    // cross-site page can send this GET but cannot read the answer.
    auto st =
        projections::refresh_token_status(x.store(), d_.lookup.token("refresh", *refresh), x.now);
    if (st && st.value().state == projections::RefreshTokenStatus::State::current) {
      auto row = projections::session_row(x.store(), st.value().session_id);
      if (row && row.value() && row.value()->active_at(x.now)) session = st.value().session_id;
    }
  }
  if (session.empty()) return who.error();
  auto r = json_ok(json{{"csrfToken", d_.csrf->issue(session, x.now)},
                        {"expiresIn", kCsrfTokenMicros / identity::kSecondMicros}}
                       .dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace sechex::api
