// The node's uplink and what goes through it: the sandbox uplink, the
// node-wide config slots, published ports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ebpfnet/node_txn.hpp"

namespace ebpfnet::uplink {

// IPPROTO_TCP or IPPROTO_UDP for "tcp" or "udp"; Errc::usage otherwise.
uint8_t proto_number(const std::string& proto);

// A veth from the sandbox node into outside, or into a new namespace
// "<node>-out" playing the internet when outside is "".
// dual_stack: IPv6 too, beside IPv4 (kSandbox*Ip6).
UplinkRecord create_sandbox(NodeTxn& txn, const std::string& outside, bool dual_stack = false);
// The config slots, published ports and routed prefixes, from the node's state.
void write_config(NodeTxn& txn, DatapathMaps& maps);
void expose(NodeTxn& txn, const PublishRecord& p);
void unexpose(NodeTxn& txn, const std::string& endpoint, const std::string& proto, uint16_t target_port,
              std::optional<uint16_t> port);
// Takes the published ports of an endpoint that goes away.
void unpublish_endpoint(NodeTxn& txn, const EndpointRecord& e, DatapathMaps* maps);

}  // namespace ebpfnet::uplink
