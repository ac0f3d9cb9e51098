// Registration, verification, the mails of one-time secrets, policy, step-up, unlock and GDPR
// erasure (sign_in.cc has the commands that start or continue a session).
#include "api/identity/commands.h"

#include "command_context.h"
#include "ledger/export.h"
#include "projections/audit.h"

namespace sechex::api::identity {

using namespace detail;

std::string_view to_string(Refused why) {
  switch (why) {
    case Refused::not_owner:
      return "not_owner";
    case Refused::overloaded:
      return "overloaded";
    case Refused::unavailable:
      return "unavailable";
    case Refused::password_changed:
      return "password_changed";
    case Refused::internal:
      return "internal";
    case Refused::email_taken:
      return "email_taken";
    case Refused::invalid_email:
      return "invalid_email";
    case Refused::weak_password:
      return "weak_password";
    case Refused::link_invalid:
      return "link_invalid";
    case Refused::link_expired:
      return "link_expired";
    case Refused::rate_limited:
      return "rate_limited";
    case Refused::account_locked:
      return "account_locked";
    case Refused::email_not_verified:
      return "email_not_verified";
    case Refused::invalid_credentials:
      return "invalid_credentials";
    case Refused::wrong_password:
      return "wrong_password";
    case Refused::invalid_code:
      return "invalid_code";
    case Refused::code_expired:
      return "code_expired";
    case Refused::invalid_token:
      return "invalid_token";
    case Refused::no_account:
      return "no_account";
    case Refused::not_found:
      return "not_found";
    case Refused::reauth_required:
      return "reauth_required";
    case Refused::not_premium:
      return "not_premium";
    case Refused::attestation_failed:
      return "attestation_failed";
    case Refused::device_unsupported:
      return "device_unsupported";
    case Refused::invalid_role:
      return "invalid_role";
    case Refused::spoof_attempt:
      return "spoof_attempt";
    case Refused::replay_detected:
      return "replay_detected";
    case Refused::exclusive_locked:
      return "exclusive_locked";
    case Refused::feature_disabled:
      return "feature_disabled";
    case Refused::invalid_flag:
      return "invalid_flag";
    case Refused::dpop_nonce_required:
      return "dpop_nonce_required";
    case Refused::idempotency_key_reused:
      return "idempotency_key_reused";
    case Refused::invalid_transition:
      return "invalid_transition";
    case Refused::invalid_cursor:
      return "invalid_cursor";
    case Refused::unknown_provider:
      return "unknown_provider";
    case Refused::oauth_state_mismatch:
      return "oauth_state_mismatch";
    case Refused::oauth_failed:
      return "oauth_failed";
    case Refused::provider_unavailable:
      return "provider_unavailable";
    case Refused::consent_required:
      return "consent_required";
    case Refused::provider_email_unverified:
      return "provider_email_unverified";
    case Refused::local_account_unverified:
      return "local_account_unverified";
    case Refused::last_sign_in_method:
      return "last_sign_in_method";
    case Refused::invalid_request:
      return "invalid_request";
  }
  return "unknown";
}

Refusal Refusal::from_error(const std::error_code& ec) {
  if (ec == OwnershipErrc::not_owner) return Refused::not_owner;
  if (ec == PasswordErrc::overloaded) return Refused::overloaded;
  return Refused::unavailable;
}

Refusal Refusal::misdirected(ledger::Partition p, const PartitionOwnership& ownership) {
  Refusal r(Refused::not_owner);
  r.partition = p;
  r.owner = ownership.owner_of(p);
  return r;
}

IdentityCommands::IdentityCommands(CommandDeps deps, CommandConfig config)
    : d_(std::move(deps)), config_(std::move(config)) {}

ledger::Partition IdentityCommands::partition_of(std::string_view subject) const {
  return d_.commands.partition_for(subject);
}

// ---- Register (004 FR-001..FR-007, 003 email validation) ----
Outcome<IdentityCommands::Registered> IdentityCommands::register_user(const Caller& c,
                                                                      std::string_view email,
                                                                      Password password) {
  Context x(d_, config_, c);
  auto checked = check_email(email, d_.disposable);
  if (!checked) {
    Refusal r(Refused::invalid_email);
    r.email_reason = std::string(email_reason(checked.error()));
    return r;
  }
  const auto& address = checked.value().address;
  SECHEX_TRYV(check_new_password(x.store(), password, address));
  const auto email_hash = d_.lookup.email(address);
  const auto p = x.partition_of(hex_of(email_hash));
  SECHEX_TRYV(x.check_owner(p));
  auto phc = d_.hasher.hash(password);
  if (!phc) return x.failed(phc.error(), p);
  // An id in the email's partition: one partition decides every registration of the address.
  const auto drawn = user_id_in(x, p);
  if (!drawn) return Refused::internal;
  const auto& user = *drawn;
  auto token = random_token(32);
  if (!token) return Refused::internal;
  const auto token_hash = d_.lookup.token(projections::kPurposeVerifyEmail, token.value());
  const auto disposable = checked.value().disposable;

  bool taken = false;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto existing, projections::user_by_email(x.store(), email_hash));
    if (existing) {
      taken = true;
      return Events{};
    }
    Events out;
    SECHEX_TRY(auto registered,
               x.event(user, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                 SECHEX_TRY(auto sealed_email, b.seal("email", address));
                 SECHEX_TRY(auto sealed_password, b.seal("password_hash", phc.value()));
                 auto& f = b.fbb();
                 return b.finish(schema::CreateUserRegistered(
                     f, sealed_email, bytes(f, email_hash), sealed_password,
                     f.CreateString(config_.consent_version), disposable));
               }));
    out.push_back(std::move(registered));
    SECHEX_TRYV(record_consent(x, user, true, out));
    SECHEX_TRY(auto issued, x.event(user, Actor::system(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateEmailVerificationIssued(
          f, bytes(f, token_hash), micros_of(x.now + config_.limits.verify_token_ttl)));
    }));
    out.push_back(std::move(issued));
    SECHEX_TRYV(x.queue_mail(out, user, kMailVerifyEmail, address, token.value()));
    return out;
  }));
  if (taken) return Refused::email_taken;
  if (d_.mail_queued) d_.mail_queued();
  return Registered{UserId(user), disposable};
}

