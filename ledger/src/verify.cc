#include "ledger/verify.h"

#include <rocksdb/db.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <map>
#include <unordered_map>
#include <variant>

#include "endian.h"
#include "ledger/merkle.h"
#include "schemas/events.h"

namespace sechex::ledger {
namespace {

std::string pos_text(Partition p, Seq s) {
  return "(" + std::to_string(p.value) + ", " + std::to_string(s.value) + ")";
}

// The record stored at (p, s), if any and decodable.
std::optional<std::string> raw_get(const LogStore& log, Partition p, Seq s) {
  std::string v;
  if (!log.raw_db()->Get(rocksdb::ReadOptions(), log.cf_log(), encode_log_key(p, s), &v).ok()) {
    return std::nullopt;
  }
  return v;
}

// Tells a changed event from a changed stored hash by asking the successor which hash it was
// chained to. Only called on the fault path.
std::string classify_mismatch(const LogStore& log, Partition p, Seq s, const Hash& computed,
                              const Hash& stored) {
  const auto next = raw_get(log, p, Seq{s.value + 1});
  if (!next) return "hash_mismatch";
  const auto view = decode_record(*next);
  if (!view) return "hash_mismatch";
  const auto& n = view.value();
  if (chain_hash(p, Seq{s.value + 1}, computed, n.event) == n.hash) return "stored_hash_altered";
  if (chain_hash(p, Seq{s.value + 1}, stored, n.event) == n.hash) return "event_altered";
  return "hash_mismatch";
}

}  // namespace

namespace {
// Heterogeneous lookup: find a std::string_view without building a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
}  // namespace

namespace {
// The envelope checks every walk applies: a valid Envelope of a schema this build reads, whose
// subject belongs to `p`. nullopt when fine, else (reason, detail). `home` maps a subject to its
// partition (callers cache it); `aligned` is scratch space (FlatBuffers needs alignment).
std::optional<std::pair<std::string, std::string>> check_event(
    ByteView event, Partition p, Bytes& aligned,
    const std::function<Partition(std::string_view)>& home) {
  aligned.assign(event.begin(), event.end());
  switch (schemas::check_envelope(aligned.data(), aligned.size())) {
    case schemas::CheckResult::ok: {
      const auto h = home(schemas::envelope_of(aligned.data())->subject()->string_view());
      if (h != p) {
        return std::pair<std::string, std::string>{
            "event_in_wrong_partition",
            "the event's subject belongs to partition " + std::to_string(h.value)};
      }
      return std::nullopt;
    }
    case schemas::CheckResult::newer_version:
      return std::pair<std::string, std::string>{
          "unsupported_schema_version",
          "event written by a newer schema version; upgrade ledgerctl"};
    case schemas::CheckResult::unknown_event_type:
      // Written by a newer schema that added an event type: still a verifiable record.
      return std::nullopt;
    case schemas::CheckResult::malformed:
      break;
  }
  return std::pair<std::string, std::string>{
      "event_malformed", "the event hashes correctly but is not a valid Envelope"};
}
// A stored checkpoint note: signature (when keys are given), well-formedness and origin. The
// checkpoint, or (reason, detail). `what` names it in details ("checkpoint for size 10").
std::variant<Checkpoint, std::pair<std::string, std::string>> check_note(const std::string& note,
                                                                         const TrustedKeys* trusted,
                                                                         const std::string& origin,
                                                                         const std::string& what) {
  using Refusal = std::pair<std::string, std::string>;
  Checkpoint cp;
  if (trusted != nullptr) {
    const auto check = trusted->verify(note);
    if (auto why = TrustedKeys::refusal(check, what)) return std::move(*why);
    cp = check.checkpoint;
  } else {
    auto parsed = parse_checkpoint_body(note);
    if (!parsed) return Refusal{"checkpoint_malformed", "not a well-formed signed note"};
    cp = *parsed;
  }
  if (cp.origin != origin) {
    return Refusal{"checkpoint_wrong_origin",
                   "checkpoint names '" + cp.origin + "', expected '" + origin + "'"};
  }
  return cp;
}

}  // namespace

bool is_cannot_run_reason(std::string_view reason) {
  return reason == "unsupported_schema_version" || reason == "unsupported_record_format" ||
         reason == "storage_error";
}

WalkResult walk_partition(const LogStore& log, Partition p, Seq from, const Hash& prev_in,
                          const std::function<void(Seq, const Hash&, const Hash&)>& on_hash) {
  WalkResult out;
  out.next = from.value;
  out.head = prev_in;
  auto fault = [&](Seq s, std::string reason, std::string detail) {
    out.cannot_run = is_cannot_run_reason(reason);
    out.fault = Fault{{p, s}, std::move(reason), std::move(detail)};
    return out;
  };

  std::string prefix;
  detail::put_be32(prefix, p.value);
  rocksdb::ReadOptions ro;
  // A full walk reads everything once; keep it from evicting the block cache of a live server.
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(log.raw_db()->NewIterator(ro, log.cf_log()));
  Hash prev = prev_in;
  std::uint64_t expected = from.value;
  Bytes aligned;
  std::unordered_map<std::string, Partition, StringHash, std::equal_to<>> home_of;
  const auto cut = log.retention_cut(p);
  for (it->Seek(encode_log_key(p, from)); it->Valid(); it->Next()) {
    const auto key = it->key();
    if (!key.starts_with(prefix)) break;
    Position pos;
    if (!decode_log_key(key.ToStringView(), pos)) {
      return fault(Seq{expected}, "record_malformed", "log key is not 12 bytes");
    }
    const Seq s{expected};
    if (pos.seq.value != expected) {
      return fault(s, "missing_record",
                   "record " + pos_text(p, s) + " is missing; the next stored record is seq " +
                       std::to_string(pos.seq.value));
    }
    const auto value = it->value().ToStringView();
    const auto decoded = decode_record(value);
    if (!decoded) {
      if (decoded.error() == Errc::unsupported_version) {
        return fault(
            s, "unsupported_record_format",
            "record format byte " +
                std::to_string(static_cast<unsigned>(static_cast<std::uint8_t>(value[0]))) +
                " is newer than this build understands; upgrade ledgerctl");
      }
      return fault(s, "record_malformed", "record is shorter than its header");
    }
    const auto& rec = decoded.value();
    if (rec.partition != p) {
      return fault(s, "record_from_other_partition",
                   "the record stored here was written as " + pos_text(rec.partition, rec.seq));
    }
    if (rec.seq != s) {
      // Two neighbours carrying each other's seq is a swap; anything else is a misplaced copy.
      const auto other = raw_get(log, p, rec.seq);
      if (other) {
        const auto ov = decode_record(*other);
        if (ov && ov.value().seq == s) {
          return fault(s, "records_swapped",
                       "records " + pos_text(p, s) + " and " + pos_text(p, rec.seq) +
                           " hold each other's contents");
        }
      }
      return fault(s, "record_out_of_place",
                   "the record stored here was written as " + pos_text(p, rec.seq));
    }
    if (rec.pruned) {
      if (s >= cut.below) {
        return fault(s, "pruned_above_cut",
                     "the record's payload is gone but the retention cut is at seq " +
                         std::to_string(cut.below.value) + ": it was removed outside retention");
      }
      const auto linked = chain_hash_from_digest(p, s, prev, rec.event_digest);
      if (linked != rec.hash) {
        return fault(s, "pruned_hash_mismatch",
                     "the hashes kept for this pruned record no longer fit the chain");
      }
      if (on_hash) on_hash(s, linked, rec.leaf);
      prev = linked;
      ++expected;
      continue;
    }
    if (s < cut.below) {
      return fault(s, "not_pruned",
                   "the record is below the retention cut (seq " + std::to_string(cut.below.value) +
                       ") but still holds its payload");
    }
    const auto computed = chain_hash(p, s, prev, rec.event);
    if (computed != rec.hash) {
      auto reason = classify_mismatch(log, p, s, computed, rec.hash);
      std::string detail =
          reason == "event_altered"
              ? "the event bytes do not match the stored hash (the next record still links "
                "to the stored hash, so the event was changed)"
          : reason == "stored_hash_altered"
              ? "the stored hash was changed (the next record links to the hash of the "
                "unchanged event)"
              : "the stored hash does not match the event and its predecessor";
      return fault(s, std::move(reason), std::move(detail));
    }
    // Subjects repeat; remembering their partition saves a SHA-256 per record.
    const auto bad = check_event(rec.event, p, aligned, [&](std::string_view sv) {
      auto cached = home_of.find(sv);
      if (cached == home_of.end()) {
        if (home_of.size() > 65536) home_of.clear();
        cached = home_of.emplace(std::string(sv), partition_for(sv, log.partition_count())).first;
      }
      return cached->second;
    });
    if (bad) return fault(s, bad->first, bad->second);
    if (on_hash) {
      on_hash(s, computed,
              merkle::leaf_hash(
                  ByteView(reinterpret_cast<const std::uint8_t*>(value.data()), value.size())));
    }
    prev = computed;
    ++expected;
  }
  if (!it->status().ok()) {
    return fault(Seq{expected}, "storage_error", it->status().ToString());
  }
  out.next = expected;
  out.head = prev;
  return out;
}

namespace {

// Rebuilds a partition's Merkle tree from the walked leaves and compares every node the store
// keeps. Nodes of one level are completed in index order, so each level reads its stored nodes
// with one forward iterator: one sequential pass, no point lookups.
class TreeChecker {
 public:
  TreeChecker(const LogStore& log, Partition p) : log_(log), p_(p) { ro_.fill_cache = false; }
  void push(const Hash& leaf) {
    range_.push(leaf, [&](unsigned level, std::uint64_t index, const Hash& h) {
      if (!fault_ && level >= kMerkleStoredLevel) check(level, index, h);
    });
  }
  Hash root() const { return range_.root(); }
  const std::optional<Fault>& fault() const { return fault_; }

