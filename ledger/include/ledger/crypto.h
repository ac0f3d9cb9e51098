// Thin, strict wrappers over OpenSSL 3 for the primitives the ledger uses.
//
// Thread-safety: every function is reentrant; no global state besides OpenSSL's own.
// Secrets: key material lives in SecretBytes, which wipes itself (OPENSSL_cleanse) on
// destruction. Comparisons of secrets use constant_time_equal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::ledger::crypto {

// Bytes that hold a secret: wiped when destroyed, never printed.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(Bytes b) : bytes_(std::move(b)) {}
  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes&) = default;
  SecretBytes(SecretBytes&&) noexcept = default;
  SecretBytes& operator=(SecretBytes&&) noexcept = default;
  ~SecretBytes();

  ByteView view() const { return bytes_; }
  std::size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }

 private:
  Bytes bytes_;
};

// Fills `n` bytes from the OpenSSL CSPRNG (RAND_bytes).
Result<Bytes> random_bytes(std::size_t n);

Hash sha256(ByteView data);

// Incremental SHA-256 for hashing concatenations without copying.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(ByteView data);
  Hash finish();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

Result<Hash> hmac_sha256(ByteView key, ByteView data);

// HMAC-SHA-256 under one key that is used many times (lookup hashes, DPoP nonces): keyed once,
// and each mac() copies the keyed context instead of keying a new one (hmac_sha256 above is
// create(key) then mac(data); keying costs several times hashing a short message).
// Lifecycle: create() keys it; copies share the keyed context, which is freed (and its key
// cleansed) with the last copy. Thread-safety: the context is never updated in place, so mac()
// may be called concurrently from any thread.
class HmacSha256Key {
 public:
  static Result<HmacSha256Key> create(ByteView key);
  Result<Hash> mac(ByteView data) const;

 private:
  explicit HmacSha256Key(std::shared_ptr<void> keyed) : keyed_(std::move(keyed)) {}
  std::shared_ptr<void> keyed_;  // EVP_MAC_CTX*
};

// Constant-time equality; false when sizes differ (the size itself is not secret).
bool constant_time_equal(ByteView a, ByteView b);

// AES-256-GCM. seal returns ciphertext || 16-byte tag.
// Nonces: callers pass a fresh 12-byte random nonce per message. Nonces of 1 to 128 bytes are
// accepted (GCM allows longer ones, OpenSSL 3 does not); empty or longer nonces and other key
// sizes give invalid_argument.
Result<Bytes> aes_gcm_seal(ByteView key, ByteView nonce, ByteView aad, ByteView plaintext);
// Expects the 16-byte tag at the end of `ciphertext_and_tag`; fails with authentication_failed
// when the tag does not verify or the input is shorter than a tag. Tag lengths other than 16 are
// refused: the ledger never truncates tags.
Result<Bytes> aes_gcm_open(ByteView key, ByteView nonce, ByteView aad, ByteView ciphertext_and_tag);

// Ed25519 (RFC 8032, pure). Private keys are 32-byte seeds, public keys 32 bytes.
struct Ed25519KeyPair {
  SecretBytes seed;  // 32 bytes
  Bytes public_key;  // 32 bytes
};
Result<Ed25519KeyPair> ed25519_generate();
Result<Ed25519KeyPair> ed25519_from_seed(ByteView seed);
Result<Bytes> ed25519_sign(const Ed25519KeyPair& key, ByteView message);
// True only for a valid signature by `public_key`; malformed keys or signatures give false.
bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature);

// Reads an Ed25519 private key from a PEM (PKCS#8) file and writes one (mode 0600).
Result<Ed25519KeyPair> ed25519_load_pem(const std::string& path);
Result<void> ed25519_save_pem(const Ed25519KeyPair& key, const std::string& path);

std::string base64_encode(ByteView data);
// Strict standard base64 with padding; false on any other character or bad length.
bool base64_decode(std::string_view text, Bytes& out);

}  // namespace sechex::ledger::crypto
