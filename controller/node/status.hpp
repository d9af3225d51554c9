// What the node is and runs: its status, and its datapath's live events.
#pragma once

#include <functional>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::status {

// Everything but the endpoints goes to head first; then each endpoint with
// its attachment, one at a time. Returns what head was given.
NodeStatus read(NodeTxn& txn, const std::function<void(const NodeStatus&)>& head, const EndpointSink& each);
// Holds no lock while it listens: events are named from the node's
// endpoints and services, read at the start and again when an event names
// an address it does not know.
void monitor(Node& node, const MonitorOptions& opts, const std::function<bool(const MonitorEvent&)>& on_event,
             const std::function<bool()>& keep_going);

}  // namespace ebpfnet::status
