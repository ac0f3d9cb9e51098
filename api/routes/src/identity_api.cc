#include "api/routes/identity_api.h"

#include <nlohmann/json.hpp>

#include "identity_support.h"
#include "ledger/utf8.h"

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
      "PATCH", "/v1/me", [this](const Request& r, W w) { return update_me(r, w); }, Exec::pool);
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
  // US7-1: the sign-up form must carry this browser's pre-session token (GET /v1/auth/csrf
  // without a session) and come from this site; API clients (no cookies, no Origin, no fetch
  // metadata) are not browsers and stay as they were.
  if (d_.csrf != nullptr && from_browser(req)) {
    const auto pre = cookie(req, kPreSessionCookie);
    // Without the cookie the binding is empty, which no token matches (audited like any refusal).
    const Principal visitor{
        "anon:signup", pre ? pre_session_binding(*pre) : std::string(), {}, 0, true};
    SECHEX_TRYV(d_.auth.require_csrf(visitor, req,
                                     "the sign-up form needs a token from GET /v1/auth/csrf and "
                                     "must come from this site"));
  }
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
  auto r = token_pair(in, d_.identity.limits());
  if (holder) {
    // The CSRF token was spent: hand the page the next one (csrf_token.h).
    if (auto next = d_.csrf->issue(holder->session.str(), caller.now)) {
      r.headers.emplace_back("X-CSRF-Token", std::move(next).value());
    }
  }
  return r;
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

// PATCH /v1/me (003 US7-2, 004 FR-036): {displayName?, locale?, consent?}. A cookie session
// needs the CSRF token like every state change (the answer hands the next one).
Response IdentityApi::update_me(const Request& req, const Principal& principal) {
  SECHEX_TRY(const auto body, read_body(req));
  identity::ProfileChange change;
  for (const auto& [name, value] : body.items()) {
    if (name == "displayName") {
      const auto* text = value.is_string() ? &value.get_ref<const std::string&>() : nullptr;
      bool printable =
          text != nullptr && !text->empty() && text->size() <= 200 && ledger::is_utf8(*text);
      if (printable) {
        for (const char c : *text)
          printable = printable && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
      }
      if (!printable) {
        return invalid_request("invalid_display_name",
                               "displayName must be 1 to 200 bytes of printable UTF-8");
      }
      change.display_name = *text;
    } else if (name == "locale") {
      if (!value.is_string() || (value != "en" && value != "zh-CN" && value != "")) {
        return invalid_request("invalid_locale", "locale must be \"en\", \"zh-CN\" or \"\"");
      }
      change.locale = value.get<std::string>();
    } else if (name == "consent") {
      if (!value.is_boolean())
        return invalid_request("invalid_consent", "consent must be a boolean");
      change.consent = value.get<bool>();
    } else {
      return invalid_request("unknown_field", "PATCH /v1/me takes displayName, locale and consent",
                             json{{"field", name}});
    }
  }
  const UserId user(principal.subject);
  SECHEX_TRYV(answered(d_.identity.update_profile(caller_of(d_, config_, req), user,
                                                  SessionId(principal.session), change)));
  SECHEX_TRY(const auto profile, answered(d_.identity.profile(user)));
  auto r = json_ok(profile_json(user, profile).dump());
  if (change.consent && !*change.consent) {
    // Every session ended with the consent: the browser's cookies go too.
    r.headers.emplace_back("Set-Cookie", cleared_cookie(kAccessCookie));
    r.headers.emplace_back("Set-Cookie", cleared_cookie(kRefreshCookie));
  }
  return r;
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
  std::optional<std::string> new_pre_session;
  if (session.empty()) {
    // A presented session that does not hold is refused; a browser with no session at all gets
    // a pre-session for the sign-up form (US7-1), kept in its own cookie.
    if (who || cookie(req, kRefreshCookie)) {
      return who ? who->error() : d_.auth.missing_credentials();
    }
    auto pre = cookie(req, kPreSessionCookie);
    ledger::Bytes probe;
    if (!pre || pre->size() != 43 || !jose::base64url_decode(*pre, probe)) {
      auto fresh = identity::random_token(32);
      if (!fresh) return to_api_error(Refused::internal);
      pre = fresh.value();
      new_pre_session = *pre;
    }
    session = pre_session_binding(*pre);
  }
  auto token = d_.csrf->issue(session, now);
  if (!token) return to_api_error(Refused::internal);
  auto r = json_ok(
      json{{"csrfToken", token.value()}, {"expiresIn", identity::whole_seconds(kCsrfTokenLifetime)}}
          .dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  if (new_pre_session) {
    r.headers.emplace_back(
        "Set-Cookie",
        pre_session_cookie(*new_pre_session, identity::whole_seconds(kCsrfTokenLifetime)));
  }
  return r;
}

}  // namespace sechex::api
