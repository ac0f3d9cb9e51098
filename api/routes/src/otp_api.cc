#include "api/routes/otp_api.h"

#include <nlohmann/json.hpp>

#include "api/mail/mail.h"
#include "identity_support.h"
#include "ledger/crypto.h"
#include "ledger/time_format.h"
#include "projections/identity.h"
#include "projections/rate_limits.h"
#include "projections/users.h"

namespace sechex::api {

using namespace identity_support;

namespace {

constexpr const char* kPurposeLogin = "login";
constexpr const char* kPurposeReauth = "reauth";

schema::OtpPurpose purpose_of(std::string_view purpose) {
  return purpose == kPurposeReauth ? schema::OtpPurpose::Reauth : schema::OtpPurpose::Login;
}

// An account that may sign in by code: active and verified.
bool usable_account(const std::optional<projections::UserRow>& rec) {
  return rec && rec->active() && rec->email_verified;
}

// Inside a command on `subject`'s partition: reads the OTP state, decides (decide_otp) and
// appends what a refused or failed validation records. On ok nothing is appended: the caller
// adds OtpVerified and what the code grants.
Result<identity::OtpDecision> check_code(RequestContext& x, const AddressSubject& subject,
                                         std::string_view purpose, std::string_view code,
                                         Events& out) {
  auto& store = x.store();
  const auto& limits = x.config.limits;
  identity::OtpState s;
  SECHEX_TRY(const auto validations,
             projections::rate_window(store, projections::kScopeOtpValidationUser, subject.id,
                                      x.now, limits.otp_validation_window_micros,
                                      limits.otp_validations_per_window));
  s.validations = validations.count;
  s.validations_free_at = validations.below_limit_at;
  SECHEX_TRY(s.failures,
             projections::rate_count(store, projections::kScopeOtpFailureUser, subject.id, x.now,
                                     limits.otp_failure_window_micros));
  std::optional<projections::UserRow> rec;
  // An unknown address's lock is recorded under its anon subject, like an account's.
  s.locked_until = locked_until(store, subject.id, x.now);
  if (subject.user) {
    rec = account_of(store, *subject.user);
    if (usable_account(rec)) {
      SECHEX_TRY(auto stored, projections::otp_code(store, *subject.user, purpose));
      if (stored) {
        const auto presented = x.deps.lookup.otp(*subject.user, purpose, code);
        s.code_exists = true;
        s.code_expires_at = stored->expires_at;
        s.code_matches =
            ledger::crypto::constant_time_equal(view_of(presented), view_of(stored->code_hash));
      }
    }
  }
  const auto d = identity::decide_otp(s, limits, x.now);
  if (d.outcome == identity::OtpOutcome::rate_limited) {
    SECHEX_TRY(auto limited, x.event(subject.id, subject.id, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateRateLimited(
          f, f.CreateString(projections::kScopeOtpValidationUser), bytes(f, subject.email_hash),
          static_cast<std::uint32_t>(d.retry_after_seconds)));
    }));
    out.push_back(std::move(limited));
  }
  if (d.record_failure) {
    SECHEX_TRY(auto failed, x.event(subject.id, subject.id, [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateOtpFailed(b.fbb(), d.failures_in_window));
    }));
    out.push_back(std::move(failed));
  }
  // An unknown address is locked too, under its anon subject, so that it answers 423 for as
  // long as an account would; nobody can unlock it, so that lock ends by itself after a day
  // (access.h), and no mail or alert goes out for it.
  if (d.lock_for_admin) {
    SECHEX_TRY(auto locked, x.event(subject.id, "system", [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateAccountLocked(f, f.CreateString("otp_failures"), 0, true));
    }));
    out.push_back(std::move(locked));
    if (subject.user && rec) {
      SECHEX_TRY(auto to, x.open_sealed(*subject.user, rec->email, "email"));
      SECHEX_TRYV(x.queue_mail(out, *subject.user, kMailOtpLockout, to, ""));
    }
  }
  return d;
}

