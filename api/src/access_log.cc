#include "api/access_log.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "ledger/time_format.h"

namespace sechex::api {

std::shared_ptr<spdlog::logger> make_json_stderr_logger(const std::string& name) {
  static std::once_flag pool_once;
  std::call_once(pool_once, [] { spdlog::init_thread_pool(8192, 1); });
  auto logger = std::make_shared<spdlog::async_logger>(
      name, std::make_shared<spdlog::sinks::stderr_sink_mt>(), spdlog::thread_pool(),
      spdlog::async_overflow_policy::overrun_oldest);
  logger->set_pattern("%v");
  return logger;
}

RequestObserver access_log(std::shared_ptr<spdlog::logger> logger, const Clock& clock) {
  return [logger = std::move(logger), &clock](const RequestLog& r) {
    nlohmann::ordered_json line{
        {"ts", format_rfc3339(clock.now_micros())},
        {"level", "info"},
        {"msg", "request"},
        {"method", r.method},
        {"route", r.route},
        {"status", r.status},
        {"duration_ms", std::chrono::duration<double, std::milli>(r.elapsed).count()},
        {"request_id", r.request_id},
        {"peer", r.peer},
        {"bytes", r.response_bytes}};
    if (!r.reject_reason.empty()) line["reject_reason"] = r.reject_reason;
    // Invalid UTF-8 cannot reach here (method/route are ours, ids are checked tokens), but a
    // log line must never throw: replace rather than fail.
    logger->info(line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  };
}

}  // namespace sechex::api
