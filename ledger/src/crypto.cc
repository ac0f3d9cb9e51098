#include "ledger/crypto.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "ledger/openssl_util.h"

namespace sechex::ledger::crypto {
namespace {

constexpr std::size_t kAesKeySize = 32;
constexpr std::size_t kGcmTagSize = 16;
// OpenSSL 3's GCM provider keeps the IV in a fixed 128-byte buffer and refuses longer ones;
// checking here turns that into a clear caller error instead of a crypto_failure.
constexpr std::size_t kGcmMaxNonceSize = 128;
constexpr std::size_t kEd25519KeySize = 32;
constexpr std::size_t kEd25519SigSize = 64;

using ossl::Bio;
using ossl::CipherCtx;
using ossl::ErrorQueueScope;
using ossl::File;
using ossl::MdCtx;
using ossl::Pkey;

// Wipes a buffer that may hold plaintext or key material unless released: early returns on
// failure paths must not leave half-decrypted data in freed heap memory.
class WipeUnlessReleased {
 public:
  explicit WipeUnlessReleased(Bytes& b) : bytes_(b) {}
  ~WipeUnlessReleased() {
    if (armed_ && !bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
  }
  WipeUnlessReleased(const WipeUnlessReleased&) = delete;
  WipeUnlessReleased& operator=(const WipeUnlessReleased&) = delete;
  void release() { armed_ = false; }

 private:
  Bytes& bytes_;
  bool armed_ = true;
};

// OpenSSL's length parameters are int; anything larger would be silently truncated.
bool fits_int(std::size_t n) { return n <= static_cast<std::size_t>(INT_MAX); }
int to_int(std::size_t n) { return static_cast<int>(n); }

// A wrong hash would be written into the chain and signed, so SHA-256 failing (only possible when
// OpenSSL itself is broken, e.g. out of memory or a missing provider) stops the process rather
// than return a value that looks valid.
[[noreturn]] void sha256_failed() {
  std::fputs("sechex: SHA-256 failed inside OpenSSL; aborting\n", stderr);
  std::abort();
}

// The implicit fetch behind EVP_sha256() costs a lock and a provider lookup on every init, which
// is noticeable next to hashing a single record. Fetched once; lives until exit.
const EVP_MD* sha256_md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
  if (md == nullptr) sha256_failed();
  return md;
}

Pkey pkey_from_seed(ByteView seed) {
  if (seed.size() != kEd25519KeySize) return nullptr;
  return Pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
}

Result<Ed25519KeyPair> keypair_from_pkey(EVP_PKEY* pkey) {
  Bytes seed(kEd25519KeySize), pub(kEd25519KeySize);
  WipeUnlessReleased wipe(seed);
  std::size_t seed_len = seed.size(), pub_len = pub.size();
  if (EVP_PKEY_get_raw_private_key(pkey, seed.data(), &seed_len) != 1 ||
      seed_len != kEd25519KeySize || EVP_PKEY_get_raw_public_key(pkey, pub.data(), &pub_len) != 1 ||
      pub_len != kEd25519KeySize) {
    return Errc::key_invalid;
  }
  wipe.release();
  return Ed25519KeyPair{SecretBytes(std::move(seed)), std::move(pub)};
}

// Refuses to ask for a passphrase: the default callback would prompt on the terminal, which
// hangs a daemon. Encrypted key files are reported as unusable instead.
int no_passphrase(char*, int, int, void*) { return -1; }

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

SecretBytes::~SecretBytes() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

Result<Bytes> random_bytes(std::size_t n) {
  if (!fits_int(n)) return Errc::invalid_argument;
  ErrorQueueScope errors;
  Bytes out(n);
  if (n > 0 && RAND_bytes(out.data(), to_int(n)) != 1) return Errc::crypto_failure;
  return out;
}

Hash sha256(ByteView data) {
  // One context per thread, re-initialised per call: EVP_Digest would allocate, cleanse and
  // free a context on every call, which costs more than hashing a 300-byte record.
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Ctx tl;
  Hash out{};
  unsigned int len = 0;
  if (tl.ctx == nullptr || EVP_DigestInit_ex2(tl.ctx, sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(tl.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(tl.ctx, out.data(), &len) != 1 || len != out.size()) {
    sha256_failed();
  }
  return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr ||
      EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), sha256_md(), nullptr) != 1) {
    sha256_failed();
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(ByteView data) {
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) != 1) {
    sha256_failed();
  }
}

Hash Sha256::finish() {
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  Hash out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != out.size()) sha256_failed();
  // Start over so that a later update() begins a new message instead of failing on a finalised
  // context.
  if (EVP_DigestInit_ex(ctx, sha256_md(), nullptr) != 1) sha256_failed();
  return out;
}

