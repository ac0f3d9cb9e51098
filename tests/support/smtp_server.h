// A real SMTP server for tests (ops/smtp: aiosmtpd on loopback), started for the lifetime of
// the object, and what it received.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/process.h"
#include "support/temp_dir.h"

namespace sechex::testing {

// ops/smtp/start in `dir` for the lifetime of the object.
class SmtpServer {
 public:
  explicit SmtpServer(std::string dir) : dir_(std::move(dir)) {
    const auto r = run({"/bin/bash", SECHEX_SOURCE_DIR "/ops/smtp/start", "--dir", dir_});
    start_error_ =
        r.code == 0 ? "" : "ops/smtp/start exited " + std::to_string(r.code) + ": " + r.err;
    address_ = r.out.substr(0, r.out.find('\n'));
  }
  ~SmtpServer() { run({"/bin/bash", SECHEX_SOURCE_DIR "/ops/smtp/stop", "--dir", dir_}); }
  const std::string& start_error() const { return start_error_; }
  std::string url() const { return "smtp://" + address_; }
  // The next `n` messages are refused with 451.
  void fail_next(int n) const {
    write_file(dir_ + "/fail_next.tmp", std::to_string(n));
    std::filesystem::rename(dir_ + "/fail_next.tmp", dir_ + "/fail_next");
  }
  std::size_t count() const {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (e.path().extension() == ".eml") ++n;
    }
    return n;
  }
  std::string message(int n) const { return read_file(dir_ + "/" + std::to_string(n) + ".eml"); }
  nlohmann::json envelope(int n) const {
    return nlohmann::json::parse(read_file(dir_ + "/" + std::to_string(n) + ".json"));
  }

 private:
  std::string dir_;
  std::string address_;
  std::string start_error_;
};

}  // namespace sechex::testing
