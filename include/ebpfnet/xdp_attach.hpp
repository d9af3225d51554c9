// Attaching an XDP program to one interface through a pinned bpf_link, so it
// outlives the process, a newer program replaces it atomically
// (bpf_link_update) and removing the pin detaches it. Native (driver) mode
// where the driver has it (veth does), generic (skb) mode otherwise.
// ifindex is resolved in the calling thread's namespace: call these from
// inside the node's namespace.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace ebpfnet {

enum class XdpMode { native, generic };
std::string to_string(XdpMode m);
std::optional<XdpMode> parse_xdp_mode(std::string_view s);

struct XdpAttach {
  XdpMode mode = XdpMode::native;
  std::string fallback_reason;  // why native mode was refused, when it was
};

// Switches a live link at link_pin to prog_fd (keeping its mode), or makes a
// new link: native first, generic when the driver refuses native mode.
// `mode` is only meaningful for a new link; a switched one reports `was`.
XdpAttach attach_xdp(int prog_fd, int ifindex, const std::filesystem::path& link_pin, XdpMode was = XdpMode::native);

// Idempotent: removes the pin, and with it the link.
void detach_xdp(const std::filesystem::path& link_pin);

// The program of the live link at link_pin on ifindex, or 0.
uint32_t attached_xdp_prog_id(int ifindex, const std::filesystem::path& link_pin);

}  // namespace ebpfnet
