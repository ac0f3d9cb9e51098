#include "projections/store.h"

#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "ledger/crypto.h"

namespace sechex::projections {
namespace {

constexpr const char* kPositions = "positions";

std::string be32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}
std::string be64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (56 - 8 * i));
  return s;
}
std::uint64_t get_be64(std::string_view s) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}

std::error_code map_status(const rocksdb::Status& s) {
  if (s.IsCorruption()) return ledger::Errc::corruption;
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return ledger::Errc::store_locked;
  }
  return ledger::Errc::io_error;
}

}  // namespace

struct ProjectionStore::Impl {
  std::unique_ptr<rocksdb::DB> db;
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> cfs;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::vector<std::unique_ptr<Projection>> projections;
  std::uint32_t partitions = 0;
  mutable std::mutex mu;                 // guards `positions`
  std::vector<std::uint64_t> positions;  // next seq to apply, per partition
  // Shared by apply() from first read to write, exclusive for one cleanup batch (store.h).
  std::shared_mutex apply_mu;
  // Expiring column families and the projection that judges their entries, in name order.
  std::map<std::string, const Projection*, std::less<>> expiring;

  ~Impl() {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  }
  rocksdb::ColumnFamilyHandle* cf(std::string_view name) const {
    const auto it = cfs.find(name);
    return it == cfs.end() ? nullptr : it->second;
  }
};

namespace {

class BatchTxn final : public Txn {
 public:
  BatchTxn(rocksdb::DB* db, const std::function<rocksdb::ColumnFamilyHandle*(std::string_view)>& cf)
      : db_(db), cf_(cf), batch_(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true) {}

