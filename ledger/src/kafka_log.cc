#include "ledger/kafka_log.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "endian.h"
#include "ledger/checkpoint.h"
#include "ledger/crypto.h"
#include "ledger/merkle.h"
#include "schemas/events.h"

namespace sechex::ledger {
namespace {

using Millis = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr std::uint32_t kMaxPartitions = 4096;
constexpr std::string_view kMetaFormat = "sechex-ledger/v1";
constexpr std::string_view kMetaKey = "ledger";
// The sparse seq -> offset index keeps about one entry per this many seqs.
constexpr std::uint64_t kIndexStride = 256;
// Tail recovery reads this many offsets before the end first, then 16 times more each round.
constexpr std::int64_t kTailWindow = 32;
// A reader this many seqs or fewer behind a read's `from` reads on to it rather than seeking.
constexpr std::uint64_t kSkipRatherThanSeek = 4096;
// A read waiting for records it knows are there polls in slices this long: markers and
// aborted records move the consumer's position without a message that would end the poll.
constexpr int kReadSliceMs = 10;

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const {
    // Readers never join a group: nothing to leave, so skip the consumer close handshake.
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }
};
using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

int to_ms(Millis d) { return static_cast<int>(std::clamp<std::int64_t>(d.count(), 0, INT32_MAX)); }

int remaining_ms(SteadyClock::time_point deadline) {
  return to_ms(std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()));
}

std::string be32_key(std::uint32_t v) {
  std::string k;
  detail::put_be32(k, v);
  return k;
}

// be32(partition) || be64(n): checkpoints are keyed by partition and size, so the compacted topic
// keeps every one (proofs need old ones; the first ledgers keyed them by partition only, keeping
// the newest), and stub chunks by partition and chunk number.
std::string partition_key(std::uint32_t p, std::uint64_t n) {
  std::string k = be32_key(p);
  detail::put_be64(k, n);
  return k;
}

// Nodes at and above this level are computed once and cached; below it a node is hashed from
// its at most 2^kCachedTreeLevel records, read in one range.
constexpr unsigned kCachedTreeLevel = 8;

// Retention: stubs (record.h's pruned form, kPrunedRecordSize bytes each) live in <topic>.stubs
// in chunks of kStubChunk records, chunk k holding seqs [k * kStubChunk, ...) of one partition,
// keyed be32(partition) || be64(k) (a chunk is rewritten whole when a later cut extends it);
// the checkpoints topic keeps each partition's cut under "cut" || be32(partition):
// be64(below) || be64(before micros) || be64(offset in <topic>.stubs of chunk k), k = 0, 1, ...
constexpr std::uint64_t kStubChunk = 4096;
constexpr std::string_view kCutKeyPrefix = "cut";
constexpr std::size_t kCutKeySize = 7;
constexpr std::size_t kStubCacheChunks = 8;

std::string cut_key(std::uint32_t p) {
  std::string k(kCutKeyPrefix);
  detail::put_be32(k, p);
  return k;
}

// A checkpoint of the checkpoints topic (key be32(partition), or be32(partition) || be64(size)),
// or nullopt for anything else there: cut records, and notes that do not parse (verify reports
// a malformed latest checkpoint).
struct CheckpointMessage {
  std::uint32_t partition = 0;
  Checkpoint checkpoint;
  std::string note;
};
std::optional<CheckpointMessage> checkpoint_message_of(const rd_kafka_message_t& m) {
  if ((m.key_len != 4 && m.key_len != 12) || m.payload == nullptr) return std::nullopt;
  std::string note(static_cast<const char*>(m.payload), m.len);
  auto cp = parse_checkpoint_body(note);
  if (!cp) return std::nullopt;
  return CheckpointMessage{detail::get_be32(m.key), std::move(*cp), std::move(note)};
}

std::string tree_bytes(const merkle::CompactRange& tree) {
  std::string out;
  for (const auto& h : tree.nodes()) out.append(reinterpret_cast<const char*>(h.data()), h.size());
  return out;
}

// An error from librdkafka's rd_kafka_error_t API, taken apart (and destroyed).
struct KafkaError {
  rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR_NO_ERROR;
  bool fatal = false;
  bool retriable = false;
  bool abortable = false;
  std::string text;
  explicit operator bool() const { return code != RD_KAFKA_RESP_ERR_NO_ERROR; }
};

KafkaError take(rd_kafka_t* rk, rd_kafka_error_t* e) {
  KafkaError out;
  if (e == nullptr) return out;
  out.code = rd_kafka_error_code(e);
  out.fatal = rd_kafka_error_is_fatal(e) != 0;
  out.retriable = rd_kafka_error_is_retriable(e) != 0;
  out.abortable = rd_kafka_error_txn_requires_abort(e) != 0;
  out.text = rd_kafka_error_string(e);
  rd_kafka_error_destroy(e);
  if (out.fatal && rk != nullptr) {
    // The error object may carry __FATAL; the underlying cause tells fencing apart.
    char buf[512];
    const auto underlying = rd_kafka_fatal_error(rk, buf, sizeof(buf));
    if (underlying != RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.code = underlying;
      out.text = buf;
    }
  }
  return out;
}

KafkaError from_code(rd_kafka_t* rk, rd_kafka_resp_err_t code) {
  KafkaError out;
  out.code = code;
  out.text = rd_kafka_err2str(code);
  if (code == RD_KAFKA_RESP_ERR__FATAL && rk != nullptr) {
    char buf[512];
    out.fatal = true;
    const auto underlying = rd_kafka_fatal_error(rk, buf, sizeof(buf));
    if (underlying != RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.code = underlying;
      out.text = buf;
    }
  }
  return out;
}

// Errors a reader waits out (librdkafka reconnects and retries by itself).
bool transient_consumer_error(rd_kafka_resp_err_t e) {
  switch (e) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
      return true;
    default:
      return false;
  }
}

// The broker asked is not (or no longer) the partition's leader.
bool leader_moved(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
         e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
         e == RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH || e == RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH;
}

// The consumer's position in topic/partition (past the last record or marker it delivered),
// or RD_KAFKA_OFFSET_INVALID (after a seek, before anything was delivered).
std::int64_t consumer_position(rd_kafka_t* rk, const std::string& topic, std::int32_t partition) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
  std::int64_t offset = RD_KAFKA_OFFSET_INVALID;
  if (rd_kafka_position(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      list->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    offset = list->elems[0].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  return offset;
}

// A ledger record read back from Kafka.
struct Decoded {
  Record record;
  std::int64_t offset = 0;
};

}  // namespace

bool kafka_error_is_fencing(int code) {
  switch (static_cast<rd_kafka_resp_err_t>(code)) {
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
      return true;
    default:
      return false;
  }
}

Errc errc_from_kafka(int code) {
  const auto e = static_cast<rd_kafka_resp_err_t>(code);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return Errc::ok;
  if (kafka_error_is_fencing(code)) return Errc::writer_failed;
  switch (e) {
    case RD_KAFKA_RESP_ERR__DESTROY:
      return Errc::closed;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return Errc::store_missing;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT:
      return Errc::invalid_argument;
    case RD_KAFKA_RESP_ERR__BAD_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
      return Errc::corruption;
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
      return Errc::unsupported_version;
    default:
      return Errc::io_error;
  }
}

struct KafkaLog::Impl {
  KafkaLogOptions opts;
  std::string ledger_id;
  std::uint32_t partitions = 0;
  std::string meta_topic, cp_topic, keys_topic, stubs_topic;

  // One chaining writer per partition. `mu` serialises append and checkpoint on it.
  struct Writer {
    std::mutex mu;
    KafkaPtr producer;
    bool ready = false;   // producer initialised and tail recovered
    bool fenced = false;  // for good
    Seq next;
    Hash head{};
    std::uint64_t checkpoint_size = 0;
    std::int64_t checkpoint_micros = 0;
    merkle::CompactRange tree;  // of records 0..next-1, moved with the head
    // Delivery reports of the current transaction: offset of message i, or -1.
    std::vector<std::int64_t> delivered;
    rd_kafka_resp_err_t delivery_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  };
  std::vector<std::unique_ptr<Writer>> writers;

  // Heads of the partitions this process writes, for head() without waiting for `Writer::mu`.
  mutable std::mutex state_mu;
  std::vector<std::optional<Head>> published;
  std::vector<bool> fenced_flags;

  mutable std::mutex index_mu;
  mutable std::vector<std::map<std::uint64_t, std::int64_t>> index;

  // One long-lived reader per partition for read_range() and wait_for(); `mu` serialises the
  // calls on one partition (different partitions read in parallel).
  struct Reader {
    std::mutex mu;
    KafkaPtr consumer;  // null until the first read, and after a fatal error
    bool paused = false;
    bool positioned = false;  // else the next read seeks
    // Every record the consumer has still to deliver has seq >= next; offsets below `offset`
    // (records, markers, aborted records) are behind it.
    std::uint64_t next = 0;
    std::int64_t offset = 0;
    // The highest last stable offset seen; it never moves back, so below it there is
    // something (records or markers) still to deliver.
    std::int64_t end = -1;
    // Polled at or past a read's `to`: the next read delivers it first.
    std::optional<Decoded> pending;
  };
  std::vector<std::unique_ptr<Reader>> readers;
  // Asks for last stable offsets. It never fetches: a query on a reader's own connection would
  // wait behind the reader's long-polling fetch. Shared: a query in flight keeps the client it
  // started with while another thread replaces it (renew_offsets_client).
  mutable std::mutex offsets_mu;
  mutable std::shared_ptr<rd_kafka_t> offsets_client;
  mutable SteadyClock::time_point offsets_client_born{};

  mutable std::mutex cp_mu;
  mutable std::int64_t cp_next_offset = RD_KAFKA_OFFSET_BEGINNING;
  mutable SteadyClock::time_point cp_refreshed{};  // the last refresh that reached the end
  // The newest checkpoint of each partition: its size, signed note and the compact range of
  // the tree at that size (the "tree" header; empty for checkpoints written before the tree).
  struct LatestCheckpoint {
    std::uint64_t size = 0;
    std::string note;
    std::string tree;
  };
  mutable std::map<std::uint32_t, LatestCheckpoint> cp_latest;
  // Every checkpoint seen, per partition: (size, offset in the checkpoints topic), sorted by
  // size (a partition's writer writes them in order). 16 bytes each, so that checkpoint_at()
  // reads one message instead of scanning the topic.
  mutable std::vector<std::vector<std::pair<std::uint64_t, std::int64_t>>> cp_offsets;
  void cp_seen(std::uint32_t p, std::uint64_t size, std::int64_t offset, std::string note,
               std::string tree) const;  // with cp_mu held
  // Retention: each partition's cut and where its stub chunks are, from the newest "cut" record
  // of the checkpoints topic; refreshed by refresh_checkpoints(). Its own mutex (taken after
  // cp_mu, never held across I/O) so that reads checking the cut never wait for a refresh.
  mutable std::mutex cut_mu;
  struct CutState {
    RetentionCut cut;
    std::vector<std::int64_t> chunk_offsets;  // offset in stubs_topic of chunk k
  };
  mutable std::vector<CutState> cuts;
  std::mutex prune_mu;             // one prune at a time
  bool stubs_topic_ready = false;  // with prune_mu
  // Stub chunks read lately, by (partition, chunk): proofs and verify walk them in order.
  mutable std::mutex stub_mu;
  mutable std::map<std::pair<std::uint32_t, std::uint64_t>, std::shared_ptr<const std::string>>
      stub_cache;
  CutState cut_state(Partition p) const;
  RetentionCut cut_of(Partition p) const;  // without the chunk offsets: for every read
  void cut_seen(std::uint32_t p, std::string_view value) const;
  // The cut, refreshed from Kafka now.
  Result<RetentionCut> current_cut(Partition p) const;
  Result<std::shared_ptr<const std::string>> stub_chunk(Partition p, std::uint64_t chunk) const;
  // The kept views (hash, digest, leaf; no event) of pruned records [begin, min(end, cut)), one
  // chunk read per 4,096; stub() of one record.
  Result<std::vector<RecordView>> stubs(Partition p, std::uint64_t begin, std::uint64_t end) const;
  Result<RecordView> stub(Partition p, Seq s) const;
  // Leaf hashes of records [begin, end): stubs below the cut, records above it.
  Result<std::vector<Hash>> leaves(Partition p, std::uint64_t begin, std::uint64_t end) const;
  // DeleteRecords of every Kafka record of `p` below record `below`; then forgets the offsets
  // of deleted records (index, readers).
  Result<void> delete_below(Partition p, Seq below);

