#include "ledger/key_store.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <rocksdb/db.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "endian.h"
#include "ledger/event_builder.h"
#include "ledger/openssl_util.h"

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

Result<std::unique_ptr<KeyStore>> KeyStore::open(LogStore& log, Kek kek) {
  constexpr std::string_view kCheckAad = "sechex-kek-check/v1";
  const Bytes zeros(32, 0);
  std::string check;
  const auto s = log.raw_db()->Get(rocksdb::ReadOptions(), log.cf_meta(), "kek_check", &check);
  if (s.ok()) {
    auto opened = unwrap(kek.bytes(), as_bytes(std::string(kCheckAad)), view_of(check));
    if (!opened || opened.value() != zeros) return Errc::key_invalid;
  } else if (s.IsNotFound()) {
    if (!log.read_only()) {
      SECHEX_TRY(auto blob, wrap(kek.bytes(), as_bytes(std::string(kCheckAad)), zeros));
      rocksdb::WriteOptions wo;
      wo.sync = true;
      const auto ps = log.raw_db()->Put(
          wo, log.cf_meta(), "kek_check",
          rocksdb::Slice(reinterpret_cast<const char*>(blob.data()), blob.size()));
      if (!ps.ok()) return Errc::io_error;
    }
  } else {
    return Errc::io_error;
  }
  return std::unique_ptr<KeyStore>(new KeyStore(log, std::move(kek)));
}

Result<crypto::SecretBytes> KeyStore::data_key(std::string_view subject, bool create) {
  const std::string key(subject);
  {
    std::shared_lock lock(cache_mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  std::unique_lock create_lock(create_mu_, std::defer_lock);
  if (create) create_lock.lock();
  std::string stored;
  const auto s = log_.raw_db()->Get(rocksdb::ReadOptions(), log_.cf_keys(), key, &stored);
  crypto::SecretBytes dek;
  if (s.ok()) {
    if (stored == kErasedMarker) return Errc::erased;
    auto opened = unwrap(kek_.bytes(), dek_aad(subject), view_of(stored));
    if (!opened) return Errc::key_invalid;
    dek = crypto::SecretBytes(std::move(opened).value());
  } else if (s.IsNotFound()) {
    if (!create) return Errc::not_found;
    SECHEX_TRY(auto raw, crypto::random_bytes(32));
    dek = crypto::SecretBytes(std::move(raw));
    SECHEX_TRY(auto blob, wrap(kek_.bytes(), dek_aad(subject), dek.view()));
    // Durable before any event sealed under it can be appended.
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const auto ps =
        log_.raw_db()->Put(wo, log_.cf_keys(), key,
                           rocksdb::Slice(reinterpret_cast<const char*>(blob.data()), blob.size()));
    if (!ps.ok()) return Errc::io_error;
  } else {
    return Errc::io_error;
  }
  std::unique_lock lock(cache_mu_);
  // A bounded cache: dropping it wholesale is simple and the keys are one Get away.
  if (cache_.size() > 100'000) cache_.clear();
  cache_.emplace(key, dek);
  return dek;
}

Result<Bytes> KeyStore::seal(std::string_view subject, ByteView event_id, std::string_view field,
                             ByteView plaintext) {
  if (event_id.size() != 16) return Errc::invalid_argument;
  SECHEX_TRY(auto dek, data_key(subject, /*create=*/!log_.read_only()));
  return wrap(dek.view(), seal_aad(subject, field, event_id), plaintext);
}

Result<Bytes> KeyStore::open_field(std::string_view subject, ByteView event_id,
                                   std::string_view field, ByteView sealed) {
  SECHEX_TRY(auto dek, data_key(subject, /*create=*/false));
  return unwrap(dek.view(), seal_aad(subject, field, event_id), sealed);
}

Result<bool> KeyStore::is_erased(std::string_view subject) {
  std::string stored;
  const auto s =
      log_.raw_db()->Get(rocksdb::ReadOptions(), log_.cf_keys(), std::string(subject), &stored);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return Errc::io_error;
  return stored == kErasedMarker;
}

Result<AppendResult> KeyStore::erase(std::string_view subject, std::string_view actor,
                                     std::string_view reason, std::int64_t time_micros) {
  if (log_.read_only() || subject.empty()) return Errc::invalid_argument;
  std::lock_guard create_lock(create_mu_);
  EventBuilder b(nullptr,
                 EventMeta{std::string(subject), std::string(actor), {}, time_micros, {}, {}});
  const auto body = schema::CreateSubjectErased(b.fbb(), b.fbb().CreateString(reason));
  SECHEX_TRY(auto bytes, b.finish(body));
  const ByteView ev(bytes);
  const LogStore::KeyWrite kw{std::string(subject), kErasedMarker};
  SECHEX_TRY(auto appended, log_.append(partition_for(subject, log_.partition_count()),
                                        std::span<const ByteView>(&ev, 1),
                                        std::span<const LogStore::KeyWrite>(&kw, 1)));
  {
    std::unique_lock lock(cache_mu_);
    cache_.erase(std::string(subject));
  }
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
  if (meta_.subject.empty()) return Errc::invalid_argument;
  flatbuffers::Offset<schema::Source> source;
  if (meta_.ip || meta_.user_agent) {
    flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> ip, ua;
    if (meta_.ip) {
      SECHEX_TRY(ip, seal("ip", *meta_.ip));
    }
    if (meta_.user_agent) {
      SECHEX_TRY(ua, seal("user_agent", *meta_.user_agent));
    }
    source = schema::CreateSource(fbb_, ip, ua);
  }
  const auto subject = fbb_.CreateString(meta_.subject);
  const auto actor = fbb_.CreateString(meta_.actor);
  const auto request_id = fbb_.CreateString(meta_.request_id);
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
