// Network policy per endpoint.
#pragma once

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::policies {

// Replaces the endpoint's policy atomically: new rule sets beside the old, one switch.
PolicySize set(NodeTxn& txn, const std::string& endpoint, const PolicySource& source);
bool del(NodeTxn& txn, const std::string& endpoint);  // false: it had none
std::vector<EndpointPolicyView> list(const NodeState& st);
// Writes every endpoint's policy into maps made new.
void refill(const NodeState& st, DatapathMaps& maps);
// Takes the policy of an endpoint that goes away; st still counts it.
void remove_endpoint(const NodeState& st, const EndpointRecord& e, DatapathMaps& maps);

}  // namespace ebpfnet::policies
