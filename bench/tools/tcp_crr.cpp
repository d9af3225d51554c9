// tcp_crr: TCP connect/request/response/close load, the way netperf's TCP_CRR counts it.
//
//   tcp_crr server PORT [MAX_SECONDS]
//       accepts on 0.0.0.0:PORT; for each connection reads 1 byte, writes 1 byte, closes.
//       One thread, epoll; exits by itself after MAX_SECONDS (default 300), or on SIGTERM,
//       and says on stderr how many transactions it served ("tcp_crr server: N transactions").
//   tcp_crr client HOST PORT SECONDS [PARALLEL [MAX_CONNECTIONS]]
//       PARALLEL threads (default 1) loop socket/connect/send 1/recv 1/close until SECONDS
//       have passed (or MAX_CONNECTIONS were tried), then print one JSON line: connections/s,
//       latency percentiles of the whole transaction and of connect() alone (the handshake:
//       SYN out, SYN-ACK back). Exits 1 when not one transaction completed.
//
// Every connection is one transaction, so the datapath sees a SYN, a new conntrack entry and
// (under NAT) a new translation for each. The client closes with SO_LINGER 0 (an RST): no
// socket lingers in TIME_WAIT, so a run never exhausts the client's ephemeral ports and the
// rate does not decay as TIME_WAIT fills up. Everything is bounded: the run time (at most an
// hour), the number of connections (MAX_CONNECTIONS, at most kMaxConnections) and every
// blocking call (kIoTimeoutMs).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
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
    "tcp_crr",
    "usage: tcp_crr server PORT [MAX_SECONDS]\n"
    "       tcp_crr client HOST PORT SECONDS [PARALLEL [MAX_CONNECTIONS]]\n"};

namespace {

using loadtool::die;
using loadtool::parse_num;
using loadtool::percentile;
using loadtool::usage;

using Clock = std::chrono::steady_clock;

constexpr int kMaxSeconds = 3600;
constexpr int kMaxParallel = 256;
constexpr uint64_t kMaxConnections = 50'000'000;
// A SYN lost once is retransmitted after 1 s; one lost twice (3 s) counts as a failure.
constexpr int kIoTimeoutMs = 2500;

// ---- server --------------------------------------------------------------------------------

volatile sig_atomic_t g_stop = 0;

void on_term(int) { g_stop = 1; }

int server(uint16_t port, int max_seconds) {
  struct sigaction sa{};
  sa.sa_handler = on_term;  // no SA_RESTART: epoll_wait returns EINTR
  sigaction(SIGTERM, &sa, nullptr);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (listen(lfd, 4096) != 0) die("listen");

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) die("epoll_ctl");

  auto deadline = Clock::now() + std::chrono::seconds(max_seconds);
  uint64_t served = 0;
  epoll_event events[256];
  while (!g_stop && Clock::now() < deadline) {
    int n = epoll_wait(ep, events, 256, 200);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        // Accept everything queued; each connection waits for its request byte in epoll.
        for (;;) {
          int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = c;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0) close(c);
        }
        continue;
      }
      char b;
      ssize_t r = read(fd, &b, 1);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      // A fresh socket's send buffer always has room for one byte.
      if (r == 1 && write(fd, &b, 1) == 1) ++served;
      close(fd);  // also removes it from epoll
    }
  }
  std::fprintf(stderr, "tcp_crr server: %llu transactions, %s\n", static_cast<unsigned long long>(served),
               g_stop ? "stopped" : ("lifetime of " + std::to_string(max_seconds) + " s over").c_str());
  return 0;
}

// ---- client --------------------------------------------------------------------------------

struct Worker {
  std::vector<uint32_t> latency_us;  // one per completed transaction
  std::vector<uint32_t> connect_us;  // its connect() alone
  uint64_t errors = 0;
  uint64_t timeouts = 0;
  std::string first_error;
};

std::atomic<uint64_t> g_started{0};
uint64_t g_max_connections = kMaxConnections;

uint32_t micros_since(Clock::time_point t0) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
  return static_cast<uint32_t>(std::min<long long>(us, UINT32_MAX));
}

