// Connect-time service balancing: the cgroup socket hooks of
// bpf/sock_lb.bpf.c, attached at the cgroup v2 root by bpf_links that a
// node pins under its directory. The programs use the node's maps and leave
// alone every socket outside the node's endpoints' namespaces.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/netns.hpp"

namespace ebpfnet::sock_lb {

// The root of the cgroup v2 hierarchy, where the hooks hang so that every
// process inherits them (/sys/fs/cgroup/unified on a hybrid host).
std::optional<std::filesystem::path> cgroup_root();

// Why this machine cannot run the hooks (no cgroup v2 mount, a kernel that
// refuses the programs); "" when it can. Probed once per process.
const std::string& unsupported_reason();

// The pins of a node's hook links live in pin_dir as sock_<hook>_link.
bool attached(const std::filesystem::path& pin_dir);
// Loads the hooks over maps and attaches them, or, when attached already,
// swaps the programs of the pinned links (an upgrade: no socket misses a hook).
void attach(const DatapathMaps& maps, const std::filesystem::path& pin_dir);
// Removes the pins; the kernel detaches each link as its last pin goes.
void detach(const std::filesystem::path& pin_dir);

// The cookie the hooks know a network namespace by (SO_NETNS_COOKIE).
uint64_t netns_cookie(const Netns& ns);

}  // namespace ebpfnet::sock_lb
