#include "ebpfnet/cluster/overlay_peers.hpp"

#include <spdlog/spdlog.h>

#include "ebpfnet/error.hpp"

namespace ebpfnet::cluster {

void OverlayPeerConsumer::program(const NodeRecord& peer) {
  if (peer.mode != Mode::vxlan) {
    spdlog::info("node {}: peer {} routes natively, nothing to program in the overlay", node_.name(), peer.name);
    return;
  }
  try {
    if (auto o = node_.overlay())
      for (const auto& p : o->peers)
        if (p.pool == peer.pool) {
          if (p.via == peer.underlay) return;  // programmed already (a re-list)
          node_.tunnel_del(p.pool);
        }
    node_.tunnel_add({peer.pool, peer.underlay});
    spdlog::info("node {}: peer {} ({} via {}) in the overlay", node_.name(), peer.name, peer.pool.str(),
                 peer.underlay.str());
  } catch (const std::exception& e) {
    spdlog::warn("node {}: peer {} ({} via {}) not programmed: {}", node_.name(), peer.name, peer.pool.str(),
                 peer.underlay.str(), e.what());
  }
}

void OverlayPeerConsumer::unprogram(const NodeRecord& peer) {
  try {
    if (auto o = node_.overlay())
      for (const auto& p : o->peers)
        if (p.pool == peer.pool && p.via == peer.underlay) {
          node_.tunnel_del(p.pool);
          spdlog::info("node {}: peer {} ({}) out of the overlay", node_.name(), peer.name, peer.pool.str());
          return;
        }
  } catch (const std::exception& e) {
    spdlog::warn("node {}: peer {} ({}) not removed from the overlay: {}", node_.name(), peer.name, peer.pool.str(),
                 e.what());
  }
}

void OverlayPeerConsumer::peer_added(const NodeRecord& peer) { program(peer); }

void OverlayPeerConsumer::peer_changed(const NodeRecord& before, const NodeRecord& after) {
  if (before.pool != after.pool || before.mode != after.mode) unprogram(before);
  program(after);
}

void OverlayPeerConsumer::peer_removed(const NodeRecord& peer) { unprogram(peer); }

void OverlayPeerConsumer::reconciled(const std::map<std::string, NodeRecord>& peers) {
  auto listed = [&](const TunnelPeerRecord& t) {
    for (const auto& [_, p] : peers)
      if (p.mode == Mode::vxlan && p.pool == t.pool && p.underlay == t.via) return true;
    return false;
  };
  try {
    if (auto o = node_.overlay())
      for (const auto& t : o->peers)
        if (!listed(t)) {
          node_.tunnel_del(t.pool);
          spdlog::info("node {}: {} via {} out of the overlay: no peer of the cluster has it", node_.name(),
                       t.pool.str(), t.via.str());
        }
  } catch (const std::exception& e) {
    spdlog::warn("node {}: stale overlay peers not removed: {}", node_.name(), e.what());
  }
  for (const auto& [_, p] : peers) program(p);  // one that failed before (a stale entry in its way)
}

}  // namespace ebpfnet::cluster
