// What the identity commands share (private to api/identity): one command's view of its caller
// and dependencies (how to read, build events, seal, mail and run), and the steps more than one
// command takes: the password attempt, starting a session, the mail of a one-time secret and
// the OTP check.
//
// Thread-safety: a Context lives for one command on one thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/identity/commands.h"
#include "ledger/crypto.h"
#include "ledger/utf8.h"
#include "projections/access.h"
#include "projections/identity.h"
#include "projections/outbox.h"
#include "projections/rate_limits.h"
#include "projections/sessions.h"

namespace sechex::api::identity::detail {

using Events = std::vector<ledger::Bytes>;
using FbBytes = flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>;

inline constexpr const char* kPolicySubject = "policy";
// The mail kinds the commands queue (api/mail renders each).
using projections::kMailExclusiveNewDevice;
using projections::kMailOtpCode;
using projections::kMailOtpLockout;
using projections::kMailPasswordReset;
using projections::kMailPasswordResetDone;
using projections::kMailVerifyEmail;

// Who records an event (EventMeta::actor): the subject itself, the system, or an admin. A type
// of its own, so that event(subject, actor) cannot be called with the two swapped and every
// call site says which of the three it is.
class Actor {
 public:
  static Actor self() { return Actor(""); }
  static Actor system() { return Actor("system"); }
  static Actor admin(std::string_view admin_id) { return Actor("admin:" + std::string(admin_id)); }
  // The actor's name in the envelope for an event about `subject`.
  std::string name_for(std::string_view subject) const {
    return name_.empty() ? std::string(subject) : name_;
  }

