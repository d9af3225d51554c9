// What ebpfnet writes on the namespaces and veths it makes (the alias of a
// namespace's loopback, of a node-side veth), so it tells them from anyone
// else's when no record of them survived: a killed command, a lost state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/node.hpp"

namespace ebpfnet::marks {

// "ebpfnet node=N endpoint=E" for an endpoint's, "ebpfnet node=N" for the
// node's own namespaces.
std::string of(const Node& node, std::string_view endpoint = {});

void mark_netns(const Netns& ns, const std::string& mark);

// Whether the named namespace is the one ebpfnet made under this mark: its
// loopback carries the mark or, when fresh_too, it holds nothing but an
// unmarked loopback (made, and killed before it was marked).
bool netns_is(std::string_view name, const std::string& mark, bool fresh_too);

// The named namespaces marked as the node's or its endpoints'.
std::vector<std::string> netns_of(const Node& node);

}  // namespace ebpfnet::marks
