#include "api/routes/otp_api.h"

#include <nlohmann/json.hpp>

#include "identity_support.h"

namespace sechex::api {

using namespace identity_support;

OtpApi::OtpApi(IdentityDeps deps, IdentityConfig config)
    : d_(std::move(deps)),
      config_(std::move(config)),
      request_limiter_({.limit = d_.identity.limits().otp_requests_per_ip,
                        .window = d_.identity.limits().otp_request_window}) {}

void OtpApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.open_to_all(
      "POST", "/v1/auth/otp/request",
      [this](const Request& r, const RouteRegistry::MaybeSignedIn& c) {
        return request_code(r, c);
      },
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
Response OtpApi::request_code(const Request& req, const RouteRegistry::MaybeSignedIn& signed_in) {
  auto& identity = d_.identity;
  // A signed-in caller (Bearer, or the browser's session cookie) asks for a step-up code to its
  // own address; a credential that does not authenticate is refused.
  if (signed_in) {
    SECHEX_TRY(const auto who, *signed_in);
    const UserId user(who.subject);
    return accept_then(d_, identity.partition_of(user.str()), user.str(),
                       [&identity, caller = caller_of(d_, config_, req), user] {
                         identity.mail_code(caller, user, identity::OtpPurpose::reauth);
                       });
  }
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  const auto caller = caller_of(d_, config_, req);
  SECHEX_TRYV(admit_client(d_, caller, request_limiter_, projections::kScopeOtpRequestIp));
  return accept_for_address(d_, email, [&identity, caller](const std::optional<UserId>& user) {
    if (user) identity.mail_code(caller, *user, identity::OtpPurpose::login);
  });
}

// ---- Sign in with a code (002 OTP expiration, rate limiting, lockout) ----
Response OtpApi::verify_code(const Request& req) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  SECHEX_TRY(const auto code, required_string(body, "code"));
  SECHEX_TRY(const auto in, answered(d_.identity.sign_in_with_code(
                                caller_of(d_, config_, req), email, identity::OtpCode(code),
                                true_field(body, "rememberMe"))));
  return token_pair(in, d_.identity.limits());
}

// ---- Step-up re-authentication (002 "Sensitive Operation Re-authentication") ----
Response OtpApi::reauth(const Request& req, const Principal& caller) {
  SECHEX_TRY(const auto body, read_body(req));
  const auto code = string_field(body, "code");
  const auto password = string_field(body, "password");
  if (code.has_value() == password.has_value()) {
    return invalid_request("code_or_password", "send either `code` or `password`");
  }
  const auto proof = code ? identity::StepUpProof(identity::OtpCode(*code))
                          : identity::StepUpProof(Password(*password));
  SECHEX_TRY(const auto grant,
             answered(d_.identity.reauth(caller_of(d_, config_, req), UserId(caller.subject),
                                         SessionId(caller.session), proof)));
  return json_ok(
      json{{"reauthToken", grant.token}, {"expiresIn", grant.expires_in_seconds}}.dump());
}

// ---- Admin unlock (002 "require manual support intervention to unlock") ----
Response OtpApi::unlock_user(const Request& req, const Principal& admin) {
  std::string reason = "admin_unlock";
  if (!req.body.empty()) {
    SECHEX_TRY(const auto body, read_body(req));
    if (auto given = string_field(body, "reason")) reason = *given;
  }
  const auto it = req.params.find("id");
  const auto user = it == req.params.end() ? std::string() : it->second;
  SECHEX_TRYV(answered(d_.identity.unlock(caller_of(d_, config_, req), UserId(user), reason,
                                          UserId(admin.subject))));
  return json_ok(json{{"status", "unlocked"}, {"userId", user}}.dump());
}

}  // namespace sechex::api
