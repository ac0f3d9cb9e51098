#include "api/crypto/passwords.h"

#include <argon2.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "ledger/crypto.h"

namespace sechex::api {
namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kTagBytes = 32;
constexpr std::uint32_t kVersion = ARGON2_VERSION_13;  // 19, the version RFC 9106 specifies

class PasswordCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.passwords"; }
  std::string message(int code) const override {
    switch (static_cast<PasswordErrc>(code)) {
      case PasswordErrc::ok:
        return "ok";
      case PasswordErrc::overloaded:
        return "password hashing pool is full";
      case PasswordErrc::malformed_hash:
        return "stored password hash is not an acceptable argon2id PHC string";
      case PasswordErrc::too_long:
        return "password is longer than 1024 bytes";
      case PasswordErrc::closed:
        return "password hasher is stopped";
      case PasswordErrc::bad_params:
        return "argon2id parameters out of range";
      case PasswordErrc::internal:
        return "password hashing failed";
    }
    return "unknown password error";
  }
};

bool take(std::string_view& s, std::string_view literal) {
  if (!s.starts_with(literal)) return false;
  s.remove_prefix(literal.size());
  return true;
}

// Minimal decimal: libargon2's decoder also refuses leading zeros, so both agree on the value.
std::optional<std::uint32_t> take_number(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || n > 10 || (n > 1 && s[0] == '0')) return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
  if (v > UINT32_MAX) return std::nullopt;
  s.remove_prefix(n);
  return static_cast<std::uint32_t>(v);
}

bool is_base64(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// Returns the decoded length of an unpadded base64 run; n % 4 == 1 leaves 6 bits, never valid.
std::optional<std::size_t> take_base64(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && is_base64(s[n])) ++n;
  if (n == 0 || n % 4 == 1) return std::nullopt;
  s.remove_prefix(n);
  return n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
}

bool within_limits(const Argon2Params& p) {
  return p.t_cost >= ARGON2_MIN_TIME && p.t_cost <= kMaxVerifyPasses && p.parallelism >= 1 &&
         p.parallelism <= kMaxVerifyParallelism &&
         p.m_cost_kib >= std::uint64_t{8} * p.parallelism && p.m_cost_kib <= kMaxVerifyMemoryKib;
}

// A non-null pointer even for an empty view: libargon2 accepts (NULL, 0), but this keeps us
// independent of how a given build checks it.
const char* bytes_of(std::string_view s) { return s.empty() ? "" : s.data(); }

Result<std::string> hash_now(const Argon2Params& p, std::string_view password) {
  SECHEX_TRY(const auto salt, ledger::crypto::random_bytes(kSaltBytes));
  std::string out(
      argon2_encodedlen(p.t_cost, p.m_cost_kib, p.parallelism, kSaltBytes, kTagBytes, Argon2_id),
      '\0');
  const int rc = argon2id_hash_encoded(p.t_cost, p.m_cost_kib, p.parallelism, bytes_of(password),
                                       password.size(), salt.data(), salt.size(), kTagBytes,
                                       out.data(), out.size());
  if (rc != ARGON2_OK) return PasswordErrc::internal;
  out.resize(std::strlen(out.c_str()));  // argon2_encodedlen counts the NUL
  return out;
}

// `phc` has passed parse_argon2id_phc, so it holds no NUL and c_str() is the whole string.
// argon2id_verify takes the password with its length, so NULs in it are hashed like any byte:
// Debian's 0~20171227 decode_string leaves ctx.pwd/pwdlen as argon2_verify set them (the 2015
// decoder zeroed pwdlen); HashesEveryByteOfAPasswordWithNuls would catch a library that did.
Result<bool> verify_now(const std::string& phc, std::string_view password) {
  const int rc = argon2id_verify(phc.c_str(), bytes_of(password), password.size());
  switch (rc) {
    case ARGON2_OK:
      return true;
    case ARGON2_VERIFY_MISMATCH:
      return false;
    case ARGON2_MEMORY_ALLOCATION_ERROR:
    case ARGON2_THREAD_FAIL:
      return PasswordErrc::internal;
    default:  // decoding or validation of the stored string
      return PasswordErrc::malformed_hash;
  }
}