Result<Hash> hmac_sha256(ByteView key, ByteView data) {
  SECHEX_TRY(const auto keyed, HmacSha256Key::create(key));
  return keyed.mac(data);
}

Result<HmacSha256Key> HmacSha256Key::create(ByteView key) {
  if (!fits_int(key.size())) return Errc::invalid_argument;
  ErrorQueueScope errors;
  // Fetched once, like sha256_md(): an implicit fetch per key costs a lock and a provider lookup.
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return Errc::crypto_failure;
  std::shared_ptr<void> keyed(EVP_MAC_CTX_new(mac),
                              [](void* ctx) { EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX*>(ctx)); });
  char digest[] = "SHA2-256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  // An empty span may have a null data(), and to OpenSSL's HMAC init a null key means "keep the
  // previous key" (of which there is none) rather than "the empty key".
  static const unsigned char kEmptyKey = 0;
  if (!keyed || EVP_MAC_init(static_cast<EVP_MAC_CTX*>(keyed.get()),
                             key.empty() ? &kEmptyKey : key.data(), key.size(), params) != 1) {
    return Errc::crypto_failure;
  }
  return HmacSha256Key(std::move(keyed));
}

Result<Hash> HmacSha256Key::mac(ByteView data) const {
  ErrorQueueScope errors;
  const std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
      EVP_MAC_CTX_dup(static_cast<const EVP_MAC_CTX*>(keyed_.get())), &EVP_MAC_CTX_free);
  Hash out{};
  std::size_t len = 0;
  if (!ctx || EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
    return Errc::crypto_failure;
  }
  return out;
}

bool constant_time_equal(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<Bytes> aes_gcm_seal(ByteView key, ByteView nonce, ByteView aad, ByteView plaintext) {
  // GCM is undefined for an empty IV (SP 800-38D requires at least one bit).
  if (key.size() != kAesKeySize || nonce.empty() || nonce.size() > kGcmMaxNonceSize ||
      !fits_int(aad.size()) || !fits_int(plaintext.size())) {
    return Errc::invalid_argument;
  }
  ErrorQueueScope errors;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Errc::crypto_failure;
  Bytes out(plaintext.size() + kGcmTagSize);
  int len = 0;
  std::size_t total = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, to_int(nonce.size()), nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) != 1) {
    return Errc::crypto_failure;
  }
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), to_int(aad.size())) != 1) {
    return Errc::crypto_failure;
  }
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(),
                          to_int(plaintext.size())) != 1) {
      return Errc::crypto_failure;
    }
    total = static_cast<std::size_t>(len);
  }
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + total, &len) != 1) return Errc::crypto_failure;
  total += static_cast<std::size_t>(len);
  if (total != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagSize, out.data() + total) != 1) {
    return Errc::crypto_failure;
  }
  return out;
}

Result<Bytes> aes_gcm_open(ByteView key, ByteView nonce, ByteView aad,
                           ByteView ciphertext_and_tag) {
  if (key.size() != kAesKeySize || nonce.empty() || nonce.size() > kGcmMaxNonceSize ||
      !fits_int(aad.size()) || !fits_int(ciphertext_and_tag.size())) {
    return Errc::invalid_argument;
  }
  // Too short to even hold a tag: indistinguishable from a forged or truncated message.
  if (ciphertext_and_tag.size() < kGcmTagSize) return Errc::authentication_failed;
  const auto ct = ciphertext_and_tag.first(ciphertext_and_tag.size() - kGcmTagSize);
  // The tag control takes a non-const pointer.
  std::uint8_t tag[kGcmTagSize];
  std::copy(ciphertext_and_tag.end() - kGcmTagSize, ciphertext_and_tag.end(), tag);

  ErrorQueueScope errors;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Errc::crypto_failure;
  // One spare block so the final call always has a valid, non-null place to write.
  Bytes out(ct.size() + kGcmTagSize);
  WipeUnlessReleased wipe(out);
  int len = 0;
  std::size_t total = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, to_int(nonce.size()), nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) != 1) {
    return Errc::crypto_failure;
  }
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), to_int(aad.size())) != 1) {
    return Errc::crypto_failure;
  }
  if (!ct.empty()) {
    if (EVP_DecryptUpdate(ctx.get(), out.data(), &len, ct.data(), to_int(ct.size())) != 1) {
      return Errc::crypto_failure;
    }
    total = static_cast<std::size_t>(len);
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize, tag) != 1) {
    return Errc::crypto_failure;
  }
  // The plaintext produced above is unauthenticated until this succeeds; `wipe` erases it.
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + total, &len) != 1) {
    return Errc::authentication_failed;
  }
  total += static_cast<std::size_t>(len);
  if (total != ct.size()) return Errc::crypto_failure;
  out.resize(total);
  wipe.release();
  return out;
}

