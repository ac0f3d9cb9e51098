// Password hashing with Argon2id (RFC 9106) on a bounded pool of its own threads.
//
// Why a pool: one hash at the default parameters takes tens of milliseconds of CPU and 19 MiB of
// memory. The server's io threads must never run it (ARCHITECTURE.md, "No blocking on I/O
// threads"), and an unbounded queue would let a burst of logins pile up memory and latency. So
// the work runs on a fixed number of threads behind a bounded queue, and a call that finds the
// queue full fails at once with PasswordErrc::overloaded, which the API answers with 503 +
// Retry-After.
//
// Stored format: PHC strings as written by libargon2 (Debian libargon2 0~20171227):
//
//   $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<tag>
//
// salt and tag in unpadded standard base64 (RFC 4648 alphabet, no '='); we write a 16-byte salt
// from OpenSSL's RAND_bytes and a 32-byte tag. verify() accepts exactly this grammar
// (parse_argon2id_phc below) and nothing else: no other algorithm (argon2i, argon2d, bcrypt, …),
// no version-less strings, no keyid/data fields. Its cost follows the string's own parameters,
// so old hashes keep verifying after the defaults change (then needs_rehash() says to rehash on
// the next successful login), but parameters beyond kMaxVerify* are refused as malformed: a
// corrupt or planted hash must not make a login allocate gigabytes or run for minutes.
//
// Lifecycle: create() validates the parameters, starts the threads and computes the dummy hash
// for verify_dummy() (one hash, on the calling thread). stop() (also run by the destructor)
// refuses new calls with PasswordErrc::closed, fails every queued call with closed at once,
// lets the running ones finish, and joins the threads: no caller is left blocked. A call may be
// waiting when the destructor starts (it returns closed or its result), but none may start
// after.
//
// Thread-safety: every method may be called concurrently from any number of threads, except
// from inside the pool (Options::observer) where hash/verify/stop would deadlock. hash(),
// verify() and verify_dummy() block their caller until the work is done: callers are the
// server's blocking-pool threads, never io threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "ledger/result.h"
#include "ledger/strong_id.h"

namespace sechex::api {

enum class PasswordErrc {
  ok = 0,
  overloaded = 1,  // max_queue calls already waiting: answer 503 + Retry-After
  malformed_hash,  // the stored string is not an argon2id PHC string we accept
  too_long,        // password longer than kMaxPasswordBytes
  closed,          // the hasher is stopping or stopped
  bad_params,      // create(): parameters libargon2 or the kMaxVerify* limits refuse
  internal,        // libargon2 or the CSPRNG failed (out of memory, thread creation)
};

const std::error_category& password_category() noexcept;
inline std::error_code make_error_code(PasswordErrc e) noexcept {
  return {static_cast<int>(e), password_category()};
}

// Bounds the work of one call: passwords are arbitrary bytes (NUL included) up to this length.
inline constexpr std::size_t kMaxPasswordBytes = 1024;
// The DoS guard for verify(): a PHC string asking for more is malformed_hash.
inline constexpr std::uint32_t kMaxVerifyMemoryKib = 1024 * 1024;  // 1 GiB
inline constexpr std::uint32_t kMaxVerifyPasses = 10;
inline constexpr std::uint32_t kMaxVerifyParallelism = 16;
// Longer than any string we would write (~100 bytes) or accept (64-byte salt and tag).
inline constexpr std::size_t kMaxPhcBytes = 256;

// The defaults are OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
struct Argon2Params {
  std::uint32_t t_cost = 2;
  std::uint32_t m_cost_kib = 19456;
  std::uint32_t parallelism = 1;
  bool operator==(const Argon2Params&) const = default;
};

// What the strict parser reads from a PHC string.
struct Argon2idPhc {
  std::uint32_t version = 0;  // 19 (0x13) or 16 (0x10)
  Argon2Params params;
  std::size_t salt_bytes = 0;  // decoded lengths
  std::size_t tag_bytes = 0;
};

// The grammar verify() accepts, checked without running Argon2:
//   "$argon2id$v=" ("19" | "16") "$m=" N ",t=" N ",p=" N "$" B64 "$" B64
// N: decimal digits without a leading zero, fitting 32 bits; t >= 1, 1 <= p, m >= 8 * p
// (libargon2's minimums) and within the kMaxVerify* limits. B64: unpadded standard base64 of
// 8..64 bytes (salt) and 16..64 bytes (tag). At most kMaxPhcBytes. Anything else:
// PasswordErrc::malformed_hash. libargon2 decodes the string again when verifying (and also
// refuses non-canonical base64, whose unused low bits are not zero).
Result<Argon2idPhc> parse_argon2id_phc(std::string_view phc);

// A password as a caller typed it (strong_id.h): its own type, so that it cannot be passed
// where the stored PHC string, an address or another password is expected.
using Password = ledger::StrongText<struct PasswordTag>;

class PasswordHasher {
 public:
  // Test seam (Options::observer): what the pool is doing, so tests can hold a worker busy
  // without sleeping. `queued` is reported on the caller's thread with the pool's lock held;
  // `started` on the worker's thread just before it runs a call's work, without the lock, and
  // the worker waits for the observer to return.
  enum class PoolEvent { queued, started };

