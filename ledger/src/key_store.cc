#include "ledger/key_store.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <rocksdb/db.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>

#include "endian.h"
#include "ledger/event_builder.h"
#include "ledger/openssl_util.h"
#include "ledger/utf8.h"

namespace sechex::ledger {
namespace {

constexpr std::uint8_t kSealV1 = 0x01;
constexpr std::size_t kNonce = 12;
constexpr std::size_t kTag = 16;
const std::string kErasedMarker = std::string("\0erased", 7);

void put_lp(Bytes& out, std::string_view s) {
  std::uint8_t len[4];
  detail::put_be32(len, static_cast<std::uint32_t>(s.size()));
  out.insert(out.end(), len, len + 4);
  out.insert(out.end(), s.begin(), s.end());
}

Bytes seal_aad(std::string_view subject, std::string_view field, ByteView event_id) {
  constexpr std::string_view kDomain = "sechex-seal/v1";
  Bytes aad(kDomain.begin(), kDomain.end());
  put_lp(aad, subject);
  put_lp(aad, field);
  aad.insert(aad.end(), event_id.begin(), event_id.end());
  return aad;
}

Bytes dek_aad(std::string_view subject) {
  constexpr std::string_view kDomain = "sechex-dek/v1";
  Bytes aad(kDomain.begin(), kDomain.end());
  aad.insert(aad.end(), subject.begin(), subject.end());
  return aad;
}

Result<Bytes> wrap(ByteView key, ByteView aad, ByteView plaintext) {
  SECHEX_TRY(auto nonce, crypto::random_bytes(kNonce));
  SECHEX_TRY(auto ct, crypto::aes_gcm_seal(key, nonce, aad, plaintext));
  Bytes out{kSealV1};
  out.insert(out.end(), nonce.begin(), nonce.end());
  out.insert(out.end(), ct.begin(), ct.end());
  return out;
}

Result<Bytes> unwrap(ByteView key, ByteView aad, ByteView blob) {
  if (blob.size() < 1 + kNonce + kTag) return Errc::corruption;
  if (blob[0] != kSealV1) return Errc::unsupported_version;
  return crypto::aes_gcm_open(key, blob.subspan(1, kNonce), aad, blob.subspan(1 + kNonce));
}

ByteView view_of(const std::string& s) { return as_bytes(s); }

void OPENSSL_cleanse_string(std::string& s) { OPENSSL_cleanse(s.data(), s.size()); }

}  // namespace

Result<Kek> Kek::from_base64(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  Bytes raw;
  if (!crypto::base64_decode(text, raw) || raw.size() != 32) {
    crypto::SecretBytes wipe(std::move(raw));
    return Errc::key_invalid;
  }
  return Kek(crypto::SecretBytes(std::move(raw)));
}

Result<Kek> Kek::from_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Errc::key_missing;
  // Like ssh with private keys: a KEK others can read is already compromised.
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) return Errc::key_invalid;
  std::ifstream in(path);
  if (!in) return Errc::key_missing;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto kek = from_base64(text);
  OPENSSL_cleanse_string(text);
  return kek;
}

Result<Kek> Kek::from_env(const char* variable) {
  const char* v = std::getenv(variable);
  if (v == nullptr || *v == '\0') return Errc::key_missing;
  return from_base64(v);
}

Result<void> Kek::generate_file(const std::string& path) {
  SECHEX_TRY(auto raw, crypto::random_bytes(32));
  crypto::SecretBytes secret(std::move(raw));
  std::string text = crypto::base64_encode(secret.view()) + "\n";
  auto written = ossl::write_private_file(path, text, ossl::Replace::never);
  OPENSSL_cleanse_string(text);
  return written;
}

namespace {

constexpr std::string_view kCheckAad = "sechex-kek-check/v1";
constexpr std::string_view kKekCheckName = "kek_check";
constexpr std::string_view kLookupCheckName = "lookup_key_check";
constexpr std::string_view kLookupCheckLabel = "sechex lookup-key check v1";

// Embedded mode: keys in the LogStore's `keys` column family, the KEK check in its meta.
class LogStoreKeys final : public KeyBackend {
 public:
  explicit LogStoreKeys(LogStore& log) : log_(log) {}

