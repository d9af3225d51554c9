// The other nodes of the cluster as this node knows them, built from a full
// list of nodes/ and the watch events after it. Every change goes to a
// PeerConsumer: the seam where the datapath plugs in (the VXLAN LPM map of
// remote pools -> underlay address, or BIRD's configuration). Records that
// do not validate are logged, counted and ignored.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ebpfnet/cluster/etcd_watch.hpp"
#include "ebpfnet/cluster/records.hpp"
#include "ebpfnet/cluster/registry.hpp"

namespace ebpfnet::cluster {

// Called on the watching thread, one change at a time, in etcd's order.
class PeerConsumer {
 public:
  virtual ~PeerConsumer() = default;
  virtual void peer_added(const NodeRecord& peer) = 0;
  virtual void peer_changed(const NodeRecord& before, const NodeRecord& after) = 0;
  virtual void peer_removed(const NodeRecord& peer) = 0;
  // After each full list (at start, and after etcd was away), once the
  // changes are applied: the whole peer set as it now is. A consumer that
  // programs something makes it exactly this set, so that what a previous
  // agent programmed for peers that left while none ran goes too.
  virtual void reconciled(const std::map<std::string, NodeRecord>& peers) { (void)peers; }
  // This node is in the cluster (its record, the cluster's configuration),
  // before the first list; again after a re-registration.
  virtual void joined(const NodeRecord& self, const ClusterConfig& config) {
    (void)self;
    (void)config;
  }
};

// Programs nothing yet: logs each change (info) through the project's logger.
class LoggingPeerConsumer : public PeerConsumer {
 public:
  void peer_added(const NodeRecord& peer) override;
  void peer_changed(const NodeRecord& before, const NodeRecord& after) override;
  void peer_removed(const NodeRecord& peer) override;
};

class PeerSet {
 public:
  // self: this node's name (never its own peer) and pool (no peer may claim it).
  PeerSet(Keys keys, std::string self, std::optional<Ipv4Cidr> self_pool, ClusterConfig config,
          PeerConsumer& consumer)
      : keys_(std::move(keys)), self_(std::move(self)), self_pool_(self_pool), config_(config), consumer_(consumer) {}

  // A full list of the nodes/ prefix: adds, changes and removes so that the
  // set is exactly the valid records listed (other than self).
  void reconcile(const std::vector<KeyValue>& listed);
  void apply(const std::vector<WatchEvent>& events);

  std::map<std::string, NodeRecord> snapshot() const;
  // Records ignored since the start (each refusal counts once per write).
  uint64_t ignored() const;

 private:
  std::optional<NodeRecord> accept(const KeyValue& kv);  // validated, or logged and counted
  void upsert(NodeRecord r);                              // under mu_
  void remove(const std::string& name);                   // under mu_

  Keys keys_;
  std::string self_;
  std::optional<Ipv4Cidr> self_pool_;
  ClusterConfig config_;
  PeerConsumer& consumer_;
  mutable std::mutex mu_;
  std::map<std::string, NodeRecord> peers_;
  uint64_t ignored_ = 0;
};

}  // namespace ebpfnet::cluster
