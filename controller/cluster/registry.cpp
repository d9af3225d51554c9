#include "ebpfnet/cluster/registry.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <set>

namespace ebpfnet::cluster {
namespace {

std::optional<std::string> pool_owner(const std::string& value) {
  auto j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("node") || !j["node"].is_string()) return std::nullopt;
  return j["node"].get<std::string>();
}

std::string owner_value(const std::string& node) { return nlohmann::json{{"node", node}}.dump(); }

}  // namespace

Keys::Keys(const std::string& cluster) : name_(cluster), root_("/ebpfnet/" + cluster + "/") {
  if (!valid_name(cluster))
    throw Error(Errc::usage, "cluster name '" + printable(cluster, 70) +
                                 "': 1-63 of a-z, 0-9 and '-', not starting or ending with '-'");
}

std::string Keys::pool(const Ipv4Cidr& c) const {
  return pools() + c.network.str() + "-" + std::to_string(c.prefix);
}

std::optional<std::string> Keys::node_of(const std::string& key) const {
  const std::string p = nodes();
  if (key.size() <= p.size() || key.compare(0, p.size(), p) != 0) return std::nullopt;
  return key.substr(p.size());
}

std::optional<Ipv4Cidr> Keys::pool_of(const std::string& key) const {
  const std::string p = pools();
  if (key.size() <= p.size() || key.compare(0, p.size(), p) != 0) return std::nullopt;
  std::string rest = key.substr(p.size());
  const auto dash = rest.rfind('-');
  if (dash == std::string::npos) return std::nullopt;
  rest[dash] = '/';
  auto c = Ipv4Cidr::parse(rest);
  if (c && pool(*c) != key) return std::nullopt;  // only the canonical spelling
  return c;
}

ClusterConfig Registry::ensure_config(const std::optional<ClusterConfig>& wanted) {
  const std::string key = keys_.config();
  if (wanted) {
    if (std::string bad = check_config(*wanted); !bad.empty()) throw Error(Errc::usage, bad);
    KeyValue current;
    if (client_.create(key, encode(*wanted), 0, &current)) {
      spdlog::info("cluster {}: created with CIDR {}, pools of /{}", keys_.name(), wanted->cidr.str(),
                   wanted->pool_prefix);
      return *wanted;
    }
    std::string why;
    auto have = decode_config(current.value, &why);
    if (!have) throw Error(Errc::failed, "cluster configuration " + key + " is unreadable: " + why);
    if (!(*have == *wanted))
      throw Error(Errc::usage, "cluster " + key + " has CIDR " + have->cidr.str() + " with pools of /" +
                                   std::to_string(have->pool_prefix) + ", not " + wanted->cidr.str() + " /" +
                                   std::to_string(wanted->pool_prefix) + " (a cluster has one CIDR)");
    return *have;
  }
  auto kv = client_.get(key);
  if (!kv)
    throw Error(Errc::not_found, "cluster " + keys_.root() + " has no configuration: give --cidr to create it");
  std::string why;
  auto have = decode_config(kv->value, &why);
  if (!have) throw Error(Errc::failed, "cluster configuration " + key + " is unreadable: " + why);
  return *have;
}

Ipv4Cidr Registry::allocate_pool(const ClusterConfig& config, const std::string& node) {
  const RangeResult taken = client_.list(keys_.pools());
  std::set<uint32_t> used;
  for (const auto& kv : taken.kvs) {
    auto pool = keys_.pool_of(kv.key);
    if (!pool) {
      spdlog::warn("cluster {}: ignoring foreign key {}", keys_.name(), printable(kv.key));
      continue;
    }
    auto owner = pool_owner(kv.value);
    if (owner && *owner == node && pool->prefix == config.pool_prefix && config.cidr.contains(pool->network)) {
      spdlog::info("cluster {}: node {} keeps its pool {}", keys_.name(), node, pool->str());
      return *pool;
    }
    used.insert(pool->network.host());  // taken, even when unreadable: never hand it out twice
  }
  const uint64_t count = uint64_t{1} << (config.pool_prefix - config.cidr.prefix);
  const uint64_t step = uint64_t{1} << (32 - config.pool_prefix);
  for (uint64_t i = 0; i < count; ++i) {
    const Ipv4Cidr candidate{Ipv4(static_cast<uint32_t>(config.cidr.network.host() + i * step)), config.pool_prefix};
    if (used.count(candidate.network.host())) continue;
    KeyValue current;
    if (client_.create(keys_.pool(candidate), owner_value(node), 0, &current)) {
      spdlog::info("cluster {}: node {} took pool {}", keys_.name(), node, candidate.str());
      return candidate;
    }
    // Another node won it meanwhile, unless it is ours from an earlier run that raced us.
    if (auto owner = pool_owner(current.value); owner && *owner == node) return candidate;
  }
  throw Error(Errc::exhausted, "cluster " + keys_.root() + ": every /" + std::to_string(config.pool_prefix) +
                                   " pool of " + config.cidr.str() + " is taken");
}

void Registry::register_node(const NodeRecord& record, int64_t lease) {
  const std::string key = keys_.node(record.name);
  const std::string value = encode(record);
  for (int attempt = 0; attempt < 5; ++attempt) {
    KeyValue current;
    if (client_.create(key, value, lease, &current)) return;
    if (current.create_revision == 0) continue;  // gone meanwhile: create again
    std::string why;
    auto other = decode_node(current.value, nullptr, &why);
    if (other && other->underlay != record.underlay)
      throw Error(Errc::exists, "node name " + record.name + " is taken by a node at " + other->underlay.str() +
                                    " while its lease lives (at most its TTL)");
    // Our own record from before a restart (or junk under our name): take it over.
    if (client_.replace(key, current.mod_revision, value, lease)) return;
  }
  throw Error(Errc::failed, "registering " + key + ": it keeps changing under us");
}

}  // namespace ebpfnet::cluster
