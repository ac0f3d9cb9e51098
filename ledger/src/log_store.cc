#include "ledger/log_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "endian.h"
#include "ledger/checkpoint.h"
#include "ledger/crypto.h"
#include "ledger/merkle.h"
#include "ledger/verify.h"
#include "schemas/events.h"

namespace sechex::ledger {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kFormat = "sechex-ledger/v1";
constexpr std::uint32_t kMaxPartitions = 4096;
// A commit group stops growing past this many event bytes, bounding the latency of the
// appenders that joined first.
constexpr std::size_t kMaxGroupBytes = 8 << 20;

enum CfIndex { kDefault = 0, kLog, kMeta, kCheckpoints, kKeys, kMerkle, kCfCount };
const char* const kCfNames[kCfCount] = {"default", "log", "meta", "checkpoints", "keys", "merkle"};
constexpr std::string_view kTreeFormat = "rfc6962/v2";
// Nodes stored from level 4 up: a superset of what v2 reads (layout in log_store.h).
constexpr std::string_view kTreeFormatV1 = "rfc6962/v1";
// Records per synced batch when pruning or building the tree of an older store.
constexpr std::uint64_t kMaintenanceBatch = 4096;

std::string head_key(Partition p) {
  std::string k = "head/";
  detail::put_be32(k, p.value);
  return k;
}

std::string checkpoint_key(Partition p, std::uint64_t size) {
  std::string k;
  detail::put_be32(k, p.value);
  detail::put_be64(k, size);
  return k;
}

std::string cut_key(Partition p) {
  std::string k = "cut/";
  detail::put_be32(k, p.value);
  return k;
}

rocksdb::Slice slice_of(const Hash& h) {
  return {reinterpret_cast<const char*>(h.data()), h.size()};
}

// The RFC 6962 leaf hash of a stored record: of its bytes, or the one its stub kept.
Result<Hash> leaf_of(std::string_view value) {
  SECHEX_TRY(auto view, decode_record(value));
  if (view.pruned) return view.leaf;
  return merkle::leaf_hash(
      ByteView(reinterpret_cast<const std::uint8_t*>(value.data()), value.size()));
}

std::error_code map_status(const rocksdb::Status& s) {
  if (s.ok()) return {};
  if (s.IsNotFound()) return Errc::not_found;
  if (s.IsCorruption()) return Errc::corruption;
  // RocksDB reports a held LOCK file as an IOError mentioning the lock.
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) return Errc::store_locked;
  return Errc::io_error;
}

}  // namespace

struct PartitionState {
  Seq next;
  Hash head{};
  merkle::CompactRange tree;           // right edge of the partition's Merkle tree (when kept)
  std::uint64_t checkpoint_size = 0;   // size covered by the newest checkpoint
  std::int64_t checkpoint_micros = 0;  // when it was written (or when the store opened)
};

struct LogStore::Impl {
  LogOptions opts;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  std::string ledger_id;
  std::uint32_t partitions = 0;
  bool read_only = false;
  bool tree = false;                // the merkle column family covers every record
  std::string owned_secondary_dir;  // removed on close
  std::mutex prune_mu;              // one prune at a time

  // Group commit (LevelDB's DBImpl::Write pattern): the writer at the front of `queue` is the
  // leader and commits everything queued behind it in one synced WriteBatch.
  struct Writer {
    Partition partition;
    std::span<const ByteView> events;
    std::span<const KeyWrite> key_writes;
    bool checkpoint_only = false;
    bool force_checkpoint = false;
    bool done = false;
    std::error_code error;
    AppendResult result;
    std::size_t checkpoints_written = 0;
    std::condition_variable cv;
  };
  mutable std::mutex mu;
  std::deque<Writer*> queue;
  std::vector<PartitionState> state;  // guarded by mu; written only by the leader
  bool failed = false;
  mutable std::condition_variable appended;  // tail readers wait here

  std::atomic<std::uint64_t> stat_appends{0}, stat_events{0}, stat_groups{0}, stat_checkpoints{0};

  ~Impl() {
    for (auto* h : cfs) {
      if (h != nullptr && db) db->DestroyColumnFamilyHandle(h);
    }
    db.reset();
    if (!owned_secondary_dir.empty()) {
      std::error_code ec;
      fs::remove_all(owned_secondary_dir, ec);
    }
  }

  Result<void> commit(std::vector<Writer*>& group);
  Result<void> build_tree();
  Result<Hash> node(Partition p, unsigned level, std::uint64_t index) const;
  Result<void> restore_heads(const LogStore& self, Fault* fault_out);
  Result<std::optional<Record>> last_record(Partition p) const;
};