  bool read_only() const override { return log_.read_only(); }
  std::uint32_t partition_count() const override { return log_.partition_count(); }

  Result<Stored> get(std::string_view subject) override {
    std::string stored;
    const auto s =
        log_.raw_db()->Get(rocksdb::ReadOptions(), log_.cf_keys(), std::string(subject), &stored);
    if (s.IsNotFound()) return Stored{};
    if (!s.ok()) return Errc::io_error;
    if (stored == kErasedMarker) return Stored{State::erased, {}};
    return Stored{State::present, std::move(stored)};
  }

  Result<void> put(std::string_view subject, std::string_view wrapped) override {
    if (log_.read_only()) return Errc::invalid_argument;
    // Durable before any event sealed under it can be appended.
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const auto s =
        log_.raw_db()->Put(wo, log_.cf_keys(), rocksdb::Slice(subject.data(), subject.size()),
                           rocksdb::Slice(wrapped.data(), wrapped.size()));
    if (!s.ok()) return Errc::io_error;
    return boost::outcome_v2::success();
  }

  Result<AppendResult> erase(std::string_view subject, ByteView erased_event) override {
    if (log_.read_only()) return Errc::invalid_argument;
    const LogStore::KeyWrite kw{std::string(subject), kErasedMarker};
    SECHEX_TRY(auto appended, log_.append(partition_for(subject, log_.partition_count()),
                                          std::span<const ByteView>(&erased_event, 1),
                                          std::span<const LogStore::KeyWrite>(&kw, 1)));
    epoch_.fetch_add(1, std::memory_order_relaxed);
    // The marker shadows the wrapped key, but the old value survives in SST files until they
    // are compacted; compact the key's range now so the key material is really gone.
    const std::string k(subject);
    rocksdb::Slice begin(k);
    std::string end_key = k;
    end_key.push_back('\0');
    rocksdb::Slice end(end_key);
    rocksdb::CompactRangeOptions cro;
    cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    log_.raw_db()->Flush(rocksdb::FlushOptions(), log_.cf_keys());
    log_.raw_db()->CompactRange(cro, log_.cf_keys(), &begin, &end);
    return appended;
  }

  Result<std::optional<std::string>> meta_check(std::string_view name,
                                                std::string_view candidate) override {
    const rocksdb::Slice key(name.data(), name.size());
    // Get-then-Put is not atomic, but the store lock admits one writing process, and the
    // callers (open, ledgerd start-up) store a check at most once per process.
    std::string check;
    const auto s = log_.raw_db()->Get(rocksdb::ReadOptions(), log_.cf_meta(), key, &check);
    if (s.ok()) return std::optional<std::string>(std::move(check));
    if (!s.IsNotFound()) return Errc::io_error;
    if (log_.read_only()) return std::optional<std::string>{};
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const auto ps = log_.raw_db()->Put(wo, log_.cf_meta(), key,
                                       rocksdb::Slice(candidate.data(), candidate.size()));
    if (!ps.ok()) return Errc::io_error;
    return std::optional<std::string>(std::string(candidate));
  }

  std::uint64_t erasure_epoch() override { return epoch_.load(std::memory_order_relaxed); }

 private:
  LogStore& log_;
  std::atomic<std::uint64_t> epoch_{0};
};

}  // namespace

Result<std::unique_ptr<KeyStore>> KeyStore::open(LogStore& log, Kek kek) {
  return open(std::make_unique<LogStoreKeys>(log), std::move(kek));
}