// One queued call. Its caller waits on the future; run() or fail() fulfils it exactly once.
struct Job {
  virtual ~Job() = default;
  virtual void run() noexcept = 0;
  virtual void fail(std::error_code ec) noexcept = 0;
};

template <typename T, typename F>
struct TypedJob final : Job {
  explicit TypedJob(F f) : work(std::move(f)) {}
  void run() noexcept override {
    try {
      promise.set_value(work());
    } catch (...) {  // std::bad_alloc from a string: fail the call, keep the worker
      fail(PasswordErrc::internal);
    }
  }
  void fail(std::error_code ec) noexcept override {
    try {
      promise.set_value(ec);
    } catch (...) {  // already satisfied: nothing left to tell the caller
    }
  }
  F work;
  std::promise<Result<T>> promise;
};

}  // namespace

const std::error_category& password_category() noexcept {
  static const PasswordCategory category;
  return category;
}

Result<Argon2idPhc> parse_argon2id_phc(std::string_view phc) {
  if (phc.size() > kMaxPhcBytes) return PasswordErrc::malformed_hash;
  std::string_view s = phc;
  Argon2idPhc out;
  if (!take(s, "$argon2id$v=")) return PasswordErrc::malformed_hash;
  const auto version = take_number(s);
  if (!version || (*version != ARGON2_VERSION_13 && *version != ARGON2_VERSION_10)) {
    return PasswordErrc::malformed_hash;
  }
  out.version = *version;
  std::optional<std::uint32_t> m, t, p;
  if (!take(s, "$m=") || !(m = take_number(s)) || !take(s, ",t=") || !(t = take_number(s)) ||
      !take(s, ",p=") || !(p = take_number(s))) {
    return PasswordErrc::malformed_hash;
  }
  out.params = {.t_cost = *t, .m_cost_kib = *m, .parallelism = *p};
  if (!within_limits(out.params)) return PasswordErrc::malformed_hash;
  std::optional<std::size_t> salt, tag;
  if (!take(s, "$") || !(salt = take_base64(s)) || !take(s, "$") || !(tag = take_base64(s)) ||
      !s.empty()) {
    return PasswordErrc::malformed_hash;
  }
  if (*salt < 8 || *salt > 64 || *tag < 16 || *tag > 64) return PasswordErrc::malformed_hash;
  out.salt_bytes = *salt;
  out.tag_bytes = *tag;
  return out;
}

struct PasswordHasher::Pool {
  Options options;
  std::string dummy_phc;

  mutable std::mutex mu;
  std::condition_variable wake;  // workers: a job was queued, or stopping
  std::deque<std::unique_ptr<Job>> queue;
  bool stopping = false;
  std::vector<std::thread> threads;
  std::once_flag joined;

  std::atomic<std::uint64_t> hashes{0};
  std::atomic<std::uint64_t> verifies{0};
  std::atomic<std::uint64_t> rejected{0};

  // Runs `work` on a worker and returns its result; the caller blocks on a future (no polling).
  template <typename T, typename F>
  Result<T> submit(F work) {
    auto job = std::make_unique<TypedJob<T, F>>(std::move(work));
    auto done = job->promise.get_future();
    {
      std::lock_guard lock(mu);
      if (stopping) return PasswordErrc::closed;
      if (queue.size() >= options.max_queue) {
        rejected.fetch_add(1, std::memory_order_relaxed);
        return PasswordErrc::overloaded;
      }
      queue.push_back(std::move(job));
      // Under the lock, so stop() cannot finish (and the pool go away) while it runs.
      if (options.observer) options.observer(PoolEvent::queued);
    }
    wake.notify_one();
    // From here on the pool may be destroyed (the destructor fails queued jobs): touch only
    // the future.
    return done.get();
  }

  void work() {
    while (true) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock lock(mu);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;  // stop() has already failed whatever was queued
        job = std::move(queue.front());
        queue.pop_front();
      }
      if (options.observer) options.observer(PoolEvent::started);
      job->run();
    }
  }

  void stop() {
    std::deque<std::unique_ptr<Job>> pending;
    {
      std::lock_guard lock(mu);
      stopping = true;
      pending.swap(queue);
    }
    wake.notify_all();
    for (auto& job : pending) job->fail(PasswordErrc::closed);
    std::call_once(joined, [&] {
      for (auto& t : threads) t.join();
    });
  }
};

