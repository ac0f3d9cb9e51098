#include "api/http/api_error.h"

namespace sechex::api {

Response ApiError::response() const {
  Response r = json_error(status, code, message, details.dump());
  r.headers.insert(r.headers.end(), headers.begin(), headers.end());
  if (retry_after_seconds > 0) {
    r.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
  }
  return r;
}

ApiError invalid_request(std::string_view reason, std::string_view message,
                         nlohmann::json details) {
  details["reason"] = reason;
  return {400, "invalid_request", std::string(message), std::move(details)};
}

}  // namespace sechex::api
