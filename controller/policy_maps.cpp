#include "ebpfnet/policy_maps.hpp"

#include <exception>

namespace ebpfnet {
namespace {

constexpr PolicyDir kDirs[] = {PolicyDir::ingress, PolicyDir::egress};

int index(PolicyDir d) { return d == PolicyDir::ingress ? EBPFNET_INGRESS : EBPFNET_EGRESS; }

__u8 action_value(PolicyAction a) {
  return a == PolicyAction::allow ? EBPFNET_POLICY_ALLOW : EBPFNET_POLICY_DENY;
}

void erase(DatapathMaps& maps, const CompiledSet& c) {
  for (const auto& [key, cls] : c.cidrs) maps.delete_policy_cidr(key);
  for (const auto& [key, v] : c.ports) maps.delete_policy_port(key);
}

}  // namespace

PeerResolver endpoint_resolver(EndpointTable& table) {
  return [&table](std::string_view name) -> std::optional<Ipv4> {
    if (auto e = table.get(name)) return e->ip;
    return std::nullopt;
  };
}

PolicyIds allocate_policy_ids(const Policy& p, PolicyIdCounters& counters) {
  PolicyIds ids;
  for (PolicyDir d : kDirs) {
    const DirectionPolicy& dp = p.dir(d);
    if (dp.rules.empty()) continue;
    const int i = index(d);
    ids.set[i] = counters.next_set++;
    ids.first_class[i] = counters.next_class;
    counters.next_class += compile_policy(dp, ids.set[i], ids.first_class[i]).classes;
  }
  return ids;
}

void write_rule_sets(DatapathMaps& maps, const Policy& p, const PolicyIds& ids) {
  for (PolicyDir d : kDirs) {
    const int i = index(d);
    if (!ids.set[i]) continue;
    const CompiledSet c = compile_policy(p.dir(d), ids.set[i], ids.first_class[i]);
    try {
      for (const auto& [key, v] : c.ports) maps.put_policy_port(key, v);
      for (const auto& [key, cls] : c.cidrs) maps.put_policy_cidr(key, cls);
    } catch (const std::exception&) {
      erase_rule_sets(maps, p, ids);
      throw;
    }
  }
}

void erase_rule_sets(DatapathMaps& maps, const Policy& p, const PolicyIds& ids) {
  for (PolicyDir d : kDirs) {
    const int i = index(d);
    if (ids.set[i]) erase(maps, compile_policy(p.dir(d), ids.set[i], ids.first_class[i]));
  }
}

void switch_policy(DatapathMaps& maps, Ipv4 endpoint, const Policy& p, const PolicyIds& ids) {
  ebpfnet_ep_policy v{};
  for (PolicyDir d : kDirs) {
    const int i = index(d);
    v.dir[i].id = ids.set[i];
    v.dir[i].default_action = action_value(p.dir(d).default_action);
  }
  maps.put_ep_policy(endpoint, v);
}

void remove_policy(DatapathMaps& maps, Ipv4 endpoint, const Policy& p, const PolicyIds& ids) {
  maps.delete_ep_policy(endpoint);
  erase_rule_sets(maps, p, ids);
}

PolicySize policy_size(const Policy& p, const PolicyIds& ids) {
  PolicySize s;
  for (PolicyDir d : kDirs) {
    const int i = index(d);
    if (!ids.set[i]) continue;
    const CompiledSet c = compile_policy(p.dir(d), ids.set[i], ids.first_class[i]);
    s.cidr_entries += c.cidrs.size();
    s.port_entries += c.ports.size();
  }
  return s;
}

}  // namespace ebpfnet