// ---- Verify email (004 FR-006, FR-007, scenarios 13-15) ----
Outcome<void> IdentityCommands::verify_email(const Caller& c, std::string_view token) {
  Context x(d_, config_, c);
  const auto hash = d_.lookup.token(projections::kPurposeVerifyEmail, token);
  auto found = projections::one_time_token(x.store(), hash);
  if (!found) return Refused::unavailable;
  if (!found.value() || found.value()->purpose != projections::kPurposeVerifyEmail) {
    return link_refusal(LinkOutcome::invalid, Link::verify_email);
  }
  const auto user = found.value()->user;
  auto outcome = LinkOutcome::invalid;
  SECHEX_TRYV(x.run(x.partition_of(user), [&]() -> Result<Events> {
    SECHEX_TRY(auto t, projections::one_time_token(x.store(), hash));
    outcome = decide_link(link_of(t), x.now);
    if (outcome != LinkOutcome::ok) return Events{};
    SECHEX_TRY(auto verified, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateEmailVerified(b.fbb(), bytes(b.fbb(), hash)));
    }));
    Events out;
    out.push_back(std::move(verified));
    return out;
  }));
  if (outcome != LinkOutcome::ok) return link_refusal(outcome, Link::verify_email);
  return boost::outcome_v2::success();
}

