// The node's endpoints: wiring them (namespace, veth, addresses, routes, map
// entries, program), finding them, and taking them apart again.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::endpoints {

// Requests that are wrong whatever the node holds, refused before it is locked.
void check(const std::vector<EndpointRequest>& reqs);
// All or none; attaches the datapath first when it is not (committed on its
// own, and not one of cp's steps).
std::vector<EndpointRecord> add(NodeTxn& txn, const std::vector<EndpointRequest>& reqs, const Checkpoint& cp);
// All or none of names; one that a killed add or del was handling is done.
void del(NodeTxn& txn, const std::vector<std::string>& names);
// Detaches, unmaps and deletes the parts of endpoints (maps: those to unmap
// them from, if any), and unpublishes their ports; the caller drops their
// records. Returns when their veths are gone.
void remove(NodeTxn& txn, const std::vector<EndpointRecord>& es, DatapathMaps* maps);
// Each endpoint with its program and, from dp when given, its counters,
// one at a time (fn must not write to the table).
void each_view(const Node& node, EndpointTable& table, const Datapath* dp,
               const std::function<void(const EndpointView&)>& fn);
void list(NodeTxn& txn, const std::function<void(const EndpointView&)>& fn);
// Endpoints whose node-side veth is gone (their namespace was deleted
// behind ebpfnet's back, or the machine restarted): nothing is attached to
// them and no map entry points at their old ifindex, which another device
// may have now. `endpoint del` or CNI GC removes their records.
std::set<std::string> vanished(const Node& node, EndpointTable& table);
// Writes every endpoint but the vanished into maps made new.
void refill(const Node& node, EndpointTable& table, DatapathMaps& maps);

}  // namespace ebpfnet::endpoints
