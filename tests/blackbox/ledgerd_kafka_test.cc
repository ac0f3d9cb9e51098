// ledgerd --log kafka end to end, against a real Apache Kafka broker (ctest label `kafka`): the
// "Tests, against the real broker" list of the Kafka issue. Run with
//   ops/kafka/with-broker --brokers 1 -- ctest --test-dir build/debug -R LedgerdKafka
// Without SECHEX_KAFKA_BROKERS every test is skipped. Each test uses a topic of its own; the
// three-broker test starts (and always stops) a cluster of its own with ops/kafka/start.
//
// What the tests read back goes through the C++ API (a read-only KafkaLog, verify_chain, a
// ProjectionStore rebuilt from the topic), not through the ledgerd under test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "ledger/checkpoint.h"
#include "ledger/crypto.h"
#include "ledger/data_dir.h"
#include "ledger/export.h"
#include "ledger/kafka_log.h"
#include "ledger/log.h"
#include "ledger/proof.h"
#include "ledger/record.h"
#include "ledger/verify.h"
#include "projections/store.h"
#include "support/http.h"
#include "support/process.h"

namespace sechex::api {
namespace {

namespace http = boost::beast::http;
namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::slurp;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kPartitions = 4;

const char* brokers() { return std::getenv("SECHEX_KAFKA_BROKERS"); }

std::string unique(const std::string& name) {
  return name + "-" + ledger::to_hex(ledger::crypto::random_bytes(4).value());
}

// A subject whose events land in `partition` (of 4); `n` tells several of them apart.
std::string subject_in(std::uint32_t partition, int n = 0) {
  for (int i = 0;; ++i) {
    auto s = "user-" + std::to_string(n) + "-" + std::to_string(i);
    if (ledger::partition_for(s, kPartitions).value == partition) return s;
  }
}

std::uint32_t partition_of(const std::string& subject) {
  return ledger::partition_for(subject, kPartitions).value;
}

// A TCP port of 127.0.0.1 free right now, below the kernel's ephemeral range (so that no
// outgoing connection takes it before the process that is told to use it binds it).
std::uint16_t free_port() {
  int lo_ephemeral = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo_ephemeral;
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(20000, std::max(20001, lo_ephemeral - 1));
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = static_cast<std::uint16_t>(pick(rng));
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    if (ok) return port;
  }
  return 0;
}

// The value of one series ("name{labels}") in a Prometheus text exposition.
std::optional<double> metric(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

// testing::spawn, but the child dies with the test: a test that crashes (or is killed by ctest's
// timeout) leaves no ledgerd running against the broker. PR_SET_PDEATHSIG follows the thread
// that forked, so only the test's main thread spawns.
pid_t spawn(const std::vector<std::string>& args, const std::string& err_path) {
  const pid_t parent = ::getpid();
  const auto plan = testing::detail::plan_exec(args, {"SECHEX_KEK="});  // no malloc after fork
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test died before prctl took effect
    const int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, STDERR_FILENO);
    testing::detail::exec_child(plan);
  }
  return pid;
}

// One ledgerd process in Kafka mode with its own data directory under `root`.
class Ledgerd {
 public:
  explicit Ledgerd(std::string root) : root_(std::move(root)) { fs::create_directories(root_); }
  ~Ledgerd() {
    if (pid_ > 0) terminate();
  }
  Ledgerd(const Ledgerd&) = delete;
  Ledgerd& operator=(const Ledgerd&) = delete;

