#include "api/routes/secrets_api.h"

#include "identity_support.h"

namespace sechex::api {

using namespace identity_support;

SecretsApi::SecretsApi(IdentityDeps deps, IdentityConfig config, identity::SecretCommands& secrets)
    : d_(std::move(deps)), config_(std::move(config)), secrets_(secrets) {}

void SecretsApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.guarded(
      "POST", "/v1/secrets", [this](const Request& r, W w) { return create(r, w); }, Exec::pool);
  routes.guarded(
      "POST", "/v1/secrets/{id}/check-in", [this](const Request& r, W w) { return check_in(r, w); },
      Exec::pool);
  routes.guarded(
      "POST", "/v1/secrets/{id}/reveal-share",
      [this](const Request& r, W w) { return reveal_share(r, w); }, Exec::pool);
}

Response SecretsApi::create(const Request& req, const Principal& caller) {
  SECHEX_TRY(const auto created,
             answered(secrets_.create(caller_of(d_, config_, req), UserId(caller.subject))));
  return json_ok(
      json{{"secretId", created.id}, {"createdAt", format_rfc3339(created.created_at)}}.dump(),
      201);
}

Response SecretsApi::check_in(const Request& req, const Principal& caller) {
  const auto c = caller_of(d_, config_, req);
  const auto& secret_id = req.params.at("id");
  SECHEX_TRYV(answered(secrets_.check_in(c, UserId(caller.subject), secret_id)));
  return json_ok(json{{"secretId", secret_id}, {"lastCheckIn", format_rfc3339(c.now)}}.dump());
}

Response SecretsApi::reveal_share(const Request& req, const Principal& caller) {
  const auto& secret_id = req.params.at("id");
  const auto* presented = req.header("x-reauth-token");
  SECHEX_TRY(
      const auto share,
      answered(secrets_.reveal_share(
          caller_of(d_, config_, req), UserId(caller.subject), SessionId(caller.session), secret_id,
          identity::ReauthToken(presented != nullptr ? std::string_view(*presented)
                                                     : std::string_view()))));
  auto r = json_ok(json{{"secretId", secret_id}, {"serverShare", share}}.dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace sechex::api
