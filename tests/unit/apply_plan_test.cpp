// The plan between a node's state and its node.yaml: additions, removals and
// changes of each kind, refusals with their line, and that applying a plan
// leaves nothing for a second apply to do.
#include <gtest/gtest.h>

#include <algorithm>

#include "ebpfnet/apply.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::apply {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Ipv4Cidr cidr(const char* s) { return *Ipv4Cidr::parse(s); }

const DatapathFacts kPinned{EBPFNET_ABI_VERSION, true, 0};

// A node as `node create --uplink-sandbox`, attach and two `endpoint add` leave it.
CurrentNode lab() {
  CurrentNode st;
  st.name = "lab";
  st.cidr = cidr("10.212.0.0/24");
  st.attached = true;
  st.uplink = UplinkRecord{"eth0", "lab-out", TcMode::tcx, true};
  for (auto [name, addr] : {std::pair{"web", "10.212.0.5"}, std::pair{"db", "10.212.0.9"}}) {
    EndpointRecord e;
    e.name = name;
    e.ip = ip(addr);
    st.endpoints.push_back(e);
  }
  return st;
}

NodeSpec parse(const std::string& body, const std::optional<CurrentNode>& st) {
  return parse_node_yaml("node: lab\npool: 10.212.0.0/24\nuplink: {sandbox: true}\n" + body, "node.yaml",
                         [&](const std::string&) {
                           return [&](std::string_view name) -> std::optional<Ipv4> {
                             if (st)
                               for (const auto& e : st->endpoints)
                                 if (e.name == name) return e.ip;
                             return std::nullopt;
                           };
                         });
}

Plan plan(const std::string& body, const std::optional<CurrentNode>& st, const DatapathFacts& dp = kPinned,
          const std::vector<ServiceRecord>& services = {}) {
  return make_plan(parse(body, st), st, dp, services);
}

// What carry_out makes the node's state say, done on the state alone.
CurrentNode applied(CurrentNode st, const Plan& p) {
  if (p.attach) {
    if (p.attach->ct_size) st.ct_size = *p.attach->ct_size;
    for (const auto& t : p.attach->ct_timeouts) set_ct_timeout(st.ct_timeouts, t);
  }
  for (const auto& u : p.unexpose)
    std::erase_if(st.published, [&](const PublishRecord& q) { return q.proto == u.proto && q.port == u.port; });
  for (const auto& d : p.route_del) std::erase_if(st.routes, [&](const RouteRecord& r) { return r.dst == d; });
  for (const auto& e : p.policy_del) st.find(e)->policy.reset();
  for (const auto& r : p.route_add) st.routes.push_back(r);
  for (const auto& e : p.expose) st.published.push_back(e);
  for (const auto& [e, pol] : p.policy_set) st.find(e)->policy = pol;
  return st;
}

std::vector<std::string> lines(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& c : p.changes) {
    out.push_back(std::string(1, symbol(c.op)) + " " + c.kind + " " + c.what);
    for (const auto& d : c.details) out.push_back("    " + d);
  }
  return out;
}

const std::string kFull = R"(conntrack:
  timeouts: {udp: 30}
published:
  - {endpoint: web, port: 8080, target_port: 80}
  - {endpoint: db, proto: udp, port: 5353, target_port: 53}
routes:
  - {dst: 10.240.2.0/24, via: 198.18.0.1}
policies:
  web:
    ingress:
      default: deny
      rules:
        - {action: allow, proto: tcp, port: 80, peer: db}
)";

TEST(ApplyPlan, FromANodeThatDoesNotExist) {
  Plan p = plan("routes:\n  - {dst: 10.240.2.0/24, via: 198.18.0.1}\n", std::nullopt, {});
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "+ node lab (sandbox, pool 10.212.0.0/24, uplink sandbox lab-out)",
                          "+ datapath load and pin",
                          "+ route 10.240.2.0/24 via 198.18.0.1",
                      }));
  EXPECT_TRUE(p.create);
  EXPECT_TRUE(p.uplink_sandbox);
  EXPECT_EQ(p.outside, "");
  EXPECT_EQ(p.pool, cidr("10.212.0.0/24"));
  ASSERT_TRUE(p.attach.has_value());
  EXPECT_FALSE(p.attach->cidr.has_value()) << "a sandbox node gets its pool from create";
  EXPECT_EQ(p.route_add.size(), 1u);
}

