#include "ledger/kafka_ingest.h"

#include <librdkafka/rdkafka.h>

#include <map>

namespace sechex::ledger {
namespace {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
using ConsumerPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* m) const {
    rd_kafka_consumer_group_metadata_destroy(m);
  }
};

using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t,
                                      decltype(&rd_kafka_topic_partition_list_destroy)>;

}  // namespace

struct KafkaIngest::Impl {
  KafkaLog& log;
  KafkaIngestOptions opts;
  Handler handler;
  ConsumerPtr consumer;
  std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter> group;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::atomic<std::uint64_t> records{0}, batches{0}, failed{0};

  Impl(KafkaLog& l, KafkaIngestOptions o, Handler h)
      : log(l), opts(std::move(o)), handler(std::move(h)) {}

  void note(const std::string& line) const {
    if (opts.log) opts.log("kafka ingest: " + line);
  }

  // The group's committed offsets for `parts` (read_committed: only stable ones), as a list to
  // assign or seek with; a partition without one starts at the beginning.
  Result<PartitionList> committed(const std::vector<Partition>& parts) const {
    PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())),
                       &rd_kafka_topic_partition_list_destroy);
    for (const auto p : parts) {
      rd_kafka_topic_partition_list_add(list.get(), opts.topic.c_str(),
                                        static_cast<std::int32_t>(p.value));
    }
    const auto err = rd_kafka_committed(consumer.get(), list.get(), 30'000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      note(std::string("reading committed offsets: ") + rd_kafka_err2str(err));
      return Errc::io_error;
    }
    for (int i = 0; i < list->cnt; ++i) {
      auto& e = list->elems[i];
      if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        note(std::string("committed offset of partition ") + std::to_string(e.partition) + ": " +
             rd_kafka_err2str(e.err));
        return Errc::io_error;
      }
      if (e.offset < 0) e.offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    return list;
  }

  bool rewind(Partition p) {
    auto list = committed({p});
    if (!list) return false;
    rd_kafka_error_t* e = rd_kafka_seek_partitions(consumer.get(), list.value().get(), 30'000);
    if (e != nullptr) {
      note(std::string("rewinding partition ") + std::to_string(p.value) + ": " +
           rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      return false;
    }
    return true;
  }

  bool wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, d, [&] { return stopping; });
  }

  bool stopped() {
    std::lock_guard lock(mu);
    return stopping;
  }

  void run() {
    std::vector<Partition> to_rewind;
    while (!stopped()) {
      for (const auto p : to_rewind) {
        // Until the rewind succeeds nothing of the partition may be processed: records after
        // an uncertain transaction could otherwise be chained twice.
        while (!rewind(p)) {
          if (wait(opts.retry_pause)) return;
        }
      }
      to_rewind.clear();
      std::map<std::uint32_t, std::vector<IngestRecord>> batch;
      std::size_t n = 0;
      const auto until = std::chrono::steady_clock::now() + opts.poll;
      while (n < opts.max_batch) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        rd_kafka_message_t* m = rd_kafka_consumer_poll(
            consumer.get(), static_cast<int>(std::max<std::int64_t>(n == 0 ? left.count() : 0, 0)));
        if (m == nullptr) {
          if (n > 0 || std::chrono::steady_clock::now() >= until) break;
          continue;
        }
        std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> guard(
            m, &rd_kafka_message_destroy);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          note(std::string("consuming: ") + rd_kafka_message_errstr(m));
          continue;
        }
        IngestRecord r;
        r.offset = m->offset;
        if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
        if (m->payload != nullptr) r.value.assign(static_cast<const char*>(m->payload), m->len);
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          const char* name = nullptr;
          const void* v = nullptr;
          size_t len = 0;
          for (size_t i = 0;
               rd_kafka_header_get_all(hdrs, i, &name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR;
               ++i) {
            r.headers.emplace_back(
                name, v != nullptr ? std::string(static_cast<const char*>(v), len) : std::string());
          }
        }
        batch[static_cast<std::uint32_t>(m->partition)].push_back(std::move(r));
        ++n;
      }
      for (auto& [p, recs] : batch) {
        ConsumedOffsets consumed{group.get(), opts.topic, static_cast<std::int32_t>(p),
                                 recs.back().offset + 1};
        auto r = handler(Partition{p}, recs, consumed);
        if (r) {
          records.fetch_add(recs.size(), std::memory_order_relaxed);
          batches.fetch_add(1, std::memory_order_relaxed);
        } else {
          failed.fetch_add(1, std::memory_order_relaxed);
          note("partition " + std::to_string(p) + ": batch at offset " +
               std::to_string(recs.front().offset) + " failed (" + r.error().message() +
               "); rewinding to the committed offset");
          to_rewind.push_back(Partition{p});
        }
      }
      if (!to_rewind.empty() && wait(opts.retry_pause)) return;
    }
  }
};

KafkaIngest::KafkaIngest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaIngest::~KafkaIngest() { stop(); }

void KafkaIngest::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

KafkaIngestStats KafkaIngest::stats() const {
  return {impl_->records.load(std::memory_order_relaxed),
          impl_->batches.load(std::memory_order_relaxed),
          impl_->failed.load(std::memory_order_relaxed)};
}

Result<std::unique_ptr<KafkaIngest>> KafkaIngest::start(KafkaLog& log, KafkaIngestOptions options,
                                                        Handler handler) {
  if (options.topic.empty() || options.group_id.empty() || !handler || options.max_batch == 0) {
    return Errc::invalid_argument;
  }
  auto impl = std::make_unique<Impl>(log, std::move(options), std::move(handler));
  const auto& o = impl->opts;
  SECHEX_TRY(auto* conf,
             log.client_conf("sechex-ledger-ingest", {
                                                         {"group.id", o.group_id},
                                                         {"isolation.level", "read_committed"},
                                                         {"enable.auto.commit", "false"},
                                                         {"enable.auto.offset.store", "false"},
                                                         {"enable.partition.eof", "false"},
                                                         {"auto.offset.reset", "earliest"},
                                                         {"fetch.wait.max.ms", "20"},
                                                     }));
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    impl->note(std::string("creating the consumer: ") + err);
    return Errc::invalid_argument;
  }
  impl->consumer.reset(rk);
  rd_kafka_poll_set_consumer(rk);
  impl->group.reset(rd_kafka_consumer_group_metadata(rk));
  if (!impl->opts.partitions.empty()) {
    SECHEX_TRY(auto list, impl->committed(impl->opts.partitions));
    const auto aerr = rd_kafka_assign(rk, list.get());
    if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
      impl->note(std::string("assigning: ") + rd_kafka_err2str(aerr));
      return Errc::io_error;
    }
  }
  auto* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<KafkaIngest>(new KafkaIngest(std::move(impl)));
}

}  // namespace sechex::ledger
