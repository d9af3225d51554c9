// Routes through the uplink to destinations reached without masquerade.
#pragma once

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::routes {

void add(NodeTxn& txn, const RouteRecord& r);
void del(NodeTxn& txn, const Ipv4Cidr& dst);

}  // namespace ebpfnet::routes