// One transaction: a new socket, connect, 1 byte each way, close with RST.
// Returns 0, or the errno of the step that failed; connect_us: how long connect() took.
int transaction(const sockaddr_in& dst, uint32_t& connect_us) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  timeval tv{kIoTimeoutMs / 1000, (kIoTimeoutMs % 1000) * 1000};
  // SO_SNDTIMEO bounds connect() as well as send().
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  int err = 0;
  char b = 'x';
  const auto t0 = Clock::now();
  const int c = connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
  connect_us = micros_since(t0);
  if (c != 0)
    err = errno == EINPROGRESS ? ETIMEDOUT : errno;
  else if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
    err = errno ? errno : EIO;
  else {
    ssize_t r = recv(fd, &b, 1, 0);
    if (r != 1) err = r == 0 ? ECONNRESET : (errno == EAGAIN ? ETIMEDOUT : errno);
  }
  close(fd);
  return err;
}

void run_worker(const sockaddr_in& dst, Clock::time_point deadline, Worker& w) {
  while (Clock::now() < deadline) {
    if (g_started.fetch_add(1, std::memory_order_relaxed) >= g_max_connections) break;
    auto t0 = Clock::now();
    uint32_t connect_us = 0;
    int err = transaction(dst, connect_us);
    if (err == 0) {
      w.latency_us.push_back(micros_since(t0));
      w.connect_us.push_back(connect_us);
      continue;
    }
    if (err == ETIMEDOUT) ++w.timeouts;
    else ++w.errors;
    if (w.first_error.empty()) w.first_error = std::strerror(err);
    // A refused or unreachable server must not turn into a busy loop.
    if (err != ETIMEDOUT) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

int client(const char* host, uint16_t port, int seconds, int parallel) {
  sockaddr_in dst = loadtool::destination(host, port);
  std::vector<Worker> workers(static_cast<size_t>(parallel));
  for (auto& w : workers) {
    w.latency_us.reserve(1 << 16);
    w.connect_us.reserve(1 << 16);
  }
  std::vector<std::thread> threads;
  auto start = Clock::now();
  auto deadline = start + std::chrono::seconds(seconds);
  for (auto& w : workers)
    threads.emplace_back([&dst, deadline, &w] { run_worker(dst, deadline, w); });
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<uint32_t> all, connects;
  uint64_t errors = 0, timeouts = 0;
  std::string first_error;
  for (auto& w : workers) {
    all.insert(all.end(), w.latency_us.begin(), w.latency_us.end());
    connects.insert(connects.end(), w.connect_us.begin(), w.connect_us.end());
    errors += w.errors;
    timeouts += w.timeouts;
    if (first_error.empty()) first_error = w.first_error;
  }
  std::sort(all.begin(), all.end());
  std::sort(connects.begin(), connects.end());
  std::printf(
      "{\"host\":\"%s\",\"port\":%u,\"seconds\":%.3f,\"parallel\":%d,\"connections\":%zu,"
      "\"errors\":%llu,\"timeouts\":%llu,\"first_error\":\"%s\",\"conn_per_s\":%.1f,"
      "\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,\"connect_p50_us\":%.0f,\"connect_p99_us\":%.0f}\n",
      host, port, elapsed, parallel, all.size(), static_cast<unsigned long long>(errors),
      static_cast<unsigned long long>(timeouts), first_error.c_str(),
      static_cast<double>(all.size()) / elapsed, percentile(all, 0.50), percentile(all, 0.99),
      all.empty() ? 0.0 : static_cast<double>(all.back()), percentile(connects, 0.50),
      percentile(connects, 0.99));
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
  if (mode == "client" && argc >= 5 && argc <= 7) {
    auto port = static_cast<uint16_t>(parse_num(argv[3], 1, 65535));
    int seconds = static_cast<int>(parse_num(argv[4], 1, kMaxSeconds));
    int parallel = argc >= 6 ? static_cast<int>(parse_num(argv[5], 1, kMaxParallel)) : 1;
    if (argc == 7)
      g_max_connections = static_cast<uint64_t>(parse_num(argv[6], 1, kMaxConnections));
    return client(argv[2], port, seconds, parallel);
  }
  usage();
}