  // Starts ledgerd on `topic` and waits until it serves and (with `ready`) /readyz says its
  // projections caught up. False (see log()) when it did not get there in time.
  [[nodiscard]] bool start(const std::string& bootstrap, const std::string& topic,
                           const std::vector<std::string>& extra = {},
                           const std::string& listen = "127.0.0.1:0", bool ready = true) {
    std::vector<std::string> args = {SECHEX_LEDGERD,
                                     "--data-dir",
                                     data(),
                                     "--listen",
                                     listen,
                                     "--log",
                                     "kafka",
                                     "--kafka-brokers",
                                     bootstrap,
                                     "--topic",
                                     topic,
                                     "--partitions",
                                     std::to_string(kPartitions)};
    args.insert(args.end(), extra.begin(), extra.end());
    err_ = root_ + "/ledgerd-" + std::to_string(++starts_) + ".err";
    exit_code_.reset();
    pid_ = spawn(args, err_);
    const std::regex serving("serving on [0-9.]+:([0-9]+)");
    const auto deadline = Clock::now() + 60s;
    port_ = 0;
    while (port_ == 0) {
      std::smatch m;
      const auto err = slurp(err_);
      if (std::regex_search(err, m, serving)) {
        port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
        // Printed before the serving line (ledgerd.cc).
        std::smatch mm;
        if (std::regex_search(err, mm, std::regex("metrics on [0-9.]+:([0-9]+)"))) {
          metrics_port_ = static_cast<std::uint16_t>(std::stoi(mm[1]));
        }
      } else if (exited() || Clock::now() > deadline) {
        return false;
      } else {
        std::this_thread::sleep_for(50ms);
      }
    }
    while (ready && testing::http_call(port_, http::verb::get, "/readyz").status != 200) {
      if (exited() || Clock::now() > deadline) return false;
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }
  // SIGTERM and wait: the exit code (0 after a clean stop).
  int terminate() { return stop(SIGTERM); }
  // SIGTERM, and SIGKILL if it still runs after `grace`: the exit code, nullopt if it was killed.
  std::optional<int> terminate_within(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return std::nullopt;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + grace;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) != pid_) {
      if (Clock::now() > deadline) {
        kill9();
        return std::nullopt;
      }
      std::this_thread::sleep_for(50ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // SIGKILL: no chance to finish anything.
  int kill9() { return stop(SIGKILL); }

  std::string token() const {
    const auto issued = testing::run({SECHEX_LEDGERCTL, "--data-dir", data(), "tokens", "issue",
                                      "--role", "admin", "--ttl", "600"},
                                     {"SECHEX_KEK="});
    EXPECT_EQ(issued.code, 0) << issued.err;
    return issued.out.empty() ? "" : issued.out.substr(0, issued.out.size() - 1);
  }
  std::string data() const { return root_ + "/data"; }
  // The last 80 lines of the current run's stderr, without the access log.
  std::string log() const {
    std::vector<std::string> lines;
    std::istringstream in(err_.empty() ? "" : slurp(err_));
    for (std::string line; std::getline(in, line);) {
      if (line.find(R"("msg":"request")") == std::string::npos) lines.push_back(line);
    }
    std::string out = "---- " + err_ + " (without the access log):\n";
    for (auto i = lines.size() > 80 ? lines.size() - 80 : 0; i < lines.size(); ++i) {
      out += lines[i] + "\n";
    }
    return out;
  }
  std::uint16_t port() const { return port_; }
  std::uint16_t metrics_port() const { return metrics_port_; }
  // How a start() that returned false ended: the exit code when ledgerd exited by itself.
  std::optional<int> exit_code() const { return exit_code_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  bool exited() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }
  int stop(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    const int code = testing::wait_exit(pid_);
    pid_ = -1;
    return code;
  }

  std::string root_;
  std::string err_;
  pid_t pid_ = -1;
  int starts_ = 0;
  std::uint16_t port_ = 0;
  std::uint16_t metrics_port_ = 0;
  std::optional<int> exit_code_;
};

// The personal data app_event() seals for `mark`, as ledgerd shows it once opened.
std::string personal_of(const std::string& mark) {
  return json{{"email", mark + "@example.org"}}.dump();
}

// An event of type app.x whose payload carries `mark` (how the test finds it in the log) and
// whose personal data is sealed with the subject's data key.
json app_event(const std::string& subject, const std::string& mark) {
  return {{"subject", subject},
          {"type", "app.x"},
          {"payload", {{"mark", mark}}},
          {"personal", json::parse(personal_of(mark))}};
}

// The mark of an entry of the audit API.
std::string mark_of(const json& entry) {
  return json::parse(entry["event"]["payload_json"].get<std::string>())["mark"];
}

// ledgerd's audit export of everything: mark -> the entry's personal data as shown ("[sealed]"
// when its data key could not be found or unwrapped).
std::map<std::string, std::string> exported_personal(std::uint16_t port, const std::string& token) {
  const auto r = testing::http_call(port, http::verb::get, "/v1/admin/audit/export?format=json",
                                    token, "", 30s);
  EXPECT_EQ(r.status, 200u) << r.body.substr(0, 1000);
  std::map<std::string, std::string> out;
  if (r.status != 200) return out;
  const auto entries = json::parse(r.body);
  for (const auto& e : entries) out[mark_of(e)] = e["event"].value("payload", "<none>");
  return out;
}

// What ledgerd answered for one event with 201.
struct Ack {
  std::string subject;
  std::uint32_t partition = 0;
  std::uint64_t seq = 0;
  std::string hash;
};

// Posts `events` (app_event()s); on 201 adds each event's mark -> answer to `acked`.
testing::HttpReply post(std::uint16_t port, const std::string& token, const json& events,
                        std::map<std::string, Ack>* acked = nullptr,
                        std::chrono::milliseconds timeout = 10s) {
  auto r = testing::http_call(port, http::verb::post, "/v1/events", token,
                              json{{"events", events}}.dump(), timeout);
  if (r.status == 201 && acked != nullptr) {
    const auto answers = json::parse(r.body)["data"]["events"];
    for (std::size_t i = 0; i < events.size(); ++i) {
      (*acked)[events[i]["payload"]["mark"].get<std::string>()] =
          Ack{events[i]["subject"].get<std::string>(), answers[i]["partition"].get<std::uint32_t>(),
              answers[i]["seq"].get<std::uint64_t>(), answers[i]["hash"].get<std::string>()};
    }
  }
  return r;
}

// A reader of the topic that never writes (like `ledgerctl verify --log kafka`).
std::unique_ptr<ledger::KafkaLog> open_reader(const std::string& bootstrap,
                                              const std::string& topic) {
  ledger::KafkaLogOptions o;
  o.brokers = bootstrap;
  o.topic = topic;
  o.partitions = kPartitions;
  o.read_only = true;
  o.create_if_missing = false;
  o.request_timeout = 20s;
  auto log = ledger::KafkaLog::open(o);
  EXPECT_TRUE(log) << log.error().message();
  return log ? std::move(log).value() : nullptr;
}

std::string mark_of(const ledger::Record& r) {
  const auto rendered = ledger::record_to_json(r, nullptr);
  if (!rendered) return "<not an envelope>";
  const auto& event = rendered.value()["event"];
  if (!event.contains("payload_json")) return "<no payload>";
  return json::parse(event["payload_json"].get<std::string>()).value("mark", "<no mark>");
}

// Every partition read back whole, each checked on the way: seq 0, 1, 2, ... and every hash
// linking to the one before.
std::vector<std::vector<ledger::Record>> read_chains(const ledger::KafkaLog& log) {
  std::vector<std::vector<ledger::Record>> out(kPartitions);
  for (std::uint32_t i = 0; i < kPartitions; ++i) {
    const ledger::Partition p{i};
    auto records = log.read_range(p, ledger::Seq{0}, ledger::Seq{UINT64_MAX});
    EXPECT_TRUE(records) << records.error().message() << " " << log.last_error();
    if (!records) continue;
    ledger::Hash prev{};
    for (std::size_t s = 0; s < records.value().size(); ++s) {
      const auto& r = records.value()[s];
      EXPECT_EQ(r.position.seq.value, s) << "partition " << i << ": seqs must be contiguous";
      EXPECT_EQ(r.hash, ledger::chain_hash(p, ledger::Seq{s}, prev, r.event))
          << "partition " << i << " seq " << s << " does not link";
      prev = r.hash;
    }
    out[i] = std::move(records).value();
  }
  return out;
}

// verify_chain over `log` with the checkpoint keys ledgerd's data directory trusts.
ledger::VerifyReport verify(const ledger::KafkaLog& log, const std::string& data_dir) {
  auto trusted = ledger::TrustedKeys::load_file(ledger::DataDir{data_dir}.verifier_keys());
  EXPECT_TRUE(trusted);
  ledger::VerifyOptions vo;
  vo.trusted = trusted ? &trusted.value() : nullptr;
  return ledger::verify_chain(log, vo);
}

std::string describe(const ledger::VerifyReport& r) {
  return r.fault ? r.fault->reason + " at partition " +
                       std::to_string(r.fault->position.partition.value) + " seq " +
                       std::to_string(r.fault->position.seq.value) + ": " + r.fault->detail
                 : "verified";
}

// The acknowledgement contract after a crash or an outage: every event ledgerd answered 201
// for is stored exactly once, at the position and with the hash it answered; an event it did
// not acknowledge is stored at most once; nothing is stored that was never sent. Returns how
// many events are stored that were sent but not acknowledged.
std::size_t expect_acked_exactly_once(const std::vector<std::vector<ledger::Record>>& chains,
                                      const std::map<std::string, Ack>& acked,
                                      const std::set<std::string>& sent) {
  std::map<std::string, int> count;
  for (const auto& chain : chains) {
    for (const auto& r : chain) ++count[mark_of(r)];
  }
  for (const auto& [mark, ack] : acked) {
    EXPECT_EQ(count[mark], 1) << "acknowledged event " << mark << " (partition " << ack.partition
                              << " seq " << ack.seq << ") is stored " << count[mark] << " times";
    if (ack.partition >= chains.size() || ack.seq >= chains[ack.partition].size()) {
      ADD_FAILURE() << mark << " was acknowledged at partition " << ack.partition << " seq "
                    << ack.seq << ", beyond the chain's end";
      continue;
    }
    const auto& r = chains[ack.partition][ack.seq];
    EXPECT_EQ(mark_of(r), mark) << "partition " << ack.partition << " seq " << ack.seq;
    EXPECT_EQ(ledger::to_hex(r.hash), ack.hash) << mark;
  }
  std::size_t unacknowledged = 0;
  for (const auto& [mark, n] : count) {
    EXPECT_EQ(n, 1) << mark << " is stored " << n << " times";
    EXPECT_TRUE(sent.contains(mark)) << "stored event " << mark << " was never sent";
    if (!acked.contains(mark)) ++unacknowledged;
  }
  return unacknowledged;
}

// ledgerd at `port` lists every record of `chains` in its audit export, each with its personal
// data opened: the subject's data key is in <topic>.keys and unwraps with the KEK.
void expect_personal_data_opens(std::uint16_t port, const std::string& token,
                                const std::vector<std::vector<ledger::Record>>& chains) {
  const auto personal = exported_personal(port, token);
  std::size_t stored = 0;
  for (const auto& chain : chains) {
    for (const auto& r : chain) {
      ++stored;
      const auto mark = mark_of(r);
      EXPECT_EQ(personal.contains(mark) ? personal.at(mark) : "<not exported>", personal_of(mark))
          << mark;
    }
  }
  EXPECT_EQ(personal.size(), stored);
}

// The SHA-256 over every projection of the store at `path` (ledgerd must have stopped).
std::string projections_digest(const std::string& path,
                               std::vector<std::uint64_t>* positions = nullptr) {
  auto store =
      projections::ProjectionStore::open(path, kPartitions, projections::default_projections());
  EXPECT_TRUE(store) << path << ": " << store.error().message();
  if (!store) return "<cannot open " + path + ">";
  if (positions != nullptr) {
    for (std::uint32_t p = 0; p < kPartitions; ++p) {
      positions->push_back(store.value()->position(ledger::Partition{p}).value);
    }
  }
  auto d = store.value()->digest();
  EXPECT_TRUE(d);
  return d ? d.value() : "<no digest>";
}

// The same for projections rebuilt from nothing by reading the whole topic.
std::string rebuilt_digest(const ledger::KafkaLog& log, const std::string& path) {
  auto store =
      projections::ProjectionStore::open(path, kPartitions, projections::default_projections());
  EXPECT_TRUE(store) << store.error().message();
  if (!store) return "<cannot open " + path + ">";
  auto applied = store.value()->catch_up(log);
  EXPECT_TRUE(applied) << applied.error().message() << " " << log.last_error();
  auto d = store.value()->digest();
  EXPECT_TRUE(d);
  return d ? d.value() : "<no digest>";
}

testing::RunResult ledgerctl_verify(const std::string& data_dir, const std::string& bootstrap,
                                    const std::string& topic) {
  return testing::run({SECHEX_LEDGERCTL, "--data-dir", data_dir, "--log", "kafka",
                       "--kafka-brokers", bootstrap, "--topic", topic, "verify"},
                      {"SECHEX_KEK="});
}

// "verified: N records, M signed checkpoints, ..." -> {N, M}.
std::optional<std::pair<std::uint64_t, std::uint64_t>> verified_counts(const std::string& out) {
  std::smatch m;
  static const std::regex line("verified: ([0-9]+) records, ([0-9]+) signed checkpoints");
  if (!std::regex_search(out, m, line)) return std::nullopt;
  return std::pair{std::stoull(m[1]), std::stoull(m[2])};
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Prints how long each step of a test took (on stderr, for the ctest log).
class Steps {
 public:
  void operator()(const std::string& done) {
    std::cerr << "  [" << std::fixed << std::setprecision(1) << seconds_since(t0_) << " s] " << done
              << "\n";
  }

 private:
  Clock::time_point t0_ = Clock::now();
};

class LedgerdKafka : public ::testing::Test {
 protected:
  void SetUp() override {
    if (brokers() == nullptr) {
      GTEST_SKIP() << "SECHEX_KAFKA_BROKERS is unset: run under ops/kafka/with-broker (see "
                      "ops/kafka/README.md), e.g. ops/kafka/with-broker -- ctest -L kafka";
    }
  }
  testing::TempDir dir_;
};

// 1. A restarted ledgerd continues each partition's chain from the head the previous process
// left (its writer recovers (seq, hash) from the committed tail), its projections continue too,
// and `ledgerctl verify --log kafka` accepts the result, signed checkpoints included.
TEST_F(LedgerdKafka, RestartContinuesEachChainFromTheSameHeadAndLedgerctlVerifies) {
  Steps step;
  const auto topic = unique("e2e-restart");
  Ledgerd node(dir_.sub("node"));
  ASSERT_TRUE(node.start(brokers(), topic)) << node.log();
  const auto token = node.token();
  step("ledgerd ready");

  // Two requests: one batch spanning every partition (two events each), then one per partition.
  std::map<std::string, Ack> acked;
  json batch = json::array();
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    batch.push_back(app_event(subject_in(p, 0), "first-" + std::to_string(p) + "a"));
    batch.push_back(app_event(subject_in(p, 1), "first-" + std::to_string(p) + "b"));
  }
  const auto r1 = post(node.port(), token, batch, &acked);
  ASSERT_EQ(r1.status, 201u) << r1.body;
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto r =
        post(node.port(), token,
             json::array({app_event(subject_in(p, 2), "single-" + std::to_string(p))}), &acked);
    ASSERT_EQ(r.status, 201u) << r.body;
  }
  std::vector<Ack> head_before(kPartitions);
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto& last = acked.at("single-" + std::to_string(p));
    EXPECT_EQ(last.partition, p);
    EXPECT_EQ(last.seq, 2u) << "partition " << p << ": two events of the batch, then this one";
    head_before[p] = last;
  }
  // The offline tool verifies the topic while ledgerd runs (checkpoints come later: by time, or
  // at a clean stop).
  const auto running = ledgerctl_verify(node.data(), brokers(), topic);
  EXPECT_EQ(running.code, 0) << running.out << running.err;
  const auto running_counts = verified_counts(running.out);
  ASSERT_TRUE(running_counts) << running.out;
  EXPECT_EQ(running_counts->first, 12u) << running.out;