  // Merkle nodes of level >= kCachedTreeLevel computed by tree_node(), by (partition, level,
  // index). A complete subtree never changes, so entries never go stale.
  mutable std::mutex tree_mu;
  mutable std::map<std::tuple<std::uint32_t, unsigned, std::uint64_t>, Hash> tree_cache;
  Result<Hash> tree_node(Partition p, unsigned level, std::uint64_t node) const;
  // The compact range a checkpoint carries, when it has one whose root is the signed one;
  // else the empty range (the tree is then rebuilt from the records).
  merkle::CompactRange tree_at_checkpoint(Partition p, const LatestCheckpoint& cp) const;
  // The tree over records [0, next) of `p`, from `from` (the compact range of the first
  // from.size() records) on: reads the records in between.
  Result<merkle::CompactRange> grow_tree(Partition p, merkle::CompactRange from,
                                         std::uint64_t next) const;

  mutable std::mutex err_mu;
  mutable std::string last_error;

  std::atomic<std::uint64_t> writer_generation{0};
  // Set by interrupt(): blocking reads give up (Errc::closed) at their next slice.
  std::atomic<bool> interrupted{false};
  std::error_code closed(const std::string& what) const {
    return fail(what + ": interrupted (shutting down)", Errc::closed);
  }
  std::atomic<std::uint64_t> stat_appends{0}, stat_events{0}, stat_groups{0}, stat_checkpoints{0};

  void note(const std::string& what) const {
    {
      std::lock_guard lock(err_mu);
      last_error = what;
    }
    if (opts.log) opts.log(what);
  }
  std::error_code fail(const std::string& what, const KafkaError& e) const {
    note("kafka log: " + what + ": " + e.text + " (" + rd_kafka_err2name(e.code) + ")");
    return errc_from_kafka(e.code);
  }
  std::error_code fail(const std::string& what, std::error_code code) const {
    note("kafka log: " + what);
    return code;
  }
  std::error_code fail(const std::string& what, Errc code) const {
    return fail(what, make_error_code(code));
  }

  using Settings = std::vector<std::pair<std::string, std::string>>;
  // The settings every client shares, then `extra`; Errc::invalid_argument (noted) if librdkafka
  // refuses one.
  Result<rd_kafka_conf_t*> base_conf(const std::string& client_id,
                                     const Settings& extra = {}) const;
  // rd_kafka_new, which takes `conf` over on success and leaves it to us on failure.
  Result<KafkaPtr> new_client(rd_kafka_type_t type, rd_kafka_conf_t* conf) const;
  Result<KafkaPtr> new_consumer() const;
  Result<KafkaPtr> new_reader() const;
  Result<KafkaPtr> new_plain_producer() const;
  Result<void> ensure_topics(rd_kafka_t* admin);
  struct TopicSpec {
    std::string name;
    int partitions;
    std::vector<std::pair<const char*, const char*>> config;
  };
  // CreateTopics; topics that already exist are fine.
  Result<void> create_topics(rd_kafka_t* admin, const std::vector<TopicSpec>& specs) const;
  Result<int> topic_partitions(rd_kafka_t* rk, const std::string& topic) const;
  Result<void> load_meta(rd_kafka_t* admin);
  Result<std::optional<std::string>> meta_first(rd_kafka_t* admin, std::string_view key,
                                                const std::string* value_if_absent);

  using OnMessage = std::function<Result<bool>(const rd_kafka_message_t&)>;
  // Reads committed messages of topic/partition from `offset`; calls `on` for each until it
  // returns false or the end (EOF: the last stable offset) is reached; fails when nothing
  // arrives for request_timeout or at `deadline`. With `stop_at_eof`, it asks at each EOF
  // whether to stop; if not, it waits for more until `deadline` (then succeeds).
  Result<void> scan(const std::string& topic, std::int32_t partition, std::int64_t offset,
                    const OnMessage& on, SteadyClock::time_point deadline,
                    const std::function<bool()>& stop_at_eof = {}) const;
  Result<Decoded> decode(const rd_kafka_message_t& m, Partition p) const;
  Result<Head> recover_tail(Partition p) const;
  Result<void> refresh_checkpoints() const;
  // The same, unless a refresh reached the end within kCheckpointsFresh: the readers of
  // checkpoints (proofs, the checkpoints list) accept what was seen that recently instead of
  // scanning the topic with a new consumer each time (~25 ms a call, half a proof's time). A
  // proof against a checkpoint a second old is as valid, and this node's own checkpoints are
  // seen as they are written.
  static constexpr std::chrono::milliseconds kCheckpointsFresh{1000};
  Result<void> refresh_checkpoints_if_stale() const;

  void index_add(Partition p, std::uint64_t seq, std::int64_t offset) const;
  struct IndexEntry {
    std::uint64_t seq = 0;
    std::int64_t offset = RD_KAFKA_OFFSET_BEGINNING;
  };
  // The entry with the highest seq <= `seq`; {0, beginning} when there is none.
  IndexEntry index_floor(Partition p, std::uint64_t seq) const;

  struct Watermarks {
    std::int64_t low = 0;
    std::int64_t stable = 0;  // the last stable offset: read_committed readers stop there
  };
  Result<Watermarks> watermarks(Partition p) const;
  // The offsets client, created on first use; `stale` (the client that just answered "not the
  // leader") is replaced by a fresh one, at most once a second, because librdkafka can keep
  // asking a broker that lost the partition's leadership for as long as its cached metadata
  // says so (seen for 30 s after a broker restart).
  Result<std::shared_ptr<rd_kafka_t>> offsets_client_for(const rd_kafka_t* stale) const;
  // Puts partition p's reader where a read from `from` starts: creates, resumes, seeks. True
  // when it asked the broker for the partition's watermarks (so `r.end` is fresh).
  Result<bool> reader_start(Reader& r, Partition p, Seq from) const;
  void reader_drop(Reader& r) const;
  void reader_pause(Reader& r, Partition p) const;
  // read_range() (no `wait_until`) and wait_for() (until `wait_until`).
  Result<std::vector<Record>> read(Partition p, Seq from, Seq to, std::size_t max,
                                   std::optional<SteadyClock::time_point> wait_until) const;

  Result<void> ensure_writer(Writer& w, Partition p);
  void drop_writer(Writer& w, Partition p);
  void mark_fenced(Writer& w, Partition p, const KafkaError& e);
  void publish(Partition p, const Writer& w);

  struct Message {
    std::string topic;
    std::int32_t partition;
    std::string key;
    std::string value;
    std::optional<std::uint64_t> seq;
    std::optional<Hash> hash;
    bool tombstone = false;  // null value (compaction deletes the key)
    std::vector<std::pair<std::string, std::string>> headers;
  };
  // Chains `events` after the writer's head into `msgs` (one record message each); the result
  // has first = w.next and last = first + n - 1 (first - 1 when there are none).
  AppendResult chain(const Writer& w, Partition p, std::span<const ByteView> events,
                     std::vector<Message>& msgs) const;
  enum class Outcome { committed, aborted, fenced, unknown };
  // `consumed`: input offsets committed with the transaction (exactly-once consumption).
  Outcome run_transaction(Writer& w, Partition p, const std::vector<Message>& msgs,
                          const ConsumedOffsets* consumed, std::error_code& err);
  // Writes `msgs` (records from w.next on, then an optional checkpoint) in one transaction;
  // on success moves the writer's head to (new_next, new_head).
  Result<void> commit_batch(Writer& w, Partition p, const std::vector<Message>& msgs, Seq new_next,
                            const Hash& new_head, merkle::CompactRange new_tree,
                            bool has_checkpoint, const ConsumedOffsets* consumed = nullptr);
  // The checkpoint message of the writer's state (next, head, tree): the signed note, keyed
  // by be32(partition) || be64(size), with the compact range in its "tree" header.
  Result<Message> checkpoint_message(Partition p, Seq next, const Hash& head,
                                     const merkle::CompactRange& tree) const;
};

namespace {

// `tree` with the leaves of the record messages among `msgs` (what a commit of them makes it).
merkle::CompactRange grown(merkle::CompactRange tree,
                           const std::vector<KafkaLog::Impl::Message>& msgs) {
  for (const auto& m : msgs) {
    if (m.seq) tree.push(merkle::leaf_hash(as_bytes(m.value)));
  }
  return tree;
}

bool envelopes_ok(std::span<const ByteView> events) {
  return std::all_of(events.begin(), events.end(), [](const ByteView& e) {
    return schemas::check_envelope(e.data(), e.size()) == schemas::CheckResult::ok;
  });
}

extern "C" void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* w = static_cast<KafkaLog::Impl::Writer*>(opaque);
  if (w == nullptr) return;
  const auto i = reinterpret_cast<std::uintptr_t>(m->_private);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    w->delivery_error = m->err;
    return;
  }
  if (i < w->delivered.size()) w->delivered[i] = m->offset;
}

}  // namespace

Result<rd_kafka_conf_t*> KafkaLog::Impl::base_conf(const std::string& client_id,
                                                   const Settings& extra) const {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      note("kafka log: config " + k + "=" + v + ": " + err);
      return false;
    }
    return true;
  };
  bool ok = set("bootstrap.servers", opts.brokers) && set("client.id", client_id) &&
            set("reconnect.backoff.ms", "50") && set("reconnect.backoff.max.ms", "1000") &&
            set("socket.timeout.ms", std::to_string(std::max(10'000, to_ms(opts.request_timeout))));
  for (const auto& [k, v] : extra) ok = ok && set(k, v);
  for (const auto& [k, v] : opts.client_config) ok = ok && set(k, v);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return Errc::invalid_argument;
  }
  return conf;
}

Result<KafkaPtr> KafkaLog::Impl::new_client(rd_kafka_type_t type, rd_kafka_conf_t* conf) const {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("creating a Kafka client: ") + err, Errc::invalid_argument);
  }
  return KafkaPtr(rk);
}

Result<KafkaPtr> KafkaLog::Impl::new_consumer() const {
  SECHEX_TRY(auto* conf, base_conf("sechex-ledger-reader",
                                   {
                                       // Required by assign(); no subscription, no commits.
                                       {"group.id", "sechex-ledger-reader"},
                                       {"isolation.level", "read_committed"},
                                       {"enable.partition.eof", "true"},
                                       {"enable.auto.commit", "false"},
                                       {"enable.auto.offset.store", "false"},
                                       {"auto.offset.reset", "earliest"},
                                       {"fetch.wait.max.ms", "20"},
                                   }));
  SECHEX_TRY(auto consumer, new_client(RD_KAFKA_CONSUMER, conf));
  rd_kafka_poll_set_consumer(consumer.get());
  return consumer;
}

// The same settings as a scan's consumer. Its fetch.wait.max.ms (20 ms) matters more here: a
// long poll returns as soon as records commit, and it bounds how long a seek waits behind one
// at the end (one fetch per connection at a time). Idle readers are paused, so it costs
// fetches only while waiting.
Result<KafkaPtr> KafkaLog::Impl::new_reader() const { return new_consumer(); }

Result<KafkaPtr> KafkaLog::Impl::new_plain_producer() const {
  SECHEX_TRY(auto* conf,
             base_conf("sechex-ledger-admin", {{"enable.idempotence", "true"}, {"acks", "all"}}));
  return new_client(RD_KAFKA_PRODUCER, conf);
}

Result<int> KafkaLog::Impl::topic_partitions(rd_kafka_t* rk, const std::string& topic) const {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rkt == nullptr) return fail("topic handle for " + topic, Errc::invalid_argument);
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(rk, 0, rkt, &md, to_ms(opts.request_timeout));
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail("metadata for " + topic, from_code(rk, err));
  }
  int count = -1;
  rd_kafka_resp_err_t terr = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic) {
      terr = md->topics[i].err;
      count = md->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return 0;  // missing
  if (terr != RD_KAFKA_RESP_ERR_NO_ERROR) return fail("metadata for " + topic, from_code(rk, terr));
  return count;
}

