// A node coming and going: a sandbox node made with its namespace (and
// uplink), any node taken apart with everything on it.
#pragma once

#include <string>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::lifecycle {

// Refused before anything is locked or made.
void check(const Node& node, const Ipv4Cidr& cidr, const std::optional<Ipv6Cidr>& cidr6 = std::nullopt);
// A node's pool: /8 to /30 (what the state store accepts).
void check_pool(const Ipv4Cidr& cidr);
// Node::create, in a transaction begun with Begin::create.
void create(NodeTxn& txn, const Ipv4Cidr& cidr, bool uplink_sandbox, const std::string& outside,
            const std::optional<Ipv6Cidr>& cidr6 = std::nullopt);
void destroy(NodeTxn& txn);

}  // namespace ebpfnet::lifecycle
