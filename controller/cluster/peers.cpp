#include "ebpfnet/cluster/peers.hpp"

#include <spdlog/spdlog.h>

#include <set>

namespace ebpfnet::cluster {

void LoggingPeerConsumer::peer_added(const NodeRecord& p) {
  spdlog::info("peer {} joined: underlay {}, pool {}, {}", p.name, p.underlay.str(), p.pool.str(), mode_name(p.mode));
}

void LoggingPeerConsumer::peer_changed(const NodeRecord& b, const NodeRecord& a) {
  spdlog::info("peer {} changed: underlay {} -> {}, pool {} -> {}, {} -> {}", a.name, b.underlay.str(),
               a.underlay.str(), b.pool.str(), a.pool.str(), mode_name(b.mode), mode_name(a.mode));
}

void LoggingPeerConsumer::peer_removed(const NodeRecord& p) {
  spdlog::info("peer {} left: underlay {}, pool {}", p.name, p.underlay.str(), p.pool.str());
}

std::optional<NodeRecord> PeerSet::accept(const KeyValue& kv) {
  auto name = keys_.node_of(kv.key);
  std::string why;
  std::optional<NodeRecord> r;
  if (!name) why = "not a node key";
  else if (!valid_name(*name)) why = "the key's name is not a DNS label";
  else if ((r = decode_node(kv.value, &config_, &why)) && r->name != *name) {
    why = "its name " + r->name + " is not the key's";
    r.reset();
  } else if (r && self_pool_ && r->pool == *self_pool_) {
    why = "its pool " + r->pool.str() + " is this node's";
    r.reset();
  } else if (r) {
    for (const auto& [other, p] : peers_)
      if (other != r->name && p.pool == r->pool) {
        why = "its pool " + r->pool.str() + " is " + other + "'s";
        r.reset();
        break;
      }
  }
  if (!r) {
    ++ignored_;
    spdlog::warn("cluster {}: ignoring record {}: {}", keys_.name(), printable(kv.key), printable(why, 200));
  }
  return r;
}

void PeerSet::upsert(NodeRecord r) {
  auto it = peers_.find(r.name);
  if (it == peers_.end()) {
    consumer_.peer_added(r);
    peers_.emplace(r.name, std::move(r));
  } else if (!(it->second == r)) {
    consumer_.peer_changed(it->second, r);
    it->second = std::move(r);
  }
}

void PeerSet::remove(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return;
  const NodeRecord gone = std::move(it->second);
  peers_.erase(it);
  consumer_.peer_removed(gone);
}

void PeerSet::reconcile(const std::vector<KeyValue>& listed) {
  std::lock_guard lock(mu_);
  std::set<std::string> seen;
  for (const auto& kv : listed) {
    auto name = keys_.node_of(kv.key);
    if (name && *name == self_) continue;
    if (auto r = accept(kv)) {
      seen.insert(r->name);
      upsert(std::move(*r));
    }
  }
  std::vector<std::string> gone;
  for (const auto& [name, _] : peers_)
    if (!seen.count(name)) gone.push_back(name);
  for (const auto& name : gone) remove(name);
  consumer_.reconciled(peers_);
}

void PeerSet::apply(const std::vector<WatchEvent>& events) {
  std::lock_guard lock(mu_);
  for (const auto& e : events) {
    auto name = keys_.node_of(e.kv.key);
    if (name && *name == self_) continue;
    if (e.type == WatchEvent::Type::del) {
      if (name) remove(*name);
      continue;
    }
    if (auto r = accept(e.kv)) {
      upsert(std::move(*r));
    } else if (name) {
      remove(*name);  // a peer whose record became junk is no longer a peer we can program
    }
  }
}

std::map<std::string, NodeRecord> PeerSet::snapshot() const {
  std::lock_guard lock(mu_);
  return peers_;
}

uint64_t PeerSet::ignored() const {
  std::lock_guard lock(mu_);
  return ignored_;
}

}  // namespace ebpfnet::cluster
