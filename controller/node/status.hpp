// What the node is and runs: its status, and its datapath's live events.
#pragma once

#include <functional>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::status {

NodeStatus read(NodeTxn& txn);
// Needs no lock: it only reads, and names endpoints from load_state.
void monitor(Node& node, const MonitorOptions& opts, const std::function<bool(const MonitorEvent&)>& on_event,
             const std::function<bool()>& keep_going);

}  // namespace ebpfnet::status
