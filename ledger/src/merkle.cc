#include "ledger/merkle.h"

#include <bit>
#include <cstring>
#include <vector>

#include "ledger/crypto.h"

namespace sechex::ledger::merkle {
namespace {

// The largest power of two strictly below n (n >= 2): the split point of RFC 9162 §2.1.1.
std::uint64_t split_point(std::uint64_t n) { return std::bit_floor(n - 1); }

// begin..begin+len is a perfect subtree when len is a power of two and begin is aligned to it.
bool is_perfect(std::uint64_t begin, std::uint64_t len) {
  return std::has_single_bit(len) && begin % len == 0;
}

Result<void> path(const NodeSource& nodes, std::uint64_t index, std::uint64_t begin,
                  std::uint64_t end, std::vector<Hash>& out) {
  if (end - begin <= 1) return boost::outcome_v2::success();
  const auto k = split_point(end - begin);
  if (index < begin + k) {
    SECHEX_TRYV(path(nodes, index, begin, begin + k, out));
    SECHEX_TRY(auto right, subtree_hash(nodes, begin + k, end));
    out.push_back(right);
  } else {
    SECHEX_TRYV(path(nodes, index, begin + k, end, out));
    SECHEX_TRY(auto left, subtree_hash(nodes, begin, begin + k));
    out.push_back(left);
  }
  return boost::outcome_v2::success();
}

// SUBPROOF(m, D[begin:end], complete) of RFC 9162 §2.1.4.1, with m counted from `begin`.
Result<void> subproof(const NodeSource& nodes, std::uint64_t m, std::uint64_t begin,
                      std::uint64_t end, bool complete, std::vector<Hash>& out) {
  const auto n = end - begin;
  if (m == n) {
    if (!complete) {
      SECHEX_TRY(auto h, subtree_hash(nodes, begin, end));
      out.push_back(h);
    }
    return boost::outcome_v2::success();
  }
  const auto k = split_point(n);
  if (m <= k) {
    SECHEX_TRYV(subproof(nodes, m, begin, begin + k, complete, out));
    SECHEX_TRY(auto right, subtree_hash(nodes, begin + k, end));
    out.push_back(right);
  } else {
    SECHEX_TRYV(subproof(nodes, m - k, begin + k, end, false, out));
    SECHEX_TRY(auto left, subtree_hash(nodes, begin, begin + k));
    out.push_back(left);
  }
  return boost::outcome_v2::success();
}

}  // namespace

Hash leaf_hash(ByteView data) {
  // One contiguous buffer and one SHA-256 call, as for the chain hash (record.cc): this runs for
  // every appended record, and an EVP context per call costs more than hashing 300 bytes.
  thread_local std::vector<std::uint8_t> buf;
  buf.resize(data.size() + 1);
  buf[0] = 0x00;
  if (!data.empty()) std::memcpy(buf.data() + 1, data.data(), data.size());
  return crypto::sha256(ByteView(buf.data(), buf.size()));
}

Hash node_hash(const Hash& left, const Hash& right) {
  std::uint8_t buf[1 + 32 + 32];
  buf[0] = 0x01;
  std::memcpy(buf + 1, left.data(), 32);
  std::memcpy(buf + 33, right.data(), 32);
  return crypto::sha256(ByteView(buf, sizeof(buf)));
}

Hash empty_root() { return crypto::sha256(ByteView()); }

Result<CompactRange> CompactRange::from_nodes(std::uint64_t size, std::vector<Hash> nodes) {
  if (nodes.size() != static_cast<std::size_t>(std::popcount(size))) return Errc::invalid_argument;
  CompactRange r;
  r.size_ = size;
  r.nodes_ = std::move(nodes);
  return r;
}

void CompactRange::push(const Hash& leaf,
                        const std::function<void(unsigned, std::uint64_t, const Hash&)>& on_node) {
  Hash h = leaf;
  unsigned level = 0;
  std::uint64_t index = size_;
  // Each trailing one bit of the leaf's index is a complete left sibling waiting on the stack.
  while ((index & 1) != 0) {
    h = node_hash(nodes_.back(), h);
    nodes_.pop_back();
    ++level;
    index >>= 1;
    if (on_node) on_node(level, index, h);
  }
  nodes_.push_back(h);
  ++size_;
}

Hash CompactRange::root() const {
  if (nodes_.empty()) return empty_root();
  Hash r = nodes_.back();
  for (auto i = nodes_.size() - 1; i-- > 0;) r = node_hash(nodes_[i], r);
  return r;
}

std::vector<NodeId> nodes_for_size(std::uint64_t size) {
  std::vector<NodeId> out;
  std::uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    const auto span = std::uint64_t{1} << level;
    if ((size & span) == 0) continue;
    out.push_back({static_cast<unsigned>(level), begin >> level});
    begin += span;
  }
  return out;
}

Result<Hash> subtree_hash(const NodeSource& nodes, std::uint64_t begin, std::uint64_t end) {
  if (end < begin) return Errc::invalid_argument;
  const auto n = end - begin;
  if (n == 0) return empty_root();
  if (is_perfect(begin, n)) {
    const auto level = static_cast<unsigned>(std::countr_zero(n));
    return nodes(level, begin >> level);
  }
  const auto k = split_point(n);
  SECHEX_TRY(auto left, subtree_hash(nodes, begin, begin + k));
  SECHEX_TRY(auto right, subtree_hash(nodes, begin + k, end));
  return node_hash(left, right);
}

Result<Hash> root(const NodeSource& nodes, std::uint64_t size) {
  return subtree_hash(nodes, 0, size);
}

Result<std::vector<Hash>> inclusion_proof(const NodeSource& nodes, std::uint64_t index,
                                          std::uint64_t size) {
  if (index >= size) return Errc::invalid_argument;
  std::vector<Hash> out;
  SECHEX_TRYV(path(nodes, index, 0, size, out));
  return out;
}

Result<std::vector<Hash>> consistency_proof(const NodeSource& nodes, std::uint64_t from,
                                            std::uint64_t to) {
  if (from == 0 || from > to) return Errc::invalid_argument;
  std::vector<Hash> out;
  SECHEX_TRYV(subproof(nodes, from, 0, to, true, out));
  return out;
}

bool verify_inclusion(const Hash& leaf, std::uint64_t index, std::uint64_t size,
                      std::span<const Hash> proof, const Hash& root) {
  if (index >= size) return false;
  std::uint64_t fn = index;
  std::uint64_t sn = size - 1;
  Hash r = leaf;
  for (const auto& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      r = node_hash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool verify_consistency(std::uint64_t from, std::uint64_t to, const Hash& from_root,
                        const Hash& to_root, std::span<const Hash> proof) {
  if (from == 0 || from > to) return false;
  if (from == to) return proof.empty() && from_root == to_root;
  if (proof.empty()) return false;
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  // A first tree that is a perfect subtree of the second is its own first node.
  if (std::has_single_bit(from)) path.push_back(from_root);
  path.insert(path.end(), proof.begin(), proof.end());
  std::uint64_t fn = from - 1;
  std::uint64_t sn = to - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (std::size_t i = 1; i < path.size(); ++i) {
    const auto& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = node_hash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr == from_root && sr == to_root && sn == 0;
}

}  // namespace sechex::ledger::merkle
