// The access log's buffered sink: lines reach stderr only when flushed (never from the request
// thread), in order, and a stderr nobody drains costs dropped lines, counted, not memory.
#include "api/http/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/process.h"

namespace sechex::api {
namespace {

// Points this process's stderr at a file for the test's duration.
class CapturedStderr {
 public:
  explicit CapturedStderr(const std::string& path) : saved_(::dup(STDERR_FILENO)) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~CapturedStderr() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }

 private:
  int saved_;
};

TEST(AccessLogSink, LinesAreWrittenOnlyWhenFlushedAndInOrder) {
  testing::TempDir dir;
  const auto path = dir.sub("err");
  CapturedStderr capture(path);
  auto logger = make_json_stderr_logger("access-test-order");
  spdlog::drop("access-test-order");  // no periodic flush during the test: only ours
  logger->info(R"({"n":1})");
  logger->info(R"({"n":2})");
  EXPECT_EQ(testing::slurp(path), "");  // nothing written by the logging thread itself
  logger->flush();
  EXPECT_EQ(testing::slurp(path), "{\"n\":1}\n{\"n\":2}\n");
}

TEST(AccessLogSink, AnUndrainedStderrDropsAndCountsLinesInsteadOfGrowing) {
  testing::TempDir dir;
  const auto path = dir.sub("err");
  CapturedStderr capture(path);
  auto logger = make_json_stderr_logger("access-test-drop");
  spdlog::drop("access-test-drop");
  const std::string line = R"({"pad":")" + std::string(1000, 'x') + R"("})";
  constexpr int kLines = 17 * 1024;  // ~17 MiB, over the 16 MiB cap
  for (int i = 0; i < kLines; ++i) logger->info(line);
  logger->flush();
  const auto text = testing::slurp(path);
  const auto dropped_at = text.find(R"("msg":"access log lines dropped","dropped":)");
  ASSERT_NE(dropped_at, std::string::npos);
  const auto written = std::count(text.begin(), text.end(), '\n') - 1;  // minus the warning
  const auto dropped = std::stoll(text.substr(text.find("\"dropped\":", dropped_at) + 10));
  EXPECT_GT(dropped, 0);
  EXPECT_EQ(written + dropped, kLines);
  EXPECT_LE(text.size(), (16u << 20) + 200);
}

TEST(AccessLog, AHandlerThatThrewIsAnErrorLineNamingTheExceptionClass) {
  testing::TempDir dir;
  const auto path = dir.sub("err");
  CapturedStderr capture(path);
  auto logger = make_json_stderr_logger("access-test-throw");
  spdlog::drop("access-test-throw");
  const auto observe = access_log(logger);
  RequestLog ok{"GET", "/v1/me", 200, {}, "rid-1", "127.0.0.1", 10, {}, {}};
  RequestLog threw{"POST",
                   "/v1/auth/login",
                   500,
                   {},
                   "rid-2",
                   "127.0.0.1",
                   60,
                   {},
                   "nlohmann::json_abi_v3_11_2::detail::type_error"};
  observe(ok);
  observe(threw);
  logger->flush();
  const auto text = testing::slurp(path);
  const auto second = text.find('\n');
  ASSERT_NE(second, std::string::npos);
  const auto first_line = nlohmann::json::parse(text.substr(0, second));
  const auto error_line = nlohmann::json::parse(text.substr(second + 1));
  EXPECT_EQ(first_line["level"], "info");
  EXPECT_FALSE(first_line.contains("exception"));
  EXPECT_EQ(error_line["level"], "error");
  EXPECT_EQ(error_line["msg"], "handler threw");
  EXPECT_EQ(error_line["request_id"], "rid-2");
  EXPECT_EQ(error_line["route"], "/v1/auth/login");
  EXPECT_EQ(error_line["exception"], "nlohmann::json_abi_v3_11_2::detail::type_error");
}

}  // namespace
}  // namespace sechex::api