  ASSERT_EQ(node.terminate(), 0) << node.log();
  ASSERT_TRUE(node.start(brokers(), topic)) << node.log();
  step("12 events appended, ledgerd restarted");
  EXPECT_NE(node.log().find("projections caught up (0 records applied)"), std::string::npos)
      << "a clean stop leaves the projections current: " << node.log();
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto mark = "after-restart-" + std::to_string(p);
    const auto r =
        post(node.port(), token, json::array({app_event(subject_in(p, 0), mark)}), &acked);
    ASSERT_EQ(r.status, 201u) << r.body << node.log();
    EXPECT_EQ(acked.at(mark).seq, head_before[p].seq + 1) << "partition " << p;
  }

  // The new records link to the heads the first process answered with.
  auto reader = open_reader(brokers(), topic);
  ASSERT_TRUE(reader);
  const auto chains = read_chains(*reader);
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    ASSERT_EQ(chains[p].size(), 4u) << "partition " << p;
    EXPECT_EQ(ledger::to_hex(chains[p][2].hash), head_before[p].hash) << "partition " << p;
    EXPECT_EQ(ledger::to_hex(chains[p][3].hash),
              acked.at("after-restart-" + std::to_string(p)).hash);
  }
  std::set<std::string> sent;
  for (const auto& [mark, ack] : acked) sent.insert(mark);
  expect_acked_exactly_once(chains, acked, sent);
  // The restarted process's projections hold everything: the audit API lists all 16 events.
  const auto audit = testing::http_call(node.port(), http::verb::get, "/v1/admin/audit", token);
  ASSERT_EQ(audit.status, 200u) << audit.body;
  std::set<std::string> listed, answered;
  const auto entries = json::parse(audit.body)["data"]["entries"];
  for (const auto& e : entries) listed.insert(e["hash"]);
  for (const auto& [mark, ack] : acked) answered.insert(ack.hash);
  EXPECT_EQ(listed, answered);

  // Issue 16: the first clean stop signed a checkpoint of 3 records per partition, over the
  // Merkle tree; the proof route answers with an inclusion proof the ledger's key vouches for.
  auto keys = ledger::TrustedKeys::load_file(ledger::DataDir{node.data()}.verifier_keys());
  ASSERT_TRUE(keys);
  const auto proof = testing::http_call(node.port(), http::verb::get,
                                        "/v1/admin/ledger/proof?partition=1&seq=2", token);
  ASSERT_EQ(proof.status, 200u) << proof.body;
  const auto parsed = ledger::inclusion_from_json(json::parse(proof.body)["data"]);
  ASSERT_TRUE(parsed) << proof.body;
  EXPECT_EQ(parsed->tree_size, 3u);
  const auto verdict = ledger::check_inclusion(*parsed, keys.value());
  EXPECT_TRUE(verdict.ok) << verdict.reason << ": " << verdict.detail;
  const auto consistency = testing::http_call(
      node.port(), http::verb::get, "/v1/admin/ledger/consistency?partition=1&from=3&to=3", token);
  EXPECT_EQ(consistency.status, 200u) << consistency.body;

  // A clean stop signs a checkpoint for each partition it wrote; verify checks them.
  ASSERT_EQ(node.terminate(), 0) << node.log();
  const auto stopped = ledgerctl_verify(node.data(), brokers(), topic);
  EXPECT_EQ(stopped.code, 0) << stopped.out << stopped.err;
  EXPECT_EQ(verified_counts(stopped.out),
            (std::pair<std::uint64_t, std::uint64_t>{16, kPartitions}))
      << stopped.out;
  step("checked");
}

// Client threads that post small batches of app events to `port` until `stop`, recording
// every mark they sent and every acknowledged one.
class Ingest {
 public:
  Ingest(std::uint16_t port, std::string token, int threads, std::chrono::milliseconds timeout)
      : port_(port), token_(std::move(token)), timeout_(timeout) {
    for (int c = 0; c < threads; ++c) threads_.emplace_back([this, c] { run(c); });
  }
  ~Ingest() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::size_t acked_count() const {
    std::lock_guard lock(mu_);
    return acked_.size();
  }
  // Waits until at least `n` events are acknowledged; false after `timeout`.
  bool wait_for_acks(std::size_t n, std::chrono::milliseconds timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (acked_count() < n) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }
  // Only after stop().
  const std::map<std::string, Ack>& acked() const { return acked_; }
  const std::set<std::string>& sent() const { return sent_; }
  const std::map<unsigned, int>& statuses() const { return statuses_; }

