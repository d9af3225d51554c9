// Names users give (nodes, endpoints, namespaces) and the interface names
// derived from them.
#pragma once

#include <string>
#include <string_view>

namespace ebpfnet {

constexpr size_t kMaxNameLen = 64;
constexpr size_t kMaxIfnameLen = 15;  // IFNAMSIZ - 1

// name for a message: anything but printable ASCII shown as '?', so a name
// read from a file or argv cannot split or garble a one-line error.
std::string printable(std::string_view name);

// Throws Errc::usage unless name is 1-64 of [A-Za-z0-9_.-], not starting
// with '.' or '-'. So a name used as a path under /run/netns or
// /var/lib/ebpfnet never escapes it ("..", "/", NUL are all refused).
void validate_name(std::string_view what, std::string_view name);

// Throws Errc::usage unless name is a valid Linux interface name.
void validate_ifname(std::string_view name);

// The node-side veth of an endpoint: "ep-<name>" when that fits in 15
// characters, else "ep-<first 7>-<4 hex of a hash>". attempt > 0 varies the
// hash, for the rare collision.
std::string host_ifname(std::string_view endpoint, unsigned attempt = 0);

}  // namespace ebpfnet