Result<Ed25519KeyPair> ed25519_generate() {
  SECHEX_TRY(auto seed, random_bytes(kEd25519KeySize));
  const SecretBytes secret(std::move(seed));
  return ed25519_from_seed(secret.view());
}

Result<Ed25519KeyPair> ed25519_from_seed(ByteView seed) {
  ErrorQueueScope errors;
  const Pkey pkey = pkey_from_seed(seed);
  if (!pkey) return Errc::key_invalid;
  return keypair_from_pkey(pkey.get());
}

Result<Bytes> ed25519_sign(const Ed25519KeyPair& key, ByteView message) {
  ErrorQueueScope errors;
  const Pkey pkey = pkey_from_seed(key.seed.view());
  if (!pkey) return Errc::key_invalid;
  MdCtx ctx(EVP_MD_CTX_new());
  Bytes sig(kEd25519SigSize);
  std::size_t len = sig.size();
  // Pure Ed25519: no digest is named, the message goes in whole.
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1 ||
      len != kEd25519SigSize) {
    return Errc::crypto_failure;
  }
  return sig;
}

bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature) {
  if (public_key.size() != kEd25519KeySize || signature.size() != kEd25519SigSize) return false;
  ErrorQueueScope errors;
  const Pkey pkey(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  if (!pkey) return false;
  MdCtx ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                          message.size()) == 1;
}

Result<Ed25519KeyPair> ed25519_load_pem(const std::string& path) {
  ErrorQueueScope errors;
  // "e" = O_CLOEXEC: children spawned by the process must not inherit a key file descriptor.
  const File f(std::fopen(path.c_str(), "rbe"));
  if (!f) return errno == ENOENT || errno == ENOTDIR ? Errc::key_missing : Errc::io_error;
  const Pkey pkey(PEM_read_PrivateKey(f.get(), nullptr, no_passphrase, nullptr));
  if (!pkey || EVP_PKEY_is_a(pkey.get(), "ED25519") != 1) return Errc::key_invalid;
  return keypair_from_pkey(pkey.get());
}

Result<void> ed25519_save_pem(const Ed25519KeyPair& key, const std::string& path) {
  ErrorQueueScope errors;
  const Pkey pkey = pkey_from_seed(key.seed.view());
  if (!pkey) return Errc::key_invalid;
  return ossl::save_private_key_pem(pkey.get(), path);
}

std::string base64_encode(ByteView data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                            std::uint32_t{data[i + 2]};
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

bool base64_decode(std::string_view text, Bytes& out) {
  // Hand-written rather than EVP_DecodeBlock, which skips whitespace and cannot report how much
  // padding it consumed. Only the canonical encoding is accepted (padding only at the end, unused
  // bits zero), so every byte string has exactly one accepted spelling: signed notes and key
  // files cannot be altered without changing their meaning.
  if (text.size() % 4 != 0) return false;
  Bytes result;
  result.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::size_t pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    int v[4] = {0, 0, 0, 0};
    for (std::size_t j = 0; j < 4 - pad; ++j) {
      v[j] = base64_value(text[i + j]);
      if (v[j] < 0) return false;
    }
    const std::uint32_t n =
        (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
        (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
    result.push_back(static_cast<std::uint8_t>(n >> 16));
    if (pad == 2) {
      if ((n & 0xffff) != 0) return false;
    } else {
      result.push_back(static_cast<std::uint8_t>(n >> 8));
      if (pad == 1) {
        if ((n & 0xff) != 0) return false;
      } else {
        result.push_back(static_cast<std::uint8_t>(n));
      }
    }
  }
  out = std::move(result);
  return true;
}

}  // namespace sechex::ledger::crypto
