// The uplink prefilter: sources denied in XDP on the uplink, before
// anything else sees them. The deny list lives in the node's state; the maps
// and the XDP attachment follow it (attached only while it is not empty).
#pragma once

#include <string_view>
#include <vector>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::prefilter {

// "203.0.113.0/24", or an address "198.51.100.7" (its /32). Errc::usage
// naming what is wrong (a prefix with host bits set says which one was meant).
Ipv4Cidr parse(std::string_view s);
// An entry as users write it: a /32 as its address.
std::string entry_str(const Ipv4Cidr& c);

// Adds entries (all or none). Refused: duplicates, an entry the list has
// (Errc::exists), one overlapping another (named), one holding the uplink's
// own address or its gateway (that would cut the node off), a node without
// an uplink.
void add(NodeTxn& txn, const std::vector<Ipv4Cidr>& entries);
// Removes entries (all or none); one the list does not have is Errc::not_found.
void del(NodeTxn& txn, const std::vector<Ipv4Cidr>& entries);
// Makes the list exactly `entries` (apply), checked as add checks it.
void set(NodeTxn& txn, const std::vector<Ipv4Cidr>& entries);
// The list in state order, with what each entry dropped.
std::vector<PrefilterCount> list(NodeTxn& txn);

// Writes every entry of the state (counters an entry has are kept).
void refill(const NodeState& st, DatapathMaps& maps);
// The keys of the three prefilter maps that the state does not name go.
size_t prune(const NodeState& st, DatapathMaps& maps);
// Attaches prog_fd at the uplink's XDP hook while the list is not empty
// (switching the link atomically when another program runs there), detaches
// it when the list is empty. With undo, each change pushes its way back to
// old_prog_fd (-1: none was attached). Returns whether anything changed.
bool converge_xdp(NodeTxn& txn, int prog_fd, int old_prog_fd, bool undo);

}  // namespace ebpfnet::prefilter
