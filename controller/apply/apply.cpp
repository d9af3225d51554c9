// The applying part: reads the node a node.yaml names, and makes the plan's
// changes through the Node facade.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ebpfnet/apply.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::apply {
namespace {

// The node's state and endpoints; nullopt when it does not exist.
std::optional<CurrentNode> current(const Env& env, const std::string& name) {
  Node n(env, name);
  auto st = n.load_state();
  if (!st) return std::nullopt;
  CurrentNode c;
  static_cast<NodeState&>(c) = std::move(*st);
  c.endpoints = n.endpoint_records();
  return c;
}

PeerResolver resolver_of(const std::optional<CurrentNode>& st) {
  return [&st](std::string_view name) -> std::optional<Ipv4> {
    if (st)
      for (const auto& e : st->endpoints)
        if (e.name == name) return e.ip;
    return std::nullopt;
  };
}

DatapathFacts facts_of(const NodeStatus& s) {
  DatapathFacts f;
  f.abi = s.abi;
  f.current = s.abi == EBPFNET_ABI_VERSION && s.build == s.binary_build;
  f.stale = std::count_if(s.attachments.begin(), s.attachments.end(), [](const AttachmentView& a) { return a.stale; });
  return f;
}

bool names_endpoint(const std::string& peer) {
  return peer != "any" && !Ipv4::parse(peer) && peer.find('/') == std::string::npos;
}

// The planned policy with its endpoint peers resolved again under the
// node's lock: an endpoint re-made since the plan has its new address.
Policy resolve_again(Policy p, const PeerResolver& resolve) {
  for (PolicyDir d : {PolicyDir::ingress, PolicyDir::egress})
    for (auto& r : p.dir(d).rules) {
      if (!names_endpoint(r.peer)) continue;
      auto ip = resolve(r.peer);
      if (!ip) throw Error(Errc::not_found, "peer endpoint '" + r.peer + "' no longer exists");
      r.cidr = {*ip, 32};
    }
  return p;
}

}  // namespace

Plan plan_file(const Env& env, std::string_view text, const std::string& source,
               const std::optional<std::string>& node) {
  std::optional<CurrentNode> have;
  bool loaded = false;
  NodeSpec want = parse_node_yaml(text, source, [&](const std::string& name) {
    have = current(env, name);
    loaded = true;
    return resolver_of(have);
  });
  if (node && *node != want.node)
    throw Error(Errc::usage, source + ":" + std::to_string(want.node_line) + ": the file describes node " +
                                 want.node + ", not " + *node + " (--node)");
  // Parsing reads the node only for a file with policies.
  if (!loaded) have = current(env, want.node);
  DatapathFacts dp;
  std::vector<ServiceRecord> services;
  if (have) {
    Node n(env, want.node);
    NodeStatus s = n.status();
    dp = facts_of(s);
    static_cast<NodeState&>(*have) = std::move(s.state);
    have->endpoints.clear();
    for (auto& v : s.endpoints) have->endpoints.push_back(std::move(v.rec));
    for (auto& v : n.services()) services.push_back(std::move(v.record));
  }
  return make_plan(want, have, dp, services);
}

void carry_out(const Env& env, const Plan& plan) {
  std::string doing;
  size_t done = 0;
  // Each step is one operation of the facade: it undoes itself when it fails.
  auto step = [&](std::string what, const std::function<void()>& f) {
    doing = std::move(what);
    spdlog::info("apply {}: {}", plan.node, doing);
    f();
    ++done;
  };
  try {
    if (plan.create)
      step("create the node", [&] { Node::create(env, plan.node, plan.pool, {}, plan.uplink_sandbox, plan.outside); });
    Node node(env, plan.node);
    if (plan.attach) step("attach", [&] { node.attach(*plan.attach); });
    for (const auto& p : plan.unexpose)
      step("unexpose " + p.endpoint + " " + std::to_string(p.target_port) + "/" + p.proto,
           [&] { node.unexpose(p.endpoint, p.proto, p.target_port, p.port); });
    for (const auto& dst : plan.route_del) step("route del " + dst.str(), [&] { node.route_del(dst); });
    for (const auto& e : plan.policy_del) step("policy del " + e, [&] { node.delete_policy(e); });
    if (!plan.service_del.empty()) step("service del", [&] { node.service_del(plan.service_del); });
    for (const auto& r : plan.route_add) step("route add " + r.dst.str(), [&] { node.route_add(r); });
    for (const auto& p : plan.expose)
      step("expose " + p.endpoint + " " + std::to_string(p.target_port) + "/" + p.proto,
           [&] { node.expose(p); });
    for (const auto& [endpoint, policy] : plan.policy_set)
      step("policy set " + endpoint, [&] {
        node.set_policy(endpoint, [&](const PeerResolver& r) { return resolve_again(policy, r); });
      });
    if (plan.prefilter) step("prefilter", [&] { node.prefilter_set(*plan.prefilter); });
    if (!plan.service_add.empty()) step("service add", [&] { node.service_add_many(plan.service_add); });
  } catch (const Error& e) {
    const size_t total = plan.create + plan.attach.has_value() + plan.unexpose.size() + plan.route_del.size() +
                         plan.policy_del.size() + plan.route_add.size() + plan.expose.size() +
                         plan.policy_set.size() + plan.prefilter.has_value() + !plan.service_del.empty() +
                         !plan.service_add.empty();
    throw Error(e.code(), "apply to node " + plan.node + ": '" + doing + "' failed after " + std::to_string(done) +
                              " of " + std::to_string(total) + " step(s), which stay made: " + e.what() +
                              " (once the cause is fixed, apply again: it plans anew)");
  }
}

}  // namespace ebpfnet::apply
