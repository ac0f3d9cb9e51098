// One ledgerd node: everything between a checked configuration (config.h) and the exit code.
//
// serve() opens the data directory and the ledger (embedded RocksDB or Kafka), the key store,
// the projections and the token keys; builds the APIs, their route table check and the two
// listeners; starts the background loops (catch-up, mail delivery, session activity, Kafka
// ingest, checkpoints and key-ring reloads, following other nodes' partitions); prints
// "serving on HOST:PORT" once it listens (tests and scripts wait for that line); then calls
// `wait_for_stop` and stops everything in order: listeners, the work answered 202, Kafka reads,
// workers, loops, a last checkpoint, the logs.
//
// Returns the process exit code: 0 after a clean stop, 2 when it cannot start (the reason on
// stderr). Call it once, from the main thread, with SIGINT and SIGTERM blocked (threads it
// starts inherit the mask; `wait_for_stop` is expected to sigwait for them).
#pragma once

#include <functional>

#include "config.h"

namespace sechex::ledgerd {

int serve(const Config& config, const std::function<int()>& wait_for_stop);

}  // namespace sechex::ledgerd
