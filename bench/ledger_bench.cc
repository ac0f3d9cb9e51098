// Ledger micro-benchmarks. Every figure has a reference measured in the same run, because this
// 2-core machine is noisy: our durable append vs raw RocksDB sync writes of the same records,
// verify vs raw SHA-256. bench/run turns the JSON output into the ratios in bench/README.md.
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "ledger/verify.h"
#include "support/test_util.h"

using namespace sechex;
using namespace sechex::ledger;

namespace {

constexpr std::uint32_t kPartitions = 8;

// ~300-byte events, as the targets in the issue assume.
std::vector<Bytes> make_events(std::size_t n, std::uint32_t partition) {
  std::vector<Bytes> out;
  const auto subject = sechex::testing::subject_in(partition, kPartitions);
  std::string pad(200, 'p');
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(sechex::testing::make_event(subject, pad + std::to_string(i)));
  return out;
}

std::unique_ptr<LogStore> open_store(const std::string& path) {
  LogOptions o;
  o.path = path;
  o.create_if_missing = true;
  o.partitions = kPartitions;
  return LogStore::open(o).value();
}

// Raw RocksDB with the same key/value shapes and sync=true: the floor our append path sits on.
void BM_RawRocksSyncWrite(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  sechex::testing::TempDir dir;
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.IncreaseParallelism(2);
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(opts, dir.path(), &raw).ok()) {
    state.SkipWithError("open failed");
    return;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  const auto events = make_events(batch, 0);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  std::uint64_t seq = 0;
  Hash h{};
  for (auto _ : state) {
    rocksdb::WriteBatch wb;
    for (const auto& e : events) {
      const Seq s{seq++};
      wb.Put(encode_log_key(Partition{0}, s), encode_record(Partition{0}, s, h, e));
    }
    if (!db->Write(wo, &wb).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_RawRocksSyncWrite)->Arg(1)->Arg(64)->Arg(100)->Arg(512)->UseRealTime()->MinTime(2.0);

// Our durable append: schema check, chain hashing, head update, synced write.
void BM_LedgerAppend(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  sechex::testing::TempDir dir;
  auto log = open_store(dir.path());
  const auto events = make_events(batch, 0);
  const std::vector<ByteView> views(events.begin(), events.end());
  for (auto _ : state) {
    if (!log->append(Partition{0}, views)) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_LedgerAppend)->Arg(1)->Arg(64)->Arg(100)->Arg(512)->UseRealTime()->MinTime(2.0);

double percentile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

// 8 concurrent appenders of one event each: group commit at work. Reports p50/p99 latency.
template <bool kRaw>
void concurrent_latency(benchmark::State& state) {
  constexpr int kThreads = 8;
  const int per_thread = static_cast<int>(state.range(0));
  sechex::testing::TempDir dir;
  std::unique_ptr<LogStore> log;
  std::unique_ptr<rocksdb::DB> db;
  if (kRaw) {
    rocksdb::Options opts;
    opts.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(opts, dir.path(), &raw).ok()) return state.SkipWithError("open");
    db.reset(raw);
  } else {
    log = open_store(dir.path());
  }
  std::vector<double> all;
  std::uint64_t total = 0;
  for (auto _ : state) {
    std::vector<std::vector<double>> lat(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const auto p = static_cast<std::uint32_t>(t % kPartitions);
        const auto events = make_events(static_cast<std::size_t>(per_thread), p);
        rocksdb::WriteOptions wo;
        wo.sync = true;
        for (int i = 0; i < per_thread; ++i) {
          const ByteView v(events[static_cast<std::size_t>(i)]);
          const auto t0 = std::chrono::steady_clock::now();
          if (kRaw) {
            const auto key = encode_log_key(
                Partition{p}, Seq{static_cast<std::uint64_t>(total + t * per_thread + i)});
            (void)db->Put(wo, key,
                          rocksdb::Slice(reinterpret_cast<const char*>(v.data()), v.size()));
          } else {
            (void)log->append(Partition{p}, std::span<const ByteView>(&v, 1));
          }
          lat[t].push_back(
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                  .count());
        }
      });
    }
    for (auto& th : threads) th.join();
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    total += static_cast<std::uint64_t>(kThreads * per_thread);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(total));
  state.counters["p50_us"] = percentile(all, 0.50);
  state.counters["p99_us"] = percentile(all, 0.99);
}
void BM_ConcurrentAppendLatency(benchmark::State& s) { concurrent_latency<false>(s); }
void BM_RawRocksConcurrentSyncPut(benchmark::State& s) { concurrent_latency<true>(s); }
BENCHMARK(BM_ConcurrentAppendLatency)->Arg(400)->UseRealTime()->Iterations(3);
BENCHMARK(BM_RawRocksConcurrentSyncPut)->Arg(400)->UseRealTime()->Iterations(3);

// Raw SHA-256 over 300-byte inputs: the floor for verify (two hashes per record).
void BM_Sha256(benchmark::State& state) {
  const Bytes data(static_cast<std::size_t>(state.range(0)), 0x5a);
  for (auto _ : state) benchmark::DoNotOptimize(crypto::sha256(data));
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(300);

// Full verification (every link, envelope check, partition check) of a store of ~300-byte
// events, with the default 2 threads.
void BM_Verify(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  sechex::testing::TempDir dir;
  {
    auto log = open_store(dir.path());
    for (std::uint32_t p = 0; p < kPartitions; ++p) {
      const auto events = make_events(512, p);
      const std::vector<ByteView> views(events.begin(), events.end());
      for (std::size_t done = 0; done < n / kPartitions; done += views.size()) {
        (void)log->append(Partition{p}, views);
      }
    }
  }
  LogOptions o;
  o.path = dir.path();
  o.mode = LogOptions::Mode::read_only;
  auto log = LogStore::open(o).value();
  std::uint64_t records = 0;
  for (auto _ : state) {
    const auto report = verify_log(*log, {});
    if (report.outcome != VerifyReport::Outcome::verified) state.SkipWithError("not verified");
    records += report.records;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
}
BENCHMARK(BM_Verify)->Arg(200'000)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