Result<void> KafkaLog::Impl::create_topics(rd_kafka_t* admin,
                                           const std::vector<TopicSpec>& specs) const {
  std::vector<rd_kafka_NewTopic_t*> nts;
  char err[512];
  auto destroy_all = [&] {
    for (auto* nt : nts) rd_kafka_NewTopic_destroy(nt);
  };
  for (const auto& s : specs) {
    auto* nt = rd_kafka_NewTopic_new(s.name.c_str(), s.partitions, opts.replication_factor, err,
                                     sizeof(err));
    if (nt == nullptr) {
      destroy_all();
      return fail("new topic " + s.name + ": " + err, Errc::invalid_argument);
    }
    nts.push_back(nt);
    for (const auto& [k, v] : s.config) rd_kafka_NewTopic_set_config(nt, k, v);
  }
  rd_kafka_queue_t* q = rd_kafka_queue_new(admin);
  rd_kafka_AdminOptions_t* ao = rd_kafka_AdminOptions_new(admin, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(ao, to_ms(opts.request_timeout), err, sizeof(err));
  rd_kafka_AdminOptions_set_request_timeout(ao, to_ms(opts.request_timeout), err, sizeof(err));
  rd_kafka_CreateTopics(admin, nts.data(), nts.size(), ao, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, to_ms(opts.request_timeout) + 5000);
  std::error_code result;
  if (ev == nullptr) {
    result = fail("creating topics timed out", Errc::io_error);
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    KafkaError e;
    e.code = rd_kafka_event_error(ev);
    e.text = rd_kafka_event_error_string(ev);
    result = fail("creating topics", e);
  } else {
    size_t n = 0;
    const auto** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n && !result; ++i) {
      const auto code = rd_kafka_topic_result_error(res[i]);
      if (code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        continue;
      }
      KafkaError e;
      e.code = code;
      const char* msg = rd_kafka_topic_result_error_string(res[i]);
      e.text = msg != nullptr ? msg : rd_kafka_err2str(code);
      result = fail(std::string("creating topic ") + rd_kafka_topic_result_name(res[i]), e);
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_queue_destroy(q);
  destroy_all();
  if (result) return result;
  return boost::outcome_v2::success();
}

Result<void> KafkaLog::Impl::ensure_topics(rd_kafka_t* admin) {
  SECHEX_TRY(const int existing, topic_partitions(admin, opts.topic));
  SECHEX_TRY(const int meta_existing, topic_partitions(admin, meta_topic));
  SECHEX_TRY(const int cp_existing, topic_partitions(admin, cp_topic));
  SECHEX_TRY(const int keys_existing, topic_partitions(admin, keys_topic));
  if (existing > 0 && meta_existing > 0 && cp_existing > 0 && keys_existing > 0) {
    partitions = static_cast<std::uint32_t>(existing);
    return boost::outcome_v2::success();
  }
  if (!opts.create_if_missing || opts.read_only) {
    return fail("topic " +
                    (existing == 0        ? opts.topic
                     : meta_existing == 0 ? meta_topic
                     : cp_existing == 0   ? cp_topic
                                          : keys_topic) +
                    " does not exist",
                Errc::store_missing);
  }
  if (existing == 0 && (opts.partitions == 0 || opts.partitions > kMaxPartitions)) {
    return fail("bad partition count", Errc::invalid_argument);
  }
  std::vector<TopicSpec> specs;
  if (existing == 0) {
    specs.push_back({opts.topic,
                     static_cast<int>(opts.partitions),
                     {{"cleanup.policy", "delete"}, {"retention.ms", "-1"}}});
  }
  if (meta_existing == 0) {
    specs.push_back({meta_topic, 1, {{"cleanup.policy", "delete"}, {"retention.ms", "-1"}}});
  }
  if (cp_existing == 0) specs.push_back({cp_topic, 1, {{"cleanup.policy", "compact"}}});
  if (keys_existing == 0) {
    // Compaction is what finally removes a shredded key's old value from the broker's disks:
    // bound how long a tombstoned key may linger (1 day) and roll segments hourly so the
    // cleaner can reach it.
    specs.push_back({keys_topic,
                     1,
                     {{"cleanup.policy", "compact"},
                      {"min.compaction.lag.ms", "0"},
                      {"max.compaction.lag.ms", "86400000"},
                      {"segment.ms", "3600000"},
                      {"delete.retention.ms", "86400000"}}});
  }

  SECHEX_TRYV(create_topics(admin, specs));

  // Metadata trails topic creation a little: wait until every topic is visible.
  const auto deadline = SteadyClock::now() + opts.request_timeout;
  for (;;) {
    SECHEX_TRY(const int n, topic_partitions(admin, opts.topic));
    SECHEX_TRY(const int m, topic_partitions(admin, meta_topic));
    SECHEX_TRY(const int c, topic_partitions(admin, cp_topic));
    SECHEX_TRY(const int k, topic_partitions(admin, keys_topic));
    if (n > 0 && m > 0 && c > 0 && k > 0) {
      partitions = static_cast<std::uint32_t>(n);
      return boost::outcome_v2::success();
    }
    if (SteadyClock::now() > deadline) {
      return fail("created topics did not appear in metadata", Errc::io_error);
    }
    std::this_thread::sleep_for(Millis(100));
  }
}

Result<void> KafkaLog::Impl::scan(const std::string& topic, std::int32_t partition,
                                  std::int64_t offset, const OnMessage& on,
                                  SteadyClock::time_point deadline,
                                  const std::function<bool()>& stop_at_eof) const {
  const bool wait_past_eof = static_cast<bool>(stop_at_eof);
  SECHEX_TRY(auto consumer, new_consumer());
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  // librdkafka resolves the logical "beginning" with an offset lookup that costs a new client
  // about half a second; offset 0 is the beginning unless records were deleted, and then
  // auto.offset.reset (earliest) takes the slow way.
  if (offset == RD_KAFKA_OFFSET_BEGINNING) offset = 0;
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
  const auto aerr = rd_kafka_assign(consumer.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR) return fail("assign " + topic, from_code(nullptr, aerr));

  auto idle_deadline = SteadyClock::now() + opts.request_timeout;
  for (;;) {
    if (interrupted.load(std::memory_order_relaxed)) return closed("reading " + topic);
    const auto until = wait_past_eof ? deadline : std::min(deadline, idle_deadline);
    const int wait = remaining_ms(until);
    if (wait <= 0) {
      if (wait_past_eof) return boost::outcome_v2::success();
      return fail("reading " + topic + " timed out", Errc::io_error);
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), std::min(wait, 200));
    if (m == nullptr) continue;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> guard(
        m, rd_kafka_message_destroy);
    idle_deadline = SteadyClock::now() + opts.request_timeout;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (!wait_past_eof || stop_at_eof()) return boost::outcome_v2::success();
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      KafkaError e = from_code(nullptr, m->err);
      e.text = rd_kafka_message_errstr(m);
      if (transient_consumer_error(m->err)) {
        note("kafka log: reading " + topic + " (retrying): " + e.text);
        continue;
      }
      return fail("reading " + topic, e);
    }
    if (m->rkt == nullptr || m->partition != partition) continue;
    SECHEX_TRY(const bool more, on(*m));
    if (!more) return boost::outcome_v2::success();
  }
}

void KafkaLog::Impl::reader_drop(Reader& r) const {
  r.consumer.reset();
  r.paused = false;
  r.positioned = false;
  r.pending.reset();
}

void KafkaLog::Impl::reader_pause(Reader& r, Partition p) const {
  if (r.paused || !r.consumer) return;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, opts.topic.c_str(), static_cast<std::int32_t>(p.value));
  // Not fatal when it fails: the reader just keeps fetching.
  r.paused = rd_kafka_pause_partitions(r.consumer.get(), list) == RD_KAFKA_RESP_ERR_NO_ERROR &&
             list->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
  rd_kafka_topic_partition_list_destroy(list);
}

Result<bool> KafkaLog::Impl::reader_start(Reader& r, Partition p, Seq from) const {
  const auto kp = static_cast<std::int32_t>(p.value);
  const auto where = opts.topic + "[" + std::to_string(p.value) + "]";
  auto with_list = [&](std::int64_t offset, auto&& fn) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, opts.topic.c_str(), kp)->offset = offset;
    auto result = fn(list);
    rd_kafka_topic_partition_list_destroy(list);
    return result;
  };
  // Waits until the fetcher moved, so nothing fetched before is delivered after it. False (and
  // the reader dropped: a fresh consumer assigned at the offset leaves no doubt) on failure.
  auto seek = [&](std::int64_t offset) {
    const auto e = with_list(offset, [&](auto* list) {
      auto out = take(r.consumer.get(), rd_kafka_seek_partitions(r.consumer.get(), list,
                                                                 to_ms(opts.request_timeout)));
      if (!out && list->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        out = from_code(r.consumer.get(), list->elems[0].err);
      }
      return out;
    });
    if (!e) return true;
    note("kafka log: seeking the reader of " + where + " (recreating it): " + e.text);
    reader_drop(r);
    return false;
  };
  const bool resumed = r.consumer && r.paused;
  if (resumed) {
    const auto err = with_list(RD_KAFKA_OFFSET_INVALID, [&](auto* list) {
      const auto e = rd_kafka_resume_partitions(r.consumer.get(), list);
      return e != RD_KAFKA_RESP_ERR_NO_ERROR ? e : list->elems[0].err;
    });
    r.paused = false;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      note("kafka log: resuming the reader of " + where +
           " (recreating it): " + rd_kafka_err2str(err));
      reader_drop(r);
    }
  }
  const auto floor = index_floor(p, from.value);
  // Every record from `from` on is still ahead of the consumer: skipping up to `from` (records
  // it has mostly prefetched) beats a seek, which waits for a fetch round trip, unless the
  // index knows a start far past the consumer.
  if (r.consumer && r.positioned && from.value >= r.next &&
      (from.value - r.next < kSkipRatherThanSeek || floor.seq <= r.next)) {
    if (r.pending && r.pending->record.position.seq < from) r.pending.reset();
    // librdkafka (2.0) fetches for a resumed partition only when its broker thread next wakes
    // up, up to a second later; a seek to where the reader is starts the fetch now.
    if (!resumed || seek(r.offset)) return false;
  }
  r.pending.reset();
  r.positioned = false;
  // librdkafka resolves the logical "beginning" with an offset lookup that costs a new
  // consumer about half a second: the low watermark is one round trip.
  std::int64_t start = floor.offset;
  bool asked = false;
  if (start == RD_KAFKA_OFFSET_BEGINNING) {
    SECHEX_TRY(const auto marks, watermarks(p));
    start = marks.low;
    r.end = std::max(r.end, marks.stable);
    asked = true;
  }
  if (r.consumer) seek(start);
  if (!r.consumer) {
    SECHEX_TRY(auto consumer, new_reader());
    const auto err =
        with_list(start, [&](auto* list) { return rd_kafka_assign(consumer.get(), list); });
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return fail("assign " + where, from_code(nullptr, err));
    r.consumer = std::move(consumer);
  }
  r.positioned = true;
  r.next = floor.seq;
  r.offset = start;
  return asked;
}