namespace {

rocksdb::Options base_options() {
  rocksdb::Options o;
  o.IncreaseParallelism(2);
  o.max_open_files = -1;  // required by secondary instances; cheap at our file counts
  o.keep_log_file_num = 4;
  // Paranoid checks make RocksDB refuse to open on corrupted SST/WAL data instead of dropping it.
  o.paranoid_checks = true;
  return o;
}

}  // namespace

Result<std::unique_ptr<LogStore>> LogStore::open(const LogOptions& options, Fault* fault_out) {
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->read_only = options.mode == LogOptions::Mode::read_only;
  if (options.path.empty()) return Errc::invalid_argument;
  if (options.clock == nullptr) return Errc::invalid_argument;

  std::error_code ec;
  const bool exists = fs::exists(fs::path(options.path) / "CURRENT", ec);
  if (!exists && (impl->read_only || !options.create_if_missing)) return Errc::store_missing;
  if (!exists && (options.partitions == 0 || options.partitions > kMaxPartitions)) {
    return Errc::invalid_argument;
  }

  auto db_opts = base_options();
  db_opts.create_if_missing = !impl->read_only && options.create_if_missing;
  db_opts.create_missing_column_families = db_opts.create_if_missing;
  // Stores written before the Merkle tree existed lack its column family: a writer adds it
  // (and builds the tree below), a reader goes without.
  bool have_merkle = true;
  if (exists) {
    std::vector<std::string> names;
    if (rocksdb::DB::ListColumnFamilies(db_opts, options.path, &names).ok()) {
      have_merkle = std::find(names.begin(), names.end(), kCfNames[kMerkle]) != names.end();
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (int i = 0; i < kCfCount; ++i) {
    if (i == kMerkle && !have_merkle) continue;
    descs.emplace_back(kCfNames[i], rocksdb::ColumnFamilyOptions(db_opts));
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (impl->read_only) {
    std::string secondary = options.secondary_path;
    if (secondary.empty()) {
      char tmpl[] = "/tmp/sechex-ledger-secondary-XXXXXX";
      if (::mkdtemp(tmpl) == nullptr) return Errc::io_error;
      secondary = tmpl;
      impl->owned_secondary_dir = secondary;
    }
    s = rocksdb::DB::OpenAsSecondary(db_opts, options.path, secondary, descs, &impl->cfs, &raw);
  } else {
    s = rocksdb::DB::Open(db_opts, options.path, descs, &impl->cfs, &raw);
  }
  if (!s.ok()) {
    // An existing directory missing our column families is not a ledger.
    if (s.IsInvalidArgument()) return Errc::store_missing;
    return map_status(s);
  }
  impl->db.reset(raw);
  if (!have_merkle) {
    rocksdb::ColumnFamilyHandle* h = nullptr;
    if (!impl->read_only) {
      s = impl->db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(db_opts), kCfNames[kMerkle],
                                       &h);
      if (!s.ok()) return map_status(s);
    }
    impl->cfs.push_back(h);
  }

  // Format and identity.
  auto* meta = impl->cfs[kMeta];
  std::string value;
  s = impl->db->Get(rocksdb::ReadOptions(), meta, "format", &value);
  if (s.IsNotFound()) {
    // A database without our format entry is a ledger whose creation was interrupted (or not
    // a ledger): only an explicit create may finish it.
    if (impl->read_only || !options.create_if_missing) return Errc::store_missing;
    SECHEX_TRY(auto id, crypto::random_bytes(16));
    // Written in one synced batch so a crash cannot leave a half-initialised ledger.
    rocksdb::WriteBatch wb;
    wb.Put(meta, "ledger_id", to_hex(id));
    wb.Put(meta, "partitions", std::to_string(options.partitions));
    wb.Put(meta, "tree", std::string(kTreeFormat));
    wb.Put(meta, "format", std::string(kFormat));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = impl->db->Write(wo, &wb);
    if (!s.ok()) return map_status(s);
  } else if (!s.ok()) {
    return map_status(s);
  } else if (value != kFormat) {
    return Errc::unsupported_version;
  }
  if (!impl->db->Get(rocksdb::ReadOptions(), meta, "ledger_id", &impl->ledger_id).ok()) {
    return Errc::corruption;
  }
  std::string parts;
  if (!impl->db->Get(rocksdb::ReadOptions(), meta, "partitions", &parts).ok()) {
    return Errc::corruption;
  }
  try {
    impl->partitions = static_cast<std::uint32_t>(std::stoul(parts));
  } catch (const std::exception&) {
    return Errc::corruption;
  }
  if (impl->partitions == 0 || impl->partitions > kMaxPartitions) return Errc::corruption;
  std::string tree;
  s = impl->db->Get(rocksdb::ReadOptions(), meta, "tree", &tree);
  if (s.ok() && tree != kTreeFormat && tree != kTreeFormatV1) return Errc::unsupported_version;
  if (!s.ok() && !s.IsNotFound()) return map_status(s);
  impl->tree = s.ok();
  if (s.ok() && tree == kTreeFormatV1 && !impl->read_only) {
    // From the next append on, levels 4 and 5 go unstored: say so before any is missing.
    rocksdb::WriteBatch mark;
    mark.Put(meta, "tree", std::string(kTreeFormat));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = impl->db->Write(wo, &mark);
    if (!s.ok()) return map_status(s);
  }
  if (!impl->tree && !impl->read_only) {
    SECHEX_TRYV(impl->build_tree());
    impl->tree = true;
  }

  std::unique_ptr<LogStore> store(new LogStore(std::move(impl)));
  SECHEX_TRYV(store->impl_->restore_heads(*store, fault_out));
  return store;
}

Result<std::optional<Record>> LogStore::Impl::last_record(Partition p) const {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[kLog]));
  it->SeekForPrev(encode_log_key(p, Seq{UINT64_MAX}));
  if (!it->status().ok()) return map_status(it->status());
  if (!it->Valid()) return std::optional<Record>();
  Position pos;
  if (!decode_log_key(it->key().ToStringView(), pos)) return Errc::corruption;
  if (pos.partition != p) return std::optional<Record>();
  SECHEX_TRY(auto view, decode_record(it->value().ToStringView()));
  Record r{pos, view.hash, Bytes(view.event.begin(), view.event.end())};
  return std::optional<Record>(std::move(r));
}

