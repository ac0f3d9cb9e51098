// API.md input rules, enforced while parsing (spec 003: malicious-input rejection).
#include "api/json/json_input.h"

#include <gtest/gtest.h>

namespace sechex::api {
namespace {

std::string reason_of(std::string_view body, JsonLimits limits = {}) {
  const auto r = parse_json_input(body, limits);
  return r ? "ok" : r.error().reason;
}

TEST(JsonInput, AcceptsOrdinaryBodies) {
  const auto r = parse_json_input(R"({"email":"a@b.c","password":"x","consent":true,"n":1.5})");
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r.value()["email"], "a@b.c");
  EXPECT_EQ(r.value()["n"], 1.5);
  EXPECT_EQ(reason_of("[]"), "ok");
}

TEST(JsonInput, RefusesMalformedJson) {
  for (const char* bad : {"", "{", "{\"a\":}", "{'a':1}", "{\"a\":1,}", "[1,2", "nul",
                          "{\"a\":1} trailing", "{\"a\":\"\\ud800\"}", "/*c*/{}"}) {
    EXPECT_EQ(reason_of(bad), "malformed_json") << bad;
  }
}

TEST(JsonInput, RefusesDuplicateKeysAtAnyDepth) {
  EXPECT_EQ(reason_of(R"({"a":1,"a":2})"), "duplicate_key");
  EXPECT_EQ(reason_of(R"({"m":{"x":1,"x":1}})"), "duplicate_key");
  EXPECT_EQ(reason_of(R"({"m":{"x":1},"n":{"x":1}})"), "ok") << "same key in sibling objects";
}

TEST(JsonInput, RefusesPrototypePollutionKeys) {
  for (const char* key : {"__proto__", "constructor", "prototype"}) {
    EXPECT_EQ(reason_of(std::string("{\"") + key + "\":{}}"), "forbidden_key") << key;
    EXPECT_EQ(reason_of(std::string("{\"m\":{\"") + key + "\":1}}"), "forbidden_key") << key;
  }
}

TEST(JsonInput, EnforcesDepthStringAndArrayLimits) {
  JsonLimits l;
  l.max_depth = 2;
  EXPECT_EQ(reason_of(R"({"m":{"x":1}})", l), "ok");
  EXPECT_EQ(reason_of(R"({"m":{"x":{"y":1}}})", l), "too_deep");
  EXPECT_EQ(reason_of(std::string(100000, '[') + std::string(100000, ']')), "too_deep")
      << "deep nesting is refused without recursion blow-up";
  EXPECT_EQ(reason_of("{\"s\":\"" + std::string(4096, 'a') + "\"}"), "ok");
  EXPECT_EQ(reason_of("{\"s\":\"" + std::string(4097, 'a') + "\"}"), "string_too_long");
  EXPECT_EQ(reason_of("{\"" + std::string(5000, 'k') + "\":1}"), "string_too_long");
  std::string hundred = "[", hundred_one = "[";
  for (int i = 0; i < 100; ++i) hundred += (i ? ",1" : "1");
  hundred_one = hundred + ",1]";
  hundred += "]";
  EXPECT_EQ(reason_of("{\"a\":" + hundred + "}"), "ok");
  EXPECT_EQ(reason_of("{\"a\":" + hundred_one + "}"), "array_too_long");
}

TEST(JsonInput, DetailNeverEchoesLongInput) {
  const auto r = parse_json_input("{\"" + std::string(3000, 'k') + "\":1,\"" +
                                  std::string(3000, 'k') + "\":2}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, "duplicate_key");
  EXPECT_LT(r.error().detail.size(), 120u);
}

TEST(JsonInput, DepthOfParsedValues) {
  EXPECT_EQ(json_depth(nlohmann::json(1)), 0u);
  EXPECT_EQ(json_depth(nlohmann::json::parse(R"({"a":1})")), 1u);
  EXPECT_EQ(json_depth(nlohmann::json::parse(R"({"a":{"b":[1]}})")), 3u);
}

}  // namespace
}  // namespace sechex::api