// ---- The mails of one-time secrets ----
// A verification link (not to a verified address) or a reset link (004 FR-024, FR-026: only to
// verified addresses, and never for an erased account), each under its own per-account cap.
void IdentityCommands::mail_link(const Caller& c, const UserId& user, Link link) {
  Context x(d_, config_, c);
  const bool verify = link == Link::verify_email;
  auto token = random_token(32);
  if (!token) return;
  const auto token_hash = d_.lookup.token(
      verify ? projections::kPurposeVerifyEmail : projections::kPurposePasswordReset,
      token.value());
  const auto expires_at = micros_of(
      x.now + (verify ? config_.limits.verify_token_ttl : config_.limits.reset_token_ttl));
  mail_secret(
      x, user.str(),
      {verify ? kMailVerifyEmail : kMailPasswordReset, token.value(),
       verify ? Actor::system() : Actor::self(),
       verify ? projections::kScopeVerifyRequestUser : projections::kScopeResetRequestUser,
       std::chrono::hours{1},
       verify ? config_.limits.verify_resends_per_hour : config_.limits.reset_requests_per_user},
      [verify](const projections::UserRow& rec) {
        return verify ? !rec.email_verified : rec.email_verified && rec.active();
      },
      [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return verify ? b.finish(schema::CreateEmailVerificationIssued(f, bytes(f, token_hash),
                                                                       expires_at))
                      : b.finish(schema::CreatePasswordResetRequested(f, bytes(f, token_hash),
                                                                      expires_at));
      });
}

// 002 "OTP code generation": a new code replaces the previous one of its purpose.
void IdentityCommands::mail_code(const Caller& c, const UserId& user, OtpPurpose purpose) {
  Context x(d_, config_, c);
  const char* name = purpose_name(purpose);
  auto code = generate_otp_code();
  if (!code) return;
  const auto code_hash = d_.lookup.otp(user.str(), name, code.value());
  mail_secret(
      x, user.str(),
      {kMailOtpCode, code.value(), Actor::system(), projections::kScopeOtpRequestUser,
       config_.limits.otp_request_window, config_.limits.otp_requests_per_user},
      // An account that may sign in by code: active and verified.
      [](const projections::UserRow& rec) { return rec.active() && rec.email_verified; },
      [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateOtpIssued(
            f, bytes(f, code_hash), micros_of(x.now + config_.limits.otp_ttl),
            purpose == OtpPurpose::reauth ? schema::OtpPurpose::Reauth
                                          : schema::OtpPurpose::Login));
      });
}

void IdentityCommands::record_client_limited(const Caller& c, const char* scope,
                                             std::int64_t retry_seconds) {
  Context x(d_, config_, c);
  const auto subject =
      std::string(projections::kAnonymousSubjectPrefix) + "ip:" + hex_of(c.ip_hash);
  (void)x.run(x.partition_of(subject), [&]() -> Result<Events> {
    SECHEX_TRY(auto limited, x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateRateLimited(f, f.CreateString(scope), bytes(f, c.ip_hash),
                                                static_cast<std::uint32_t>(retry_seconds)));
    }));
    Events out;
    out.push_back(std::move(limited));
    return out;
  });
}

namespace {

// The form of an address its keyed hash is taken of: normalised when valid, as given when not.
std::string normalised_address(std::string_view email) {
  auto checked = check_email(email, DisposableDomains());
  return checked ? checked.value().address : std::string(email);
}

}  // namespace

std::string IdentityCommands::address_key(std::string_view email) const {
  return d_.lookup.email(normalised_address(email));
}

AddressSubject IdentityCommands::address_subject(std::string_view email) const {
  AddressSubject s;
  s.email_hash = address_key(email);
  if (auto id = projections::user_by_email(d_.commands.projections(), s.email_hash);
      id && id.value()) {
    s.user = *id.value();
  }
  s.id =
      s.user ? *s.user : std::string(projections::kAnonymousSubjectPrefix) + hex_of(s.email_hash);
  return s;
}

// ---- Password policy (004 FR-003, FR-004, FR-041) ----
PasswordPolicy IdentityCommands::password_policy() const {
  return current_policy(d_.commands.projections());
}