 private:
  void check(unsigned level, std::uint64_t index, const Hash& h) {
    auto& it = iters_[level];
    const auto key = merkle_node_key(p_, level, index);
    if (!it) {
      it.reset(log_.raw_db()->NewIterator(ro_, log_.cf_merkle()));
      it->Seek(key);
    } else {
      it->Next();
    }
    const Seq last{((index + 1) << level) - 1};
    const auto where = "the Merkle node (level " + std::to_string(level) + ", index " +
                       std::to_string(index) + ")";
    if (!it->Valid() || it->key().ToStringView() != key) {
      fault_ = Fault{{p_, last}, "tree_node_missing", where + " is missing"};
      return;
    }
    if (it->value().size() != 32 || std::memcmp(it->value().data(), h.data(), 32) != 0) {
      fault_ = Fault{{p_, last},
                     "tree_node_altered",
                     where + " differs from the one the records give (proofs would be wrong)"};
    }
  }

  const LogStore& log_;
  Partition p_;
  rocksdb::ReadOptions ro_;
  merkle::CompactRange range_;
  std::unique_ptr<rocksdb::Iterator> iters_[64];
  std::optional<Fault> fault_;
};

struct PartitionOutcome {
  PartitionSummary summary;
  std::optional<Fault> fault;
  bool cannot_run = false;
};

PartitionOutcome verify_partition(const LogStore& log, Partition p, const VerifyOptions& opts) {
  PartitionOutcome out;
  out.summary.partition = p;
  std::vector<Fault> faults;

  // Checkpoints first, so the walk can record the hashes they must match.
  auto notes = log.checkpoints(p);
  std::map<std::uint64_t, std::string> by_size;
  if (!notes) {
    out.fault = Fault{{p, Seq{0}}, "storage_error", "cannot read checkpoints"};
    out.cannot_run = true;
    return out;
  }
  {
    // Keys are be32(p)||be64(size); re-read them to know which size each note is filed under.
    std::unique_ptr<rocksdb::Iterator> it(
        log.raw_db()->NewIterator(rocksdb::ReadOptions(), log.cf_checkpoints()));
    std::string prefix;
    detail::put_be32(prefix, p.value);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (it->key().size() != 12) continue;
      by_size[detail::get_be64(it->key().data() + 4)] = it->value().ToString();
    }
  }
  std::map<std::uint64_t, Hash> hash_at;  // size -> chain hash at seq size-1
  std::map<std::uint64_t, Hash> root_at;  // size -> Merkle root of the first `size` records
  std::optional<TreeChecker> tree;
  if (log.has_tree()) tree.emplace(log, p);
  out.summary.tree_checked = tree.has_value();
  out.summary.cut = log.retention_cut(p);
  const auto walk =
      walk_partition(log, p, Seq{0}, Hash{}, [&](Seq s, const Hash& h, const Hash& leaf) {
        if (tree) tree->push(leaf);
        if (by_size.count(s.value + 1) != 0) {
          hash_at[s.value + 1] = h;
          if (tree) root_at[s.value + 1] = tree->root();
        }
      });
  if (walk.fault) {
    faults.push_back(*walk.fault);
    out.cannot_run = walk.cannot_run;
  }
  if (tree && tree->fault()) faults.push_back(*tree->fault());
  out.summary.records = walk.next;
  out.summary.head = walk.head;

