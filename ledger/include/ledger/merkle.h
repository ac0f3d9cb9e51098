// RFC 6962 / RFC 9162 §2.1 Merkle trees: hashing, the compact range an appender keeps, proof
// generation over stored subtree hashes, and proof verification.
//
//   leaf hash = SHA-256(0x00 || leaf data)
//   node hash = SHA-256(0x01 || left || right)
//   MTH({})   = SHA-256("")
//
// Node addressing: (level, index) is the perfect subtree of 2^level leaves starting at leaf
// index << level; level 0 is a leaf hash. Proof generation asks a NodeSource for such nodes only,
// so a store keeps exactly the perfect subtrees (what CompactRange::push reports) and can serve
// the tree of any size up to its own.
//
// Thread-safety: free functions are pure; a CompactRange is a value (one writer at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::ledger::merkle {

Hash leaf_hash(ByteView data);
Hash node_hash(const Hash& left, const Hash& right);
Hash empty_root();

// The right edge of a growing tree: the roots of the perfect subtrees that make up its size
// (one per set bit of the size, largest first). O(log n) memory, O(1) amortised hashing per leaf.
class CompactRange {
 public:
  CompactRange() = default;
  // From the perfect subtree roots for `size`, largest first (what nodes_for_size() names).
  // Fails with Errc::invalid_argument when their count does not match the size's set bits.
  static Result<CompactRange> from_nodes(std::uint64_t size, std::vector<Hash> nodes);

  // Appends one leaf; `on_node(level, index, hash)` is called for every perfect subtree of
  // level >= 1 that this leaf completes (lowest first), so a store can keep them.
  void push(const Hash& leaf,
            const std::function<void(unsigned, std::uint64_t, const Hash&)>& on_node = {});
  Hash root() const;
  std::uint64_t size() const { return size_; }
  const std::vector<Hash>& nodes() const { return nodes_; }

 private:
  std::uint64_t size_ = 0;
  std::vector<Hash> nodes_;  // largest subtree first
};

struct NodeId {
  unsigned level = 0;
  std::uint64_t index = 0;
};
// The perfect subtrees whose roots make up a tree of `size` leaves, largest first.
std::vector<NodeId> nodes_for_size(std::uint64_t size);

// Returns the hash of perfect subtree (level, index); errors pass through.
using NodeSource = std::function<Result<Hash>(unsigned level, std::uint64_t index)>;

// MTH(D[begin:end]) for a range whose perfect parts are aligned (every range a proof needs is).
Result<Hash> subtree_hash(const NodeSource& nodes, std::uint64_t begin, std::uint64_t end);
Result<Hash> root(const NodeSource& nodes, std::uint64_t size);
// RFC 9162 §2.1.3.1 PATH(index, D[0:size]); Errc::invalid_argument unless index < size.
Result<std::vector<Hash>> inclusion_proof(const NodeSource& nodes, std::uint64_t index,
                                          std::uint64_t size);
// RFC 9162 §2.1.4.1 PROOF(from, D[0:to]); Errc::invalid_argument unless 0 < from <= to.
Result<std::vector<Hash>> consistency_proof(const NodeSource& nodes, std::uint64_t from,
                                            std::uint64_t to);

// RFC 9162 §2.1.3.2. False for any malformed input (index >= size, wrong proof length).
bool verify_inclusion(const Hash& leaf, std::uint64_t index, std::uint64_t size,
                      std::span<const Hash> proof, const Hash& root);
// RFC 9162 §2.1.4.2; from == to needs an empty proof and equal roots.
bool verify_consistency(std::uint64_t from, std::uint64_t to, const Hash& from_root,
                        const Hash& to_root, std::span<const Hash> proof);

}  // namespace sechex::ledger::merkle