  Result<std::optional<std::string>> get(std::string_view cf, std::string_view key) override {
    auto* h = cf_(cf);
    if (h == nullptr) return make_error_code(ledger::Errc::invalid_argument);
    std::string value;
    const auto s = batch_.GetFromBatchAndDB(db_, rocksdb::ReadOptions(), h,
                                            rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return map_status(s);
    return std::optional<std::string>(std::move(value));
  }
  void put(std::string_view cf, std::string_view key, std::string_view value) override {
    if (auto* h = cf_(cf)) {
      batch_.Put(h, rocksdb::Slice(key.data(), key.size()),
                 rocksdb::Slice(value.data(), value.size()));
    } else {
      bad_cf_ = true;
    }
  }
  void del(std::string_view cf, std::string_view key) override {
    if (auto* h = cf_(cf)) {
      batch_.Delete(h, rocksdb::Slice(key.data(), key.size()));
    } else {
      bad_cf_ = true;
    }
  }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view cf,
                                                                std::string_view prefix) override {
    auto* h = cf_(cf);
    if (h == nullptr) return ledger::Errc::invalid_argument;
    std::vector<std::pair<std::string, std::string>> out;
    // The batch's own writes layered over the database: read-your-writes, deletes hidden.
    std::unique_ptr<rocksdb::Iterator> it(
        batch_.NewIteratorWithBase(h, db_->NewIterator(rocksdb::ReadOptions(), h)));
    const rocksdb::Slice pre(prefix.data(), prefix.size());
    for (it->Seek(pre); it->Valid() && it->key().starts_with(pre); it->Next()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
    if (!it->status().ok()) return map_status(it->status());
    return out;
  }
  rocksdb::WriteBatchWithIndex& batch() { return batch_; }
  bool bad_cf() const { return bad_cf_; }

 private:
  rocksdb::DB* db_;
  const std::function<rocksdb::ColumnFamilyHandle*(std::string_view)>& cf_;
  rocksdb::WriteBatchWithIndex batch_;
  bool bad_cf_ = false;
};

}  // namespace

Result<std::unique_ptr<ProjectionStore>> ProjectionStore::open(
    const std::string& path, std::uint32_t partitions,
    std::vector<std::unique_ptr<Projection>> projections) {
  std::unique_ptr<ProjectionStore> store(new ProjectionStore());
  auto impl = std::make_unique<Impl>();
  impl->partitions = partitions;
  impl->projections = std::move(projections);

  std::vector<std::string> names = {"default", kPositions};
  for (const auto& p : impl->projections) {
    for (auto& c : p->column_families()) {
      if (std::find(names.begin(), names.end(), c) != names.end()) {
        return make_error_code(ledger::Errc::invalid_argument);  // two owners for one CF
      }
      names.push_back(std::move(c));
    }
  }
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  opts.IncreaseParallelism(2);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions(opts));
  // Column families of projections that no longer exist would linger: open them too.
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(opts, path, &existing).ok()) {
    for (const auto& e : existing) {
      if (std::find(names.begin(), names.end(), e) == names.end()) {
        descs.emplace_back(e, rocksdb::ColumnFamilyOptions(opts));
        names.push_back(e);
      }
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  rocksdb::DB* raw = nullptr;
  const auto s = rocksdb::DB::Open(opts, path, descs, &impl->handles, &raw);
  if (!s.ok()) return map_status(s);
  impl->db.reset(raw);
  for (std::size_t i = 0; i < names.size(); ++i) impl->cfs[names[i]] = impl->handles[i];
  for (const auto& p : impl->projections) {
    for (const auto& c : p->expiring_column_families()) {
      if (impl->cf(c) == nullptr) return make_error_code(ledger::Errc::invalid_argument);
      impl->expiring[c] = p.get();
    }
  }

  impl->positions.assign(partitions, 0);
  for (std::uint32_t p = 0; p < partitions; ++p) {
    std::string v;
    const auto gs = impl->db->Get(rocksdb::ReadOptions(), impl->cf(kPositions), be32(p), &v);
    if (gs.ok() && v.size() == 8) {
      impl->positions[p] = get_be64(v);
    } else if (!gs.IsNotFound()) {
      return make_error_code(ledger::Errc::corruption);
    }
  }
  store->impl_ = std::move(impl);
  return store;
}

ProjectionStore::~ProjectionStore() = default;

ledger::Seq ProjectionStore::position(ledger::Partition p) const {
  std::lock_guard lock(impl_->mu);
  return ledger::Seq{p.value < impl_->positions.size() ? impl_->positions[p.value] : 0};
}

Result<void> ProjectionStore::apply(ledger::Partition p, std::span<const ledger::Record> records) {
  if (p.value >= impl_->partitions) return ledger::Errc::invalid_argument;
  if (records.empty()) return boost::outcome_v2::success();
  std::shared_lock apply_lock(impl_->apply_mu);
  auto next = position(p).value;
  if (records.front().position.seq.value != next) return ledger::Errc::invalid_argument;
  const std::function<rocksdb::ColumnFamilyHandle*(std::string_view)> cf =
      [this](std::string_view n) { return impl_->cf(n); };
  BatchTxn txn(impl_->db.get(), cf);
  for (const auto& r : records) {
    if (r.position.partition != p || r.position.seq.value != next) {
      return ledger::Errc::invalid_argument;
    }
    // Records come from the log, which only holds verified envelopes; an event of a type this
    // build does not know is skipped (it still advances the position).
    if (schemas::check_envelope(r.event.data(), r.event.size()) == schemas::CheckResult::ok) {
      const auto* env = schemas::envelope_of(r.event.data());
      for (const auto& proj : impl_->projections) {
        SECHEX_TRYV(proj->apply(*env, r.position, txn));
      }
    }
    ++next;
  }
  if (txn.bad_cf()) return ledger::Errc::invalid_argument;
  txn.batch().Put(impl_->cf(kPositions), be32(p.value), be64(next));
  const auto s = impl_->db->Write(rocksdb::WriteOptions(), txn.batch().GetWriteBatch());
  if (!s.ok()) return map_status(s);
  std::lock_guard lock(impl_->mu);
  impl_->positions[p.value] = next;
  return boost::outcome_v2::success();
}

Result<std::uint64_t> ProjectionStore::catch_up(const ledger::Log& log, std::size_t batch) {
  std::uint64_t applied = 0;
  for (std::uint32_t i = 0; i < std::min(impl_->partitions, log.partition_count()); ++i) {
    const ledger::Partition p{i};
    for (;;) {
      const auto from = position(p);
      SECHEX_TRY(auto records, log.read_range(p, from, ledger::Seq{UINT64_MAX}, batch));
      if (records.empty()) break;
      SECHEX_TRYV(apply(p, records));
      applied += records.size();
    }
  }
  return applied;
}

std::uint64_t ProjectionStore::lag(const ledger::Log& log) const {
  std::uint64_t lag = 0;
  for (std::uint32_t i = 0; i < std::min(impl_->partitions, log.partition_count()); ++i) {
    const auto head = log.head(ledger::Partition{i}).next.value;
    const auto pos = position(ledger::Partition{i}).value;
    if (head > pos) lag += head - pos;
  }
  return lag;
}

Result<std::optional<std::string>> ProjectionStore::get(std::string_view cf,
                                                        std::string_view key) const {
  auto* h = impl_->cf(cf);
  if (h == nullptr) return make_error_code(ledger::Errc::invalid_argument);
  std::string v;
  const auto s =
      impl_->db->Get(rocksdb::ReadOptions(), h, rocksdb::Slice(key.data(), key.size()), &v);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return map_status(s);
  return std::optional<std::string>(std::move(v));
}

Result<std::vector<std::pair<std::string, std::string>>> ProjectionStore::scan(
    std::string_view cf, std::string_view prefix, std::size_t max) const {
  return scan_from(cf, prefix, prefix, max);
}

Result<std::vector<std::pair<std::string, std::string>>> ProjectionStore::scan_from(
    std::string_view cf, std::string_view prefix, std::string_view start, std::size_t max) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (max == 0) return out;
  SECHEX_TRYV(for_each(cf, prefix, start, [&](std::string_view k, std::string_view v) {
    out.emplace_back(k, v);
    return out.size() < max;
  }));
  return out;
}

