// Compliance benchmarks of the Kafka log (issue 16, Kafka mode) against a real broker
// (ops/kafka/with-broker), each beside the embedded log doing the same in the same run:
//   - Merkle inclusion proofs (ledger/proof.h). The Kafka log keeps no tree nodes: the first
//     proof of a partition in a process reads the partition to compute them (and caches nodes of
//     256 records up), so first proofs (a new read-only log, as `ledgerctl prove`) and later
//     ones (the same log, warm: a long-lived ledgerd) are reported apart. Reference: the same
//     proofs from an embedded LogStore of the same records (reopened for its "first" proofs).
//   - retention: records pruned per second by Log::prune (stubs to <topic>.stubs, the cut to
//     <topic>.checkpoints, then DeleteRecords) against LogStore::prune of the same records.
//   - verify_chain over the pruned topic (a new read-only log, as `ledgerctl verify`) against
//     verify_chain over the pruned embedded store.
// Every log holds kParts partitions x SECHEX_BENCH_KAFKA_RECORDS (default 20,000) ~300-byte
// events, with a signed checkpoint at the end; retention cuts each partition at half of it.
// The Kafka benchmarks are skipped with a message when SECHEX_KAFKA_BROKERS is unset.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "ledger/kafka_log.h"
#include "ledger/proof.h"
#include "ledger/verify.h"
#include "support/test_util.h"

using namespace sechex;
using namespace sechex::ledger;

