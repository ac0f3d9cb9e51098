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
//                  AAD = "sechex-dek/v1" || subject      (column family `keys`, key = subject)
//   erased marker  0x00 || "erased"                      (replaces the wrapped DEK)
//   KEK check      meta "kek_check": a wrapped all-zero key under AAD "sechex-kek-check/v1",
//                  so a wrong KEK is refused at open instead of failing on every field.
//
// The KEK comes from a file (base64 of 32 bytes, one line, mode 0600 or stricter) or from the
// environment variable SECHEX_KEK (same encoding).
//
// Lifecycle: open() after the LogStore; the KeyStore must not outlive it.
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

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

class KeyStore {
 public:
  static Result<std::unique_ptr<KeyStore>> open(LogStore& log, Kek kek);

  // Seals `plaintext` for `subject`, creating (and durably storing) the subject's data key on
  // first use. Errc::erased when the subject was erased.
  Result<Bytes> seal(std::string_view subject, ByteView event_id, std::string_view field,
                     ByteView plaintext);
  // Errc::erased when the subject's key was destroyed, not_found when it never existed,
  // authentication_failed when the ciphertext was altered or moved.
  Result<Bytes> open_field(std::string_view subject, ByteView event_id, std::string_view field,
                           ByteView sealed);
  Result<bool> is_erased(std::string_view subject);

  // Crypto-shredding: appends a SubjectErased event for `subject` and replaces its data key
  // with the erased marker in the same durable write, then compacts the key range so the old
  // key does not linger in SST files.
  Result<AppendResult> erase(std::string_view subject, std::string_view actor,
                             std::string_view reason, std::int64_t time_micros);

 private:
  KeyStore(LogStore& log, Kek kek) : log_(log), kek_(std::move(kek)) {}
  Result<crypto::SecretBytes> data_key(std::string_view subject, bool create);

  LogStore& log_;
  Kek kek_;
  std::mutex create_mu_;  // serialises key creation and erasure
  std::shared_mutex cache_mu_;
  std::unordered_map<std::string, crypto::SecretBytes> cache_;
};

}  // namespace sechex::ledger