Result<void> ProjectionStore::for_each(
    std::string_view cf, std::string_view prefix, std::string_view start,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) const {
  auto* h = impl_->cf(cf);
  if (h == nullptr) return ledger::Errc::invalid_argument;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), h));
  const rocksdb::Slice pre(prefix.data(), prefix.size());
  const std::string_view from = start < prefix ? prefix : start;
  for (it->Seek(rocksdb::Slice(from.data(), from.size()));
       it->Valid() && it->key().starts_with(pre); it->Next()) {
    if (!visit(std::string_view(it->key().data(), it->key().size()),
               std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  if (!it->status().ok()) return map_status(it->status());
  return boost::outcome_v2::success();
}

Result<std::string> ProjectionStore::digest() const { return digest_impl(std::nullopt); }

Result<std::string> ProjectionStore::digest(std::int64_t now_micros) const {
  return digest_impl(now_micros);
}

Result<std::string> ProjectionStore::digest_impl(std::optional<std::int64_t> now_micros) const {
  std::vector<std::string> names;
  for (const auto& p : impl_->projections) {
    for (const auto& c : p->column_families()) names.push_back(c);
  }
  std::sort(names.begin(), names.end());
  ledger::crypto::Sha256 h;
  auto feed = [&](std::string_view s) {
    const auto len = be64(s.size());
    h.update(ledger::as_bytes(len));
    h.update(ledger::ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  };
  for (const auto& n : names) {
    feed(n);
    std::unique_ptr<rocksdb::Iterator> it(
        impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf(n)));
    const auto owner = impl_->expiring.find(n);
    const Projection* judge =
        now_micros && owner != impl_->expiring.end() ? owner->second : nullptr;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (judge != nullptr &&
          judge->expired(n, it->key().ToStringView(), it->value().ToStringView(), *now_micros)) {
        continue;
      }
      feed(it->key().ToStringView());
      feed(it->value().ToStringView());
    }
    if (!it->status().ok()) return map_status(it->status());
  }
  return ledger::to_hex(h.finish());
}

Result<std::uint64_t> ProjectionStore::cleanup(std::int64_t now_micros, std::uint64_t max_deletes,
                                               std::map<std::string, std::uint64_t>* by_family) {
  std::uint64_t deleted = 0;
  for (const auto& [name, judge] : impl_->expiring) {
    auto* h = impl_->cf(name);
    // The scan runs without the lock (an iterator sees a consistent snapshot); each batch of
    // candidates is re-read and re-judged under the exclusive lock before it is deleted.
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), h));
    it->SeekToFirst();
    while (deleted < max_deletes) {
      std::vector<std::string> candidates;
      for (; it->Valid() && candidates.size() < kCleanupBatch &&
             deleted + candidates.size() < max_deletes;
           it->Next()) {
        if (judge->expired(name, it->key().ToStringView(), it->value().ToStringView(),
                           now_micros)) {
          candidates.push_back(it->key().ToString());
        }
      }
      if (!it->status().ok()) return map_status(it->status());
      if (candidates.empty()) break;
      std::unique_lock lock(impl_->apply_mu);
      rocksdb::WriteBatch batch;
      std::uint64_t in_batch = 0;
      for (const auto& key : candidates) {
        std::string current;
        const auto s = impl_->db->Get(rocksdb::ReadOptions(), h, key, &current);
        if (s.IsNotFound()) continue;
        if (!s.ok()) return map_status(s);
        if (!judge->expired(name, key, current, now_micros)) continue;  // renewed meanwhile
        batch.Delete(h, key);
        ++in_batch;
      }
      const auto ws = impl_->db->Write(rocksdb::WriteOptions(), &batch);
      if (!ws.ok()) return map_status(ws);
      deleted += in_batch;
      if (by_family != nullptr && in_batch > 0) (*by_family)[name] += in_batch;
    }
  }
  return deleted;
}

