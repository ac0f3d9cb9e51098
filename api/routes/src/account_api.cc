#include "api/routes/account_api.h"

#include "identity_support.h"
#include "ledger/utf8.h"

namespace sechex::api {

using namespace identity_support;

AccountApi::AccountApi(IdentityDeps deps, IdentityConfig config)
    : d_(std::move(deps)),
      config_(std::move(config)),
      forgot_limiter_({.limit = d_.identity.limits().mail_requests_per_ip,
                       .window = d_.identity.limits().mail_request_ip_window}) {}

void AccountApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.guarded(
      "POST", "/v1/auth/password/change",
      [this](const Request& r, W w) { return change_password(r, w); }, Exec::pool);
  routes.open(
      "POST", "/v1/auth/password/forgot", [this](const Request& r) { return forgot_password(r); },
      Exec::pool);
  routes.open(
      "POST", "/v1/auth/password/reset", [this](const Request& r) { return reset_password(r); },
      Exec::pool);
  routes.guarded(
      "GET", "/v1/me/export", [this](const Request& r, W w) { return export_me(r, w); },
      Exec::read);
  routes.guarded(
      "DELETE", "/v1/me", [this](const Request& r, W w) { return erase_me(r, w); }, Exec::pool);
}

// ---- Change (004 FR-021..FR-023, FR-027) ----
Response AccountApi::change_password(const Request& req, const Principal& who) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto current, required_string(body, "currentPassword"));
  SECHEX_TRY(const auto next, required_string(body, "newPassword"));
  SECHEX_TRY(const auto in, answered(d_.identity.change_password(
                                caller_of(d_, config_, req), UserId(who.subject),
                                {.current = Password(current), .next = Password(next)})));
  return token_pair(in, d_.identity.limits());
}

// ---- Forgot: 202 whatever the address (004 FR-024, FR-026) ----
Response AccountApi::forgot_password(const Request& req) {
  return request_link(d_, config_, req, forgot_limiter_, identity::Link::password_reset);
}

// ---- Reset (004 FR-025, FR-027, FR-028, FR-040; scenarios 10-12) ----
Response AccountApi::reset_password(const Request& req) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto token, required_string(body, "token"));
  SECHEX_TRY(const auto next, required_string(body, "newPassword"));
  SECHEX_TRYV(
      answered(d_.identity.reset_password(caller_of(d_, config_, req), token, Password(next))));
  return json_ok(json{{"status", "password_reset"}}.dump());
}

// ---- GDPR access (004 FR-036) ----
Response AccountApi::export_me(const Request&, const Principal& who) {
  const UserId user(who.subject);
  const auto now = d_.clock.now();
  SECHEX_TRY(const auto data, answered(d_.identity.personal_data(user, now)));
  json sessions = json::array();
  for (const auto& [id, s] : data.sessions) {
    // The row's own names, times in micros.
    sessions.push_back(json{{"sessionId", id},
                            {"session",
                             {{"user", s.user},
                              {"family", s.family},
                              {"created_at", s.created_at},
                              {"last_seen", s.last_seen},
                              {"idle_expires_at", s.idle_expires_at},
                              {"absolute_expires_at", s.absolute_expires_at},
                              {"remember_me", s.remember_me},
                              {"state", s.state},
                              {"ended_at", s.ended_at},
                              {"end_reason", s.end_reason}}}});
  }
  return json_ok(ledger::json_text(json{{"profile", profile_json(user, data.profile)},
                                        {"sessions", sessions},
                                        {"events", data.events},
                                        {"truncated", data.truncated},
                                        {"exportedAt", format_rfc3339(now)}}));
}

// ---- GDPR erasure with step-up (002 "Account deletion requires re-auth", 004 FR-036) ----
Response AccountApi::erase_me(const Request& req, const Principal& caller) {
  const auto* presented = req.header("x-reauth-token");
  SECHEX_TRYV(answered(d_.identity.erase(
      caller_of(d_, config_, req), UserId(caller.subject), SessionId(caller.session),
      identity::ReauthToken(presented != nullptr ? std::string_view(*presented)
                                                 : std::string_view()))));
  return json_ok(json{{"status", "erased"}}.dump());
}

}  // namespace sechex::api