Result<void> LogStore::Impl::restore_heads(const LogStore& self, Fault* fault_out) {
  const auto now = opts.clock->now_micros();
  std::vector<PartitionState> fresh(partitions);
  for (std::uint32_t i = 0; i < partitions; ++i) {
    const Partition p{i};
    auto& st = fresh[i];
    st.checkpoint_micros = now;
    {
      std::unique_ptr<rocksdb::Iterator> it(
          db->NewIterator(rocksdb::ReadOptions(), cfs[kCheckpoints]));
      it->SeekForPrev(checkpoint_key(p, UINT64_MAX));
      if (it->Valid() && it->key().size() == 12 && detail::get_be32(it->key().data()) == i) {
        st.checkpoint_size = detail::get_be64(it->key().data() + 4);
      }
    }
    if (read_only) {
      SECHEX_TRY(auto last, last_record(p));
      if (last) {
        st.next = Seq{last->position.seq.value + 1};
        st.head = last->hash;
      }
      continue;
    }

    // The writer re-checks the tail it is about to extend, from the newest checkpoint on
    // (`ledgerctl verify` checks everything). When the checkpointed record is unreadable the
    // walk starts at 0 and names the fault.
    Hash prev{};
    Seq from{0};
    if (st.checkpoint_size > 0) {
      std::string v;
      if (db->Get(rocksdb::ReadOptions(), cfs[kLog], encode_log_key(p, Seq{st.checkpoint_size - 1}),
                  &v)
              .ok()) {
        if (auto view = decode_record(v)) {
          prev = view.value().hash;
          from = Seq{st.checkpoint_size};
        }
      }
    }
    const auto walk = walk_partition(self, p, from, prev);
    auto fail = [&](Fault f, Errc e) -> Result<void> {
      if (fault_out != nullptr) *fault_out = std::move(f);
      return e;
    };
    if (walk.fault) {
      return fail(*walk.fault, walk.cannot_run ? Errc::unsupported_version : Errc::chain_broken);
    }
    st.next = Seq{walk.next};
    st.head = walk.head;
    if (tree) {
      std::vector<Hash> nodes;
      for (const auto& id : merkle::nodes_for_size(st.next.value)) {
        auto h = node(p, id.level, id.index);
        if (!h) {
          if (h.error() != Errc::not_found) return h.error();
          return fail({{p, Seq{st.next.value - 1}},
                       "tree_node_missing",
                       "the Merkle tree node (level " + std::to_string(id.level) + ", index " +
                           std::to_string(id.index) + ") is missing"},
                      Errc::chain_broken);
        }
        nodes.push_back(h.value());
      }
      st.tree = merkle::CompactRange::from_nodes(st.next.value, std::move(nodes)).value();
    }

    std::string hv;
    const auto hs = db->Get(rocksdb::ReadOptions(), cfs[kMeta], head_key(p), &hv);
    if (hs.ok()) {
      if (hv.size() != 8 + 32) {
        return fail({{p, st.next}, "head_mismatch", "stored head entry is malformed"},
                    Errc::chain_broken);
      }
      const auto head_next = detail::get_be64(hv.data());
      if (head_next > walk.next) {
        return fail({{p, st.next},
                     "truncated",
                     "the log ends before seq " + std::to_string(walk.next) +
                         " but its head records " + std::to_string(head_next) + " records"},
                    Errc::chain_broken);
      }
      if (head_next != walk.next || std::memcmp(hv.data() + 8, walk.head.data(), 32) != 0) {
        return fail({{p, Seq{walk.next == 0 ? 0 : walk.next - 1}},
                     "head_mismatch",
                     "the stored head does not match the last record"},
                    Errc::chain_broken);
      }
    } else if (!hs.IsNotFound()) {
      return map_status(hs);
    } else if (walk.next > 0) {
      return fail({{p, Seq{0}}, "head_mismatch", "records exist but no head was stored"},
                  Errc::chain_broken);
    }
    if (st.checkpoint_size > walk.next) {
      return fail({{p, st.next},
                   "truncated",
                   "a checkpoint covers " + std::to_string(st.checkpoint_size) +
                       " records but the log has " + std::to_string(walk.next)},
                  Errc::chain_broken);
    }
  }
  std::lock_guard lock(mu);
  state = std::move(fresh);
  return boost::outcome_v2::success();
}

