#include "api/http/access_log.h"

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <nlohmann/json.hpp>

#include "ledger/time_format.h"

namespace sechex::api {

namespace {

// Request threads only append to a buffer under a short lock; the writing is done by whoever
// flushes (spdlog's flush_every thread, and ledgerd at exit), outside that lock, so an io thread
// never performs or waits for I/O, even when stderr is a pipe nobody drains. Pending lines are
// capped: beyond kMaxPending they are counted and dropped, and the count is logged.
class BufferedStderrSink final : public spdlog::sinks::sink {
 public:
  ~BufferedStderrSink() override { flush(); }

  void log(const spdlog::details::log_msg& msg) override {
    std::lock_guard lock(mu_);
    if (pending_.size() + msg.payload.size() + 1 > kMaxPending) {
      ++dropped_;
      return;
    }
    pending_.append(msg.payload.data(), msg.payload.size());
    pending_.push_back('\n');
  }

  void flush() override {
    std::lock_guard writing(write_mu_);  // one writer at a time keeps lines in order
    std::string out;
    std::uint64_t dropped = 0;
    {
      std::lock_guard lock(mu_);
      out.swap(pending_);
      std::swap(dropped, dropped_);
    }
    if (dropped != 0) {
      out += R"({"level":"warn","msg":"access log lines dropped","dropped":)" +
             std::to_string(dropped) + "}\n";
    }
    std::size_t done = 0;
    while (done < out.size()) {
      const auto n = ::write(STDERR_FILENO, out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // nowhere to write: drop rather than spin
      done += static_cast<std::size_t>(n);
    }
  }

  // Lines are written as given (each is already a JSON object).
  void set_pattern(const std::string&) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

 private:
  static constexpr std::size_t kMaxPending = 16 << 20;
  std::mutex mu_;
  std::mutex write_mu_;
  std::string pending_;
  std::uint64_t dropped_ = 0;
};

}  // namespace

std::shared_ptr<spdlog::logger> make_json_stderr_logger(const std::string& name) {
  auto logger = std::make_shared<spdlog::logger>(name, std::make_shared<BufferedStderrSink>());
  logger->set_pattern("%v");
  // flush_every() flushes registered loggers from its own thread: that thread does the writing.
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
    if (!r.handler_exception.empty()) {
      // A handler bug: worth an error line of its own level (the class only, never what()).
      line["level"] = "error";
      line["msg"] = "handler threw";
      line["exception"] = r.handler_exception;
    }
    // Invalid UTF-8 cannot reach here (method/route are ours, ids are checked tokens), but a
    // log line must never throw: replace rather than fail.
    logger->info(line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  };
}

}  // namespace sechex::api