TEST(ApplyPlan, TheRootNodeIsMadeByAttach) {
  NodeSpec want = parse_node_yaml("node: root\npool: 10.212.0.0/16\nuplink: {interface: eth0}\n", "node.yaml",
                                  [](const std::string&) { return PeerResolver(); });
  Plan p = make_plan(want, std::nullopt, {});
  EXPECT_FALSE(p.create);
  ASSERT_TRUE(p.attach.has_value());
  EXPECT_EQ(p.attach->cidr, cidr("10.212.0.0/16"));
  EXPECT_EQ(p.attach->uplink, "eth0");
}

TEST(ApplyPlan, AddsEachKindToAnExistingNode) {
  Plan p = plan(kFull, lab());
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ conntrack timeout udp 60s -> 30s",
                          "+ published tcp 8080 -> web:80",
                          "+ published udp 5353 -> db:53",
                          "+ route 10.240.2.0/24 via 198.18.0.1",
                          "+ policy web: ingress 1 rule, default deny; egress 0 rules, default allow",
                      }));
  EXPECT_FALSE(p.create);
  ASSERT_TRUE(p.attach.has_value()) << "conntrack timeouts are set by attach";
  EXPECT_EQ(p.attach->ct_timeouts, std::vector<std::string>{"udp=30"});
  EXPECT_EQ(p.expose.size(), 2u);
  ASSERT_EQ(p.policy_set.size(), 1u);
  EXPECT_EQ(p.policy_set[0].second.ingress.rules[0].cidr, cidr("10.212.0.9/32"));
}

TEST(ApplyPlan, ASecondApplyHasNothingToDo) {
  CurrentNode st = lab();
  Plan first = plan(kFull, st);
  ASSERT_FALSE(first.empty());
  st = applied(st, first);
  Plan second = plan(kFull, st);
  EXPECT_TRUE(second.empty()) << testing::PrintToString(lines(second));
  EXPECT_FALSE(second.attach.has_value());
  EXPECT_TRUE(second.expose.empty() && second.unexpose.empty() && second.route_add.empty() &&
              second.route_del.empty() && second.policy_set.empty() && second.policy_del.empty());
}

TEST(ApplyPlan, RemovesWhatTheFileNoLongerHas) {
  CurrentNode st = applied(lab(), plan(kFull, lab()));
  // The file without the udp port, the route and the policy.
  Plan p = plan("conntrack:\n  timeouts: {udp: 30}\npublished:\n  - {endpoint: web, port: 8080, target_port: 80}\n", st);
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "- published udp 5353 -> db:53",
                          "- route 10.240.2.0/24 via 198.18.0.1",
                          "- policy web (all its traffic allowed)",
                      }));
  ASSERT_EQ(p.unexpose.size(), 1u);
  EXPECT_EQ(p.unexpose[0].port, 5353);
  EXPECT_EQ(p.route_del, std::vector<Ipv4Cidr>{cidr("10.240.2.0/24")});
  EXPECT_EQ(p.policy_del, std::vector<std::string>{"web"});
  EXPECT_FALSE(p.attach.has_value());
  EXPECT_TRUE(plan("conntrack:\n  timeouts: {udp: 30}\npublished:\n  - {endpoint: web, port: 8080, target_port: 80}\n",
                   applied(st, p))
                  .empty());
}

// The deny list is one step: what the file adds and omits, each a line.
TEST(ApplyPlan, ConvergesThePrefilter) {
  CurrentNode st = lab();
  st.prefilter = {cidr("192.0.2.0/24"), cidr("198.51.100.7/32")};
  Plan p = plan("prefilter:\n  - 198.51.100.7\n  - 203.0.113.0/24\n", st);
  EXPECT_EQ(lines(p), (std::vector<std::string>{"- prefilter 192.0.2.0/24", "+ prefilter 203.0.113.0/24"}));
  ASSERT_TRUE(p.prefilter);
  EXPECT_EQ(*p.prefilter, (std::vector<Ipv4Cidr>{cidr("198.51.100.7/32"), cidr("203.0.113.0/24")}));
  st.prefilter = *p.prefilter;
  EXPECT_TRUE(plan("prefilter:\n  - 198.51.100.7\n  - 203.0.113.0/24\n", st).empty());
  // Omitted: every entry goes.
  Plan gone = plan("", st);
  ASSERT_TRUE(gone.prefilter);
  EXPECT_TRUE(gone.prefilter->empty());
  EXPECT_EQ(lines(gone).size(), 2u);
}