  // Stored head vs the walked chain (catches a truncated tail when no checkpoint covers it).
  std::string hv;
  std::string head_key = "head/";
  detail::put_be32(head_key, p.value);
  const auto hs = log.raw_db()->Get(rocksdb::ReadOptions(), log.cf_meta(), head_key, &hv);
  if (!walk.fault) {
    if (hs.ok() && hv.size() == 40) {
      const auto head_next = detail::get_be64(hv.data());
      if (head_next > walk.next) {
        faults.push_back({{p, Seq{walk.next}},
                          "truncated",
                          "the log ends before seq " + std::to_string(walk.next) +
                              " but its head records " + std::to_string(head_next) + " records"});
      } else if (head_next < walk.next || std::memcmp(hv.data() + 8, walk.head.data(), 32) != 0) {
        faults.push_back({{p, Seq{walk.next == 0 ? 0 : walk.next - 1}},
                          "head_mismatch",
                          "the stored head does not match the last record"});
      }
    } else if (hs.ok() || (hs.IsNotFound() && walk.next > 0)) {
      faults.push_back({{p, Seq{0}}, "head_mismatch", "the stored head is missing or malformed"});
    }
  }

  const auto origin = checkpoint_origin(log.ledger_id(), p);
  for (const auto& [size, note] : by_size) {
    const Seq at{size == 0 ? 0 : size - 1};
    ++out.summary.checkpoints;
    auto checked =
        check_note(note, opts.trusted, origin, "checkpoint for size " + std::to_string(size));
    if (auto* refusal = std::get_if<std::pair<std::string, std::string>>(&checked)) {
      faults.push_back({{p, at}, refusal->first, refusal->second});
      continue;
    }
    const auto& cp = std::get<Checkpoint>(checked);
    if (cp.size != size || size == 0) {
      faults.push_back({{p, at}, "checkpoint_malformed", "checkpoint size disagrees with its key"});
      continue;
    }
    if (walk.fault && size > walk.next) continue;  // the walk's fault comes first
    if (size > walk.next) {
      faults.push_back({{p, Seq{walk.next}},
                        "truncated",
                        "a signed checkpoint covers " + std::to_string(size) +
                            " records but the log has " + std::to_string(walk.next)});
      continue;
    }
    const auto h = hash_at.find(size);
    if (h == hash_at.end() || h->second != cp.hash) {
      faults.push_back(
          {{p, at},
           "checkpoint_mismatch",
           "the signed checkpoint for size " + std::to_string(size) + " does not match the chain"});
      continue;
    }
    if (cp.root && tree) {
      const auto r = root_at.find(size);
      if (r == root_at.end() || r->second != *cp.root) {
        faults.push_back({{p, at},
                          "checkpoint_root_mismatch",
                          "the signed checkpoint for size " + std::to_string(size) +
                              " commits to a Merkle root the records do not give"});
      }
    }
  }
  if (!faults.empty()) {
    // The earliest position is the first fault; on a tie the record fault (found first) wins.
    out.fault = *std::min_element(faults.begin(), faults.end(), [](const Fault& a, const Fault& b) {
      return a.position.seq < b.position.seq;
    });
    out.cannot_run = is_cannot_run_reason(out.fault->reason);
  }
  return out;
}

}  // namespace

