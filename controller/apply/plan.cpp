// The plan: the diff between a node's state and its node.yaml, in the order
// apply makes it. Refusals (what apply cannot converge) happen here, before
// anything is changed.
#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <tuple>

#include "ebpfnet/apply.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::apply {
namespace {

using Op = Change::Op;

[[noreturn]] void fail(const NodeSpec& s, int line, Errc code, const std::string& reason) {
  throw Error(code, s.source + ":" + std::to_string(line) + ": " + reason);
}

std::string published_str(const PublishRecord& p) {
  return p.proto + " " + std::to_string(p.port) + " -> " + p.endpoint + ":" + std::to_string(p.target_port);
}

std::string route_str(const RouteRecord& r) { return r.dst.str() + " via " + r.via.str(); }

std::string uplink_str(const UplinkSpec& u, const std::string& node) {
  switch (u.kind) {
    case UplinkSpec::Kind::sandbox: return "sandbox " + node + "-out";
    case UplinkSpec::Kind::outside: return "joining outside " + u.name;
    case UplinkSpec::Kind::interface: return "interface " + u.name;
    case UplinkSpec::Kind::none: break;
  }
  return "none";
}

std::string uplink_str(const UplinkRecord& u) {
  if (u.outside.empty()) return "interface " + u.ifname;
  return u.outside_owned ? "sandbox " + u.outside : "joining outside " + u.outside;
}

bool same_uplink(const UplinkSpec& want, const UplinkRecord& have, const std::string& node) {
  switch (want.kind) {
    case UplinkSpec::Kind::sandbox: return have.outside_owned && have.outside == node + "-out";
    case UplinkSpec::Kind::outside: return !have.outside_owned && have.outside == want.name;
    case UplinkSpec::Kind::interface: return have.outside.empty() && have.ifname == want.name;
    case UplinkSpec::Kind::none: break;
  }
  return false;
}

// A rule as policy show prints it, with the address an endpoint peer
// resolved to: a peer re-made with another address is a change.
std::string rule_str(const PolicyRule& r, PolicyDir d) {
  std::string s = std::string(to_string(d)) + ": " + format_rule(r, d);
  if (r.peer != "any" && !Ipv4::parse(r.peer) && !Ipv4Cidr::parse(r.peer)) s += " (" + r.cidr.str() + ")";
  return s;
}

std::string policy_summary(const Policy& p) {
  auto dir = [](const DirectionPolicy& d) {
    return std::to_string(d.rules.size()) + (d.rules.size() == 1 ? " rule" : " rules") + ", default " +
           std::string(to_string(d.default_action));
  };
  return "ingress " + dir(p.ingress) + "; egress " + dir(p.egress);
}

// What a policy change does, rule by rule (as a multiset: order only
// breaks ties, so a reordering is said as such).
std::vector<std::string> policy_details(const Policy& from, const Policy& to) {
  std::vector<std::string> out;
  for (PolicyDir d : {PolicyDir::ingress, PolicyDir::egress}) {
    const DirectionPolicy &a = from.dir(d), &b = to.dir(d);
    if (a.default_action != b.default_action)
      out.push_back(std::string(to_string(d)) + " default " + std::string(to_string(a.default_action)) + " -> " +
                    std::string(to_string(b.default_action)));
    std::multiset<std::string> old_rules, new_rules;
    for (const auto& r : a.rules) old_rules.insert(rule_str(r, d));
    for (const auto& r : b.rules) new_rules.insert(rule_str(r, d));
    std::vector<std::string> gone, added;
    std::set_difference(old_rules.begin(), old_rules.end(), new_rules.begin(), new_rules.end(),
                        std::back_inserter(gone));
    std::set_difference(new_rules.begin(), new_rules.end(), old_rules.begin(), old_rules.end(),
                        std::back_inserter(added));
    for (const auto& g : gone) out.push_back("- " + g);
    for (const auto& n : added) out.push_back("+ " + n);
    if (gone.empty() && added.empty() && a.rules != b.rules)
      out.push_back(std::string(to_string(d)) + " rules reordered");
  }
  return out;
}

void plan_conntrack(const NodeSpec& want, const NodeState& have, Plan& plan, AttachOptions& opts, bool& attach) {
  if (want.ct_size != have.ct_size) {
    plan.changes.push_back({Op::change, "conntrack",
                            "size " + std::to_string(have.ct_size) + " -> " + std::to_string(want.ct_size) +
                                " (flows are copied)",
                            {}});
    opts.ct_size = want.ct_size;
    attach = true;
  }
  const std::pair<const char*, uint32_t CtTimeouts::*> fields[] = {{"syn", &CtTimeouts::syn},
                                                                   {"tcp", &CtTimeouts::tcp},
                                                                   {"closing", &CtTimeouts::closing},
                                                                   {"udp", &CtTimeouts::udp},
                                                                   {"icmp", &CtTimeouts::icmp}};
  for (const auto& [name, field] : fields) {
    const uint32_t from = have.ct_timeouts.*field, to = want.ct_timeouts.*field;
    if (from == to) continue;
    plan.changes.push_back({Op::change, "conntrack",
                            std::string("timeout ") + name + " " + std::to_string(from) + "s -> " +
                                std::to_string(to) + "s",
                            {}});
    opts.ct_timeouts.push_back(std::string(name) + "=" + std::to_string(to));
    attach = true;
  }
}

// Node, uplink, datapath and conntrack: what attach (or create) does.
void plan_node(const NodeSpec& want, const std::optional<CurrentNode>& have, const DatapathFacts& dp, Plan& plan) {
  AttachOptions opts;
  bool attach = false;
  if (!have) {
    std::string what = want.node + (want.sandbox ? " (sandbox" : " (root namespace") + ", pool " + want.pool.str();
    if (want.uplink.kind != UplinkSpec::Kind::none) what += ", uplink " + uplink_str(want.uplink, want.node);
    plan.changes.push_back({Op::add, "node", what + ")", {}});
    if (want.sandbox) {
      plan.create = true;
      plan.pool = want.pool;
      plan.uplink_sandbox =
          want.uplink.kind == UplinkSpec::Kind::sandbox || want.uplink.kind == UplinkSpec::Kind::outside;
      if (want.uplink.kind == UplinkSpec::Kind::outside) plan.outside = want.uplink.name;
    } else {
      opts.cidr = want.pool;
    }
    if (want.uplink.kind == UplinkSpec::Kind::interface) opts.uplink = want.uplink.name;
    plan.changes.push_back({Op::add, "datapath", "load and pin", {}});
    plan_conntrack(want, NodeState{}, plan, opts, attach);
    plan.attach = opts;
    return;
  }
  if (!(have->cidr == want.pool))
    fail(want, want.pool_line, Errc::usage,
         "node " + want.node + " has pool " + have->cidr.str() + ", not " + want.pool.str() +
             "; a pool cannot change under its endpoints (node delete, then apply)");
  if (have->uplink && !same_uplink(want.uplink, *have->uplink, want.node))
    fail(want, want.uplink.kind == UplinkSpec::Kind::none ? want.node_line : want.uplink.line, Errc::usage,
         "node " + want.node + " has uplink " + uplink_str(*have->uplink) + ", the file " +
             (want.uplink.kind == UplinkSpec::Kind::none ? "none" : uplink_str(want.uplink, want.node)) +
             "; an uplink cannot be changed or removed (node delete, then apply)");
  if (!have->uplink && want.uplink.kind != UplinkSpec::Kind::none) {
    if (want.uplink.kind != UplinkSpec::Kind::interface)
      fail(want, want.uplink.line, Errc::usage,
           "node " + want.node + " exists without an uplink; a sandbox outside is made with the node "
                                 "(node delete, then apply), or give an interface of the node");
    plan.changes.push_back({Op::add, "uplink", "interface " + want.uplink.name, {}});
    opts.uplink = want.uplink.name;
    attach = true;
  }
  if (dp.abi == 0) {
    plan.changes.push_back({Op::add, "datapath", "load and pin (nothing is pinned)", {}});
    attach = true;
  } else if (!dp.current) {
    plan.changes.push_back({Op::change, "datapath", "upgrade to this ebpfnet's programs", {}});
    attach = true;
  } else if (dp.stale > 0) {
    plan.changes.push_back(
        {Op::change, "datapath", "re-attach " + std::to_string(dp.stale) + " program(s)", {}});
    attach = true;
  }
  plan_conntrack(want, *have, plan, opts, attach);
  if (attach) plan.attach = opts;
}

void plan_published(const NodeSpec& want, const NodeState* have, Plan& plan) {
  std::map<std::pair<std::string, uint16_t>, const PublishRecord*> wanted;
  for (const auto& p : want.published) wanted[{p.rec.proto, p.rec.port}] = &p.rec;
  auto same = [](const PublishRecord& a, const PublishRecord& b) {
    return a.endpoint == b.endpoint && a.target_port == b.target_port;
  };
  if (have)
    for (const auto& p : have->published) {
      auto it = wanted.find({p.proto, p.port});
      if (it != wanted.end() && same(p, *it->second)) continue;
      plan.unexpose.push_back(p);
      if (it == wanted.end()) {
        plan.changes.push_back({Op::remove, "published", published_str(p), {}});
      } else {
        const PublishRecord& to = *it->second;
        plan.changes.push_back({Op::change, "published",
                                p.proto + " " + std::to_string(p.port) + ": " + p.endpoint + ":" +
                                    std::to_string(p.target_port) + " -> " + to.endpoint + ":" +
                                    std::to_string(to.target_port),
                                {}});
      }
    }
  for (const auto& p : want.published) {
    const PublishRecord* held = nullptr;
    if (have)
      for (const auto& q : have->published)
        if (q.proto == p.rec.proto && q.port == p.rec.port) held = &q;
    if (held && same(*held, p.rec)) continue;
    plan.expose.push_back(p.rec);
    if (!held) plan.changes.push_back({Op::add, "published", published_str(p.rec), {}});
  }
}

void plan_routes(const NodeSpec& want, const NodeState* have, Plan& plan) {
  auto wanted = [&](const Ipv4Cidr& dst) {
    return std::find_if(want.routes.begin(), want.routes.end(), [&](const RouteSpec& r) { return r.rec.dst == dst; });
  };
  if (have)
    for (const auto& r : have->routes) {
      auto it = wanted(r.dst);
      if (it != want.routes.end() && it->rec.via == r.via) continue;
      plan.route_del.push_back(r.dst);
      if (it == want.routes.end())
        plan.changes.push_back({Op::remove, "route", route_str(r), {}});
      else
        plan.changes.push_back(
            {Op::change, "route", r.dst.str() + ": via " + r.via.str() + " -> via " + it->rec.via.str(), {}});
    }
  for (const auto& r : want.routes) {
    const RouteRecord* held = nullptr;
    if (have)
      for (const auto& q : have->routes)
        if (q.dst == r.rec.dst) held = &q;
    if (held && held->via == r.rec.via) continue;
    plan.route_add.push_back(r.rec);
    if (!held) plan.changes.push_back({Op::add, "route", route_str(r.rec), {}});
  }
}

void plan_policies(const NodeSpec& want, const CurrentNode* have, Plan& plan) {
  auto wanted = [&](const std::string& e) {
    return std::find_if(want.policies.begin(), want.policies.end(), [&](const PolicySpec& p) { return p.endpoint == e; });
  };
  if (have)
    for (const auto& e : have->endpoints)
      if (e.policy && wanted(e.name) == want.policies.end()) {
        plan.policy_del.push_back(e.name);
        plan.changes.push_back({Op::remove, "policy", e.name + " (all its traffic allowed)", {}});
      }
  for (const auto& p : want.policies) {
    const EndpointRecord* e = nullptr;
    if (have)
      for (const auto& r : have->endpoints)
        if (r.name == p.endpoint) e = &r;
    if (e && e->policy == p.policy) continue;
    plan.policy_set.emplace_back(p.endpoint, p.policy);
    if (e && e->policy)
      plan.changes.push_back({Op::change, "policy", p.endpoint + ": " + policy_summary(p.policy),
                              policy_details(*e->policy, p.policy)});
    else
      plan.changes.push_back({Op::add, "policy", p.endpoint + ": " + policy_summary(p.policy), {}});
  }
}

// The deny list as one change of the node's: entries the file adds, and
// the node's that it omits, each a line of the diff.
void plan_prefilter(const NodeSpec& want, const NodeState* have, Plan& plan) {
  const std::vector<Ipv4Cidr> none;
  const std::vector<Ipv4Cidr>& held = have ? have->prefilter : none;
  std::vector<Ipv4Cidr> wanted;
  for (const auto& p : want.prefilter) wanted.push_back(p.cidr);
  bool differ = false;
  for (const auto& c : held)
    if (std::find(wanted.begin(), wanted.end(), c) == wanted.end()) {
      plan.changes.push_back({Op::remove, "prefilter", prefilter_entry_str(c), {}});
      differ = true;
    }
  for (const auto& c : wanted)
    if (std::find(held.begin(), held.end(), c) == held.end()) {
      plan.changes.push_back({Op::add, "prefilter", prefilter_entry_str(c), {}});
      differ = true;
    }
  if (differ) plan.prefilter = std::move(wanted);
}

// "api 10.96.0.10:80/tcp node port 30080 -> web1:8080, web2:8080 (weight 2)"
std::string service_summary(const ServiceSpec& v) {
  std::string s = v.name;
  if (v.vip) s += " " + v.vip->str() + ":" + std::to_string(v.port) + "/" + v.proto;
  if (v.node_port) s += " node port " + std::to_string(v.node_port) + (v.vip ? "" : "/" + v.proto);
  s += " ->";
  for (size_t i = 0; i < v.backends.size(); ++i) {
    const BackendSpec& b = v.backends[i];
    s += (i ? ", " : " ") + b.endpoint + ":" + std::to_string(b.port.value_or(v.port));
    if (b.weight != 1) s += " (weight " + std::to_string(b.weight) + ")";
  }
  if (v.backends.empty()) s += " no backend";
  return s;
}

// Whether the node's service is the file's. Draining is the node's
// business (service drain), not the file's: a draining backend the file
// lists is the same backend.
bool same_service(const ServiceRecord& r, const ServiceSpec& v) {
  if (r.proto != v.proto || r.vip != v.vip || r.port != v.port || r.node_port != v.node_port ||
      r.affinity_s != v.affinity_s || r.backends.size() != v.backends.size())
    return false;
  std::multiset<std::tuple<std::string, uint16_t, uint32_t>> have, want;
  for (const auto& b : r.backends) have.insert({b.endpoint, b.port, b.weight});
  for (const auto& b : v.backends) want.insert({b.endpoint, b.port.value_or(v.port), b.weight});
  return have == want;
}

// Services the node has and the file omits go; new ones are added; one
// that differs is replaced (deleted, then added: its flows end).
void plan_services(const NodeSpec& want, const std::vector<ServiceRecord>& held, Plan& plan) {
  for (const auto& r : held)
    if (std::none_of(want.services.begin(), want.services.end(),
                     [&](const ServiceEntry& e) { return e.spec.name == r.name; })) {
      plan.service_del.push_back(r.name);
      plan.changes.push_back({Op::remove, "service", r.name, {}});
    }
  for (const auto& e : want.services) {
    auto r = std::find_if(held.begin(), held.end(), [&](const ServiceRecord& h) { return h.name == e.spec.name; });
    if (r != held.end() && same_service(*r, e.spec)) continue;
    if (r != held.end()) plan.service_del.push_back(r->name);
    plan.service_add.push_back(e.spec);
    plan.changes.push_back({r != held.end() ? Op::change : Op::add, "service", service_summary(e.spec), {}});
  }
}

// Published ports and policies are about endpoints the node has; apply
// does not make endpoints (runtimes and `endpoint add` do).
void check_endpoints(const NodeSpec& want, const CurrentNode* have) {
  auto known = [&](const std::string& name) {
    return have && std::any_of(have->endpoints.begin(), have->endpoints.end(),
                               [&](const EndpointRecord& e) { return e.name == name; });
  };
  const std::string where = " on node " + want.node + (have ? "" : ", which does not exist yet");
  for (const auto& p : want.published)
    if (!known(p.rec.endpoint))
      fail(want, p.line, Errc::not_found, "no endpoint '" + p.rec.endpoint + "'" + where);
  for (const auto& p : want.policies)
    if (!known(p.endpoint)) fail(want, p.line, Errc::not_found, "no endpoint '" + p.endpoint + "'" + where);
}

}  // namespace

char symbol(Change::Op op) { return op == Op::add ? '+' : op == Op::remove ? '-' : '~'; }

Plan make_plan(const NodeSpec& want, const std::optional<CurrentNode>& have, const DatapathFacts& dp,
               const std::vector<ServiceRecord>& services) {
  check_endpoints(want, have ? &*have : nullptr);
  Plan plan;
  plan.node = want.node;
  plan_node(want, have, dp, plan);
  const CurrentNode* st = have ? &*have : nullptr;
  plan_published(want, st, plan);
  plan_routes(want, st, plan);
  plan_policies(want, st, plan);
  plan_prefilter(want, st, plan);
  plan_services(want, services, plan);
  return plan;
}

}  // namespace ebpfnet::apply
