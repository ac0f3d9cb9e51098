// The identity routes of API.md ("Identity"), specs 002, 003 and 004:
//
//   POST /v1/auth/register              {email, password, consent:true} -> 201
//   POST /v1/auth/verify-email          {token}
//   POST /v1/auth/verify-email/resend   {email} -> 202 whatever the address; 429 past the
//                                       per-client limit (request_limiter.h)
//   POST /v1/auth/login                 {email, password, rememberMe?} -> token pair
//   POST /v1/auth/refresh               {refreshToken} -> new pair (rotation, reuse detection)
//   POST /v1/auth/logout | logout-all   (Bearer)
//   GET  /v1/auth/password/policy       the level in force and its rules
//   PUT  /v1/admin/policy/password      (admin) {level: "basic" | "high"}
//   GET  /v1/me · GET /v1/me/sessions   (Bearer)
//   GET  /v1/auth/csrf                  (session) the CSRF token of the caller's session: by
//                                       Bearer, access cookie, or a current refresh cookie of
//                                       a live session (the access cookie may have expired)
//
// Browser sessions (csrf.h): every token pair is also set as __Host- cookies; refresh reads the
// refresh cookie when the body (which may be empty) names no token, and then the CSRF check
// applies (a refusal is audited as CsrfRejected); logout clears them, and login refuses a
// cross-site browser request.
//
// Every command runs on the command path (commands.h) of its subject's partition: the state is
// read, identity_decide.h decides, and the events are appended and applied before the next
// command of that partition decides, so "5 failures -> lock" holds under any concurrency.
// Argon2id work happens before the partition is taken (passwords.h pool), so a login holds its
// partition for a few projection reads only; the decision re-checks that the password it
// verified is still the account's.
//
// Subjects and partitions:
//   - a user's events go to partition_for(user id); a new user's id is drawn until it falls in
//     the partition of its email hash, so registrations of one address serialise on one
//     partition and "duplicate -> 409" cannot race (expected 8 draws for 8 partitions);
//   - events about an email no account has (a failed login) use "anon:" + hex(email hash);
//   - policy changes use the subject "policy".
//
// Secrets: passwords reach only the hasher; verification and refresh tokens and OTP codes are
// stored as keyed lookup hashes (lookup_hash.h); mails carry them (sealed in MailQueued), logs
// never do.
//
// Mail: each command that sends mail appends its MailQueued event in the same append as the
// event that caused it, through `queue_mail` (mail.h's build_mail_queued in ledgerd); the
// delivery worker sends it.
//
// Thread-safety: handlers are thread-safe and blocking (commands on Exec::pool, reads on
// Exec::read).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "api/app/commands.h"
#include "api/app/work_queue.h"
#include "api/auth/auth.h"
#include "api/auth/csrf.h"
#include "api/auth/route_registry.h"
#include "api/crypto/jose.h"
#include "api/crypto/lookup_hash.h"
#include "api/crypto/passwords.h"
#include "api/http/client_ip.h"
#include "api/http/request_limiter.h"
#include "api/http/server.h"
#include "api/identity/decide.h"
#include "api/identity/rules.h"
#include "ledger/clock.h"
#include "ledger/event_builder.h"
#include "ledger/key_store.h"

namespace sechex::api {

// Builds the MailQueued event of one mail: kind ("verify_email", "password_reset", ...), the
// recipient, the secret the mail carries (token or code; may be empty) and the locale.
using QueueMail = std::function<Result<ledger::Bytes>(
    const ledger::EventMeta& meta, std::string_view kind, std::string_view to,
    std::string_view secret, std::string_view locale)>;

struct IdentityConfig {
  identity::Limits limits;
  std::string public_origin;  // the site browsers use (csrf.h), e.g. "https://id.example.com"
  std::string consent_version = "2026-01";
  TrustedProxies proxies;
};

struct IdentityDeps {
  CommandPath& commands;
  ledger::KeyStore& keys;
  const Authenticator& auth;
  const jose::TokenIssuer& issuer;
  PasswordHasher& hasher;
  const LookupHasher& lookup;
  const identity::DisposableDomains& disposable;
  const Clock& clock;
  // Work the routes that answer 202 whatever the address do after answering (identity_support.h
  // accept_then); stopped before these deps go.
  WorkQueue& deferred;
  QueueMail queue_mail;               // may be empty: no mail is queued (tests of the rules alone)
  std::function<void()> mail_queued;  // wakes the delivery worker; may be empty
  // Browser sessions: refresh by cookie needs the CSRF check (null: cookies are not accepted).
  const CsrfTokens* csrf = nullptr;
  // One line per failure nobody else hears of (work done after its 202); may be empty. Never
  // given an address, a code or a token.
  std::function<void(const std::string&)> log;
};

class IdentityApi {
 public:
  IdentityApi(IdentityDeps deps, IdentityConfig config);

  void add_routes(RouteRegistry& routes);

  Response register_user(const Request& req);
  Response verify_email(const Request& req);
  Response resend_verification(const Request& req);
  Response login(const Request& req);
  Response refresh(const Request& req);
  Response logout(const Request& req, const Principal& who, bool all);
  Response password_policy(const Request& req);
  Response set_password_policy(const Request& req, const Principal& admin);
  Response me(const Request& req, const Principal& who);
  Response my_sessions(const Request& req, const Principal& who);
  Response csrf_token(const Request& req);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  RequestLimiter resend_limiter_;
};

}  // namespace sechex::api
