// The cluster agent: the long-running part of a node in a cluster. It joins
// (configuration, pool, lease, record), keeps its lease alive at TTL/3, and
// lists then watches the other nodes, handing every change to a
// PeerConsumer. It owns nothing it cannot rebuild: when etcd does not
// answer it keeps the last peers it knew and retries with backoff; when etcd
// returns it re-lists and reconciles. Stopped cleanly it revokes its lease,
// so its record goes at once instead of after the TTL.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "ebpfnet/cluster/etcd_watch.hpp"
#include "ebpfnet/cluster/peers.hpp"
#include "ebpfnet/cluster/records.hpp"

namespace ebpfnet::cluster {

struct AgentOptions {
  std::string etcd;                  // http://ADDR:PORT
  std::string cluster;
  std::string node;
  Ipv4 underlay;
  std::optional<Ipv4Cidr> cidr;      // creates the cluster when it has no configuration
  int pool_prefix = 24;
  Mode mode = Mode::vxlan;
  std::chrono::seconds ttl{5};
  bool revoke_on_stop = true;        // false plays a crash: the lease runs out by itself
  ListWatchOptions backoff{};
  HttpTimeouts timeouts{};
};

class Agent {
 public:
  Agent(AgentOptions opts, PeerConsumer& consumer);
  ~Agent();

  // Joins, then keeps the lease and watches until stop. A join that etcd
  // refuses for good (another CIDR, the name taken, no pool left) throws
  // ebpfnet::Error; an etcd that does not answer is retried until stop.
  void run(std::stop_token stop);

  // What the agent knows now (any thread).
  std::map<std::string, NodeRecord> peers() const;
  std::optional<Ipv4Cidr> pool() const;
  int64_t lease() const { return lease_.load(); }
  bool joined() const { return joined_.load(); }
  bool watching() const { return watching_.load(); }  // the watch is up (false while etcd is away)
  uint64_t lists() const { return lists_.load(); }    // full lists so far (1 + reconnects)
  uint64_t ignored() const;                           // records refused

 private:
  void join(EtcdClient& client, std::stop_token stop);
  void keep_alive(std::stop_token stop);
  void reregister(EtcdClient& client);

  AgentOptions opts_;
  PeerConsumer& consumer_;
  NodeRecord self_;
  std::optional<ClusterConfig> config_;
  std::unique_ptr<PeerSet> peers_;
  mutable std::mutex mu_;  // self_, config_, peers_ (pointer)
  std::atomic<int64_t> lease_{0};
  std::atomic<bool> joined_{false}, watching_{false}, self_deleted_{false};
  std::atomic<uint64_t> lists_{0};
};

}  // namespace ebpfnet::cluster
