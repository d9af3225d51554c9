#include "ebpfnet/probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ebpfnet/fd.hpp"

namespace ebpfnet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kRequest[] = "ebpfnet-probe";

UniqueFd socket_in(const Netns& ns, int type, int proto) {
  NetnsGuard in(ns);
  return UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, proto));
}

// Waits until fd is ready for events or the deadline passes.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

ProbeResult fail(const std::string& why) {
  ProbeResult r;
  r.error = why;
  return r;
}

std::string err(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

sockaddr_in socket_address(Ipv4 ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ip.be();
  a.sin_port = htons(port);
  return a;
}

ProbeResult probe_tcp(const Netns& from, const Netns& to, Ipv4 dst, uint16_t port,
                      ProbeTimeout timeout) {
  return probe_tcp_via(from, dst, port, to, dst, port, timeout);
}

ProbeResult probe_tcp_via(const Netns& from, Ipv4 dst, uint16_t port, const Netns& to,
                          Ipv4 listen_ip, uint16_t listen_port, ProbeTimeout timeout) {
  auto start = Clock::now();
  auto deadline = start + timeout;
  UniqueFd server = socket_in(to, SOCK_STREAM, 0);
  UniqueFd client = socket_in(from, SOCK_STREAM, 0);
  if (!server.valid() || !client.valid()) return fail(err("socket"));
  int one = 1;
  ::setsockopt(server.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in bind_addr = socket_address(listen_ip, listen_port);
  sockaddr_in dst_addr = socket_address(dst, port);
  if (::bind(server.get(), reinterpret_cast<sockaddr*>(&bind_addr), sizeof bind_addr) != 0)
    return fail(err("bind"));
  if (::listen(server.get(), 1) != 0) return fail(err("listen"));
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&dst_addr), sizeof dst_addr) != 0 &&
      errno != EINPROGRESS)
    return fail(err("connect"));
  if (!wait_for(server.get(), POLLIN, deadline)) return fail("no connection arrived (timeout)");
  sockaddr_in peer{};
  socklen_t plen = sizeof peer;
  UniqueFd conn(::accept4(server.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
  if (!conn.valid()) return fail(err("accept"));
  if (!wait_for(client.get(), POLLOUT, deadline)) return fail("connect did not complete");
  if (::send(client.get(), kRequest, sizeof kRequest, MSG_NOSIGNAL) != sizeof kRequest)
    return fail(err("send"));
  char buf[64];
  if (!wait_for(conn.get(), POLLIN, deadline)) return fail("request did not arrive");
  ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
  if (n != sizeof kRequest || std::memcmp(buf, kRequest, n) != 0) return fail("request garbled");
  if (::send(conn.get(), buf, n, MSG_NOSIGNAL) != n) return fail(err("reply send"));
  if (!wait_for(client.get(), POLLIN, deadline)) return fail("reply did not arrive");
  if (::recv(client.get(), buf, sizeof buf, 0) != n) return fail("reply garbled");
  ProbeResult r;
  r.ok = true;
  r.rtt = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  r.peer_saw = Ipv4::from_be(peer.sin_addr.s_addr);
  // The client closes first, as short-lived clients do, and the server once
  // it has read the FIN: TIME_WAIT stays with the client, so a NAT between
  // them never meets the server still waiting on a tuple it hands out again.
  client.reset();
  if (wait_for(conn.get(), POLLIN, deadline)) (void)::recv(conn.get(), buf, sizeof buf, 0);
  return r;
}

ProbeResult probe_udp(const Netns& from, const Netns& to, Ipv4 dst, uint16_t port,
                      ProbeTimeout timeout) {
  auto start = Clock::now();
  auto deadline = start + timeout;
  UniqueFd server = socket_in(to, SOCK_DGRAM, 0);
  UniqueFd client = socket_in(from, SOCK_DGRAM, 0);
  if (!server.valid() || !client.valid()) return fail(err("socket"));
  sockaddr_in a = socket_address(dst, port);
  if (::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return fail(err("bind"));
  // Datagrams can be lost while neighbours resolve: resend a few times.
  char buf[64];
  sockaddr_in peer{};
  socklen_t plen = sizeof peer;
  ssize_t n = -1;
  for (int attempt = 0; attempt < 4 && n < 0; ++attempt) {
    if (::sendto(client.get(), kRequest, sizeof kRequest, 0, reinterpret_cast<sockaddr*>(&a),
                 sizeof a) != sizeof kRequest)
      return fail(err("sendto"));
    auto slice = std::min(deadline, Clock::now() + timeout / 4);
    if (wait_for(server.get(), POLLIN, slice))
      n = ::recvfrom(server.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &plen);
  }
  if (n != sizeof kRequest) return fail("datagram did not arrive");
  if (::sendto(server.get(), buf, n, 0, reinterpret_cast<sockaddr*>(&peer), plen) != n)
    return fail(err("reply sendto"));
  if (!wait_for(client.get(), POLLIN, deadline)) return fail("reply did not arrive");
  if (::recv(client.get(), buf, sizeof buf, 0) != n) return fail("reply garbled");
  ProbeResult r;
  r.ok = true;
  r.rtt = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  r.peer_saw = Ipv4::from_be(peer.sin_addr.s_addr);
  return r;
}

namespace {

uint16_t icmp_checksum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

}  // namespace

ProbeResult probe_icmp(const Netns& from, Ipv4 dst, ProbeTimeout timeout) {
  auto start = Clock::now();
  auto deadline = start + timeout;
  UniqueFd sock = socket_in(from, SOCK_RAW, IPPROTO_ICMP);
  if (!sock.valid()) return fail(err("raw socket"));
  uint16_t id = static_cast<uint16_t>(::getpid() ^ reinterpret_cast<uintptr_t>(&start));
  sockaddr_in a = socket_address(dst, 0);
  for (uint16_t seq = 1; seq <= 4; ++seq) {
    icmphdr req{};
    req.type = ICMP_ECHO;
    req.un.echo.id = htons(id);
    req.un.echo.sequence = htons(seq);
    req.checksum = icmp_checksum(&req, sizeof req);
    if (::sendto(sock.get(), &req, sizeof req, 0, reinterpret_cast<sockaddr*>(&a), sizeof a) !=
        sizeof req)
      return fail(err("sendto"));
    auto slice = std::min(deadline, Clock::now() + timeout / 4);
    while (wait_for(sock.get(), POLLIN, slice)) {
      char buf[256];
      ssize_t n = ::recv(sock.get(), buf, sizeof buf, 0);
      if (n < static_cast<ssize_t>(sizeof(iphdr) + sizeof(icmphdr))) continue;
      auto* ip = reinterpret_cast<iphdr*>(buf);
      auto* icmp = reinterpret_cast<icmphdr*>(buf + ip->ihl * 4);
      if (ip->saddr == dst.be() && icmp->type == ICMP_ECHOREPLY && ntohs(icmp->un.echo.id) == id) {
        ProbeResult r;
        r.ok = true;
        r.rtt = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
        r.peer_saw = dst;
        return r;
      }
    }
  }
  return fail("no echo reply (timeout)");
}

}  // namespace ebpfnet
