// Connectivity probes between namespaces, done in-process: a socket belongs
// to the namespace it was created in, so one process can hold the server
// end in one namespace and the client end in another. Used by the demo and
// the tests.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/netns.hpp"

namespace ebpfnet {

struct ProbeResult {
  bool ok = false;
  std::string error;  // why it failed
  std::chrono::microseconds rtt{0};
  Ipv4 peer_saw;      // the source address the server side saw (TCP/UDP)
};

using ProbeTimeout = std::chrono::milliseconds;

// ip:port as the socket calls take it.
sockaddr_in socket_address(Ipv4 ip, uint16_t port);

// A TCP connection from `from` to dst:port where `to` listens; one request
// and one reply.
ProbeResult probe_tcp(const Netns& from, const Netns& to, Ipv4 dst, uint16_t port,
                      ProbeTimeout timeout = ProbeTimeout(2000));
// The same where `to` listens on another address and port than the client
// connects to (a published port: the client sees the node, `to` is behind it).
ProbeResult probe_tcp_via(const Netns& from, Ipv4 dst, uint16_t port, const Netns& to,
                          Ipv4 listen_ip, uint16_t listen_port,
                          ProbeTimeout timeout = ProbeTimeout(2000));
// One UDP datagram there and its echo back.
ProbeResult probe_udp(const Netns& from, const Netns& to, Ipv4 dst, uint16_t port,
                      ProbeTimeout timeout = ProbeTimeout(2000));
// An ICMP echo from `from` to dst, answered by dst's kernel.
ProbeResult probe_icmp(const Netns& from, Ipv4 dst, ProbeTimeout timeout = ProbeTimeout(2000));

}  // namespace ebpfnet
