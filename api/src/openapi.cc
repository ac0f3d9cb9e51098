#include "api/openapi.h"

namespace sechex::api {

void add_openapi_route(Router& router) {
  router.add("GET", "/openapi.json", [](const Request&) {
    // The contract document itself, not wrapped in the envelope: OpenAPI tools expect it bare.
    Response r;
    r.body = std::string(openapi_json());
    return r;
  });
}

}  // namespace sechex::api
