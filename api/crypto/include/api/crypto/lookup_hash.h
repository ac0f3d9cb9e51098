// Keyed lookup hashes (HMAC-SHA-256 under the data directory's lookup key, data_dir.h): what the
// log and the projections hold instead of emails, IPs, one-time codes and tokens, so an index can
// be searched without storing the plaintext and a stolen copy of the log cannot be searched for a
// known address or brute-forced for an 8-digit code without the key.
//
// Each kind is domain-separated ("email\0<address>", ...), so a hash of one kind never equals a
// hash of another even for the same text. OTP codes are bound to their user and purpose: the
// same code issued to two users hashes differently.
//
// Lifecycle: built from the key at start-up; immutable. Thread-safety: all methods are const and
// may be called concurrently.
#pragma once

#include <string>
#include <string_view>

#include "ledger/crypto.h"
#include "ledger/key_store.h"

namespace sechex::api {

class LookupHasher {
 public:
  explicit LookupHasher(const ledger::Kek& key);

  // Raw 32-byte hashes (std::string of bytes; hex for display only).
  std::string email(std::string_view normalised_address) const;
  std::string ip(std::string_view canonical_ip) const;
  // Verification, reset, refresh and reauth tokens; `kind` separates their namespaces.
  std::string token(std::string_view kind, std::string_view token) const;
  std::string otp(std::string_view user, std::string_view purpose, std::string_view code) const;

 private:
  std::string mac(std::string_view kind, std::string_view a, std::string_view b = {},
                  std::string_view c = {}) const;
  ledger::crypto::HmacSha256Key key_;  // keyed with the lookup key once (crypto.h)
};

}  // namespace sechex::api
