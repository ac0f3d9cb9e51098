#include "api/routes/secrets_api.h"

#include "api/routes/otp_api.h"
#include "identity_support.h"
#include "projections/secrets.h"

namespace sechex::api {

using namespace identity_support;

namespace {

ApiError not_verified() {
  return {403,
          "email_not_verified",
          "verify your email address before using secrets; request a new link at resendUrl",
          {{"resendUrl", "/v1/auth/verify-email/resend"}}};
}

ApiError no_such_secret() { return {404, "not_found", "no such secret"}; }

// The 403 for a caller whose email is not verified yet; success to go on.
ApiResult<void> check_verified(projections::ProjectionStore& store, const Principal& caller) {
  const auto record = account_of(store, caller.subject);
  if (!record || !record->email_verified) return not_verified();
  return pass();
}

}  // namespace

SecretsApi::SecretsApi(IdentityDeps deps, IdentityConfig config)
    : d_(std::move(deps)), config_(std::move(config)) {}

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

// 002 "Unverified user attempts secret creation".
Response SecretsApi::create(const Request& req, const Principal& caller) {
  RequestContext x(d_, config_, req);
  SECHEX_TRYV(check_verified(x.store(), caller));
  const auto user = caller.subject;
  auto id = identity::random_token(16);
  auto share = identity::random_token(32);
  if (!id || !share) return json_error(500, "internal_error", "no randomness");
  const auto secret_id = "sec_" + id.value();
  const auto p = x.partition_of(user);
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto created,
               x.event(user, user, [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                 SECHEX_TRY(auto sealed, b.seal("server_share", share.value()));
                 auto& f = b.fbb();
                 return b.finish(schema::CreateSecretCreated(f, f.CreateString(secret_id), sealed));
               }));
    Events out;
    out.push_back(std::move(created));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  return json_ok(json{{"secretId", secret_id}, {"createdAt", format_rfc3339(x.now)}}.dump(), 201);
}

// 002 "Unverified user attempts check-in".
Response SecretsApi::check_in(const Request& req, const Principal& caller) {
  RequestContext x(d_, config_, req);
  SECHEX_TRYV(check_verified(x.store(), caller));
  const auto user = caller.subject;
  const auto& secret_id = req.params.at("id");
  const auto p = x.partition_of(user);
  bool found = false;
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto s, projections::secret(x.store(), secret_id));
    if (!s || s->owner != user) return Events{};
    found = true;
    SECHEX_TRY(auto event, x.event(user, user, [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateCheckIn(b.fbb(), b.fbb().CreateString(secret_id)));
    }));
    Events out;
    out.push_back(std::move(event));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (!found) return no_such_secret();
  return json_ok(json{{"secretId", secret_id}, {"lastCheckIn", format_rfc3339(x.now)}}.dump());
}

// 002 "Server share reveal requires re-auth": a step-up at most 5 minutes old.
Response SecretsApi::reveal_share(const Request& req, const Principal& caller) {
  RequestContext x(d_, config_, req);
  SECHEX_TRYV(check_verified(x.store(), caller));
  const auto user = caller.subject;
  const auto& secret_id = req.params.at("id");
  const auto* presented = req.header("x-reauth-token");
  if (presented == nullptr || !reauth_granted(x.store(), d_.lookup, caller, *presented, x.now)) {
    return json_error(403, "reauth_required",
                      "revealing the server share needs a re-authentication within the last 5 "
                      "minutes",
                      json{{"reauthUrl", "/v1/auth/reauth"}}.dump());
  }
  const auto grant = reauth_id(d_.lookup, SessionId(caller.session), *presented);
  const auto p = x.partition_of(user);
  std::optional<projections::Secret> found;
  auto ran = x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto s, projections::secret(x.store(), secret_id));
    if (!s || s->owner != user) return Events{};
    found = std::move(s);
    SECHEX_TRY(auto event, x.event(user, user, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(
          schema::CreateShareRevealed(f, f.CreateString(secret_id), f.CreateString(grant)));
    }));
    Events out;
    out.push_back(std::move(event));
    return out;
  });
  if (!ran) return command_failed(ran.error(), d_.commands.ownership(), p);
  if (!found) return no_such_secret();
  ledger::Bytes event_id;
  if (!ledger::from_hex(found->event_id_hex, event_id)) {
    return json_error(500, "internal_error", "the secret is unreadable");
  }
  auto share =
      d_.keys.open_field(user, event_id, "server_share", view_of(found->server_share_sealed));
  if (!share) return json_error(500, "internal_error", "the secret is unreadable");
  auto r = json_ok(json{{"secretId", secret_id},
                        {"serverShare", std::string(share.value().begin(), share.value().end())}}
                       .dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace sechex::api