// The answer to a validation that did not succeed.
Response refused(const identity::OtpDecision& d, std::int64_t now) {
  switch (d.outcome) {
    case identity::OtpOutcome::expired:
      return json_error(410, "code_expired", "the code has expired; request a new one");
    case identity::OtpOutcome::rate_limited:
      return retry_later(429, "rate_limited", "too many code attempts; wait before trying again",
                         d.retry_after_seconds, json{{"retryAfter", d.retry_after_seconds}});
    case identity::OtpOutcome::locked:
      // A lock that ends by itself says when (the decision gives its remaining seconds).
      return account_locked(d.retry_after_seconds > 0
                                ? now + d.retry_after_seconds * identity::kSecondMicros
                                : INT64_MAX,
                            d.retry_after_seconds);
    case identity::OtpOutcome::ok:
    case identity::OtpOutcome::invalid_code:
      break;
  }
  return json_error(401, "invalid_code", "the code is not valid");
}

Result<ledger::Bytes> otp_verified(RequestContext& x, const std::string& user,
                                   std::string_view purpose) {
  return x.event(user, user, [&](ledger::EventBuilder& b) {
    return b.finish(schema::CreateOtpVerified(b.fbb(), purpose_of(purpose)));
  });
}

}  // namespace

OtpApi::OtpApi(IdentityDeps deps, IdentityConfig config, OtpConfig otp, OtpHooks hooks)
    : d_(std::move(deps)),
      config_(std::move(config)),
      otp_(std::move(otp)),
      hooks_(std::move(hooks)),
      request_limiter_(otp_.otp_requests_per_ip, otp_.otp_request_window_micros) {}

void OtpApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.open(
      "POST", "/v1/auth/otp/request", [this](const Request& r) { return request_code(r); },
      Exec::pool);
  routes.open(
      "POST", "/v1/auth/otp/verify", [this](const Request& r) { return verify_code(r); },
      Exec::pool);
  routes.guarded(
      "POST", "/v1/auth/reauth", [this](const Request& r, W w) { return reauth(r, w); },
      Exec::pool);
  routes.guarded(
      "POST", "/v1/admin/users/{id}/unlock",
      [this](const Request& r, W w) { return unlock_user(r, w); }, Exec::pool);
}

// ---- Request a code (002 "OTP code generation"): 202 whatever happens ----
Response OtpApi::request_code(const Request& req) {
  RequestContext x(d_, config_, req);
  // The code and its mail, once the account is known (after the answer: accept_then).
  auto mail_code = [this](RequestContext& later, const std::optional<std::string>& user,
                          const std::string& purpose) {
    if (!user) return;  // nobody to mail
    auto code = identity::generate_otp_code();
    if (!code) return;
    const auto code_hash = d_.lookup.otp(*user, purpose, code.value());
    mail_secret(
        later, *user,
        {kMailOtpCode, code.value(), "system", projections::kScopeOtpRequestUser,
         otp_.otp_request_window_micros, otp_.otp_requests_per_user},
        [](const projections::UserRow& rec) { return usable_account(rec); },
        [&](ledger::EventBuilder& b) {
          auto& f = b.fbb();
          return b.finish(schema::CreateOtpIssued(
              f, bytes(f, code_hash), later.now + config_.limits.otp_micros, purpose_of(purpose)));
        });
  };
  // A signed-in caller (Bearer, or the browser's session cookie) asks for a step-up code to its
  // own address.
  const bool signed_in = req.header("authorization") != nullptr ||
                         (d_.csrf != nullptr && cookie(req, kAccessCookie).has_value());
  if (signed_in) {
    SECHEX_TRY(const auto who, d_.auth.authenticate(req, Access::user));
    const auto user = who.subject;
    return accept_then(x, x.partition_of(user), user, [user, mail_code](RequestContext& later) {
      mail_code(later, user, kPurposeReauth);
    });
  }
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRYV(admit_client(x, request_limiter_, projections::kScopeOtpRequestIp));
  return accept_for_address(x, email, [mail_code](auto& later, const auto& user) {
    mail_code(later, user, kPurposeLogin);
  });
}

