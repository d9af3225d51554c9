// Services: virtual IPs and node ports balanced over endpoints of the node.
// The services live in the node's services table; the maps follow it: one svc key
// per address a client uses, one Maglev table per service holding its
// active backends, one backends entry per backend.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "ebpfnet/node_txn.hpp"
#include "ebpfnet/services.hpp"

namespace ebpfnet::services {

// Adds a service with its backends. Refused (nothing written): a name or
// an address a service has, a virtual IP inside the node's pool, equal to
// an endpoint, the gateway or the uplink's address; a node port that is
// published or in the masquerade range, or without an uplink; a backend
// that is no endpoint, given twice, or without a port where the service
// has no virtual IP to take it from; ports out of range; too many.
void add(NodeTxn& txn, const ServiceSpec& spec);
// Adds many services in one transaction and one state write, all or none:
// each is checked as add checks it, against the node and the ones before
// it in specs. For bulk loaders (the services bench loads 10,000).
void add_many(NodeTxn& txn, const std::vector<ServiceSpec>& specs);
void del(NodeTxn& txn, const std::vector<std::string>& names);
// Adds a backend, or changes its weight, or makes a draining one active.
void set_backend(NodeTxn& txn, const std::string& service, const BackendSpec& b);
// A draining backend keeps its connections and takes no new one.
void drain(NodeTxn& txn, const std::string& service, const BackendRef& b);
// Removes a backend; its connections through the service end.
void remove_backend(NodeTxn& txn, const std::string& service, const BackendRef& b);
std::vector<ServiceView> list(NodeTxn& txn);

// Takes the endpoints that go away out of every service (their flows go
// with their addresses). maps nullptr: the datapath is not attached.
void forget_endpoints(NodeTxn& txn, const std::set<std::string>& endpoints, DatapathMaps* maps);

// Writes every service (backends, tables, keys); txn's endpoints are theirs.
void refill(NodeTxn& txn, const std::vector<ServiceRecord>& services, DatapathMaps& maps);
// Keys, tables and backends that no service names go, and the flows of
// backends the services no longer have.
size_t prune(NodeTxn& txn, const std::vector<ServiceRecord>& services, DatapathMaps& maps);

}  // namespace ebpfnet::services
