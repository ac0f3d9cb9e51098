// The one typed API error: a refusal in API.md's terms (status, snake_case code, English
// message, details, Retry-After), made the JSON error envelope only at the edge.
//
// The one error pattern (README "Code layout"): what may fail returns Result<T> (an error code)
// or, at the HTTP edge, ApiResult<T> (an ApiError); both unwrap with SECHEX_TRY. A handler
// returns Response, and an ApiError converts to one, so in a handler
//   SECHEX_TRY(auto body, read_body(req));
// answers the refusal and goes on with the body otherwise. Domain error codes become ApiErrors
// in one place per library (api/routes/src/refusals.cc, the authenticator's refusals).
//
// Thread-safety: values.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http/server.h"
#include "ledger/result.h"

namespace sechex::api {

struct ApiError {
  ApiError() = default;  // outcome's storage needs one; a default error is a 500
  ApiError(unsigned status_code, std::string error_code, std::string text,
           nlohmann::json error_details = nlohmann::json::object(), std::int64_t retry_after = 0)
      : status(status_code),
        code(std::move(error_code)),
        message(std::move(text)),
        details(std::move(error_details)),
        retry_after_seconds(retry_after) {}

  unsigned status = 500;
  std::string code;     // API.md's snake_case code
  std::string message;  // English; localised by Accept-Language on the way out
  nlohmann::json details = nlohmann::json::object();
  std::int64_t retry_after_seconds = 0;                      // > 0: sent as Retry-After
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. a 401's WWW-Authenticate

  // {"data": null, "error": {code, message, details}} with the status and Retry-After.
  Response response() const;
  // Implicit so that SECHEX_TRY in a handler returns the refusal as the handler's answer.
  operator Response() const { return response(); }  // NOLINT(google-explicit-constructor)
};

template <typename T>
using ApiResult = ResultOf<T, ApiError>;

// ApiResult<void>'s success, for checks that only refuse or let through.
inline ApiResult<void> pass() { return boost::outcome_v2::success(); }

// 415 unsupported_media_type unless the request declares a JSON body (API.md: JSON only).
ApiResult<void> require_json(const Request& req);

// 400 invalid_request with details.reason (and more details when given).
ApiError invalid_request(std::string_view reason, std::string_view message,
                         nlohmann::json details = nlohmann::json::object());

}  // namespace sechex::api
