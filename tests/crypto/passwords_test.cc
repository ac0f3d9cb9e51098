// Argon2id password hashing: the RFC 9106 vector through the linked libargon2, the PHC strings
// we write and accept, the DoS guard, rehash decisions, and the bounded pool (overload, stop).
// Pool tests hold the single worker inside the test seam (Options::observer) instead of
// sleeping, so every ordering they rely on is forced, not timed; a regression that leaves a
// caller blocked shows as a hang, which ctest's --timeout turns into a failure.
#include "api/crypto/passwords.h"

#include <argon2.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdio>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace sechex::api {
namespace {

using namespace std::string_literals;

// Cheap parameters keep the suite fast; one test checks the real defaults.
constexpr Argon2Params kSmall{.t_cost = 1, .m_cost_kib = 64, .parallelism = 1};

PasswordHasher::Options options(Argon2Params params = kSmall, unsigned threads = 1,
                                std::size_t max_queue = 64) {
  PasswordHasher::Options o;
  o.params = params;
  o.threads = threads;
  o.max_queue = max_queue;
  return o;
}

std::unique_ptr<PasswordHasher> make(PasswordHasher::Options o) {
  auto hasher = PasswordHasher::create(std::move(o));
  if (!hasher) ADD_FAILURE() << "create: " << hasher.error().message();
  return hasher ? std::move(hasher).value() : nullptr;
}

std::string hex(const std::vector<std::uint8_t>& bytes) {
  std::string out;
  char buf[3];
  for (auto b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

// "$argon2i$…" etc. made by libargon2 itself, so only the algorithm name is wrong.
std::string libargon2_encoded(argon2_type type, std::uint32_t version = ARGON2_VERSION_13,
                              std::size_t salt_len = 16) {
  const std::vector<std::uint8_t> salt(salt_len, 0x5a);
  std::string out(argon2_encodedlen(1, 64, 1, static_cast<std::uint32_t>(salt_len), 32, type),
                  '\0');
  const int rc = argon2_hash(1, 64, 1, "pw", 2, salt.data(), salt.size(), nullptr, 32, out.data(),
                             out.size(), type, version);
  EXPECT_EQ(rc, ARGON2_OK) << argon2_error_message(rc);
  out.resize(out.find('\0'));
  return out;
}

// Counts pool events and, while closed, holds the worker that reports `started`.
class PoolProbe {
 public:
  std::function<void(PasswordHasher::PoolEvent)> observer() {
    return [this](PasswordHasher::PoolEvent e) {
      std::unique_lock lock(mu_);
      ++(e == PasswordHasher::PoolEvent::queued ? queued_ : started_);
      changed_.notify_all();
      if (e == PasswordHasher::PoolEvent::started) {
        changed_.wait(lock, [&] { return open_; });
      }
    };
  }
  void wait_started(int n) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return started_ >= n; });
  }
  void wait_queued(int n) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return queued_ >= n; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  void close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  int started() {
    std::lock_guard lock(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int queued_ = 0;
  int started_ = 0;
  bool open_ = false;
};

// One worker, one queue slot: `running` holds the worker (inside the probe), `waiting` holds
// the only queue slot.
struct FullPool {
  PoolProbe probe;
  std::unique_ptr<PasswordHasher> hasher;
  std::future<Result<std::string>> running;
  std::future<Result<bool>> waiting;
  std::string stored;

  FullPool() {
    auto o = options(kSmall, 1, 1);
    o.observer = probe.observer();
    probe.open();  // let the setup hash through
    hasher = make(std::move(o));
    stored = hasher->hash(Password("pw")).value();
  }
  // Even when a test stops early, the held worker must go on, or the futures' destructors wait.
  ~FullPool() { probe.open(); }
  void fill() {
    probe.close();
    running = std::async(std::launch::async, [this] { return hasher->hash(Password("a")); });
    probe.wait_started(2);  // the setup hash was #1
    waiting =
        std::async(std::launch::async, [this] { return hasher->verify(stored, Password("pw")); });
    probe.wait_queued(3);
  }
};

TEST(Argon2idLibrary, ReproducesTheRfc9106Argon2idTestVector) {
  // RFC 9106 section 5.3: proves the linked library computes Argon2id version 0x13.
  std::vector<std::uint8_t> pwd(32, 0x01), salt(16, 0x02), secret(8, 0x03), ad(12, 0x04), tag(32);
  argon2_context ctx{};
  ctx.out = tag.data();
  ctx.outlen = static_cast<std::uint32_t>(tag.size());
  ctx.pwd = pwd.data();
  ctx.pwdlen = static_cast<std::uint32_t>(pwd.size());
  ctx.salt = salt.data();
  ctx.saltlen = static_cast<std::uint32_t>(salt.size());
  ctx.secret = secret.data();
  ctx.secretlen = static_cast<std::uint32_t>(secret.size());
  ctx.ad = ad.data();
  ctx.adlen = static_cast<std::uint32_t>(ad.size());
  ctx.t_cost = 3;
  ctx.m_cost = 32;
  ctx.lanes = 4;
  ctx.threads = 4;
  ctx.version = ARGON2_VERSION_13;
  ctx.flags = ARGON2_DEFAULT_FLAGS;
  ASSERT_EQ(argon2id_ctx(&ctx), ARGON2_OK);
  EXPECT_EQ(hex(tag), "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
}

TEST(PasswordHasher, DefaultParametersMeetOwaspAndAppearInThePhcString) {
  const Argon2Params defaults;
  EXPECT_GE(defaults.m_cost_kib, 19456u);
  EXPECT_GE(defaults.t_cost, 2u);
  EXPECT_GE(defaults.parallelism, 1u);
  PasswordHasher::Options o;
  o.threads = 1;
  EXPECT_EQ(o.params, defaults);
  auto hasher = make(std::move(o));
  const auto phc = hasher->hash(Password("correct horse")).value();
  const auto prefix = "$argon2id$v=19$m=" + std::to_string(defaults.m_cost_kib) +
                      ",t=" + std::to_string(defaults.t_cost) +
                      ",p=" + std::to_string(defaults.parallelism) + "$";
  EXPECT_EQ(phc.rfind(prefix, 0), 0u) << phc;
  const auto parsed = parse_argon2id_phc(phc).value();
  EXPECT_EQ(parsed.salt_bytes, 16u);
  EXPECT_EQ(parsed.tag_bytes, 32u);
  EXPECT_TRUE(hasher->verify(phc, Password("correct horse")).value());
  EXPECT_FALSE(hasher->needs_rehash(phc));
}

TEST(PasswordHasher, VerifiesTheRightPasswordAndRefusesWrongOnes) {
  auto hasher = make(options());
  const auto phc = hasher->hash(Password("hunter2")).value();
  EXPECT_TRUE(hasher->verify(phc, Password("hunter2")).value());
  for (const char* wrong : {"hunter3", "Hunter2", "hunter", "hunter22", ""}) {
    EXPECT_FALSE(hasher->verify(phc, Password(wrong)).value()) << wrong;
  }
  const auto empty = hasher->hash(Password("")).value();
  EXPECT_TRUE(hasher->verify(empty, Password("")).value());
  EXPECT_FALSE(hasher->verify(empty, Password(" ")).value());
  const auto stats = hasher->stats();
  EXPECT_EQ(stats.hashes, 2u);
  EXPECT_EQ(stats.verifies, 8u);
}

TEST(PasswordHasher, EachHashHasItsOwnSalt) {
  auto hasher = make(options());
  const auto a = hasher->hash(Password("same")).value();
  const auto b = hasher->hash(Password("same")).value();
  ASSERT_NE(a, b);
  // $argon2id$v=19$m=64,t=1,p=1$<salt>$<tag>: field 4 is the salt.
  const auto salt = [](const std::string& phc) {
    const auto end = phc.rfind('$');
    const auto begin = phc.rfind('$', end - 1) + 1;
    return phc.substr(begin, end - begin);
  };
  EXPECT_NE(salt(a), salt(b));
  EXPECT_TRUE(hasher->verify(a, Password("same")).value());
  EXPECT_TRUE(hasher->verify(b, Password("same")).value());
}

TEST(PasswordHasher, HashesEveryByteOfAPasswordWithNuls) {
  auto hasher = make(options());
  const auto with_nul = "a\0b"s;
  const auto phc = hasher->hash(Password(with_nul)).value();
  EXPECT_TRUE(hasher->verify(phc, Password(with_nul)).value());
  // A strlen-based API would see "a" in all three.
  EXPECT_FALSE(hasher->verify(phc, Password("a")).value());
  EXPECT_FALSE(hasher->verify(phc, Password("a\0c"s)).value());
  const auto only_nuls = hasher->hash(Password("\0\0"s)).value();
  EXPECT_TRUE(hasher->verify(only_nuls, Password("\0\0"s)).value());
  EXPECT_FALSE(hasher->verify(only_nuls, Password("\0"s)).value());
  EXPECT_FALSE(hasher->verify(only_nuls, Password("")).value());
}

TEST(PasswordHasher, RefusesPasswordsOver1024BytesWithoutWork) {
  auto hasher = make(options());
  const std::string limit(kMaxPasswordBytes, 'x');
  const std::string over(kMaxPasswordBytes + 1, 'x');
  const auto phc = hasher->hash(Password(limit)).value();
  EXPECT_TRUE(hasher->verify(phc, Password(limit)).value());
  const auto before = hasher->stats();
  EXPECT_EQ(hasher->hash(Password(over)).error(), PasswordErrc::too_long);
  EXPECT_EQ(hasher->verify(phc, Password(over)).error(), PasswordErrc::too_long);
  EXPECT_EQ(hasher->verify_dummy(Password(over)).error(), PasswordErrc::too_long);
  EXPECT_EQ(hasher->stats().hashes, before.hashes);
  EXPECT_EQ(hasher->stats().verifies, before.verifies);
}

TEST(PasswordHasher, RefusesForeignAndMalformedHashesBeforeQueueing) {
  auto hasher = make(options());
  const auto good = hasher->hash(Password("pw")).value();
  const auto salt_tag = good.substr(good.rfind('$', good.rfind('$') - 1));  // "$<salt>$<tag>"
  std::vector<std::string> bad = {
      "",
      "$",
      "argon2id$v=19$m=64,t=1,p=1" + salt_tag,  // no leading '$'
      libargon2_encoded(Argon2_i),
      libargon2_encoded(Argon2_d),
      "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  // bcrypt
      "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
      "$argon2id$m=64,t=1,p=1" + salt_tag,                                 // version-less
      "$argon2id$v=20$m=64,t=1,p=1" + salt_tag,                            // unknown version
      "$argon2id$v=019$m=64,t=1,p=1" + salt_tag,                           // leading zero
      "$argon2id$v=19$m=064,t=1,p=1" + salt_tag,                           // leading zero
      "$argon2id$v=19$m=64,t=0,p=1" + salt_tag,                            // t below 1
      "$argon2id$v=19$m=64,t=1,p=0" + salt_tag,                            // p below 1
      "$argon2id$v=19$m=7,t=1,p=1" + salt_tag,                             // m below 8 KiB per lane
      "$argon2id$v=19$m=64,t=1,p=9" + salt_tag,                            // m below 8 KiB per lane
      "$argon2id$v=19$m=1048577,t=1,p=1" + salt_tag,                       // 1 GiB + 1 KiB
      "$argon2id$v=19$m=4294967295,t=1,p=1" + salt_tag,                    // 4 TiB
      "$argon2id$v=19$m=4294967296,t=1,p=1" + salt_tag,                    // beyond 32 bits
      "$argon2id$v=19$m=64,t=11,p=1" + salt_tag,                           // too many passes
      "$argon2id$v=19$m=4096,t=1,p=17" + salt_tag,                         // too many lanes
      "$argon2id$v=19$m=-64,t=1,p=1" + salt_tag,                           // sign
      "$argon2id$v=19$m=+64,t=1,p=1" + salt_tag,                           // sign
      "$argon2id$v=19$m= 64,t=1,p=1" + salt_tag,                           // blank
      "$argon2id$v=19$t=1,m=64,p=1" + salt_tag,                            // order
      "$argon2id$v=19$m=64,t=1,p=1,data=AAAA" + salt_tag,                  // extra field
      "$argon2id$v=19$m=64,t=1,p=1$$" + good.substr(good.rfind('$') + 1),  // empty salt
      "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + good.substr(good.rfind('$') + 1),  // 4-byte salt
      good.substr(0, good.rfind('$') + 1) + "AAAAAAAAAAAAAAAAAAAAAA==",          // padded
      good.substr(0, good.rfind('$') + 1) + "AAAAAAAAAAAAAAAAAAAA",              // 15-byte tag
      good.substr(0, good.rfind('$') + 1) + "AAAAA#AAAAAAAAAAAAAAAAAAAAAA",      // not base64
      good.substr(0, good.rfind('$') + 1) + "AAAAAAAAAAAAAAAAAAAAAAAAA",         // 25 chars: 4n+1
      good + "$",
      good + "=",
      good + " ",
      good + "\n",
      good + "\0"s,
      good + "\0garbage"s,
      "\0"s + good,
      " " + good,
      good + std::string(kMaxPhcBytes, 'A'),  // over the length limit
  };
  for (const auto& phc : bad) {
    EXPECT_EQ(parse_argon2id_phc(phc).error(), PasswordErrc::malformed_hash) << phc;
    const auto r = hasher->verify(phc, Password("pw"));
    ASSERT_FALSE(r) << "accepted: " << phc;
    EXPECT_EQ(r.error(), PasswordErrc::malformed_hash) << phc;
    EXPECT_TRUE(hasher->needs_rehash(phc)) << phc;
  }
  EXPECT_EQ(hasher->stats().verifies, 0u);  // all refused before reaching the pool
  // Every truncation of a good string: malformed, or (cut inside a long enough tag) a
  // mismatch, never a success.
  for (std::size_t n = 0; n < good.size(); ++n) {
    const auto r = hasher->verify(good.substr(0, n), Password("pw"));
    EXPECT_TRUE(r ? !r.value() : r.error() == PasswordErrc::malformed_hash) << n;
  }
}

TEST(PasswordHasher, SurvivesRandomMutationsOfAGoodHash) {
  // A small deterministic fuzz: byte flips, deletions, insertions and splices of a good string.
  // Whatever the parser refuses, verify refuses as malformed; whatever it accepts is cheap
  // enough here to run (the mutations are capped below) and gives a bool or malformed_hash.
  auto hasher = make(options());
  const auto good = hasher->hash(Password("pw")).value();
  std::mt19937 rng(20260101);
  const auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n == 0 ? 0 : n - 1)(rng);
  };
  const std::string alphabet = "$=,+/0123456789azAZmtpvi\0\xff -"s;
  int parsed = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = good;
    const int edits = 1 + static_cast<int>(pick(3));
    for (int e = 0; e < edits; ++e) {
      switch (pick(5)) {
        case 0:
          if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
          break;
        case 1:
          if (!s.empty()) s[pick(s.size())] = alphabet[pick(alphabet.size())];
          break;
        case 2:
          if (!s.empty()) s.erase(pick(s.size()), 1 + pick(4));
          break;
        case 3:
          s.insert(pick(s.size() + 1), 1, alphabet[pick(alphabet.size())]);
          break;
        default: {
          const auto from = pick(good.size());
          s.insert(pick(s.size() + 1), good.substr(from, 1 + pick(12)));
        }
      }
    }
    const auto p = parse_argon2id_phc(s);
    if (!p) {
      ++refused;
      EXPECT_EQ(p.error(), PasswordErrc::malformed_hash);
      EXPECT_EQ(hasher->verify(s, Password("pw")).error(), PasswordErrc::malformed_hash) << s;
      continue;
    }
    ++parsed;
    if (p.value().params.m_cost_kib > 4096 || p.value().params.t_cost > 3) continue;
    const auto r = hasher->verify(s, Password("pw"));
    if (r) {
      EXPECT_TRUE(!r.value() || s == good) << s;
    } else {
      EXPECT_EQ(r.error(), PasswordErrc::malformed_hash) << s;
    }
  }
  // The mutations reach both sides of the parser.
  EXPECT_GT(parsed, 0);
  EXPECT_GT(refused, 0);
}

