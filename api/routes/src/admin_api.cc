#include "api/routes/admin_api.h"

#include <nlohmann/json.hpp>

#include "identity_support.h"

namespace sechex::api {

using namespace identity_support;

namespace {

ApiError invalid_field(const identity::InvalidField& bad) {
  return ApiError{400, "invalid_request", bad.field + " " + bad.message,
                  json{{"field", bad.field}}};
}

json flag_answer(std::string_view name, const identity::IdentityCommands::Flag& f) {
  auto out = identity::flag_json(f.rules);
  out["name"] = name;
  out["set"] = f.set;
  return out;
}

}  // namespace

AdminApi::AdminApi(IdentityDeps deps, IdentityConfig config)
    : d_(std::move(deps)), config_(std::move(config)) {}

void AdminApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.guarded(
      "POST", "/v1/admin/users/{id}/roles",
      [this](const Request& r, W w) { return set_roles(r, w); }, Exec::pool);
  routes.guarded(
      "PUT", "/v1/admin/users/{id}/attributes",
      [this](const Request& r, W w) { return set_attributes(r, w); }, Exec::pool);
  routes.guarded(
      "GET", "/v1/admin/flags/{name}", [this](const Request& r, W w) { return flag(r, w); },
      Exec::read);
  routes.guarded(
      "PUT", "/v1/admin/flags/{name}", [this](const Request& r, W w) { return set_flag(r, w); },
      Exec::pool);
}

// ---- Admin roles (API.md) ----
Response AdminApi::set_roles(const Request& req, const Principal& admin) {
  SECHEX_TRY(const auto body, read_body(req));
  std::vector<std::string> lists[2];
  const char* names[2] = {"grant", "revoke"};
  for (int i = 0; i < 2; ++i) {
    const auto it = body.find(names[i]);
    if (it == body.end()) continue;
    if (!it->is_array() || it->size() > 8) {
      return ApiError{400, "invalid_request",
                      std::string(names[i]) + " must be an array of at most 8 role names"};
    }
    for (const auto& role : *it) {
      if (!role.is_string()) {
        return ApiError{400, "invalid_request", std::string(names[i]) + " holds role names"};
      }
      lists[i].push_back(role.get<std::string>());
    }
  }
  if (lists[0].empty() && lists[1].empty()) {
    return ApiError{400, "invalid_request", "give roles to grant or revoke"};
  }
  SECHEX_TRY(const auto roles, answered(d_.identity.set_roles(caller_of(d_, config_, req),
                                                              UserId(req.params.at("id")), lists[0],
                                                              lists[1], UserId(admin.subject))));
  return json_ok(json{{"userId", req.params.at("id")}, {"roles", roles}}.dump());
}

Response AdminApi::set_attributes(const Request& req, const Principal& admin) {
  SECHEX_TRY(const auto body, read_body(req));
  const auto parsed = identity::parse_attributes(body);
  if (const auto* bad = std::get_if<identity::InvalidField>(&parsed)) return invalid_field(*bad);
  const auto& id = req.params.at("id");
  SECHEX_TRY(const auto set, answered(d_.identity.set_attributes(
                                 caller_of(d_, config_, req), UserId(id),
                                 std::get<identity::Attributes>(parsed), UserId(admin.subject))));
  auto out = identity::attributes_json(set);
  out["userId"] = id;
  return json_ok(out.dump());
}

Response AdminApi::flag(const Request& req, const Principal&) {
  const auto& name = req.params.at("name");
  SECHEX_TRY(const auto f, answered(d_.identity.flag(name)));
  return json_ok(flag_answer(name, f).dump());
}

Response AdminApi::set_flag(const Request& req, const Principal& admin) {
  SECHEX_TRY(const auto body, read_body(req));
  const auto parsed = identity::parse_flag(body);
  if (const auto* bad = std::get_if<identity::InvalidField>(&parsed)) return invalid_field(*bad);
  const auto& name = req.params.at("name");
  SECHEX_TRY(const auto f, answered(d_.identity.set_flag(caller_of(d_, config_, req), name,
                                                         std::get<identity::FlagRules>(parsed),
                                                         UserId(admin.subject))));
  return json_ok(flag_answer(name, f).dump());
}

}  // namespace sechex::api
