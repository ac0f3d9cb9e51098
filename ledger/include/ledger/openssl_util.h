// Shared plumbing for code that calls OpenSSL directly (ledger/ crypto, api/ JOSE): owning
// handles, the error-queue guard, and durable private files. Application code uses crypto.h.
//
// Thread-safety: everything here is reentrant.
#pragma once

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "ledger/result.h"

namespace sechex::ledger::ossl {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }  // BIO_free returns int
};
using Bio = std::unique_ptr<BIO, BioFree>;
struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileClose>;

// OpenSSL records failures on a per-thread queue. We translate them into Errc, so anything left
// behind would only be misread later by an unrelated caller on the same thread (SSL_get_error in
// a TLS server consults this queue). Popping to a mark leaves the caller's own entries alone.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_set_mark(); }
  ~ErrorQueueScope() { ERR_pop_to_mark(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

enum class Replace {
  never,       // an existing file is kept: Errc::invalid_argument (keys are never overwritten)
  atomically,  // an existing file is replaced in one step (indexes)
};

// Writes `content` to a private temporary file beside `path` (created 0600, so it is never
// readable by others, not even briefly), makes it durable, links or renames it into place and
// fsyncs the directory: after a crash a reader sees the old file or the whole new one.
Result<void> write_private_file(const std::string& path, std::string_view content, Replace mode);

// PKCS#8 PEM of a private key, encoded in OpenSSL secure memory, written with Replace::never.
Result<void> save_private_key_pem(EVP_PKEY* key, const std::string& path);

}  // namespace sechex::ledger::ossl
