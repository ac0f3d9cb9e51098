#include "api/routes/identity_api.h"

#include <nlohmann/json.hpp>

#include "identity_support.h"

namespace sechex::api {

using namespace identity_support;

IdentityApi::IdentityApi(IdentityDeps deps, IdentityConfig config)
    : d_(std::move(deps)),
      config_(std::move(config)),
      resend_limiter_({.limit = d_.identity.limits().mail_requests_per_ip,
                       .window = d_.identity.limits().mail_request_ip_window}) {}

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
  routes.open_to_all(
      "GET", "/v1/auth/csrf",
      [this](const Request& r, const RouteRegistry::MaybeSignedIn& c) { return csrf_token(r, c); },
      Exec::read);
}

// ---- Register (004 FR-001..FR-007, 003 email validation) ----
Response IdentityApi::register_user(const Request& req) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRY(const auto password, required_string(body, "password"));
  if (!true_field(body, "consent")) {
    return ApiError{400, "consent_required",
                    "registration needs consent to the processing of your data (consent: true)",
                    json{{"field", "consent"}}};
  }
  SECHEX_TRY(const auto registered, answered(d_.identity.register_user(caller_of(d_, config_, req),
                                                                       email, Password(password))));
  json warnings = json::array();
  if (registered.disposable) warnings.push_back("disposable_email");
  return json_ok(json{{"userId", registered.user.str()},
                      {"status", "pending_verification"},
                      {"warnings", warnings}}
                     .dump(),
                 201);
}

// ---- Verify email (004 FR-006, FR-007, scenarios 13-15) ----
Response IdentityApi::verify_email(const Request& req) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto token, required_string(body, "token"));
  SECHEX_TRYV(answered(d_.identity.verify_email(caller_of(d_, config_, req), token)));
  return json_ok(json{{"status", "verified"}}.dump());
}

// ---- Resend the verification mail: 202 whatever the address (no enumeration) ----
Response IdentityApi::resend_verification(const Request& req) {
  return request_link(d_, config_, req, resend_limiter_, identity::Link::verify_email);
}

// ---- Login (004 FR-008..FR-012, API.md) ----
Response IdentityApi::login(const Request& req) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRY(const auto password, required_string(body, "password"));
  // Login CSRF: a foreign page must not sign the browser into the attacker's account.
  if (auto site = check_same_site(req, config_.public_origin); !site) {
    return csrf_refusal(site.error(), "log in from this site");
  }
  SECHEX_TRY(const auto in,
             answered(d_.identity.login(caller_of(d_, config_, req), email, Password(password),
                                        true_field(body, "rememberMe"))));
  return token_pair(in, d_.identity.limits());
}

// ---- Refresh: rotation with reuse detection (004 FR-018, FR-020) ----
Response IdentityApi::refresh(const Request& req) {
  // A browser refreshing by cookie may send no body at all.
  SECHEX_TRY(const auto body, req.body.empty() && d_.csrf != nullptr
                                  ? ApiResult<json>(json::object())
                                  : read_body(req));
  auto presented = string_field(body, "refreshToken");
  const bool by_cookie = !presented && d_.csrf != nullptr;
  if (by_cookie) presented = cookie(req, kRefreshCookie);
  if (!presented) return missing("refreshToken");
  const auto caller = caller_of(d_, config_, req);
  std::optional<identity::RefreshHolder> holder;
  if (by_cookie) {
    // A cookie the browser attached on its own proves nothing: the page must show it is ours.
    auto read = d_.identity.refresh_holder(*presented, caller.now);
    if (!read) return to_api_error(Refused::unavailable);
    if (!read.value()) return to_api_error(Refused::invalid_token);
    holder = std::move(*read.value());
    SECHEX_TRYV(
        d_.auth.require_csrf(Principal{holder->user.str(), holder->session.str(), {}, 0, true}, req,
                             "refreshing by cookie needs this site's CSRF token"));
  }
  SECHEX_TRY(const auto in,
             answered(d_.identity.refresh(caller, *presented, holder ? &*holder : nullptr)));
  return token_pair(in, d_.identity.limits());
}

// ---- Logout (004 FR-016, scenario 9) ----
Response IdentityApi::logout(const Request& req, const Principal& principal, bool all) {
  SECHEX_TRYV(answered(d_.identity.logout(caller_of(d_, config_, req), UserId(principal.subject),
                                          SessionId(principal.session), all)));
  auto r = json_ok(json{{"status", all ? "logged_out_everywhere" : "logged_out"}}.dump());
  r.headers.emplace_back("Set-Cookie", cleared_cookie(kAccessCookie));
  r.headers.emplace_back("Set-Cookie", cleared_cookie(kRefreshCookie));
  return r;
}

// ---- Password policy (004 FR-003, FR-004, FR-041) ----
Response IdentityApi::password_policy(const Request&) {
  return json_ok(policy_json(d_.identity.password_policy()).dump());
}

Response IdentityApi::set_password_policy(const Request& req, const Principal& admin) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto level_text, required_string(body, "level"));
  const auto level = identity::parse_level(level_text);
  if (!level) return invalid_request("invalid_level", "level must be \"basic\" or \"high\"");
  SECHEX_TRY(const auto policy, answered(d_.identity.set_password_policy(
                                    caller_of(d_, config_, req), admin.subject, *level)));
  return json_ok(policy_json(policy).dump());
}

// ---- The caller's own profile and sessions (GDPR access starts here) ----
Response IdentityApi::me(const Request&, const Principal& principal) {
  const UserId user(principal.subject);
  SECHEX_TRY(const auto profile, answered(d_.identity.profile(user)));
  return json_ok(profile_json(user, profile).dump());
}

Response IdentityApi::my_sessions(const Request&, const Principal& principal) {
  SECHEX_TRY(const auto sessions,
             answered(d_.identity.sessions(UserId(principal.subject), d_.clock.now())));
  json out = json::array();
  for (const auto& [id, s] : sessions) {
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
Response IdentityApi::csrf_token(const Request& req, const RouteRegistry::MaybeSignedIn& who) {
  if (d_.csrf == nullptr) return ApiError{404, "not_found", "browser sessions are not enabled"};
  const auto now = d_.clock.now();
  std::string session;
  if (who && *who) {
    session = who->value().session;
  } else if (const auto refresh = cookie(req, kRefreshCookie)) {
    // The access cookie (1 h) may be gone while the refresh cookie (7 d) lives, and refreshing
    // by cookie needs this token: a current refresh token of a live session also gets one. A
    // cross-site page can send this GET but cannot read the answer.
    auto holder = d_.identity.refresh_holder(*refresh, now);
    if (holder && holder.value() && holder.value()->current &&
        d_.identity.session_live(holder.value()->session, now)) {
      session = holder.value()->session.str();
    }
  }
  if (session.empty()) return who ? who->error() : d_.auth.missing_credentials();
  auto r = json_ok(json{{"csrfToken", d_.csrf->issue(session, now)},
                        {"expiresIn", identity::whole_seconds(kCsrfTokenLifetime)}}
                       .dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace sechex::api
