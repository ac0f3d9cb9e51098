#include "command_context.h"

namespace sechex::api::identity::detail {

PasswordPolicy current_policy(const projections::ProjectionStore& store) {
  auto level = projections::password_policy_level(store);
  return PasswordPolicy::for_level(
      parse_level(level ? level.value() : std::string("basic")).value_or(PasswordLevel::basic));
}

Outcome<void> check_new_password(const projections::ProjectionStore& store, Password password,
                                 std::string_view address) {
  const auto policy = current_policy(store);
  const std::string_view context[] = {address.substr(0, address.find('@'))};
  auto check = identity::check_password(password.view(), policy, context);
  if (check.ok()) return boost::outcome_v2::success();
  Refusal r(Refused::weak_password);
  r.password_check = std::move(check);
  r.policy = policy;
  return r;
}

Outcome<PasswordCheckResult> check_password_of(Context& x, const std::string& user,
                                               const projections::UserRow& row, Password password,
                                               ledger::Partition p) {
  PasswordCheckResult out;
  auto phc = x.open_sealed(user, row.password_hash, "password_hash");
  if (!phc) return Refused::unavailable;
  out.phc = std::move(phc).value();
  auto ok = x.deps.hasher.verify(out.phc, password);
  if (ok) {
    out.ok = ok.value();
  } else if (ok.error() == PasswordErrc::malformed_hash) {
    return Refused::internal;
  } else if (ok.error() != PasswordErrc::too_long) {
    return x.failed(ok.error(), p);
  }
  out.against = row.password_hash.event_id;
  return out;
}

Result<LoginAccount> login_account(Context& x, const std::string& user,
                                   const projections::UserRow& rec) {
  LoginAccount a;
  a.status = rec.status;
  a.email_verified = rec.email_verified;
  SECHEX_TRY(a.consecutive_failures, projections::login_failures(x.store(), user, x.now));
  a.locked_until = locked_until(x.store(), user, x.now);
  return a;
}

Result<void> record_password_attempt(Context& x, const std::string& subject,
                                     std::string_view email_hash, const LoginDecision& decision,
                                     std::string_view reason_prefix, std::string_view reason_suffix,
                                     Events& out) {
  if (!decision.failure_reason.empty()) {
    const auto reason =
        std::string(reason_prefix) + decision.failure_reason + std::string(reason_suffix);
    SECHEX_TRY(auto failed, x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateLoginFailed(f, email_hash.empty() ? 0 : bytes(f, email_hash),
                                                f.CreateString(reason),
                                                decision.consecutive_failures));
    }));
    out.push_back(std::move(failed));
  }
  if (decision.lock_until) {
    SECHEX_TRY(auto locked, x.event(subject, Actor::system(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateAccountLocked(f, f.CreateString("consecutive_login_failures"),
                                                  micros_of(*decision.lock_until), false));
    }));
    out.push_back(std::move(locked));
  }
  return boost::outcome_v2::success();
}

Refusal login_refusal(const LoginDecision& d, Refused wrong) {
  Refusal r;
  switch (d.outcome) {
    case LoginOutcome::rate_limited:
      r.why = Refused::rate_limited;
      r.retry_after_seconds = d.retry_after_seconds;
      return r;
    case LoginOutcome::locked:
      r.why = Refused::account_locked;
      r.locked_until = d.locked_until;
      r.retry_after_seconds = d.retry_after_seconds;
      return r;
    case LoginOutcome::email_not_verified:
      r.why = Refused::email_not_verified;
      return r;
    case LoginOutcome::ok:
    case LoginOutcome::invalid_credentials:
      break;
  }
  r.why = wrong;
  r.remaining_attempts = d.remaining_attempts;
  return r;
}

std::optional<NewSession> new_session(const LookupHasher& lookup) {
  auto session = random_token(16);
  auto family = random_token(16);
  auto refresh_token = random_token(32);
  if (!session || !family || !refresh_token) return std::nullopt;
  NewSession s{SessionId(session.value()), family.value(), refresh_token.value(), {}};
  s.refresh_hash = lookup.token("refresh", s.refresh_token);
  return s;
}

