// tcp_rr: TCP request/response (ping-pong) load, the way netperf's TCP_RR counts it.
//
//   tcp_rr server PORT [MAX_SECONDS]
//       accepts on 0.0.0.0:PORT; echoes every byte it reads on each connection (one thread
//       per connection, at most 64); exits by itself after MAX_SECONDS (default 300).
//   tcp_rr client HOST PORT SECONDS [CONNECTIONS]
//       CONNECTIONS threads (default 1), each with one connection, send 1 byte and wait for
//       the 1-byte answer, again and again for SECONDS; prints one JSON line: transactions/s
//       and latency percentiles (p50, p99, max) in microseconds. Exits 1 when no transaction
//       completed.
//
// One connection is set up before the clock starts, so this measures the established path
// only: every packet after the handshake is a conntrack hit, none walks a rule list.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tool.hpp"

const loadtool::Tool loadtool::kTool = {
    "tcp_rr",
    "usage: tcp_rr server PORT [MAX_SECONDS]\n"
    "       tcp_rr client HOST PORT SECONDS [CONNECTIONS]\n"};

namespace {

using loadtool::die;
using loadtool::parse_num;
using loadtool::percentile;
using loadtool::usage;

using Clock = std::chrono::steady_clock;

constexpr int kMaxSeconds = 3600;
constexpr int kMaxConnections = 64;
constexpr int kIoTimeoutMs = 3000;

void set_timeouts(int fd) {
  timeval tv{kIoTimeoutMs / 1000, (kIoTimeoutMs % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// ---- server --------------------------------------------------------------------------------

std::atomic<int> g_live{0};

void echo(int fd, Clock::time_point deadline) {
  char b[64];
  while (Clock::now() < deadline) {
    ssize_t r = read(fd, b, sizeof b);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;  // idle: check the deadline
    if (r <= 0) break;
    if (write(fd, b, static_cast<size_t>(r)) != r) break;
  }
  close(fd);
  --g_live;
}

int server(uint16_t port, int max_seconds) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (listen(lfd, 128) != 0) die("listen");
  auto deadline = Clock::now() + std::chrono::seconds(max_seconds);
  while (Clock::now() < deadline) {
    pollfd p{lfd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    if (g_live.load() >= kMaxConnections) {
      close(c);
      continue;
    }
    set_timeouts(c);
    ++g_live;
    std::thread(echo, c, deadline).detach();
  }
  // Threads still echoing end with the process.
  return 0;
}

// ---- client --------------------------------------------------------------------------------

struct Worker {
  std::vector<uint32_t> latency_us;
  std::string error;
};

void run_worker(const sockaddr_in& dst, Clock::time_point start, Clock::time_point deadline,
                Worker& w) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    w.error = std::strerror(errno);
    return;
  }
  set_timeouts(fd);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0) {
    w.error = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return;
  }
  std::this_thread::sleep_until(start);
  char b = 'x';
  while (Clock::now() < deadline) {
    auto t0 = Clock::now();
    if (send(fd, &b, 1, MSG_NOSIGNAL) != 1) {
      w.error = std::string("send: ") + std::strerror(errno);
      break;
    }
    ssize_t r = recv(fd, &b, 1, 0);
    if (r != 1) {
      w.error = r == 0 ? "recv: connection closed" : std::string("recv: ") + std::strerror(errno);
      break;
    }
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
    w.latency_us.push_back(static_cast<uint32_t>(std::min<long long>(us, UINT32_MAX)));
  }
  close(fd);
}

int client(const char* host, uint16_t port, int seconds, int connections) {
  sockaddr_in dst = loadtool::destination(host, port);
  std::vector<Worker> workers(static_cast<size_t>(connections));
  for (auto& w : workers) w.latency_us.reserve(1 << 20);
  // The connections are made in the 100 ms before the clock starts.
  auto start = Clock::now() + std::chrono::milliseconds(100);
  auto deadline = start + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (auto& w : workers)
    threads.emplace_back([&dst, start, deadline, &w] { run_worker(dst, start, deadline, w); });
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<uint32_t> all;
  std::string error;
  for (auto& w : workers) {
    all.insert(all.end(), w.latency_us.begin(), w.latency_us.end());
    if (error.empty()) error = w.error;
  }
  std::sort(all.begin(), all.end());
  std::printf(
      "{\"host\":\"%s\",\"port\":%u,\"seconds\":%.3f,\"connections\":%d,\"transactions\":%zu,"
      "\"tps\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,\"error\":\"%s\"}\n",
      host, port, elapsed, connections, all.size(), static_cast<double>(all.size()) / elapsed,
      percentile(all, 0.50), percentile(all, 0.99),
      all.empty() ? 0.0 : static_cast<double>(all.back()), error.c_str());
  return all.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage();
  std::string_view mode = argv[1];
  if (mode == "server" && (argc == 3 || argc == 4)) {
    auto port = static_cast<uint16_t>(parse_num(argv[2], 1, 65535));
    int max_seconds = argc == 4 ? static_cast<int>(parse_num(argv[3], 1, kMaxSeconds)) : 300;
    return server(port, max_seconds);
  }
  if (mode == "client" && (argc == 5 || argc == 6)) {
    auto port = static_cast<uint16_t>(parse_num(argv[3], 1, 65535));
    int seconds = static_cast<int>(parse_num(argv[4], 1, kMaxSeconds));
    int conns = argc == 6 ? static_cast<int>(parse_num(argv[5], 1, kMaxConnections)) : 1;
    return client(argv[2], port, seconds, conns);
  }
  usage();
}