 private:
  void run(int c) {
    for (int i = 0; !stop_; ++i) {
      json events = json::array();
      std::vector<std::string> marks;
      for (int j = 0; j <= i % 3; ++j) {  // batches of 1..3 events, spanning partitions
        const auto mark =
            "c" + std::to_string(c) + "-" + std::to_string(i) + "-" + std::to_string(j);
        events.push_back(
            app_event("load-" + std::to_string(c) + "-" + std::to_string((i + j) % 7), mark));
        marks.push_back(mark);
      }
      {
        std::lock_guard lock(mu_);
        sent_.insert(marks.begin(), marks.end());
      }
      std::map<std::string, Ack> acked;
      const auto r = post(port_, token_, events, &acked, timeout_);
      {
        std::lock_guard lock(mu_);
        ++statuses_[r.status];
        acked_.insert(acked.begin(), acked.end());
      }
      // A crash or an outage: do not spin while there is nobody, or nothing, to answer.
      if (r.status == 0 || r.status >= 500) std::this_thread::sleep_for(50ms);
    }
  }

  const std::uint16_t port_;
  const std::string token_;
  const std::chrono::milliseconds timeout_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, Ack> acked_;
  std::set<std::string> sent_;
  std::map<unsigned, int> statuses_;
  std::vector<std::thread> threads_;
};

std::string describe(const std::map<unsigned, int>& statuses) {
  std::string out;
  for (const auto& [status, n] : statuses) {
    out += (out.empty() ? "" : ", ") + std::to_string(n) + "x " +
           (status == 0 ? std::string("no answer") : std::to_string(status));
  }
  return out;
}

// 2. kill -9 of ledgerd while clients ingest: nothing acknowledged is lost or doubled, what was
// in flight is stored at most once, the chains verify, the next ledgerd's writers continue
// them (fencing the dead process's transactional.id "<topic>.ledger-<p>" and aborting its open
// transaction), and its projections, caught up after the crash, equal a rebuild from the topic.
TEST_F(LedgerdKafka, KillNineDuringIngestLosesNoAcknowledgedEventAndStoresNoneTwice) {
  Steps step;
  const auto topic = unique("e2e-kill9");
  Ledgerd node(dir_.sub("node"));
  ASSERT_TRUE(node.start(brokers(), topic)) << node.log();
  const auto token = node.token();
  step("ledgerd ready");

  Ingest ingest(node.port(), token, 4, 10s);
  const bool loaded = ingest.wait_for_acks(80, 40s);
  EXPECT_EQ(node.kill9(), 128 + SIGKILL);
  ingest.stop();
  ASSERT_TRUE(loaded) << "the load did not get going: " << describe(ingest.statuses()) << "\n"
                      << node.log();
  const auto acked_before = ingest.acked();
  step("killed -9 after " + std::to_string(acked_before.size()) + " acknowledged of " +
       std::to_string(ingest.sent().size()) + " sent events (" + describe(ingest.statuses()) + ")");

  ASSERT_TRUE(node.start(brokers(), topic)) << node.log();
  step("ledgerd restarted and ready");
  // One event per partition from the new process: each lands right after what is stored.
  std::map<std::string, Ack> after;
  std::set<std::string> sent = ingest.sent();
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto mark = "after-" + std::to_string(p);
    sent.insert(mark);
    const auto r = post(node.port(), token, json::array({app_event(subject_in(p), mark)}), &after);
    ASSERT_EQ(r.status, 201u) << r.body << node.log();
  }

  auto reader = open_reader(brokers(), topic);
  ASSERT_TRUE(reader);
  const auto chains = read_chains(*reader);
  auto all = acked_before;
  all.insert(after.begin(), after.end());
  const auto unacknowledged = expect_acked_exactly_once(chains, all, sent);
  step("read back: " + std::to_string(unacknowledged) +
       " events stored that were in flight at the kill");
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto& a = after.at("after-" + std::to_string(p));
    EXPECT_EQ(a.seq + 1, chains[p].size())
        << "partition " << p << ": the new writer appends right after the stored tail";
  }
  const auto report = verify(*reader, node.data());
  EXPECT_EQ(report.outcome, ledger::VerifyReport::Outcome::verified) << describe(report);
  // Every stored event's data key survived the crash: the new process opens all personal data.
  expect_personal_data_opens(node.port(), token, chains);

  ASSERT_EQ(node.terminate(), 0) << node.log();
  std::vector<std::uint64_t> positions;
  const auto live = projections_digest(ledger::DataDir{node.data()}.projections_path(), &positions);
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(positions[p], chains[p].size()) << "partition " << p << " projected up to its end";
  }
  EXPECT_EQ(live, rebuilt_digest(*reader, dir_.sub("rebuilt")))
      << "projections recovered after kill -9 differ from a rebuild from the topic";
  step("checked");
}