Result<std::unique_ptr<PasswordHasher>> PasswordHasher::create(Options options) {
  if (!within_limits(options.params) || options.max_queue == 0) return PasswordErrc::bad_params;
  if (options.threads == 0) options.threads = std::max(1u, std::thread::hardware_concurrency());
  auto pool = std::make_unique<Pool>();
  pool->options = std::move(options);
  // A random password nobody knows: verify_dummy() can never succeed, only cost the same.
  SECHEX_TRY(const auto secret, ledger::crypto::random_bytes(32));
  SECHEX_TRY(
      pool->dummy_phc,
      hash_now(pool->options.params,
               std::string_view(reinterpret_cast<const char*>(secret.data()), secret.size())));
  try {
    for (unsigned i = 0; i < pool->options.threads; ++i) {
      pool->threads.emplace_back([p = pool.get()] { p->work(); });
    }
  } catch (const std::system_error&) {
    pool->stop();
    return PasswordErrc::internal;
  }
  return std::unique_ptr<PasswordHasher>(new PasswordHasher(std::move(pool)));
}

PasswordHasher::PasswordHasher(std::unique_ptr<Pool> pool) : pool_(std::move(pool)) {}

PasswordHasher::~PasswordHasher() { pool_->stop(); }

void PasswordHasher::stop() { pool_->stop(); }

const Argon2Params& PasswordHasher::params() const { return pool_->options.params; }

Result<std::string> PasswordHasher::hash(Password presented) {
  const auto password = presented.view();
  if (password.size() > kMaxPasswordBytes) return PasswordErrc::too_long;
  Pool& pool = *pool_;
  return pool.submit<std::string>([&pool, password]() -> Result<std::string> {
    auto out = hash_now(pool.options.params, password);
    pool.hashes.fetch_add(1, std::memory_order_relaxed);
    return out;
  });
}

Result<bool> PasswordHasher::verify(std::string_view phc, Password presented) {
  const auto password = presented.view();
  if (password.size() > kMaxPasswordBytes) return PasswordErrc::too_long;
  SECHEX_TRYV(parse_argon2id_phc(phc));
  Pool& pool = *pool_;
  return pool.submit<bool>([&pool, stored = std::string(phc), password]() -> Result<bool> {
    auto out = verify_now(stored, password);
    pool.verifies.fetch_add(1, std::memory_order_relaxed);
    return out;
  });
}

Result<void> PasswordHasher::verify_dummy(Password presented) {
  const auto password = presented.view();
  if (password.size() > kMaxPasswordBytes) return PasswordErrc::too_long;
  // The dummy's parse mirrors verify()'s, so both paths cost the same before queueing too.
  SECHEX_TRYV(parse_argon2id_phc(pool_->dummy_phc));
  Pool& pool = *pool_;
  return pool.submit<void>([&pool, password]() -> Result<void> {
    auto out = verify_now(pool.dummy_phc, password);
    pool.verifies.fetch_add(1, std::memory_order_relaxed);
    if (!out) return out.error();
    return boost::outcome_v2::success();
  });
}

bool PasswordHasher::needs_rehash(std::string_view phc) const {
  const auto parsed = parse_argon2id_phc(phc);
  if (!parsed) return true;
  return parsed.value().version != kVersion || parsed.value().params != pool_->options.params ||
         parsed.value().salt_bytes < kSaltBytes || parsed.value().tag_bytes != kTagBytes;
}

PasswordHasher::Stats PasswordHasher::stats() const {
  Stats s;
  s.hashes = pool_->hashes.load(std::memory_order_relaxed);
  s.verifies = pool_->verifies.load(std::memory_order_relaxed);
  s.rejected_overloaded = pool_->rejected.load(std::memory_order_relaxed);
  std::lock_guard lock(pool_->mu);
  s.queued = pool_->queue.size();
  return s;
}

}  // namespace sechex::api