namespace {
// Runs `verify_one` over every partition on `options.threads` workers (partitions are
// independent chains) and folds the outcomes into one report.
VerifyReport verify_partitions(std::uint32_t n, const VerifyOptions& options,
                               const std::function<PartitionOutcome(Partition)>& verify_one) {
  VerifyReport report;
  report.signatures_checked = options.trusted != nullptr;
  std::vector<PartitionOutcome> results(n);
  const unsigned threads = std::max(1u, std::min<unsigned>(options.threads, n));
  std::vector<std::future<void>> workers;
  std::atomic<std::uint32_t> next{0};
  for (unsigned t = 0; t < threads; ++t) {
    workers.push_back(std::async(std::launch::async, [&] {
      for (auto i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
        results[i] = verify_one(Partition{i});
      }
    }));
  }
  for (auto& w : workers) w.get();
  const PartitionOutcome* tampered = nullptr;
  const PartitionOutcome* cannot_run = nullptr;
  for (auto& r : results) {
    report.records += r.summary.records;
    report.checkpoints += r.summary.checkpoints;
    report.partitions.push_back(r.summary);
    if (!r.fault) continue;
    // Proven tampering is the more useful verdict than "could not read part of it".
    if (!r.cannot_run && tampered == nullptr) tampered = &r;
    if (r.cannot_run && cannot_run == nullptr) cannot_run = &r;
  }
  if (tampered != nullptr) {
    report.outcome = VerifyReport::Outcome::tampered;
    report.fault = tampered->fault;
  } else if (cannot_run != nullptr) {
    report.outcome = VerifyReport::Outcome::cannot_run;
    report.fault = cannot_run->fault;
  }
  return report;
}
}  // namespace

