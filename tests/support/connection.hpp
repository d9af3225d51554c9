// An established TCP connection held open by a test, across whatever the
// test does to the datapath under it (an upgrade, an endpoint's removal).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "ebpfnet/fd.hpp"
#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/netns.hpp"

namespace ebpfnet::test {

struct Connection {
  std::string what;
  UniqueFd client, server;

  // A round trip both ways within 3 s; false when either direction is lost or reset.
  bool echo();
};

// Connects from `from` to dst:port; a listener on listen_ip:listen_port in
// `to` accepts it (the same unless NAT is in between). Throws on failure.
Connection connect_tcp(std::string what, const Netns& from, Ipv4 dst, uint16_t port, const Netns& to,
                       Ipv4 listen_ip, uint16_t listen_port);

// Sends `bytes` from c's client to its server, both ends in this thread
// (non-blocking from then on); the time it took. Throws when it does not
// complete within limit or the connection fails.
std::chrono::microseconds transfer(Connection& c, size_t bytes, std::chrono::seconds limit);

// A socket of type (SOCK_STREAM, SOCK_DGRAM) in ns; throws on failure.
UniqueFd socket_in(const Netns& ns, int type);

// Whether fd is ready for events within limit.
bool ready(int fd, short events, int limit_ms);

}  // namespace ebpfnet::test
