// Request-body JSON with API.md's input rules enforced while parsing, so a hostile body is
// refused before any of it is materialised beyond the limits:
//   malformed JSON, duplicate keys, nesting deeper than the endpoint allows, strings (and keys)
//   over 4 KiB, arrays over 100 items, object keys `__proto__`, `constructor`, `prototype`.
// The body-size limit (64 KiB, 413) is enforced earlier by the HTTP server.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "ledger/result.h"

namespace sechex::api {

struct JsonLimits {
  std::size_t max_depth = 4;  // the top-level object is depth 1
  std::size_t max_string = 4096;
  std::size_t max_array = 100;
};

// Why a body was refused.
struct JsonInputError {
  // The `details.reason` of a 400 invalid_request, one of malformed_json, duplicate_key,
  // too_deep, string_too_long, array_too_long, forbidden_key.
  std::string reason;
  std::string detail;  // human-readable, never echoes more than a short prefix of the input
};

ResultOf<nlohmann::json, JsonInputError> parse_json_input(std::string_view body,
                                                          const JsonLimits& limits = {});

// Depth of a parsed value (a scalar is 0, {} or [] is 1): for free-form fields such as
// `metadata`, which API.md limits to depth 2.
std::size_t json_depth(const nlohmann::json& v);

}  // namespace sechex::api