VerifyReport verify_log(const LogStore& log, const VerifyOptions& options) {
  return verify_partitions(log.partition_count(), options,
                           [&](Partition p) { return verify_partition(log, p, options); });
}

namespace {

PartitionOutcome walk_chain(const Log& log, Partition p, const VerifyOptions& opts) {
  PartitionOutcome out;
  out.summary.partition = p;
  auto fail = [&](Seq s, std::string reason, std::string detail) {
    out.cannot_run = is_cannot_run_reason(reason);
    out.fault = Fault{{p, s}, std::move(reason), std::move(detail)};
    return out;
  };
  // The latest checkpoint first, so the walk can remember the hash at its size.
  auto note = log.latest_checkpoint(p);
  if (!note) return fail(Seq{0}, "storage_error", note.error().message());
  std::optional<Checkpoint> cp;
  if (note.value()) {
    ++out.summary.checkpoints;
    auto checked = check_note(*note.value(), opts.trusted, checkpoint_origin(log.ledger_id(), p),
                              "the latest checkpoint");
    if (auto* refusal = std::get_if<std::pair<std::string, std::string>>(&checked)) {
      return fail(Seq{0}, refusal->first, refusal->second);
    }
    cp = std::get<Checkpoint>(checked);
  }

  // Below the retention cut only the kept hashes remain: the walk starts at the cut, linking
  // to the last pruned record's hash; the Merkle leaves of the pruned records (kept too) enter
  // the tree the checkpoint's root is checked against.
  const auto cut = log.retention_cut(p);
  out.summary.cut = cut;
  Hash prev{};
  std::uint64_t expected = cut.below.value;
  std::optional<Hash> hash_at_checkpoint;
  std::optional<Hash> root_at_checkpoint;
  merkle::CompactRange tree;  // only while a checkpoint with a root is still ahead
  const bool check_root = cp && cp->root;
  if (expected > 0) {
    auto last_pruned = log.record_hash(p, Seq{expected - 1});
    if (!last_pruned) {
      return fail(Seq{expected - 1}, "storage_error",
                  "the kept hash of pruned record " + pos_text(p, Seq{expected - 1}) +
                      " cannot be read: " + last_pruned.error().message());
    }
    prev = last_pruned.value();
    const merkle::NodeSource nodes = [&](unsigned level, std::uint64_t index) {
      return log.tree_node(p, level, index);
    };
    if (cp && cp->size <= expected) {
      // The checkpoint lies within the pruned range: its hash and root come from what is kept.
      auto h = log.record_hash(p, Seq{cp->size - 1});
      if (h) hash_at_checkpoint = h.value();
      if (check_root) {
        auto r = merkle::root(nodes, cp->size);
        if (r) root_at_checkpoint = r.value();
      }
    } else if (check_root) {
      std::vector<Hash> edge;
      for (const auto& n : merkle::nodes_for_size(expected)) {
        auto h = nodes(n.level, n.index);
        if (!h) {
          return fail(
              Seq{expected - 1}, "storage_error",
              "the Merkle tree below the retention cut cannot be read: " + h.error().message());
        }
        edge.push_back(h.value());
      }
      auto range = merkle::CompactRange::from_nodes(expected, std::move(edge));
      if (!range) return fail(Seq{expected - 1}, "storage_error", "bad Merkle edge at the cut");
      tree = std::move(range).value();
    }
  }
  Bytes aligned;
  constexpr std::size_t kBatch = 4096;
  for (;;) {
    auto batch = log.read_range(p, Seq{expected}, Seq{UINT64_MAX}, kBatch);
    if (!batch) return fail(Seq{expected}, "storage_error", batch.error().message());
    for (const auto& rec : batch.value()) {
      const Seq s{expected};
      if (rec.position.seq != s) {
        return fail(s, "missing_record",
                    "record " + pos_text(p, s) + " is missing; the next record is seq " +
                        std::to_string(rec.position.seq.value));
      }
      const auto computed = chain_hash(p, s, prev, rec.event);
      if (computed != rec.hash) {
        return fail(s, "hash_mismatch",
                    "the stored hash does not match the event and its predecessor");
      }
      const auto bad = check_event(rec.event, p, aligned, [&](std::string_view sv) {
        return partition_for(sv, log.partition_count());
      });
      if (bad) return fail(s, bad->first, bad->second);
      if (check_root && expected < cp->size) {
        tree.push(record_leaf(rec));
      }
      prev = computed;
      ++expected;
      if (cp && expected == cp->size) {
        hash_at_checkpoint = computed;
        if (check_root) root_at_checkpoint = tree.root();
      }
    }
    if (batch.value().size() < kBatch) break;
  }
  out.summary.records = expected;  // pruned ones included: seqs are positions
  out.summary.head = prev;
  const auto head = log.head(p);
  if (head.next.value > expected) {
    return fail(Seq{expected}, "truncated",
                "the log reports " + std::to_string(head.next.value) + " records but " +
                    std::to_string(expected) + " could be read");
  }
  if (head.next.value == expected && head.hash != prev) {
    return fail(Seq{expected == 0 ? 0 : expected - 1}, "head_mismatch",
                "the log's head disagrees with the last record's hash");
  }
  if (cp) {
    if (cp->size > expected) {
      return fail(Seq{expected}, "truncated",
                  "a signed checkpoint covers " + std::to_string(cp->size) +
                      " records but the log has " + std::to_string(expected));
    }
    if (!hash_at_checkpoint || *hash_at_checkpoint != cp->hash) {
      return fail(Seq{cp->size == 0 ? 0 : cp->size - 1}, "checkpoint_mismatch",
                  "the signed checkpoint's hash differs from the chain at size " +
                      std::to_string(cp->size));
    }
    if (check_root && root_at_checkpoint != cp->root) {
      return fail(Seq{cp->size == 0 ? 0 : cp->size - 1}, "checkpoint_root_mismatch",
                  "the signed checkpoint at size " + std::to_string(cp->size) +
                      " commits to a Merkle root the records do not give");
    }
  }
  return out;
}

}  // namespace

VerifyReport verify_chain(const Log& log, const VerifyOptions& options) {
  return verify_partitions(log.partition_count(), options,
                           [&](Partition p) { return walk_chain(log, p, options); });
}

}  // namespace sechex::ledger
