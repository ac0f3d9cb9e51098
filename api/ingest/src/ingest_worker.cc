#include "api/ingest/ingest_worker.h"

#include <charconv>
#include <unordered_map>

#include "api/ingest/application_event.h"

namespace sechex::api {
namespace {

constexpr std::string_view kHops = "sechex-hops";
constexpr std::string_view kReason = "sechex-reason";
constexpr std::string_view kSource = "sechex-source";
constexpr std::string_view kApplication = "application";
constexpr std::string_view kDefaultApplication = "kafka-ingest";

std::string header_or(const ledger::IngestRecord& r, std::string_view name,
                      std::string_view fallback) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return std::string(fallback);
}

}  // namespace

IngestWorker::IngestWorker(ledger::KafkaLog& log, CommandPath& commands, ledger::KeyStore& keys,
                           const Clock& clock, IngestWorkerOptions options)
    : log_(log),
      commands_(commands),
      keys_(keys),
      clock_(clock),
      opts_(std::move(options)),
      rejected_topic_(opts_.topic + ".rejected") {}

IngestWorker::~IngestWorker() { stop(); }

void IngestWorker::stop() {
  if (ingest_) ingest_->stop();
}

IngestWorkerStats IngestWorker::stats() const {
  return {chained_.load(std::memory_order_relaxed), forwarded_.load(std::memory_order_relaxed),
          rejected_.load(std::memory_order_relaxed), ingest_ ? ingest_->stats().failed_batches : 0};
}

Result<std::unique_ptr<IngestWorker>> IngestWorker::start(ledger::KafkaLog& log,
                                                          CommandPath& commands,
                                                          ledger::KeyStore& keys,
                                                          const Clock& clock,
                                                          IngestWorkerOptions options) {
  const auto partitions = static_cast<int>(log.partition_count());
  SECHEX_TRY(const int n, log.ensure_topic(options.topic, partitions, {}));
  if (n != partitions) {
    if (options.log) {
      options.log("ingest topic " + options.topic + " has " + std::to_string(n) +
                  " partitions but the ledger has " + std::to_string(partitions));
    }
    return ledger::Errc::corruption;
  }
  SECHEX_TRYV(log.ensure_topic(options.topic + ".rejected", 1, {{"retention.ms", "-1"}}));
  std::unique_ptr<IngestWorker> w(new IngestWorker(log, commands, keys, clock, options));
  ledger::KafkaIngestOptions ko;
  ko.topic = w->opts_.topic;
  ko.group_id = w->opts_.group_id;
  ko.max_batch = w->opts_.max_batch;
  ko.log = w->opts_.log;
  for (std::uint32_t p = 0; p < log.partition_count(); ++p) {
    if (!commands.ownership().owns(ledger::Partition{p})) continue;
    // Fence the partition's previous writer BEFORE reading the group's committed offsets: a
    // predecessor still committing a transaction (records + offsets) after our read would make
    // us start from offsets it has just consumed, and chain them a second time. Once fenced,
    // its transaction is aborted or complete, and read_committed offset fetches are stable.
    // (Found by the takeover test failing once in CI: 16 records chained twice.)
    SECHEX_TRYV(log.claim(ledger::Partition{p}));
    ko.partitions.push_back({p});
  }
  auto* raw = w.get();
  SECHEX_TRY(w->ingest_, ledger::KafkaIngest::start(
                             log, std::move(ko),
                             [raw](ledger::Partition p, std::span<const ledger::IngestRecord> recs,
                                   const ledger::ConsumedOffsets& consumed) {
                               return raw->handle(p, recs, consumed);
                             }));
  return w;
}

Result<void> IngestWorker::handle(ledger::Partition p,
                                  std::span<const ledger::IngestRecord> records,
                                  const ledger::ConsumedOffsets& consumed) {
  std::vector<ledger::KafkaLog::SideRecord> side;
  std::uint64_t forwarded = 0, rejected = 0;
  auto source = [&](const ledger::IngestRecord& r) {
    return opts_.topic + "/" + std::to_string(p.value) + "@" + std::to_string(r.offset);
  };
  auto dead_letter = [&](const ledger::IngestRecord& r, const std::string& reason) {
    ledger::KafkaLog::SideRecord s{rejected_topic_, 0, r.key, r.value, r.headers};
    s.headers.emplace_back(kReason, reason);
    s.headers.emplace_back(kSource, source(r));
    side.push_back(std::move(s));
    ++rejected;
  };

  struct Accepted {
    const ledger::IngestRecord* record;
    IngestEvent event;
  };
  std::vector<Accepted> accepted;
  std::unordered_map<std::string, bool> erased;  // one key-store lookup per subject
  for (const auto& r : records) {
    auto parsed = parse_ingest_event(r.value);
    if (!parsed) {
      dead_letter(r, parsed.error().text());
      continue;
    }
    auto& ev = parsed.value();
    const auto target = commands_.partition_for(ev.subject);
    if (target != p) {
      const auto hops_text = header_or(r, kHops, "0");
      int hops = 0;
      std::from_chars(hops_text.data(), hops_text.data() + hops_text.size(), hops);
      if (hops >= 1) {
        dead_letter(r, "forwarded record still not in its subject's partition " +
                           std::to_string(target.value));
        continue;
      }
      ledger::KafkaLog::SideRecord s{
          opts_.topic, static_cast<std::int32_t>(target.value), r.key, r.value, {}};
      for (const auto& h : r.headers) {
        if (h.first != kHops) s.headers.push_back(h);
      }
      s.headers.emplace_back(kHops, "1");
      s.headers.emplace_back(kSource, source(r));
      side.push_back(std::move(s));
      ++forwarded;
      continue;
    }
    auto it = erased.find(ev.subject);
    if (it == erased.end()) {
      SECHEX_TRY(const bool e, keys_.is_erased(ev.subject));
      it = erased.emplace(ev.subject, e).first;
    }
    if (it->second) {
      dead_letter(r, "this subject was erased; it takes no new events");
      continue;
    }
    accepted.push_back({&r, std::move(ev)});
  }

  if (accepted.empty()) {
    SECHEX_TRYV(log_.append_consumed(p, {}, side, consumed));
  } else {
    const auto now = clock_.now_micros();
    SECHEX_TRYV(commands_.run(
        p,
        [&]() -> Result<std::vector<ledger::Bytes>> {
          std::vector<ledger::Bytes> out;
          out.reserve(accepted.size());
          for (const auto& a : accepted) {
            SECHEX_TRY(auto built,
                       build_application_event(
                           keys_, a.event, header_or(*a.record, kApplication, kDefaultApplication),
                           // A forwarded record names where it was produced.
                           "kafka:" + header_or(*a.record, kSource, source(*a.record)), now,
                           std::nullopt));
            out.push_back(std::move(built.bytes));
          }
          return out;
        },
        [&](std::span<const ledger::ByteView> views) {
          return log_.append_consumed(p, views, side, consumed);
        }));
  }
  chained_.fetch_add(accepted.size(), std::memory_order_relaxed);
  forwarded_.fetch_add(forwarded, std::memory_order_relaxed);
  rejected_.fetch_add(rejected, std::memory_order_relaxed);
  return boost::outcome_v2::success();
}

}  // namespace sechex::api
