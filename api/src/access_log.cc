#include "api/access_log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <nlohmann/json.hpp>

#include "ledger/time_format.h"

namespace sechex::api {

namespace {

// Appends lines to a buffer and writes it to stderr in large chunks: when 64 KiB are pending and
// on flush() (spdlog::flush_every and shutdown). No syscall and no thread wakeup per request.
class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ~BufferedStderrSink() override { flush_(); }  // nothing can log to a sink being destroyed

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    buffer_.append(msg.payload.data(), msg.payload.size());
    buffer_.push_back('\n');
    if (buffer_.size() >= kChunk) flush_();
  }
  void flush_() override {
    std::size_t done = 0;
    while (done < buffer_.size()) {
      const auto n = ::write(STDERR_FILENO, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // nowhere to write: drop rather than spin
      done += static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

 private:
  static constexpr std::size_t kChunk = 64 * 1024;
  std::string buffer_;
};

}  // namespace

std::shared_ptr<spdlog::logger> make_json_stderr_logger(const std::string& name) {
  auto logger = std::make_shared<spdlog::logger>(name, std::make_shared<BufferedStderrSink>());
  logger->set_pattern("%v");
  // flush_every() flushes registered loggers from its own thread once a second.
  if (spdlog::get(name) == nullptr) spdlog::register_logger(logger);
  static std::once_flag every;
  std::call_once(every, [] { spdlog::flush_every(std::chrono::seconds(1)); });
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