// 3. Two ledgerd nodes on one cluster, each owning half the partitions: each runs the commands
// of its own partitions only (the other's answer 421 naming the owner), follows the other's
// appends, reads the other's sealed personal data with the shared KEK and the data keys in
// <topic>.keys, and in the end both hold the same projections as a rebuild from the topic.
TEST_F(LedgerdKafka, TwoNodesEachOwningHalfThePartitionsConvergeOnTheProjectionsOfARebuild) {
  Steps step;
  const auto topic = unique("e2e-two-nodes");
  Ledgerd a(dir_.sub("a")), b(dir_.sub("b"));
  const auto port_b = free_port();
  ASSERT_NE(port_b, 0);
  const auto url_b = "http://127.0.0.1:" + std::to_string(port_b);
  ASSERT_TRUE(a.start(brokers(), topic,
                      {"--owns-partitions", "0-1", "--partition-owner", "2-3=" + url_b,
                       "--trusted-proxy", "127.0.0.1"}))
      << a.log();
  // One KEK, one checkpoint signing key and one token key ring for the two nodes.
  fs::create_directories(b.data());
  fs::copy(ledger::DataDir{a.data()}.keys_dir(), ledger::DataDir{b.data()}.keys_dir(),
           fs::copy_options::recursive);
  ASSERT_TRUE(b.start(brokers(), topic,
                      {"--owns-partitions", "2-3", "--partition-owner", "0-1=" + a.url(),
                       "--trusted-proxy", "127.0.0.1"},
                      "127.0.0.1:" + std::to_string(port_b)))
      << b.log();
  const auto token = a.token();
  step("nodes A and B ready");

  // The wrong node appends nothing and names the owner.
  const auto to_a = post(a.port(), token, json::array({app_event(subject_in(2), "misdirected-a")}));
  ASSERT_EQ(to_a.status, 421u) << to_a.body;
  EXPECT_EQ(json::parse(to_a.body)["error"]["details"]["owner"], url_b);
  EXPECT_EQ(json::parse(to_a.body)["error"]["details"]["partition"], 2);
  const auto to_b = post(b.port(), token, json::array({app_event(subject_in(1), "misdirected-b")}));
  ASSERT_EQ(to_b.status, 421u) << to_b.body;
  EXPECT_EQ(json::parse(to_b.body)["error"]["details"]["owner"], a.url());

  // 004 FR-024: a known address's forgot is misdirected (421) by the node that does not own its
  // partition, so an unknown one must be too, by its anon subject's partition; else the 421
  // alone would tell them apart. Of 12 unknown addresses, some land on each node's partitions.
  int misdirected = 0, accepted = 0;
  for (int i = 0; i < 12; ++i) {
    const auto body = json{{"email", "nobody" + std::to_string(i) + "@example.com"}}.dump();
    const testing::Headers from = {{"X-Forwarded-For", "198.51.100." + std::to_string(10 + i)}};
    const auto r = testing::http_call_with(a.port(), http::verb::post, "/v1/auth/password/forgot",
                                           from, "", body, 30s);
    if (r.status == 421u) {
      ++misdirected;
      EXPECT_EQ(json::parse(r.body)["error"]["details"]["owner"], url_b) << r.body;
      const auto at_owner = testing::http_call_with(
          port_b, http::verb::post, "/v1/auth/password/forgot", from, "", body, 30s);
      EXPECT_EQ(at_owner.status, 202u) << at_owner.body;
    } else {
      EXPECT_EQ(r.status, 202u) << r.body;
      ++accepted;
    }
  }
  EXPECT_GT(misdirected, 0) << "an unknown address is misdirected like a known one";
  EXPECT_GT(accepted, 0);
  step("forgot for unknown addresses is misdirected like for known ones");

  // Mixed workload, both nodes at once: 24 subjects, batches of 1-3 events of one node's
  // partitions, each sent to that partition's owner.
  std::mutex mu;
  std::map<std::string, Ack> acked;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (const auto& [first, port] : {std::pair{0u, a.port()}, std::pair{2u, b.port()}}) {
    clients.emplace_back([&, first, port] {
      for (int i = 0; i < 40; ++i) {
        json events = json::array();
        for (int j = 0; j <= i % 3; ++j) {
          const auto p = first + static_cast<std::uint32_t>((i + j) % 2);
          const auto mark =
              "n" + std::to_string(first) + "-" + std::to_string(i) + "-" + std::to_string(j);
          events.push_back(app_event(subject_in(p, (i / 2 + j) % 6), mark));
        }
        std::map<std::string, Ack> got;
        const auto r = post(port, token, events, &got);
        std::lock_guard lock(mu);
        if (r.status != 201) failures.push_back(std::to_string(r.status) + " " + r.body);
        acked.insert(got.begin(), got.end());
      }
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_TRUE(failures.empty()) << failures.front() << "\n" << a.log() << b.log();
  std::vector<std::uint64_t> expected(kPartitions, 0);
  for (const auto& [mark, ack] : acked) ++expected[ack.partition];
  for (std::uint32_t p = 0; p < kPartitions; ++p) EXPECT_GT(expected[p], 0u) << p;
  step(std::to_string(acked.size()) + " events acknowledged by their owners");

  // Both nodes apply everything: each reports every partition's full length and no lag.
  auto converged = [&](std::uint16_t port) {
    const auto text = testing::http_call(port, http::verb::get, "/metrics").body;
    for (std::uint32_t p = 0; p < kPartitions; ++p) {
      const auto series =
          "sechex_ledger_partition_records{partition=\"" + std::to_string(p) + "\"}";
      if (metric(text, series) != static_cast<double>(expected[p])) return false;
    }
    return metric(text, "sechex_projection_lag_records") == 0.0;
  };
  const auto deadline = Clock::now() + 20s;
  while (!(converged(a.metrics_port()) && converged(b.metrics_port())) && Clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(converged(a.metrics_port()) && converged(b.metrics_port()))
      << "A:\n"
      << testing::http_call(a.metrics_port(), http::verb::get, "/metrics").body << "\nB:\n"
      << testing::http_call(b.metrics_port(), http::verb::get, "/metrics").body;
  step("both nodes applied every partition");

  // Each node lists every event of the other's subjects with their personal data opened: the
  // other node's data keys came through <topic>.keys, the KEK from the shared keys directory.
  std::map<std::string, std::set<std::string>> marks_of;  // subject -> marks
  for (const auto& [mark, ack] : acked) marks_of[ack.subject].insert(mark);
  for (const auto& [subject, marks] : marks_of) {
    const auto reader_port = partition_of(subject) < 2 ? b.port() : a.port();
    const auto audit = testing::http_call(reader_port, http::verb::get,
                                          "/v1/admin/audit?userId=" + subject, token);
    ASSERT_EQ(audit.status, 200u) << audit.body;
    const auto entries = json::parse(audit.body)["data"]["entries"];
    std::set<std::string> listed;
    for (const auto& e : entries) {
      listed.insert(mark_of(e));
      EXPECT_EQ(e["event"]["payload"], personal_of(mark_of(e))) << e.dump();
    }
    EXPECT_EQ(listed, marks) << subject;
  }
  step("each node lists the other's events with their personal data");

  ASSERT_EQ(a.terminate(), 0) << a.log();
  ASSERT_EQ(b.terminate(), 0) << b.log();
  auto reader = open_reader(brokers(), topic);
  ASSERT_TRUE(reader);
  const auto chains = read_chains(*reader);
  std::set<std::string> sent;
  for (const auto& [mark, ack] : acked) sent.insert(mark);
  expect_acked_exactly_once(chains, acked, sent);
  const auto report = verify(*reader, a.data());
  EXPECT_EQ(report.outcome, ledger::VerifyReport::Outcome::verified) << describe(report);
  EXPECT_EQ(report.checkpoints, kPartitions) << "each node signs for the partitions it wrote";

  std::vector<std::uint64_t> pos_a, pos_b;
  const auto digest_a = projections_digest(ledger::DataDir{a.data()}.projections_path(), &pos_a);
  const auto digest_b = projections_digest(ledger::DataDir{b.data()}.projections_path(), &pos_b);
  EXPECT_EQ(pos_a, expected);
  EXPECT_EQ(pos_b, expected);
  EXPECT_EQ(digest_a, digest_b);
  EXPECT_EQ(digest_a, rebuilt_digest(*reader, dir_.sub("rebuilt")));
  step("checked");
}

// A cluster of its own (1 or 3 brokers) started by ops/kafka/start in `dir`, stopped
// (ops/kafka/stop) when the guard dies, whatever the test did.
class OwnCluster {
 public:
  OwnCluster(std::string dir, int brokers) : dir_(std::move(dir)) {
    const auto started =
        testing::run({script("start"), "--brokers", std::to_string(brokers), "--dir", dir_});
    started_ = started.code == 0;
    bootstrap_ = started.out.substr(0, started.out.find('\n'));
    log_ = started.err;
  }
  ~OwnCluster() { stop(); }
  OwnCluster(const OwnCluster&) = delete;
  OwnCluster& operator=(const OwnCluster&) = delete;

  bool started() const { return started_; }
  const std::string& bootstrap() const { return bootstrap_; }
  const std::string& log() const { return log_; }
  testing::RunResult kill_broker(int id) {
    return testing::run({script("kill-broker"), std::to_string(id), "--dir", dir_});
  }
  testing::RunResult restart_broker(int id) {
    return testing::run({script("restart-broker"), std::to_string(id), "--dir", dir_});
  }
  testing::RunResult stop() { return testing::run({script("stop"), "--dir", dir_}); }

 private:
  static std::string script(const std::string& name) {
    return std::string(SECHEX_SOURCE_DIR) + "/ops/kafka/" + name;
  }
  std::string dir_;
  bool started_ = false;
  std::string bootstrap_;
  std::string log_;
};

// 4. Three brokers, replication factor 3 (min.insync.replicas 2): one broker killed with -9
// during ingest and restarted later. Appends may fail meanwhile (503), but nothing acknowledged
// is lost or doubled, the chains verify, and ledgerd acknowledges events again once the broker
// is back.
TEST_F(LedgerdKafka, ThreeBrokersOneKilledAndRestartedDuringIngestLoseNoAcknowledgedEvent) {
  Steps step;
  OwnCluster cluster(dir_.sub("kafka"), 3);
  ASSERT_TRUE(cluster.started()) << cluster.log();
  step("3 brokers started at " + cluster.bootstrap());
  const auto topic = unique("e2e-three");
  Ledgerd node(dir_.sub("node"));
  ASSERT_TRUE(node.start(cluster.bootstrap(), topic, {"--kafka-replication-factor", "3"}))
      << node.log();
  const auto token = node.token();
  step("ledgerd ready");

  // A client timeout above ledgerd's Kafka timeouts: every answer is a real answer.
  Ingest ingest(node.port(), token, 2, 60s);
  ASSERT_TRUE(ingest.wait_for_acks(10, 30s)) << describe(ingest.statuses()) << node.log();
  step(std::to_string(ingest.acked_count()) + " events acknowledged");
  const auto killed = cluster.kill_broker(2);
  ASSERT_EQ(killed.code, 0) << killed.err;
  step("broker 2 killed");
  const auto at_kill = ingest.acked_count();
  const auto t_kill = Clock::now();
  // Broker 2 stays down until 20 more events were acknowledged without it, or for 20 s.
  const bool served_without_it = ingest.wait_for_acks(at_kill + 20, 20s);
  const auto during = ingest.acked_count() - at_kill;
  const double down_for = seconds_since(t_kill);
  step("broker 2 down, " + std::to_string(during) + " events acknowledged meanwhile");
  const auto restarted = cluster.restart_broker(2);
  ASSERT_EQ(restarted.code, 0) << restarted.err;
  step("broker 2 restarted");
  const auto at_restart = ingest.acked_count();
  const bool served_after = ingest.wait_for_acks(at_restart + 10, 30s);
  ingest.stop();
  step("ingest stopped");
  std::cerr << "broker 2 down for " << down_for << " s: " << during
            << " events acknowledged meanwhile; " << ingest.acked().size() - at_restart
            << " after its restart; answers: " << describe(ingest.statuses()) << "\n";
  EXPECT_TRUE(served_without_it) << "with 2 of 3 brokers (min.insync.replicas 2) appends should "
                                    "go on after the leaders moved\n"
                                 << node.log();
  EXPECT_TRUE(served_after) << "no event acknowledged after broker 2 came back\n" << node.log();

  auto reader = open_reader(cluster.bootstrap(), topic);
  ASSERT_TRUE(reader);
  const auto chains = read_chains(*reader);
  const auto unacknowledged = expect_acked_exactly_once(chains, ingest.acked(), ingest.sent());
  step("read back: " + std::to_string(unacknowledged) +
       " events stored that were not acknowledged");
  const auto report = verify(*reader, node.data());
  EXPECT_EQ(report.outcome, ledger::VerifyReport::Outcome::verified) << describe(report);
  expect_personal_data_opens(node.port(), token, chains);
  EXPECT_EQ(node.terminate(), 0) << node.log();
  step("checked");
}

// 5. SIGTERM while the Kafka cluster is unreachable. Reads of partitions other nodes write
// (the follower, catch-up) wait up to the Kafka request timeout (30 s) when no broker answers;
// found by this test: ledgerd used to exit only after (partitions not written) x 30 s, longer
// than systemd's 90 s or Kubernetes' 30 s grace. Now a stop interrupts those reads
// (KafkaLog::interrupt). Expected: a stop request is honoured within seconds whatever the
// cluster does (nothing is lost by stopping: see the kill -9 test above).
TEST_F(LedgerdKafka, SigtermWhileTheClusterIsUnreachableStopsWithinSeconds) {
  Steps step;
  OwnCluster cluster(dir_.sub("kafka"), 1);
  ASSERT_TRUE(cluster.started()) << cluster.log();
  Ledgerd node(dir_.sub("node"));
  ASSERT_TRUE(node.start(cluster.bootstrap(), unique("e2e-unreachable"))) << node.log();
  step("ledgerd ready; it writes no partition, so it follows all four");
  const auto stopped = cluster.stop();
  ASSERT_EQ(stopped.code, 0) << stopped.err;
  step("cluster stopped");
  // Not a synchronisation: the follower starts a pass every 500 ms and shows nothing until a
  // read times out 30 s later, so 1 s guarantees a pass is under way against the dead cluster.
  std::this_thread::sleep_for(1s);
  const auto t0 = Clock::now();
  const auto code = node.terminate_within(10s);
  step("ledgerd gone");
  EXPECT_EQ(code, std::optional<int>(0))
      << "ledgerd did not stop within 10 s of SIGTERM with the cluster unreachable (killed after "
      << seconds_since(t0) << " s):\n"
      << node.log();
}

// An account registered on `node`, its address verified by the mailed link, signed in.
struct SignedIn {
  std::string user;
  std::string access;
};
SignedIn register_and_sign_in(const Ledgerd& node, const std::string& email,
                              const std::string& password) {
  auto call = [&](const std::string& target, const json& body, const std::string& token = "") {
    return testing::http_call_with(node.port(), http::verb::post, target, {}, token, body.dump(),
                                   60s);
  };
  const auto reg =
      call("/v1/auth/register", {{"email", email}, {"password", password}, {"consent", true}});
  EXPECT_EQ(reg.status, 201u) << reg.body << node.log();
  if (reg.status != 201u) return {};
  const auto user = json::parse(reg.body)["data"]["userId"].get<std::string>();
  std::string link;
  const auto deadline = Clock::now() + 60s;
  while (link.empty() && Clock::now() < deadline) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(node.data() + "/outbox", ec)) {
      std::smatch m;
      const auto mail = slurp(e.path().string());
      if (mail.find(email) == std::string::npos) continue;
      if (std::regex_search(mail, m, std::regex(R"(\?token=([A-Za-z0-9_-]+))"))) link = m[1];
    }
    if (link.empty()) std::this_thread::sleep_for(100ms);
  }
  EXPECT_FALSE(link.empty()) << node.log();
  EXPECT_EQ(call("/v1/auth/verify-email", {{"token", link}}).status, 200u);
  const auto in = call("/v1/auth/login", {{"email", email}, {"password", password}});
  EXPECT_EQ(in.status, 200u) << in.body;
  if (in.status != 200u) return {user, ""};
  return {user, json::parse(in.body)["data"]["accessToken"].get<std::string>()};
}

// 6. Identity on Kafka (issue 5): register, verify by the mailed link, log in, step up and erase
// (DELETE /v1/me). The erasure is SubjectErased plus the data key's tombstone in one Kafka
// transaction of the user's partition writer; afterwards the user cannot log in, their personal
// data reads as erased through ledgerctl, and the chain verifies.
TEST_F(LedgerdKafka, AccountLifecycleWithGdprErasureOnKafkaKeepsTheChainVerifiable) {
  Steps step;
  const auto topic = unique("e2e-identity");
  Ledgerd node(dir_.sub("node"));
  ASSERT_TRUE(node.start(brokers(), topic)) << node.log();
  step("ledgerd ready");
  auto call = [&](http::verb verb, const std::string& target, const json& body,
                  const std::string& token = "", testing::Headers headers = {}) {
    return testing::http_call_with(node.port(), verb, target, headers, token,
                                   body.is_null() ? "" : body.dump(), 60s);
  };
  const auto [user, access] = register_and_sign_in(node, "kafka-user@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(access.empty());
  const auto step_up =
      call(http::verb::post, "/v1/auth/reauth", {{"password", "Tr0ub4dor&3x"}}, access);
  ASSERT_EQ(step_up.status, 200u) << step_up.body;
  step("registered, verified, logged in, stepped up");
  const auto erased = call(
      http::verb::delete_, "/v1/me", nullptr, access,
      {{"X-Reauth-Token", json::parse(step_up.body)["data"]["reauthToken"].get<std::string>()}});
  ASSERT_EQ(erased.status, 200u) << erased.body << node.log();
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, access).status, 401u);
  EXPECT_EQ(call(http::verb::post, "/v1/auth/login",
                 {{"email", "kafka-user@example.com"}, {"password", "Tr0ub4dor&3x"}})
                .status,
            401u);
  step("erased");
  EXPECT_EQ(node.terminate(), 0) << node.log();

  const auto exported = testing::run(
      {SECHEX_LEDGERCTL, "--data-dir", node.data(), "--log", "kafka", "--kafka-brokers", brokers(),
       "--topic", topic, "export", "--format", "jsonl", "--subject", user},
      {"SECHEX_KEK="});
  ASSERT_EQ(exported.code, 0) << exported.err;
  EXPECT_EQ(exported.out.find("kafka-user@example.com"), std::string::npos);
  EXPECT_NE(exported.out.find("[erased]"), std::string::npos);
  EXPECT_NE(exported.out.find("SubjectErased"), std::string::npos);
  const auto verified = ledgerctl_verify(node.data(), brokers(), topic);
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
  step("export shows the erasure; the chain verifies");
}

// Issue 14 on Kafka: exclusive mode with the software device of `ledgerctl device` (self
// attestation allowed). Activation and signed requests are chained on the user's partition of
// the topic; an acknowledged validation survives kill -9 (its proof is still refused as a
// replay after the restart, the replay cache rebuilt from the topic); a second node that does
// not own the partition answers 421 naming the owner, and its secure audit, derived from the
// topic alone, lists the same actions; ledgerctl verify passes.
TEST_F(LedgerdKafka, ExclusiveModeOnKafkaSurvivesKillNineAndASecondNodeAgrees) {
  Steps step;
  const auto topic = unique("e2e-exclusive");
  const std::string origin = "https://id.example.com";
  const std::vector<std::string> flags = {"--public-url", origin, "--allow-self-attestation"};
  Ledgerd a(dir_.sub("a")), b(dir_.sub("b"));
  ASSERT_TRUE(a.start(brokers(), topic, flags)) << a.log();
  const auto [user, access] = register_and_sign_in(a, "xena@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(access.empty());
  const auto admin = a.token();
  auto post_to = [&](const Ledgerd& node, const std::string& target, const json& body,
                     const std::string& token, testing::Headers headers = {}) {
    return testing::http_call_with(node.port(), http::verb::post, target, headers, token,
                                   body.is_null() ? "" : body.dump(), 60s);
  };
  ASSERT_EQ(
      post_to(a, "/v1/admin/users/" + user + "/roles", {{"grant", {"premium"}}}, admin).status,
      200u);
  step("premium user signed in");

  auto device = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {SECHEX_LEDGERCTL, "--data-dir", a.data(), "device"});
    const auto r = testing::run(args, {"SECHEX_KEK="});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  };
  const auto key = dir_.sub("device.pem");
  device({"new", "--key", key});
  const auto challenge = post_to(a, "/v1/secure/exclusive/challenge", nullptr, access);
  ASSERT_EQ(challenge.status, 200u) << challenge.body;
  const auto attested = testing::run(
      {SECHEX_LEDGERCTL, "--data-dir", a.data(), "device", "attest", "--key", key, "--challenge",
       json::parse(challenge.body)["data"]["challenge"].get<std::string>(), "--origin", origin},
      {"SECHEX_KEK="});
  ASSERT_EQ(attested.code, 0) << attested.err;
  const auto started = post_to(a, "/v1/secure/exclusive/start", json::parse(attested.out), access);
  ASSERT_EQ(started.status, 201u) << started.body << a.log();
  const std::string session = json::parse(started.body)["data"]["sessionToken"];
  const auto path = std::string("/v1/secure/exclusive/validate");
  auto proof = [&](const std::string& target) {
    return device({"proof", "--key", key, "--token", session, "--url", origin + target});
  };
  auto signed_post = [&](const Ledgerd& node, const std::string& target, const std::string& p) {
    return post_to(node, target, {{"action", "approve"}}, "",
                   {{"Authorization", "DPoP " + session}, {"DPoP", p}});
  };
  const auto p1 = proof(path);
  const auto ok = signed_post(a, path, p1);
  ASSERT_EQ(ok.status, 200u) << ok.body << a.log();
  const auto receipt = json::parse(ok.body)["data"]["result"]["receipt"];
  const auto partition = receipt["partition"].get<std::uint32_t>();
  EXPECT_EQ(signed_post(a, path, p1).status, 409u) << "a replay";
  step("activated on the topic, a signed request served, its replay refused");

  // kill -9 right after the acknowledged validation: the topic has it, so the restarted node
  // (projections caught up from the topic) still refuses its proof.
  const auto p2 = proof(path);
  ASSERT_EQ(signed_post(a, path, p2).status, 200u);
  a.kill9();
  ASSERT_TRUE(a.start(brokers(), topic, flags)) << a.log();
  const auto replayed = signed_post(a, path, p2);
  EXPECT_EQ(replayed.status, 409u) << replayed.body << a.log();
  EXPECT_EQ(signed_post(a, path, proof(path)).status, 200u) << "a fresh proof is served";
  step("killed with -9 and restarted: the acknowledged proof is still a replay");

  // B owns every partition but the user's, and names A as its owner.
  std::string others;
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    if (p != partition) others += (others.empty() ? "" : ",") + std::to_string(p);
  }
  fs::create_directories(b.data());
  fs::copy(ledger::DataDir{a.data()}.keys_dir(), ledger::DataDir{b.data()}.keys_dir(),
           fs::copy_options::recursive);
  auto b_flags = flags;
  b_flags.insert(b_flags.end(), {"--owns-partitions", others, "--partition-owner",
                                 std::to_string(partition) + "=" + a.url()});
  ASSERT_TRUE(b.start(brokers(), topic, b_flags)) << b.log();
  const auto misdirected = signed_post(b, path, proof(path));
  ASSERT_EQ(misdirected.status, 421u) << misdirected.body;
  EXPECT_EQ(json::parse(misdirected.body)["error"]["details"]["owner"], a.url());
  const auto audit_of = [&](const Ledgerd& node) {
    const auto deadline = Clock::now() + 20s;
    testing::HttpReply r;
    do {
      r = testing::http_call(node.port(), http::verb::get,
                             "/v1/admin/secure/audit?format=csv&userId=" + user, admin, "", 30s);
      if (r.status == 200u && std::count(r.body.begin(), r.body.end(), '\n') >= 7) break;
      std::this_thread::sleep_for(100ms);
    } while (Clock::now() < deadline);
    return r.body;
  };
  const auto from_a = audit_of(a);
  // challenge, activation, 3 accepted, 2 replays, and the header.
  EXPECT_EQ(std::count(from_a.begin(), from_a.end(), '\n'), 8) << from_a;
  EXPECT_EQ(audit_of(b), from_a) << "B derived the same audit from the topic";
  step("B answers 421 naming A, and lists the same secure audit");

  EXPECT_EQ(b.terminate(), 0) << b.log();
  EXPECT_EQ(a.terminate(), 0) << a.log();
  const auto verified = ledgerctl_verify(a.data(), brokers(), topic);
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
  step("ledgerctl verify passes");
}

