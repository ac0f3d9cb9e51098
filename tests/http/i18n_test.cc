// Localised error messages: Accept-Language negotiation and the rewrite of error envelopes.
#include "api/http/i18n.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sechex::api {
namespace {

TEST(Negotiate, PicksZhCnForChineseTagsAndEnglishOtherwise) {
  EXPECT_EQ(negotiate_language("zh-CN"), "zh-CN");
  EXPECT_EQ(negotiate_language("zh"), "zh-CN");
  EXPECT_EQ(negotiate_language("ZH-hans-cn"), "zh-CN");
  EXPECT_EQ(negotiate_language("fr-FR, zh-CN;q=0.5"), "zh-CN");
  EXPECT_EQ(negotiate_language("en"), "en");
  EXPECT_EQ(negotiate_language("de"), "en");
  EXPECT_EQ(negotiate_language(""), "en");
  EXPECT_EQ(negotiate_language("*"), "en");
}

TEST(Negotiate, HonoursQValuesAndPrefersEnglishOnTies) {
  EXPECT_EQ(negotiate_language("en;q=0.8, zh-CN;q=0.9"), "zh-CN");
  EXPECT_EQ(negotiate_language("zh-CN;q=0.8, en-GB;q=0.9"), "en");
  EXPECT_EQ(negotiate_language("zh-CN, en"), "en");  // equal q: the default wins
  EXPECT_EQ(negotiate_language("zh-CN;q=0"), "en");  // q=0 means "not this"
}

TEST(Negotiate, MalformedHeadersFallBackToEnglish) {
  EXPECT_EQ(negotiate_language("zh-CN;q=2"), "en");
  EXPECT_EQ(negotiate_language("zh-CN;q=0.12345"), "en");
  EXPECT_EQ(negotiate_language("zh-CN;level=1"), "en");
  EXPECT_EQ(negotiate_language("zh-CN;q=abc"), "en");
}

TEST(Localise, RewritesOnlyTheMessageOfAKnownErrorCode) {
  auto r = json_error(401, "invalid_token", "the access token is invalid or expired",
                      R"({"reason":"x"})");
  localise_error(r, "zh-CN");
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["error"]["code"], "invalid_token");
  EXPECT_EQ(body["error"]["message"], "访问令牌无效或已过期");
  EXPECT_EQ(body["error"]["details"]["reason"], "x");
  EXPECT_TRUE(body["data"].is_null());
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Content-Language", "zh-CN"}));
}

TEST(Localise, LeavesSuccessesUnknownCodesAndEnglishAlone) {
  auto ok = json_ok(R"({"x":1})");
  const auto before = ok.body;
  localise_error(ok, "zh-CN");
  EXPECT_EQ(ok.body, before);
  auto unknown = json_error(418, "teapot", "short and stout");
  localise_error(unknown, "zh-CN");
  EXPECT_NE(unknown.body.find("short and stout"), std::string::npos);
  auto en = json_error(404, "not_found", "no such endpoint");
  localise_error(en, "en");
  EXPECT_NE(en.body.find("no such endpoint"), std::string::npos);
  EXPECT_TRUE(en.headers.empty());
}

TEST(Localise, MisdirectedHasAChineseMessageAndKeepsItsDetails) {
  auto r = json_error(421, "misdirected", "this node does not own the partition of these events",
                      R"({"partition":2,"owner":"http://10.0.0.2:8080"})");
  localise_error(r, "zh-CN");
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["error"]["message"], localized_message("misdirected", "zh-CN"));
  EXPECT_FALSE(localized_message("misdirected", "zh-CN").empty());
  EXPECT_EQ(body["error"]["details"]["owner"], "http://10.0.0.2:8080");
}

}  // namespace
}  // namespace sechex::api
