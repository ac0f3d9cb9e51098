#include "ledger/crypto.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

namespace sechex::ledger::crypto {
namespace {

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

constexpr std::size_t kGcmTag = 16;

int to_int(std::size_t n) { return static_cast<int>(n); }

Result<Ed25519KeyPair> keypair_from_pkey(EVP_PKEY* pkey) {
  Bytes seed(32), pub(32);
  std::size_t seed_len = seed.size(), pub_len = pub.size();
  if (EVP_PKEY_get_raw_private_key(pkey, seed.data(), &seed_len) != 1 || seed_len != 32 ||
      EVP_PKEY_get_raw_public_key(pkey, pub.data(), &pub_len) != 1 || pub_len != 32) {
    OPENSSL_cleanse(seed.data(), seed.size());
    return Errc::key_invalid;
  }
  return Ed25519KeyPair{SecretBytes(std::move(seed)), std::move(pub)};
}

}  // namespace

SecretBytes::~SecretBytes() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

Result<Bytes> random_bytes(std::size_t n) {
  Bytes out(n);
  if (n > 0 && RAND_bytes(out.data(), to_int(n)) != 1) return Errc::crypto_failure;
  return out;
}

Hash sha256(ByteView data) {
  Hash out{};
  unsigned int len = 0;
  // EVP_Digest with the default provider's SHA-256; cannot fail for valid arguments.
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(ByteView data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
Hash Sha256::finish() {
  Hash out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out.data(), &len);
  return out;
}

Result<Hash> hmac_sha256(ByteView key, ByteView data) {
  Hash out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), to_int(key.size()), data.data(), data.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    return Errc::crypto_failure;
  }
  return out;
}

bool constant_time_equal(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<Bytes> aes_gcm_seal(ByteView key, ByteView nonce, ByteView aad, ByteView plaintext) {
  if (key.size() != 32 || nonce.empty()) return Errc::invalid_argument;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Errc::crypto_failure;
  Bytes out(plaintext.size() + kGcmTag);
  int len = 0, total = 0;
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
    total = len;
  }
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + total, &len) != 1) return Errc::crypto_failure;
  total += len;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTag, out.data() + total) != 1) {
    return Errc::crypto_failure;
  }
  out.resize(static_cast<std::size_t>(total) + kGcmTag);
  return out;
}

Result<Bytes> aes_gcm_open(ByteView key, ByteView nonce, ByteView aad,
                           ByteView ciphertext_and_tag) {
  if (key.size() != 32 || nonce.empty()) return Errc::invalid_argument;
  if (ciphertext_and_tag.size() < kGcmTag) return Errc::authentication_failed;
  const auto ct = ciphertext_and_tag.first(ciphertext_and_tag.size() - kGcmTag);
  Bytes tag(ciphertext_and_tag.end() - kGcmTag, ciphertext_and_tag.end());
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Errc::crypto_failure;
  Bytes out(ct.size() + 16);
  int len = 0, total = 0;
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
    total = len;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTag, tag.data()) != 1) {
    return Errc::crypto_failure;
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + total, &len) != 1) {
    // Never hand out plaintext that failed authentication.
    OPENSSL_cleanse(out.data(), out.size());
    return Errc::authentication_failed;
  }
  total += len;
  out.resize(static_cast<std::size_t>(total));
  return out;
}

Result<Ed25519KeyPair> ed25519_generate() {
  SECHEX_TRY(auto seed, random_bytes(32));
  SecretBytes secret(std::move(seed));
  return ed25519_from_seed(secret.view());
}

Result<Ed25519KeyPair> ed25519_from_seed(ByteView seed) {
  if (seed.size() != 32) return Errc::key_invalid;
  Pkey pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  if (!pkey) return Errc::key_invalid;
  return keypair_from_pkey(pkey.get());
}

Result<Bytes> ed25519_sign(const Ed25519KeyPair& key, ByteView message) {
  const auto seed = key.seed.view();
  Pkey pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  if (!pkey) return Errc::key_invalid;
  MdCtx ctx(EVP_MD_CTX_new());
  Bytes sig(64);
  std::size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1 ||
      len != 64) {
    return Errc::crypto_failure;
  }
  return sig;
}

bool ed25519_verify(ByteView public_key, ByteView message, ByteView signature) {
  if (public_key.size() != 32 || signature.size() != 64) return false;
  Pkey pkey(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  if (!pkey) return false;
  MdCtx ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                          message.size()) == 1;
}

Result<Ed25519KeyPair> ed25519_load_pem(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Errc::key_missing;
  Pkey pkey(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!pkey || EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519) return Errc::key_invalid;
  return keypair_from_pkey(pkey.get());
}

Result<void> ed25519_save_pem(const Ed25519KeyPair& key, const std::string& path) {
  const auto seed = key.seed.view();
  Pkey pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  if (!pkey) return Errc::key_invalid;
  // Created 0600 and exclusive: a key file is never world-readable, not even for a moment, and
  // an existing key is never overwritten.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EEXIST ? Errc::invalid_argument : Errc::io_error;
  FILE* f = ::fdopen(fd, "wb");
  if (f == nullptr) {
    ::close(fd);
    return Errc::io_error;
  }
  const bool ok = PEM_write_PrivateKey(f, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
                  std::fflush(f) == 0 && ::fsync(fd) == 0;
  std::fclose(f);
  if (!ok) return Errc::io_error;
  return boost::outcome_v2::success();
}

std::string base64_encode(ByteView data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                to_int(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

bool base64_decode(std::string_view text, Bytes& out) {
  // EVP_DecodeBlock skips whitespace and ignores some malformations; check strictly first.
  if (text.size() % 4 != 0) return false;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '+' || c == '/';
    if (c == '=') {
      if (i < text.size() - 2) return false;
      ++pad;
    } else if (!alpha || pad > 0) {
      return false;
    }
  }
  Bytes result(text.size() / 4 * 3);
  if (!text.empty()) {
    const int n = EVP_DecodeBlock(
        result.data(), reinterpret_cast<const unsigned char*>(text.data()), to_int(text.size()));
    if (n < 0) return false;
    result.resize(static_cast<std::size_t>(n) - pad);
  }
  out = std::move(result);
  return true;
}

}  // namespace sechex::ledger::crypto