// A second node whose lookup-hash key (here SECHEX_LOOKUP_KEY) is not the first node's would
// find no known email in the shared projections' terms: it refuses to start instead, saying
// what to do; with the first node's key it starts.
// Issue 16, retention in Kafka mode: two nodes, each owning half the partitions, each prune their
// own partitions (each step chained into the partition it prunes) once caught up; the records
// below the cuts leave the topic, ledgerctl verifies the pruned chain, and the two nodes agree:
// both answer 410 for a pruned record and the same proof for a kept one.
TEST_F(LedgerdKafka, TwoNodesPruneTheirOwnPartitionsAndAgreeAfterwards) {
  Steps step;
  const auto topic = unique("e2e-retention");
  Ledgerd a(dir_.sub("a")), b(dir_.sub("b"));
  // 100 days of history, written before the nodes start.
  const auto demo =
      testing::run({SECHEX_LEDGERCTL, "--data-dir", a.data(), "--log", "kafka", "--kafka-brokers",
                    brokers(), "--topic", topic, "demo", "--events", "800", "--seed", "3",
                    "--partitions", std::to_string(kPartitions)},
                   {"SECHEX_KEK="});
  ASSERT_EQ(demo.code, 0) << demo.out << demo.err;
  const auto port_a = free_port(), port_b = free_port();
  ASSERT_NE(port_a, 0);
  ASSERT_NE(port_b, 0);
  const auto url_b = "http://127.0.0.1:" + std::to_string(port_b);
  // Both nodes catch up first: a node whose projections start below a cut could not (such a node
  // is seeded with a copy of a current node's projections; README "Retention and proofs on
  // Kafka").
  const auto url_a = "http://127.0.0.1:" + std::to_string(port_a);
  bool keys_copied = false;
  auto start = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> a_args = {"--owns-partitions", "0-1", "--partition-owner",
                                       "2-3=" + url_b};
    std::vector<std::string> b_args = {"--owns-partitions", "2-3", "--partition-owner",
                                       "0-1=" + url_a};
    a_args.insert(a_args.end(), extra.begin(), extra.end());
    b_args.insert(b_args.end(), extra.begin(), extra.end());
    if (!a.start(brokers(), topic, a_args, "127.0.0.1:" + std::to_string(port_a))) return false;
    if (!keys_copied) {
      // One KEK, signing key and token key ring (A made it at start) for the two nodes.
      fs::create_directories(b.data());
      fs::copy(ledger::DataDir{a.data()}.keys_dir(), ledger::DataDir{b.data()}.keys_dir(),
               fs::copy_options::recursive);
      keys_copied = true;
    }
    return b.start(brokers(), topic, b_args, "127.0.0.1:" + std::to_string(port_b));
  };
  ASSERT_TRUE(start({"--retention-days", "0"})) << a.log() << b.log();
  ASSERT_EQ(a.terminate(), 0) << a.log();
  ASSERT_EQ(b.terminate(), 0) << b.log();
  ASSERT_TRUE(start({"--retention-days", "90", "--retention-interval", "86400"}))
      << a.log() << b.log();
  step("nodes A and B ready");
  // A run's last line says " chained steps" (or " failed: ").
  auto wait_for_run = [&](const Ledgerd& node) {
    const auto deadline = Clock::now() + 60s;
    while (node.log().find(" chained steps") == std::string::npos &&
           node.log().find(" failed: ") == std::string::npos && Clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    return node.log();
  };
  for (const Ledgerd* node : {&a, &b}) {
    const auto log = wait_for_run(*node);
    ASSERT_NE(log.find(" chained steps"), std::string::npos) << log;
    EXPECT_EQ(log.find(" pruned 0 records"), std::string::npos) << log;
  }
  step("each node ran its retention job");

  auto reader = open_reader(brokers(), topic);
  ASSERT_TRUE(reader);
  std::vector<std::uint64_t> cuts(kPartitions);
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    cuts[p] = reader->retention_cut(ledger::Partition{p}).below.value;
    EXPECT_GT(cuts[p], 0u) << "partition " << p << " pruned by its owner";
    EXPECT_EQ(reader->read_range(ledger::Partition{p}, ledger::Seq{0}, ledger::Seq{1}).error(),
              ledger::Errc::pruned);
  }
  const auto verified = ledgerctl_verify(a.data(), brokers(), topic);
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
  EXPECT_NE(verified.out.find("pruned below seq"), std::string::npos) << verified.out;

  const auto token = a.token();
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto base = "/v1/admin/ledger/proof?partition=" + std::to_string(p) + "&seq=";
    std::string kept_a;
    for (const std::uint16_t port : {a.port(), port_b}) {
      const auto gone = testing::http_call(port, http::verb::get, base + "0", token);
      EXPECT_EQ(gone.status, 410u) << "port " << port << " partition " << p << ": " << gone.body;
      const auto kept =
          testing::http_call(port, http::verb::get, base + std::to_string(cuts[p]), token);
      ASSERT_EQ(kept.status, 200u) << "port " << port << " partition " << p << ": " << kept.body;
      if (kept_a.empty()) {
        kept_a = kept.body;
      } else {
        EXPECT_EQ(kept.body, kept_a) << "partition " << p << ": the nodes disagree";
      }
    }
  }
  step("checked");

  // A node replacing B starts with no projections: it cannot derive them below the cuts, so it
  // stays not ready and says what to do; seeded with a copy of A's projections made while A
  // runs, it catches up from there and answers like A.
  Ledgerd c(dir_.sub("c"));
  fs::create_directories(c.data());
  fs::copy(ledger::DataDir{a.data()}.keys_dir(), ledger::DataDir{c.data()}.keys_dir(),
           fs::copy_options::recursive);
  ASSERT_EQ(b.terminate(), 0) << b.log();
  const std::vector<std::string> c_args = {
      "--owns-partitions", "2-3", "--partition-owner", "0-1=" + url_a, "--retention-days", "0"};
  ASSERT_TRUE(c.start(brokers(), topic, c_args, "127.0.0.1:" + std::to_string(port_b), false))
      << c.log();
  const auto behind_deadline = Clock::now() + 30s;
  while (c.log().find("behind the retention cut") == std::string::npos &&
         Clock::now() < behind_deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(c.log().find("projections snapshot --to"), std::string::npos) << c.log();
  EXPECT_EQ(testing::http_call(port_b, http::verb::get, "/readyz").status, 503u);
  ASSERT_EQ(c.terminate(), 0) << c.log();
  const auto copy_dir = dir_.sub("a-projections");
  const auto copied = testing::run(
      {SECHEX_LEDGERCTL, "--data-dir", a.data(), "projections", "snapshot", "--to", copy_dir},
      {"SECHEX_KEK="});
  ASSERT_EQ(copied.code, 0) << copied.out << copied.err;
  EXPECT_NE(copied.out.find("positions: 0="), std::string::npos) << copied.out;
  const auto c_projections = ledger::DataDir{c.data()}.projections_path();
  fs::remove_all(c_projections);
  fs::rename(copy_dir, c_projections);
  ASSERT_TRUE(c.start(brokers(), topic, c_args, "127.0.0.1:" + std::to_string(port_b))) << c.log();
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto target =
        "/v1/admin/ledger/proof?partition=" + std::to_string(p) + "&seq=" + std::to_string(cuts[p]);
    const auto from_a = testing::http_call(a.port(), http::verb::get, target, token);
    const auto from_c = testing::http_call(port_b, http::verb::get, target, token);
    ASSERT_EQ(from_c.status, 200u) << from_c.body << c.log();
    EXPECT_EQ(from_c.body, from_a.body) << "partition " << p;
  }
  const auto audit_a =
      testing::http_call(a.port(), http::verb::get, "/v1/admin/audit?limit=1000", token, "", 30s);
  const auto audit_c =
      testing::http_call(port_b, http::verb::get, "/v1/admin/audit?limit=1000", token, "", 30s);
  ASSERT_EQ(audit_c.status, 200u) << audit_c.body;
  EXPECT_EQ(json::parse(audit_c.body)["data"]["entries"],
            json::parse(audit_a.body)["data"]["entries"])
      << "the seeded node lists the audit A lists";
  step("a node seeded with a copy of A's projections catches up and agrees");
}

