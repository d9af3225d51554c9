// Services as users give them and see them: `service add api
// 10.96.0.10:80/tcp --node-port 30080 --backend web1:8080,weight=2`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet {

// "web1", "web1:8080" or "web1:8080,weight=2". Without a port the backend
// serves on the service's own port.
struct BackendSpec {
  std::string endpoint;
  std::optional<uint16_t> port;
  uint32_t weight = 1;
};

// Names a backend of a service: "web1:8080", or "web1" when it serves the
// service on one port only.
struct BackendRef {
  std::string endpoint;
  std::optional<uint16_t> port;
};

struct ServiceSpec {
  std::string name;
  std::string proto = "tcp";
  std::optional<Ipv4> vip;
  uint16_t port = 0;       // of the vip
  uint16_t node_port = 0;  // 0: none
  uint32_t affinity_s = 0;
  std::vector<BackendSpec> backends;
};

// Parsers for the CLI: Errc::usage saying what is wrong.
// "10.96.0.10:80" or "10.96.0.10:80/udp" into spec's vip, port and proto.
void parse_service_address(std::string_view s, ServiceSpec& spec);
// "30080" or "30080/udp" into spec's node_port (and proto, which must agree).
void parse_node_port(std::string_view s, ServiceSpec& spec);
BackendSpec parse_backend(std::string_view s);
BackendRef parse_backend_ref(std::string_view s);

struct BackendView {
  BackendRecord record;
  Ipv4 ip;                   // the endpoint's address
  uint64_t connections = 0;  // new connections balanced to it (0 when not attached)
};

struct ServiceView {
  ServiceRecord record;
  std::vector<BackendView> backends;
};

}  // namespace ebpfnet