Outcome<PasswordPolicy> IdentityCommands::set_password_policy(const Caller& c,
                                                              std::string_view admin,
                                                              PasswordLevel level) {
  Context x(d_, config_, c);
  SECHEX_TRYV(x.run(x.partition_of(kPolicySubject), [&]() -> Result<Events> {
    SECHEX_TRY(auto changed,
               x.event(kPolicySubject, Actor::admin(admin), [&](ledger::EventBuilder& b) {
                 auto& f = b.fbb();
                 return b.finish(schema::CreatePolicyChanged(
                     f, f.CreateString("password"), f.CreateString(std::string(to_string(level)))));
               }));
    Events out;
    out.push_back(std::move(changed));
    return out;
  }));
  return PasswordPolicy::for_level(level);
}

// ---- Step-up re-authentication (002 "Sensitive Operation Re-authentication") ----
Outcome<ReauthGrant> IdentityCommands::reauth(const Caller& c, const UserId& user,
                                              const SessionId& session, const StepUpProof& proof) {
  const auto* code = std::get_if<OtpCode>(&proof);
  const auto* password = std::get_if<Password>(&proof);
  Context x(d_, config_, c);
  const auto p = x.partition_of(user.str());
  SECHEX_TRYV(x.check_owner(p));
  const auto record = account_of(x.store(), user.str());
  if (!record) return Refused::invalid_token;  // the token's account is gone
  auto address = x.open_sealed(user.str(), record->email, "email");
  if (!address) return Refused::unavailable;
  const AddressSubject subject{d_.lookup.email(address.value()), user.str(), user.str()};

  // The password check, before the partition is taken (like login).
  PasswordCheckResult checked;
  if (password != nullptr) {
    SECHEX_TRY(checked, check_password_of(x, user.str(), *record, *password, p));
  }
  auto token = random_token(32);
  if (!token) return Refused::internal;
  const auto grant_id = reauth_id(session, ReauthToken(token.value()));
  OtpDecision otp_decision;
  LoginDecision login_decision;
  bool granted = false, stale = false;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    Events out;
    if (code != nullptr) {
      SECHEX_TRY(otp_decision, check_code(x, subject, account_of(x.store(), user.str()),
                                          OtpPurpose::reauth, *code, out));
      if (otp_decision.outcome != OtpOutcome::ok) return out;
    } else {
      const auto rec = account_of(x.store(), user.str());
      if (!rec || rec->password_hash.event_id != checked.against) {
        stale = true;
        return out;
      }
      // The login rules without the per-IP attempt limit: the caller holds a session.
      LoginState s;
      SECHEX_TRY(s.account, login_account(x, user.str(), *rec));
      s.password_ok = checked.ok;
      login_decision = decide_login(s, config_.limits, x.now);
      // An unverified address is not a wrong password: nothing to count.
      auto counted = login_decision;
      if (counted.outcome == LoginOutcome::email_not_verified) counted.failure_reason.clear();
      SECHEX_TRYV(
          record_password_attempt(x, user.str(), subject.email_hash, counted, "reauth_", "", out));
      if (login_decision.outcome != LoginOutcome::ok) return out;
    }
    SECHEX_TRY(auto grant, x.event(user.str(), Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateReauthGranted(
          f, f.CreateString(grant_id), micros_of(x.now + config_.limits.reauth_ttl),
          f.CreateString(code != nullptr ? "otp" : "password")));
    }));
    out.push_back(std::move(grant));
    granted = true;
    return out;
  }));
  if (stale) return Refused::password_changed;
  if (code != nullptr) after_code_decision(x, otp_decision, user.str(), true);
  if (granted) {
    return ReauthGrant{std::move(token).value(), whole_seconds(config_.limits.reauth_ttl)};
  }
  if (code != nullptr) return code_refusal(otp_decision, x.now);
  // A wrong password; unverified counts as a refusal without the count (decide_login).
  if (login_decision.outcome == LoginOutcome::email_not_verified) {
    Refusal r(Refused::wrong_password);
    r.remaining_attempts = login_decision.remaining_attempts;
    return r;
  }
  return login_refusal(login_decision, Refused::wrong_password);
}