Result<ProjectionStore::Copied> ProjectionStore::copy(const std::string& path,
                                                      const std::string& to,
                                                      const std::string& scratch) {
  std::error_code ec;
  if (std::filesystem::exists(to, ec)) return make_error_code(ledger::Errc::invalid_argument);
  rocksdb::Options opts;
  opts.max_open_files = -1;  // a secondary instance keeps every file open
  std::vector<std::string> names;
  auto s = rocksdb::DB::ListColumnFamilies(opts, path, &names);
  if (!s.ok()) return map_status(s);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions(opts));

  struct Db {
    std::unique_ptr<rocksdb::DB> db;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ~Db() {
      for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    }
  };
  std::filesystem::create_directories(scratch, ec);
  struct RemoveScratch {
    const std::string& dir;
    ~RemoveScratch() {
      std::error_code e;
      std::filesystem::remove_all(dir, e);
    }
  } remove_scratch{scratch};
  Db from, into;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenAsSecondary(opts, path, scratch, descs, &from.handles, &raw);
  if (!s.ok()) return map_status(s);
  from.db.reset(raw);
  // The files a live primary wrote since: the copy is of its latest write.
  s = from.db->TryCatchUpWithPrimary();
  if (!s.ok()) return map_status(s);

  rocksdb::Options out_opts;
  out_opts.create_if_missing = true;
  out_opts.create_missing_column_families = true;
  out_opts.error_if_exists = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> out_descs;
  for (const auto& n : names) out_descs.emplace_back(n, rocksdb::ColumnFamilyOptions(out_opts));
  s = rocksdb::DB::Open(out_opts, to, out_descs, &into.handles, &raw);
  if (!s.ok()) return map_status(s);
  into.db.reset(raw);

  Copied out;
  constexpr std::size_t kBatch = 4096;
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::unique_ptr<rocksdb::Iterator> it(
        from.db->NewIterator(rocksdb::ReadOptions(), from.handles[i]));
    rocksdb::WriteBatch batch;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      batch.Put(into.handles[i], it->key(), it->value());
      ++out.entries;
      if (static_cast<std::size_t>(batch.Count()) == kBatch) {
        s = into.db->Write(rocksdb::WriteOptions(), &batch);
        if (!s.ok()) return map_status(s);
        batch.Clear();
      }
    }
    if (!it->status().ok()) return map_status(it->status());
    s = into.db->Write(rocksdb::WriteOptions(), &batch);
    if (!s.ok()) return map_status(s);
  }
  // What was copied, read back from the copy: be32(partition) -> be64(next seq).
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] != kPositions) continue;
    std::unique_ptr<rocksdb::Iterator> it(
        into.db->NewIterator(rocksdb::ReadOptions(), into.handles[i]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto key = it->key();
      if (key.size() != 4 || it->value().size() != 8) {
        return make_error_code(ledger::Errc::corruption);
      }
      const auto p = (std::uint32_t{static_cast<std::uint8_t>(key[0])} << 24) |
                     (std::uint32_t{static_cast<std::uint8_t>(key[1])} << 16) |
                     (std::uint32_t{static_cast<std::uint8_t>(key[2])} << 8) |
                     std::uint32_t{static_cast<std::uint8_t>(key[3])};
      out.positions[p] = get_be64(it->value().ToStringView());
    }
  }
  // Durable before the caller moves it into place.
  s = into.db->Flush(rocksdb::FlushOptions(), into.handles);
  if (!s.ok()) return map_status(s);
  return out;
}

}  // namespace sechex::projections