Result<void> record_consent(Context& x, const std::string& user, bool granted, Events& out) {
  SECHEX_TRY(auto consent, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
    auto& f = b.fbb();
    return b.finish(schema::CreateConsentRecorded(f, f.CreateString(x.config.consent_version),
                                                  granted, f.CreateString("account")));
  }));
  out.push_back(std::move(consent));
  return boost::outcome_v2::success();
}

std::optional<std::string> user_id_in(const Context& x, ledger::Partition p) {
  // Expected draws: the partition count (8 by default); 10,000 misses mean something is broken.
  for (int i = 0; i < 10000; ++i) {
    auto id = random_token(16);
    if (!id) return std::nullopt;
    if (x.partition_of("u_" + id.value()) == p) return "u_" + id.value();
  }
  return std::nullopt;
}

Result<void> start_session(Context& x, const std::string& subject, const NewSession& s,
                           bool remember_me, std::optional<schema::LoginMethod> method,
                           Events& out) {
  if (method) {
    SECHEX_TRY(auto succeeded, x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateLoginSucceeded(f, f.CreateString(s.session.str()), *method));
    }));
    out.push_back(std::move(succeeded));
  }
  SECHEX_TRY(
      auto started,
      x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
        FbBytes device;
        // A password change's session records no device (it continues one already recorded).
        if (method && x.caller.user_agent) {
          SECHEX_TRY(device, b.seal("device", ledger::to_utf8(*x.caller.user_agent,
                                                              ledger::kMaxUserAgentBytes)));
        }
        auto& f = b.fbb();
        return b.finish(schema::CreateSessionStarted(
            f, f.CreateString(s.session.str()), f.CreateString(s.family), bytes(f, s.refresh_hash),
            remember_me, micros_of(idle_expiry(remember_me, x.limits(), x.now)), 0, device));
      }));
  out.push_back(std::move(started));
  return boost::outcome_v2::success();
}

void mail_secret(Context& x, const std::string& user, const SecretMail& m,
                 const std::function<bool(const projections::UserRow&)>& eligible,
                 const IssueEvent& issue) {
  bool queued = false;
  auto ran = x.run(x.partition_of(user), [&]() -> Result<Events> {
    SECHEX_TRY(const auto rec, projections::user_row(x.store(), user));
    if (!rec || !eligible(*rec)) return Events{};
    SECHEX_TRY(auto sent,
               projections::rate_count(x.store(), m.cap_scope, user, x.now, m.cap_window));
    if (sent >= m.cap) return Events{};
    Events out;
    SECHEX_TRY(auto issued, x.event(user, m.actor, issue));
    out.push_back(std::move(issued));
    SECHEX_TRY(auto to, x.open_sealed(user, rec->email, "email"));
    SECHEX_TRYV(x.queue_mail(out, user, m.kind, to, m.secret));
    queued = true;
    return out;
  });
  if (!ran && x.deps.log) {
    x.deps.log(std::string("a ") + std::string(m.kind) +
               " mail answered 202 was not recorded: " + std::string(to_string(ran.error().why)));
  }
  if (queued && x.deps.mail_queued) x.deps.mail_queued();
}

namespace {

// An account that may sign in by code: active and verified.
bool usable_account(const std::optional<projections::UserRow>& rec) {
  return rec && rec->active() && rec->email_verified;
}

}  // namespace

const char* purpose_name(OtpPurpose purpose) {
  return purpose == OtpPurpose::reauth ? "reauth" : "login";
}

