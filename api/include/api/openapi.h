// The HTTP contract as OpenAPI 3 (api/openapi.json, generated from API.md by
// ops/gen-openapi.py and embedded at build time), served at GET /openapi.json.
#pragma once

#include <string_view>

#include "api/server.h"

namespace sechex::api {

std::string_view openapi_json();
void add_openapi_route(Router& router);

}  // namespace sechex::api
