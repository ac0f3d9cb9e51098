#include "ledger/proof.h"

#include <variant>

#include "ledger/crypto.h"
#include "ledger/merkle.h"
#include "ledger/record.h"

namespace sechex::ledger {
namespace {

using json = nlohmann::json;

merkle::NodeSource nodes_of(const Log& log, Partition p) {
  return [&log, p](unsigned level, std::uint64_t index) { return log.tree_node(p, level, index); };
}

// The signed note at `size` (or the latest) and the checkpoint it carries, which must commit to
// a tree root.
Result<std::pair<std::string, Checkpoint>> rooted_checkpoint(const Log& log, Partition p,
                                                             std::optional<std::uint64_t> size) {
  auto note = size ? log.checkpoint_at(p, *size) : log.latest_checkpoint(p);
  if (!note) return note.error();
  if (!note.value()) return Errc::not_found;
  auto cp = parse_checkpoint_body(*note.value());
  if (!cp) return Errc::corruption;
  if (!cp->root) return Errc::not_found;
  return std::pair{std::move(*note.value()), std::move(*cp)};
}

std::string hex(const Hash& h) { return to_hex(h); }

json hex_list(const std::vector<Hash>& hashes) {
  json out = json::array();
  for (const auto& h : hashes) out.push_back(hex(h));
  return out;
}

bool hash_value(const json& v, Hash& out) {
  if (!v.is_string()) return false;
  const auto& text = v.get_ref<const std::string&>();
  // Lowercase only, so one hash has one spelling.
  if (text.find_first_of("ABCDEF") != std::string::npos) return false;
  Bytes b;
  if (!from_hex(text, b) || b.size() != out.size()) return false;
  std::copy(b.begin(), b.end(), out.begin());
  return true;
}

bool hash_from(const json& j, const char* field, Hash& out) {
  const auto it = j.find(field);
  return it != j.end() && hash_value(*it, out);
}

bool hashes_from(const json& j, const char* field, std::vector<Hash>& out) {
  const auto it = j.find(field);
  // 64 levels bound any tree of 2^64 leaves; a longer list is not a proof.
  if (it == j.end() || !it->is_array() || it->size() > 64) return false;
  for (const auto& e : *it) {
    Hash h{};
    if (!hash_value(e, h)) return false;
    out.push_back(h);
  }
  return true;
}

bool u64_from(const json& j, const char* field, std::uint64_t& out) {
  const auto it = j.find(field);
  if (it == j.end() || !it->is_number_unsigned()) return false;
  out = it->get<std::uint64_t>();
  return true;
}

bool string_from(const json& j, const char* field, std::string& out) {
  const auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

bool partition_from(const json& j, Partition& out) {
  std::uint64_t v = 0;
  if (!u64_from(j, "partition", v) || v > UINT32_MAX) return false;
  out = Partition{static_cast<std::uint32_t>(v)};
  return true;
}

ProofCheck refuse(std::string reason, std::string detail) {
  return {false, std::move(reason), std::move(detail)};
}

// A signed note by a trusted key, carrying a root, for this partition's origin suffix.
std::variant<Checkpoint, ProofCheck> trusted_checkpoint(const std::string& note,
                                                        const TrustedKeys& keys, Partition p,
                                                        const std::string& what) {
  const auto check = keys.verify(note);
  if (auto why = TrustedKeys::refusal(check, what)) {
    return refuse(std::move(why->first), std::move(why->second));
  }
  const auto& cp = check.checkpoint;
  if (!cp.root) {
    return refuse("checkpoint_without_root",
                  what + " was signed before the ledger kept a Merkle tree; it commits to no root");
  }
  const auto suffix = "/" + std::to_string(p.value);
  if (cp.origin.size() <= suffix.size() ||
      cp.origin.compare(cp.origin.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return refuse("checkpoint_mismatch",
                  what + " is for '" + cp.origin + "', not partition " + std::to_string(p.value));
  }
  return cp;
}

}  // namespace

Result<InclusionProof> prove_inclusion(const Log& log, Partition partition, Seq seq,
                                       std::optional<std::uint64_t> size) {
  if (partition.value >= log.partition_count()) return Errc::invalid_argument;
  SECHEX_TRY(auto signed_cp, rooted_checkpoint(log, partition, size));
  auto& [note, cp] = signed_cp;
  if (seq.value >= cp.size) return Errc::not_found;
  SECHEX_TRY(auto records, log.read_range(partition, seq, Seq{seq.value + 1}));
  if (records.empty()) return Errc::not_found;
  const auto& r = records.front();
  InclusionProof out;
  out.partition = partition;
  out.seq = seq;
  out.tree_size = cp.size;
  const auto bytes = encode_record(partition, seq, r.hash, r.event);
  out.record.assign(bytes.begin(), bytes.end());
  out.leaf_hash = merkle::leaf_hash(out.record);
  out.root_hash = *cp.root;
  SECHEX_TRY(out.path, merkle::inclusion_proof(nodes_of(log, partition), seq.value, cp.size));
  // A proof that does not check against our own signed root means the stored tree is wrong:
  // better an error than handing it out.
  if (!merkle::verify_inclusion(out.leaf_hash, seq.value, cp.size, out.path, out.root_hash)) {
    return Errc::corruption;
  }
  out.checkpoint = std::move(note);
  return out;
}

Result<ConsistencyProof> prove_consistency(const Log& log, Partition partition, std::uint64_t from,
                                           std::uint64_t to) {
  if (partition.value >= log.partition_count() || from == 0 || from > to) {
    return Errc::invalid_argument;
  }
  SECHEX_TRY(auto older, rooted_checkpoint(log, partition, from));
  SECHEX_TRY(auto newer, rooted_checkpoint(log, partition, to));
  ConsistencyProof out;
  out.partition = partition;
  out.from = from;
  out.to = to;
  out.from_root = *older.second.root;
  out.to_root = *newer.second.root;
  SECHEX_TRY(out.path, merkle::consistency_proof(nodes_of(log, partition), from, to));
  if (!merkle::verify_consistency(from, to, out.from_root, out.to_root, out.path)) {
    return Errc::corruption;
  }
  out.from_checkpoint = std::move(older.first);
  out.to_checkpoint = std::move(newer.first);
  return out;
}

json to_json(const InclusionProof& p) {
  return {{"partition", p.partition.value}, {"seq", p.seq.value},
          {"treeSize", p.tree_size},        {"record", crypto::base64_encode(p.record)},
          {"leafHash", hex(p.leaf_hash)},   {"rootHash", hex(p.root_hash)},
          {"proof", hex_list(p.path)},      {"checkpoint", p.checkpoint}};
}

json to_json(const ConsistencyProof& p) {
  return {{"partition", p.partition.value},
          {"from", p.from},
          {"to", p.to},
          {"fromRoot", hex(p.from_root)},
          {"toRoot", hex(p.to_root)},
          {"proof", hex_list(p.path)},
          {"fromCheckpoint", p.from_checkpoint},
          {"toCheckpoint", p.to_checkpoint}};
}

std::optional<InclusionProof> inclusion_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  InclusionProof p;
  std::uint64_t seq = 0;
  std::string record;
  if (!partition_from(j, p.partition) || !u64_from(j, "seq", seq) ||
      !u64_from(j, "treeSize", p.tree_size) || !string_from(j, "record", record) ||
      !crypto::base64_decode(record, p.record) || !hash_from(j, "leafHash", p.leaf_hash) ||
      !hash_from(j, "rootHash", p.root_hash) || !hashes_from(j, "proof", p.path) ||
      !string_from(j, "checkpoint", p.checkpoint)) {
    return std::nullopt;
  }
  p.seq = Seq{seq};
  return p;
}

std::optional<ConsistencyProof> consistency_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  ConsistencyProof p;
  if (!partition_from(j, p.partition) || !u64_from(j, "from", p.from) || !u64_from(j, "to", p.to) ||
      !hash_from(j, "fromRoot", p.from_root) || !hash_from(j, "toRoot", p.to_root) ||
      !hashes_from(j, "proof", p.path) || !string_from(j, "fromCheckpoint", p.from_checkpoint) ||
      !string_from(j, "toCheckpoint", p.to_checkpoint)) {
    return std::nullopt;
  }
  return p;
}

ProofCheck check_inclusion(const InclusionProof& p, const TrustedKeys& keys) {
  auto checked = trusted_checkpoint(p.checkpoint, keys, p.partition, "the checkpoint");
  if (auto* refusal = std::get_if<ProofCheck>(&checked)) return *refusal;
  const auto& cp = std::get<Checkpoint>(checked);
  if (cp.size != p.tree_size || *cp.root != p.root_hash) {
    return refuse("checkpoint_mismatch", "the signed checkpoint is for " + std::to_string(cp.size) +
                                             " records with another root than the proof names");
  }
  const auto view = decode_record(
      std::string_view(reinterpret_cast<const char*>(p.record.data()), p.record.size()));
  if (!view || view.value().pruned || view.value().partition != p.partition ||
      view.value().seq != p.seq) {
    return refuse("record_mismatch", "the record is not a whole record at (" +
                                         std::to_string(p.partition.value) + ", " +
                                         std::to_string(p.seq.value) + ")");
  }
  if (merkle::leaf_hash(p.record) != p.leaf_hash) {
    return refuse("leaf_mismatch", "the record does not hash to the proof's leaf hash");
  }
  if (!merkle::verify_inclusion(p.leaf_hash, p.seq.value, p.tree_size, p.path, p.root_hash)) {
    return refuse("proof_invalid", "the inclusion proof does not lead to the signed root");
  }
  return {true, "",
          "record (" + std::to_string(p.partition.value) + ", " + std::to_string(p.seq.value) +
              ") is in the tree of " + std::to_string(p.tree_size) + " records signed as '" +
              cp.origin + "'"};
}

ProofCheck check_consistency(const ConsistencyProof& p, const TrustedKeys& keys) {
  auto older = trusted_checkpoint(p.from_checkpoint, keys, p.partition, "the older checkpoint");
  if (auto* refusal = std::get_if<ProofCheck>(&older)) return *refusal;
  auto newer = trusted_checkpoint(p.to_checkpoint, keys, p.partition, "the newer checkpoint");
  if (auto* refusal = std::get_if<ProofCheck>(&newer)) return *refusal;
  const auto& a = std::get<Checkpoint>(older);
  const auto& b = std::get<Checkpoint>(newer);
  if (a.origin != b.origin || a.size != p.from || b.size != p.to || *a.root != p.from_root ||
      *b.root != p.to_root) {
    return refuse("checkpoint_mismatch",
                  "the signed checkpoints do not name the proof's log, sizes and roots");
  }
  if (!merkle::verify_consistency(p.from, p.to, p.from_root, p.to_root, p.path)) {
    return refuse("proof_invalid", "the consistency proof does not join the two signed roots");
  }
  return {true, "",
          "the tree of " + std::to_string(p.to) + " records signed as '" + b.origin +
              "' extends the tree of " + std::to_string(p.from) + " records"};
}

}  // namespace sechex::ledger