Result<std::vector<Record>> KafkaLog::Impl::read(
    Partition p, Seq from, Seq to, std::size_t max,
    std::optional<SteadyClock::time_point> wait_until) const {
  if (from < cut_of(p).below) return Errc::pruned;
  std::vector<Record> out;
  auto& r = *readers[p.value];
  std::lock_guard lock(r.mu);
  SECHEX_TRY(bool asked_end, reader_start(r, p, from));
  rd_kafka_t* c = r.consumer.get();
  const auto kp = static_cast<std::int32_t>(p.value);
  const auto where = opts.topic + "[" + std::to_string(p.value) + "]";
  // This process's own committed appends: the coordinator writes the commit markers after
  // commit_transaction() returned, so the last stable offset may not cover them yet.
  std::uint64_t owed_until = 0;
  if (!wait_until) {
    std::lock_guard state(state_mu);
    if (published[p.value]) owed_until = std::min(to.value, published[p.value]->next.value);
  }
  auto idle_deadline = SteadyClock::now() + opts.request_timeout;

  // Each returns true when the read is complete.
  // A record past the one expected: records were deleted below the reader (retention by another
  // node, not yet seen here), never a silent gap.
  std::optional<std::uint64_t> gap;
  auto deliver = [&](Decoded&& d) {
    const auto seq = d.record.position.seq.value;
    r.offset = std::max(r.offset, d.offset + 1);
    r.next = seq + 1;
    if (seq < from.value) return false;
    if (const auto want = out.empty() ? from.value : out.back().position.seq.value + 1;
        seq > want && want < to.value) {
      gap = seq;
      return true;
    }
    if (seq >= to.value) {
      r.next = seq;
      r.pending = std::move(d);
      return true;
    }
    out.push_back(std::move(d.record));
    return out.size() >= max;
  };
  auto on_message = [&](rd_kafka_message_t* raw) -> Result<bool> {
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> m(raw,
                                                                         rd_kafka_message_destroy);
    idle_deadline = SteadyClock::now() + opts.request_timeout;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Only once per end reached, so never waited for; but it does tell where the end is.
      if (m->partition == kp) {
        r.offset = std::max(r.offset, m->offset);
        r.end = std::max(r.end, m->offset);
      }
      return false;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      KafkaError e = from_code(c, m->err);
      if (!e.fatal && transient_consumer_error(m->err)) {
        note("kafka log: reading " + where + " (retrying): " + rd_kafka_message_errstr(m.get()));
        return false;
      }
      if (!e.fatal) e.text = rd_kafka_message_errstr(m.get());
      if (e.fatal) {
        reader_drop(r);  // recreated by the next read
      } else {
        r.positioned = false;
      }
      return fail("reading " + where, e);
    }
    if (m->rkt == nullptr || m->partition != kp) return false;
    auto d = decode(*m, p);
    if (!d) {
      r.positioned = false;
      return d.error();
    }
    index_add(p, d.value().record.position.seq.value, d.value().offset);
    return deliver(std::move(d).value());
  };
  // A reader at the end of its partition (`idle`), or past the range it was asked for, would
  // only keep fetching until the next read: paused, it costs the broker nothing (and the next
  // read one fetch round trip). A batch reader stopped by `max` keeps prefetching.
  auto finish = [&](bool idle) -> Result<std::vector<Record>> {
    if (gap) {
      r.positioned = false;
      r.pending.reset();
      SECHEX_TRY(const auto cut, current_cut(p));
      if (from < cut.below) return Errc::pruned;
      return fail("partition " + std::to_string(p.value) + ": records from seq " +
                      std::to_string(from.value) + " are missing (the next one is seq " +
                      std::to_string(*gap) + ")",
                  Errc::corruption);
    }
    if (idle || r.next >= to.value) reader_pause(r, p);
    return std::move(out);
  };

  if (r.pending) {
    auto d = std::move(*r.pending);
    r.pending.reset();
    if (deliver(std::move(d))) return finish(false);
  }
  for (;;) {
    if (interrupted.load(std::memory_order_relaxed)) {
      r.positioned = false;
      return closed("reading " + where);
    }
    while (rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 0)) {
      SECHEX_TRY(const bool complete, on_message(m));
      if (complete) return finish(false);
    }
    // Nothing queued. The polls also served the markers, which moved the position.
    if (const auto pos = consumer_position(c, opts.topic, kp); pos > r.offset) {
      r.offset = pos;
      idle_deadline = SteadyClock::now() + opts.request_timeout;
    }
    int wait = 0;
    if (wait_until) {
      wait = remaining_ms(*wait_until);
      if (!out.empty() || wait <= 0) return finish(out.empty());
    } else {
      const bool owed = std::max(r.next, from.value) < owed_until;
      // At the end as far as this reader knows: only the broker can tell whether records
      // committed since (an EOF is not repeated for a consumer already at the end).
      if (!owed && r.offset >= r.end && !asked_end) {
        SECHEX_TRY(const auto marks, watermarks(p));
        r.end = std::max(r.end, marks.stable);
        asked_end = true;
      }
      if (!owed && r.offset >= r.end) return finish(true);
      wait = remaining_ms(idle_deadline);
      if (wait <= 0) {
        r.positioned = false;
        return fail("reading " + where + " timed out at offset " + std::to_string(r.offset) +
                        (owed ? " (records this process committed are missing)" : ""),
                    Errc::io_error);
      }
      wait = std::min(wait, kReadSliceMs);
    }
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(c, wait)) {
      SECHEX_TRY(const bool complete, on_message(m));
      if (complete) return finish(false);
    }
  }
}

