// The agent's peers programmed into a node's VXLAN overlay: each peer in
// vxlan mode becomes the node's tunnel peer (its pool via its underlay
// address), a change of address or pool moves the entry, a peer that leaves
// takes its entry with it. Through the node's own operations (tunnel add|del
// under the node's lock), so the state and the datapath stay one.
#pragma once

#include "ebpfnet/cluster/peers.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet::cluster {

class OverlayPeerConsumer : public PeerConsumer {
 public:
  explicit OverlayPeerConsumer(Node& node) : node_(node) {}
  void peer_added(const NodeRecord& peer) override;
  void peer_changed(const NodeRecord& before, const NodeRecord& after) override;
  void peer_removed(const NodeRecord& peer) override;
  // Tunnel peers no listed vxlan peer has (pool via address) are removed,
  // and listed ones missing are programmed: the agent owns the overlay.
  void reconciled(const std::map<std::string, NodeRecord>& peers) override;

 private:
  // Errors are logged, never thrown: the agent keeps watching, and the next
  // change (or a restart's re-list) tries again.
  void program(const NodeRecord& peer);
  void unprogram(const NodeRecord& peer);
  Node& node_;
};

}  // namespace ebpfnet::cluster