// ---- Sign in with a code (002 OTP expiration, rate limiting, lockout) ----
Response OtpApi::verify_code(const Request& req) {
  RequestContext x(d_, config_, req);
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRY(const auto code, required_string(body, "code"));
  const auto remember = body.find("rememberMe");
  const bool remember_me =
      remember != body.end() && remember->is_boolean() && remember->get<bool>();
  const auto subject = address_subject(x, email);
  const auto p = x.partition_of(subject.id);
  if (!d_.commands.ownership().owns(p)) {
    return command_failed(OwnershipErrc::not_owner, d_.commands.ownership(), p);
  }
  const auto session = new_session(d_.lookup);
  if (!session) return json_error(500, "internal_error", "no randomness");
  identity::OtpDecision decision;
  auto ran = x.run(p, [&]() -> Result<Events> {
    Events out;
    SECHEX_TRY(decision, check_code(x, subject, kPurposeLogin, code, out));
    if (decision.outcome != identity::OtpOutcome::ok) return out;
    SECHEX_TRY(auto verified, otp_verified(x, subject.id, kPurposeLogin));
    out.push_back(std::move(verified));
    SECHEX_TRYV(start_session(x, subject.id, *session, remember_me, schema::LoginMethod::Otp, out));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  after_decision(decision, subject.id, subject.user.has_value());
  if (decision.outcome != identity::OtpOutcome::ok) return refused(decision, x.now);
  return x.token_pair(UserId(subject.id), session->session, session->refresh_token);
}

void OtpApi::after_decision(const identity::OtpDecision& d, std::string_view subject,
                            bool known_user) {
  if (d.lock_for_admin && known_user) {
    if (d_.mail_queued) d_.mail_queued();
    if (hooks_.on_lockout) hooks_.on_lockout(subject);
  }
  if (d.outcome == identity::OtpOutcome::rate_limited && hooks_.on_rate_limited) {
    hooks_.on_rate_limited(subject);
  }
}

// ---- Step-up re-authentication (002 "Sensitive Operation Re-authentication") ----
Response OtpApi::reauth(const Request& req, const Principal& caller) {
  RequestContext x(d_, config_, req);
  const auto user = caller.subject;
  SECHEX_TRY(const auto body, read_body(req));
  const auto code = string_field(body, "code");
  const auto password = string_field(body, "password");
  if (code.has_value() == password.has_value()) {
    return invalid_request("code_or_password", "send either `code` or `password`");
  }
  const auto p = x.partition_of(user);
  if (!d_.commands.ownership().owns(p)) {
    return command_failed(OwnershipErrc::not_owner, d_.commands.ownership(), p);
  }
  const auto record = account_of(x.store(), user);
  if (!record) return json_error(401, "invalid_token", "no account for this token");
  auto address = x.open_sealed(user, record->email, "email");
  if (!address) return retry_later(503, "unavailable", "cannot read the account", 1);
  const AddressSubject subject{d_.lookup.email(address.value()), user, user};

  // The password check, before the partition is taken (like login).
  bool password_ok = false;
  ledger::Bytes verified_event;
  if (password) {
    auto phc = x.open_sealed(user, record->password_hash, "password_hash");
    if (!phc) return retry_later(503, "unavailable", "cannot read the account", 1);
    auto ok = d_.hasher.verify(phc.value(), *password);
    if (!ok && ok.error() == PasswordErrc::malformed_hash) {
      return json_error(500, "internal_error", "the stored password hash is unusable");
    }
    if (!ok && ok.error() != PasswordErrc::too_long) {
      return command_failed(ok.error(), d_.commands.ownership(), p);
    }
    password_ok = ok && ok.value();
    verified_event = record->password_hash.event_id;
  }

  auto token = identity::random_token(32);
  if (!token) return json_error(500, "internal_error", "no randomness");
  const auto grant_id = reauth_id(d_.lookup, SessionId(caller.session), token.value());
  identity::OtpDecision otp_decision;
  identity::LoginDecision login_decision;
  bool granted = false, stale = false;
  auto ran = x.run(p, [&]() -> Result<Events> {
    auto& store = x.store();
    Events out;
    if (code) {
      SECHEX_TRY(otp_decision, check_code(x, subject, kPurposeReauth, *code, out));
      if (otp_decision.outcome != identity::OtpOutcome::ok) return out;
      SECHEX_TRY(auto verified, otp_verified(x, user, kPurposeReauth));
      out.push_back(std::move(verified));
    } else {
      const auto rec = account_of(store, user);
      if (!rec || rec->password_hash.event_id != verified_event) {
        stale = true;
        return out;
      }
      // The login rules without the per-IP attempt limit: the caller holds a session.
      identity::LoginState s;
      SECHEX_TRY(s.account, login_account(x, user, *rec));
      s.password_ok = password_ok;
      login_decision = identity::decide_login(s, config_.limits, x.now);
      // An unverified address is not a wrong password: nothing to count.
      auto counted = login_decision;
      if (counted.outcome == identity::LoginOutcome::email_not_verified) {
        counted.failure_reason.clear();
      }
      SECHEX_TRYV(
          record_password_attempt(x, user, subject.email_hash, counted, "reauth_", "", out));
      if (login_decision.outcome != identity::LoginOutcome::ok) return out;
    }
    SECHEX_TRY(auto grant, x.event(user, user, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateReauthGranted(f, f.CreateString(grant_id),
                                                  x.now + config_.limits.reauth_micros,
                                                  f.CreateString(code ? "otp" : "password")));
    }));
    out.push_back(std::move(grant));
    granted = true;
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (stale) return retry_later(503, "unavailable", "the password changed meanwhile; retry", 1);
  if (code) after_decision(otp_decision, user, true);
  if (granted) {
    return json_ok(json{{"reauthToken", token.value()},
                        {"expiresIn", config_.limits.reauth_micros / identity::kSecondMicros}}
                       .dump());
  }
  if (code) return refused(otp_decision, x.now);
  if (login_decision.outcome == identity::LoginOutcome::locked) {
    return account_locked(login_decision.locked_until, login_decision.retry_after_seconds);
  }
  return json_error(401, "invalid_credentials", "the password is incorrect",
                    json{{"remainingAttempts", login_decision.remaining_attempts}}.dump());
}

// ---- Admin unlock (002 "require manual support intervention to unlock") ----
Response OtpApi::unlock_user(const Request& req, const Principal& admin) {
  RequestContext x(d_, config_, req);
  std::string reason = "admin_unlock";
  if (!req.body.empty()) {
    SECHEX_TRY(const auto body, read_body(req));
    if (auto given = string_field(body, "reason")) reason = *given;
  }
  const auto it = req.params.find("id");
  const auto user = it == req.params.end() ? std::string() : it->second;
  const auto not_found = [] { return json_error(404, "not_found", "no such user"); };
  if (user.empty() || !account_of(x.store(), user)) return not_found();
  const auto p = x.partition_of(user);
  bool exists = true;
  auto ran = x.run(p, [&]() -> Result<Events> {
    exists = account_of(x.store(), user).has_value();
    if (!exists) return Events{};
    SECHEX_TRY(auto unlocked, x.event(user, "admin:" + admin.subject, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateAccountUnlocked(f, true, f.CreateString(reason)));
    }));
    Events out;
    out.push_back(std::move(unlocked));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (!exists) return not_found();
  return json_ok(json{{"status", "unlocked"}, {"userId", user}}.dump());
}

std::string reauth_id(const LookupHasher& lookup, const projections::SessionId& session,
                      std::string_view reauth_token) {
  std::string input(session.str());
  input.push_back('\0');  // session ids never hold NUL: (session, token) reads back one way
  input.append(reauth_token);
  return hex_of(lookup.token("reauth", input));
}

bool reauth_granted(const projections::ProjectionStore& store, const LookupHasher& lookup,
                    const Principal& caller, std::string_view reauth_token, std::int64_t now) {
  if (reauth_token.empty() || caller.session.empty()) return false;
  auto user = projections::reauth_grant_user(
      store, reauth_id(lookup, SessionId(caller.session), reauth_token), now);
  return user && user.value() && *user.value() == caller.subject;
}

}  // namespace sechex::api