Result<Decoded> KafkaLog::Impl::decode(const rd_kafka_message_t& m, Partition p) const {
  const auto where = opts.topic + "[" + std::to_string(p.value) + "]@" + std::to_string(m.offset);
  rd_kafka_headers_t* hdrs = nullptr;
  const void* seq_v = nullptr;
  const void* hash_v = nullptr;
  size_t seq_n = 0, hash_n = 0;
  if (rd_kafka_message_headers(&m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(hdrs, "seq", &seq_v, &seq_n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(hdrs, "hash", &hash_v, &hash_n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      seq_n != 8 || hash_n != 32) {
    return fail(where + ": record without seq/hash headers", Errc::corruption);
  }
  auto view = decode_record(std::string_view(static_cast<const char*>(m.payload), m.len));
  if (!view) return fail(where + ": undecodable record", view.error());
  // Kafka retention deletes records outright; a stub here was never written by a ledger.
  if (view.value().pruned) return fail(where + ": a pruned stub in the topic", Errc::corruption);
  const auto& v = view.value();
  Decoded d;
  d.offset = m.offset;
  d.record.position = {p, Seq{detail::get_be64(seq_v)}};
  std::memcpy(d.record.hash.data(), hash_v, 32);
  if (v.partition != p || v.seq != d.record.position.seq || v.hash != d.record.hash) {
    return fail(where + ": headers disagree with the record", Errc::corruption);
  }
  d.record.event.assign(v.event.begin(), v.event.end());
  return d;
}

void KafkaLog::Impl::index_add(Partition p, std::uint64_t seq, std::int64_t offset) const {
  std::lock_guard lock(index_mu);
  auto& m = index[p.value];
  auto it = m.upper_bound(seq);
  if (it != m.begin() && seq - std::prev(it)->first < kIndexStride) return;
  m.emplace(seq, offset);
}

KafkaLog::Impl::IndexEntry KafkaLog::Impl::index_floor(Partition p, std::uint64_t seq) const {
  std::lock_guard lock(index_mu);
  const auto& m = index[p.value];
  auto it = m.upper_bound(seq);
  if (it == m.begin()) return {};
  return {std::prev(it)->first, std::prev(it)->second};
}

Result<std::shared_ptr<rd_kafka_t>> KafkaLog::Impl::offsets_client_for(
    const rd_kafka_t* stale) const {
  std::lock_guard lock(offsets_mu);
  const auto now = SteadyClock::now();
  const bool renew = stale != nullptr && offsets_client.get() == stale &&
                     now - offsets_client_born >= std::chrono::seconds(1);
  if (!offsets_client || renew) {
    SECHEX_TRY(auto fresh, new_consumer());  // read_committed: asks for the LSO
    if (renew) note("kafka log: watermarks: asking a fresh client (leader moved)");
    offsets_client = std::shared_ptr<rd_kafka_t>(fresh.release(), KafkaDeleter{});
    offsets_client_born = now;
  }
  return offsets_client;
}

Result<KafkaLog::Impl::Watermarks> KafkaLog::Impl::watermarks(Partition p) const {
  SECHEX_TRY(auto client, offsets_client_for(nullptr));
  const auto deadline = SteadyClock::now() + opts.request_timeout;
  for (;;) {
    if (interrupted.load(std::memory_order_relaxed)) return closed("watermarks");
    rd_kafka_t* rk = client.get();
    Watermarks w;
    // In slices of at most a second, so that interrupt() is noticed while the cluster is down.
    const auto err = rd_kafka_query_watermark_offsets(
        rk, opts.topic.c_str(), static_cast<std::int32_t>(p.value), &w.low, &w.stable,
        std::clamp(remaining_ms(deadline), 1, 1000));
    // It is never polled otherwise: drop the error events it queued (all brokers down, ...).
    while (auto* m = rd_kafka_consumer_poll(rk, 0)) rd_kafka_message_destroy(m);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return w;
    const bool slice_timed_out = err == RD_KAFKA_RESP_ERR__TIMED_OUT;
    if ((!transient_consumer_error(err) && !slice_timed_out) || SteadyClock::now() >= deadline) {
      return fail("watermarks of partition " + std::to_string(p.value), from_code(rk, err));
    }
    if (slice_timed_out) continue;
    note(std::string("kafka log: watermarks (retrying): ") + rd_kafka_err2str(err));
    if (leader_moved(err)) {
      SECHEX_TRY(client, offsets_client_for(rk));
    }
    std::this_thread::sleep_for(Millis(50));
  }
}

Result<Head> KafkaLog::Impl::recover_tail(Partition p) const {
  SECHEX_TRY(const auto marks, watermarks(p));
  const std::int64_t lo = marks.low, hi = marks.stable;
  const auto deadline = SteadyClock::now() + opts.request_timeout * 4;
  for (std::int64_t window = kTailWindow;; window *= 16) {
    if (hi <= lo) return Head{};
    const auto start = std::max(lo, hi - window);
    std::optional<Decoded> prev, last;
    SECHEX_TRYV(scan(
        opts.topic, static_cast<std::int32_t>(p.value), start,
        [&](const rd_kafka_message_t& m) -> Result<bool> {
          SECHEX_TRY(auto d, decode(m, p));
          if (last && d.record.position.seq.value != last->record.position.seq.value + 1) {
            return fail("tail of partition " + std::to_string(p.value) + ": seq " +
                            std::to_string(d.record.position.seq.value) + " follows " +
                            std::to_string(last->record.position.seq.value),
                        Errc::chain_broken);
          }
          index_add(p, d.record.position.seq.value, d.offset);
          prev = std::move(last);
          last = std::move(d);
          return true;
        },
        deadline));
    if (last) {
      const auto& r = last->record;
      if (prev && chain_hash(p, r.position.seq, prev->record.hash, r.event) != r.hash) {
        return fail("tail of partition " + std::to_string(p.value) + ": seq " +
                        std::to_string(r.position.seq.value) + " does not link",
                    Errc::chain_broken);
      }
      if (!prev && r.position.seq.value == 0 && chain_hash(p, Seq{0}, Hash{}, r.event) != r.hash) {
        return fail("partition " + std::to_string(p.value) + ": seq 0 does not link",
                    Errc::chain_broken);
      }
      return Head{Seq{r.position.seq.value + 1}, r.hash};
    }
    if (start == lo) {
      // Only aborted records or markers: an empty partition, or one retention emptied (it
      // never does: each step is chained into the partition it prunes, above the cut).
      const auto cut = cut_of(p).below;
      if (cut.value == 0) return Head{};
      SECHEX_TRY(const auto last_pruned, stub(p, Seq{cut.value - 1}));
      return Head{cut, last_pruned.hash};
    }
  }
}

void KafkaLog::Impl::cp_seen(std::uint32_t p, std::uint64_t size, std::int64_t offset,
                             std::string note, std::string tree) const {
  if (p >= partitions) return;
  auto& offsets = cp_offsets[p];
  if (offset < 0) offset = RD_KAFKA_OFFSET_BEGINNING;  // unknown yet: checkpoint_at scans
  const auto at = std::lower_bound(offsets.begin(), offsets.end(), std::pair{size, INT64_MIN});
  if (at == offsets.end() || at->first != size) {
    offsets.insert(at, {size, offset});
  } else {
    at->second = std::max(at->second, offset);
  }
  auto& latest = cp_latest[p];
  if (latest.note.empty() || size >= latest.size) {
    latest = {size, std::move(note), std::move(tree)};
  }
}

Result<void> KafkaLog::Impl::refresh_checkpoints() const {
  std::lock_guard lock(cp_mu);
  std::int64_t next = cp_next_offset;
  SECHEX_TRYV(scan(
      cp_topic, 0, cp_next_offset,
      [&](const rd_kafka_message_t& m) -> Result<bool> {
        next = m.offset + 1;
        if (m.key_len == kCutKeySize && m.payload != nullptr &&
            std::memcmp(m.key, kCutKeyPrefix.data(), kCutKeyPrefix.size()) == 0) {
          cut_seen(detail::get_be32(static_cast<const char*>(m.key) + kCutKeyPrefix.size()),
                   std::string_view(static_cast<const char*>(m.payload), m.len));
          return true;
        }
        auto cp = checkpoint_message_of(m);
        if (!cp) return true;
        std::string tree;
        rd_kafka_headers_t* hdrs = nullptr;
        const void* v = nullptr;
        size_t n = 0;
        if (rd_kafka_message_headers(&m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, "tree", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            v != nullptr) {
          tree.assign(static_cast<const char*>(v), n);
        }
        cp_seen(cp->partition, cp->checkpoint.size, m.offset, std::move(cp->note), std::move(tree));
        return true;
      },
      SteadyClock::now() + opts.request_timeout));
  cp_next_offset = next;
  cp_refreshed = SteadyClock::now();
  return boost::outcome_v2::success();
}

Result<void> KafkaLog::Impl::refresh_checkpoints_if_stale() const {
  {
    std::lock_guard lock(cp_mu);
    if (cp_refreshed != SteadyClock::time_point{} &&
        SteadyClock::now() - cp_refreshed < kCheckpointsFresh) {
      return boost::outcome_v2::success();
    }
  }
  return refresh_checkpoints();
}

Result<merkle::CompactRange> KafkaLog::Impl::grow_tree(Partition p, merkle::CompactRange tree,
                                                       std::uint64_t next) const {
  constexpr std::uint64_t kBatch = 4096;
  while (tree.size() < next) {
    SECHEX_TRY(auto batch, leaves(p, tree.size(), std::min(next, tree.size() + kBatch)));
    if (batch.empty()) {
      return fail("partition " + std::to_string(p.value) + ": records " +
                      std::to_string(tree.size()) + ".." + std::to_string(next - 1) +
                      " could not be read to build the Merkle tree",
                  Errc::io_error);
    }
    for (const auto& leaf : batch) tree.push(leaf);
  }
  return tree;
}

Result<Hash> KafkaLog::Impl::tree_node(Partition p, unsigned level, std::uint64_t node) const {
  if (level >= 64 || node > (UINT64_MAX >> level) - 1) return Errc::not_found;
  const auto key = std::tuple{p.value, level, node};
  if (level >= kCachedTreeLevel) {
    std::lock_guard lock(tree_mu);
    if (auto it = tree_cache.find(key); it != tree_cache.end()) return it->second;
  }
  Hash out{};
  if (level > kCachedTreeLevel) {
    SECHEX_TRY(const auto left, tree_node(p, level - 1, node * 2));
    SECHEX_TRY(const auto right, tree_node(p, level - 1, node * 2 + 1));
    out = merkle::node_hash(left, right);
  } else {
    const std::uint64_t begin = node << level, end = (node + 1) << level;
    SECHEX_TRY(const auto batch, leaves(p, begin, end));
    if (batch.size() != end - begin) return Errc::not_found;  // past the committed records
    merkle::CompactRange range;
    for (const auto& leaf : batch) range.push(leaf);
    out = range.root();
  }
  if (level >= kCachedTreeLevel) {
    std::lock_guard lock(tree_mu);
    tree_cache.emplace(key, out);
  }
  return out;
}

merkle::CompactRange KafkaLog::Impl::tree_at_checkpoint(Partition p,
                                                        const LatestCheckpoint& cp) const {
  const auto body = parse_checkpoint_body(cp.note);
  if (!body || !body->root || cp.tree.size() % 32 != 0) return {};
  std::vector<Hash> nodes(cp.tree.size() / 32);
  for (std::size_t i = 0; i < nodes.size(); ++i) std::memcpy(nodes[i].data(), &cp.tree[i * 32], 32);
  auto range = merkle::CompactRange::from_nodes(cp.size, std::move(nodes));
  if (!range || range.value().root() != *body->root) {
    note("kafka log: partition " + std::to_string(p.value) + ": the checkpoint at size " +
         std::to_string(cp.size) +
         " carries a tree that does not give its signed root; rebuilding the tree from the "
         "records");
    return {};
  }
  return std::move(range).value();
}

void KafkaLog::Impl::cut_seen(std::uint32_t p, std::string_view v) const {
  if (p >= partitions || v.size() < 16 || (v.size() - 16) % 8 != 0) return;
  CutState state;
  state.cut.below = Seq{detail::get_be64(v.data())};
  state.cut.before_micros = static_cast<std::int64_t>(detail::get_be64(v.data() + 8));
  for (std::size_t at = 16; at < v.size(); at += 8) {
    state.chunk_offsets.push_back(static_cast<std::int64_t>(detail::get_be64(v.data() + at)));
  }
  // A cut never moves back; chunks must cover it.
  if (state.chunk_offsets.size() * kStubChunk < state.cut.below.value) return;
  std::lock_guard cut_lock(cut_mu);
  if (state.cut.below < cuts[p].cut.below) return;
  if (state.cut.below > cuts[p].cut.below) {
    // Offsets of records below the cut are deleted (or about to be): a read must not seek to
    // them (the broker answers "out of range" and the consumer resets, a round trip each time).
    std::lock_guard lock(index_mu);
    auto& m = index[p];
    m.erase(m.begin(), m.lower_bound(state.cut.below.value));
  }
  cuts[p] = std::move(state);
}

KafkaLog::Impl::CutState KafkaLog::Impl::cut_state(Partition p) const {
  std::lock_guard lock(cut_mu);
  return cuts[p.value];
}

RetentionCut KafkaLog::Impl::cut_of(Partition p) const {
  std::lock_guard lock(cut_mu);
  return cuts[p.value].cut;
}

Result<RetentionCut> KafkaLog::Impl::current_cut(Partition p) const {
  SECHEX_TRYV(refresh_checkpoints());
  return cut_of(p);
}

Result<std::shared_ptr<const std::string>> KafkaLog::Impl::stub_chunk(Partition p,
                                                                      std::uint64_t chunk) const {
  const auto key = std::pair{p.value, chunk};
  {
    std::lock_guard lock(stub_mu);
    if (auto it = stub_cache.find(key); it != stub_cache.end()) return it->second;
  }
  std::int64_t offset = 0;
  {
    std::lock_guard lock(cut_mu);
    const auto& offsets = cuts[p.value].chunk_offsets;
    if (chunk >= offsets.size()) return Errc::not_found;
    offset = offsets[chunk];
  }
  const auto want = partition_key(p.value, chunk);
  std::shared_ptr<const std::string> value;
  // The chunk at its offset, or (compaction removed that version) its next version, which
  // holds the same stubs and more.
  SECHEX_TRYV(scan(
      stubs_topic, 0, offset,
      [&](const rd_kafka_message_t& m) -> Result<bool> {
        if (m.payload == nullptr || m.key_len != want.size() ||
            std::memcmp(m.key, want.data(), want.size()) != 0) {
          return true;
        }
        value = std::make_shared<const std::string>(static_cast<const char*>(m.payload), m.len);
        return false;
      },
      SteadyClock::now() + opts.request_timeout));
  if (!value || value->size() % kPrunedRecordSize != 0) {
    return fail("stubs of partition " + std::to_string(p.value) + " chunk " +
                    std::to_string(chunk) + " are missing from " + stubs_topic,
                Errc::corruption);
  }
  std::lock_guard lock(stub_mu);
  if (stub_cache.size() >= kStubCacheChunks) stub_cache.erase(stub_cache.begin());
  stub_cache[key] = value;
  return value;
}

Result<std::vector<RecordView>> KafkaLog::Impl::stubs(Partition p, std::uint64_t begin,
                                                      std::uint64_t end) const {
  std::vector<RecordView> out;
  end = std::min(end, cut_of(p).below.value);
  for (auto s = begin; s < end;) {
    const auto chunk_no = s / kStubChunk;
    SECHEX_TRY(const auto chunk, stub_chunk(p, chunk_no));
    for (const auto chunk_end = std::min(end, (chunk_no + 1) * kStubChunk); s < chunk_end; ++s) {
      const auto at = (s % kStubChunk) * kPrunedRecordSize;
      if (at + kPrunedRecordSize > chunk->size()) return Errc::corruption;
      SECHEX_TRY(auto view, decode_record(std::string_view(*chunk).substr(at, kPrunedRecordSize)));
      if (!view.pruned || view.partition != p || view.seq.value != s) return Errc::corruption;
      view.event = {};  // fixed-size fields only: the chunk may leave the cache
      out.push_back(view);
    }
  }
  return out;
}

Result<RecordView> KafkaLog::Impl::stub(Partition p, Seq s) const {
  SECHEX_TRY(auto one, stubs(p, s.value, s.value + 1));
  if (one.empty()) return Errc::not_found;
  return one.front();
}

Result<std::vector<Hash>> KafkaLog::Impl::leaves(Partition p, std::uint64_t begin,
                                                 std::uint64_t end) const {
  std::vector<Hash> out;
  out.reserve(end - begin);
  SECHEX_TRY(const auto pruned, stubs(p, begin, end));
  for (const auto& v : pruned) out.push_back(v.leaf);
  for (auto s = begin + pruned.size(); s < end;) {
    SECHEX_TRY(auto records, read(p, Seq{s}, Seq{end}, end - s, std::nullopt));
    if (records.empty()) break;
    for (const auto& r : records) {
      if (r.position.seq.value != s) return Errc::chain_broken;
      out.push_back(record_leaf(r));
      ++s;
    }
  }
  return out;
}

Result<void> KafkaLog::Impl::delete_below(Partition p, Seq below) {
  if (below.value == 0) return boost::outcome_v2::success();
  // Up to and including the last pruned record, never past it: records appended meanwhile sit
  // above it. Found by reading from the index's nearest entry; when it is gone already (an
  // earlier deletion), there is nothing left to delete.
  const Seq last{below.value - 1};
  std::optional<std::int64_t> last_offset;
  // Never from below the low watermark: an offset deleted already sends a new consumer the slow
  // way round (auto.offset.reset, ~0.5 s), which every later run would pay for nothing.
  SECHEX_TRY(const auto marks, watermarks(p));
  SECHEX_TRYV(scan(
      opts.topic, static_cast<std::int32_t>(p.value),
      std::max(index_floor(p, last.value).offset, marks.low),
      [&](const rd_kafka_message_t& m) -> Result<bool> {
        SECHEX_TRY(const auto d, decode(m, p));
        if (d.record.position.seq < last) return true;
        if (d.record.position.seq == last) last_offset = d.offset;
        return false;
      },
      SteadyClock::now() + opts.request_timeout));
  if (!last_offset) return boost::outcome_v2::success();
  const auto offset = *last_offset + 1;
  if (marks.low < offset) {
    SECHEX_TRY(auto admin, new_plain_producer());
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, opts.topic.c_str(), static_cast<std::int32_t>(p.value))
        ->offset = offset;
    rd_kafka_DeleteRecords_t* del = rd_kafka_DeleteRecords_new(list);
    rd_kafka_topic_partition_list_destroy(list);
    char err[256];
    rd_kafka_queue_t* q = rd_kafka_queue_new(admin.get());
    rd_kafka_AdminOptions_t* ao =
        rd_kafka_AdminOptions_new(admin.get(), RD_KAFKA_ADMIN_OP_DELETERECORDS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, to_ms(opts.request_timeout), err, sizeof(err));
    rd_kafka_AdminOptions_set_request_timeout(ao, to_ms(opts.request_timeout), err, sizeof(err));
    rd_kafka_DeleteRecords(admin.get(), &del, 1, ao, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, to_ms(opts.request_timeout) + 5000);
    const auto where = "DeleteRecords of " + opts.topic + "[" + std::to_string(p.value) +
                       "] below offset " + std::to_string(offset);
    std::error_code result;
    if (ev == nullptr) {
      result = fail(where + " timed out", Errc::io_error);
    } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      KafkaError e;
      e.code = rd_kafka_event_error(ev);
      e.text = rd_kafka_event_error_string(ev);
      result = fail(where, e);
    } else {
      const auto* offsets =
          rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
      if (offsets == nullptr || offsets->cnt != 1) {
        result = fail(where + ": no result", Errc::io_error);
      } else if (offsets->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        KafkaError e;
        e.code = offsets->elems[0].err;
        e.text = rd_kafka_err2str(e.code);
        result = fail(where, e);
      }
    }
    if (ev != nullptr) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(del);
    if (result) return result;
  }
  // Offsets below the deletion point are gone: reads must not seek to them.
  {
    std::lock_guard lock(index_mu);
    auto& m = index[p.value];
    m.erase(m.begin(), m.lower_bound(below.value));
  }
  auto& r = *readers[p.value];
  std::lock_guard lock(r.mu);
  r.positioned = false;
  r.pending.reset();
  return boost::outcome_v2::success();
}

Result<KafkaLog::Impl::Message> KafkaLog::Impl::checkpoint_message(
    Partition p, Seq next, const Hash& head, const merkle::CompactRange& tree) const {
  SECHEX_TRY(auto note,
             opts.signer->sign({checkpoint_origin(ledger_id, p), next.value, head, tree.root()}));
  Message m{cp_topic, 0, partition_key(p.value, next.value), std::move(note), {}, {}, false, {}};
  m.headers.emplace_back("tree", tree_bytes(tree));
  return m;
}

Result<std::optional<std::string>> KafkaLog::Impl::meta_first(rd_kafka_t* admin,
                                                              std::string_view key,
                                                              const std::string* value_if_absent) {
  auto read_first = [&]() -> Result<std::optional<std::string>> {
    std::optional<std::string> value;
    SECHEX_TRYV(scan(
        meta_topic, 0, RD_KAFKA_OFFSET_BEGINNING,
        [&](const rd_kafka_message_t& m) -> Result<bool> {
          if (std::string_view(static_cast<const char*>(m.key), m.key_len) != key) return true;
          value = std::string(static_cast<const char*>(m.payload), m.len);
          return false;
        },
        SteadyClock::now() + opts.request_timeout));
    return value;
  };
  SECHEX_TRY(auto value, read_first());
  if (value || value_if_absent == nullptr || opts.read_only) return value;
  const auto& v = *value_if_absent;
  const auto err =
      rd_kafka_producev(admin, RD_KAFKA_V_TOPIC(meta_topic.c_str()), RD_KAFKA_V_PARTITION(0),
                        RD_KAFKA_V_KEY(key.data(), key.size()),
                        RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail("writing " + std::string(key) + " to " + meta_topic, from_code(admin, err));
  }
  const auto ferr = rd_kafka_flush(admin, to_ms(opts.request_timeout));
  if (ferr != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail("writing " + std::string(key) + " to " + meta_topic, from_code(admin, ferr));
  }
  // Whoever wrote first wins, us or a concurrent first open.
  SECHEX_TRY(value, read_first());
  if (!value) {
    return fail(std::string(key) + " record did not appear in " + meta_topic, Errc::io_error);
  }
  return value;
}

Result<void> KafkaLog::Impl::load_meta(rd_kafka_t* admin) {
  std::optional<std::string> fresh;
  if (!opts.read_only && opts.create_if_missing) {
    SECHEX_TRY(auto id, crypto::random_bytes(16));
    fresh = std::string(kMetaFormat) + "\nledger_id=" + to_hex(id) +
            "\npartitions=" + std::to_string(partitions) + "\n";
  }
  SECHEX_TRY(auto value, meta_first(admin, kMetaKey, fresh ? &*fresh : nullptr));
  if (!value) return fail("no ledger record in " + meta_topic, Errc::store_missing);
  // "sechex-ledger/v1\nledger_id=<hex>\npartitions=<P>\n"
  const auto& s = *value;
  auto field = [&](std::string_view name) -> std::string {
    const auto k = "\n" + std::string(name) + "=";
    const auto at = s.find(k);
    if (at == std::string::npos) return {};
    const auto from = at + k.size();
    return s.substr(from, s.find('\n', from) - from);
  };
  if (!s.starts_with(std::string(kMetaFormat) + "\n")) {
    return fail(meta_topic + ": unknown format", Errc::unsupported_version);
  }
  ledger_id = field("ledger_id");
  const auto parts = field("partitions");
  if (ledger_id.empty() || parts != std::to_string(partitions)) {
    return fail(meta_topic + " records " + parts + " partitions but " + opts.topic + " has " +
                    std::to_string(partitions) + " (subjects would move partitions)",
                Errc::corruption);
  }
  return boost::outcome_v2::success();
}

void KafkaLog::Impl::publish(Partition p, const Writer& w) {
  std::lock_guard lock(state_mu);
  published[p.value] = Head{w.next, w.head};
}

void KafkaLog::Impl::drop_writer(Writer& w, Partition p) {
  w.producer.reset();
  w.ready = false;
  std::lock_guard lock(state_mu);
  published[p.value].reset();
}

void KafkaLog::Impl::mark_fenced(Writer& w, Partition p, const KafkaError& e) {
  fail("partition " + std::to_string(p.value) +
           ": this writer was fenced by another writer with transactional.id " +
           opts.transactional_id_prefix + "ledger-" + std::to_string(p.value) +
           "; it refuses further appends",
       e);
  drop_writer(w, p);
  w.fenced = true;
  std::lock_guard lock(state_mu);
  fenced_flags[p.value] = true;
}

Result<void> KafkaLog::Impl::ensure_writer(Writer& w, Partition p) {
  if (w.fenced) return Errc::writer_failed;
  if (w.ready) return boost::outcome_v2::success();
  const auto tid = opts.transactional_id_prefix + "ledger-" + std::to_string(p.value);
  SECHEX_TRY(
      auto* conf,
      base_conf("sechex-ledger-" + std::to_string(p.value),
                {
                    {"transactional.id", tid},
                    {"enable.idempotence", "true"},
                    {"acks", "all"},
                    {"transaction.timeout.ms", std::to_string(opts.transaction_timeout.count())},
                    {"message.timeout.ms", std::to_string(opts.message_timeout.count())},
                    {"linger.ms", "1"},
                }));
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, &w);
  SECHEX_TRY(auto producer, new_client(RD_KAFKA_PRODUCER, conf));
  rd_kafka_t* rk = producer.get();
  // init_transactions() fences any earlier producer of this transactional.id and completes or
  // aborts its open transaction, so the tail read after it is final.
  const auto deadline = SteadyClock::now() + opts.request_timeout;
  for (;;) {
    auto e = take(rk, rd_kafka_init_transactions(rk, std::max(1, remaining_ms(deadline))));
    if (!e) break;
    if (e.retriable && SteadyClock::now() < deadline) continue;
    return fail("init_transactions for " + tid, e);
  }
  // Checkpoints first: they hold the retention cut, which recover_tail needs should a
  // partition hold no record above it.
  SECHEX_TRYV(refresh_checkpoints());
  SECHEX_TRY(const auto tail, recover_tail(p));
  std::uint64_t cp_size = 0;
  merkle::CompactRange tree;
  {
    std::lock_guard lock(cp_mu);
    if (auto it = cp_latest.find(p.value); it != cp_latest.end()) {
      cp_size = it->second.size;
      tree = tree_at_checkpoint(p, it->second);
    }
  }
  if (cp_size > tail.next.value) {
    return fail("partition " + std::to_string(p.value) + ": a checkpoint covers " +
                    std::to_string(cp_size) + " records but the log has " +
                    std::to_string(tail.next.value),
                Errc::chain_broken);
  }
  // The tree's right edge at the tail: from the latest checkpoint's on (or from the start,
  // once, for a ledger whose checkpoints predate the tree).
  SECHEX_TRY(tree, grow_tree(p, std::move(tree), tail.next.value));
  w.producer = std::move(producer);
  w.next = tail.next;
  w.head = tail.hash;
  w.tree = std::move(tree);
  w.checkpoint_size = cp_size;
  w.checkpoint_micros = opts.clock->now_micros();
  w.ready = true;
  publish(p, w);
  writer_generation.fetch_add(1, std::memory_order_acq_rel);
  return boost::outcome_v2::success();
}

AppendResult KafkaLog::Impl::chain(const Writer& w, Partition p, std::span<const ByteView> events,
                                   std::vector<Message>& msgs) const {
  AppendResult result;
  result.first = w.next;
  Seq next = w.next;
  Hash head = w.head;
  for (const auto& e : events) {
    head = chain_hash(p, next, head, e);
    result.hashes.push_back(head);
    const auto* subject = schemas::envelope_of(e.data())->subject();
    msgs.push_back({opts.topic,
                    static_cast<std::int32_t>(p.value),
                    subject != nullptr ? subject->str() : std::string(),
                    encode_record(p, next, head, e),
                    next.value,
                    head,
                    false,
                    {}});
    next = Seq{next.value + 1};
  }
  result.last = Seq{next.value - 1};
  result.head = head;
  return result;
}

KafkaLog::Impl::Outcome KafkaLog::Impl::run_transaction(Writer& w, Partition p,
                                                        const std::vector<Message>& msgs,
                                                        const ConsumedOffsets* consumed,
                                                        std::error_code& err) {
  rd_kafka_t* rk = w.producer.get();
  const auto where = "partition " + std::to_string(p.value);
  auto classify = [&](const std::string& what, const KafkaError& e) {
    if (kafka_error_is_fencing(e.code)) {
      mark_fenced(w, p, e);
      err = Errc::writer_failed;
      return Outcome::fenced;
    }
    err = fail(where + ": " + what, e);
    return Outcome::unknown;
  };
  auto abort = [&](const std::string& what, const KafkaError& cause) {
    err = fail(where + ": " + what + " (aborting the transaction)", cause);
    if (err == Errc::ok) err = Errc::io_error;
    auto e = take(rk, rd_kafka_abort_transaction(rk, to_ms(opts.request_timeout)));
    if (!e) return Outcome::aborted;
    const auto keep = err;
    const auto o = classify("abort_transaction", e);
    if (o == Outcome::unknown) err = keep;
    return o;
  };

  w.delivered.assign(msgs.size(), -1);
  w.delivery_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (auto e = take(rk, rd_kafka_begin_transaction(rk))) return classify("begin_transaction", e);

  const auto deadline = SteadyClock::now() + opts.request_timeout;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    std::string seq_be;
    if (m.seq) detail::put_be64(seq_be, *m.seq);
    for (;;) {
      // producev takes the headers over on success only.
      rd_kafka_headers_t* hdrs = rd_kafka_headers_new(m.headers.size() + 2);
      if (m.seq && m.hash) {
        rd_kafka_header_add(hdrs, "seq", -1, seq_be.data(), 8);
        rd_kafka_header_add(hdrs, "hash", -1, m.hash->data(), 32);
      }
      for (const auto& [k, v] : m.headers) {
        rd_kafka_header_add(hdrs, k.data(), static_cast<ssize_t>(k.size()), v.data(),
                            static_cast<ssize_t>(v.size()));
      }
      const rd_kafka_resp_err_t perr = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(m.topic.c_str()), RD_KAFKA_V_PARTITION(m.partition),
          RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
          RD_KAFKA_V_VALUE(m.tombstone ? nullptr : const_cast<char*>(m.value.data()),
                           m.tombstone ? 0 : m.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(i))),
          RD_KAFKA_V_END);
      if (perr != RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_headers_destroy(hdrs);
      if (perr == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (perr == RD_KAFKA_RESP_ERR__QUEUE_FULL && SteadyClock::now() < deadline) {
        rd_kafka_poll(rk, 10);
        continue;
      }
      const auto e = from_code(rk, perr);
      if (e.fatal) return classify("produce", e);
      return abort("produce", e);
    }
  }

  if (consumed != nullptr) {
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offsets, consumed->topic.c_str(), consumed->partition)
        ->offset = consumed->next_offset;
    auto e = take(rk, rd_kafka_send_offsets_to_transaction(rk, offsets, consumed->group_metadata,
                                                           std::max(1, remaining_ms(deadline))));
    rd_kafka_topic_partition_list_destroy(offsets);
    if (e) {
      if (e.fatal) return classify("send_offsets_to_transaction", e);
      return abort("send_offsets_to_transaction", e);
    }
  }
  for (;;) {
    auto e = take(rk, rd_kafka_commit_transaction(rk, std::max(1, remaining_ms(deadline))));
    if (!e) break;
    if (e.fatal) return classify("commit_transaction", e);
    if (e.abortable) return abort("commit_transaction", e);
    if (e.retriable && SteadyClock::now() < deadline) continue;
    // Still committing after the deadline: the outcome is not known here.
    err = fail(where + ": commit_transaction", e);
    return Outcome::unknown;
  }
  if (w.delivery_error != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // commit_transaction() fails when a message failed; this is only a safety net.
    err = fail(where + ": a message of a committed transaction was not delivered",
               from_code(rk, w.delivery_error));
    return Outcome::unknown;
  }
  return Outcome::committed;
}

