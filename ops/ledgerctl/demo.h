// `ledgerctl demo`: realistic synthetic events of every type through the real append path.
#pragma once

#include <cstdint>
#include <iosfwd>

#include "ledger/key_store.h"
#include "ledger/log.h"

namespace sechex::ops {

struct DemoOptions {
  std::uint64_t events = 1000;
  std::uint32_t subjects = 0;  // 0 = derived from `events`
  std::uint32_t batch = 256;   // events per append
  std::uint64_t seed = 0;      // 0 = random
};

// Writes `events` events covering every event type, spread over many subjects (and so over
// every partition), sealing their personal data with `keys` (which must belong to `log`).
// Returns the number written; on failure, batches appended before it stay written.
Result<std::uint64_t> run_demo(ledger::Log& log, ledger::KeyStore& keys, const DemoOptions& opts,
                               std::ostream& progress);

}  // namespace sechex::ops
