// Network policy per endpoint: the policy half of the facade.
#include <spdlog/spdlog.h>

#include "ebpfnet/error.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/policy_maps.hpp"

namespace ebpfnet {
namespace {

EndpointRecord& endpoint_of(NodeState& st, const std::string& endpoint, const std::string& node) {
  EndpointRecord* e = st.find(endpoint);
  if (!e) throw Error(Errc::not_found, "endpoint '" + endpoint + "' does not exist on node " + node);
  return *e;
}

}  // namespace

PolicySize Node::set_policy(const std::string& endpoint, const PolicySource& source) {
  auto lock = store_.lock();
  NodeState st = store_.load();
  EndpointRecord& e = endpoint_of(st, endpoint, name_);
  // Parsed under the lock, so endpoint names resolve against this state.
  Policy p = source(endpoint_resolver(st));
  DatapathMaps maps = attached_maps();

  Undo undo;
  PolicyIds ids = allocate_policy_ids(p, st.policy_counters);
  write_rule_sets(maps, p, ids);
  // Values, not references: undo runs after later locals are gone.
  undo.push("new rule sets", [&maps, p, ids] { erase_rule_sets(maps, p, ids); });
  // The datapath asks ep_policy only while this slot says some endpoint has one.
  const size_t policed = st.policed_endpoints();
  maps.write_slot(EBPFNET_CFG_POLICIES, policed + (e.policy ? 0 : 1));
  undo.push("policy count", [&maps, policed] { maps.write_slot(EBPFNET_CFG_POLICIES, policed); });
  switch_policy(maps, e.ip, p, ids);
  const std::optional<Policy> old = e.policy;
  const PolicyIds old_ids = e.policy_ids;
  undo.push("ep_policy of " + endpoint, [&maps, old, old_ids, ip = e.ip] {
    if (old)
      switch_policy(maps, ip, *old, old_ids);
    else
      maps.delete_ep_policy(ip);
  });
  e.policy = p;
  e.policy_ids = ids;
  store_.save(st);
  undo.commit();
  // Only now is nothing able to reach the old rule sets.
  if (old) erase_rule_sets(maps, *old, old_ids);
  const PolicySize size = policy_size(p, ids);
  spdlog::info("node {}: endpoint {} has a new policy ({} ingress, {} egress rules; {} + {} map entries)", name_,
               endpoint, p.ingress.rules.size(), p.egress.rules.size(), size.cidr_entries,
               size.port_entries);
  return size;
}

bool Node::delete_policy(const std::string& endpoint) {
  auto lock = store_.lock();
  NodeState st = store_.load();
  EndpointRecord& e = endpoint_of(st, endpoint, name_);
  if (!e.policy) return false;
  DatapathMaps maps = attached_maps();
  remove_policy(maps, e.ip, *e.policy, e.policy_ids);
  e.policy.reset();
  e.policy_ids = {};
  maps.write_slot(EBPFNET_CFG_POLICIES, st.policed_endpoints());
  store_.save(st);
  return true;
}

void Node::write_policies_locked(const NodeState& st, DatapathMaps& maps) {
  for (const auto& e : st.endpoints) {
    if (!e.policy) continue;
    write_rule_sets(maps, *e.policy, e.policy_ids);
    switch_policy(maps, e.ip, *e.policy, e.policy_ids);
  }
}

std::vector<EndpointPolicyView> Node::policies() {
  auto lock = store_.lock();
  NodeState st = store_.load();
  std::vector<EndpointPolicyView> out;
  for (const auto& e : st.endpoints)
    if (e.policy) out.push_back({e.name, e.ip, *e.policy, policy_size(*e.policy, e.policy_ids)});
  return out;
}

}  // namespace ebpfnet