TEST(PasswordHasher, VerifyFollowsTheStoredParameters) {
  auto old_hasher = make(options({.t_cost = 1, .m_cost_kib = 64, .parallelism = 1}));
  auto new_hasher = make(options({.t_cost = 2, .m_cost_kib = 128, .parallelism = 2}));
  const auto old_phc = old_hasher->hash(Password("pw")).value();
  EXPECT_TRUE(new_hasher->verify(old_phc, Password("pw")).value());
  EXPECT_FALSE(new_hasher->verify(old_phc, Password("pW")).value());
  const auto new_phc = new_hasher->hash(Password("pw")).value();
  EXPECT_EQ(new_phc.rfind("$argon2id$v=19$m=128,t=2,p=2$", 0), 0u) << new_phc;
  EXPECT_TRUE(old_hasher->verify(new_phc, Password("pw")).value());
}

TEST(PasswordHasher, NeedsRehashWhenParametersVersionOrSaltDiffer) {
  auto hasher = make(options());
  const auto current = hasher->hash(Password("pw")).value();
  EXPECT_FALSE(hasher->needs_rehash(current));
  for (const auto& other : {Argon2Params{.t_cost = 2, .m_cost_kib = 64, .parallelism = 1},
                            Argon2Params{.t_cost = 1, .m_cost_kib = 128, .parallelism = 1},
                            Argon2Params{.t_cost = 1, .m_cost_kib = 64, .parallelism = 2}}) {
    auto other_hasher = make(options(other));
    EXPECT_TRUE(other_hasher->needs_rehash(current));
    const auto phc = other_hasher->hash(Password("pw")).value();
    EXPECT_TRUE(hasher->needs_rehash(phc)) << phc;
    EXPECT_FALSE(other_hasher->needs_rehash(phc)) << phc;
  }
  // Version 0x10 and an 8-byte salt still verify, but are upgraded.
  const auto v16 = libargon2_encoded(Argon2_id, ARGON2_VERSION_10);
  ASSERT_EQ(v16.rfind("$argon2id$v=16$m=64,t=1,p=1$", 0), 0u) << v16;
  EXPECT_TRUE(hasher->verify(v16, Password("pw")).value());
  EXPECT_TRUE(hasher->needs_rehash(v16));
  const auto short_salt = libargon2_encoded(Argon2_id, ARGON2_VERSION_13, 8);
  EXPECT_TRUE(hasher->verify(short_salt, Password("pw")).value());
  EXPECT_TRUE(hasher->needs_rehash(short_salt));
  const auto same = libargon2_encoded(Argon2_id);
  EXPECT_FALSE(hasher->needs_rehash(same)) << same;
}