LogStore::LogStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LogStore::~LogStore() {
  // Appenders hold no reference past their own call; waiting for the queue to drain keeps a
  // destructor racing with a last append from freeing the leader's state.
  std::unique_lock lock(impl_->mu);
  impl_->appended.wait(lock, [&] { return impl_->queue.empty(); });
}

std::uint32_t LogStore::partition_count() const { return impl_->partitions; }
const std::string& LogStore::ledger_id() const { return impl_->ledger_id; }
bool LogStore::read_only() const { return impl_->read_only; }
rocksdb::DB* LogStore::raw_db() const { return impl_->db.get(); }
rocksdb::ColumnFamilyHandle* LogStore::cf_log() const { return impl_->cfs[kLog]; }
rocksdb::ColumnFamilyHandle* LogStore::cf_meta() const { return impl_->cfs[kMeta]; }
rocksdb::ColumnFamilyHandle* LogStore::cf_checkpoints() const { return impl_->cfs[kCheckpoints]; }
rocksdb::ColumnFamilyHandle* LogStore::cf_keys() const { return impl_->cfs[kKeys]; }
rocksdb::ColumnFamilyHandle* LogStore::cf_merkle() const { return impl_->cfs[kMerkle]; }
bool LogStore::has_tree() const { return impl_->tree; }

LogStats LogStore::stats() const {
  return {impl_->stat_appends.load(std::memory_order_relaxed),
          impl_->stat_events.load(std::memory_order_relaxed),
          impl_->stat_groups.load(std::memory_order_relaxed),
          impl_->stat_checkpoints.load(std::memory_order_relaxed)};
}

Head LogStore::head(Partition partition) const {
  std::lock_guard lock(impl_->mu);
  if (partition.value >= impl_->state.size()) return {};
  const auto& st = impl_->state[partition.value];
  return {st.next, st.head};
}

Result<AppendResult> LogStore::append(Partition partition, std::span<const ByteView> events,
                                      std::span<const KeyWrite> key_writes) {
  if (impl_->read_only) return Errc::invalid_argument;
  if (events.empty() || partition.value >= impl_->partitions) return Errc::invalid_argument;
  // Schema checks run here, in parallel across appenders, before joining the commit queue.
  for (const auto& e : events) {
    if (schemas::check_envelope(e.data(), e.size()) != schemas::CheckResult::ok) {
      return Errc::invalid_argument;
    }
  }
  Impl::Writer w;
  w.partition = partition;
  w.events = events;
  w.key_writes = key_writes;
  std::unique_lock lock(impl_->mu);
  impl_->queue.push_back(&w);
  w.cv.wait(lock, [&] { return w.done || impl_->queue.front() == &w; });
  if (w.done) {
    if (w.error) return w.error;
    return w.result;
  }
  // Leader: take everything queued (up to the byte cap) as one group.
  std::vector<Impl::Writer*> group;
  std::size_t bytes = 0;
  for (auto* q : impl_->queue) {
    for (const auto& e : q->events) bytes += e.size();
    if (!group.empty() && bytes > kMaxGroupBytes) break;
    group.push_back(q);
  }
  lock.unlock();
  const auto committed = impl_->commit(group);
  lock.lock();
  for (auto* q : group) {
    if (!committed) q->error = committed.error();
    q->done = true;
    impl_->queue.pop_front();
    if (q != &w) q->cv.notify_one();
  }
  if (!impl_->queue.empty()) impl_->queue.front()->cv.notify_one();
  impl_->appended.notify_all();
  lock.unlock();
  if (w.error) return w.error;
  return w.result;
}

