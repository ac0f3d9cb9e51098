// The HTTP contract as OpenAPI 3 (api/http/openapi.json, generated from API.md by
// ops/gen-openapi.py and embedded at build time), served at GET /openapi.json.
//
// API.md specifies routes ahead of the code (exclusive mode, payments, OAuth, ...). The served
// document never advertises those as served: every operation the router does not serve carries
// `"x-sechex-served": false` and a description that starts "Not served by this version yet.",
// decided from the router itself when the route is added, so the document and the router cannot
// drift apart.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http/server.h"

namespace sechex::api {

// The contract as generated from API.md, every route in it.
std::string_view openapi_json();

// The document as this server serves it: openapi_json() with the operations `served` does not
// list marked as not served. `served` holds (method, path or pattern) pairs.
std::string served_openapi_json(const std::vector<std::pair<std::string, std::string>>& served);

// Adds GET /openapi.json. Call it after every other route: the document marks what `router`
// serves at that moment, plus `elsewhere` (routes served on another listener, e.g. /metrics).
void add_openapi_route(Router& router,
                       const std::vector<std::pair<std::string, std::string>>& elsewhere = {});

}  // namespace sechex::api