TEST_F(LedgerdKafka, ASecondNodeWithAnotherLookupKeyRefusesToStart) {
  const auto topic = unique("e2e-lookup-key");
  Ledgerd a(dir_.sub("a")), b(dir_.sub("b"));
  ASSERT_TRUE(a.start(brokers(), topic)) << a.log();  // stores the lookup-key check
  EXPECT_EQ(a.terminate(), 0) << a.log();
  // B has A's KEK and signing key (copied), and a lookup key of its own from the environment.
  fs::create_directories(b.data());
  fs::copy(ledger::DataDir{a.data()}.keys_dir(), ledger::DataDir{b.data()}.keys_dir(),
           fs::copy_options::recursive);
  const auto a_key = slurp(ledger::DataDir{a.data()}.lookup_key_file());
  struct EnvGuard {
    ~EnvGuard() { ::unsetenv("SECHEX_LOOKUP_KEY"); }
  } unset_at_end;
  const auto other = ledger::crypto::base64_encode(ledger::crypto::random_bytes(32).value());
  ::setenv("SECHEX_LOOKUP_KEY", other.c_str(), 1);
  ASSERT_FALSE(b.start(brokers(), topic)) << "started with another lookup key\n" << b.log();
  EXPECT_EQ(b.exit_code(), 2) << b.log();
  EXPECT_NE(b.log().find("refusing to start: SECHEX_LOOKUP_KEY is not the lookup-hash key this "
                         "ledger was first started with"),
            std::string::npos)
      << b.log();
  EXPECT_NE(b.log().find("copy keys/lookup-key from the data directory of the node that first"),
            std::string::npos)
      << b.log();
  // The first node's key, through the same variable: B starts.
  ::setenv("SECHEX_LOOKUP_KEY", a_key.substr(0, a_key.find('\n')).c_str(), 1);
  ASSERT_TRUE(b.start(brokers(), topic)) << b.log();
  EXPECT_EQ(b.terminate(), 0) << b.log();
}

}  // namespace
}  // namespace sechex::api
