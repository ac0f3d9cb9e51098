#include "api/auth/route_access.h"

#include <algorithm>
#include <array>
#include <set>
#include <utility>

namespace sechex::api {
namespace {

constexpr Access kAnyone = Access::anyone;
constexpr Access kUser = Access::user;
constexpr Access kAdmin = Access::admin;
constexpr Access kIngest = Access::ingest;
constexpr Access kDevice = Access::device;

// Sorted by path. A new route needs its line here, or ledgerd refuses to start.
constexpr std::array kRules = {
    RouteRule{"GET", "/.well-known/jwks.json", kAnyone},
    RouteRule{"GET", "/healthz", kAnyone},
    RouteRule{"GET", "/openapi.json", kAnyone},
    RouteRule{"GET", "/readyz", kAnyone},
    RouteRule{"GET", "/v1/admin/audit", kAdmin},
    RouteRule{"GET", "/v1/admin/audit/export", kAdmin},
    RouteRule{"GET", "/v1/admin/flags/{name}", kAdmin},
    RouteRule{"PUT", "/v1/admin/flags/{name}", kAdmin},
    RouteRule{"GET", "/v1/admin/ledger/checkpoints", kAdmin},
    RouteRule{"GET", "/v1/admin/ledger/proof", kAdmin},
    RouteRule{"GET", "/v1/admin/ledger/consistency", kAdmin},
    RouteRule{"PUT", "/v1/admin/policy/password", kAdmin},
    RouteRule{"GET", "/v1/admin/secure/audit", kAdmin},
    RouteRule{"PUT", "/v1/admin/users/{id}/attributes", kAdmin},
    RouteRule{"POST", "/v1/admin/users/{id}/roles", kAdmin},
    RouteRule{"POST", "/v1/admin/users/{id}/unlock", kAdmin},
    RouteRule{"GET", "/v1/admin/webhooks/deliveries", kAdmin},
    RouteRule{"POST", "/v1/admin/webhooks/deliveries/{id}/retry", kAdmin},
    RouteRule{"GET", "/v1/admin/webhooks/endpoints", kAdmin},
    RouteRule{"POST", "/v1/admin/webhooks/endpoints", kAdmin},
    RouteRule{"GET", "/v1/auth/csrf", kAnyone},  // a session by access or refresh cookie
    RouteRule{"POST", "/v1/auth/login", kAnyone},
    RouteRule{"GET", "/v1/auth/oauth/{provider}/start", kAnyone},
    RouteRule{"GET", "/v1/auth/oauth/{provider}/callback", kAnyone},
    RouteRule{"POST", "/v1/auth/logout", kUser},
    RouteRule{"POST", "/v1/auth/logout-all", kUser},
    RouteRule{"POST", "/v1/auth/otp/request", kAnyone},  // step-up code when signed in
    RouteRule{"POST", "/v1/auth/otp/verify", kAnyone},
    RouteRule{"POST", "/v1/auth/password/change", kUser},
    RouteRule{"POST", "/v1/auth/password/forgot", kAnyone},
    RouteRule{"GET", "/v1/auth/password/policy", kAnyone},
    RouteRule{"POST", "/v1/auth/password/reset", kAnyone},
    RouteRule{"POST", "/v1/auth/reauth", kUser},
    RouteRule{"POST", "/v1/auth/refresh", kAnyone},  // by refresh token, not a session
    RouteRule{"POST", "/v1/auth/register", kAnyone},
    RouteRule{"POST", "/v1/auth/verify-email", kAnyone},
    RouteRule{"POST", "/v1/auth/verify-email/resend", kAnyone},
    RouteRule{"POST", "/v1/events", kIngest},
    RouteRule{"GET", "/v1/me", kUser},
    RouteRule{"DELETE", "/v1/me", kUser},
    RouteRule{"PATCH", "/v1/me", kUser},
    RouteRule{"GET", "/v1/me/devices", kUser},
    RouteRule{"DELETE", "/v1/me/devices/{id}", kUser},
    RouteRule{"GET", "/v1/me/export", kUser},
    RouteRule{"GET", "/v1/me/links", kUser},
    RouteRule{"DELETE", "/v1/me/links/{provider}", kUser},
    RouteRule{"GET", "/v1/me/sessions", kUser},
    RouteRule{"GET", "/v1/payments", kUser},
    RouteRule{"POST", "/v1/payments", kUser},
    RouteRule{"GET", "/v1/payments/{id}", kUser},
    RouteRule{"POST", "/v1/secrets", kUser},
    RouteRule{"POST", "/v1/secrets/{id}/check-in", kUser},
    RouteRule{"POST", "/v1/secrets/{id}/reveal-share", kUser},
    RouteRule{"POST", "/v1/secure/exclusive/challenge", kUser},
    RouteRule{"POST", "/v1/secure/exclusive/end", kDevice},
    RouteRule{"POST", "/v1/secure/exclusive/start", kUser},
    RouteRule{"GET", "/v1/secure/exclusive/status", kUser},
    RouteRule{"POST", "/v1/secure/exclusive/validate", kDevice},
    // The payment provider: authenticated by its Standard Webhooks signature, not a session.
    RouteRule{"POST", "/v1/webhooks/payments", kAnyone},
};

}  // namespace

std::span<const RouteRule> route_rules() { return kRules; }

std::optional<Access> access_of(std::string_view method, std::string_view route) {
  if (method == "HEAD") method = "GET";
  for (const auto& r : kRules) {
    if (r.method == method && r.route == route) return r.access;
  }
  return std::nullopt;
}

std::string_view to_string(Access a) {
  switch (a) {
    case Access::anyone:
      return "anyone";
    case Access::user:
      return "user";
    case Access::admin:
      return "admin";
    case Access::ingest:
      return "ingest";
    case Access::device:
      return "device";
  }
  return "unknown";
}

std::vector<std::string> route_table_mismatches(const Router& router) {
  std::vector<std::string> out;
  std::set<std::pair<std::string, std::string>> served;
  for (const auto& [method, route] : router.routes()) {
    served.emplace(method, route);
    if (!access_of(method, route))
      out.push_back(method + " " + route + " is served without a rule");
  }
  for (const auto& r : kRules) {
    if (!served.contains({std::string(r.method), std::string(r.route)})) {
      out.push_back("the rule for " + std::string(r.method) + " " + std::string(r.route) +
                    " names no served route");
    }
  }
  return out;
}

}  // namespace sechex::api