Result<std::unique_ptr<KeyStore>> KeyStore::open(std::unique_ptr<KeyBackend> backend, Kek kek) {
  if (!backend || backend->partition_count() == 0) return Errc::invalid_argument;
  const Bytes zeros(32, 0);
  const std::string aad_text(kCheckAad);
  const auto aad = as_bytes(aad_text);
  SECHEX_TRY(auto candidate, wrap(kek.bytes(), aad, zeros));
  SECHEX_TRY(auto check,
             backend->meta_check(kKekCheckName, std::string(candidate.begin(), candidate.end())));
  if (check) {
    auto opened = unwrap(kek.bytes(), aad, view_of(*check));
    if (!opened || opened.value() != zeros) return Errc::key_invalid;
  }
  return std::unique_ptr<KeyStore>(new KeyStore(std::move(backend), std::move(kek)));
}

KeyStore::KeyStore(std::unique_ptr<KeyBackend> backend, Kek kek)
    : backend_(std::move(backend)), kek_(std::move(kek)) {
  create_mu_.resize(backend_->partition_count());
  for (auto& m : create_mu_) m = std::make_unique<std::mutex>();
  cache_epoch_ = backend_->erasure_epoch();
}

std::mutex& KeyStore::create_lock_for(std::string_view subject) {
  return *create_mu_[partition_for(subject, backend_->partition_count()).value];
}

Result<crypto::SecretBytes> KeyStore::data_key(std::string_view subject, bool create) {
  const std::string key(subject);
  const auto epoch = backend_->erasure_epoch();
  {
    std::shared_lock lock(cache_mu_);
    if (cache_epoch_ == epoch) {
      if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    }
  }
  std::unique_lock create_lock(create_lock_for(subject), std::defer_lock);
  if (create) create_lock.lock();
  SECHEX_TRY(auto stored, backend_->get(subject));
  crypto::SecretBytes dek;
  switch (stored.state) {
    case KeyBackend::State::erased:
      return Errc::erased;
    case KeyBackend::State::present: {
      auto opened = unwrap(kek_.bytes(), dek_aad(subject), view_of(stored.wrapped));
      if (!opened) return Errc::key_invalid;
      dek = crypto::SecretBytes(std::move(opened).value());
      break;
    }
    case KeyBackend::State::absent: {
      if (!create) return Errc::not_found;
      SECHEX_TRY(auto raw, crypto::random_bytes(32));
      dek = crypto::SecretBytes(std::move(raw));
      SECHEX_TRY(auto blob, wrap(kek_.bytes(), dek_aad(subject), dek.view()));
      SECHEX_TRYV(backend_->put(subject, std::string(blob.begin(), blob.end())));
      break;
    }
  }
  std::unique_lock lock(cache_mu_);
  // An erasure seen since the cache was filled may have destroyed a cached key: start over.
  // A bounded cache: dropping it wholesale is simple and the keys are one lookup away.
  if (cache_epoch_ != epoch || cache_.size() > 100'000) {
    cache_.clear();
    cache_epoch_ = epoch;
  }
  cache_.emplace(key, dek);
  return dek;
}

Result<Bytes> KeyStore::seal(std::string_view subject, ByteView event_id, std::string_view field,
                             ByteView plaintext) {
  if (event_id.size() != 16) return Errc::invalid_argument;
  SECHEX_TRY(auto dek, data_key(subject, /*create=*/!backend_->read_only()));
  return wrap(dek.view(), seal_aad(subject, field, event_id), plaintext);
}

Result<Bytes> KeyStore::open_field(std::string_view subject, ByteView event_id,
                                   std::string_view field, ByteView sealed) {
  SECHEX_TRY(auto dek, data_key(subject, /*create=*/false));
  return unwrap(dek.view(), seal_aad(subject, field, event_id), sealed);
}

Result<bool> KeyStore::is_erased(std::string_view subject) {
  SECHEX_TRY(auto stored, backend_->get(subject));
  return stored.state == KeyBackend::State::erased;
}