TEST(PasswordHasher, VerifyDummySucceedsAndRunsAVerification) {
  PoolProbe probe;
  probe.open();
  auto o = options();
  o.observer = probe.observer();
  auto hasher = make(std::move(o));
  EXPECT_TRUE(hasher->verify_dummy(Password("any password")));
  EXPECT_TRUE(hasher->verify_dummy(Password("")));
  EXPECT_TRUE(hasher->verify_dummy(Password("\0"s)));
  EXPECT_EQ(hasher->stats().verifies, 3u);
  EXPECT_EQ(probe.started(), 3);
}

TEST(PasswordHasher, RefusesBadParametersAtCreation) {
  for (const auto& p :
       {Argon2Params{.t_cost = 0, .m_cost_kib = 64, .parallelism = 1},
        Argon2Params{.t_cost = 1, .m_cost_kib = 64, .parallelism = 0},
        Argon2Params{.t_cost = 1, .m_cost_kib = 7, .parallelism = 1},
        Argon2Params{.t_cost = 1, .m_cost_kib = 64, .parallelism = 17},
        Argon2Params{.t_cost = 11, .m_cost_kib = 64, .parallelism = 1},
        Argon2Params{.t_cost = 1, .m_cost_kib = kMaxVerifyMemoryKib + 1, .parallelism = 1}}) {
    const auto r = PasswordHasher::create(options(p));
    ASSERT_FALSE(r) << p.t_cost << " " << p.m_cost_kib << " " << p.parallelism;
    EXPECT_EQ(r.error(), PasswordErrc::bad_params);
  }
  EXPECT_EQ(PasswordHasher::create(options(kSmall, 1, 0)).error(), PasswordErrc::bad_params);
}

