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

#include <memory>
#include <string>
#include <string_view>

#include "ledger/crypto.h"
#include "ledger/key_store.h"

struct evp_mac_ctx_st;

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
  struct FreeMac {
    void operator()(evp_mac_ctx_st* ctx) const;
  };
  // Keyed with the lookup key at construction and only copied afterwards (EVP_MAC_CTX_dup),
  // never updated in place: concurrent const calls are safe. Freeing it cleanses the key.
  std::unique_ptr<evp_mac_ctx_st, FreeMac> keyed_;
};

}  // namespace sechex::api