Result<void> KafkaLog::Impl::commit_batch(Writer& w, Partition p, const std::vector<Message>& msgs,
                                          Seq new_next, const Hash& new_head,
                                          merkle::CompactRange new_tree, bool has_checkpoint,
                                          const ConsumedOffsets* consumed) {
  std::error_code err;
  const auto outcome = run_transaction(w, p, msgs, consumed, err);
  if (outcome == Outcome::fenced) return Errc::writer_failed;
  if (outcome == Outcome::aborted) {
    // The head is unchanged. A fresh producer for the next append: after some abortable
    // errors (a failed idempotent produce) librdkafka's producer state may keep failing
    // (OUT_OF_ORDER_SEQUENCE_NUMBER); init_transactions() + tail recovery start clean.
    drop_writer(w, p);
    return err ? err : Errc::io_error;
  }
  if (outcome == Outcome::unknown) {
    // Fatal error or commit in doubt: a new producer (init_transactions completes or aborts
    // the open transaction) and the tail it recovers tell whether our records made it.
    drop_writer(w, p);
    const auto old_next = w.next;
    if (auto r = ensure_writer(w, p); !r) {
      note("kafka log: partition " + std::to_string(p.value) +
           ": outcome of the append is unknown (the cluster is unreachable); the next append "
           "recovers the tail first");
      return err ? err : r.error();
    }
    // The tail proves records committed, but nothing proves a transaction without any (keys
    // or a checkpoint alone) did: report it failed; retrying such a write is harmless.
    const bool has_records =
        std::any_of(msgs.begin(), msgs.end(), [](const Message& m) { return m.seq.has_value(); });
    if (!has_records || !(w.next == new_next && w.head == new_head)) {
      if (w.next != old_next) {
        note("kafka log: partition " + std::to_string(p.value) +
             ": recovered head moved unexpectedly");
      }
      return err ? err : Errc::io_error;
    }
    note("kafka log: partition " + std::to_string(p.value) + ": the append committed after all");
    // ensure_writer reloaded checkpoint state from Kafka.
  } else {
    w.next = new_next;
    w.head = new_head;
    w.tree = std::move(new_tree);
    if (has_checkpoint) {
      w.checkpoint_size = new_next.value;
      w.checkpoint_micros = opts.clock->now_micros();
      const auto& cp = msgs.back();
      std::lock_guard lock(cp_mu);
      cp_seen(p.value, new_next.value, w.delivered.back(), cp.value, cp.headers.front().second);
    }
  }
  // Index the batch's first record (delivery reports carry its offset).
  const auto first = new_next.value - std::count_if(msgs.begin(), msgs.end(),
                                                    [](const Message& m) { return m.seq; });
  if (!msgs.empty() && !w.delivered.empty() && w.delivered[0] >= 0 && msgs.front().seq) {
    index_add(p, first, w.delivered[0]);
  }
  publish(p, w);
  stat_groups.fetch_add(1, std::memory_order_relaxed);
  if (has_checkpoint) stat_checkpoints.fetch_add(1, std::memory_order_relaxed);
  return boost::outcome_v2::success();
}

