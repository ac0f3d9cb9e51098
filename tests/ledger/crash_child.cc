// Child process for crash_test: appends forever from several threads and prints one line per
// acknowledged append, "ACK <partition> <first seq> <count> <tag>", only after append()
// returned. With a fourth argument "prune", one more thread runs retention over and over
// (LogStore::prune up to a few records short of the latest checkpoint) and prints
// "CUT <partition> <below>" after each prune returned. The parent kills it with SIGKILL at a
// random moment.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "ledger/checkpoint.h"
#include "support/test_util.h"

using namespace sechex;
using namespace sechex::ledger;

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: crash_child DIR KEY_PEM THREADS [prune]\n");
    return 2;
  }
  const bool pruning = argc == 5 && std::string(argv[4]) == "prune";
  auto signer = CheckpointSigner::load(argv[2], "crash-test");
  if (!signer) return 3;
  LogOptions o;
  o.path = argv[1];
  o.create_if_missing = true;
  o.partitions = 4;
  o.signer = &signer.value();
  o.checkpoints.every_records = 37;
  Fault fault;
  auto log = LogStore::open(o, &fault);
  if (!log) {
    std::fprintf(stderr, "open failed: %s %s\n", log.error().message().c_str(),
                 fault.reason.c_str());
    return 4;
  }
  const int threads = std::stoi(argv[3]);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const auto subject = sechex::testing::subject_in(static_cast<std::uint32_t>(t % 4), 4, t);
      const auto p = partition_for(subject, 4);
      for (std::uint64_t i = 0;; ++i) {
        const auto tag =
            std::to_string(getpid()) + "-" + std::to_string(t) + "-" + std::to_string(i);
        // Mix single-event appends and small batches.
        const int n = 1 + static_cast<int>(i % 3);
        std::vector<Bytes> events;
        for (int k = 0; k < n; ++k)
          events.push_back(sechex::testing::make_event(subject, tag + "." + std::to_string(k)));
        std::vector<ByteView> views(events.begin(), events.end());
        auto r = log.value()->append(p, views);
        if (!r) return;
        char line[256];
        const int len =
            std::snprintf(line, sizeof(line), "ACK %u %llu %d %s\n", p.value,
                          static_cast<unsigned long long>(r.value().first.value), n, tag.c_str());
        // One write() per line: lines from different threads never interleave.
        if (::write(STDOUT_FILENO, line, static_cast<std::size_t>(len)) != len) return;
      }
    });
  }
  if (pruning) {
    workers.emplace_back([&] {
      for (;;) {
        for (std::uint32_t i = 0; i < 4; ++i) {
          const Partition p{i};
          auto note = log.value()->latest_checkpoint(p);
          if (!note || !note.value()) continue;
          const auto cp = parse_checkpoint_body(*note.value());
          if (!cp || cp->size < 5) continue;
          const Seq below{cp->size - 3};
          if (!log.value()->prune(p, below, 1)) return;
          char line[64];
          const int len = std::snprintf(line, sizeof(line), "CUT %u %llu\n", i,
                                        static_cast<unsigned long long>(below.value));
          if (::write(STDOUT_FILENO, line, static_cast<std::size_t>(len)) != len) return;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return 0;
}
