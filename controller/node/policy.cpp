#include "policy.hpp"

#include <spdlog/spdlog.h>

#include "ebpfnet/policy_maps.hpp"

namespace ebpfnet::policies {

PolicySize set(NodeTxn& txn, const std::string& endpoint, const PolicySource& source) {
  NodeState& st = txn.state();
  EndpointRecord e = txn.endpoint(endpoint);
  // Parsed under the lock, so endpoint names resolve against this state.
  Policy p = source(endpoint_resolver(txn.endpoints()));
  DatapathMaps& maps = txn.maps();

  PolicyIds ids = allocate_policy_ids(p, st.policy_counters);
  txn.journal({.op = "policy set"});
  txn.step("rule-sets");
  write_rule_sets(maps, p, ids);
  // Values, not references: undo runs after the operation's locals are gone.
  txn.undo("new rule sets", [&maps, p, ids] { erase_rule_sets(maps, p, ids); });
  // The datapath asks ep_policy only while this slot says some endpoint has one.
  const size_t policed = txn.endpoints().policed();
  maps.write_slot(EBPFNET_CFG_POLICIES, policed + (e.policy ? 0 : 1));
  txn.undo("policy count", [&maps, policed] { maps.write_slot(EBPFNET_CFG_POLICIES, policed); });
  txn.step("switch");
  switch_policy(maps, e.ip, p, ids);
  const std::optional<Policy> old = e.policy;
  const PolicyIds old_ids = e.policy_ids;
  txn.undo("ep_policy of " + endpoint, [&maps, old, old_ids, ip = e.ip] {
    if (old)
      switch_policy(maps, ip, *old, old_ids);
    else
      maps.delete_ep_policy(ip);
  });
  e.policy = p;
  e.policy_ids = ids;
  txn.endpoints().put(e);
  // Only once saved is nothing able to reach the old rule sets.
  txn.commit_then([&] {
    txn.step("old-rule-sets");
    if (old) erase_rule_sets(maps, *old, old_ids);
  });
  const PolicySize size = policy_size(p, ids);
  spdlog::info("node {}: endpoint {} has a new policy ({} ingress, {} egress rules; {} + {} map entries)",
               txn.node().name(), endpoint, p.ingress.rules.size(), p.egress.rules.size(), size.cidr_entries,
               size.port_entries);
  return size;
}

bool del(NodeTxn& txn, const std::string& endpoint) {
  EndpointRecord e = txn.endpoint(endpoint);
  if (!e.policy) return false;
  DatapathMaps& maps = txn.maps();
  txn.journal({.op = "policy del"});
  remove_policy(maps, e.ip, *e.policy, e.policy_ids);
  e.policy.reset();
  e.policy_ids = {};
  txn.endpoints().put(e);
  maps.write_slot(EBPFNET_CFG_POLICIES, txn.endpoints().policed());
  txn.commit();
  return true;
}

std::vector<EndpointPolicyView> list(EndpointTable& table) {
  std::vector<EndpointPolicyView> out;
  table.for_each([&](const EndpointRecord& e) {
    if (e.policy) out.push_back({e.name, e.ip, *e.policy, policy_size(*e.policy, e.policy_ids)});
  });
  return out;
}

void refill(EndpointTable& table, DatapathMaps& maps) {
  table.for_each([&](const EndpointRecord& e) {
    if (!e.policy) return;
    write_rule_sets(maps, *e.policy, e.policy_ids);
    switch_policy(maps, e.ip, *e.policy, e.policy_ids);
  });
}

void remove_endpoint(NodeTxn& txn, const EndpointRecord& e, DatapathMaps& maps) {
  if (!e.policy) return;
  remove_policy(maps, e.ip, *e.policy, e.policy_ids);
  maps.write_slot(EBPFNET_CFG_POLICIES, txn.endpoints().policed() - 1);
}

}  // namespace ebpfnet::policies
