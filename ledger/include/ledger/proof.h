// Merkle proofs an auditor can check with nothing but the ledger's verifier key: an inclusion
// proof of one record, and a consistency proof between two signed checkpoints (RFC 9162 §2.1.3,
// §2.1.4), made from any Log that keeps a tree, as JSON, and checked offline.
//
// JSON (the API.md contract; hashes lowercase hex, record base64):
//   inclusion:   {partition, seq, treeSize, record, leafHash, rootHash, proof:[…], checkpoint}
//   consistency: {partition, from, to, fromRoot, toRoot, proof:[…], fromCheckpoint,
//                 toCheckpoint}
// `checkpoint`, `fromCheckpoint` and `toCheckpoint` are the signed notes (checkpoint.h) that
// commit to the roots, so a proof stands on its own. The leaf is the record's stored bytes
// (record.h, format 1): leaf hash = SHA-256(0x00 || record).
//
// Thread-safety: free functions; safe to call concurrently on a thread-safe Log.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ledger/checkpoint.h"
#include "ledger/log.h"

namespace sechex::ledger {

struct InclusionProof {
  Partition partition;
  Seq seq;
  std::uint64_t tree_size = 0;
  Bytes record;
  Hash leaf_hash{};
  Hash root_hash{};
  std::vector<Hash> path;
  std::string checkpoint;
};

struct ConsistencyProof {
  Partition partition;
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  Hash from_root{};
  Hash to_root{};
  std::vector<Hash> path;
  std::string from_checkpoint;
  std::string to_checkpoint;
};

// Against the signed checkpoint of `size` records (default: the latest one). Errors:
// Errc::not_supported (the log keeps no tree), Errc::not_found (no checkpoint at that size or
// none with a tree root, or `seq` not below the size), Errc::pruned (the record's payload was
// removed by retention), storage errors.
Result<InclusionProof> prove_inclusion(const Log& log, Partition partition, Seq seq,
                                       std::optional<std::uint64_t> size = std::nullopt);
// Between the signed checkpoints of `from` and `to` records (0 < from <= to). Errors:
// Errc::invalid_argument (bad sizes), Errc::not_found (no checkpoint with a root at a size),
// Errc::not_supported, storage errors.
Result<ConsistencyProof> prove_consistency(const Log& log, Partition partition, std::uint64_t from,
                                           std::uint64_t to);

nlohmann::json to_json(const InclusionProof& proof);
nlohmann::json to_json(const ConsistencyProof& proof);
// Field checks only (types, hex, base64, sizes); nullopt when malformed.
std::optional<InclusionProof> inclusion_from_json(const nlohmann::json& j);
std::optional<ConsistencyProof> consistency_from_json(const nlohmann::json& j);

// The outcome of an offline check. Reasons (stable identifiers):
//   proof_malformed, checkpoint_malformed, checkpoint_unknown_key, checkpoint_bad_signature,
//   checkpoint_without_root (signed before the tree existed), checkpoint_mismatch (the note's
//   origin, size or root is not the proof's), record_mismatch (the record is not a whole record
//   of that partition and seq), leaf_mismatch, proof_invalid.
struct ProofCheck {
  bool ok = false;
  std::string reason;
  std::string detail;  // for people: what was checked, or what failed
};
ProofCheck check_inclusion(const InclusionProof& proof, const TrustedKeys& keys);
ProofCheck check_consistency(const ConsistencyProof& proof, const TrustedKeys& keys);

}  // namespace sechex::ledger
