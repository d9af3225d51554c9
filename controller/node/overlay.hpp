// The node's VXLAN overlay: other nodes' pools reached through one
// collect_md vxlan device in the node's namespace. The peers live in the
// node's state; the map "tunnel", the device (made with the first peer,
// removed with the last), its program (from_tunnel) and a route per pool
// through the device (which the stack uses only to answer "fragmentation
// needed" with the tunnel's MTU) follow it.
#pragma once

#include <optional>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::overlay {

// Refused: a pool overlapping the node's pool, a route or another peer's
// (Errc::usage), a pool the overlay has (Errc::exists), an address that is
// no unicast address outside the pools, a datapath without from_tunnel
// (pinned before ABI 5: attach upgrades it).
void add(NodeTxn& txn, const TunnelPeerRecord& peer);
// Errc::not_found for a pool the overlay does not have.
void del(NodeTxn& txn, const Ipv4Cidr& pool);

// Writes every peer of the state into the map "tunnel".
void refill(const NodeState& st, DatapathMaps& maps);
// The keys of "tunnel" the state does not name go.
size_t prune(const NodeState& st, DatapathMaps& maps);
// The overlay's device as the state says: made again (with its routes) when
// it is missing, from_tunnel (prog_fd) attached to it where another program
// or none runs. Returns whether the attachment changed; with old_prog_fd
// (>= 0) the change is undone by switching back to it.
bool converge(NodeTxn& txn, int prog_fd, int old_prog_fd);
// A device named like the overlay's, of kind vxlan and marked as ebpfnet's,
// that the state does not have (a killed `tunnel add` made it) goes.
void remove_stray_device(NodeTxn& txn);
// Takes from_tunnel off the device (detach).
void detach(NodeTxn& txn);
// The program id attached to the device, 0 when none (or no device).
uint32_t attached_prog(const Node& node, const NodeState& st);

}  // namespace ebpfnet::overlay
