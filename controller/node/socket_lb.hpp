// Connect-time balancing on a node: the cgroup socket hooks (sock_lb.hpp)
// are attached while the node wants them (socket_lb on, the datapath
// attached, a service with a virtual IP) and the kernel has them; without
// them, per-packet balancing at tc carries every connection. Each
// endpoint's namespace cookie is in sock_netns, so the hooks know the
// node's sockets from every other one on the machine.
#pragma once

#include <string>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::socket_lb {

bool wanted(NodeTxn& txn);
// "attached", "off" (attach --socket-lb off), "idle" (no service with a
// virtual IP), or "unavailable: WHY".
std::string status(const Node& node, const NodeState& st);

// Attaches or detaches the hooks as the state says, over maps, pushing the
// way back. replaced: attach loaded new programs and maps; hooks attached
// already switch to them, and back to replaced on undo.
void converge(NodeTxn& txn, const DatapathMaps& maps, const DatapathMaps* replaced = nullptr);

// Every endpoint's cookie into sock_netns; a cookie the state lacks (an
// endpoint made before ebpfnet kept them) is learnt from its namespace.
void refill(EndpointTable& table, DatapathMaps& maps);
// The sock_netns entries of no endpoint go.
size_t prune(EndpointTable& table, DatapathMaps& maps);

}  // namespace ebpfnet::socket_lb