Result<std::size_t> LogStore::checkpoint_due(bool force) {
  if (impl_->read_only) return std::size_t{0};
  Impl::Writer w;
  w.checkpoint_only = true;
  w.force_checkpoint = force;
  std::unique_lock lock(impl_->mu);
  impl_->queue.push_back(&w);
  w.cv.wait(lock, [&] { return w.done || impl_->queue.front() == &w; });
  if (!w.done) {
    std::vector<Impl::Writer*> group{&w};
    lock.unlock();
    const auto committed = impl_->commit(group);
    lock.lock();
    if (!committed) w.error = committed.error();
    w.done = true;
    impl_->queue.pop_front();
    if (!impl_->queue.empty()) impl_->queue.front()->cv.notify_one();
    impl_->appended.notify_all();
  }
  if (w.error) return w.error;
  return w.checkpoints_written;
}

// Runs on the leader without the lock. Only the leader touches `state` entries' values between
// the snapshot and the publish, so reading them unlocked here is race-free for writes; readers
// of head() see the old values until publish.
Result<void> LogStore::Impl::commit(std::vector<Writer*>& group) {
  std::vector<PartitionState> work;
  {
    std::lock_guard lock(mu);
    if (failed) {
      return Errc::writer_failed;
    }
    work = state;
  }
  const auto now = opts.clock->now_micros();
  rocksdb::WriteBatch batch;
  std::vector<bool> touched(partitions, false);
  std::size_t event_count = 0;
  std::size_t appends = 0;
  bool any_checkpoint_request = false;
  bool force = false;
  // One callback for the whole group (a std::function per record would allocate per record).
  Partition tree_partition{0};
  const std::function<void(unsigned, std::uint64_t, const Hash&)> store_node =
      [&](unsigned level, std::uint64_t index, const Hash& node) {
        if (level >= kMerkleStoredLevel) {
          batch.Put(cfs[kMerkle], merkle_node_key(tree_partition, level, index), slice_of(node));
        }
      };
  for (auto* w : group) {
    if (w->checkpoint_only) {
      any_checkpoint_request = true;
      force = force || w->force_checkpoint;
      continue;
    }
    ++appends;
    tree_partition = w->partition;
    auto& st = work[w->partition.value];
    w->result.first = st.next;
    for (const auto& e : w->events) {
      const auto h = chain_hash(w->partition, st.next, st.head, e);
      const auto key = encode_log_key(w->partition, st.next);
      auto value = encode_record(w->partition, st.next, h, e);
      if (tree) st.tree.push(merkle::leaf_hash(as_bytes(value)), store_node);
      batch.Put(cfs[kLog], key, value);
      w->result.hashes.push_back(h);
      st.head = h;
      st.next = Seq{st.next.value + 1};
      ++event_count;
    }
    for (const auto& kw : w->key_writes) batch.Put(cfs[kKeys], kw.subject, kw.value);
    w->result.last = Seq{st.next.value - 1};
    w->result.head = st.head;
    touched[w->partition.value] = true;
  }

  std::size_t checkpoints = 0;
  for (std::uint32_t i = 0; i < partitions; ++i) {
    auto& st = work[i];
    if (touched[i]) {
      std::string hv;
      detail::put_be64(hv, st.next.value);
      hv.append(reinterpret_cast<const char*>(st.head.data()), st.head.size());
      batch.Put(cfs[kMeta], head_key(Partition{i}), hv);
    }
    if (opts.signer == nullptr || st.next.value == st.checkpoint_size) continue;
    const auto& pol = opts.checkpoints;
    const bool by_count =
        pol.every_records > 0 && st.next.value - st.checkpoint_size >= pol.every_records;
    const bool by_time = pol.every.count() > 0 && now - st.checkpoint_micros >= pol.every.count();
    if (!(by_count || by_time || force)) continue;
    if (!touched[i] && !any_checkpoint_request) continue;
    Checkpoint cp{checkpoint_origin(ledger_id, Partition{i}), st.next.value, st.head, {}};
    if (tree) cp.root = st.tree.root();
    auto note = opts.signer->sign(cp);
    if (!note) return note.error();
    batch.Put(cfs[kCheckpoints], checkpoint_key(Partition{i}, cp.size), note.value());
    st.checkpoint_size = cp.size;
    st.checkpoint_micros = now;
    ++checkpoints;
  }
  if (batch.Count() == 0) return boost::outcome_v2::success();

  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto s = db->Write(wo, &batch);
  std::lock_guard lock(mu);
  if (!s.ok()) {
    // After a failed synced write we cannot know what reached the disk: stop writing.
    failed = true;
    return Errc::writer_failed;
  }
  state = std::move(work);
  for (auto* w : group) {
    if (w->checkpoint_only) w->checkpoints_written = checkpoints;
  }
  stat_appends.fetch_add(appends, std::memory_order_relaxed);
  stat_events.fetch_add(event_count, std::memory_order_relaxed);
  stat_groups.fetch_add(1, std::memory_order_relaxed);
  stat_checkpoints.fetch_add(checkpoints, std::memory_order_relaxed);
  return boost::outcome_v2::success();
}

