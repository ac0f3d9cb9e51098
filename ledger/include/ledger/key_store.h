// Sealing of personal data and crypto-shredding.
//
// Every subject has a 32-byte data key (DEK) from RAND_bytes. PII fields of that subject's
// events are sealed with AES-256-GCM under the DEK; the hash chain covers the ciphertext, so
// destroying the DEK makes the PII unreadable while the history still verifies.
//
// Formats (all version-prefixed so they can evolve):
//   sealed field   0x01 || nonce (12) || ciphertext || tag (16)
//                  AAD = "sechex-seal/v1" || lp(subject) || lp(field) || event id (16)
//                  where lp(x) = be32(len(x)) || x; binding the subject, field name and event
//                  id stops a ciphertext being moved to another subject, field or event.
//   wrapped DEK    0x01 || nonce (12) || AES-256-GCM_KEK(DEK) || tag,
//                  AAD = "sechex-dek/v1" || subject
//   KEK check      a wrapped all-zero key under AAD "sechex-kek-check/v1", stored once per
//                  ledger, so a wrong KEK is refused at open instead of failing on every field.
//   lookup-key     HMAC-SHA-256(lookup key, "sechex lookup-key check v1"), stored once per
//   check          ledger (check_lookup_key), so a node with another lookup key (data_dir.h) is
//                  refused at start instead of silently finding no known email. HMAC is a PRF:
//                  the value reveals nothing about the key, and the label has no NUL, so it
//                  never equals a lookup hash ("<kind>\0..." in api/lookup_hash.h).
//
// Both checks are meta checks (KeyBackend::meta_check): the first value stored under the name
// wins for the life of the ledger; read-only opens compare against it but never store one.
//
// Where the wrapped keys live is the KeyBackend's business:
//   embedded (LogStore)  column family `keys`, key = subject, value = wrapped DEK or the erased
//                        marker 0x00 "erased"; meta "kek_check" and "lookup_key_check"
//                        in the log's meta column family. Erasure replaces the DEK with
//                        the marker in the same WriteBatch as the SubjectErased record, then
//                        compacts the key's range so the DEK leaves the SST files.
//   Kafka (kafka_keys.h) a compacted topic; erasure writes a tombstone for the DEK and an erased
//                        marker in the same transaction as SubjectErased. The meta checks are
//                        the first record of their name in <topic>.meta.
//
// The KEK comes from a file (base64 of 32 bytes, one line, mode 0600 or stricter) or from the
// environment variable SECHEX_KEK (same encoding).
//
// Lifecycle: open() after the log; the KeyStore must not outlive it.
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ledger/crypto.h"
#include "ledger/log_store.h"
#include "ledger/result.h"

namespace sechex::ledger {

class Kek {
 public:
  // Errc::key_missing when the file is absent, key_invalid when it is not base64 of 32 bytes
  // or is readable by group or others.
  static Result<Kek> from_file(const std::string& path);
  // Errc::key_missing when the variable is unset.
  static Result<Kek> from_env(const char* variable = "SECHEX_KEK");
  static Result<Kek> from_base64(std::string_view text);
  // Writes a fresh random KEK to `path` (mode 0600); refuses to overwrite an existing file.
  static Result<void> generate_file(const std::string& path);
  ByteView bytes() const { return key_.view(); }

 private:
  explicit Kek(crypto::SecretBytes key) : key_(std::move(key)) {}
  crypto::SecretBytes key_;
};

// Storage of wrapped data keys, erasure markers and the meta checks. Implementations: the
// embedded one over a LogStore (KeyStore::open(LogStore&, ...)) and KafkaKeys.
// Thread-safety: all methods may be called concurrently.
class KeyBackend {
 public:
  virtual ~KeyBackend() = default;

  enum class State { absent, present, erased };
  struct Stored {
    State state = State::absent;
    std::string wrapped;  // the wrapped DEK when present
  };

  // A reader never creates keys, erases or writes a meta check.
  virtual bool read_only() const = 0;
  virtual std::uint32_t partition_count() const = 0;
  // What is stored for `subject` now (a backend shared by several processes reads through to
  // the shared store before answering `absent`).
  virtual Result<Stored> get(std::string_view subject) = 0;
  // Durably stores a new wrapped DEK. Callers serialise creation per subject.
  virtual Result<void> put(std::string_view subject, std::string_view wrapped) = 0;
  // Appends `erased_event` (a SubjectErased envelope) to the subject's partition and destroys
  // its DEK in the same atomic write.
  virtual Result<AppendResult> erase(std::string_view subject, ByteView erased_event) = 0;
  // The check value stored under meta `name` ("kek_check", "lookup_key_check"), storing
  // `candidate` first when there is none yet (and not read-only). The first value stored wins:
  // when several processes race, all get the winner's. Returns nullopt only when there is none
  // and this backend may not write it. The caller compares (constant time for secrets).
  virtual Result<std::optional<std::string>> meta_check(std::string_view name,
                                                        std::string_view candidate) = 0;
  // Bumped whenever an erasure becomes known to this process (own or another's): caches of
  // unwrapped keys are dropped when it moves. Cheap: called on every lookup.
  virtual std::uint64_t erasure_epoch() = 0;
};

class KeyStore {
 public:
  // Keys in the LogStore's own RocksDB (embedded mode).
  static Result<std::unique_ptr<KeyStore>> open(LogStore& log, Kek kek);
  static Result<std::unique_ptr<KeyStore>> open(std::unique_ptr<KeyBackend> backend, Kek kek);

  // Seals `plaintext` for `subject`, creating (and durably storing) the subject's data key on
  // first use. Errc::erased when the subject was erased.
  Result<Bytes> seal(std::string_view subject, ByteView event_id, std::string_view field,
                     ByteView plaintext);
  // Errc::erased when the subject's key was destroyed, not_found when it never existed,
  // authentication_failed when the ciphertext was altered or moved.
  Result<Bytes> open_field(std::string_view subject, ByteView event_id, std::string_view field,
                           ByteView sealed);
  Result<bool> is_erased(std::string_view subject);

  // Checks the lookup-hash key (data_dir.h load_lookup_key) against the one this ledger was
  // first started with, storing its check value when there is none yet (not when read-only: a
  // reader with no stored check succeeds). Errc::key_invalid when a different key was stored
  // first: every lookup hash this key makes would miss the projections' entries.
  Result<void> check_lookup_key(const Kek& lookup_key);

  // Crypto-shredding: appends a SubjectErased event for `subject` and destroys its data key
  // in the same durable write (KeyBackend::erase).
  Result<AppendResult> erase(std::string_view subject, std::string_view actor,
                             std::string_view reason, std::int64_t time_micros);

 private:
  KeyStore(std::unique_ptr<KeyBackend> backend, Kek kek);
  Result<crypto::SecretBytes> data_key(std::string_view subject, bool create);
  std::mutex& create_lock_for(std::string_view subject);

  std::unique_ptr<KeyBackend> backend_;
  Kek kek_;
  // Serialise key creation and erasure per partition (so one subject never gets two keys),
  // while subjects of different partitions proceed in parallel.
  std::vector<std::unique_ptr<std::mutex>> create_mu_;
  std::shared_mutex cache_mu_;
  std::uint64_t cache_epoch_ = 0;  // backend's erasure_epoch() the cache was filled under
  std::unordered_map<std::string, crypto::SecretBytes> cache_;
};

}  // namespace sechex::ledger