// Services: added, left alone when the same (a draining backend included),
// replaced when they differ, removed when the file omits them.
TEST(ApplyPlan, ConvergesServices) {
  CurrentNode st = lab();
  const std::string file = R"(services:
  api:
    vip: 10.96.0.10:80/tcp
    backends: [web:8080, "db:8080,weight=2"]
  dns:
    node_port: 30053/udp
    affinity: 60
    backends: [db:53]
)";
  Plan p = plan(file, st);
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "+ service api 10.96.0.10:80/tcp -> web:8080, db:8080 (weight 2)",
                          "+ service dns node port 30053/udp -> db:53"}));
  ASSERT_EQ(p.service_add.size(), 2u);
  EXPECT_EQ(p.service_add[1].affinity_s, 60u);
  EXPECT_EQ(p.service_add[1].proto, "udp");

  const std::vector<ServiceRecord> held = {
      {"api", 1, "tcp", ip("10.96.0.10"), 80, 0, 0, {{1, "web", 8080, 1, true}, {2, "db", 8080, 2, false}}},
      {"dns", 2, "udp", std::nullopt, 0, 30053, 60, {{3, "db", 53, 1, false}}},
      {"old", 3, "tcp", ip("10.96.0.11"), 80, 0, 0, {}}};
  Plan again = plan(file, st, kPinned, held);
  EXPECT_EQ(lines(again), (std::vector<std::string>{"- service old"}));
  EXPECT_EQ(again.service_del, (std::vector<std::string>{"old"}));

  Plan changed = plan(R"(services:
  api:
    vip: 10.96.0.10:80/tcp
    backends: [web:8080]
)",
                      st, kPinned, held);
  EXPECT_EQ(lines(changed), (std::vector<std::string>{"- service dns", "- service old",
                                                      "~ service api 10.96.0.10:80/tcp -> web:8080"}));
  EXPECT_EQ(changed.service_del, (std::vector<std::string>{"dns", "old", "api"}));
  ASSERT_EQ(changed.service_add.size(), 1u);
}

TEST(ApplyPlan, RefusesBadServices) {
  const std::pair<const char*, const char*> bad[] = {
      {"services:\n  api: {backends: [web:80]}\n", "node.yaml:5: service api needs a vip or a node_port"},
      {"services:\n  api: {vip: 10.96.0.10:0}\n", "node.yaml:5: "},
      {"services:\n  api: {vip: 10.96.0.10:80, backends: ['web:80,weight=x']}\n", "node.yaml:5: "},
      {"services:\n  api: {vip: 10.96.0.10:80, port: 3}\n", "node.yaml:5: unknown key 'port' in service api"},
      {"services:\n  bad/name: {vip: 10.96.0.10:80}\n", "node.yaml:5: "},
      {"services: [api]\n", "services is a mapping"},
  };
  for (const auto& [body, says] : bad) {
    try {
      plan(body, lab());
      ADD_FAILURE() << body << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << body << ": " << e.what();
    }
  }
}

TEST(ApplyPlan, ChangesInPlace) {
  CurrentNode st = applied(lab(), plan(kFull, lab()));
  Plan p = plan(R"(conntrack:
  size: 524288
published:
  - {endpoint: db, port: 8080, target_port: 8000}
  - {endpoint: db, proto: udp, port: 5353, target_port: 53}
routes:
  - {dst: 10.240.2.0/24, via: 198.18.0.9}
policies:
  web:
    ingress:
      default: allow
      rules:
        - {action: allow, proto: tcp, port: 80, peer: db}
        - {action: deny, proto: udp}
)",
                st);
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ conntrack size 262144 -> 524288 (flows are copied)",
                          "~ conntrack timeout udp 30s -> 60s",
                          "~ published tcp 8080: web:80 -> db:8000",
                          "~ route 10.240.2.0/24: via 198.18.0.1 -> via 198.18.0.9",
                          "~ policy web: ingress 2 rules, default allow; egress 0 rules, default allow",
                          "    ingress default deny -> allow",
                          "    + ingress: deny udp",
                      }));
  // A change is a removal and an addition, the removal first.
  ASSERT_EQ(p.unexpose.size(), 1u);
  EXPECT_EQ(p.unexpose[0].endpoint, "web");
  ASSERT_EQ(p.expose.size(), 1u);
  EXPECT_EQ(p.expose[0].endpoint, "db");
  EXPECT_EQ(p.route_del.size(), 1u);
  EXPECT_EQ(p.route_add.size(), 1u);
  EXPECT_EQ(p.attach->ct_size, 524288u);
  EXPECT_EQ(p.attach->ct_timeouts, std::vector<std::string>{"udp=60"}) << "an omitted timeout returns to its default";
}

