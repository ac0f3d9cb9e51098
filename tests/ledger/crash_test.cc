// Spec 003 FR-027 / spec 004 FR-032 (audit logs retained): an acknowledged event is never lost.
// Crash safety: a child process appends and prints each acknowledgement; we kill it with
// SIGKILL at random moments. After every kill, reopening must find every acknowledged event
// (at the acknowledged position, with the acknowledged content), the chain must verify, and
// new appends must continue the sequence without repeating a seq.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "ledger/verify.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

struct Ack {
  std::uint32_t partition;
  std::uint64_t first;
  int count;
  std::string tag;
};

// Runs the child for `run_for`, kills it with SIGKILL, returns every ACK line it printed.
std::vector<Ack> run_and_kill(const std::string& dir, const std::string& key, int threads,
                              std::chrono::milliseconds run_for,
                              std::map<std::uint32_t, std::uint64_t>* cuts = nullptr) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  const std::string t = std::to_string(threads);  // no malloc between fork and exec
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(SECHEX_CRASH_CHILD, SECHEX_CRASH_CHILD, dir.c_str(), key.c_str(), t.c_str(),
            cuts != nullptr ? "prune" : static_cast<char*>(nullptr), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  // Read while the child runs so the pipe never fills and blocks it.
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  std::string out;
  char buf[65536];
  auto deadline = std::chrono::steady_clock::now() + run_for;
  // With pruning, the clock starts at the first prune (a loaded machine may take longer than
  // `run_for` to start the child at all), so every trial kills it while it prunes.
  if (cuts != nullptr) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out.find("CUT ") == std::string::npos && std::chrono::steady_clock::now() < give_up) {
      const auto n = ::read(fds[0], buf, sizeof(buf));
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    deadline = std::chrono::steady_clock::now() + run_for;
  }
  while (std::chrono::steady_clock::now() < deadline) {
    const auto n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0)
      out.append(buf, static_cast<std::size_t>(n));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::fcntl(fds[0], F_SETFL, 0);
  for (;;) {  // whatever the child wrote before dying is acknowledged too
    const auto n = ::read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  EXPECT_TRUE(WIFSIGNALED(status)) << "child exited early with status " << status;

  std::vector<Ack> acks;
  std::istringstream in(out);
  std::string word;
  while (in >> word) {
    if (word == "CUT" && cuts != nullptr) {
      std::uint32_t p = 0;
      std::uint64_t below = 0;
      if (in >> p >> below) (*cuts)[p] = std::max((*cuts)[p], below);
      continue;
    }
    if (word != "ACK") continue;
    Ack a;
    if (in >> a.partition >> a.first >> a.count >> a.tag) acks.push_back(a);
  }
  return acks;
}

TEST(CrashSafety, EveryAcknowledgedAppendSurvivesSigkill) {
  testing::TempDir dir;
  const auto key_path = dir.sub("key.pem");
  auto signer = testing::make_signer("crash-test");
  {
    // The child loads the key the parent trusts.
    auto kp = crypto::ed25519_generate().value();
    ASSERT_TRUE(crypto::ed25519_save_pem(kp, key_path));
    signer = CheckpointSigner("crash-test", std::move(kp));
  }
  TrustedKeys trusted;
  ASSERT_TRUE(trusted.add(signer.verifier_key()));
  const auto store = dir.sub("log");

  std::mt19937 rng(std::random_device{}());
  constexpr int kTrials = 24;
  std::uint64_t total_acked = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    const int threads = 1 + trial % 4;
    const auto run_for = std::chrono::milliseconds(30 + rng() % 300);
    const auto acks = run_and_kill(store, key_path, threads, run_for);
    total_acked += acks.size();

    LogOptions o;
    o.path = store;
    o.signer = &signer;
    o.partitions = 4;
    o.create_if_missing = true;  // a kill during the very first open leaves no ledger yet
    Fault fault;
    auto log = LogStore::open(o, &fault);
    ASSERT_TRUE(log) << "trial " << trial << ": reopen failed: " << log.error().message() << " "
                     << fault.reason << " at " << fault.position.seq.value;
    for (const auto& a : acks) {
      auto recs = log.value()->read_range(Partition{a.partition}, Seq{a.first},
                                          Seq{a.first + static_cast<std::uint64_t>(a.count)});
      ASSERT_TRUE(recs);
      ASSERT_EQ(recs.value().size(), static_cast<std::size_t>(a.count))
          << "trial " << trial << ": acknowledged events lost at " << a.partition << "/" << a.first;
      for (int k = 0; k < a.count; ++k) {
        const auto& ev = recs.value()[k].event;
        const auto* env = schemas::envelope_of(ev.data());
        ASSERT_EQ(env->request_id()->str(), "req-" + a.tag + "." + std::to_string(k))
            << "trial " << trial << ": a different event sits at an acknowledged position";
      }
    }
    VerifyOptions vo;
    vo.trusted = &trusted;
    const auto report = verify_log(*log.value(), vo);
    ASSERT_EQ(report.outcome, VerifyReport::Outcome::verified)
        << "trial " << trial << ": " << report.fault->reason << " at "
        << report.fault->position.partition.value << "/" << report.fault->position.seq.value;
    // The next append continues exactly at the head: no seq is handed out twice.
    const auto p = Partition{static_cast<std::uint32_t>(trial % 4)};
    const auto head = log.value()->head(p);
    const auto subject = testing::subject_in(p.value, 4, 1000 + trial);
    const auto r = testing::append_n(*log.value(), subject, 1, "parent");
    EXPECT_EQ(r.first, head.next);
  }
  EXPECT_GT(total_acked, 0u);
  std::printf("crash test: %d kills, %llu acknowledged appends checked\n", kTrials,
              static_cast<unsigned long long>(total_acked));
}

