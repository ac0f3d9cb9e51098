// Partition ownership: the LIST and LIST=URL syntax of --owns-partitions / --partition-owner,
// the checks against the log's partition count, and owns() / owner_of().
#include "api/app/ownership.h"

#include <gtest/gtest.h>

namespace sechex::api {
namespace {

using ledger::Partition;

PartitionList ranges(std::vector<PartitionRange> r) { return {.all = false, .ranges = r}; }

OwnershipResult<PartitionOwnership> from(std::uint32_t partitions,
                                         std::optional<std::string_view> owns,
                                         std::vector<std::string> owners) {
  SECHEX_TRY(auto flags, OwnershipFlags::parse(owns, owners));
  return PartitionOwnership::resolve(partitions, flags);
}

TEST(PartitionList, ParsesNumbersRangesAndTheAllAndNoneKeywords) {
  EXPECT_EQ(parse_partition_list("0-3,6").value(), ranges({{0, 3}, {6, 6}}));
  EXPECT_EQ(parse_partition_list(" 7 ").value(), ranges({{7, 7}}));
  EXPECT_EQ(parse_partition_list("1 - 2 , 4").value(), ranges({{1, 2}, {4, 4}}));
  EXPECT_EQ(parse_partition_list("2-2").value(), ranges({{2, 2}}));
  EXPECT_EQ(parse_partition_list("0-3,2").value(), ranges({{0, 3}, {2, 2}}));  // overlap is fine
  EXPECT_TRUE(parse_partition_list("all").value().all);
  EXPECT_EQ(parse_partition_list("none").value(), ranges({}));
}

TEST(PartitionList, RefusesEachMalformedListWithAReason) {
  for (const std::string bad : {"", " ", ",", "1,", ",1", "1,,2", "a", "1-", "-1", "1-2-3", "3-1",
                                "+1", "0x2", "1.5", "4294967296", "ALL", "0-3;6", "1 2"}) {
    const auto r = parse_partition_list(bad);
    ASSERT_FALSE(r) << "'" << bad << "' was accepted";
    EXPECT_EQ(r.error(), OwnershipErrc::bad_syntax) << bad;
    EXPECT_FALSE(r.error().why.empty()) << bad;
  }
  const auto why = parse_partition_list("3-1").error().why;
  EXPECT_NE(why.find("ends before it starts"), std::string::npos) << why;
}

TEST(PartitionOwner, SplitsAtTheFirstEqualsAndChecksTheUrl) {
  const auto a = parse_partition_owner("4-7=http://10.0.0.2:8080").value();
  EXPECT_EQ(a.partitions, ranges({{4, 7}}));
  EXPECT_EQ(a.url, "http://10.0.0.2:8080");
  const auto b = parse_partition_owner("1,3 = https://node-b.example/ledger?x=1").value();
  EXPECT_EQ(b.partitions, ranges({{1, 1}, {3, 3}}));
  EXPECT_EQ(b.url, "https://node-b.example/ledger?x=1");
  EXPECT_EQ(parse_partition_owner("0=http://[::1]:8080").value().url, "http://[::1]:8080");

  for (const std::string bad : {"4-7", "=http://a", "4-7=", "4-7=10.0.0.2:8080", "4-7=ftp://a",
                                "4-7=http://", "4-7=http://:8080", "4-7=http://a b",
                                "4-7=http://a\r\nX: y", "4-7=http://u:p@a", "x=http://a"}) {
    const auto r = parse_partition_owner(bad);
    ASSERT_FALSE(r) << "'" << bad << "' was accepted";
    EXPECT_EQ(r.error(), OwnershipErrc::bad_syntax) << bad;
    EXPECT_FALSE(r.error().why.empty()) << bad;
  }
  EXPECT_FALSE(parse_partition_owner("0=http://" + std::string(2100, 'a')));
}

TEST(OwnershipFlags, ErrorsNameTheFlagAndTheValue) {
  auto why = OwnershipFlags::parse("0-", {}).error().why;
  EXPECT_EQ(OwnershipFlags::parse("0-", {}).error(), OwnershipErrc::bad_syntax);
  EXPECT_NE(why.find("--owns-partitions '0-'"), std::string::npos) << why;
  const std::vector<std::string> owners = {"1=http://a", "2:http://b"};
  EXPECT_EQ(OwnershipFlags::parse(std::nullopt, owners).error(), OwnershipErrc::bad_syntax);
  why = OwnershipFlags::parse(std::nullopt, owners).error().why;
  EXPECT_NE(why.find("--partition-owner '2:http://b'"), std::string::npos) << why;
  EXPECT_NE(why.find("LIST=URL"), std::string::npos) << why;
}

TEST(PartitionOwnership, WithoutFlagsOwnsEveryPartitionAndNamesNoOwner) {
  const auto o = from(8, std::nullopt, {}).value();
  EXPECT_TRUE(o.owns_all());
  EXPECT_EQ(o.partition_count(), 8u);
  for (std::uint32_t p = 0; p < 8; ++p) {
    EXPECT_TRUE(o.owns(Partition{p}));
    EXPECT_FALSE(o.owner_of(Partition{p}));
  }
  EXPECT_EQ(o.describe(), "all");
  EXPECT_TRUE(PartitionOwnership::all(3).owns_all());
  EXPECT_EQ(PartitionOwnership::all(3).describe(), "all");
}

TEST(PartitionOwnership, OwnsTheListedPartitionsAndNamesTheOwnersOfTheOthers) {
  const auto o = from(8, "0-3,6", {"4-5=http://10.0.0.2:8080", "7=http://10.0.0.3:8080"}).value();
  EXPECT_FALSE(o.owns_all());
  for (std::uint32_t p : {0u, 1u, 2u, 3u, 6u}) {
    EXPECT_TRUE(o.owns(Partition{p})) << p;
    EXPECT_FALSE(o.owner_of(Partition{p})) << p;
  }
  EXPECT_FALSE(o.owns(Partition{4}));
  EXPECT_EQ(o.owner_of(Partition{4}), "http://10.0.0.2:8080");
  EXPECT_EQ(o.owner_of(Partition{5}), "http://10.0.0.2:8080");
  EXPECT_EQ(o.owner_of(Partition{7}), "http://10.0.0.3:8080");
  EXPECT_EQ(o.describe(), "0-3,6");
}

TEST(PartitionOwnership, APartitionNeitherOwnedNorAssignedIsRefusedWithoutAnOwner) {
  const auto o = from(4, "0,1", {"2=http://b"}).value();
  EXPECT_FALSE(o.owns(Partition{3}));
  EXPECT_FALSE(o.owner_of(Partition{3}));
}

TEST(PartitionOwnership, PartitionsBeyondTheCountAreNeitherOwnedNorAssigned) {
  const auto o = from(4, "all", {}).value();
  EXPECT_FALSE(o.owns(Partition{4}));
  EXPECT_FALSE(o.owner_of(Partition{4}));
}

TEST(PartitionOwnership, NoneOwnsNothingAndAllMayBeAssignedToOneOwner) {
  const auto o = from(4, "none", {"all=http://writer:8080"}).value();
  EXPECT_EQ(o.describe(), "none");
  for (std::uint32_t p = 0; p < 4; ++p) {
    EXPECT_FALSE(o.owns(Partition{p}));
    EXPECT_EQ(o.owner_of(Partition{p}), "http://writer:8080");
  }
}

TEST(PartitionOwnership, RefusesPartitionsBeyondTheLogsCount) {
  OwnershipError e;
  e = from(8, "0-8", {}).error();
  EXPECT_EQ(e, OwnershipErrc::out_of_range);
  EXPECT_NE(e.why.find("--owns-partitions names partition 8, but the log has 8 partitions (0-7)"),
            std::string::npos)
      << e.why;
  e = from(8, "0-3", {"4-9=http://b"}).error();
  EXPECT_EQ(e, OwnershipErrc::out_of_range);
  EXPECT_NE(e.why.find("--partition-owner 4-9=http://b names partition 9"), std::string::npos)
      << e.why;
}

TEST(PartitionOwnership, RefusesAPartitionBothOwnedAndAssignedAnOwner) {
  OwnershipError e;
  e = from(8, "0-4", {"4-7=http://b"}).error();
  EXPECT_EQ(e, OwnershipErrc::conflict);
  EXPECT_NE(e.why.find("partition 4 is owned by this node"), std::string::npos) << e.why;
  // The default "all" conflicts with any owner: a node must say what it owns.
  e = from(8, std::nullopt, {"4-7=http://b"}).error();
  EXPECT_EQ(e, OwnershipErrc::conflict);
  EXPECT_NE(e.why.find("the default"), std::string::npos) << e.why;
}

TEST(PartitionOwnership, RefusesAPartitionAssignedTwoOwnersButNotTheSameOwnerTwice) {
  OwnershipError e;
  e = from(8, "0-3", {"4-6=http://b", "6-7=http://c"}).error();
  EXPECT_EQ(e, OwnershipErrc::conflict);
  EXPECT_NE(e.why.find("partition 6 is assigned to both http://b and http://c"), std::string::npos)
      << e.why;
  const auto o = from(8, "0-3", {"4-6=http://b", "6-7=http://b"}).value();
  EXPECT_EQ(o.owner_of(Partition{7}), "http://b");
}

TEST(OwnershipErrc, HasItsOwnCategoryAndMessages) {
  const std::error_code ec = OwnershipErrc::not_owner;
  EXPECT_STREQ(ec.category().name(), "sechex.ownership");
  EXPECT_EQ(ec.message(), "this node does not own the partition");
  EXPECT_NE(ec, std::error_code(ledger::Errc::invalid_argument));
}

}  // namespace
}  // namespace sechex::api
