// udp_pps: a 64-byte UDP packet generator and counting receiver (small-packet rate).
//
//   udp_pps recv PORT [MAX_SECONDS [IDLE_MS]]
//       binds 0.0.0.0:PORT, counts datagrams with recvmmsg until IDLE_MS (default 500) pass
//       without one after the first arrived, or MAX_SECONDS (default 60) pass; then prints
//       one JSON line: received, bytes, seconds (first to last datagram), pps.
//   udp_pps send HOST PORT SECONDS [FLOWS [MAX_PACKETS [PPS_LIMIT]]]
//       FLOWS sockets (default 8), each its own source port (one flow each), take turns
//       sending batches of 64 datagrams with sendmmsg for SECONDS (or until MAX_PACKETS were
//       sent; PPS_LIMIT paces the batches); prints one JSON line: sent, seconds, pps, errors.
//
// "64-byte" is the Ethernet frame: 14 (Ethernet) + 20 (IPv4) + 8 (UDP) + 22 bytes of payload
// = 64 bytes on the veth (the 4-byte FCS does not exist on a veth). `sent` counts only the
// datagrams the kernel accepted (sendmmsg's return value), so sent - received is what the
// path between the two sockets lost. Everything is bounded in time and count.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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
    "udp_pps",
    "usage: udp_pps recv PORT [MAX_SECONDS [IDLE_MS]]\n"
    "       udp_pps send HOST PORT SECONDS [FLOWS [MAX_PACKETS [PPS_LIMIT]]]\n"};

namespace {

using loadtool::die;
using loadtool::parse_num;
using loadtool::usage;

using Clock = std::chrono::steady_clock;

constexpr int kPayload = 22;  // 64-byte frames
constexpr int kBatch = 64;
constexpr int kMaxSeconds = 3600;
constexpr int kMaxFlows = 64;
constexpr long kMaxPackets = 4'000'000'000L;

int receiver(uint16_t port, int max_seconds, int idle_ms) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int buf = 64 << 20;
  // SO_RCVBUFFORCE passes net.core.rmem_max (root); the plain option is the fallback.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  timeval tv{0, 50'000};  // wake up to check the clocks
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");

  std::vector<char> bufs(static_cast<size_t>(kBatch) * 2048);
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    iov[i] = {bufs.data() + i * 2048, 2048};
    msgs[i].msg_hdr = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  auto deadline = Clock::now() + std::chrono::seconds(max_seconds);
  Clock::time_point first{}, last{};
  uint64_t received = 0, bytes = 0;
  for (;;) {
    auto now = Clock::now();
    if (now >= deadline) break;
    if (received > 0 && now - last >= std::chrono::milliseconds(idle_ms)) break;
    int n = recvmmsg(fd, msgs.data(), kBatch, 0, nullptr);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      die("recvmmsg");
    }
    if (n == 0) continue;
    last = Clock::now();
    if (received == 0) first = last;
    received += static_cast<uint64_t>(n);
    for (int i = 0; i < n; ++i) bytes += msgs[i].msg_len;
  }
  double secs = received > 1 ? std::chrono::duration<double>(last - first).count() : 0;
  std::printf("{\"received\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"pps\":%.1f}\n",
              static_cast<unsigned long long>(received), static_cast<unsigned long long>(bytes),
              secs, secs > 0 ? static_cast<double>(received) / secs : 0.0);
  return 0;
}

int sender(const char* host, uint16_t port, int seconds, int flows, long max_packets,
           long pps_limit) {
  sockaddr_in dst = loadtool::destination(host, port);
  std::vector<int> fds;
  for (int f = 0; f < flows; ++f) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    // connect() fixes the flow (and picks a distinct source port per socket).
    if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) die("connect");
    fds.push_back(fd);
  }
  char payload[kPayload];
  std::memset(payload, 'p', sizeof payload);
  std::vector<iovec> iov(kBatch, iovec{payload, sizeof payload});
  std::vector<mmsghdr> msgs(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    msgs[i].msg_hdr = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  auto start = Clock::now();
  auto deadline = start + std::chrono::seconds(seconds);
  uint64_t sent = 0, errors = 0;
  std::string first_error;
  for (size_t turn = 0; Clock::now() < deadline && static_cast<long>(sent) < max_packets;
       ++turn) {
    int want = static_cast<int>(std::min<long>(kBatch, max_packets - static_cast<long>(sent)));
    int n = sendmmsg(fds[turn % fds.size()], msgs.data(), static_cast<unsigned>(want), 0);
    if (n < 0) {
      // ENOBUFS: a full queue on the way out; the datagram was not sent, so it is not counted.
      ++errors;
      if (first_error.empty()) first_error = std::strerror(errno);
      if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) break;
      continue;
    }
    sent += static_cast<uint64_t>(n);
    if (pps_limit > 0) {
      auto due = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(static_cast<double>(sent) /
                                                           static_cast<double>(pps_limit)));
      if (due > Clock::now()) std::this_thread::sleep_until(std::min(due, deadline));
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  for (int fd : fds) close(fd);
  std::printf(
      "{\"sent\":%llu,\"seconds\":%.6f,\"pps\":%.1f,\"flows\":%d,\"frame_bytes\":64,"
      "\"errors\":%llu,\"first_error\":\"%s\"}\n",
      static_cast<unsigned long long>(sent), secs,
      secs > 0 ? static_cast<double>(sent) / secs : 0.0, flows,
      static_cast<unsigned long long>(errors), first_error.c_str());
  return sent > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage();
  std::string_view mode = argv[1];
  if (mode == "recv" && argc >= 3 && argc <= 5) {
    auto port = static_cast<uint16_t>(parse_num(argv[2], 1, 65535));
    int max_seconds = argc >= 4 ? static_cast<int>(parse_num(argv[3], 1, kMaxSeconds)) : 60;
    int idle_ms = argc >= 5 ? static_cast<int>(parse_num(argv[4], 10, 60'000)) : 500;
    return receiver(port, max_seconds, idle_ms);
  }
  if (mode == "send" && argc >= 5 && argc <= 8) {
    auto port = static_cast<uint16_t>(parse_num(argv[3], 1, 65535));
    int seconds = static_cast<int>(parse_num(argv[4], 1, kMaxSeconds));
    int flows = argc >= 6 ? static_cast<int>(parse_num(argv[5], 1, kMaxFlows)) : 8;
    long max_packets = argc >= 7 ? parse_num(argv[6], 1, kMaxPackets) : kMaxPackets;
    long pps_limit = argc >= 8 ? parse_num(argv[7], 0, 100'000'000) : 0;
    return sender(argv[2], port, seconds, flows, max_packets, pps_limit);
  }
  usage();
}