 private:
  explicit Actor(std::string name) : name_(std::move(name)) {}
  std::string name_;  // "" = the subject
};

inline ledger::ByteView view_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string hex_of(std::string_view s) { return ledger::to_hex(view_of(s)); }
inline FbBytes bytes(flatbuffers::FlatBufferBuilder& f, std::string_view s) {
  return f.CreateVector(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

class Context {
 public:
  CommandDeps& deps;
  const CommandConfig& config;
  const Caller& caller;
  const TimePoint now;

  Context(CommandDeps& d, const CommandConfig& c, const Caller& who)
      : deps(d), config(c), caller(who), now(who.now) {}

  const Limits& limits() const { return config.limits; }
  projections::ProjectionStore& store() { return deps.commands.projections(); }
  ledger::Partition partition_of(std::string_view subject) const {
    return deps.commands.partition_for(subject);
  }
  // A command on `p` that could not run, as a refusal (not_owner names the owner).
  Refusal failed(const std::error_code& ec, ledger::Partition p) const {
    if (ec == OwnershipErrc::not_owner) return Refusal::misdirected(p, deps.commands.ownership());
    return Refusal::from_error(ec);
  }

  // not_owner before any expensive work (a password hash) is spent on a partition another node
  // writes; run() refuses it again under the partition.
  Outcome<void> check_owner(ledger::Partition p) const {
    if (deps.commands.ownership().owns(p)) return boost::outcome_v2::success();
    return failed(OwnershipErrc::not_owner, p);
  }

  // Personal data (IP, user agent) is sealed only under a real account's key: an "anon:"
  // subject per unknown email would let anyone mint data keys at will.
  ledger::EventMeta meta(std::string_view subject, const Actor& by) const {
    ledger::EventMeta m;
    m.subject = std::string(subject);
    m.actor = by.name_for(subject);
    m.request_id = caller.request_id;
    m.time_micros = micros_of(now);
    m.ip_hash = caller.ip_hash;
    if (!subject.starts_with(projections::kAnonymousSubjectPrefix) && subject != kPolicySubject) {
      m.ip = caller.ip;
      // EventBuilder keeps it to well-formed UTF-8 within kMaxUserAgentBytes.
      m.user_agent = caller.user_agent;
    }
    return m;
  }

  template <typename Build>
  Result<ledger::Bytes> event(std::string_view subject, const Actor& by, Build&& build) {
    ledger::EventBuilder b(&deps.keys, meta(subject, by));
    return build(b);
  }

  Result<void> queue_mail(Events& out, const std::string& user, std::string_view kind,
                          std::string_view to, std::string_view secret) {
    if (!deps.queue_mail) return boost::outcome_v2::success();
    SECHEX_TRY(auto mail,
               deps.queue_mail(meta(user, Actor::system()), kind, to, secret, caller.locale));
    out.push_back(std::move(mail));
    return boost::outcome_v2::success();
  }

  // The plaintext of a value sealed in `user`'s row (field "email" or "password_hash").
  Result<std::string> open_sealed(const std::string& user, const projections::SealedValue& value,
                                  std::string_view field) {
    if (value.empty()) return ledger::Errc::corruption;
    SECHEX_TRY(auto plain, deps.keys.open_field(user, value.event_id, field, value.sealed));
    return std::string(plain.begin(), plain.end());
  }

  // Runs `decide` on `p` (CommandPath::run); a failure to run is the refusal to answer.
  Outcome<void> run(ledger::Partition p, const CommandPath::Decide& decide) {
    auto ran = deps.commands.run(p, decide);
    if (!ran) return failed(ran.error(), p);
    return boost::outcome_v2::success();
  }

  // The access token of a session, with the roles of the account row the command read.
  Outcome<SignedIn> signed_in(const std::string& user, const std::vector<std::string>& roles,
                              SessionId session, std::string refresh_token) {
    auto access = deps.issuer.issue(
        {user, session.str(), roles},
        std::chrono::duration_cast<std::chrono::seconds>(config.limits.access_token_ttl));
    if (!access) return Refused::internal;
    return SignedIn{UserId(user), std::move(session), std::move(refresh_token),
                    std::move(access).value()};
  }
};

// The account `user`, nullopt when there is none or its row cannot be read (treated as an
// unknown account). Commands that must tell the two apart call projections::user_row.
inline std::optional<projections::UserRow> account_of(const projections::ProjectionStore& store,
                                                      std::string_view user) {
  auto row = projections::user_row(store, user);
  if (!row) return std::nullopt;
  return std::move(row).value();
}

// The end of the lockout in force at `now` (kNever when only an admin lifts it), or nullopt;
// a lockout that cannot be read is in force (fails closed).
inline std::optional<TimePoint> locked_until(const projections::ProjectionStore& store,
                                             std::string_view subject, TimePoint now) {
  auto lock = projections::lock_in_force(store, subject, now);
  if (!lock) return kNever;
  return lock.value();
}

inline LinkToken link_of(const std::optional<projections::OneTimeToken>& t) {
  if (!t) return {};
  return {true, t->state == projections::OneTimeToken::State::live,
          time_from_micros(t->expires_at)};
}
// The refusal of a link decide_link did not let through.
inline Refusal link_refusal(LinkOutcome outcome, Link link) {
  Refusal r(outcome == LinkOutcome::expired ? Refused::link_expired : Refused::link_invalid);
  r.link = link;
  return r;
}

PasswordPolicy current_policy(const projections::ProjectionStore& store);

// weak_password when `password` misses the policy in force (the address's local part counts
// against its strength). Register, change and reset check new passwords this way.
Outcome<void> check_new_password(const projections::ProjectionStore& store, Password password,
                                 std::string_view address);

// The stored password hash checked against `password` before the partition is taken:
// whether it matched, and the PasswordChanged event it was checked against. A password longer
// than the hasher takes does not match; an unusable stored hash is internal.
struct PasswordCheckResult {
  bool ok = false;
  ledger::Bytes against;  // the event id of the hash checked
  std::string phc;        // the stored hash (for needs_rehash)
};
Outcome<PasswordCheckResult> check_password_of(Context& x, const std::string& user,
                                               const projections::UserRow& row, Password password,
                                               ledger::Partition p);

// The password step login, password change and reauth share (004 FR-011, FR-012): an account's
// state as decide_login sees it, read on its partition.
Result<LoginAccount> login_account(Context& x, const std::string& user,
                                   const projections::UserRow& rec);

// ...and what a decided attempt records, appended to `out`: LoginFailed (its reason as
// `reason_prefix` + the decision's reason + `reason_suffix`, so the audit tells login, reauth
// and password change apart) when the attempt failed, and AccountLocked when it locks the
// subject. `email_hash` may be empty (the event then carries none).
Result<void> record_password_attempt(Context& x, const std::string& subject,
                                     std::string_view email_hash, const LoginDecision& decision,
                                     std::string_view reason_prefix, std::string_view reason_suffix,
                                     Events& out);

// The refusal of a password attempt decide_login did not let through.
Refusal login_refusal(const LoginDecision& d, Refused wrong);

// ConsentRecorded{version in force, granted, purpose "account"} by the user, appended to `out`
// (registration, provider sign-up, PATCH /v1/me).
Result<void> record_consent(Context& x, const std::string& user, bool granted, Events& out);

// A new account's id, drawn until it falls in partition `p` (the partition of its address's
// hash, so one partition decides every registration of an address); nullopt without randomness.
std::optional<std::string> user_id_in(const Context& x, ledger::Partition p);

// A new session's secrets: its ids and refresh token (only the token's keyed hash is recorded).
struct NewSession {
  SessionId session;
  std::string family;
  std::string refresh_token;
  std::string refresh_hash;
};
std::optional<NewSession> new_session(const LookupHasher& lookup);

// SessionStarted of a new session appended to `out` (after LoginSucceeded{method} when
// `method` is given: sign-in by password or code; a password change starts one without).
Result<void> start_session(Context& x, const std::string& subject, const NewSession& s,
                           bool remember_me, std::optional<schema::LoginMethod> method,
                           Events& out);

// What the mails of a one-time secret to an account's own address share once they know the
// account (verification resend, password forgot, OTP request), run after their 202. On the
// account's partition: nothing unless `eligible(row)`; nothing beyond `cap` such mails per
// `cap_window` (counted in `cap_scope`; silent, since the answer must not differ); else
// the event `issue` builds (recording the secret's hash) and the MailQueued of `kind` carrying
// `secret` to the address sealed in the users row, in one append. A failure is logged only.
struct SecretMail {
  std::string_view kind;
  std::string_view secret;
  Actor actor;  // of the recording event: the user asking (self) or the system
  const char* cap_scope;
  Micros cap_window;
  std::uint32_t cap;
};
using IssueEvent = std::function<Result<ledger::Bytes>(ledger::EventBuilder&)>;
void mail_secret(Context& x, const std::string& user, const SecretMail& m,
                 const std::function<bool(const projections::UserRow&)>& eligible,
                 const IssueEvent& issue);

// Inside a command on `subject`'s partition: reads the OTP state, decides (decide_otp) and
// appends what the validation records: OtpVerified on ok (the caller adds what the code
// grants), else RateLimited, OtpFailed and AccountLocked with the lockout mail as decided.
// The name a purpose has in lookup hashes and projections ("login", "reauth").
const char* purpose_name(OtpPurpose purpose);
// `account` is subject.user's row as the caller read it on the partition (nullopt for an
// unknown address), so one command reads it once.
Result<OtpDecision> check_code(Context& x, const AddressSubject& subject,
                               const std::optional<projections::UserRow>& account,
                               OtpPurpose purpose, OtpCode code, Events& out);
// The refusal of a validation that did not succeed.
Refusal code_refusal(const OtpDecision& d, TimePoint now);
// The alerts of a decided validation (lockout mail wake-up and hooks), after its append.
void after_code_decision(Context& x, const OtpDecision& d, std::string_view subject,
                         bool known_user);

}  // namespace sechex::api::identity::detail
