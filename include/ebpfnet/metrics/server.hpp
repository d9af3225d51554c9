// The HTTP side of `ebpfnet metrics --listen`: GET /metrics, nothing else.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/netns.hpp"

namespace ebpfnet::metrics {

// ebpfnet's default port. Prometheus's registry of exporter ports
// (9100-9999) is full, so this one is not registered and may meet another
// exporter's on a machine: --listen ADDR:PORT picks another.
inline constexpr uint16_t kDefaultPort = 9657;

struct ListenAddress {
  Ipv4 ip;
  uint16_t port = kDefaultPort;
  std::string str() const;  // "198.18.0.2:9657"
};

// "ADDR" or "ADDR:PORT" (IPv4, port 1-65535); Errc::usage otherwise.
ListenAddress parse_listen(const std::string& s);

// Serves GET /metrics with the body scrape() returns, fresh for every
// request (a scrape that throws answers 500 with the error), and 404 for
// every other path, until SIGINT or SIGTERM; then returns. The listening
// socket is made in ns, so the address must be one of that namespace (the
// node's). ready() is called once it listens. Throws an Error naming the
// address and the errno text when it cannot listen: Errc::exists when the
// address is taken, Errc::usage when it is not an address of the namespace.
void serve(const ListenAddress& at, const Netns& ns, const std::function<std::string()>& scrape,
           const std::function<void()>& ready);

}  // namespace ebpfnet::metrics