std::string IdentityCommands::reauth_id(const SessionId& session, ReauthToken token) const {
  std::string input(session.str());
  input.push_back('\0');  // session ids never hold NUL: (session, token) reads back one way
  input.append(token.view());
  return hex_of(d_.lookup.token("reauth", input));
}

bool IdentityCommands::reauth_granted(const UserId& user, const SessionId& session,
                                      ReauthToken token, TimePoint now) const {
  if (token.view().empty() || session.str().empty()) return false;
  auto holder =
      projections::reauth_grant_user(d_.commands.projections(), reauth_id(session, token), now);
  return holder && holder.value() && *holder.value() == user.str();
}

// ---- Roles (API.md admin) ----
Outcome<std::vector<std::string>> IdentityCommands::set_roles(
    const Caller& c, const UserId& user, const std::vector<std::string>& grant,
    const std::vector<std::string>& revoke, const UserId& admin) {
  static constexpr std::array<std::string_view, 2> kRoles = {"admin", "premium"};
  for (const auto* list : {&grant, &revoke}) {
    for (const auto& role : *list) {
      const bool known = std::find(kRoles.begin(), kRoles.end(), role) != kRoles.end();
      const bool both = std::find(grant.begin(), grant.end(), role) != grant.end() &&
                        std::find(revoke.begin(), revoke.end(), role) != revoke.end();
      if (!known || both) {
        Refusal r(Refused::invalid_role);
        r.reason = role;
        return r;
      }
    }
  }
  Context x(d_, config_, c);
  const std::string& id = user.str();
  std::vector<std::string> roles;
  bool found = false;
  SECHEX_TRYV(x.run(x.partition_of(id), [&]() -> Result<Events> {
    SECHEX_TRY(const auto row, projections::user_row(x.store(), id));
    found = row && row->status != "erased";
    if (!found) return Events{};
    roles = row->roles;
    Events out;
    const auto change = [&](const std::string& role, bool granted) -> Result<void> {
      const auto at = std::find(roles.begin(), roles.end(), role);
      if ((at != roles.end()) == granted) return boost::outcome_v2::success();  // as it is
      SECHEX_TRY(auto e, x.event(id, Actor::admin(admin.str()), [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateRoleGranted(f, f.CreateString(role), granted));
      }));
      out.push_back(std::move(e));
      if (granted) {
        roles.push_back(role);
      } else {
        roles.erase(at);
      }
      return boost::outcome_v2::success();
    };
    for (const auto& role : grant) SECHEX_TRYV(change(role, true));
    for (const auto& role : revoke) SECHEX_TRYV(change(role, false));
    return out;
  }));
  if (!found) return Refused::not_found;
  std::sort(roles.begin(), roles.end());
  return roles;
}

// ---- Admin unlock (002 "require manual support intervention to unlock") ----
Outcome<void> IdentityCommands::unlock(const Caller& c, const UserId& user, std::string_view reason,
                                       const UserId& admin) {
  Context x(d_, config_, c);
  const std::string& id = user.str();
  // A users row, once written, is never deleted (erasure keeps it as "erased"): read once.
  if (id.empty() || !account_of(x.store(), id)) return Refused::not_found;
  return x.run(x.partition_of(id), [&]() -> Result<Events> {
    SECHEX_TRY(auto unlocked, x.event(id, Actor::admin(admin.str()), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateAccountUnlocked(f, true, f.CreateString(std::string(reason))));
    }));
    Events out;
    out.push_back(std::move(unlocked));
    return out;
  });
}

// ---- GDPR erasure with step-up (002 "Account deletion requires re-auth", 004 FR-036) ----
Outcome<void> IdentityCommands::erase(const Caller& c, const UserId& user, const SessionId& session,
                                      ReauthToken reauth_token) {
  Context x(d_, config_, c);
  if (!reauth_granted(user, session, reauth_token, c.now)) return Refused::reauth_required;
  const auto p = partition_of(user.str());
  auto ran = d_.commands.run_locked(p, [&]() -> Result<void> {
    SECHEX_TRY(auto erased, d_.keys.is_erased(user.str()));
    if (erased) return boost::outcome_v2::success();
    SECHEX_TRY(auto appended,
               d_.keys.erase(user.str(), user.str(), "gdpr_erasure_request", micros_of(c.now)));
    (void)appended;
    return boost::outcome_v2::success();
  });
  if (!ran) return x.failed(ran.error(), p);
  return boost::outcome_v2::success();
}

