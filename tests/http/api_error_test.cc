// The one API error (api_error.h): what a refusal looks like on the wire, and the unwrapping a
// handler does with SECHEX_TRY.
#include "api/http/api_error.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sechex::api {
namespace {

std::string header_of(const Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(ApiError, BecomesTheErrorEnvelopeWithItsStatusDetailsAndRetryAfter) {
  ApiError e{429, "rate_limited", "slow down", {{"retryAfter", 30}}, 30};
  e.headers.emplace_back("WWW-Authenticate", "Bearer");
  const Response r = e;
  EXPECT_EQ(r.status, 429u);
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_TRUE(body["data"].is_null());
  EXPECT_EQ(body["error"]["code"], "rate_limited");
  EXPECT_EQ(body["error"]["message"], "slow down");
  EXPECT_EQ(body["error"]["details"]["retryAfter"], 30);
  EXPECT_EQ(header_of(r, "Retry-After"), "30");
  EXPECT_EQ(header_of(r, "WWW-Authenticate"), "Bearer");
  EXPECT_EQ(header_of(ApiError{400, "invalid_request", "x"}, "Retry-After"), "")
      << "no Retry-After unless one is due";
}

TEST(ApiError, InvalidRequestCarriesItsReasonBesideTheOtherDetails) {
  const auto e = invalid_request("missing_field", "`email` is required", {{"field", "email"}});
  EXPECT_EQ(e.status, 400u);
  EXPECT_EQ(e.code, "invalid_request");
  EXPECT_EQ(e.details, (nlohmann::json{{"reason", "missing_field"}, {"field", "email"}}));
}

ApiResult<int> positive(int n) {
  if (n <= 0) return ApiError{400, "invalid_request", "not positive"};
  return n;
}
ApiResult<int> doubled(int n) {
  SECHEX_TRY(const auto v, positive(n));  // an ApiResult passes its error on unchanged
  return 2 * v;
}
Response handler(int n) {
  SECHEX_TRY(const auto v, doubled(n));  // a handler answers the refusal
  return json_ok(std::to_string(v));
}

TEST(ApiError, SechexTryInAHandlerAnswersTheRefusalAndGoesOnOtherwise) {
  EXPECT_EQ(handler(21).status, 200u);
  EXPECT_EQ(nlohmann::json::parse(handler(21).body)["data"], 42);
  const auto refused = handler(-1);
  EXPECT_EQ(refused.status, 400u);
  EXPECT_EQ(nlohmann::json::parse(refused.body)["error"]["message"], "not positive");
}

}  // namespace
}  // namespace sechex::api
