// Network policy per endpoint.
#pragma once

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::policies {

// Replaces the endpoint's policy atomically: new rule sets beside the old, one switch.
PolicySize set(NodeTxn& txn, const std::string& endpoint, const PolicySource& source);
bool del(NodeTxn& txn, const std::string& endpoint);  // false: it had none
std::vector<EndpointPolicyView> list(EndpointTable& table);
// Writes every endpoint's policy into maps made new.
void refill(EndpointTable& table, DatapathMaps& maps);
// Takes the policy of an endpoint that goes away; the table still counts it.
void remove_endpoint(NodeTxn& txn, const EndpointRecord& e, DatapathMaps& maps);

}  // namespace ebpfnet::policies