// Issue 16: retention killed at any moment leaves every record below the stored cut a stub and
// every one above it whole (no false tampering), never moves the cut back behind a prune that
// returned, and loses no acknowledged append (its payload is there, or it was pruned under the
// cut with its hash kept).
TEST(CrashSafety, PruningKilledAtAnyMomentLeavesAVerifiableStoreAndLosesNoAck) {
  testing::TempDir dir;
  const auto key_path = dir.sub("key.pem");
  auto kp = crypto::ed25519_generate().value();
  ASSERT_TRUE(crypto::ed25519_save_pem(kp, key_path));
  const CheckpointSigner signer("crash-test", std::move(kp));
  TrustedKeys trusted;
  ASSERT_TRUE(trusted.add(signer.verifier_key()));
  const auto store = dir.sub("log");
  std::mt19937 rng(std::random_device{}());
  constexpr int kTrials = 10;
  std::uint64_t total_acked = 0, max_cut = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    std::map<std::uint32_t, std::uint64_t> cuts;
    const auto acks =
        run_and_kill(store, key_path, 2, std::chrono::milliseconds(100 + rng() % 400), &cuts);
    total_acked += acks.size();
    LogOptions o;
    o.path = store;
    o.signer = &signer;
    o.partitions = 4;
    o.create_if_missing = true;
    Fault fault;
    auto log = LogStore::open(o, &fault);
    ASSERT_TRUE(log) << "trial " << trial << ": reopen failed: " << fault.reason;
    for (const auto& [p, below] : cuts) {
      EXPECT_GE(log.value()->retention_cut(Partition{p}).below.value, below)
          << "trial " << trial << ": a cut that was acknowledged went back";
      max_cut = std::max(max_cut, below);
    }
    for (const auto& a : acks) {
      const Partition p{a.partition};
      const auto cut = log.value()->retention_cut(p).below.value;
      for (int k = 0; k < a.count; ++k) {
        const Seq s{a.first + static_cast<std::uint64_t>(k)};
        if (s.value < cut) {
          ASSERT_TRUE(log.value()->record_hash(p, s)) << "trial " << trial << ": stub lost";
          continue;
        }
        auto recs = log.value()->read_range(p, s, Seq{s.value + 1});
        ASSERT_TRUE(recs) << "trial " << trial << ": " << recs.error().message();
        ASSERT_EQ(recs.value().size(), 1u) << "trial " << trial << ": acknowledged event lost";
        EXPECT_EQ(schemas::envelope_of(recs.value()[0].event.data())->request_id()->str(),
                  "req-" + a.tag + "." + std::to_string(k));
      }
    }
    VerifyOptions vo;
    vo.trusted = &trusted;
    const auto report = verify_log(*log.value(), vo);
    ASSERT_EQ(report.outcome, VerifyReport::Outcome::verified)
        << "trial " << trial << ": " << report.fault->reason << " at "
        << report.fault->position.partition.value << "/" << report.fault->position.seq.value;
  }
  EXPECT_GT(total_acked, 0u);
  EXPECT_GT(max_cut, 0u) << "the child never got to prune: the test proved nothing";
}

}  // namespace
}  // namespace sechex::ledger
