// Feature flags and user attributes (000 FR-08; API.md admin rows; api/identity/flags.h).
#include "api/identity/flags.h"

#include <gtest/gtest.h>

namespace sechex::api::identity {
namespace {

using nlohmann::json;

FlagRules parsed(const json& body) {
  auto r = parse_flag(body);
  EXPECT_TRUE(std::holds_alternative<FlagRules>(r)) << body.dump();
  return std::holds_alternative<FlagRules>(r) ? std::get<FlagRules>(r) : FlagRules{};
}

std::string refused_field(const json& body) {
  auto r = parse_flag(body);
  const auto* bad = std::get_if<InvalidField>(&r);
  return bad ? bad->field : "(accepted)";
}

TEST(Flags, ARuleParsesAndRoundTripsThroughItsJson) {
  const json body{{"enabled", true},
                  {"regions", {"eu", "us", "eu"}},
                  {"segments", {"gold"}},
                  {"users", {"u1"}},
                  {"percentage", 25}};
  const auto rules = parsed(body);
  EXPECT_TRUE(rules.enabled);
  EXPECT_EQ(*rules.regions, (std::vector<std::string>{"eu", "us"})) << "sorted, duplicates once";
  EXPECT_EQ(*rules.percentage, 25u);
  EXPECT_EQ(parsed(flag_json(rules)), rules);
  EXPECT_FALSE(parsed({{"enabled", false}}).regions.has_value()) << "an absent rule is no rule";
}

TEST(Flags, MalformedRulesAreRefusedNamingTheField) {
  EXPECT_EQ(refused_field(json::array()), "body");
  EXPECT_EQ(refused_field(json::object()), "enabled");
  EXPECT_EQ(refused_field({{"enabled", "yes"}}), "enabled");
  EXPECT_EQ(refused_field({{"enabled", true}, {"region", {"eu"}}}), "region") << "unknown member";
  EXPECT_EQ(refused_field({{"enabled", true}, {"regions", "eu"}}), "regions");
  EXPECT_EQ(refused_field({{"enabled", true}, {"regions", {""}}}), "regions");
  EXPECT_EQ(refused_field({{"enabled", true}, {"segments", {"a b"}}}), "segments");
  EXPECT_EQ(refused_field({{"enabled", true}, {"users", {std::string(65, 'u')}}}), "users");
  EXPECT_EQ(refused_field({{"enabled", true}, {"users", std::vector<int>(101, 1)}}), "users");
  EXPECT_EQ(refused_field({{"enabled", true}, {"percentage", 101}}), "percentage");
  EXPECT_EQ(refused_field({{"enabled", true}, {"percentage", -1}}), "percentage");
  EXPECT_EQ(refused_field({{"enabled", true}, {"percentage", 12.5}}), "percentage");
}

TEST(Flags, AttributesParseReplaceAndRefuseBadValues) {
  auto a = parse_attributes({{"region", "eu"}, {"segment", nullptr}});
  ASSERT_TRUE(std::holds_alternative<Attributes>(a));
  EXPECT_EQ(std::get<Attributes>(a).region, "eu");
  EXPECT_FALSE(std::get<Attributes>(a).segment.has_value());
  EXPECT_EQ(attributes_json(std::get<Attributes>(a)),
            (json{{"region", "eu"}, {"segment", nullptr}}));
  EXPECT_TRUE(std::holds_alternative<InvalidField>(parse_attributes({{"region", 7}})));
  EXPECT_TRUE(std::holds_alternative<InvalidField>(parse_attributes({{"country", "fr"}})));
  EXPECT_TRUE(std::holds_alternative<InvalidField>(parse_attributes({{"segment", "\n"}})));
}

// 000 FR-08: a user matches when the flag is on and every rule given matches.
TEST(Flags, AUserMatchesOnlyWhenEveryGivenRuleMatchesFR08) {
  const Attributes eu_gold{"eu", "gold"};
  EXPECT_TRUE(flag_matches(FlagRules{}, kExclusiveModeFlag, "u1", {})) << "default: everyone";
  EXPECT_FALSE(flag_matches(parsed({{"enabled", false}}), kExclusiveModeFlag, "u1", eu_gold));
  const auto eu = parsed({{"enabled", true}, {"regions", {"eu"}}});
  EXPECT_TRUE(flag_matches(eu, kExclusiveModeFlag, "u1", eu_gold));
  EXPECT_FALSE(flag_matches(eu, kExclusiveModeFlag, "u1", {"us", "gold"}));
  EXPECT_FALSE(flag_matches(eu, kExclusiveModeFlag, "u1", {})) << "no region: no match";
  const auto eu_silver = parsed({{"enabled", true}, {"regions", {"eu"}}, {"segments", {"silver"}}});
  EXPECT_FALSE(flag_matches(eu_silver, kExclusiveModeFlag, "u1", eu_gold)) << "every rule";
  const auto only_u2 = parsed({{"enabled", true}, {"users", {"u2"}}});
  EXPECT_FALSE(flag_matches(only_u2, kExclusiveModeFlag, "u1", eu_gold));
  EXPECT_TRUE(flag_matches(only_u2, kExclusiveModeFlag, "u2", {}));
  EXPECT_FALSE(flag_matches(parsed({{"enabled", true}, {"percentage", 0}}), kExclusiveModeFlag,
                            "u1", eu_gold));
  EXPECT_TRUE(flag_matches(parsed({{"enabled", true}, {"percentage", 100}}), kExclusiveModeFlag,
                           "u1", eu_gold));
}

// The percentage rule takes a stable share of users: the same users stay in as it grows, and
// the share is close to the percentage.
TEST(Flags, APercentageRolloutIsStableAndProportional) {
  const auto ten = parsed({{"enabled", true}, {"percentage", 10}});
  const auto twenty = parsed({{"enabled", true}, {"percentage", 20}});
  int in_ten = 0, in_twenty = 0;
  for (int i = 0; i < 10'000; ++i) {
    const auto user = "user-" + std::to_string(i);
    const bool a = flag_matches(ten, kExclusiveModeFlag, user, {});
    const bool b = flag_matches(twenty, kExclusiveModeFlag, user, {});
    EXPECT_TRUE(!a || b) << user << " left the rollout when it grew";
    in_ten += a;
    in_twenty += b;
    EXPECT_EQ(rollout_bucket(kExclusiveModeFlag, user), rollout_bucket(kExclusiveModeFlag, user));
  }
  EXPECT_NEAR(in_ten, 1000, 150);
  EXPECT_NEAR(in_twenty, 2000, 200);
  int moved = 0;  // the bucket depends on the flag's name: rollouts of two flags differ
  for (int i = 0; i < 100; ++i) {
    const auto user = "user-" + std::to_string(i);
    moved += rollout_bucket("exclusive_mode", user) != rollout_bucket("other", user);
  }
  EXPECT_GT(moved, 80);
}

TEST(Flags, OnlyTheFlagsTheProductReadsAreKnown) {
  EXPECT_TRUE(known_flag("exclusive_mode"));
  EXPECT_FALSE(known_flag("exclusive"));
  EXPECT_FALSE(known_flag(""));
}

}  // namespace
}  // namespace sechex::api::identity
