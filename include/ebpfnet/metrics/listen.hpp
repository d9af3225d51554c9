// Where `ebpfnet metrics --listen` listens: parsed apart from the server, so
// that parsing needs no HTTP library.
#pragma once

#include <cstdint>
#include <string>

#include "ebpfnet/ipv4.hpp"

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

}  // namespace ebpfnet::metrics
