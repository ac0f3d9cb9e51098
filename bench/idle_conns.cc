// Idle keep-alive connections and server memory, for bench/run: reads the server's VmRSS, opens
// N connections to 127.0.0.1:PORT, sends one keep-alive GET on each and reads its answer, then
// leaves them all idle, waits, reads VmRSS again and checks how many the server still holds.
// Prints one JSON object on stdout. Raises its own RLIMIT_NOFILE to the hard limit (the server
// needs the same: bench/run raises the shell's soft limit before starting it).
// Usage: idle_conns PORT PID [N=10000] [PATH=/healthz] [SETTLE_SECONDS=2]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

long vm_rss_kb(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Reads one response (headers + Content-Length body); false on error or close.
bool read_response(int fd) {
  std::string data;
  char buf[4096];
  std::size_t need = std::string::npos;
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    data.append(buf, static_cast<std::size_t>(n));
    if (need == std::string::npos) {
      const auto end = data.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::size_t length = 0;
      for (const char* name : {"Content-Length:", "content-length:"}) {
        const auto at = data.find(name);
        if (at != std::string::npos && at < end) {
          length = std::strtoul(data.c_str() + at + 15, nullptr, 10);
        }
      }
      need = end + 4 + length;
    }
    if (data.size() >= need) return true;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: idle_conns PORT PID [N] [PATH] [SETTLE_SECONDS]\n";
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const long pid = std::atol(argv[2]);
  const int n = argc > 3 ? std::atoi(argv[3]) : 10000;
  const std::string path = argc > 4 ? argv[4] : "/healthz";
  const int settle = argc > 5 ? std::atoi(argv[5]) : 2;

  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < static_cast<rlim_t>(n) + 64) {
    std::cerr << "idle_conns: RLIMIT_NOFILE " << lim.rlim_cur << " is too low for " << n << "\n";
    return 2;
  }

  const long before = vm_rss_kb(pid);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(n));
  int failed = 0;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      ++failed;
      break;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size()) ||
        !read_response(fd)) {
      ::close(fd);
      ++failed;
      continue;
    }
    fds.push_back(fd);
  }
  const double open_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::this_thread::sleep_for(std::chrono::seconds(settle));
  const long after = vm_rss_kb(pid);

  // Still open = nothing to read (a closed connection reads as end-of-file).
  std::vector<pollfd> polls;
  polls.reserve(fds.size());
  for (const int fd : fds) polls.push_back({fd, POLLIN | POLLRDHUP, 0});
  ::poll(polls.data(), polls.size(), 0);
  std::size_t still_open = 0;
  for (const auto& p : polls) still_open += (p.revents == 0) ? 1 : 0;
  for (const int fd : fds) ::close(fd);

  const double per_conn =
      fds.empty() ? 0.0
                  : static_cast<double>(after - before) * 1024.0 / static_cast<double>(fds.size());
  std::printf(
      "{\"connections\": %zu, \"failed\": %d, \"still_open\": %zu, \"open_seconds\": %.2f, "
      "\"rss_before_kb\": %ld, \"rss_after_kb\": %ld, \"per_conn_bytes\": %.0f}\n",
      fds.size(), failed, still_open, open_seconds, before, after, per_conn);
  return failed == 0 && still_open == fds.size() ? 0 : 1;
}
