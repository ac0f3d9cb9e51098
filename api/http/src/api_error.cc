#include "api/http/api_error.h"

namespace sechex::api {

// The one place the error envelope is built (json_error() comes here too).
Response ApiError::response() const {
  Response r;
  r.status = status;
  // Messages and details may quote input (an unknown field's name, a query parameter's): bytes
  // that are not UTF-8 become U+FFFD instead of making the answer itself fail.
  r.body = nlohmann::json{{"data", nullptr},
                          {"error", {{"code", code}, {"message", message}, {"details", details}}}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.headers.insert(r.headers.end(), headers.begin(), headers.end());
  if (retry_after_seconds > 0) {
    r.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
  }
  return r;
}

ApiResult<void> require_json(const Request& req) {
  const auto* ct = req.header("content-type");
  if (ct != nullptr && ct->rfind("application/json", 0) == 0) return pass();
  return ApiError{415, "unsupported_media_type", "send application/json"};
}

ApiError invalid_request(std::string_view reason, std::string_view message,
                         nlohmann::json details) {
  details["reason"] = reason;
  return {400, "invalid_request", std::string(message), std::move(details)};
}

}  // namespace sechex::api
