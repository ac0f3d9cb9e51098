#include "api/http/openapi.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace sechex::api {

std::string served_openapi_json(const std::vector<std::pair<std::string, std::string>>& served) {
  auto doc = nlohmann::json::parse(openapi_json());
  for (auto& [path, operations] : doc["paths"].items()) {
    for (auto& [method, op] : operations.items()) {
      std::string upper = method;
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      const bool is_served =
          std::find(served.begin(), served.end(), std::pair{upper, path}) != served.end();
      if (is_served) continue;
      op["x-sechex-served"] = false;
      op["description"] =
          "Not served by this version yet. " + op.value("description", std::string());
    }
  }
  return doc.dump(1);
}

void add_openapi_route(Router& router,
                       const std::vector<std::pair<std::string, std::string>>& elsewhere) {
  auto served = router.routes();
  served.insert(served.end(), elsewhere.begin(), elsewhere.end());
  served.emplace_back("GET", "/openapi.json");
  auto text = std::make_shared<const std::string>(served_openapi_json(served));
  router.add("GET", "/openapi.json", [text](const Request&) {
    // The contract document itself, not wrapped in the envelope: OpenAPI tools expect it bare.
    Response r;
    r.body = *text;
    return r;
  });
}

}  // namespace sechex::api
