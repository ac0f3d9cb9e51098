// The access log's buffered sink: lines reach stderr only when flushed (never from the request
// thread), in order, and a stderr nobody drains costs dropped lines, counted, not memory.
#include "api/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

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

}  // namespace
}  // namespace sechex::api
