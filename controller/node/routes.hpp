// Routes through the uplink to destinations reached without masquerade.
#pragma once

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::routes {

void add(NodeTxn& txn, const RouteRecord& r);
void del(NodeTxn& txn, const Ipv4Cidr& dst);
// The cluster CIDR routed natively (state native_cidr), in the routed map.
void set_native(NodeTxn& txn, const std::optional<Ipv4Cidr>& cidr);

}  // namespace ebpfnet::routes
