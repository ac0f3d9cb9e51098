// Child processes for tests that drive the real binaries (ledgerd, ledgerctl, openssl).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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
// Everything the child needs, built before fork(): between fork() and exec() in a process with
// other threads only async-signal-safe calls are allowed. A malloc there can deadlock on an
// allocator lock another thread held at fork time (seen with ASan while RocksDB threads ran).
struct ExecPlan {
  std::vector<std::string> strings;  // owns what argv/envp point to
  std::vector<char*> argv, envp;
};

// `env` entries "NAME=value" set NAME, "NAME=" removes it, on top of this process's environment.
inline ExecPlan plan_exec(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env) {
  ExecPlan p;
  auto name_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) vars.emplace_back(*e);
  // ops/kafka/with-broker exports SECHEX_KAFKA_BROKERS for the test binaries; ledgerd would
  // read it as --kafka-brokers (SECHEX_<FLAG>). Children get brokers only on their command line.
  std::erase_if(vars, [&](const std::string& v) { return name_of(v) == "SECHEX_KAFKA_BROKERS"; });
  // ledgerd's metrics listener has a fixed default port (127.0.0.1:9464): tests run several
  // ledgerds at once, so theirs take an ephemeral one, read from its "metrics on" line
  // (wait_for_serving_port), unless a test sets the variable itself.
  if (std::none_of(vars.begin(), vars.end(),
                   [&](const std::string& v) { return name_of(v) == "SECHEX_METRICS_LISTEN"; })) {
    vars.emplace_back("SECHEX_METRICS_LISTEN=127.0.0.1:0");
  }
  for (const auto& kv : env) {
    const auto name = name_of(kv);
    std::erase_if(vars, [&](const std::string& v) { return name_of(v) == name; });
    if (kv.size() > name.size() + 1) vars.push_back(kv);
  }
  p.strings = argv;
  p.strings.insert(p.strings.end(), vars.begin(), vars.end());
  for (std::size_t i = 0; i < p.strings.size(); ++i) {
    (i < argv.size() ? p.argv : p.envp).push_back(p.strings[i].data());
  }
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);
  return p;
}

// In the child, right after fork(): SIGKILL when the test binary dies (a crash, an abort, a
// timeout's kill), so no ledgerd outlives it as an orphan holding ports and temp dirs. `parent`
// is the test's pid taken before fork(): if it died before prctl() took effect, the child has
// been reparented already and must go now. prctl() and getppid() are async-signal-safe.
// Linux delivers the signal when the *thread* that forked exits, so a child spawned from a
// short-lived std::thread dies with that thread: spawn background processes from the thread that
// owns them (the test body or fixture).
inline void die_with_parent(pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
}

// In the child, after the fd plumbing: async-signal-safe only.
[[noreturn]] inline void exec_child(const ExecPlan& p) {
  ::execve(p.argv[0], p.argv.data(), p.envp.data());
  ::_exit(127);
}
}  // namespace detail

// Exit code, or 128 + signal number.
// The exit code (128 + signal when killed); -1 when the child cannot be waited for. A signal
// interrupting the wait is retried: an unchecked EINTR read as "exited 0" before the child had
// written anything (a CI run saw ledgerctl's output empty with exit code 0).
inline int wait_exit(pid_t pid) {
  int status = 0;
  pid_t waited = -1;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited == -1 && errno == EINTR);
  if (waited != pid) return -1;
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
  const auto plan = detail::plan_exec(argv, env);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    detail::die_with_parent(parent);
    const int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, STDOUT_FILENO);
    ::dup2(e, STDERR_FILENO);
    detail::exec_child(plan);
  }
  RunResult r;
  r.code = wait_exit(pid);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

// A background process with stderr going to `err_path`; killed (SIGKILL) if the test binary
// dies first (detail::die_with_parent).
struct Process {
  pid_t pid = -1;
  std::string err_path;
};

// `err_path` is truncated before spawn() returns (opened here, not in the child), so a reader
// such as wait_for_serving_port never sees what an earlier process left in the same file.
inline Process spawn(const std::vector<std::string>& args, const std::string& err_path,
                     const std::vector<std::string>& env = {"SECHEX_KEK="}) {
  Process p;
  p.err_path = err_path;
  const auto plan = detail::plan_exec(args, env);
  const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const pid_t parent = ::getpid();
  p.pid = ::fork();
  if (p.pid == 0) {
    detail::die_with_parent(parent);
    ::dup2(err, STDERR_FILENO);  // the copy does not inherit O_CLOEXEC
    detail::exec_child(plan);
  }
  if (err >= 0) ::close(err);
  return p;
}

// The port ledgerd reports in "serving on 127.0.0.1:PORT" (or `what` instead of "serving on",
// e.g. "metrics on"), or 0 after `timeout`.
inline std::uint16_t wait_for_serving_port(
    const Process& p, std::chrono::milliseconds timeout = std::chrono::seconds(15),
    const std::string& what = "serving on") {
  const std::regex serving(what + " [0-9.]+:([0-9]+)");
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
