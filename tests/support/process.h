// Child processes for tests that drive the real binaries (ledgerd, ledgerctl, openssl).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

namespace sechex::testing {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

namespace detail {
// In the child: apply "NAME=value" entries ("NAME=" removes NAME), then exec.
[[noreturn]] inline void exec_child(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env) {
  for (const auto& kv : env) {
    const auto eq = kv.find('=');
    if (eq + 1 == kv.size()) {
      ::unsetenv(kv.substr(0, eq).c_str());
    } else {
      ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
    }
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}
}  // namespace detail

// Exit code, or 128 + signal number.
inline int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` to completion, capturing stdout and stderr.
inline RunResult run(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env = {}) {
  TempDir io;
  const auto out_path = io.sub("out"), err_path = io.sub("err");
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, STDOUT_FILENO);
    ::dup2(e, STDERR_FILENO);
    detail::exec_child(argv, env);
  }
  RunResult r;
  r.code = wait_exit(pid);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

// A background process with stderr going to `err_path`.
struct Process {
  pid_t pid = -1;
  std::string err_path;
};

inline Process spawn(const std::vector<std::string>& args, const std::string& err_path,
                     const std::vector<std::string>& env = {"SECHEX_KEK="}) {
  Process p;
  p.err_path = err_path;
  p.pid = ::fork();
  if (p.pid == 0) {
    const int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, STDERR_FILENO);
    detail::exec_child(args, env);
  }
  return p;
}

// The port ledgerd reports in "serving on 127.0.0.1:PORT", or 0 after `timeout`.
inline std::uint16_t wait_for_serving_port(
    const Process& p, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  const std::regex serving("serving on [0-9.]+:([0-9]+)");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const auto err = slurp(p.err_path);
    if (std::regex_search(err, m, serving)) return static_cast<std::uint16_t>(std::stoi(m[1]));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

}  // namespace sechex::testing
