// The Kafka log against a real broker (bench/run starts one with ops/kafka/with-broker):
// batched transactional appends from 8 partition writers at once, and projection catch-up
// from Kafka. Skipped with a message when SECHEX_KAFKA_BROKERS is unset. The embedded
// references are BM_LedgerAppend (same batch) in ledger_bench.cc.
#include <benchmark/benchmark.h>

#include <random>
#include <thread>

#include "ledger/kafka_log.h"
#include "projections/store.h"
#include "support/test_util.h"

using namespace sechex;
using namespace sechex::ledger;

namespace {

constexpr std::uint32_t kPartitions = 8;
constexpr std::size_t kBatch = 512;

const char* brokers() {
  const char* b = std::getenv("SECHEX_KAFKA_BROKERS");
  return b != nullptr && *b != '\0' ? b : nullptr;
}

std::string fresh_topic() { return "bench-" + std::to_string(std::random_device{}()); }

std::vector<Bytes> events_for(std::uint32_t p, std::size_t n) {
  std::vector<Bytes> out;
  const auto subject = testing::subject_in(p, kPartitions);
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(testing::make_event(subject, std::to_string(i)));
  return out;
}

KafkaLogOptions options(const std::string& topic) {
  KafkaLogOptions o;
  o.brokers = brokers();
  o.topic = topic;
  o.partitions = kPartitions;
  o.transactional_id_prefix = topic + "-";
  return o;
}

// One iteration: every partition's writer appends a batch of 512 in its own thread; an
// iteration ends when all 8 transactions committed. Reports events/s and the p99 of one
// append (a transaction).
void BM_KafkaAppend8Partitions(benchmark::State& state) {
  if (brokers() == nullptr) return state.SkipWithError("SECHEX_KAFKA_BROKERS is not set");
  auto log = KafkaLog::open(options(fresh_topic()));
  if (!log) return state.SkipWithError(("open: " + log.error().message()).c_str());
  std::vector<std::vector<Bytes>> events;
  for (std::uint32_t p = 0; p < kPartitions; ++p) events.push_back(events_for(p, kBatch));
  auto append = [&](std::uint32_t p) {
    const std::vector<ByteView> views(events[p].begin(), events[p].end());
    return log.value()->append(Partition{p}, views);
  };
  for (std::uint32_t p = 0; p < kPartitions; ++p) {  // producers and tails, outside the timing
    if (!append(p)) return state.SkipWithError("warm-up append failed");
  }
  std::vector<double> latencies_us;
  std::mutex mu;
  for (auto _ : state) {
    std::vector<std::thread> writers;
    for (std::uint32_t p = 0; p < kPartitions; ++p) {
      writers.emplace_back([&, p] {
        const auto t0 = std::chrono::steady_clock::now();
        const bool ok = static_cast<bool>(append(p));
        const double us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count();
        std::lock_guard lock(mu);
        if (ok) latencies_us.push_back(us);
      });
    }
    for (auto& w : writers) w.join();
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  if (!latencies_us.empty()) {
    state.counters["p50_us"] = latencies_us[latencies_us.size() / 2];
    state.counters["p99_us"] =
        latencies_us[static_cast<std::size_t>(0.99 * static_cast<double>(latencies_us.size() - 1))];
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPartitions * kBatch));
}
BENCHMARK(BM_KafkaAppend8Partitions)->UseRealTime()->MinTime(5.0);

// The embedded log doing the same: 8 partitions, a batch of 512 each, at once.
void BM_EmbeddedAppend8Partitions(benchmark::State& state) {
  testing::TempDir dir;
  LogOptions lo;
  lo.path = dir.path();
  lo.partitions = kPartitions;
  lo.create_if_missing = true;
  auto log = LogStore::open(lo).value();
  std::vector<std::vector<Bytes>> events;
  for (std::uint32_t p = 0; p < kPartitions; ++p) events.push_back(events_for(p, kBatch));
  for (auto _ : state) {
    std::vector<std::thread> writers;
    for (std::uint32_t p = 0; p < kPartitions; ++p) {
      writers.emplace_back([&, p] {
        const std::vector<ByteView> views(events[p].begin(), events[p].end());
        (void)log->append(Partition{p}, views);
      });
    }
    for (auto& w : writers) w.join();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPartitions * kBatch));
}
BENCHMARK(BM_EmbeddedAppend8Partitions)->UseRealTime()->MinTime(5.0);

// Projection catch-up from Kafka vs from the embedded log, 8 x 5,000 events written
// beforehand. BM_KafkaCatchUp reads through the log that wrote them (its sparse index and
// writer heads are warm; its second iteration finds its readers at the end and seeks back);
// BM_KafkaCatchUpFreshReader is a node starting up: each iteration opens a new read-only
// KafkaLog (outside the timing), so consumers start and offsets are found from scratch.
template <bool kKafka, bool kFreshReader = false>
void catch_up(benchmark::State& state) {
  constexpr std::size_t kPerPartition = 5000;
  if (kKafka && brokers() == nullptr) return state.SkipWithError("SECHEX_KAFKA_BROKERS is not set");
  testing::TempDir dir;
  std::unique_ptr<Log> log;
  if constexpr (kKafka) {
    auto k = KafkaLog::open(options(fresh_topic()));
    if (!k) return state.SkipWithError(("open: " + k.error().message()).c_str());
    log = std::move(k).value();
  } else {
    LogOptions lo;
    lo.path = dir.sub("log");
    lo.partitions = kPartitions;
    lo.create_if_missing = true;
    log = LogStore::open(lo).value();
  }
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto events = events_for(p, kPerPartition);
    for (std::size_t i = 0; i < events.size(); i += kBatch) {
      const std::vector<ByteView> views(events.begin() + i,
                                        events.begin() + std::min(events.size(), i + kBatch));
      if (!log->append(Partition{p}, views)) return state.SkipWithError("append failed");
    }
  }
  int run = 0;
  for (auto _ : state) {
    std::unique_ptr<Log> reader;
    if constexpr (kFreshReader) {
      state.PauseTiming();
      auto o = options(static_cast<KafkaLog&>(*log).topic());
      o.read_only = true;
      auto k = KafkaLog::open(o);
      if (!k) return state.SkipWithError(("open reader: " + k.error().message()).c_str());
      reader = std::move(k).value();
      state.ResumeTiming();
    }
    auto store = projections::ProjectionStore::open(
        dir.sub("p" + std::to_string(run++)), kPartitions, projections::default_projections());
    if (!store || !store.value()->catch_up(reader ? *reader : *log)) {
      state.SkipWithError("catch-up failed");
    }
  }
  state.SetItemsProcessed(
      static_cast<std::int64_t>(state.iterations() * kPartitions * kPerPartition));
}
void BM_KafkaCatchUp(benchmark::State& s) { catch_up<true>(s); }
void BM_KafkaCatchUpFreshReader(benchmark::State& s) { catch_up<true, true>(s); }
void BM_EmbeddedCatchUp(benchmark::State& s) { catch_up<false>(s); }
BENCHMARK(BM_KafkaCatchUp)->UseRealTime()->Iterations(2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KafkaCatchUpFreshReader)->UseRealTime()->Iterations(2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EmbeddedCatchUp)->UseRealTime()->Iterations(2)->Unit(benchmark::kMillisecond);

}  // namespace