Outcome<Profile> IdentityCommands::profile(const UserId& user) const {
  auto row = account_of(d_.commands.projections(), user.str());
  if (!row) return Refused::no_account;
  Profile out{std::move(*row), std::nullopt, std::nullopt};
  const auto open = [&](const projections::SealedValue& v, const char* field) {
    std::optional<std::string> text;
    if (v.empty()) return text;
    if (auto plain = d_.keys.open_field(user.str(), v.event_id, field, v.sealed)) {
      text = std::string(plain.value().begin(), plain.value().end());
    }
    return text;
  };
  out.email = open(out.row.email, "email");
  out.display_name = open(out.row.display_name, "display_name");
  return out;
}

// ---- Profile (003 US7-2, 004 FR-036) ----
Outcome<void> IdentityCommands::update_profile(const Caller& c, const UserId& user,
                                               const SessionId& session,
                                               const ProfileChange& change) {
  Context x(d_, config_, c);
  const auto p = x.partition_of(user.str());
  bool found = false;
  bool withdrawn = false;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto row, projections::user_row(x.store(), user.str()));
    found = row && row->status != "erased";
    if (!found) return Events{};
    Events out;
    if (change.display_name || change.locale) {
      SECHEX_TRY(
          auto updated,
          x.event(user.str(), Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
            FbBytes name;
            if (change.display_name) {
              SECHEX_TRY(name, b.seal("display_name", *change.display_name));
            }
            auto& f = b.fbb();
            return b.finish(schema::CreateProfileUpdated(
                f, name, change.locale ? f.CreateString(*change.locale) : 0));
          }));
      out.push_back(std::move(updated));
    }
    const bool has_consent = !row->consent_version.empty();
    if (change.consent && *change.consent != has_consent) {
      withdrawn = !*change.consent;
      SECHEX_TRYV(record_consent(x, user.str(), *change.consent, out));
    }
    return out;
  }));
  if (!found) return Refused::no_account;
  if (withdrawn) return logout(c, user, session, true);
  return boost::outcome_v2::success();
}

Outcome<std::vector<std::pair<std::string, projections::SessionRow>>> IdentityCommands::sessions(
    const UserId& user, TimePoint now) const {
  auto active = projections::active_sessions(d_.commands.projections(), user.str(), now);
  if (!active) return Refused::unavailable;
  return std::move(active).value();
}

Outcome<PersonalData> IdentityCommands::personal_data(const UserId& user, TimePoint now) const {
  SECHEX_TRY(auto profile, this->profile(user));
  PersonalData out{std::move(profile), {}, nlohmann::json::array(), false};
  const auto& store = d_.commands.projections();
  if (auto active = projections::active_sessions(store, user.str(), now)) {
    out.sessions = std::move(active).value();
  }
  std::vector<ledger::Position> positions;
  projections::AuditScan mine;
  mine.subject = user.str();
  auto walked =
      projections::for_each_audit_entry(store, mine, [&](const projections::AuditEntry& entry) {
        if (positions.size() == kMaxExportedEvents) {
          out.truncated = true;
          return false;
        }
        positions.push_back(entry.position);
        return true;
      });
  if (!walked) return Refused::unavailable;
  auto& log = d_.commands.log();
  for (const auto& pos : positions) {
    auto records = log.read_range(pos.partition, pos.seq, ledger::Seq{pos.seq.value + 1}, 1);
    if (!records || records.value().empty()) continue;  // dropped by retention
    out.events.push_back(ledger::render_record(records.value().front(), &d_.keys));
  }
  return out;
}

}  // namespace sechex::api::identity
