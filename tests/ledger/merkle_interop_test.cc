// Issue 16: the ledger's Merkle proofs are accepted by an independent verifier, the reference
// Go module github.com/transparency-dev/merkle (RFC 6962 hashing, RFC 9162 verification), built
// from the Go module proxy by ops/oracles/setup (ops/test exports SECHEX_MERKLE_ORACLE); and
// every proof we alter is refused by it too.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ledger/proof.h"
#include "support/process.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using nlohmann::json;

TEST(MerkleInterop, ReferenceGoVerifierAcceptsOurProofsAndRefusesAlteredOnes) {
  const char* oracle = std::getenv("SECHEX_MERKLE_ORACLE");
  if (oracle == nullptr) {
    GTEST_SKIP()
        << "SECHEX_MERKLE_ORACLE (ops/oracles/setup's build of the transparency-dev/merkle "
           "verifier) is not set; run through ops/test";
  }
  testing::TempDir dir;
  auto signer = testing::make_signer();
  LogOptions o;
  o.path = dir.path();
  o.create_if_missing = true;
  o.partitions = 1;
  o.signer = &signer;
  o.checkpoints.every_records = 1;  // a signed checkpoint at every size
  o.checkpoints.every = std::chrono::microseconds(0);
  auto log = LogStore::open(o).value();
  testing::append_n(*log, testing::subject_in(0, 1), 37);

  const std::vector<std::uint64_t> sizes = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37};
  json items = json::array();
  std::vector<bool> expect;
  auto add = [&](json j, bool valid) {
    items.push_back(std::move(j));
    expect.push_back(valid);
  };
  auto flip = [](json j) {
    auto h = j["proof"][0].get<std::string>();
    h[0] = h[0] == '0' ? '1' : '0';
    j["proof"][0] = h;
    return j;
  };
  for (const auto size : sizes) {
    for (std::uint64_t seq = 0; seq < size; ++seq) {
      const auto p = prove_inclusion(*log, Partition{0}, Seq{seq}, size);
      ASSERT_TRUE(p) << seq << "/" << size << ": " << p.error().message();
      const auto j = to_json(p.value());
      add(j, true);
      if (!j["proof"].empty() && seq % 3 == 0) add(flip(j), false);
      if (seq == 0 && size > 1) {
        auto wrong_index = j;
        wrong_index["seq"] = size - 1;
        add(wrong_index, false);
      }
    }
    for (const auto to : sizes) {
      if (to < size) continue;
      const auto c = prove_consistency(*log, Partition{0}, size, to);
      ASSERT_TRUE(c) << size << "->" << to << ": " << c.error().message();
      const auto j = to_json(c.value());
      add(j, true);
      if (!j["proof"].empty()) add(flip(j), false);
    }
  }
  const auto input = dir.sub("proofs.json");
  std::ofstream(input) << items.dump();
  const auto r = testing::run({"/bin/sh", "-c", std::string(oracle) + " < " + input});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::size_t i = 0, accepted = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(i, expect.size());
    EXPECT_EQ(line == "ok", expect[i]) << "item " << i << ": " << line << "\n" << items[i].dump();
    accepted += line == "ok" ? 1 : 0;
    ++i;
  }
  EXPECT_EQ(i, expect.size()) << "the oracle answered fewer lines than proofs";
  EXPECT_GT(accepted, 300u);
}

}  // namespace
}  // namespace sechex::ledger
