// The cluster's keys in etcd and the writes a node makes to join:
//   /ebpfnet/<cluster>/config          {"cidr", "pool_prefix"}, written once (create-if-absent)
//   /ebpfnet/<cluster>/pools/<a.b.c.d-len>   {"node"}: who owns a pool; created by
//                                      compare-and-swap, kept across restarts (no lease)
//   /ebpfnet/<cluster>/nodes/<name>    a NodeRecord, under the node's lease
#pragma once

#include <optional>
#include <string>

#include "ebpfnet/cluster/etcd_client.hpp"
#include "ebpfnet/cluster/records.hpp"

namespace ebpfnet::cluster {

class Keys {
 public:
  explicit Keys(const std::string& cluster);  // throws Errc::usage for a bad name
  const std::string& root() const { return root_; }
  const std::string& name() const { return name_; }
  std::string config() const { return root_ + "config"; }
  std::string nodes() const { return root_ + "nodes/"; }
  std::string node(const std::string& name) const { return nodes() + name; }
  std::string pools() const { return root_ + "pools/"; }
  std::string pool(const Ipv4Cidr& c) const;
  // The node name of a key under nodes/ (as written, not validated); nullopt for another key.
  std::optional<std::string> node_of(const std::string& key) const;
  // The pool of a key under pools/; nullopt for another or a malformed key.
  std::optional<Ipv4Cidr> pool_of(const std::string& key) const;

 private:
  std::string name_, root_;
};

class Registry {
 public:
  Registry(EtcdClient& client, const std::string& cluster) : client_(client), keys_(cluster) {}
  const Keys& keys() const { return keys_; }

  // With wanted: writes the configuration if the cluster has none, and
  // refuses (Errc::usage) one that differs. Without: reads it; a cluster
  // with no configuration is Errc::not_found.
  ClusterConfig ensure_config(const std::optional<ClusterConfig>& wanted);
  // The pool node owns (kept across restarts), else the first free pool,
  // taken by compare-and-swap so two nodes never get the same one.
  // Errc::exhausted when every pool is taken.
  Ipv4Cidr allocate_pool(const ClusterConfig& config, const std::string& node);
  // Writes the node's record under lease. A record of the same name under
  // another live lease is refused (Errc::exists) unless it has the same
  // underlay address (the same node, restarted before its old lease expired).
  void register_node(const NodeRecord& record, int64_t lease);

 private:
  EtcdClient& client_;
  Keys keys_;
};

}  // namespace ebpfnet::cluster