Result<void> KeyStore::check_lookup_key(const Kek& lookup_key) {
  const std::string label(kLookupCheckLabel);
  SECHEX_TRY(const auto mine, crypto::hmac_sha256(lookup_key.bytes(), as_bytes(label)));
  const std::string candidate(mine.begin(), mine.end());
  SECHEX_TRY(const auto stored, backend_->meta_check(kLookupCheckName, candidate));
  // Constant time: the stored value is not secret, but comparing MACs this way costs nothing.
  if (stored && !crypto::constant_time_equal(view_of(*stored), as_bytes(candidate))) {
    return Errc::key_invalid;
  }
  return boost::outcome_v2::success();
}

Result<AppendResult> KeyStore::erase(std::string_view subject, std::string_view actor,
                                     std::string_view reason, std::int64_t time_micros) {
  if (backend_->read_only() || subject.empty()) return Errc::invalid_argument;
  std::lock_guard create_lock(create_lock_for(subject));
  EventBuilder b(nullptr,
                 EventMeta{std::string(subject), std::string(actor), {}, time_micros, {}, {}});
  const auto body = schema::CreateSubjectErased(b.fbb(), b.fbb().CreateString(reason));
  SECHEX_TRY(auto bytes, b.finish(body));
  SECHEX_TRY(auto appended, backend_->erase(subject, ByteView(bytes)));
  std::unique_lock lock(cache_mu_);
  cache_.erase(std::string(subject));
  return appended;
}

EventBuilder::EventBuilder(KeyStore* keys, EventMeta meta) : keys_(keys), meta_(std::move(meta)) {
  auto id = crypto::random_bytes(16);
  if (id) {
    std::copy(id.value().begin(), id.value().end(), event_id_.begin());
    id_ok_ = true;
  }
}

Result<flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>> EventBuilder::seal(
    std::string_view field, std::string_view plaintext) {
  if (keys_ == nullptr) return Errc::invalid_argument;
  SECHEX_TRY(auto sealed,
             keys_->seal(meta_.subject, event_id_, field,
                         ByteView(reinterpret_cast<const std::uint8_t*>(plaintext.data()),
                                  plaintext.size())));
  return fbb_.CreateVector(sealed);
}

Result<Bytes> EventBuilder::finish_raw(schema::Event type, flatbuffers::Offset<void> body) {
  if (!id_ok_) return Errc::crypto_failure;
  // The subject names the data key and the partition: refused rather than repaired.
  if (meta_.subject.empty() || !is_utf8(meta_.subject)) return Errc::invalid_argument;
  flatbuffers::Offset<schema::Source> source;
  if (meta_.ip || meta_.user_agent || meta_.ip_hash) {
    flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> ip, ua, ip_hash;
    if (meta_.ip) {
      SECHEX_TRY(ip, seal("ip", *meta_.ip));
    }
    if (meta_.user_agent) {
      SECHEX_TRY(ua, seal("user_agent", to_utf8(*meta_.user_agent, kMaxUserAgentBytes)));
    }
    if (meta_.ip_hash) {
      ip_hash = fbb_.CreateVector(reinterpret_cast<const std::uint8_t*>(meta_.ip_hash->data()),
                                  meta_.ip_hash->size());
    }
    source = schema::CreateSource(fbb_, ip, ua, ip_hash);
  }
  const auto subject = fbb_.CreateString(meta_.subject);
  const auto actor = fbb_.CreateString(to_utf8(meta_.actor));
  const auto request_id = fbb_.CreateString(to_utf8(meta_.request_id));
  const schema::EventId id(flatbuffers::span<const std::uint8_t, 16>(event_id_.data(), 16));
  schema::EnvelopeBuilder env(fbb_);
  env.add_schema_version(schemas::kSchemaVersion);
  env.add_event_id(&id);
  env.add_time_micros(meta_.time_micros);
  env.add_subject(subject);
  env.add_actor(actor);
  env.add_request_id(request_id);
  if (!source.IsNull()) env.add_source(source);
  env.add_event_type(type);
  env.add_event(body);
  schema::FinishEnvelopeBuffer(fbb_, env.Finish());
  return Bytes(fbb_.GetBufferPointer(), fbb_.GetBufferPointer() + fbb_.GetSize());
}

}  // namespace sechex::ledger
