// RFC 6962 / RFC 9162 Merkle trees against the certificate-transparency reference tree in
// ../shared/testvectors/standards.json, and proofs over every small tree checked both ways.
#include "ledger/merkle.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "ledger/crypto.h"

namespace sechex::ledger {
namespace {

using json = nlohmann::json;

json rfc6962() {
  std::ifstream in(std::string(SECHEX_SHARED_DIR) + "/testvectors/standards.json");
  EXPECT_TRUE(in) << "cannot open ../shared/testvectors/standards.json";
  return json::parse(in, nullptr, false)["rfc6962"];
}

Bytes unhex(const std::string& s) {
  Bytes out;
  EXPECT_TRUE(from_hex(s, out)) << s;
  return out;
}

Hash hash_of(const std::string& s) {
  const auto b = unhex(s);
  Hash h{};
  EXPECT_EQ(b.size(), 32u);
  std::copy(b.begin(), b.end(), h.begin());
  return h;
}

// A tree kept the way a store keeps it: the nodes CompactRange reports, plus leaf hashes.
struct StoredTree {
  std::vector<Hash> leaves;
  std::map<std::pair<unsigned, std::uint64_t>, Hash> nodes;
  merkle::CompactRange range;

  void add(ByteView data) {
    const auto leaf = merkle::leaf_hash(data);
    leaves.push_back(leaf);
    range.push(leaf, [&](unsigned level, std::uint64_t index, const Hash& h) {
      EXPECT_TRUE(nodes.emplace(std::pair{level, index}, h).second) << "node reported twice";
    });
  }
  merkle::NodeSource source() const {
    return [this](unsigned level, std::uint64_t index) -> Result<Hash> {
      if (level == 0) {
        if (index >= leaves.size()) return Errc::not_found;
        return leaves[index];
      }
      const auto it = nodes.find({level, index});
      if (it == nodes.end()) return Errc::not_found;
      return it->second;
    };
  }
};

StoredTree reference_tree(std::size_t size) {
  const auto v = rfc6962();
  StoredTree t;
  for (std::size_t i = 0; i < size; ++i) t.add(unhex(v["leaves_hex"][i].get<std::string>()));
  return t;
}

std::vector<Hash> hashes_of(const json& list) {
  std::vector<Hash> out;
  for (const auto& h : list) out.push_back(hash_of(h.get<std::string>()));
  return out;
}

TEST(Merkle, EmptyTreeRootIsTheHashOfNothing) {
  EXPECT_EQ(to_hex(merkle::empty_root()), rfc6962()["empty_root"].get<std::string>());
  EXPECT_EQ(merkle::CompactRange().root(), merkle::empty_root());
}

TEST(Merkle, Rfc6962ReferenceRootsOfEverySizeFromTheCompactRangeAndFromStoredNodes) {
  const auto v = rfc6962();
  ASSERT_EQ(v["roots"].size(), 8u);
  StoredTree t;
  for (std::size_t size = 1; size <= 8; ++size) {
    t.add(unhex(v["leaves_hex"][size - 1].get<std::string>()));
    const auto want = v["roots"][std::to_string(size)].get<std::string>();
    EXPECT_EQ(to_hex(t.range.root()), want) << "size " << size;
    EXPECT_EQ(to_hex(merkle::root(t.source(), size).value()), want) << "size " << size;
  }
  // Roots of smaller trees stay computable from the nodes a larger tree stored.
  for (std::size_t size = 1; size <= 8; ++size) {
    EXPECT_EQ(to_hex(merkle::root(t.source(), size).value()),
              v["roots"][std::to_string(size)].get<std::string>());
  }
}

TEST(Merkle, Rfc9162InclusionProofsOfTheSize8TreeMatchTheReferenceAndVerify) {
  const auto v = rfc6962();
  const auto t = reference_tree(8);
  const auto root = hash_of(v["roots"]["8"].get<std::string>());
  ASSERT_EQ(v["inclusion_size8"].size(), 8u);
  for (std::uint64_t i = 0; i < 8; ++i) {
    const auto want = hashes_of(v["inclusion_size8"][std::to_string(i)]);
    const auto got = merkle::inclusion_proof(t.source(), i, 8);
    ASSERT_TRUE(got) << i;
    EXPECT_EQ(got.value(), want) << "leaf " << i;
    EXPECT_TRUE(merkle::verify_inclusion(t.leaves[i], i, 8, want, root)) << "leaf " << i;
  }
}

TEST(Merkle, Rfc9162ConsistencyProofsToSize8MatchTheReferenceAndVerify) {
  const auto v = rfc6962();
  const auto t = reference_tree(8);
  const auto root8 = hash_of(v["roots"]["8"].get<std::string>());
  ASSERT_EQ(v["consistency_to_8"].size(), 7u);
  for (std::uint64_t m = 1; m < 8; ++m) {
    const auto want = hashes_of(v["consistency_to_8"][std::to_string(m)]);
    const auto got = merkle::consistency_proof(t.source(), m, 8);
    ASSERT_TRUE(got) << m;
    EXPECT_EQ(got.value(), want) << "from " << m;
    const auto root_m = hash_of(v["roots"][std::to_string(m)].get<std::string>());
    EXPECT_TRUE(merkle::verify_consistency(m, 8, root_m, root8, want)) << "from " << m;
  }
}

// Every proof of every tree up to 33 leaves verifies, and each single-bit change, shortened or
// lengthened proof, wrong index or wrong size is refused.
TEST(Merkle, EveryProofOfSmallTreesVerifiesAndEveryAlterationIsRefused) {
  StoredTree t;
  std::vector<Hash> roots{merkle::empty_root()};
  for (std::uint32_t i = 0; i < 33; ++i) {
    std::uint8_t data[4] = {static_cast<std::uint8_t>(i), 0xAB, 0xCD, 0xEF};
    t.add(ByteView(data, sizeof(data)));
    roots.push_back(t.range.root());
  }
  auto flip = [](Hash h) {
    h[7] ^= 0x10;
    return h;
  };
  for (std::uint64_t size = 1; size <= 33; ++size) {
    const auto& root = roots[size];
    for (std::uint64_t i = 0; i < size; ++i) {
      const auto proof = merkle::inclusion_proof(t.source(), i, size).value();
      ASSERT_TRUE(merkle::verify_inclusion(t.leaves[i], i, size, proof, root)) << i << "/" << size;
      EXPECT_FALSE(merkle::verify_inclusion(flip(t.leaves[i]), i, size, proof, root));
      EXPECT_FALSE(merkle::verify_inclusion(t.leaves[i], i, size, proof, flip(root)));
      if (size > 1) {
        EXPECT_FALSE(merkle::verify_inclusion(t.leaves[i], (i + 1) % size, size, proof, root));
      }
      for (std::size_t k = 0; k < proof.size(); ++k) {
        auto bad = proof;
        bad[k] = flip(bad[k]);
        EXPECT_FALSE(merkle::verify_inclusion(t.leaves[i], i, size, bad, root));
      }
      if (!proof.empty()) {
        std::vector<Hash> shorter(proof.begin(), proof.end() - 1);
        EXPECT_FALSE(merkle::verify_inclusion(t.leaves[i], i, size, shorter, root));
      }
      auto longer = proof;
      longer.push_back(root);
      EXPECT_FALSE(merkle::verify_inclusion(t.leaves[i], i, size, longer, root));
    }
    EXPECT_FALSE(merkle::verify_inclusion(t.leaves[0], size, size, {}, root));
    for (std::uint64_t m = 1; m <= size; ++m) {
      const auto proof = merkle::consistency_proof(t.source(), m, size).value();
      ASSERT_TRUE(merkle::verify_consistency(m, size, roots[m], root, proof)) << m << "->" << size;
      EXPECT_FALSE(merkle::verify_consistency(m, size, flip(roots[m]), root, proof));
      EXPECT_FALSE(merkle::verify_consistency(m, size, roots[m], flip(root), proof));
      for (std::size_t k = 0; k < proof.size(); ++k) {
        auto bad = proof;
        bad[k] = flip(bad[k]);
        EXPECT_FALSE(merkle::verify_consistency(m, size, roots[m], root, bad));
      }
      if (!proof.empty()) {
        std::vector<Hash> shorter(proof.begin(), proof.end() - 1);
        EXPECT_FALSE(merkle::verify_consistency(m, size, roots[m], root, shorter));
      }
    }
  }
  EXPECT_FALSE(merkle::verify_consistency(0, 4, roots[0], roots[4], {}));
  EXPECT_FALSE(merkle::verify_consistency(5, 4, roots[5], roots[4], {}));
  EXPECT_FALSE(merkle::inclusion_proof(t.source(), 33, 33));
  EXPECT_FALSE(merkle::consistency_proof(t.source(), 0, 4));
  EXPECT_FALSE(merkle::consistency_proof(t.source(), 5, 4));
}

TEST(Merkle, CompactRangeRestoredFromItsNodesContinuesTheSameTree) {
  StoredTree t;
  for (std::uint32_t i = 0; i < 21; ++i) {
    std::uint8_t d = static_cast<std::uint8_t>(i);
    t.add(ByteView(&d, 1));
  }
  std::vector<Hash> nodes;
  for (const auto& id : merkle::nodes_for_size(21)) {
    nodes.push_back(t.source()(id.level, id.index).value());
  }
  EXPECT_EQ(nodes, t.range.nodes());
  auto restored = merkle::CompactRange::from_nodes(21, nodes);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored.value().root(), t.range.root());
  std::uint8_t d = 99;
  restored.value().push(merkle::leaf_hash(ByteView(&d, 1)));
  t.add(ByteView(&d, 1));
  EXPECT_EQ(restored.value().root(), t.range.root());
  EXPECT_FALSE(merkle::CompactRange::from_nodes(21, {}));
}

TEST(Merkle, AMissingStoredNodeIsAnErrorNotAWrongRoot) {
  auto t = reference_tree(8);
  t.nodes.erase({3, 0});
  t.nodes.erase({2, 1});
  EXPECT_EQ(merkle::root(t.source(), 8).error(), Errc::not_found);
  EXPECT_EQ(merkle::inclusion_proof(t.source(), 0, 8).error(), Errc::not_found);
}

}  // namespace
}  // namespace sechex::ledger