Result<std::vector<Record>> LogStore::read_range(Partition partition, Seq from, Seq to,
                                                 std::size_t max) const {
  std::vector<Record> out;
  if (partition.value >= impl_->partitions || from >= to || max == 0) return out;
  if (to.value - from.value == 1) {
    // One record (audit entries): a point lookup is much cheaper than an iterator.
    rocksdb::PinnableSlice value;
    const auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[kLog],
                                  encode_log_key(partition, from), &value);
    if (s.IsNotFound()) return out;
    if (!s.ok()) return map_status(s);
    SECHEX_TRY(auto view, decode_record(value.ToStringView()));
    if (view.pruned) return Errc::pruned;
    out.push_back(
        Record{{partition, from}, view.hash, Bytes(view.event.begin(), view.event.end())});
    return out;
  }
  rocksdb::ReadOptions ro;
  const auto upper = encode_log_key(partition, to);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cfs[kLog]));
  for (it->Seek(encode_log_key(partition, from)); it->Valid() && out.size() < max; it->Next()) {
    Position pos;
    if (!decode_log_key(it->key().ToStringView(), pos)) return Errc::corruption;
    SECHEX_TRY(auto view, decode_record(it->value().ToStringView()));
    if (view.pruned) return Errc::pruned;
    out.push_back(Record{pos, view.hash, Bytes(view.event.begin(), view.event.end())});
  }
  if (!it->status().ok()) return map_status(it->status());
  return out;
}

Result<std::vector<Record>> LogStore::read_by_time(Partition partition, std::int64_t from_micros,
                                                   std::int64_t to_micros) const {
  // Event times come from the producers and need not be monotonic, so this scans; export and
  // audit queries that run often use the projections' (subject, time) index instead.
  std::vector<Record> out;
  Seq next = retention_cut(partition).below;
  for (;;) {
    SECHEX_TRY(auto batch, read_range(partition, next, Seq{UINT64_MAX}, 4096));
    if (batch.empty()) break;
    next = Seq{batch.back().position.seq.value + 1};
    for (auto& r : batch) {
      if (schemas::check_envelope(r.event.data(), r.event.size()) != schemas::CheckResult::ok) {
        continue;
      }
      const auto t = schemas::envelope_of(r.event.data())->time_micros();
      if (t >= from_micros && t < to_micros) out.push_back(std::move(r));
    }
  }
  return out;
}

Result<std::vector<Record>> LogStore::wait_for(Partition partition, Seq from,
                                               std::chrono::milliseconds timeout,
                                               std::size_t max) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (impl_->read_only) {
      // Secondary instances learn about new writes only by catching up with the primary.
      const auto s = impl_->db->TryCatchUpWithPrimary();
      if (!s.ok()) return map_status(s);
    }
    SECHEX_TRY(auto records, read_range(partition, from, Seq{UINT64_MAX}, max));
    if (!records.empty() || std::chrono::steady_clock::now() >= deadline) return records;
    std::unique_lock lock(impl_->mu);
    if (impl_->read_only) {
      impl_->appended.wait_for(lock, std::chrono::milliseconds(100));
    } else {
      impl_->appended.wait_until(lock, deadline,
                                 [&] { return impl_->state[partition.value].next > from; });
    }
  }
}

Result<void> LogStore::catch_up() {
  if (!impl_->read_only) return boost::outcome_v2::success();
  const auto s = impl_->db->TryCatchUpWithPrimary();
  if (!s.ok()) return map_status(s);
  return impl_->restore_heads(*this, nullptr);
}

Result<std::vector<std::string>> LogStore::checkpoints(Partition partition) const {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cfs[kCheckpoints]));
  std::string prefix;
  detail::put_be32(prefix, partition.value);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    out.push_back(it->value().ToString());
  }
  if (!it->status().ok()) return map_status(it->status());
  return out;
}

