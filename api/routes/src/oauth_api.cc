#include "api/routes/oauth_api.h"

#include "api/http/query.h"
#include "identity_support.h"

namespace sechex::api {

using namespace identity_support;

namespace {

ApiError bad_query() {
  return ApiError{400, "invalid_request", "the query string is malformed or repeats a parameter"};
}

std::string param(const std::map<std::string, std::string>& q, const char* name) {
  const auto it = q.find(name);
  return it == q.end() ? std::string() : it->second;
}

}  // namespace

OAuthApi::OAuthApi(IdentityDeps deps, IdentityConfig config, identity::OAuthCommands& oauth)
    : d_(std::move(deps)),
      config_(std::move(config)),
      oauth_(oauth),
      start_limiter_({.limit = d_.identity.limits().login_attempts_per_ip * 4,
                      .window = d_.identity.limits().login_ip_window}) {}

void OAuthApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.open(
      "GET", "/v1/auth/oauth/{provider}/start", [this](const Request& r) { return start(r); },
      Exec::pool);
  routes.open(
      "GET", "/v1/auth/oauth/{provider}/callback", [this](const Request& r) { return callback(r); },
      Exec::pool);
  routes.guarded(
      "GET", "/v1/me/links", [this](const Request& r, W w) { return links(r, w); }, Exec::read);
  routes.guarded(
      "DELETE", "/v1/me/links/{provider}", [this](const Request& r, W w) { return unlink(r, w); },
      Exec::pool);
}

// ---- Begin (FR-005) ----
Response OAuthApi::start(const Request& req) {
  const auto provider = req.params.at("provider");
  if (!oauth_.has_provider(provider)) return to_api_error(Refused::unknown_provider);
  const auto query = parse_query(req.query);
  if (!query) return bad_query();
  const auto caller = caller_of(d_, config_, req);
  SECHEX_TRYV(admit_client(d_, caller, start_limiter_, projections::kScopeOAuthStartIp));
  SECHEX_TRY(const auto started,
             answered(oauth_.start(caller, provider, param(*query, "consent") == "true",
                                   param(*query, "rememberMe") == "true")));
  Response r;
  r.status = 302;
  r.headers.emplace_back("Location", started.location);
  r.headers.emplace_back(
      "Set-Cookie",
      oauth_cookie(started.binding, identity::whole_seconds(oauth_.state_lifetime())));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// ---- Complete (FR-006..FR-008) ----
Response OAuthApi::callback(const Request& req) {
  const auto provider = req.params.at("provider");
  if (!oauth_.has_provider(provider)) return to_api_error(Refused::unknown_provider);
  const auto query = parse_query(req.query);
  if (!query) return bad_query();
  identity::OAuthCallback cb;
  cb.state = param(*query, "state");
  cb.code = param(*query, "code");
  cb.error = param(*query, "error");
  cb.cookie = cookie(req, kOAuthCookie).value_or("");
  auto done = oauth_.complete(caller_of(d_, config_, req), provider, cb);
  if (!done) {
    // The binding is spent either way: a refused callback starts over with a new state.
    auto e = to_api_error(done.error());
    e.headers.emplace_back("Set-Cookie", cleared_cookie(kOAuthCookie));
    return e;
  }
  auto r = token_pair(done.value(), d_.identity.limits());
  r.headers.emplace_back("Set-Cookie", cleared_cookie(kOAuthCookie));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// ---- Links ----
Response OAuthApi::links(const Request&, const Principal& who) {
  SECHEX_TRY(const auto links, answered(oauth_.links(UserId(who.subject))));
  json out = json::array();
  for (const auto& l : links) {
    out.push_back(json{{"provider", l.provider}, {"linkedAt", format_rfc3339(l.linked_at)}});
  }
  return json_ok(json{{"links", out}}.dump());
}

Response OAuthApi::unlink(const Request& req, const Principal& who) {
  SECHEX_TRYV(answered(
      oauth_.unlink(caller_of(d_, config_, req), UserId(who.subject), req.params.at("provider"))));
  Response r;
  r.status = 204;
  return r;
}

}  // namespace sechex::api
