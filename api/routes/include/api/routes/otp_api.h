// Email one-time codes, step-up re-authentication and the admin unlock (spec 002, API.md
// "Identity" and "Ledger, audit and operations"):
//
//   POST /v1/auth/otp/request   {email} -> 202 whatever the address (no enumeration).
//       Without Authorization: a Login code for a known, verified, active account, mailed to
//       its address. WITH a valid Bearer token (or a browser's session cookie, then with the CSRF
//       check): a Reauth code for POST /v1/auth/reauth, mailed
//       to the caller's own address (the body, and any email in it, is ignored); a bad token
//       answers 401. A new code replaces the previous one of its purpose.
//       At most Limits::otp_requests_per_user codes per account per otp_request_window,
//       SILENT (still 202, nothing issued or sent): a 429 would tell a known address. Without a
//       token, at most Limits::otp_requests_per_ip requests per client IP per window, whatever the
//       address, counted in memory (request_limiter.h), then 429 rate_limited with Retry-After:
//       that count includes unknown addresses, so its 429 tells nothing about any.
//   POST /v1/auth/otp/verify    {email, code} -> token pair, like POST /v1/auth/login
//       (OtpVerified + LoginSucceeded{method Otp} + SessionStarted). 401 invalid_code (also
//       for an unknown address, recorded as OtpFailed under "anon:" + hex(email hash)),
//       410 code_expired, 429 rate_limited with Retry-After after otp_validations_per_window
//       validations (failed or not) per address per window (RateLimited recorded), 423
//       account_locked once more than otp_failures_to_lock failures fall in an hour:
//       AccountLocked{needs_admin_unlock} + MailQueued(otp_lockout) to the owner + the
//       on_lockout hook (ledgerd: sechex_security_alerts_total{kind="otp_lockout"} and one log
//       line naming the user id only; CommandDeps::on_otp_lockout). An unknown address is locked
//       alike under its anon subject (no mail, no alert; the lock ends by itself after a day,
//       access.h), so its answers match an account's.
//   POST /v1/auth/reauth        (Bearer) {code} | {password} -> {reauthToken, expiresIn: 300}.
//       The grant is recorded under the keyed hash of the session and the token
//       (IdentityCommands::reauth_id): a step-up obtained in one session is worth nothing in
//       another of the same user (issue 12).
//       {code}: a Reauth-purpose code (see above), under the same limits as verify.
//       {password}: checked with the PasswordHasher before the partition is taken; a wrong one
//       is a LoginFailed ("reauth_wrong_password") counting toward the login lock (5 -> 30
//       min), so step-up cannot brute-force the password. Success records ReauthGranted{hex of
//       the token's keyed hash, expiry, "otp" | "password"}; the token itself is never stored.
//   POST /v1/admin/users/{id}/unlock  (admin) {reason?} -> {status:"unlocked"};
//       AccountUnlocked{by_admin, reason} by "admin:<sub>"; 404 not_found for an unknown id.
//
// Codes are stored only as LookupHasher::otp(user, purpose, code) and compared with
// constant_time_equal; the code travels only sealed inside MailQueued, never in a log line, a
// response or another event. Every command runs on its subject's partition through the
// command path (decide_otp / decide_login read the state inside the command).
//
// Thread-safety: handlers are thread-safe and blocking (Exec::pool).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "api/routes/identity_api.h"
#include "projections/ids.h"

namespace sechex::api {

class OtpApi {
 public:
  OtpApi(IdentityDeps deps, IdentityConfig config);

  void add_routes(RouteRegistry& routes);

  Response request_code(const Request& req, const RouteRegistry::MaybeSignedIn& signed_in);
  Response verify_code(const Request& req);
  Response reauth(const Request& req, const Principal& who);
  Response unlock_user(const Request& req, const Principal& admin);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  RequestLimiter request_limiter_;
};

}  // namespace sechex::api
