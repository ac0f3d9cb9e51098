// Issue 16 end to end: ledgerd's retention job over a store holding 100 days of events, Merkle
// proofs served over HTTP and checked offline by `ledgerctl verify-proof` with only the public
// key, and audit answers that say where history was cut instead of leaving a silent gap.
#include <fstream>

#include "ledger/log.h"
#include "support/ledgerd_fixture.h"

namespace sechex::testing {
namespace {

namespace http = boost::beast::http;

class Compliance : public LedgerdHttpTest {
 protected:
  // The latest checkpoint size of each partition, read with ledgerctl (ledgerd stopped or not).
  std::vector<std::uint64_t> checkpoint_sizes() {
    const auto r = ctl({"checkpoints"});
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<std::uint64_t> sizes(4, 0);
    std::istringstream in(r.out);
    std::string line;
    std::optional<std::uint32_t> partition;
    while (std::getline(in, line)) {
      const auto slash = line.rfind('/');
      if (line.rfind("sechex-ledger/", 0) == 0 && slash != std::string::npos) {
        partition = static_cast<std::uint32_t>(std::stoul(line.substr(slash + 1)));
        std::getline(in, line);
        sizes.at(*partition) = std::stoull(line);
      }
    }
    return sizes;
  }
  std::string write(const std::string& name, const std::string& text) {
    const auto path = dir_.sub(name);
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }
  RunResult verify_offline(const std::string& proof_file) {
    return run({SECHEX_LEDGERCTL, "verify-proof", proof_file, "--trusted-keys",
                data() + "/keys/checkpoint-verifiers.txt"},
               {"SECHEX_KEK="});
  }
};

TEST_F(Compliance, RetentionJobPrunesOldPayloadsAndProofsAreServedAndCheckedOffline) {
  ASSERT_EQ(ctl({"init", "--partitions", "4"}).code, 0);
  const auto demo = ctl({"demo", "--events", "1500", "--seed", "3"});
  ASSERT_EQ(demo.code, 0) << demo.err;
  const auto before_run = checkpoint_sizes();
  start({"--retention-days", "90", "--retention-interval", "86400", "--retention-archive-dir",
         dir_.sub("archives")});
  const auto admin = admin_token();
  // The job runs once the projections have caught up.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  // Its last line says " chained steps" (or "failed"); an "archived" line comes before it.
  while (log().find(" chained steps") == std::string::npos &&
         log().find(" failed: ") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(log().find(" chained steps"), std::string::npos) << log();
  EXPECT_EQ(log().find(" pruned 0 records"), std::string::npos) << log();

  // What went was archived first, and the archive verifies with only the public key.
  std::size_t archives = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir_.sub("archives"))) {
    ++archives;
    const auto v = run({SECHEX_LEDGERCTL, "verify", "--archive", f.path().string(), "--trusted-key",
                        data() + "/keys/checkpoint-verifiers.txt"},
                       {"SECHEX_KEK="});
    EXPECT_EQ(v.code, 0) << v.out << v.err;
  }
  EXPECT_EQ(archives, 1u);

  // Checkpoints now carry the Merkle root beside the chain head.
  const auto cps = call(http::verb::get, "/v1/admin/ledger/checkpoints", nullptr, admin);
  ASSERT_EQ(cps.status, 200u) << cps.body;
  const auto cps_data = data_of(cps);
  for (const auto& cp : cps_data["checkpoints"]) {
    EXPECT_EQ(cp["rootHash"].get<std::string>().size(), 64u) << cp;
  }

  // A record below the cut: 410 pruned, saying where the cut is.
  const auto gone =
      call(http::verb::get, "/v1/admin/ledger/proof?partition=0&seq=0", nullptr, admin);
  ASSERT_EQ(gone.status, 410u) << gone.body;
  EXPECT_EQ(error_of(gone)["code"], "pruned");
  const auto cut = error_of(gone)["details"]["prunedBelowSeq"].get<std::uint64_t>();
  EXPECT_GT(cut, 0u);

  // A kept record: the proof verifies offline with only the public key.
  const auto kept =
      call(http::verb::get, "/v1/admin/ledger/proof?partition=0&seq=" + std::to_string(cut),
           nullptr, admin);
  ASSERT_EQ(kept.status, 200u) << kept.body;
  EXPECT_EQ(data_of(kept)["seq"], cut);
  auto r = verify_offline(write("proof.json", kept.body));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto forged = data_of(kept);
  forged["rootHash"] = std::string(64, 'a');
  r = verify_offline(write("forged.json", forged.dump()));
  EXPECT_EQ(r.code, 1) << r.out;

  // The retention run extended the tree that the demo's checkpoints signed: consistent.
  const auto home = ledger::partition_for("system:retention", 4).value;
  const auto after_run = checkpoint_sizes();
  ASSERT_GT(after_run[home], before_run[home]);
  const auto cons = call(http::verb::get,
                         "/v1/admin/ledger/consistency?partition=" + std::to_string(home) +
                             "&from=" + std::to_string(before_run[home]) +
                             "&to=" + std::to_string(after_run[home]),
                         nullptr, admin);
  ASSERT_EQ(cons.status, 200u) << cons.body;
  r = verify_offline(write("consistency.json", cons.body));
  EXPECT_EQ(r.code, 0) << r.out << r.err;

  // Bad queries are 400 with the parameter named; past the tree is 404.
  for (const auto* q : {"?partition=0", "?partition=9&seq=1", "?partition=0&seq=-1",
                        "?partition=0&seq=1&extra=2", "?partition=0&seq=%FF"}) {
    const auto bad =
        call(http::verb::get, std::string("/v1/admin/ledger/proof") + q, nullptr, admin);
    EXPECT_EQ(bad.status, 400u) << q << " " << bad.body;
  }
  EXPECT_EQ(
      call(http::verb::get, "/v1/admin/ledger/proof?partition=0&seq=999999", nullptr, admin).status,
      404u);
  EXPECT_EQ(
      call(http::verb::get, "/v1/admin/ledger/consistency?partition=0&from=0&to=5", nullptr, admin)
          .status,
      400u);
  EXPECT_EQ(
      call(http::verb::get, "/v1/admin/ledger/consistency?partition=0&from=3&to=5", nullptr, admin)
          .status,
      400u);
  // Admins only.
  EXPECT_EQ(call(http::verb::get, "/v1/admin/ledger/proof?partition=0&seq=1").status, 401u);

  // The audit answer says history before the cut is gone.
  const auto audit = call(http::verb::get, "/v1/admin/audit?limit=5", nullptr, admin);
  ASSERT_EQ(audit.status, 200u) << audit.body;
  const auto audit_data = data_of(audit);
  ASSERT_TRUE(audit_data.contains("pruned")) << audit.body;
  EXPECT_GE(audit_data["pruned"].size(), 1u);
  for (const auto& e : audit_data["entries"]) {
    const auto p = e["partition"].get<std::uint32_t>();
    for (const auto& c : audit_data["pruned"]) {
      if (c["partition"] == p) {
        EXPECT_GE(e["seq"].get<std::uint64_t>(), c["prunedBelowSeq"].get<std::uint64_t>());
      }
    }
  }

  // And after all that, the whole store verifies, naming the cuts.
  ASSERT_EQ(stop(), 0);
  r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("pruned below seq"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace sechex::testing
