// trace: a described packet through the trace build of the node's programs,
// on the node's own maps, changing none of them.
#pragma once

#include "ebpfnet/node.hpp"
#include "ebpfnet/trace.hpp"

namespace ebpfnet::trace {

// Node::trace. Names are resolved against the node's state under its lock;
// the programs load and run after it is released (nothing is written).
TraceResult run(const Node& node, const TraceRequest& req);

}  // namespace ebpfnet::trace
