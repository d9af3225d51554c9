// Where the node's attachments pin their links.
#pragma once

#include <filesystem>

#include "ebpfnet/node.hpp"

namespace ebpfnet {

inline std::filesystem::path link_pin(const Node& node, const EndpointRecord& e) {
  return node.pin_dir() / "links" / e.host_ifname;
}
inline std::filesystem::path uplink_pin(const Node& node) { return node.pin_dir() / "uplink_link"; }
// The uplink's XDP link (the prefilter), pinned while the deny list is not empty.
inline std::filesystem::path uplink_xdp_pin(const Node& node) { return node.pin_dir() / "uplink_xdp_link"; }

// The overlay's vxlan device's TCX link (from_tunnel).
inline std::filesystem::path tunnel_pin(const Node& node) { return node.pin_dir() / "tunnel_link"; }

}  // namespace ebpfnet
