// Compliance benchmarks (issue 16), each beside a reference measured in the same run:
//   - Merkle inclusion proofs made per second from a store, and checked per second offline
//     (signature included) against raw Ed25519 verifications, the floor of such a check;
//   - retention: records pruned per second against raw RocksDB synced batch writes of the same
//     stubs, and the p50/p99 of single-event appends while a prune runs against the same appends
//     without one;
//   - archive verification against `verify` of the same records.
// The store size of the retention figures is SECHEX_BENCH_RETENTION_RECORDS (default 1,000,000;
// bench/README.md has the 10,000,000 run).
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "ledger/archive.h"
#include "ledger/proof.h"
#include "ledger/verify.h"
#include "support/test_util.h"

using namespace sechex;
using namespace sechex::ledger;

namespace {

constexpr std::uint32_t kParts = 8;

std::uint64_t retention_records() {
  const char* v = std::getenv("SECHEX_BENCH_RETENTION_RECORDS");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : 1'000'000;
}

// A store of `n` ~300-byte events over kParts partitions, with a checkpoint at the end.
struct Store {
  sechex::testing::TempDir dir;
  CheckpointSigner signer = sechex::testing::make_signer("bench");
  TrustedKeys keys;
  std::unique_ptr<LogStore> log;

  explicit Store(std::uint64_t n) {
    (void)keys.add(signer.verifier_key());
    LogOptions o;
    o.path = dir.path();
    o.create_if_missing = true;
    o.partitions = kParts;
    o.signer = &signer;
    o.checkpoints.every_records = 0;
    o.checkpoints.every = std::chrono::microseconds(0);
    log = LogStore::open(o).value();
    const std::string pad(200, 'p');
    for (std::uint32_t p = 0; p < kParts; ++p) {
      const auto subject = sechex::testing::subject_in(p, kParts);
      std::vector<Bytes> events;
      for (int i = 0; i < 512; ++i) events.push_back(sechex::testing::make_event(subject, pad, 1));
      const std::vector<ByteView> views(events.begin(), events.end());
      for (std::uint64_t done = 0; done < n / kParts; done += views.size()) {
        (void)log->append(Partition{p}, views);
      }
    }
    (void)log->checkpoint_due(true);
  }
  std::uint64_t size(Partition p) const { return log->head(p).next.value; }
};

void BM_ProveInclusion(benchmark::State& state) {
  Store s(static_cast<std::uint64_t>(state.range(0)));
  const auto n = s.size(Partition{0});
  std::uint64_t i = 0;
  for (auto _ : state) {
    auto proof = prove_inclusion(*s.log, Partition{0}, Seq{(i++ * 7919) % n});
    if (!proof) state.SkipWithError("no proof");
    benchmark::DoNotOptimize(proof);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProveInclusion)->Arg(200'000)->UseRealTime()->MinTime(2.0);

void BM_CheckInclusionOffline(benchmark::State& state) {
  Store s(static_cast<std::uint64_t>(state.range(0)));
  const auto proof = prove_inclusion(*s.log, Partition{0}, Seq{12345}).value();
  for (auto _ : state) {
    if (!check_inclusion(proof, s.keys).ok) state.SkipWithError("refused");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CheckInclusionOffline)->Arg(200'000)->UseRealTime()->MinTime(2.0);

// Reference: one Ed25519 verification of a checkpoint-sized message.
void BM_RawEd25519Verify(benchmark::State& state) {
  const auto key = crypto::ed25519_generate().value();
  const Bytes msg(120, 0x42);
  const auto sig = crypto::ed25519_sign(key, msg).value();
  for (auto _ : state) benchmark::DoNotOptimize(crypto::ed25519_verify(key.public_key, msg, sig));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawEd25519Verify)->UseRealTime()->MinTime(2.0);

// Retention over the whole store: every record below the head becomes a stub.
void BM_Prune(benchmark::State& state) {
  std::uint64_t pruned = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Store s(retention_records());
    state.ResumeTiming();
    for (std::uint32_t p = 0; p < kParts; ++p) {
      auto r = s.log->prune(Partition{p}, Seq{s.size(Partition{p})}, 2);
      if (!r) state.SkipWithError("prune failed");
      pruned += r ? r.value().pruned : 0;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(pruned));
}
BENCHMARK(BM_Prune)->UseRealTime()->Iterations(1)->Unit(benchmark::kMillisecond);

// Reference: raw RocksDB writes of the same number of stub-sized values in synced batches of
// 4096 (what prune writes), without reading or hashing anything.
void BM_RawStubWrites(benchmark::State& state) {
  const auto n = retention_records();
  std::uint64_t written = 0;
  for (auto _ : state) {
    sechex::testing::TempDir dir;
    rocksdb::Options opts;
    opts.create_if_missing = true;
    opts.IncreaseParallelism(2);
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(opts, dir.path(), &raw).ok()) state.SkipWithError("open failed");
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const std::string stub(kPrunedRecordSize, 's');
    for (std::uint64_t i = 0; i < n; i += 4096) {
      rocksdb::WriteBatch wb;
      for (std::uint64_t j = i; j < std::min(n, i + 4096); ++j) {
        wb.Put(encode_log_key(Partition{static_cast<std::uint32_t>(j % kParts)}, Seq{j}), stub);
      }
      (void)db->Write(wo, &wb);
    }
    written += n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(written));
}
BENCHMARK(BM_RawStubWrites)->UseRealTime()->Iterations(1)->Unit(benchmark::kMillisecond);

// Single-event appends to partition 7 for the duration of a prune of partitions 0..6 (arg 1),
// or for the same number of appends with no prune (arg 0): p50 and p99 in microseconds.
void BM_AppendLatencyDuringPrune(benchmark::State& state) {
  const bool pruning = state.range(0) != 0;
  std::vector<double> micros;
  for (auto _ : state) {
    state.PauseTiming();
    Store s(retention_records());
    const auto ev = sechex::testing::make_event(sechex::testing::subject_in(7, kParts), "x", 1);
    const ByteView view(ev);
    state.ResumeTiming();
    std::atomic<bool> done{!pruning};
    std::thread pruner([&] {
      if (!pruning) return;
      for (std::uint32_t p = 0; p < 7; ++p)
        (void)s.log->prune(Partition{p}, Seq{s.size(Partition{p})}, 2);
      done = true;
    });
    for (int i = 0; !done || (!pruning && i < 2000); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)s.log->append(Partition{7}, std::span<const ByteView>(&view, 1));
      micros.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    pruner.join();
  }
  std::sort(micros.begin(), micros.end());
  state.counters["appends"] = static_cast<double>(micros.size());
  state.counters["p50_us"] = micros[micros.size() / 2];
  state.counters["p99_us"] = micros[micros.size() * 99 / 100];
}
BENCHMARK(BM_AppendLatencyDuringPrune)
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// Archive verification of a whole store against `verify` of the same store.
void BM_ArchiveVerify(benchmark::State& state) {
  Store s(static_cast<std::uint64_t>(state.range(0)));
  std::vector<ArchiveRange> ranges;
  for (std::uint32_t p = 0; p < kParts; ++p)
    ranges.push_back({Partition{p}, Seq{0}, Seq{s.size(Partition{p})}});
  std::stringstream archive;
  if (!write_archive(*s.log, ranges, std::nullopt, std::nullopt, archive))
    state.SkipWithError("write failed");
  const auto text = archive.str();
  std::uint64_t records = 0;
  for (auto _ : state) {
    std::istringstream in(text);
    const auto report = verify_archive(in, s.keys);
    if (report.outcome != VerifyReport::Outcome::verified) state.SkipWithError("not verified");
    records += report.records;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
  state.counters["archive_bytes_per_record"] =
      static_cast<double>(text.size()) /
      static_cast<double>(std::max<std::uint64_t>(1, records / state.iterations()));
}
BENCHMARK(BM_ArchiveVerify)
    ->Arg(200'000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

void BM_VerifyStoreReference(benchmark::State& state) {
  Store s(static_cast<std::uint64_t>(state.range(0)));
  VerifyOptions vo;
  vo.trusted = &s.keys;
  vo.threads = 1;  // archive verification is one stream on one thread
  std::uint64_t records = 0;
  for (auto _ : state) {
    const auto report = verify_log(*s.log, vo);
    if (report.outcome != VerifyReport::Outcome::verified) state.SkipWithError("not verified");
    records += report.records;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
}
BENCHMARK(BM_VerifyStoreReference)
    ->Arg(200'000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
