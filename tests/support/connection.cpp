#include "connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "ebpfnet/probe.hpp"

namespace ebpfnet::test {

UniqueFd socket_in(const Netns& ns, int type) {
  NetnsGuard in(ns);
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  return fd;
}

bool ready(int fd, short events, int limit_ms) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, limit_ms) == 1 && (p.revents & events);
}

bool Connection::echo() {
  const char ping[] = "held-connection";
  char buf[sizeof ping];
  if (::send(client.get(), ping, sizeof ping, MSG_NOSIGNAL) != sizeof ping) return false;
  if (!ready(server.get(), POLLIN, 3000) || ::recv(server.get(), buf, sizeof buf, 0) != sizeof ping) return false;
  if (::send(server.get(), buf, sizeof buf, MSG_NOSIGNAL) != sizeof buf) return false;
  return ready(client.get(), POLLIN, 3000) && ::recv(client.get(), buf, sizeof buf, 0) == sizeof buf;
}

Connection connect_tcp(std::string what, const Netns& from, Ipv4 dst, uint16_t port, const Netns& to,
                       Ipv4 listen_ip, uint16_t listen_port) {
  Connection c{std::move(what), socket_in(from, SOCK_STREAM), {}};
  UniqueFd listener = socket_in(to, SOCK_STREAM);
  int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = socket_address(listen_ip, listen_port), d = socket_address(dst, port);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener.get(), 1) != 0)
    throw std::runtime_error(c.what + ": listen: " + std::strerror(errno));
  if (::connect(c.client.get(), reinterpret_cast<sockaddr*>(&d), sizeof d) != 0)
    throw std::runtime_error(c.what + ": connect: " + std::strerror(errno));
  c.server = UniqueFd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!c.server.valid()) throw std::runtime_error(c.what + ": accept: " + std::strerror(errno));
  return c;
}

std::chrono::microseconds transfer(Connection& c, size_t bytes, std::chrono::seconds limit) {
  for (int fd : {c.client.get(), c.server.get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::vector<char> chunk(64 * 1024, 'v');
  std::vector<char> in(64 * 1024);
  size_t sent = 0, got = 0;
  const auto start = std::chrono::steady_clock::now();
  while (got < bytes) {
    if (std::chrono::steady_clock::now() - start > limit)
      throw std::runtime_error("transfer: " + std::to_string(got) + " of " + std::to_string(bytes) + " bytes in " +
                               std::to_string(limit.count()) + " s");
    pollfd p[2] = {{c.client.get(), short(sent < bytes ? POLLOUT : 0), 0}, {c.server.get(), POLLIN, 0}};
    if (::poll(p, 2, 200) < 0) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    if (p[0].revents & POLLOUT) {
      const ssize_t n = ::send(c.client.get(), chunk.data(), std::min(chunk.size(), bytes - sent), MSG_NOSIGNAL);
      if (n > 0) sent += size_t(n);
    }
    if (p[1].revents & POLLIN) {
      const ssize_t n = ::recv(c.server.get(), in.data(), in.size(), 0);
      if (n == 0) throw std::runtime_error("transfer: the connection closed");
      if (n > 0) got += size_t(n);
    }
    if ((p[0].revents | p[1].revents) & (POLLERR | POLLHUP)) throw std::runtime_error("transfer: connection error");
  }
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
}

}  // namespace ebpfnet::test