Result<std::optional<std::string>> LogStore::latest_checkpoint(Partition partition) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cfs[kCheckpoints]));
  std::string prefix;
  detail::put_be32(prefix, partition.value);
  it->SeekForPrev(checkpoint_key(partition, UINT64_MAX));
  if (!it->status().ok()) return map_status(it->status());
  if (!it->Valid() || !it->key().starts_with(prefix)) return std::optional<std::string>{};
  return std::optional<std::string>{it->value().ToString()};
}

Result<Hash> LogStore::Impl::node(Partition p, unsigned level, std::uint64_t index) const {
  if (!tree || cfs[kMerkle] == nullptr) return Errc::not_supported;
  if (p.value >= partitions) return Errc::invalid_argument;
  rocksdb::PinnableSlice value;
  if (level == 0) {
    const auto s =
        db->Get(rocksdb::ReadOptions(), cfs[kLog], encode_log_key(p, Seq{index}), &value);
    if (!s.ok()) return map_status(s);
    return leaf_of(value.ToStringView());
  }
  if (level < kMerkleStoredLevel) {
    // Below the stored levels: hash the subtree's (at most 2^(kMerkleStoredLevel-1)) leaves,
    // read in one range scan. (A v1 store still holds levels 4 and 5 for its older records;
    // they are not read, so that both kinds of store answer from the same records.)
    const auto first = index << level;
    const auto count = std::uint64_t{1} << level;
    rocksdb::ReadOptions ro;
    const auto upper = encode_log_key(p, Seq{first + count});
    rocksdb::Slice upper_slice(upper);
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cfs[kLog]));
    merkle::CompactRange range;
    for (it->Seek(encode_log_key(p, Seq{first})); it->Valid(); it->Next()) {
      SECHEX_TRY(auto leaf, leaf_of(it->value().ToStringView()));
      range.push(leaf);
    }
    if (!it->status().ok()) return map_status(it->status());
    if (range.size() != count) return Errc::not_found;
    return range.root();
  }
  const auto s =
      db->Get(rocksdb::ReadOptions(), cfs[kMerkle], merkle_node_key(p, level, index), &value);
  if (!s.ok()) return map_status(s);
  if (value.size() != 32) return Errc::corruption;
  Hash h{};
  std::memcpy(h.data(), value.data(), 32);
  return h;
}

// A store from before the tree: hash every record once and store the nodes, then mark the
// tree as present. An interrupted build leaves no mark and starts over on the next open.
Result<void> LogStore::Impl::build_tree() {
  rocksdb::WriteOptions wo;
  for (std::uint32_t i = 0; i < partitions; ++i) {
    const Partition p{i};
    merkle::CompactRange range;
    rocksdb::WriteBatch batch;
    std::string prefix;
    detail::put_be32(prefix, i);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[kLog]));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      Position pos;
      // A gap or a bad record is left for restore_heads and verify to name.
      if (!decode_log_key(it->key().ToStringView(), pos) || pos.seq.value != range.size()) break;
      auto leaf = leaf_of(it->value().ToStringView());
      if (!leaf) break;
      range.push(leaf.value(), [&](unsigned level, std::uint64_t index, const Hash& h) {
        if (level >= kMerkleStoredLevel) {
          batch.Put(cfs[kMerkle], merkle_node_key(p, level, index), slice_of(h));
        }
      });
      if (batch.Count() >= kMaintenanceBatch) {
        const auto s = db->Write(wo, &batch);
        if (!s.ok()) return map_status(s);
        batch.Clear();
      }
    }
    if (!it->status().ok()) return map_status(it->status());
    if (batch.Count() > 0) {
      const auto s = db->Write(wo, &batch);
      if (!s.ok()) return map_status(s);
    }
  }
  rocksdb::WriteBatch mark;
  mark.Put(cfs[kMeta], "tree", std::string(kTreeFormat));
  wo.sync = true;
  const auto s = db->Write(wo, &mark);
  if (!s.ok()) return map_status(s);
  return boost::outcome_v2::success();
}

RetentionCut LogStore::retention_cut(Partition partition) const {
  std::string v;
  if (!impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[kMeta], cut_key(partition), &v).ok() ||
      v.size() != 16) {
    return {};
  }
  return {Seq{detail::get_be64(v.data())},
          static_cast<std::int64_t>(detail::get_be64(v.data() + 8))};
}

