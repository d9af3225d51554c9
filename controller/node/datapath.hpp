// The node's datapath: loading it, upgrading a pinned one in place, and
// taking it away.
#pragma once

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::datapath {

// Bad options, and a sandbox node that does not exist, are refused before
// the node is locked.
void check(const Node& node, bool node_exists, const AttachOptions& opts);
// Node::attach; commits txn unless a dry run. A transaction without state
// begins one (the root node's first attach, which needs opts.cidr).
AttachResult attach(NodeTxn& txn, const AttachOptions& opts);
// Takes every program off its attachment and removes the pins.
void detach(NodeTxn& txn);

}  // namespace ebpfnet::datapath
