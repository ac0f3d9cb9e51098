// ledgerd: the Sechex ledger service (README "Trying it"; ARCHITECTURE.md). Parses its
// configuration (config.h), then serves until SIGINT or SIGTERM (node.h).
//
// Exit codes: 0 after --help or a clean stop, 2 when it cannot start (bad flags, keys, store,
// address), with the reason on stderr.
#include <signal.h>

#include <iostream>

#include "config.h"
#include "node.h"

// jemalloc (release builds link it; see CMakeLists.txt) reads this at start-up. By default it
// hands allocations of 8 MiB and more straight back to the kernel when freed, and libargon2
// allocates its 19 MiB block per hash: every login then faulted ~4,900 fresh pages in (1.37x
// the CPU of a raw hash, bench/README.md "Identity"). With no oversize arena the block is reused
// (libargon2 wipes it before freeing). Unused by glibc malloc (sanitizer builds).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "oversize_threshold:0";
}

int main(int argc, char** argv) {
  auto config = sechex::ledgerd::parse_config(argc, argv, std::cout, std::cerr);
  if (!config) return config.error() == sechex::ledgerd::ConfigErrc::help_shown ? 0 : 2;

  // Block the stop signals in every thread (those serve() starts inherit the mask); this one
  // waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return sechex::ledgerd::serve(config.value(), [&signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    return sig;
  });
}
