// What a cluster keeps in etcd, as values: the cluster's configuration and
// one record per node. Records come from a shared store that anyone with
// access can write: decoding validates everything and says why it refuses.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ebpfnet/ipv4.hpp"

namespace ebpfnet::cluster {

enum class Mode { vxlan, native };
std::string_view mode_name(Mode m);
std::optional<Mode> parse_mode(std::string_view s);

struct ClusterConfig {
  Ipv4Cidr cidr;        // every node's pool is carved from it
  int pool_prefix = 24;  // each node gets one /pool_prefix
  bool operator==(const ClusterConfig&) const = default;
};

struct NodeRecord {
  std::string name;
  Ipv4 underlay;              // where the node's peers reach it
  Ipv4Cidr pool;              // its endpoints' addresses
  std::optional<Mac> vtep_mac;  // its VXLAN device, once it has one
  Mode mode = Mode::vxlan;
  bool operator==(const NodeRecord&) const = default;
};

// Limits of what is accepted from etcd.
inline constexpr size_t kMaxRecordBytes = 4096;

// Names of clusters and nodes: 1-63 of [a-z0-9-], starting and ending with
// a letter or digit (a DNS label, as hostnames and sandbox node names are).
bool valid_name(std::string_view s);
// A unicast address a peer can be reached at (not 0/8, loopback, multicast,
// broadcast).
bool valid_underlay(Ipv4 a);

std::string encode(const ClusterConfig& c);
std::string encode(const NodeRecord& r);

// nullopt with *why set when text is not a valid configuration.
std::optional<ClusterConfig> decode_config(std::string_view text, std::string* why);
// nullopt with *why set when text is not a valid record. With config, the
// pool must be one of its pools.
std::optional<NodeRecord> decode_node(std::string_view text, const ClusterConfig* config, std::string* why);
// Refuses a configuration that cannot work (pool_prefix not longer than the
// CIDR's, or beyond /30); "" when fine.
std::string check_config(const ClusterConfig& c);

}  // namespace ebpfnet::cluster

namespace ebpfnet::cluster {
// s for a log line: at most max bytes, anything unprintable as \xNN.
std::string printable(std::string_view s, size_t max = 80);
}  // namespace ebpfnet::cluster
