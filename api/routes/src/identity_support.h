// Helpers the identity route files share (internal to api/): body parsing with API.md's input
// rules, the answers every route gives the same way, and RequestContext, which knows who is
// asking, from where, and how to build and run a command's events.
//
// Thread-safety: RequestContext lives for one request on one thread.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth/csrf.h"
#include "api/http/api_error.h"
#include "api/http/i18n.h"
#include "api/json/json_input.h"
#include "api/routes/identity_api.h"
#include "ledger/crypto.h"
#include "ledger/time_format.h"
#include "ledger/utf8.h"
#include "projections/access.h"
#include "projections/identity.h"
#include "projections/rate_limits.h"
#include "projections/sessions.h"
#include "projections/users.h"

namespace sechex::api::identity_support {

using json = nlohmann::json;
using Events = std::vector<ledger::Bytes>;
using projections::SessionId;
using projections::UserId;
using FbBytes = flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>;

inline constexpr const char* kPolicySubject = "policy";
inline constexpr JsonLimits kBodyLimits{2, 4096, 100};

inline ledger::ByteView view_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string hex_of(std::string_view s) { return ledger::to_hex(view_of(s)); }
inline FbBytes bytes(flatbuffers::FlatBufferBuilder& f, std::string_view s) {
  return f.CreateVector(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

// The JSON object of a request body, or the 4xx to send instead.
inline ApiResult<json> read_body(const Request& req) {
  SECHEX_TRYV(require_json(req));
  auto parsed = parse_json_input(req.body, kBodyLimits);
  if (!parsed) {
    return boost::outcome_v2::failure(
        invalid_request(parsed.error().reason, "the request body is not acceptable JSON"));
  }
  if (!parsed.value().is_object()) {
    return boost::outcome_v2::failure(invalid_request("not_an_object", "send a JSON object"));
  }
  return std::move(parsed).value();
}

// A required string field, or nullopt (the caller answers 400 missing_field).
inline std::optional<std::string> string_field(const json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

inline ApiError missing(const char* field) {
  return invalid_request("missing_field", std::string("`") + field + "` is required",
                         json{{"field", field}});
}

// A required string field, or the 400 missing_field.
inline ApiResult<std::string> required_string(const json& body, const char* name) {
  auto value = string_field(body, name);
  if (!value) return boost::outcome_v2::failure(missing(name));
  return std::move(*value);
}

inline ApiError retry_later(unsigned status, std::string_view code, std::string_view message,
                            std::int64_t seconds, json details = json::object()) {
  return {status, std::string(code), std::string(message), std::move(details), seconds};
}

// The one 423 `account_locked` answer (login, password change, reauth, sign-in by code):
// details.lockedUntil (RFC 3339, null while only an admin can unlock), details.needsAdminUnlock,
// and details.retryAfter with the Retry-After header while the lock ends by itself.
inline ApiError account_locked(std::int64_t locked_until_micros, std::int64_t retry_after_seconds) {
  const bool admin_only = locked_until_micros == INT64_MAX;
  json details{
      {"lockedUntil", admin_only ? json(nullptr) : json(format_rfc3339(locked_until_micros))},
      {"needsAdminUnlock", admin_only}};
  if (!admin_only && retry_after_seconds > 0) details["retryAfter"] = retry_after_seconds;
  return retry_later(423, "account_locked",
                     admin_only ? "this account is locked; contact support to unlock it"
                                : "too many failed attempts; this account is locked for a while",
                     admin_only ? 0 : retry_after_seconds, details);
}

// The answer to a command that could not run: the one place a command's error code becomes an
// API error.
inline ApiError command_failed(const std::error_code& ec, const PartitionOwnership& ownership,
                               ledger::Partition p) {
  if (ec == OwnershipErrc::not_owner) {
    auto owner = ownership.owner_of(p);
    return {421,
            "misdirected",
            "this node does not own the account's partition; send it to the owner",
            {{"partition", p.value}, {"owner", owner ? json(*owner) : json(nullptr)}}};
  }
  if (ec == PasswordErrc::overloaded) {
    return retry_later(503, "overloaded", "too many password checks at once; retry shortly", 1);
  }
  return retry_later(503, "unavailable", "the ledger could not record this; retry shortly", 1);
}

// The account `user`, nullopt when there is none or its row cannot be read (answered as an
// unknown account). Commands that must tell the two apart call projections::user_row.
inline std::optional<projections::UserRow> account_of(const projections::ProjectionStore& store,
                                                      std::string_view user) {
  auto row = projections::user_row(store, user);
  if (!row) return std::nullopt;
  return std::move(row).value();
}

// The end of the lockout in force at `now` (INT64_MAX when only an admin lifts it), or nullopt;
// a lockout that cannot be read is in force (fails closed).
inline std::optional<std::int64_t> locked_until(const projections::ProjectionStore& store,
                                                std::string_view subject, std::int64_t now) {
  auto lock = projections::lock_in_force(store, subject, now);
  if (!lock) return INT64_MAX;
  return lock.value();
}

inline std::string policy_level(const projections::ProjectionStore& store) {
  auto level = projections::password_policy_level(store);
  return level ? level.value() : std::string("basic");
}

inline json policy_json(const identity::PasswordPolicy& p) {
  return {{"level", identity::to_string(p.level)}, {"minLength", p.min_length},
          {"requireUpper", p.require_upper},       {"requireLower", p.require_lower},
          {"requireDigit", p.require_digit},       {"requireSpecial", p.require_special}};
}

inline identity::PasswordPolicy current_policy(const projections::ProjectionStore& store) {
  return identity::PasswordPolicy::for_level(
      identity::parse_level(policy_level(store)).value_or(identity::PasswordLevel::basic));
}

// What every handler needs besides its own logic: who is asking, from where, on which
// partition, and how to build and run its events.
class RequestContext {
 public:
  IdentityDeps& deps;
  const IdentityConfig& config;
  const Request& req;
  std::int64_t now;

  // `at`: the time the request is decided at; now by default (work done after answering, see
  // accept_then(), keeps its request's time).
  RequestContext(IdentityDeps& d, const IdentityConfig& c, const Request& r,
                 std::optional<std::int64_t> at = std::nullopt)
      : deps(d), config(c), req(r), now(at ? *at : d.clock.now_micros()) {}

  // The canonical client IP and the keyed hash of its client_key() (what per-client limits
  // count by and events record), worked out on first use: reads such as GET /v1/me need neither.
  const std::string& ip() const {
    resolve_client();
    return ip_;
  }
  const std::string& ip_hash() const {
    resolve_client();
    return ip_hash_;
  }

  projections::ProjectionStore& store() { return deps.commands.projections(); }

  // Personal data (IP, user agent) is sealed only under a real account's key: an "anon:"
  // subject per unknown email would let anyone mint data keys at will.
  ledger::EventMeta meta(const std::string& subject, const std::string& actor) const {
    ledger::EventMeta m;
    m.subject = subject;
    m.actor = actor;
    m.request_id = req.request_id;
    m.time_micros = now;
    m.ip_hash = ip_hash();
    if (!subject.starts_with(projections::kAnonymousSubjectPrefix) && subject != kPolicySubject) {
      m.ip = ip();
      // EventBuilder keeps it to well-formed UTF-8 within kMaxUserAgentBytes.
      if (const auto* ua = req.header("user-agent")) m.user_agent = *ua;
    }
    return m;
  }

  template <typename Build>
  Result<ledger::Bytes> event(const std::string& subject, const std::string& actor, Build&& build) {
    ledger::EventBuilder b(&deps.keys, meta(subject, actor));
    return build(b);
  }

  Result<void> queue_mail(Events& out, const std::string& user, std::string_view kind,
                          std::string_view to, std::string_view secret) {
    if (!deps.queue_mail) return boost::outcome_v2::success();
    // The language the error messages are negotiated in (i18n.h, q-values and all): a client
    // that said `en, zh;q=0` gets English mail as it gets English errors.
    const auto* al = req.header("accept-language");
    const auto locale = negotiate_language(al != nullptr ? *al : std::string_view());
    SECHEX_TRY(auto mail, deps.queue_mail(meta(user, "system"), kind, to, secret, locale));
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

  Result<std::vector<ledger::Record>> run(ledger::Partition p, const CommandPath::Decide& decide) {
    return deps.commands.run(p, decide);
  }
  ledger::Partition partition_of(std::string_view subject) const {
    return deps.commands.partition_for(subject);
  }

  // Issues the access token of a session; the refresh token is the caller's.
  Result<jose::IssuedToken> access_token(const UserId& user, const SessionId& session) {
    jose::TokenSubject s{user.str(), session.str(), {}};
    if (auto rec = account_of(store(), user.str())) s.roles = rec->roles;
    return deps.issuer.issue(
        s, std::chrono::seconds(config.limits.access_token_micros / identity::kSecondMicros));
  }

  Response token_pair(const UserId& user, const SessionId& session,
                      const std::string& refresh_token, unsigned status = 200) {
    auto access = access_token(user, session);
    if (!access) return json_error(500, "internal_error", "cannot issue the access token");
    const auto ttl = config.limits.access_token_micros / identity::kSecondMicros;
    auto r = json_ok(json{{"accessToken", access.value().token},
                          {"refreshToken", refresh_token},
                          {"tokenType", "Bearer"},
                          {"expiresIn", ttl}}
                         .dump(),
                     status);
    // The same pair as __Host- cookies for browsers (csrf.h); API clients ignore them.
    r.headers.emplace_back("Set-Cookie", access_cookie(access.value().token, ttl));
    r.headers.emplace_back(
        "Set-Cookie", refresh_cookie(refresh_token,
                                     config.limits.refresh_token_micros / identity::kSecondMicros));
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }

 private:
  void resolve_client() const {
    if (resolved_) return;
    ip_ = config.proxies.client_ip(req.peer, req.header("x-forwarded-for"));
    ip_hash_ = deps.lookup.ip(client_key(ip_));
    resolved_ = true;
  }
  // One request on one thread (see the file's header): a lazy cache needs no lock.
  mutable bool resolved_ = false;
  mutable std::string ip_;
  mutable std::string ip_hash_;
};

// The password step login, password change and reauth share (004 FR-011, FR-012): an account's
// state as decide_login sees it, read on its partition.
inline Result<identity::LoginAccount> login_account(RequestContext& x, const std::string& user,
                                                    const projections::UserRow& rec) {
  identity::LoginAccount a;
  a.status = rec.status;
  a.email_verified = rec.email_verified;
  SECHEX_TRY(a.consecutive_failures, projections::login_failures(x.store(), user, x.now));
  a.locked_until = locked_until(x.store(), user, x.now);
  return a;
}

// ...and what a decided attempt records, appended to `out`: LoginFailed (its reason as
// `reason_prefix` + the decision's reason + `reason_suffix`, so the audit tells login, reauth
// and password change apart) when the attempt failed, and AccountLocked when it locks the
// subject. `email_hash` may be empty (the event then carries none).
inline Result<void> record_password_attempt(RequestContext& x, const std::string& subject,
                                            std::string_view email_hash,
                                            const identity::LoginDecision& decision,
                                            std::string_view reason_prefix,
                                            std::string_view reason_suffix, Events& out) {
  if (!decision.failure_reason.empty()) {
    const auto reason =
        std::string(reason_prefix) + decision.failure_reason + std::string(reason_suffix);
    SECHEX_TRY(auto failed, x.event(subject, subject, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateLoginFailed(f, email_hash.empty() ? 0 : bytes(f, email_hash),
                                                f.CreateString(reason),
                                                decision.consecutive_failures));
    }));
    out.push_back(std::move(failed));
  }
  if (decision.lock_until != 0) {
    SECHEX_TRY(auto locked, x.event(subject, "system", [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateAccountLocked(f, f.CreateString("consecutive_login_failures"),
                                                  decision.lock_until, false));
    }));
    out.push_back(std::move(locked));
  }
  return boost::outcome_v2::success();
}

// A new session's secrets: its ids and refresh token (only the token's keyed hash is recorded).
struct NewSession {
  SessionId session;
  std::string family;
  std::string refresh_token;
  std::string refresh_hash;
};
inline std::optional<NewSession> new_session(const LookupHasher& lookup) {
  auto session = identity::random_token(16);
  auto family = identity::random_token(16);
  auto refresh_token = identity::random_token(32);
  if (!session || !family || !refresh_token) return std::nullopt;
  NewSession s{SessionId(session.value()), family.value(), refresh_token.value(), {}};
  s.refresh_hash = lookup.token("refresh", s.refresh_token);
  return s;
}

// LoginSucceeded{method} and SessionStarted of a new session, appended to `out`: the success
// events of IdentityApi::login, shared with sign-in by code (otp_api.cc).
inline Result<void> start_session(RequestContext& x, const std::string& subject,
                                  const NewSession& s, bool remember_me, schema::LoginMethod method,
                                  Events& out) {
  SECHEX_TRY(auto succeeded, x.event(subject, subject, [&](ledger::EventBuilder& b) {
    auto& f = b.fbb();
    return b.finish(schema::CreateLoginSucceeded(f, f.CreateString(s.session.str()), method));
  }));
  out.push_back(std::move(succeeded));
  SECHEX_TRY(
      auto started,
      x.event(subject, subject, [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
        FbBytes device;
        if (const auto* ua = x.req.header("user-agent")) {
          SECHEX_TRY(device, b.seal("device", ledger::to_utf8(*ua, ledger::kMaxUserAgentBytes)));
        }
        auto& f = b.fbb();
        return b.finish(schema::CreateSessionStarted(
            f, f.CreateString(s.session.str()), f.CreateString(s.family), bytes(f, s.refresh_hash),
            remember_me, identity::idle_expiry(remember_me, x.config.limits, x.now), 0, device));
      }));
  out.push_back(std::move(started));
  return boost::outcome_v2::success();
}

// What the routes that mail a one-time secret to an account's own address share once they know
// the account (verification resend, password forgot, OTP request); run after the answer, by
// accept_then(). On the account's partition: nothing unless `eligible(record)`; nothing beyond
// `cap` such mails per `cap_window_micros` (counted in `cap_scope`; silent, since the answer
// must not differ); else the event `issue` builds (recording the secret's hash) and the
// MailQueued of `kind` carrying `secret` to the address sealed in the users record, in one
// append. What fails is not told to anyone: the client had its 202 already, as it would have
// for an unknown address.
struct SecretMail {
  std::string_view kind;
  std::string_view secret;
  std::string actor;  // of the recording event: the user asking, or "system"
  const char* cap_scope;
  std::int64_t cap_window_micros;
  std::uint32_t cap;
};
template <typename Eligible, typename Issue>
void mail_secret(RequestContext& x, const std::string& user, const SecretMail& m,
                 Eligible&& eligible, Issue&& issue) {
  bool queued = false;
  auto ran = x.run(x.partition_of(user), [&]() -> Result<Events> {
    SECHEX_TRY(const auto rec, projections::user_row(x.store(), user));
    if (!rec || !eligible(*rec)) return Events{};
    SECHEX_TRY(auto sent,
               projections::rate_count(x.store(), m.cap_scope, user, x.now, m.cap_window_micros));
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
               " mail answered 202 was not recorded: " + ran.error().message());
  }
  if (queued && x.deps.mail_queued) x.deps.mail_queued();
}

// An email address as the routes that take one see it: the keyed hash of its normalised form
// (an address that is not even valid is hashed as given, so it is answered like an unknown
// one), the account it names, and the subject its events go to: the account, or "anon:" +
// hex(hash) when there is none.
struct AddressSubject {
  std::string email_hash;
  std::optional<std::string> user;
  std::string id;
};
// The form of an address its keyed hash is taken of: normalised when valid, as given when not.
inline std::string normalised_address(std::string_view email) {
  auto checked = identity::check_email(email, identity::DisposableDomains());
  return checked ? checked.value().address : std::string(email);
}

inline AddressSubject address_subject(RequestContext& x, std::string_view email) {
  AddressSubject s;
  s.email_hash = x.deps.lookup.email(normalised_address(email));
  if (auto id = projections::user_by_email(x.store(), s.email_hash); id && id.value()) {
    s.user = *id.value();
  }
  s.id =
      s.user ? *s.user : std::string(projections::kAnonymousSubjectPrefix) + hex_of(s.email_hash);
  return s;
}

// The answer of the routes that must answer alike whatever the address (verification resend,
// password forgot, OTP request), given before their work so that its time tells nothing either
// (issue 12: mailing a known address took twice as long as ignoring an unknown one, which gave
// it away). With `p` (the partition of the address's subject), a node that does not own it
// answers 421 naming the owner, known and unknown addresses alike (Kafka mode). Otherwise the
// answer is 202 and `work(later)` is queued on deps.deferred once that answer has been written
// (Response::after_write: the work never competes with its own answer for the CPU), with a
// RequestContext of a copy of this request at this request's time. When the queue is full the
// request waits up to a second for a place (the handler runs on the blocking pool; this keeps
// the backpressure a client saw when the work was done inline), then answers 503 `overloaded`,
// whatever the address.
//
// `key` orders the work: work of one key runs in the order its requests came (one address,
// or one user), so a client's newest code or link is the one its newest mail carries.
template <typename Work>
Response accept_then(RequestContext& x, std::optional<ledger::Partition> p, std::string key,
                     Work&& work) {
  const auto& ownership = x.deps.commands.ownership();
  if (p && !ownership.owns(*p)) return command_failed(OwnershipErrc::not_owner, ownership, *p);
  auto ticket = x.deps.deferred.reserve(std::chrono::seconds(1));
  if (!ticket) return retry_later(503, "overloaded", "too many requests at once; retry shortly", 1);
  auto r = json_ok(json{{"status", "accepted"}}.dump(), 202);
  r.after_write = [ticket = std::make_shared<WorkQueue::Ticket>(std::move(*ticket)), &deps = x.deps,
                   &config = x.config, copy = std::make_shared<const Request>(x.req), now = x.now,
                   key = std::move(key), work = std::forward<Work>(work)]() mutable {
    const bool queued =
        ticket->submit(key, [&deps, &config, copy, now, work = std::move(work)]() mutable {
          RequestContext later(deps, config, *copy, now);
          work(later);
        });
    if (!queued && deps.log) deps.log("work answered 202 was dropped: the server is stopping");
  };
  return r;
}

// accept_then for a route that names an email address; `work(later, user)` gets the account it
// names, if any. When this node owns every partition (embedded, or one Kafka node) even the
// lookup of the address runs after the answer, so the answer does the same work whatever the
// address. Otherwise the lookup comes first, since the partition it names decides between 202
// and 421: a RocksDB hit against a miss, microseconds apart (README "Known limits").
template <typename Work>
Response accept_for_address(RequestContext& x, std::string email, Work&& work) {
  // The key: the address's keyed hash, as cheap for an unknown address as for a known one.
  auto key = x.deps.lookup.email(normalised_address(email));
  if (x.deps.commands.ownership().owns_all()) {
    return accept_then(
        x, std::nullopt, std::move(key),
        [email = std::move(email), work = std::forward<Work>(work)](RequestContext& later) mutable {
          work(later, address_subject(later, email).user);
        });
  }
  auto subject = address_subject(x, email);
  return accept_then(x, x.partition_of(subject.id), std::move(key),
                     [user = std::move(subject.user), work = std::forward<Work>(work)](
                         RequestContext& later) mutable { work(later, user); });
}

// The 429 for a client past `limiter` on a route that must answer alike for every address
// (request_limiter.h); success to go on. The first refusal of a burst is recorded as
// RateLimited{scope, ip hash} under "anon:ip:" + hex(ip hash), best effort: a node that does not
// own that partition, or a failed append, still refuses.
inline ApiResult<void> admit_client(RequestContext& x, RequestLimiter& limiter, const char* scope) {
  const auto& key = x.ip_hash();  // client_key(), keyed like every stored IP
  const auto v = limiter.check(key, x.now);
  if (v.allowed) return pass();
  const auto seconds = identity::retry_after_seconds(v.retry_at_micros, x.now);
  if (v.first_refusal) {
    const auto subject = std::string(projections::kAnonymousSubjectPrefix) + "ip:" + hex_of(key);
    (void)x.run(x.partition_of(subject), [&]() -> Result<Events> {
      SECHEX_TRY(auto limited, x.event(subject, subject, [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(schema::CreateRateLimited(f, f.CreateString(scope), bytes(f, key),
                                                  static_cast<std::uint32_t>(seconds)));
      }));
      Events out;
      out.push_back(std::move(limited));
      return out;
    });
  }
  return retry_later(429, "rate_limited", "too many requests from this address; retry later",
                     seconds, json{{"retryAfter", seconds}});
}

// The 400 `weak_password` answer when `password` misses the policy in force (the address's
// local part counts against its strength), success when it is acceptable. Register, change
// and reset all check new passwords this way.
inline ApiResult<void> check_new_password(const projections::ProjectionStore& store,
                                          std::string_view password, std::string_view address) {
  const auto policy = current_policy(store);
  const std::string_view context[] = {address.substr(0, address.find('@'))};
  const auto check = identity::check_password(password, policy, context);
  if (check.ok()) return pass();
  return ApiError{400,
                  "weak_password",
                  "the password does not meet the password policy",
                  {{"unmet", check.unmet},
                   {"strength", check.strength},
                   {"strengthLabel", check.strength_label},
                   {"policy", policy_json(policy)}}};
}

// The caller's profile as GET /v1/me and the GDPR export show it.
inline json profile_json(RequestContext& x, const std::string& user,
                         const projections::UserRow& record) {
  auto address = x.open_sealed(user, record.email, "email");
  return json{{"userId", user},
              {"email", address ? json(address.value()) : json(nullptr)},
              {"emailVerified", record.email_verified},
              {"status", record.status},
              {"roles", record.roles},
              {"registeredAt", record.registered_at},
              {"consent", {{"version", record.consent_version}}}};
}

// A session as the GDPR export shows it (the row's own names; times in micros).
inline json session_json(const projections::SessionRow& s) {
  return json{{"user", s.user},
              {"family", s.family},
              {"created_at", s.created_at},
              {"last_seen", s.last_seen},
              {"idle_expires_at", s.idle_expires_at},
              {"absolute_expires_at", s.absolute_expires_at},
              {"remember_me", s.remember_me},
              {"state", s.state},
              {"ended_at", s.ended_at},
              {"end_reason", s.end_reason}};
}

}  // namespace sechex::api::identity_support
