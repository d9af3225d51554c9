#include "connection.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

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

}  // namespace ebpfnet::test