KafkaLog::KafkaLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaLog::~KafkaLog() {
  for (auto& w : impl_->writers) {
    std::lock_guard lock(w->mu);
    w->producer.reset();
  }
  // rd_kafka_destroy joins each client's threads.
  for (auto& r : impl_->readers) {
    std::lock_guard lock(r->mu);
    impl_->reader_drop(*r);
  }
  std::lock_guard lock(impl_->offsets_mu);
  impl_->offsets_client.reset();
}

Result<std::unique_ptr<KafkaLog>> KafkaLog::open(const KafkaLogOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  if (options.brokers.empty() || options.topic.empty() || options.clock == nullptr ||
      options.message_timeout >= options.transaction_timeout ||
      options.request_timeout.count() <= 0) {
    return Errc::invalid_argument;
  }
  impl->meta_topic = options.topic + ".meta";
  impl->cp_topic = options.topic + ".checkpoints";
  impl->keys_topic = options.topic + ".keys";
  impl->stubs_topic = options.topic + ".stubs";
  SECHEX_TRY(auto admin, impl->new_plain_producer());
  SECHEX_TRYV(impl->ensure_topics(admin.get()));
  if (impl->partitions == 0 || impl->partitions > kMaxPartitions) {
    return impl->fail("topic " + options.topic + " has an unusable partition count",
                      Errc::corruption);
  }
  SECHEX_TRYV(impl->load_meta(admin.get()));
  admin.reset();
  impl->writers.reserve(impl->partitions);
  for (std::uint32_t i = 0; i < impl->partitions; ++i) {
    impl->writers.push_back(std::make_unique<Impl::Writer>());
  }
  impl->published.resize(impl->partitions);
  impl->fenced_flags.assign(impl->partitions, false);
  impl->index.resize(impl->partitions);
  impl->cp_offsets.resize(impl->partitions);
  impl->cuts.resize(impl->partitions);
  impl->readers.reserve(impl->partitions);
  for (std::uint32_t i = 0; i < impl->partitions; ++i) {
    impl->readers.push_back(std::make_unique<Impl::Reader>());
  }
  // The checkpoints and retention cuts as they stand (refresh_retention() keeps them current).
  SECHEX_TRYV(impl->refresh_checkpoints());
  return std::unique_ptr<KafkaLog>(new KafkaLog(std::move(impl)));
}

std::uint32_t KafkaLog::partition_count() const { return impl_->partitions; }
const std::string& KafkaLog::ledger_id() const { return impl_->ledger_id; }
const std::string& KafkaLog::topic() const { return impl_->opts.topic; }
bool KafkaLog::read_only() const { return impl_->opts.read_only; }

LogStats KafkaLog::stats() const {
  return {impl_->stat_appends.load(std::memory_order_relaxed),
          impl_->stat_events.load(std::memory_order_relaxed),
          impl_->stat_groups.load(std::memory_order_relaxed),
          impl_->stat_checkpoints.load(std::memory_order_relaxed)};
}

bool KafkaLog::fenced(Partition partition) const {
  std::lock_guard lock(impl_->state_mu);
  return partition.value < impl_->fenced_flags.size() && impl_->fenced_flags[partition.value];
}

std::string KafkaLog::last_error() const {
  std::lock_guard lock(impl_->err_mu);
  return impl_->last_error;
}

Result<AppendResult> KafkaLog::append(Partition partition, std::span<const ByteView> events) {
  return append_with_keys(partition, events, {});
}

Result<AppendResult> KafkaLog::append_with_keys(Partition partition,
                                                std::span<const ByteView> events,
                                                std::span<const KeyRecord> keys) {
  if (impl_->opts.read_only) return Errc::invalid_argument;
  if (events.empty() || partition.value >= impl_->partitions) return Errc::invalid_argument;
  if (!envelopes_ok(events)) return Errc::invalid_argument;
  auto& w = *impl_->writers[partition.value];
  std::lock_guard lock(w.mu);
  if (w.fenced) {
    impl_->note("kafka log: partition " + std::to_string(partition.value) +
                " was fenced by another writer; refusing to append");
    return Errc::writer_failed;
  }
  SECHEX_TRYV(impl_->ensure_writer(w, partition));

  std::vector<Impl::Message> msgs;
  msgs.reserve(events.size() + keys.size() + 1);
  auto result = impl_->chain(w, partition, events, msgs);
  const Seq next{result.last.value + 1};
  const Hash head = result.head;
  auto tree = grown(w.tree, msgs);
  for (const auto& k : keys) {
    msgs.push_back(
        {impl_->keys_topic, 0, k.key, k.value.value_or(std::string()), {}, {}, !k.value, {}});
  }

  bool has_checkpoint = false;
  if (impl_->opts.signer != nullptr) {
    const auto& pol = impl_->opts.checkpoints;
    const auto now = impl_->opts.clock->now_micros();
    const bool by_count =
        pol.every_records > 0 && next.value - w.checkpoint_size >= pol.every_records;
    const bool by_time = pol.every.count() > 0 && now - w.checkpoint_micros >= pol.every.count();
    if (by_count || by_time) {
      SECHEX_TRY(auto cp, impl_->checkpoint_message(partition, next, head, tree));
      msgs.push_back(std::move(cp));
      has_checkpoint = true;
    }
  }
  SECHEX_TRYV(impl_->commit_batch(w, partition, msgs, next, head, std::move(tree), has_checkpoint));
  impl_->stat_appends.fetch_add(1, std::memory_order_relaxed);
  impl_->stat_events.fetch_add(events.size(), std::memory_order_relaxed);
  return result;
}

Result<AppendResult> KafkaLog::append_consumed(Partition partition,
                                               std::span<const ByteView> events,
                                               std::span<const SideRecord> side,
                                               const ConsumedOffsets& consumed) {
  if (impl_->opts.read_only || partition.value >= impl_->partitions ||
      consumed.group_metadata == nullptr) {
    return Errc::invalid_argument;
  }
  if (!envelopes_ok(events)) return Errc::invalid_argument;
  auto& w = *impl_->writers[partition.value];
  std::lock_guard lock(w.mu);
  if (w.fenced) return Errc::writer_failed;
  SECHEX_TRYV(impl_->ensure_writer(w, partition));
  std::vector<Impl::Message> msgs;
  msgs.reserve(events.size() + side.size());
  auto result = impl_->chain(w, partition, events, msgs);
  const Seq next{result.last.value + 1};
  const Hash head = result.head;
  auto tree = grown(w.tree, msgs);
  for (const auto& r : side) {
    msgs.push_back({r.topic, r.partition, r.key, r.value, {}, {}, false, r.headers});
  }
  SECHEX_TRYV(
      impl_->commit_batch(w, partition, msgs, next, head, std::move(tree), false, &consumed));
  impl_->stat_appends.fetch_add(events.empty() ? 0 : 1, std::memory_order_relaxed);
  impl_->stat_events.fetch_add(events.size(), std::memory_order_relaxed);
  return result;
}

Result<rd_kafka_conf_s*> KafkaLog::client_conf(
    const std::string& client_id,
    const std::vector<std::pair<std::string, std::string>>& extra) const {
  return impl_->base_conf(client_id, extra);
}

Result<int> KafkaLog::ensure_topic(const std::string& topic, int partitions,
                                   const std::vector<std::pair<std::string, std::string>>& config) {
  SECHEX_TRY(auto admin, impl_->new_plain_producer());
  SECHEX_TRY(int existing, impl_->topic_partitions(admin.get(), topic));
  if (existing > 0) return existing;
  if (impl_->opts.read_only || !impl_->opts.create_if_missing) {
    return impl_->fail("topic " + topic + " does not exist", Errc::store_missing);
  }
  Impl::TopicSpec spec{topic, partitions, {}};
  for (const auto& [k, v] : config) spec.config.emplace_back(k.c_str(), v.c_str());
  SECHEX_TRYV(impl_->create_topics(admin.get(), {spec}));
  const auto deadline = SteadyClock::now() + impl_->opts.request_timeout;
  for (;;) {
    SECHEX_TRY(existing, impl_->topic_partitions(admin.get(), topic));
    if (existing > 0) return existing;
    if (SteadyClock::now() > deadline) {
      return impl_->fail("created topic " + topic + " did not appear in metadata", Errc::io_error);
    }
    std::this_thread::sleep_for(Millis(100));
  }
}

Result<void> KafkaLog::write_keys(Partition partition, std::span<const KeyRecord> keys) {
  if (impl_->opts.read_only || keys.empty() || partition.value >= impl_->partitions) {
    return Errc::invalid_argument;
  }
  auto& w = *impl_->writers[partition.value];
  std::lock_guard lock(w.mu);
  if (w.fenced) return Errc::writer_failed;
  SECHEX_TRYV(impl_->ensure_writer(w, partition));
  std::vector<Impl::Message> msgs;
  for (const auto& k : keys) {
    msgs.push_back(
        {impl_->keys_topic, 0, k.key, k.value.value_or(std::string()), {}, {}, !k.value, {}});
  }
  return impl_->commit_batch(w, partition, msgs, w.next, w.head, w.tree, false);
}

Result<std::int64_t> KafkaLog::read_keys(std::int64_t offset, const OnKeyRecord& on) const {
  std::int64_t next = offset;
  SECHEX_TRYV(impl_->scan(
      impl_->keys_topic, 0, offset <= 0 ? RD_KAFKA_OFFSET_BEGINNING : offset,
      [&](const rd_kafka_message_t& m) -> Result<bool> {
        next = m.offset + 1;
        const std::string_view key(static_cast<const char*>(m.key), m.key_len);
        if (m.payload == nullptr) {
          on(key, nullptr);
        } else {
          const std::string value(static_cast<const char*>(m.payload), m.len);
          on(key, &value);
        }
        return true;
      },
      SteadyClock::now() + impl_->opts.request_timeout));
  return next;
}

Result<std::optional<std::string>> KafkaLog::meta_first(std::string_view key,
                                                        const std::string* value_if_absent) {
  SECHEX_TRY(auto admin, impl_->new_plain_producer());
  return impl_->meta_first(admin.get(), key, value_if_absent);
}

Result<std::size_t> KafkaLog::checkpoint_due(bool force) {
  if (impl_->opts.read_only || impl_->opts.signer == nullptr) return std::size_t{0};
  std::size_t written = 0;
  for (std::uint32_t i = 0; i < impl_->partitions; ++i) {
    const Partition p{i};
    auto& w = *impl_->writers[i];
    std::lock_guard lock(w.mu);
    if (!w.ready || w.fenced || w.next.value == w.checkpoint_size) continue;
    const auto& pol = impl_->opts.checkpoints;
    const auto now = impl_->opts.clock->now_micros();
    const bool by_count =
        pol.every_records > 0 && w.next.value - w.checkpoint_size >= pol.every_records;
    const bool by_time = pol.every.count() > 0 && now - w.checkpoint_micros >= pol.every.count();
    if (!(by_count || by_time || force)) continue;
    SECHEX_TRY(auto cp, impl_->checkpoint_message(p, w.next, w.head, w.tree));
    std::vector<Impl::Message> msgs;
    msgs.push_back(std::move(cp));
    SECHEX_TRYV(impl_->commit_batch(w, p, msgs, w.next, w.head, w.tree, true));
    ++written;
  }
  return written;
}

