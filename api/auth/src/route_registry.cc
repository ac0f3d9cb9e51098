#include "api/auth/route_registry.h"

namespace sechex::api {

void RouteRegistry::open(std::string method, std::string path, Handler handler, Exec exec) {
  // A route without a rule is reported by route_table_mismatches() in mismatches().
  const auto rule = access_of(method, path);
  if (rule && *rule != Access::anyone) {
    errors_.push_back(method + " " + path + " is registered open but its rule is " +
                      std::string(to_string(*rule)));
  }
  router_.add(std::move(method), std::move(path), std::move(handler), exec);
}

void RouteRegistry::open_to_all(std::string method, std::string path, OpenToAll handler,
                                Exec exec) {
  open(
      std::move(method), std::move(path),
      [&auth = auth_, handler = std::move(handler)](const Request& req) -> Response {
        MaybeSignedIn caller;
        if (auth.presents_credentials(req)) caller = auth.authenticate(req, Access::user);
        return handler(req, caller);
      },
      exec);
}

void RouteRegistry::device_signed(std::string method, std::string path, DeviceSigned handler,
                                  Exec exec) {
  const auto rule = access_of(method, path);
  if (rule && *rule != Access::device) {
    errors_.push_back(method + " " + path + " is registered device-signed but its rule is " +
                      std::string(to_string(*rule)));
  }
  guarded_.emplace(method, path);
  router_.add(
      std::move(method), std::move(path),
      [handler = std::move(handler)](const Request& req) -> Response {
        const auto* authorization = req.header("authorization");
        const auto* proof = req.header("dpop");
        // Spec 001: the DPoP scheme, or Bearer; never without a proof either way.
        std::string_view token;
        if (authorization != nullptr) {
          const auto credential = authorization_credential(*authorization, "dpop");
          token = credential ? *credential
                             : authorization_credential(*authorization, "bearer").value_or("");
        }
        if (token.empty()) {
          ApiError e{401, "invalid_token",
                     "this route needs the session token (Authorization: DPoP)"};
          e.headers.emplace_back("WWW-Authenticate", "DPoP algs=\"ES256\"");
          return e;
        }
        // A missing proof, or two (the server joins a repeated header with ", ", which no JWS
        // holds), reach the commands, which refuse and chain them under the token's user.
        return handler(req, DeviceCredentials{token, proof != nullptr ? std::string_view(*proof)
                                                                      : std::string_view()});
      },
      exec);
}

void RouteRegistry::guarded(std::string method, std::string path, Guarded handler, Exec exec) {
  const auto rule = access_of(method, path);
  if (rule && *rule == Access::anyone) {
    errors_.push_back(method + " " + path + " is registered guarded but its rule is anyone");
  }
  if (rule && *rule == Access::device) {
    errors_.push_back(method + " " + path + " is a device route: register it device_signed");
  }
  guarded_.emplace(method, path);
  // An unknown rule denies everyone (the start-up check reports it too).
  const auto access = rule.value_or(Access::admin);
  router_.add(
      std::move(method), std::move(path),
      [&auth = auth_, access, handler = std::move(handler)](const Request& req) -> Response {
        SECHEX_TRY(const auto who, auth.authenticate(req, access));
        auto answer = handler(req, who);
        if (auto next = auth.next_csrf_token(who, req)) {
          answer.headers.emplace_back("X-CSRF-Token", std::move(*next));
        }
        return answer;
      },
      exec);
}

std::vector<std::string> RouteRegistry::mismatches() const {
  auto out = errors_;
  for (const auto& served : route_table_mismatches(router_)) out.push_back(served);
  for (const auto& [method, path] : router_.routes()) {
    const auto rule = access_of(method, path);
    if (rule && *rule != Access::anyone && !guarded_.contains({method, path})) {
      out.push_back(method + " " + path + " is restricted (" + std::string(to_string(*rule)) +
                    ") but was added without its guard");
    }
  }
  return out;
}

}  // namespace sechex::api