Result<Hash> LogStore::record_hash(Partition partition, Seq seq) const {
  if (partition.value >= impl_->partitions) return Errc::invalid_argument;
  rocksdb::PinnableSlice value;
  const auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[kLog],
                                encode_log_key(partition, seq), &value);
  if (!s.ok()) return map_status(s);
  SECHEX_TRY(auto view, decode_record(value.ToStringView()));
  return view.hash;
}

Result<Hash> LogStore::tree_node(Partition partition, unsigned level, std::uint64_t index) const {
  return impl_->node(partition, level, index);
}

Result<std::optional<std::string>> LogStore::checkpoint_at(Partition partition,
                                                           std::uint64_t size) const {
  std::string note;
  const auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[kCheckpoints],
                                checkpoint_key(partition, size), &note);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return map_status(s);
  return std::optional<std::string>{std::move(note)};
}

Result<PruneResult> LogStore::prune(Partition partition, Seq below, std::int64_t before_micros) {
  if (impl_->read_only || partition.value >= impl_->partitions) return Errc::invalid_argument;
  std::lock_guard prune_lock(impl_->prune_mu);
  PruneResult out;
  const auto cut = retention_cut(partition);
  if (below.value > head(partition).next.value) return Errc::invalid_argument;
  if (below <= cut.below) return out;
  // The predecessor's hash, so each record's link is checked before its payload goes: a
  // tampered record is never pruned into an unverifiable stub.
  Hash prev{};
  if (cut.below.value > 0) {
    std::string v;
    const auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[kLog],
                                  encode_log_key(partition, Seq{cut.below.value - 1}), &v);
    if (!s.ok()) return map_status(s);
    SECHEX_TRY(auto view, decode_record(v));
    prev = view.hash;
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  for (auto from = cut.below.value; from < below.value;) {
    const auto to = std::min(from + kMaintenanceBatch, below.value);
    rocksdb::WriteBatch batch;
    rocksdb::ReadOptions ro;
    const auto upper = encode_log_key(partition, Seq{to});
    rocksdb::Slice upper_slice(upper);
    ro.iterate_upper_bound = &upper_slice;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cfs[kLog]));
    auto expected = from;
    for (it->Seek(encode_log_key(partition, Seq{from})); it->Valid(); it->Next(), ++expected) {
      Position pos;
      if (!decode_log_key(it->key().ToStringView(), pos) || pos.seq.value != expected) {
        return Errc::chain_broken;
      }
      const auto value = it->value().ToStringView();
      SECHEX_TRY(auto view, decode_record(value));
      if (view.pruned) return Errc::chain_broken;  // a stub above the cut: not ours to touch
      const auto digest = crypto::sha256(view.event);
      if (chain_hash_from_digest(partition, pos.seq, prev, digest) != view.hash) {
        return Errc::chain_broken;
      }
      batch.Put(impl_->cfs[kLog], it->key(),
                encode_pruned_record(
                    partition, pos.seq, view.hash, digest,
                    merkle::leaf_hash(ByteView(reinterpret_cast<const std::uint8_t*>(value.data()),
                                               value.size()))));
      out.bytes_freed += value.size() > kPrunedRecordSize ? value.size() - kPrunedRecordSize : 0;
      prev = view.hash;
    }
    if (!it->status().ok()) return map_status(it->status());
    if (expected != to) return Errc::chain_broken;
    std::string cv;
    detail::put_be64(cv, to);
    detail::put_be64(cv, static_cast<std::uint64_t>(before_micros));
    batch.Put(impl_->cfs[kMeta], cut_key(partition), cv);
    const auto s = impl_->db->Write(wo, &batch);
    if (!s.ok()) return map_status(s);
    out.pruned += to - from;
    from = to;
  }
  // Give the space back now rather than whenever compaction reaches these keys.
  const auto lo = encode_log_key(partition, cut.below);
  const auto hi = encode_log_key(partition, below);
  rocksdb::Slice lo_slice(lo), hi_slice(hi);
  (void)impl_->db->CompactRange(rocksdb::CompactRangeOptions(), impl_->cfs[kLog], &lo_slice,
                                &hi_slice);
  return out;
}

std::string merkle_node_key(Partition p, unsigned level, std::uint64_t index) {
  std::string k;
  detail::put_be32(k, p.value);
  k.push_back(static_cast<char>(level));
  detail::put_be64(k, index);
  return k;
}

Partition partition_for(std::string_view subject, std::uint32_t partitions) {
  const auto digest = crypto::sha256(
      ByteView(reinterpret_cast<const std::uint8_t*>(subject.data()), subject.size()));
  return Partition{partitions == 0 ? 0 : detail::get_be32(digest.data()) % partitions};
}

}  // namespace sechex::ledger