TEST(ApplyPlan, APeerEndpointWithAnotherAddressIsAChange) {
  CurrentNode st = applied(lab(), plan(kFull, lab()));
  st.find("db")->ip = ip("10.212.0.20");  // db deleted and added again
  Plan p = plan(kFull, st);
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ policy web: ingress 1 rule, default deny; egress 0 rules, default allow",
                          "    - ingress: allow tcp 80 from db (10.212.0.9/32)",
                          "    + ingress: allow tcp 80 from db (10.212.0.20/32)",
                      }))
      << "a published port names its endpoint and follows its address; a policy's peer was resolved";
}

TEST(ApplyPlan, TheDatapathIsRepairedWhenItNeedsIt) {
  CurrentNode st = applied(lab(), plan(kFull, lab()));
  EXPECT_EQ(lines(plan(kFull, st, {0, false, 3})), std::vector<std::string>{"+ datapath load and pin (nothing is pinned)"});
  EXPECT_EQ(lines(plan(kFull, st, {EBPFNET_ABI_VERSION, false, 3})),
            std::vector<std::string>{"~ datapath upgrade to this ebpfnet's programs"});
  Plan stale = plan(kFull, st, {EBPFNET_ABI_VERSION, true, 2});
  EXPECT_EQ(lines(stale), std::vector<std::string>{"~ datapath re-attach 2 program(s)"});
  ASSERT_TRUE(stale.attach.has_value());
  EXPECT_TRUE(stale.attach->ct_timeouts.empty()) << "nothing else changes";
}

void expect_refused(const std::string& body, const std::optional<CurrentNode>& st, Errc code,
                    const std::string& message, const std::string& head = "") {
  try {
    NodeSpec want = head.empty() ? parse(body, st)
                                 : parse_node_yaml(head + body, "node.yaml", [](const std::string&) {
                                     return PeerResolver();
                                   });
    make_plan(want, st, kPinned);
    FAIL() << "planned:\n" << body;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code);
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TEST(ApplyPlan, RefusesWhatItCannotConverge) {
  expect_refused("published:\n  - {endpoint: web, port: 80}\n  - {endpoint: ghost, port: 81}\n", lab(), Errc::not_found,
                 "node.yaml:6: no endpoint 'ghost' on node lab");
  expect_refused("policies:\n  ghost: {}\n", lab(), Errc::not_found, "node.yaml:5: no endpoint 'ghost' on node lab");
  expect_refused("published:\n  - {endpoint: web, port: 80}\n", std::nullopt, Errc::not_found,
                 "node.yaml:5: no endpoint 'web' on node lab, which does not exist yet");
  CurrentNode other_pool = lab();
  other_pool.cidr = cidr("10.212.1.0/24");
  expect_refused("", other_pool, Errc::usage,
                 "node.yaml:2: node lab has pool 10.212.1.0/24, not 10.212.0.0/24; a pool cannot change under "
                 "its endpoints (node delete, then apply)");
  expect_refused("", lab(), Errc::usage,
                 "node.yaml:1: node lab has uplink sandbox lab-out, the file none; an uplink cannot be changed "
                 "or removed (node delete, then apply)",
                 "node: lab\npool: 10.212.0.0/24\n");
  expect_refused("", lab(), Errc::usage,
                 "node.yaml:3: node lab has uplink sandbox lab-out, the file joining outside lan1-out; an uplink "
                 "cannot be changed or removed (node delete, then apply)",
                 "node: lab\npool: 10.212.0.0/24\nuplink: {outside: lan1-out}\n");
}

TEST(ApplyPlan, AnInterfaceUplinkIsAddedByAttach) {
  CurrentNode st = lab();
  st.uplink.reset();
  NodeSpec want = parse_node_yaml("node: lab\npool: 10.212.0.0/24\nuplink: {interface: eth1}\n", "node.yaml",
                                  [](const std::string&) { return PeerResolver(); });
  Plan p = make_plan(want, st, kPinned);
  EXPECT_EQ(lines(p), std::vector<std::string>{"+ uplink interface eth1"});
  ASSERT_TRUE(p.attach.has_value());
  EXPECT_EQ(p.attach->uplink, "eth1");
}

}  // namespace
}  // namespace ebpfnet::apply
