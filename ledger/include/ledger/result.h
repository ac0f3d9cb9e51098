// Result<T> and the ledger's error codes.
//
// Every fallible function in sechex::ledger returns Result<T>
// (boost::outcome_v2::result<T, std::error_code>); ResultOf<T, E> where a code says too little.
// Exceptions are used only at process boundaries (main functions). Error codes are coarse on
// purpose: callers that need more context (a path, a partition and seq) get it from a richer return
// type such as VerifyReport, or log it where the context is known.
#pragma once

#include <boost/outcome/policy/terminate.hpp>
#include <boost/outcome/std_result.hpp>
#include <string>
#include <system_error>

namespace sechex {

template <typename T>
using Result = boost::outcome_v2::std_result<T>;

// The same pattern for a failure that must say more than a code can (which field, which input
// rule): a typed error E, unwrapped with the same SECHEX_TRY. api/http's ApiResult<T> (the one
// API error) and the JSON input parser's ResultOf<json, JsonInputError> are the two users.
template <typename T, typename E>
using ResultOf = boost::outcome_v2::basic_result<T, E, boost::outcome_v2::policy::terminate>;

#define SECHEX_CONCAT_INNER(a, b) a##b
#define SECHEX_CONCAT(a, b) SECHEX_CONCAT_INNER(a, b)
#define SECHEX_TRY_TMP SECHEX_CONCAT(sechex_try_result_, __LINE__)

// SECHEX_TRY(declaration-or-lvalue, expr): evaluates the Result `expr`; on failure returns its
// error from the current function (like Rust's `?`), else assigns the value:
//   SECHEX_TRY(auto key, load_key(path));
//   SECHEX_TRY(existing, compute());
#define SECHEX_TRY(target, ...)                       \
  auto&& SECHEX_TRY_TMP = (__VA_ARGS__);              \
  if (!SECHEX_TRY_TMP) return SECHEX_TRY_TMP.error(); \
  target = std::move(SECHEX_TRY_TMP).value()

// SECHEX_TRYV(expr): for Result<void> (or when the value is not needed).
// A name per expansion (__COUNTER__): a SECHEX_TRYV inside a lambda given to another must not
// shadow the outer one's.
#define SECHEX_TRYV(...) SECHEX_TRYV_NAMED(SECHEX_CONCAT(sechex_tryv_, __COUNTER__), __VA_ARGS__)
#define SECHEX_TRYV_NAMED(name, ...) \
  do {                               \
    auto&& name = (__VA_ARGS__);     \
    if (!name) return name.error();  \
  } while (false)

namespace ledger {

enum class Errc {
  ok = 0,
  invalid_argument = 1,   // caller passed something malformed (empty batch, bad partition)
  io_error,               // the store failed to read or write (disk, permissions)
  corruption,             // stored bytes are not what the ledger wrote
  chain_broken,           // a record does not link to its predecessor
  not_found,              // no such record / key / subject
  store_locked,           // another process holds the store open for writing
  store_missing,          // no ledger at the given path
  unsupported_version,    // data written by a newer format or schema than this build knows
  key_missing,            // a key file or key is absent
  key_invalid,            // a key is present but unusable (wrong size, wrong type, wrong KEK)
  crypto_failure,         // an OpenSSL primitive failed (should not happen)
  authentication_failed,  // AEAD tag or signature did not verify
  erased,                 // the subject's data key was deleted (crypto-shredded)
  writer_failed,          // an earlier durable write failed; the writer refuses more work
  closed,                 // the store is shutting down
  pruned,                 // the record's payload was removed by retention (its hash remains)
  not_supported,          // this log does not offer the operation (e.g. no Merkle tree kept)
};

const std::error_category& ledger_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), ledger_category()};
}

}  // namespace ledger
}  // namespace sechex

template <>
struct std::is_error_code_enum<sechex::ledger::Errc> : std::true_type {};
