// Shared helpers for ledger tests: temporary directories and small valid events.
#pragma once

#include <rocksdb/db.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ledger/checkpoint.h"
#include "ledger/event_builder.h"
#include "ledger/log_store.h"
#include "support/temp_dir.h"

namespace sechex::testing {

// A minimal valid event for `subject` (no sealed fields), with `note` in its body so tests can
// tell events apart.
inline ledger::Bytes make_event(const std::string& subject, const std::string& note = "x",
                                std::int64_t time_micros = 1'767'225'600'000'000) {
  ledger::EventBuilder b(nullptr, {subject, subject, "req-" + note, time_micros, {}, {}});
  auto body = schema::CreateCheckIn(b.fbb(), b.fbb().CreateString(note));
  auto bytes = b.finish(body);
  if (!bytes) throw std::runtime_error("make_event failed");
  return std::move(bytes).value();
}

// A subject whose events land in `partition` (of `partitions`).
inline std::string subject_in(std::uint32_t partition, std::uint32_t partitions, int n = 0) {
  for (int i = 0;; ++i) {
    std::string s = "subject-" + std::to_string(n) + "-" + std::to_string(i);
    if (ledger::partition_for(s, partitions).value == partition) return s;
  }
}

// An embedded ledger at `path` with its key store (a fixed test KEK), for tests that append
// events with sealed fields. The key store must not outlive the log: destroy `keys` first.
struct TestLedger {
  std::unique_ptr<ledger::LogStore> log;
  std::unique_ptr<ledger::KeyStore> keys;
};
inline TestLedger open_test_ledger(const std::string& path, std::uint32_t partitions) {
  ledger::LogOptions o;
  o.path = path;
  o.create_if_missing = true;
  o.partitions = partitions;
  TestLedger t;
  t.log = ledger::LogStore::open(o).value();
  t.keys =
      ledger::KeyStore::open(
          *t.log,
          ledger::Kek::from_base64(ledger::crypto::base64_encode(ledger::Bytes(32, 5))).value())
          .value();
  return t;
}

inline ledger::CheckpointSigner make_signer(const std::string& name = "test-key") {
  auto key = ledger::crypto::ed25519_generate();
  if (!key) throw std::runtime_error("keygen failed");
  return ledger::CheckpointSigner(name, std::move(key).value());
}

// Appends `n` events for `subject` one append at a time; returns the last result.
inline ledger::AppendResult append_n(ledger::LogStore& log, const std::string& subject, int n,
                                     const std::string& tag = "e") {
  ledger::AppendResult last;
  const auto p = ledger::partition_for(subject, log.partition_count());
  for (int i = 0; i < n; ++i) {
    const auto ev = make_event(subject, tag + std::to_string(i));
    const ledger::ByteView view(ev);
    auto r = log.append(p, std::span<const ledger::ByteView>(&view, 1));
    if (!r) throw std::runtime_error("append failed: " + r.error().message());
    last = r.value();
  }
  return last;
}

// Raw access to the store's RocksDB, for tampering with it the way an attacker with disk
// access would. Open only while no LogStore has the directory open.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n : {"default", "log", "meta", "checkpoints", "keys", "merkle"}) {
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* db = nullptr;
    auto s = rocksdb::DB::Open(rocksdb::Options(), path, cfs, &handles_, &db);
    if (!s.ok()) throw std::runtime_error("raw open: " + s.ToString());
    db_.reset(db);
  }
  ~RawDb() {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  }
  rocksdb::ColumnFamilyHandle* log() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* meta() { return handles_[2]; }
  rocksdb::ColumnFamilyHandle* checkpoints() { return handles_[3]; }
  rocksdb::ColumnFamilyHandle* keys() { return handles_[4]; }
  rocksdb::ColumnFamilyHandle* merkle() { return handles_[5]; }
  std::string get(rocksdb::ColumnFamilyHandle* cf, const std::string& k) {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), cf, k, &v);
    if (!s.ok()) throw std::runtime_error("raw get: " + s.ToString());
    return v;
  }
  void put(rocksdb::ColumnFamilyHandle* cf, const std::string& k, const std::string& v) {
    auto s = db_->Put(rocksdb::WriteOptions(), cf, k, v);
    if (!s.ok()) throw std::runtime_error("raw put: " + s.ToString());
  }
  void del(rocksdb::ColumnFamilyHandle* cf, const std::string& k) {
    auto s = db_->Delete(rocksdb::WriteOptions(), cf, k);
    if (!s.ok()) throw std::runtime_error("raw delete: " + s.ToString());
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace sechex::testing