  struct Options {
    Argon2Params params;
    unsigned threads = 0;  // 0: std::thread::hardware_concurrency() (at least 1)
    // Calls waiting for a thread (not counting the ones running); at least 1.
    std::size_t max_queue = 64;
    std::function<void(PoolEvent)> observer;  // tests only; production leaves it empty
  };

  struct Stats {
    std::uint64_t hashes = 0;               // hash() computations finished
    std::uint64_t verifies = 0;             // verify() and verify_dummy() computations finished
    std::uint64_t rejected_overloaded = 0;  // calls refused with overloaded
    std::size_t queued = 0;                 // calls waiting for a thread now
  };

  // bad_params when libargon2 refuses `options.params` (t < 1, p < 1, m < 8 * p, …) or they
  // exceed the kMaxVerify* limits (our own hashes must pass our own guard); internal when the
  // dummy hash cannot be made.
  [[nodiscard]] static Result<std::unique_ptr<PasswordHasher>> create(Options options);

  ~PasswordHasher();
  PasswordHasher(const PasswordHasher&) = delete;
  PasswordHasher& operator=(const PasswordHasher&) = delete;

  // A PHC string with the current parameters and a fresh random salt.
  // too_long, overloaded, closed, internal.
  [[nodiscard]] Result<std::string> hash(Password password);

  // True when `password` matches; false for a wrong one. malformed_hash for a string
  // parse_argon2id_phc or libargon2 refuses (checked before queueing: no pool time is spent on
  // it); too_long, overloaded, closed, internal. The tag comparison is libargon2's:
  // argon2_verify_ctx compares with argon2_compare, which ORs the XOR of every byte pair and
  // has no early exit (constant time in the tag).
  [[nodiscard]] Result<bool> verify(std::string_view phc, Password password);

  // The same work as verify() of a hash with the current parameters (a fixed dummy hash made by
  // create()), for logins naming an unknown account: they take as long as a wrong password, so
  // response times do not tell which accounts exist. too_long, overloaded, closed, internal.
  [[nodiscard]] Result<void> verify_dummy(Password password);

  // True when `phc` was not made with the current parameters (m, t, p), the current version
  // (19), a salt of at least 16 bytes and a 32-byte tag, or does not parse: rehash it after the
  // next successful verify(). Pure: no pool work.
  [[nodiscard]] bool needs_rehash(std::string_view phc) const;

  [[nodiscard]] Stats stats() const;
  const Argon2Params& params() const;

  // See "Lifecycle" above. Idempotent; concurrent callers all return once the threads are
  // joined. Must not be called from the observer.
  void stop();

 private:
  struct Pool;
  explicit PasswordHasher(std::unique_ptr<Pool> pool);
  std::unique_ptr<Pool> pool_;
};

}  // namespace sechex::api

template <>
struct std::is_error_code_enum<sechex::api::PasswordErrc> : std::true_type {};
