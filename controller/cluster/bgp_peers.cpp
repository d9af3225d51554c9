#include "ebpfnet/cluster/bgp_peers.hpp"

#include <spdlog/spdlog.h>

#include <condition_variable>

namespace ebpfnet::cluster {

using namespace std::chrono_literals;

BgpPeerConsumer::BgpPeerConsumer(Node& node, std::filesystem::path bird_dir, std::string tag)
    : node_(node), bird_(std::move(bird_dir)), tag_(std::move(tag)) {
  // A pid file left behind: BIRD ran on this node, its routes may still be
  // in the kernel and at the peers, so the next start recovers them.
  started_before_ = std::filesystem::exists(bird_.pid_file());
}

BgpPeerConsumer::~BgpPeerConsumer() {
  keeper_.request_stop();
  if (keeper_.joinable()) keeper_.join();
}

void BgpPeerConsumer::joined(const NodeRecord& self, const ClusterConfig& config) {
  try {
    node_.set_native(config.cidr);
  } catch (const std::exception& e) {
    spdlog::warn("node {}: the datapath does not route {} natively: {}", node_.name(), config.cidr.str(), e.what());
  }
  {
    std::lock_guard lock(mu_);
    self_ = BgpSelf{self.name, self.underlay, self.pool};
    sync(false);
  }
  if (!keeper_.joinable()) keeper_ = std::jthread([this](std::stop_token st) { keep(st); });
}

void BgpPeerConsumer::sync(bool force_reload) {
  if (!self_) return;
  try {
    const bool changed = bird_.write_config(render_bird_config(*self_, peers_));
    if (!bird_.running()) {
      const pid_t pid = bird_.start(started_before_, tag_);
      spdlog::info("node {}: bird started (pid {}{}), {} peers", node_.name(), pid,
                   started_before_ ? ", graceful restart recovery" : "", peers_.size());
      started_before_ = true;
    } else if (changed || force_reload) {
      bird_.reconfigure();
      spdlog::info("node {}: bird reconfigured, {} peers", node_.name(), peers_.size());
    }
  } catch (const std::exception& e) {
    spdlog::warn("node {}: bird: {}", node_.name(), e.what());
  }
}

void BgpPeerConsumer::keep(std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock wait(mu);
  while (!cv.wait_for(wait, stop, 1s, [] { return false; }) && !stop.stop_requested()) {
    std::lock_guard lock(mu_);
    if (!bird_.running()) {
      spdlog::warn("node {}: bird is not running, starting it", node_.name());
      sync(false);
    }
  }
}

void BgpPeerConsumer::peer_added(const NodeRecord& peer) {
  std::lock_guard lock(mu_);
  peers_[peer.name] = peer;
  sync(false);
}

void BgpPeerConsumer::peer_changed(const NodeRecord&, const NodeRecord& after) { peer_added(after); }

void BgpPeerConsumer::peer_removed(const NodeRecord& peer) {
  std::lock_guard lock(mu_);
  peers_.erase(peer.name);
  sync(false);
}

void BgpPeerConsumer::reconciled(const std::map<std::string, NodeRecord>& peers) {
  std::lock_guard lock(mu_);
  peers_ = peers;
  sync(false);
}

}  // namespace ebpfnet::cluster
