// CNI bookkeeping, what runtimes need: a container's endpoint by (container id,
// interface), and garbage collection of a network's endpoints. Each takes a
// transaction begun with Begin::if_exists: a node that does not exist has no
// endpoints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::containers {

std::optional<EndpointRecord> find(NodeTxn& txn, const ContainerRef& c);
// Returns what was removed; nullopt: nothing was there.
std::optional<EndpointRecord> del(NodeTxn& txn, const ContainerRef& c);
// Removes what `network` added for containers not in keep; returns them.
std::vector<EndpointRecord> gc(NodeTxn& txn, const std::string& network, const std::vector<ContainerRef>& keep);

}  // namespace ebpfnet::containers
