// Access log: one JSON line per request through spdlog, for log shippers.
//
//   {"ts":"2026-11-22T23:08:42.123456Z","level":"info","msg":"request","method":"GET",
//    "route":"/healthz","status":200,"duration_ms":0.41,"request_id":"...","peer":"127.0.0.1",
//    "bytes":38}
//
// A request whose handler threw (answered 500) is logged at level "error" with msg "handler
// threw" and "exception": the exception's class, never its message (which may quote input).
// The raw path and query are never logged (they may carry identifiers or tokens); the route
// pattern is. Request and response bodies are never logged.
// Thread-safety: the returned observer is safe to call from any io thread (spdlog *_mt sink).
// A write(2) per line would put a syscall on every request, and an async logger a thread wakeup:
// make_json_stderr_logger() only appends lines to a buffer; spdlog's flush thread writes them
// once a second (and a flush before exit writes the rest), so io threads never do or wait for
// I/O. Over 16 MiB pending (stderr not drained), lines are dropped and the count is logged.
#pragma once

#include <spdlog/logger.h>

#include <memory>

#include "api/http/server.h"
#include "ledger/clock.h"

namespace sechex::api {

// A logger that writes each message as-is (already a JSON object) to stderr, buffered.
std::shared_ptr<spdlog::logger> make_json_stderr_logger(const std::string& name);
RequestObserver access_log(std::shared_ptr<spdlog::logger> logger,
                           const Clock& clock = SystemClock::instance());

}  // namespace sechex::api