namespace {

constexpr std::uint32_t kParts = 8;
constexpr std::size_t kBatch = 512;
constexpr std::int64_t kBefore = 2;  // every event is timed 1 µs

const char* brokers() {
  const char* b = std::getenv("SECHEX_KAFKA_BROKERS");
  return b != nullptr && *b != '\0' ? b : nullptr;
}

std::uint64_t records_per_partition() {
  const char* v = std::getenv("SECHEX_BENCH_KAFKA_RECORDS");
  const auto n = v != nullptr ? std::strtoull(v, nullptr, 10) : 0;
  return n > 0 ? n : 20'000;
}

// Where retention cuts each partition.
std::uint64_t cut() { return records_per_partition() / 2; }

// The seq proved by the k-th proof of partition p (the same in every log).
Seq seq_for(std::uint32_t p, std::uint64_t k) {
  return Seq{(k * 7919 + p * 104'729) % records_per_partition()};
}

const CheckpointSigner& signer() {
  static const CheckpointSigner s = sechex::testing::make_signer("bench");
  return s;
}

const TrustedKeys& trusted() {
  static const TrustedKeys keys = [] {
    TrustedKeys k;
    (void)k.add(signer().verifier_key());
    return k;
  }();
  return keys;
}

// kBatch distinct ~300-byte events per partition, appended in a cycle.
const std::vector<std::vector<Bytes>>& events() {
  static const std::vector<std::vector<Bytes>> all = [] {
    std::vector<std::vector<Bytes>> out(kParts);
    const std::string pad(200, 'p');
    for (std::uint32_t p = 0; p < kParts; ++p) {
      const auto subject = sechex::testing::subject_in(p, kParts);
      for (std::size_t i = 0; i < kBatch; ++i) {
        out[p].push_back(sechex::testing::make_event(subject, std::to_string(i) + pad, 1));
      }
    }
    return out;
  }();
  return all;
}

// Appends records_per_partition() events to every partition (one thread per partition, batches
// of kBatch), then signs a checkpoint of every partition. Empty on success, else what failed.
std::string fill(Log& log) {
  const auto n = records_per_partition();
  std::mutex mu;
  std::string error;
  std::vector<std::thread> writers;
  for (std::uint32_t p = 0; p < kParts; ++p) {
    writers.emplace_back([&, p] {
      const std::vector<ByteView> all(events()[p].begin(), events()[p].end());
      for (std::uint64_t done = 0; done < n;) {
        const auto k = std::min<std::uint64_t>(kBatch, n - done);
        auto r = log.append(Partition{p}, std::span<const ByteView>(all.data(), k));
        if (!r) {
          std::lock_guard lock(mu);
          error = "append to partition " + std::to_string(p) + ": " + r.error().message();
          return;
        }
        done += k;
      }
    });
  }
  for (auto& w : writers) w.join();
  if (!error.empty()) return error;
  auto cps = log.checkpoint_due(true);
  if (!cps) return "checkpoint: " + cps.error().message();
  if (cps.value() != kParts) return "checkpoint: " + std::to_string(cps.value()) + " of 8 written";
  return {};
}

// --- logs ---------------------------------------------------------------------------------------

KafkaLogOptions kafka_options(const std::string& topic, bool read_only) {
  KafkaLogOptions o;
  o.brokers = brokers();
  o.topic = topic;
  o.partitions = kParts;
  o.transactional_id_prefix = topic + "-";
  o.read_only = read_only;
  o.signer = &signer();
  o.checkpoints.every_records = 0;
  o.checkpoints.every = std::chrono::microseconds(0);
  return o;
}

std::string fresh_topic() { return "bench-compliance-" + std::to_string(std::random_device{}()); }

// A new topic filled by `writer` (returned, still the writer of every partition).
Result<std::unique_ptr<KafkaLog>> filled_topic(std::string& error) {
  auto log = KafkaLog::open(kafka_options(fresh_topic(), false));
  if (!log) {
    error = "open: " + log.error().message();
    return log.error();
  }
  error = fill(*log.value());
  if (!error.empty()) {
    error += " (" + log.value()->last_error() + ")";
    return Errc::io_error;
  }
  return log;
}

Result<std::unique_ptr<KafkaLog>> reader_of(const std::string& topic) {
  return KafkaLog::open(kafka_options(topic, true));
}

// An embedded store of the same records, reopenable (a fresh process's caches).
struct Embedded {
  sechex::testing::TempDir dir;
  LogOptions options;
  std::unique_ptr<LogStore> log;

  Embedded() {
    options.path = dir.path();
    options.create_if_missing = true;
    options.partitions = kParts;
    options.signer = &signer();
    options.checkpoints.every_records = 0;
    options.checkpoints.every = std::chrono::microseconds(0);
    log = LogStore::open(options).value();
    const auto error = fill(*log);
    if (!error.empty()) throw std::runtime_error("embedded store: " + error);
  }
  void reopen() {
    log.reset();
    log = LogStore::open(options).value();
  }
};

// --- inclusion proofs ---------------------------------------------------------------------------

// One topic and one embedded store shared by the proof benchmarks (built on first use).
struct ProofCorpus {
  std::string topic;
  std::unique_ptr<Embedded> embedded;
  std::string error;
};
std::unique_ptr<ProofCorpus> g_proof_corpus;
ProofCorpus& proof_corpus() {
  if (!g_proof_corpus) {
    g_proof_corpus = std::make_unique<ProofCorpus>();
    if (brokers() != nullptr) {
      auto log = filled_topic(g_proof_corpus->error);
      if (log) g_proof_corpus->topic = log.value()->topic();
    }
    g_proof_corpus->embedded = std::make_unique<Embedded>();
  }
  return *g_proof_corpus;
}

// The proofs of one iteration: the k-th seq of every partition, checked offline once (outside
// the timing) so that a wrong proof cannot be fast.
bool prove_all(const Log& log, std::uint64_t k, benchmark::State& state) {
  for (std::uint32_t p = 0; p < kParts; ++p) {
    auto proof = prove_inclusion(log, Partition{p}, seq_for(p, k));
    if (!proof) {
      state.SkipWithError(("proof: " + proof.error().message()).c_str());
      return false;
    }
    benchmark::DoNotOptimize(proof);
  }
  return true;
}

bool check_one(const Log& log, benchmark::State& state) {
  auto proof = prove_inclusion(log, Partition{1}, seq_for(1, 3));
  if (!proof || !check_inclusion(proof.value(), trusted()).ok) {
    state.SkipWithError("a proof does not check");
    return false;
  }
  return true;
}

void set_first_proof_counters(benchmark::State& state, std::uint64_t proofs) {
  state.SetItemsProcessed(static_cast<std::int64_t>(proofs));
  // Records behind each first proof (the partition), per second of first proofs.
  state.counters["partition_records_per_s"] = benchmark::Counter(
      static_cast<double>(proofs * records_per_partition()), benchmark::Counter::kIsRate);
}

// Each iteration: a new read-only log (outside the timing), then the first proof of each
// partition through it.
void BM_KafkaProveFirst(benchmark::State& state) {
  if (brokers() == nullptr) return state.SkipWithError("SECHEX_KAFKA_BROKERS is not set");
  auto& c = proof_corpus();
  if (!c.error.empty()) return state.SkipWithError(c.error.c_str());
  std::uint64_t k = 0, proofs = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto reader = reader_of(c.topic);
    if (!reader) return state.SkipWithError(("open reader: " + reader.error().message()).c_str());
    state.ResumeTiming();
    if (!prove_all(*reader.value(), k++, state)) return;
    proofs += kParts;
    state.PauseTiming();
    const bool ok = check_one(*reader.value(), state);
    reader.value().reset();
    state.ResumeTiming();
    if (!ok) return;
  }
  set_first_proof_counters(state, proofs);
}
BENCHMARK(BM_KafkaProveFirst)->UseRealTime()->Iterations(2)->Unit(benchmark::kMillisecond);

// Reference: the embedded store reopened (outside the timing), then the same proofs.
void BM_EmbeddedProveFirst(benchmark::State& state) {
  auto& c = proof_corpus();
  std::uint64_t k = 0, proofs = 0;
  for (auto _ : state) {
    state.PauseTiming();
    c.embedded->reopen();
    state.ResumeTiming();
    if (!prove_all(*c.embedded->log, k++, state)) return;
    proofs += kParts;
  }
  if (!check_one(*c.embedded->log, state)) return;
  set_first_proof_counters(state, proofs);
}
BENCHMARK(BM_EmbeddedProveFirst)->UseRealTime()->Iterations(10)->Unit(benchmark::kMillisecond);

// Proofs of random seqs over all partitions through a log that already made a proof of each
// partition (outside the timing).
template <bool kKafka>
void prove_cached(benchmark::State& state) {
  if (kKafka && brokers() == nullptr) return state.SkipWithError("SECHEX_KAFKA_BROKERS is not set");
  auto& c = proof_corpus();
  if (kKafka && !c.error.empty()) return state.SkipWithError(c.error.c_str());
  std::unique_ptr<KafkaLog> reader;
  if constexpr (kKafka) {
    auto r = reader_of(c.topic);
    if (!r) return state.SkipWithError(("open reader: " + r.error().message()).c_str());
    reader = std::move(r).value();
  }
  const Log& log = kKafka ? static_cast<const Log&>(*reader) : *c.embedded->log;
  if (!prove_all(log, 0, state) || !check_one(log, state)) return;
  std::uint64_t i = 0;
  for (auto _ : state) {
    const auto p = static_cast<std::uint32_t>(i % kParts);
    auto proof = prove_inclusion(log, Partition{p}, seq_for(p, 1 + i / kParts));
    ++i;
    if (!proof) return state.SkipWithError(("proof: " + proof.error().message()).c_str());
    benchmark::DoNotOptimize(proof);
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_KafkaProveCached(benchmark::State& s) { prove_cached<true>(s); }
void BM_EmbeddedProveCached(benchmark::State& s) { prove_cached<false>(s); }
BENCHMARK(BM_KafkaProveCached)->UseRealTime()->MinTime(3.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EmbeddedProveCached)->UseRealTime()->MinTime(2.0)->Unit(benchmark::kMicrosecond);

// --- retention ----------------------------------------------------------------------------------

// The pruned logs, kept for the verify benchmarks (made by the prune benchmarks, or by
// pruned_topic() / pruned_store() when those were filtered out).
std::optional<std::string> g_pruned_topic;
std::unique_ptr<Embedded> g_pruned_store;

// Prunes every partition of `log` below cut(), one partition after the other (as a retention
// run does). Empty on success, else what failed.
std::string prune_all(Log& log, PruneResult& total) {
  for (std::uint32_t p = 0; p < kParts; ++p) {
    auto r = log.prune(Partition{p}, Seq{cut()}, kBefore);
    if (!r) return "prune of partition " + std::to_string(p) + ": " + r.error().message();
    total.pruned += r.value().pruned;
    total.bytes_freed += r.value().bytes_freed;
  }
  return {};
}

void set_prune_counters(benchmark::State& state, const PruneResult& total) {
  state.SetItemsProcessed(static_cast<std::int64_t>(total.pruned));
  state.counters["pruned"] = static_cast<double>(total.pruned);
  state.counters["freed_MB"] = static_cast<double>(total.bytes_freed) / 1e6;
}

// The writer that filled the topic prunes it (in a retention run, the partition's owner).
void BM_KafkaPrune(benchmark::State& state) {
  if (brokers() == nullptr) return state.SkipWithError("SECHEX_KAFKA_BROKERS is not set");
  PruneResult total;
  for (auto _ : state) {
    state.PauseTiming();
    std::string error;
    auto log = filled_topic(error);
    if (!log) return state.SkipWithError(error.c_str());
    state.ResumeTiming();
    error = prune_all(*log.value(), total);
    if (!error.empty()) {
      return state.SkipWithError((error + " (" + log.value()->last_error() + ")").c_str());
    }
    state.PauseTiming();
    if (total.pruned != kParts * cut()) return state.SkipWithError("not everything was pruned");
    g_pruned_topic = log.value()->topic();
    state.ResumeTiming();
  }
  set_prune_counters(state, total);
}
BENCHMARK(BM_KafkaPrune)->UseRealTime()->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_EmbeddedPrune(benchmark::State& state) {
  PruneResult total;
  for (auto _ : state) {
    state.PauseTiming();
    auto store = std::make_unique<Embedded>();
    state.ResumeTiming();
    const auto error = prune_all(*store->log, total);
    if (!error.empty()) return state.SkipWithError(error.c_str());
    state.PauseTiming();
    g_pruned_store = std::move(store);
    state.ResumeTiming();
  }
  set_prune_counters(state, total);
}
BENCHMARK(BM_EmbeddedPrune)->UseRealTime()->Iterations(1)->Unit(benchmark::kMillisecond);

// --- verification of the pruned logs ------------------------------------------------------------

std::string pruned_topic(std::string& error) {
  if (!g_pruned_topic) {
    auto log = filled_topic(error);
    if (!log) return {};
    PruneResult total;
    error = prune_all(*log.value(), total);
    if (!error.empty()) return {};
    g_pruned_topic = log.value()->topic();
  }
  return *g_pruned_topic;
}

Embedded& pruned_store() {
  if (!g_pruned_store) {
    g_pruned_store = std::make_unique<Embedded>();
    PruneResult total;
    const auto error = prune_all(*g_pruned_store->log, total);
    if (!error.empty()) throw std::runtime_error(error);
  }
  return *g_pruned_store;
}

bool verified(const VerifyReport& report, benchmark::State& state) {
  if (report.outcome == VerifyReport::Outcome::verified && report.signatures_checked &&
      report.records == kParts * records_per_partition()) {
    return true;
  }
  state.SkipWithError(
      ("not verified: " + (report.fault ? report.fault->reason + ": " + report.fault->detail
                                        : std::to_string(report.records) + " records"))
          .c_str());
  return false;
}

// Each iteration: a new read-only log (outside the timing), as `ledgerctl verify`.
void BM_KafkaVerifyPruned(benchmark::State& state) {
  if (brokers() == nullptr) return state.SkipWithError("SECHEX_KAFKA_BROKERS is not set");
  std::string error;
  const auto topic = pruned_topic(error);
  if (!error.empty()) return state.SkipWithError(error.c_str());
  VerifyOptions vo;
  vo.trusted = &trusted();
  std::uint64_t records = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto reader = reader_of(topic);
    if (!reader) return state.SkipWithError(("open reader: " + reader.error().message()).c_str());
    state.ResumeTiming();
    const auto report = verify_chain(*reader.value(), vo);
    if (!verified(report, state)) return;
    records += report.records;
    state.PauseTiming();
    reader.value().reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
}
BENCHMARK(BM_KafkaVerifyPruned)->UseRealTime()->Iterations(2)->Unit(benchmark::kMillisecond);

void BM_EmbeddedVerifyPruned(benchmark::State& state) {
  auto& store = pruned_store();
  VerifyOptions vo;
  vo.trusted = &trusted();
  std::uint64_t records = 0;
  for (auto _ : state) {
    const auto report = verify_chain(*store.log, vo);
    if (!verified(report, state)) return;
    records += report.records;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
}
BENCHMARK(BM_EmbeddedVerifyPruned)->UseRealTime()->Iterations(2)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  // The stores close here: closing a RocksDB from a static destructor at exit crashes inside
  // RocksDB, whose own statics may be gone by then.
  g_proof_corpus.reset();
  g_pruned_store.reset();
  benchmark::Shutdown();
  return 0;
}