Result<OtpDecision> check_code(Context& x, const AddressSubject& subject,
                               const std::optional<projections::UserRow>& account,
                               OtpPurpose purpose, OtpCode code, Events& out) {
  auto& store = x.store();
  const auto& limits = x.limits();
  OtpState s;
  SECHEX_TRY(
      const auto validations,
      projections::rate_window(store, projections::kScopeOtpValidationUser, subject.id, x.now,
                               limits.otp_validation_window, limits.otp_validations_per_window));
  s.validations = validations.count;
  s.validations_free_at = validations.below_limit_at;
  SECHEX_TRY(s.failures, projections::rate_count(store, projections::kScopeOtpFailureUser,
                                                 subject.id, x.now, limits.otp_failure_window));
  const auto& rec = account;
  // An unknown address's lock is recorded under its anon subject, like an account's.
  s.locked_until = locked_until(store, subject.id, x.now);
  if (subject.user) {
    if (usable_account(rec)) {
      SECHEX_TRY(auto stored, projections::otp_code(store, *subject.user, purpose_name(purpose)));
      if (stored) {
        const auto presented = x.deps.lookup.otp(*subject.user, purpose_name(purpose), code.view());
        s.code_exists = true;
        s.code_expires_at = time_from_micros(stored->expires_at);
        s.code_matches =
            ledger::crypto::constant_time_equal(view_of(presented), view_of(stored->code_hash));
      }
    }
  }
  const auto d = decide_otp(s, limits, x.now);
  if (d.outcome == OtpOutcome::rate_limited) {
    SECHEX_TRY(auto limited, x.event(subject.id, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateRateLimited(
          f, f.CreateString(projections::kScopeOtpValidationUser), bytes(f, subject.email_hash),
          static_cast<std::uint32_t>(d.retry_after_seconds)));
    }));
    out.push_back(std::move(limited));
  }
  if (d.record_failure) {
    SECHEX_TRY(auto failed, x.event(subject.id, Actor::self(), [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateOtpFailed(b.fbb(), d.failures_in_window));
    }));
    out.push_back(std::move(failed));
  }
  // An unknown address is locked too, under its anon subject, so that it answers 423 for as
  // long as an account would; nobody can unlock it, so that lock ends by itself after a day
  // (access.h), and no mail or alert goes out for it.
  if (d.lock_for_admin) {
    SECHEX_TRY(auto locked, x.event(subject.id, Actor::system(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateAccountLocked(f, f.CreateString("otp_failures"), 0, true));
    }));
    out.push_back(std::move(locked));
    if (subject.user && rec) {
      SECHEX_TRY(auto to, x.open_sealed(*subject.user, rec->email, "email"));
      SECHEX_TRYV(x.queue_mail(out, *subject.user, kMailOtpLockout, to, ""));
    }
  }
  if (d.outcome == OtpOutcome::ok) {
    SECHEX_TRY(auto verified, x.event(subject.id, Actor::self(), [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateOtpVerified(b.fbb(), purpose == OtpPurpose::reauth
                                                             ? schema::OtpPurpose::Reauth
                                                             : schema::OtpPurpose::Login));
    }));
    out.push_back(std::move(verified));
  }
  return d;
}

Refusal code_refusal(const OtpDecision& d, TimePoint now) {
  Refusal r;
  switch (d.outcome) {
    case OtpOutcome::expired:
      r.why = Refused::code_expired;
      return r;
    case OtpOutcome::rate_limited:
      r.why = Refused::rate_limited;
      r.retry_after_seconds = d.retry_after_seconds;
      return r;
    case OtpOutcome::locked:
      // A lock that ends by itself says when (the decision gives its remaining seconds).
      r.why = Refused::account_locked;
      r.locked_until =
          d.retry_after_seconds > 0 ? now + std::chrono::seconds{d.retry_after_seconds} : kNever;
      r.retry_after_seconds = d.retry_after_seconds;
      return r;
    case OtpOutcome::ok:
    case OtpOutcome::invalid_code:
      break;
  }
  r.why = Refused::invalid_code;
  return r;
}

void after_code_decision(Context& x, const OtpDecision& d, std::string_view subject,
                         bool known_user) {
  if (d.lock_for_admin && known_user) {
    if (x.deps.mail_queued) x.deps.mail_queued();
    if (x.deps.on_otp_lockout) x.deps.on_otp_lockout(subject);
  }
  if (d.outcome == OtpOutcome::rate_limited && x.deps.on_otp_rate_limited) {
    x.deps.on_otp_rate_limited(subject);
  }
}

}  // namespace sechex::api::identity::detail
