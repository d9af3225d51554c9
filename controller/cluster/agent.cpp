#include "ebpfnet/cluster/agent.hpp"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <thread>

#include "ebpfnet/cluster/registry.hpp"

namespace ebpfnet::cluster {
namespace {

// Sleeps d or until stop; false when stopped.
bool pause(std::stop_token stop, std::chrono::milliseconds d) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace

Agent::Agent(AgentOptions opts, PeerConsumer& consumer) : opts_(std::move(opts)), consumer_(consumer) {
  Keys check(opts_.cluster);  // a bad cluster name fails here, before any traffic
  if (!valid_name(opts_.node))
    throw Error(Errc::usage, "node name '" + printable(opts_.node, 70) +
                                 "': 1-63 of a-z, 0-9 and '-', not starting or ending with '-'");
  if (!valid_underlay(opts_.underlay))
    throw Error(Errc::usage, "underlay " + opts_.underlay.str() + " is not a unicast address peers can reach");
  if (opts_.ttl.count() < 2) throw Error(Errc::usage, "lease TTL must be at least 2 s");
}

Agent::~Agent() = default;

std::map<std::string, NodeRecord> Agent::peers() const {
  std::lock_guard lock(mu_);
  return peers_ ? peers_->snapshot() : std::map<std::string, NodeRecord>{};
}

std::optional<Ipv4Cidr> Agent::pool() const {
  std::lock_guard lock(mu_);
  if (!joined_) return std::nullopt;
  return self_.pool;
}

uint64_t Agent::ignored() const {
  std::lock_guard lock(mu_);
  return peers_ ? peers_->ignored() : 0;
}

void Agent::join(EtcdClient& client, std::stop_token stop) {
  auto backoff = opts_.backoff.backoff_min;
  while (!stop.stop_requested()) {
    try {
      Registry reg(client, opts_.cluster);
      std::optional<ClusterConfig> wanted;
      if (opts_.cidr) wanted = ClusterConfig{*opts_.cidr, opts_.pool_prefix};
      const ClusterConfig config = reg.ensure_config(wanted);
      const Ipv4Cidr pool = reg.allocate_pool(config, opts_.node);
      const NodeRecord self{opts_.node, opts_.underlay, pool, std::nullopt, opts_.mode};
      const int64_t lease = client.lease_grant(opts_.ttl.count());
      try {
        reg.register_node(self, lease);
      } catch (...) {
        try {
          client.lease_revoke(lease);
        } catch (const std::exception&) {
        }
        throw;
      }
      {
        std::lock_guard lock(mu_);
        self_ = self;
        config_ = config;
        peers_ = std::make_unique<PeerSet>(reg.keys(), opts_.node, pool, config, consumer_);
      }
      lease_ = lease;
      consumer_.joined(self, config);
      joined_ = true;
      spdlog::info("node {} joined cluster {} at {}: pool {}, underlay {}, lease {:x} (TTL {} s)", opts_.node,
                   opts_.cluster, opts_.etcd, pool.str(), opts_.underlay.str(), lease, opts_.ttl.count());
      return;
    } catch (const EtcdError& e) {
      spdlog::warn("joining cluster {}: {}; retrying in {} ms", opts_.cluster, e.what(), backoff.count());
      pause(stop, backoff);
      backoff = std::min(backoff * 2, opts_.backoff.backoff_max);
    }
  }
}

void Agent::reregister(EtcdClient& client) {
  int64_t lease = lease_;
  if (!lease || client.lease_keepalive(lease) == 0) {
    lease = client.lease_grant(opts_.ttl.count());
    lease_ = lease;
  }
  Registry reg(client, opts_.cluster);
  reg.register_node(self_, lease);
  spdlog::info("node {} registered again under lease {:x}", opts_.node, lease);
}

void Agent::keep_alive(std::stop_token stop) {
  EtcdClient client(opts_.etcd, opts_.timeouts);
  const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.ttl) / 3;
  bool failing = false;
  while (pause(stop, period)) {
    try {
      if (self_deleted_.exchange(false)) {
        spdlog::warn("node {}: its record was deleted while its lease lives", opts_.node);
        reregister(client);
      } else if (client.lease_keepalive(lease_) == 0) {
        spdlog::warn("node {}: lease {:x} has expired", opts_.node, lease_.load());
        lease_ = 0;
        reregister(client);
      }
      if (failing) spdlog::info("node {}: lease {:x} kept alive again", opts_.node, lease_.load());
      failing = false;
    } catch (const std::exception& e) {
      if (!failing)
        spdlog::warn("node {}: keeping lease alive: {}; retrying every {} ms", opts_.node, e.what(), period.count());
      failing = true;
    }
  }
}

void Agent::run(std::stop_token stop) {
  EtcdClient client(opts_.etcd, opts_.timeouts);
  join(client, stop);
  if (!joined_) return;  // stopped before etcd answered
  {
    std::jthread keeper([this](std::stop_token st) { keep_alive(st); });
    std::stop_callback forward(stop, [&keeper] { keeper.request_stop(); });
    const std::string self_key = peers_ ? Keys(opts_.cluster).node(opts_.node) : "";
    bool outage = false;
    ListWatchHandlers h;
    h.on_list = [&](const RangeResult& r) {
      ++lists_;
      bool self_seen = false;
      for (const auto& kv : r.kvs) self_seen |= kv.key == self_key;
      if (!self_seen) self_deleted_ = true;
      peers_->reconcile(r.kvs);
      spdlog::info("cluster {}: listed {} nodes at revision {}, {} peers", opts_.cluster, r.kvs.size(), r.revision,
                   peers_->snapshot().size());
    };
    h.on_events = [&](const std::vector<WatchEvent>& events) {
      for (const auto& e : events)
        if (e.type == WatchEvent::Type::del && e.kv.key == self_key && !stop.stop_requested()) self_deleted_ = true;
      peers_->apply(events);
    };
    h.on_watching = [&] {
      watching_ = true;
      if (outage) spdlog::info("cluster {}: etcd answers again, watching", opts_.cluster);
      outage = false;
    };
    h.on_error = [&](const std::exception& e, std::chrono::milliseconds retry) {
      watching_ = false;
      const size_t known = peers_->snapshot().size();
      if (!outage)
        spdlog::warn("cluster {}: {}; keeping the {} peers known, re-listing in {} ms", opts_.cluster, e.what(),
                     known, retry.count());
      else
        spdlog::debug("cluster {}: {}; retrying in {} ms", opts_.cluster, e.what(), retry.count());
      outage = true;
    };
    list_and_watch(client, Keys(opts_.cluster).nodes(), h, stop, opts_.backoff);
    watching_ = false;
  }  // the keeper stops here
  if (opts_.revoke_on_stop && lease_) {
    try {
      client.lease_revoke(lease_);
      spdlog::info("node {} left cluster {}: lease {:x} revoked", opts_.node, opts_.cluster, lease_.load());
    } catch (const std::exception& e) {
      spdlog::warn("node {}: revoking its lease: {} (its record goes when the TTL runs out)", opts_.node, e.what());
    }
  }
}

}  // namespace ebpfnet::cluster
