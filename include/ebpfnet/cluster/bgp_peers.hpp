// The agent's peers as BGP sessions of the node's BIRD (native routing):
// every change renders BIRD's configuration from the cluster's state again
// and reloads it (birdc configure); BIRD then installs the peers' pools in
// the node's table and withdraws those of peers that left. The node's
// datapath is told the cluster CIDR is routed natively (never masqueraded,
// delivered straight to the endpoint when it arrives on the uplink).
//
// BIRD outlives the agent: an agent restart does not touch it. A keeper
// thread starts it when it is not running, with graceful restart recovery
// (-R) when it ran before, so its peers keep its routes meanwhile.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "ebpfnet/cluster/bird.hpp"
#include "ebpfnet/cluster/peers.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet::cluster {

class BgpPeerConsumer : public PeerConsumer {
 public:
  // bird_dir: where BIRD's files live (the node's state directory); tag:
  // as DaemonSpec::tag for the BIRD it starts.
  BgpPeerConsumer(Node& node, std::filesystem::path bird_dir, std::string tag);
  ~BgpPeerConsumer() override;

  void joined(const NodeRecord& self, const ClusterConfig& config) override;
  void peer_added(const NodeRecord& peer) override;
  void peer_changed(const NodeRecord& before, const NodeRecord& after) override;
  void peer_removed(const NodeRecord& peer) override;
  void reconciled(const std::map<std::string, NodeRecord>& peers) override;

 private:
  // Renders, writes and reloads when the text changed; starts BIRD when it
  // is not running. Errors are logged, never thrown: the keeper tries again.
  void sync(bool force_reload);  // under mu_
  void keep(std::stop_token stop);

  Node& node_;
  Bird bird_;
  std::string tag_;
  std::mutex mu_;
  std::optional<BgpSelf> self_;
  std::map<std::string, NodeRecord> peers_;
  bool started_before_ = false;  // a BIRD of this node ran once: restarts recover
  std::jthread keeper_;
};

}  // namespace ebpfnet::cluster