Result<std::optional<std::string>> KafkaLog::latest_checkpoint(Partition partition) const {
  if (partition.value >= impl_->partitions) return Errc::invalid_argument;
  SECHEX_TRYV(impl_->refresh_checkpoints_if_stale());
  std::lock_guard lock(impl_->cp_mu);
  auto it = impl_->cp_latest.find(partition.value);
  if (it == impl_->cp_latest.end()) return std::optional<std::string>{};
  return std::optional<std::string>{it->second.note};
}

Result<std::optional<std::string>> KafkaLog::checkpoint_at(Partition partition,
                                                           std::uint64_t size) const {
  if (partition.value >= impl_->partitions) return Errc::invalid_argument;
  SECHEX_TRYV(impl_->refresh_checkpoints_if_stale());
  // Where the checkpoint of `size` is: the newest note itself, or its offset in the topic.
  struct Found {
    bool known = false;
    std::optional<std::string> latest;
    std::int64_t offset = 0;
  };
  const auto find = [&] {
    Found f;
    std::lock_guard lock(impl_->cp_mu);
    const auto& offsets = impl_->cp_offsets[partition.value];
    const auto at = std::lower_bound(offsets.begin(), offsets.end(), std::pair{size, INT64_MIN});
    if (at == offsets.end() || at->first != size) return f;
    f.known = true;
    const auto& latest = impl_->cp_latest[partition.value];
    if (latest.size == size) f.latest = latest.note;
    f.offset = at->second;
    return f;
  };
  auto found = find();
  // A size not seen yet may be a checkpoint written since: look once more before saying none.
  if (!found.known) {
    SECHEX_TRYV(impl_->refresh_checkpoints());
    found = find();
  }
  if (!found.known) return std::optional<std::string>{};
  if (found.latest) return found.latest;
  const auto offset = found.offset;
  // The first checkpoint of that partition and size at or after the offset (compaction may
  // have removed a legacy-keyed one, whose key held only the newest).
  std::optional<std::string> out;
  SECHEX_TRYV(impl_->scan(
      impl_->cp_topic, 0, offset,
      [&](const rd_kafka_message_t& m) -> Result<bool> {
        auto cp = checkpoint_message_of(m);
        if (!cp || cp->partition != partition.value || cp->checkpoint.size < size) return true;
        if (cp->checkpoint.size == size) out = std::move(cp->note);
        return false;
      },
      SteadyClock::now() + impl_->opts.request_timeout));
  return out;
}

Result<void> KafkaLog::refresh_retention() const { return impl_->refresh_checkpoints(); }

RetentionCut KafkaLog::retention_cut(Partition partition) const {
  if (partition.value >= impl_->partitions) return {};
  return impl_->cut_of(partition);
}

Result<Hash> KafkaLog::record_hash(Partition partition, Seq seq) const {
  if (partition.value >= impl_->partitions) return Errc::invalid_argument;
  if (seq < impl_->cut_of(partition).below) {
    SECHEX_TRY(const auto v, impl_->stub(partition, seq));
    return v.hash;
  }
  return Log::record_hash(partition, seq);
}

Result<PruneResult> KafkaLog::prune(Partition partition, Seq below, std::int64_t before_micros) {
  if (impl_->opts.read_only || partition.value >= impl_->partitions) {
    return Errc::invalid_argument;
  }
  const Partition p = partition;
  std::lock_guard prune_lock(impl_->prune_mu);
  auto& w = *impl_->writers[p.value];
  // The writer is held only to commit: appends to the partition go on while records are read
  // and stubs built (they only add records above the cut).
  auto commit = [&](std::vector<Impl::Message> msgs) -> Result<std::int64_t> {
    std::lock_guard lock(w.mu);
    if (w.fenced) return Errc::writer_failed;
    SECHEX_TRYV(impl_->ensure_writer(w, p));
    SECHEX_TRYV(impl_->commit_batch(w, p, msgs, w.next, w.head, w.tree, false));
    if (w.delivered.empty() || w.delivered[0] < 0) {
      return impl_->fail("partition " + std::to_string(p.value) +
                             ": no offset for a retention write (unknown outcome)",
                         Errc::io_error);
    }
    return w.delivered[0];
  };
  Seq next;
  {
    std::lock_guard lock(w.mu);
    if (w.fenced) return Errc::writer_failed;
    SECHEX_TRYV(impl_->ensure_writer(w, p));
    next = w.next;
  }
  SECHEX_TRYV(impl_->refresh_checkpoints());
  auto state = impl_->cut_state(p);
  if (below > next) return Errc::invalid_argument;
  PruneResult out;
  if (below > state.cut.below) {
    if (!impl_->stubs_topic_ready) {  // created by the first prune, once per process
      SECHEX_TRY(auto admin, impl_->new_plain_producer());
      SECHEX_TRYV(impl_->create_topics(admin.get(),
                                       {{impl_->stubs_topic, 1, {{"cleanup.policy", "compact"}}}}));
      impl_->stubs_topic_ready = true;
    }
    const auto cut = state.cut.below.value;
    Hash prev{};
    if (cut > 0) {
      SECHEX_TRY(const auto v, impl_->stub(p, Seq{cut - 1}));
      prev = v.hash;
    }
    for (auto chunk = cut / kStubChunk; chunk * kStubChunk < below.value; ++chunk) {
      const auto chunk_begin = chunk * kStubChunk;
      const auto chunk_end = std::min(chunk_begin + kStubChunk, below.value);
      std::string value;
      if (chunk_begin < cut) {  // the chunk's earlier stubs, rewritten with the new ones
        SECHEX_TRY(const auto stored, impl_->stub_chunk(p, chunk));
        const auto kept = (cut - chunk_begin) * kPrunedRecordSize;
        if (stored->size() < kept) return Errc::corruption;  // the chunk must cover the cut
        value.assign(*stored, 0, kept);
      }
      for (auto s = std::max(cut, chunk_begin); s < chunk_end;) {
        SECHEX_TRY(auto records, impl_->read(p, Seq{s}, Seq{chunk_end}, chunk_end - s, {}));
        if (records.empty()) return Errc::chain_broken;
        for (const auto& r : records) {
          if (r.position.seq.value != s) return Errc::chain_broken;
          // Each link is checked before its payload goes: a tampered record is never pruned
          // into an unverifiable stub.
          const auto digest = crypto::sha256(r.event);
          if (chain_hash_from_digest(p, r.position.seq, prev, digest) != r.hash) {
            return impl_->fail("partition " + std::to_string(p.value) + ": record " +
                                   std::to_string(s) + " does not link; not pruning it",
                               Errc::chain_broken);
          }
          const auto bytes = encode_record(p, r.position.seq, r.hash, r.event);
          value += encode_pruned_record(p, r.position.seq, r.hash, digest,
                                        merkle::leaf_hash(as_bytes(bytes)));
          out.bytes_freed +=
              bytes.size() > kPrunedRecordSize ? bytes.size() - kPrunedRecordSize : 0;
          prev = r.hash;
          ++s;
        }
      }
      std::vector<Impl::Message> msgs;
      msgs.push_back({impl_->stubs_topic,
                      0,
                      partition_key(p.value, chunk),
                      std::move(value),
                      {},
                      {},
                      false,
                      {}});
      SECHEX_TRY(const auto offset, commit(std::move(msgs)));
      if (state.chunk_offsets.size() <= chunk) state.chunk_offsets.resize(chunk + 1, 0);
      state.chunk_offsets[chunk] = offset;
      {
        std::lock_guard cache(impl_->stub_mu);
        impl_->stub_cache.erase({p.value, chunk});
      }
    }
    std::string cv;
    detail::put_be64(cv, below.value);
    detail::put_be64(cv, static_cast<std::uint64_t>(before_micros));
    for (const auto o : state.chunk_offsets) detail::put_be64(cv, static_cast<std::uint64_t>(o));
    std::vector<Impl::Message> msgs;
    msgs.push_back({impl_->cp_topic, 0, cut_key(p.value), cv, {}, {}, false, {}});
    SECHEX_TRY(const auto cut_offset, commit(std::move(msgs)));
    (void)cut_offset;
    impl_->cut_seen(p.value, cv);
    out.pruned = below.value - cut;
  }
  // The records go last, also when an earlier run stopped after writing its cut.
  SECHEX_TRYV(impl_->delete_below(p, impl_->cut_of(p).below));
  return out;
}

Result<std::vector<std::string>> KafkaLog::checkpoints(Partition partition) const {
  if (partition.value >= impl_->partitions) return Errc::invalid_argument;
  std::map<std::uint64_t, std::string> by_size;
  SECHEX_TRYV(impl_->scan(
      impl_->cp_topic, 0, RD_KAFKA_OFFSET_BEGINNING,
      [&](const rd_kafka_message_t& m) -> Result<bool> {
        if (auto cp = checkpoint_message_of(m); cp && cp->partition == partition.value) {
          by_size[cp->checkpoint.size] = std::move(cp->note);
        }
        return true;
      },
      SteadyClock::now() + impl_->opts.request_timeout));
  std::vector<std::string> out;
  out.reserve(by_size.size());
  for (auto& [size, note] : by_size) out.push_back(std::move(note));
  return out;
}

Result<Hash> KafkaLog::tree_node(Partition partition, unsigned level, std::uint64_t index) const {
  if (partition.value >= impl_->partitions) return Errc::invalid_argument;
  return impl_->tree_node(partition, level, index);
}

Result<void> KafkaLog::claim(Partition partition) {
  if (impl_->opts.read_only || partition.value >= impl_->partitions) {
    return Errc::invalid_argument;
  }
  auto& w = *impl_->writers[partition.value];
  std::lock_guard lock(w.mu);
  return impl_->ensure_writer(w, partition);
}

void KafkaLog::interrupt() { impl_->interrupted.store(true, std::memory_order_relaxed); }

bool KafkaLog::writes(Partition partition) const {
  std::lock_guard lock(impl_->state_mu);
  return partition.value < impl_->partitions && impl_->published[partition.value].has_value() &&
         !impl_->fenced_flags[partition.value];
}

std::uint64_t KafkaLog::writer_generation() const {
  return impl_->writer_generation.load(std::memory_order_acquire);
}

Result<Head> KafkaLog::recover_head(Partition partition) const {
  if (partition.value >= impl_->partitions) return Errc::invalid_argument;
  return impl_->recover_tail(partition);
}

Head KafkaLog::head(Partition partition) const {
  if (partition.value >= impl_->partitions) return {};
  {
    std::lock_guard lock(impl_->state_mu);
    if (impl_->published[partition.value]) return *impl_->published[partition.value];
  }
  auto h = impl_->recover_tail(partition);
  return h ? h.value() : Head{};
}

Result<std::vector<Record>> KafkaLog::read_range(Partition partition, Seq from, Seq to,
                                                 std::size_t max) const {
  if (partition.value >= impl_->partitions || from >= to || max == 0) return std::vector<Record>{};
  return impl_->read(partition, from, to, max, std::nullopt);
}

Result<std::vector<Record>> KafkaLog::wait_for(Partition partition, Seq from,
                                               std::chrono::milliseconds timeout,
                                               std::size_t max) const {
  if (partition.value >= impl_->partitions || max == 0) return std::vector<Record>{};
  const auto now = SteadyClock::now();
  const auto until =
      timeout >= std::chrono::duration_cast<Millis>(SteadyClock::time_point::max() - now)
          ? SteadyClock::time_point::max()
          : now + timeout;
  return impl_->read(partition, from, Seq{UINT64_MAX}, max, until);
}

std::string default_transactional_id_prefix(const std::string& topic) {
  return topic == "ledger.events" ? std::string() : topic + ".";
}

std::optional<std::pair<std::string, std::string>> parse_kafka_setting(std::string_view kv) {
  const auto eq = kv.find('=');
  if (eq == std::string_view::npos || eq == 0) return std::nullopt;
  return std::pair<std::string, std::string>(kv.substr(0, eq), kv.substr(eq + 1));
}

}  // namespace sechex::ledger