TEST(PasswordHasher, AFullQueueRefusesTheNextCallAtOnce) {
  FullPool pool;
  pool.fill();
  // The worker is held and the one queue slot taken: a blocking call would hang here.
  EXPECT_EQ(pool.hasher->hash(Password("b")).error(), PasswordErrc::overloaded);
  EXPECT_EQ(pool.hasher->verify(pool.stored, Password("pw")).error(), PasswordErrc::overloaded);
  EXPECT_EQ(pool.hasher->verify_dummy(Password("pw")).error(), PasswordErrc::overloaded);
  const auto stats = pool.hasher->stats();
  EXPECT_EQ(stats.rejected_overloaded, 3u);
  EXPECT_EQ(stats.queued, 1u);
  pool.probe.open();
  EXPECT_TRUE(pool.running.get());
  EXPECT_TRUE(pool.waiting.get().value());
  // Capacity is back.
  EXPECT_TRUE(pool.hasher->verify(pool.stored, Password("pw")).value());
  EXPECT_EQ(pool.hasher->stats().queued, 0u);
}

TEST(PasswordHasher, StopFailsWaitingCallersAndLetsTheRunningOneFinish) {
  FullPool pool;
  pool.fill();
  auto stopped = std::async(std::launch::async, [&] { pool.hasher->stop(); });
  // The queued caller is answered while the worker is still held.
  EXPECT_EQ(pool.waiting.get().error(), PasswordErrc::closed);
  EXPECT_EQ(pool.hasher->hash(Password("c")).error(), PasswordErrc::closed);
  EXPECT_EQ(pool.hasher->stats().rejected_overloaded, 0u);
  pool.probe.open();
  stopped.get();
  EXPECT_TRUE(pool.running.get());  // the running call completed
  pool.hasher->stop();              // idempotent
}

TEST(PasswordHasher, DestroyingWithWaitingCallersDoesNotHang) {
  FullPool pool;
  pool.fill();
  auto destroyed = std::async(std::launch::async, [&] { pool.hasher.reset(); });
  EXPECT_EQ(pool.waiting.get().error(), PasswordErrc::closed);
  pool.probe.open();
  destroyed.get();
  EXPECT_TRUE(pool.running.get());
}

}  // namespace
}  // namespace sechex::api
