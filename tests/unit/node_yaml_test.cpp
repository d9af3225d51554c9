// node.yaml parsing: every field, and a table of bad files with the exact
// FILE:LINE and reason each one is refused with.
#include <gtest/gtest.h>

#include <map>

#include "ebpfnet/apply.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::apply {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Ipv4Cidr cidr(const char* s) { return *Ipv4Cidr::parse(s); }

// The node's endpoints, as the node's state would resolve them.
PeerResolver endpoints_of(const std::string& node) {
  return [node](std::string_view name) -> std::optional<Ipv4> {
    static const std::map<std::string, Ipv4, std::less<>> eps = {{"web", ip("10.212.0.5")}, {"db", ip("10.212.0.9")}};
    auto it = eps.find(name);
    if (node != "lab" || it == eps.end()) return std::nullopt;
    return it->second;
  };
}

NodeSpec parse(const std::string& text) { return parse_node_yaml(text, "node.yaml", endpoints_of); }

TEST(NodeYaml, ReadsEveryField) {
  NodeSpec s = parse(R"(# the lab node
node: lab
sandbox: true
pool: 10.212.0.0/24
uplink:
  sandbox: true
conntrack:
  size: 524288
  timeouts: {udp: 30, tcp: 3600}
published:
  - endpoint: web
    proto: udp
    port: 8080
    target_port: 80
  - {endpoint: db, port: 5432}
routes:
  - dst: 10.240.2.0/24
    via: 198.18.0.1
policies:
  web:
    ingress:
      default: deny
      rules:
        - {action: allow, proto: tcp, port: 80, peer: db}
  db:
)");
  EXPECT_EQ(s.node, "lab");
  EXPECT_EQ(s.node_line, 2);
  EXPECT_TRUE(s.sandbox);
  EXPECT_EQ(s.pool, cidr("10.212.0.0/24"));
  EXPECT_EQ(s.pool_line, 4);
  EXPECT_EQ(s.uplink.kind, UplinkSpec::Kind::sandbox);
  EXPECT_EQ(s.uplink.line, 6);
  EXPECT_EQ(s.ct_size, 524288u);
  EXPECT_EQ(s.ct_timeouts.udp, 30u);
  EXPECT_EQ(s.ct_timeouts.tcp, 3600u);
  EXPECT_EQ(s.ct_timeouts.syn, CtTimeouts{}.syn) << "an omitted timeout takes its default";
  ASSERT_EQ(s.published.size(), 2u);
  EXPECT_EQ(s.published[0].rec.endpoint, "web");
  EXPECT_EQ(s.published[0].rec.proto, "udp");
  EXPECT_EQ(s.published[0].rec.port, 8080);
  EXPECT_EQ(s.published[0].rec.target_port, 80);
  EXPECT_EQ(s.published[0].line, 11);
  EXPECT_EQ(s.published[1].rec.proto, "tcp") << "proto defaults to tcp";
  EXPECT_EQ(s.published[1].rec.target_port, 5432) << "target_port defaults to port";
  EXPECT_EQ(s.published[1].line, 15);
  ASSERT_EQ(s.routes.size(), 1u);
  EXPECT_EQ(s.routes[0].rec.dst, cidr("10.240.2.0/24"));
  EXPECT_EQ(s.routes[0].rec.via, ip("198.18.0.1"));
  ASSERT_EQ(s.policies.size(), 2u);
  EXPECT_EQ(s.policies[0].endpoint, "web");
  EXPECT_EQ(s.policies[0].line, 20);
  EXPECT_EQ(s.policies[0].policy.ingress.default_action, PolicyAction::deny);
  ASSERT_EQ(s.policies[0].policy.ingress.rules.size(), 1u);
  EXPECT_EQ(s.policies[0].policy.ingress.rules[0].cidr, cidr("10.212.0.9/32")) << "the peer db is resolved";
  EXPECT_EQ(s.policies[1].endpoint, "db");
  EXPECT_EQ(s.policies[1].policy, Policy{}) << "an empty policy allows everything";
}

TEST(NodeYaml, DefaultsAndTheRootNode) {
  NodeSpec s = parse("node: root\npool: 10.212.0.0/16\nuplink: {interface: eth0}\n");
  EXPECT_FALSE(s.sandbox) << "root is the machine's root namespace";
  EXPECT_EQ(s.uplink.kind, UplinkSpec::Kind::interface);
  EXPECT_EQ(s.uplink.name, "eth0");
  EXPECT_EQ(s.ct_size, NodeState{}.ct_size);
  EXPECT_EQ(s.ct_timeouts.udp, CtTimeouts{}.udp);
  EXPECT_TRUE(s.published.empty());
  EXPECT_TRUE(s.policies.empty());
  EXPECT_EQ(parse("node: lab\npool: 10.212.0.0/24\nuplink: {outside: lan1-out}\n").uplink.name, "lan1-out");
}

TEST(NodeYaml, ThePolicyLanguageIsPolicySetsOwn) {
  // The same text as a policy file and inside node.yaml gives the same policy.
  const std::string policy = "ingress:\n  default: deny\n  rules:\n    - {action: allow, proto: tcp, port: 8000-8080, peer: web}\n"
                             "egress:\n  rules:\n    - {action: deny, proto: udp, port: 53}\n";
  std::string nested;
  for (size_t i = 0, j; i < policy.size(); i = j + 1) {
    j = policy.find('\n', i);
    nested += "    " + policy.substr(i, j - i) + "\n";
  }
  NodeSpec s = parse("node: lab\npool: 10.212.0.0/24\npolicies:\n  db:\n" + nested);
  ASSERT_EQ(s.policies.size(), 1u);
  EXPECT_EQ(s.policies[0].policy, parse_policy_yaml(policy, "p.yaml", endpoints_of("lab")));
}

struct BadFile {
  const char* name;
  std::string text;
  std::string error;  // the whole message
};

void PrintTo(const BadFile& b, std::ostream* os) { *os << b.name; }

class NodeYamlRefuses : public testing::TestWithParam<BadFile> {};

TEST_P(NodeYamlRefuses, WithFileLineAndReason) {
  const BadFile& b = GetParam();
  try {
    parse(b.text);
    FAIL() << "accepted:\n" << b.text;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::usage);
    EXPECT_EQ(std::string(e.what()), b.error);
  }
}

const std::string kHead = "node: lab\npool: 10.212.0.0/24\nuplink: {sandbox: true}\n";  // lines 1-3

INSTANTIATE_TEST_SUITE_P(
    Table, NodeYamlRefuses,
    testing::Values(
        BadFile{"UnknownKey", kHead + "publish:\n  - {endpoint: web, port: 80}\n",
                "node.yaml:4: unknown key 'publish' at the top level (allowed: node, sandbox, pool, uplink, "
                "conntrack, published, routes, prefilter, services, policies)"},
        BadFile{"PrefilterHostBits", kHead + "prefilter:\n  - 203.0.113.1/24\n",
                "node.yaml:5: prefilter entry '203.0.113.1/24' has host bits set; did you mean 203.0.113.0/24?"},
        BadFile{"PrefilterNotAnAddress", kHead + "prefilter:\n  - 203.0.113\n",
                "node.yaml:5: prefilter entry '203.0.113' is not an IPv4 address"},
        BadFile{"PrefilterOverlap", kHead + "prefilter:\n  - 203.0.113.0/24\n  - 203.0.0.0/16\n",
                "node.yaml:6: prefilter entry 203.0.0.0/16 overlaps 203.0.113.0/24 (line 5)"},
        BadFile{"PrefilterTwice", kHead + "prefilter:\n  - 198.51.100.7\n  - 198.51.100.7\n",
                "node.yaml:6: prefilter entry 198.51.100.7 is given twice (also on line 5)"},
        BadFile{"PrefilterNotAScalar", kHead + "prefilter:\n  - {cidr: 203.0.113.0/24}\n",
                "node.yaml:5: a prefilter entry is an address or a prefix, such as 203.0.113.0/24"},
        BadFile{"PrefilterWithoutUplink", "node: lab\npool: 10.212.0.0/24\nprefilter:\n  - 198.51.100.7\n",
                "node.yaml:3: the prefilter filters the uplink, and the file has none (uplink: ...)"},
        BadFile{"UnknownKeyInAPublishedPort", kHead + "published:\n  - endpoint: web\n    prot: tcp\n    port: 80\n",
                "node.yaml:6: unknown key 'prot' in a published port (allowed: endpoint, proto, port, target_port)"},
        BadFile{"UnknownKeyInAPolicy", kHead + "policies:\n  web:\n    ingres: {default: deny}\n",
                "node.yaml:6: unknown key 'ingres' in a policy (allowed: ingress, egress)"},
        BadFile{"DuplicateKey", kHead + "pool: 10.212.1.0/24\n", "node.yaml:4: duplicate key 'pool'"},
        BadFile{"PublishedNotAList", kHead + "published: {endpoint: web}\n", "node.yaml:4: published must be a list"},
        BadFile{"PortNotANumber", kHead + "published:\n  - {endpoint: web, port: eighty}\n",
                "node.yaml:5: port 'eighty' is not a number from 1 to 65535"},
        BadFile{"PortOutOfRange", kHead + "published:\n  - endpoint: web\n    port: 80\n    target_port: 70000\n",
                "node.yaml:7: target_port '70000' is not a number from 1 to 65535"},
        BadFile{"PortIsAList", kHead + "published:\n  - {endpoint: web, port: [80]}\n",
                "node.yaml:5: port must be a single value"},
        BadFile{"ProtoNotTcpOrUdp", kHead + "published:\n  - {endpoint: web, port: 80, proto: icmp}\n",
                "node.yaml:5: proto 'icmp' is not tcp or udp"},
        BadFile{"SandboxNotABool", "node: lab\nsandbox: yes please\npool: 10.212.0.0/24\n",
                "node.yaml:2: sandbox 'yes please' is not true or false"},
        BadFile{"BadPool", "node: lab\npool: 10.212.0.0/33\n",
                "node.yaml:2: pool '10.212.0.0/33' is not an IPv4 prefix such as 10.240.0.0/24"},
        BadFile{"PoolWithHostBits", "node: lab\npool: 10.212.0.1/24\n",
                "node.yaml:2: pool '10.212.0.1/24' has host bits set; did you mean 10.212.0.0/24?"},
        BadFile{"PoolTooSmall", "node: lab\npool: 10.212.0.0/31\n", "node.yaml:2: pool 10.212.0.0/31 must be between /8 and /30"},
        BadFile{"BadRouteDst", kHead + "routes:\n  - {dst: 10.240.2.0, via: 198.18.0.1}\n",
                "node.yaml:5: dst '10.240.2.0' is not an IPv4 prefix such as 10.240.0.0/24"},
        BadFile{"BadRouteVia", kHead + "routes:\n  - {dst: 10.240.2.0/24, via: router}\n",
                "node.yaml:5: via 'router' is not an IPv4 address"},
        BadFile{"RouteOverlapsThePool", kHead + "routes:\n  - {dst: 10.212.0.0/16, via: 198.18.0.1}\n",
                "node.yaml:5: route 10.212.0.0/16 overlaps the node's pool 10.212.0.0/24"},
        BadFile{"DuplicatePublishedPort",
                kHead + "published:\n  - {endpoint: web, port: 8080}\n  - {endpoint: db, port: 8080, target_port: 80}\n",
                "node.yaml:6: tcp port 8080 is published twice (also on line 5)"},
        BadFile{"DuplicateRoute",
                kHead + "routes:\n  - {dst: 10.240.2.0/24, via: 198.18.0.1}\n  - {dst: 10.240.2.0/24, via: 198.18.0.9}\n",
                "node.yaml:6: route 10.240.2.0/24 is given twice (also on line 5)"},
        BadFile{"PublishedWithoutUplink", "node: lab\npool: 10.212.0.0/24\npublished:\n  - {endpoint: web, port: 80}\n",
                "node.yaml:3: published ports need an uplink (uplink: ...)"},
        BadFile{"UnknownPeerEndpoint", kHead + "policies:\n  web:\n    ingress:\n      rules:\n        - {action: allow, peer: ghost}\n",
                "node.yaml:8: no endpoint named 'ghost' (a peer is any, an IPv4 address or CIDR, or an endpoint name)"},
        BadFile{"BadPolicyPort", kHead + "policies:\n  web:\n    egress:\n      rules:\n        - {action: allow, proto: udp, port: 70000}\n",
                "node.yaml:8: port 70000 is out of range (1-65535)"},
        BadFile{"NoNode", "pool: 10.212.0.0/24\n", "node.yaml:1: no node: the file names its node (node: NAME)"},
        BadFile{"BadNodeName", "node: ../etc\npool: 10.212.0.0/24\n",
                "node.yaml:1: node name '../etc' may only hold letters, digits, '_', '-' and '.'"},
        BadFile{"RootIsNoSandbox", "node: root\nsandbox: true\npool: 10.212.0.0/24\n",
                "node.yaml:2: node 'root' is the machine's root namespace, not a sandbox"},
        BadFile{"TwoUplinks", "node: lab\npool: 10.212.0.0/24\nuplink: {sandbox: true, interface: eth0}\n",
                "node.yaml:3: uplink has one key: sandbox: true, outside: NAMESPACE or interface: IFNAME"},
        BadFile{"ConntrackTooSmall", kHead + "conntrack:\n  size: 100\n",
                "node.yaml:5: conntrack size '100' is not a number from 1024 to 67108864"},
        BadFile{"UnknownTimeout", kHead + "conntrack:\n  timeouts: {udp: 30, sctp: 5}\n",
                "node.yaml:5: unknown key 'sctp' in timeouts (allowed: syn, tcp, closing, udp, icmp)"},
        BadFile{"EmptyFile", "", "node.yaml:1: the file is empty; a node.yaml has at least node and pool"},
        BadFile{"NotYaml", "node: lab\npool: [10.212.0.0/24\n", "node.yaml:3: end of sequence flow not found"}),
    [](const testing::TestParamInfo<BadFile>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace ebpfnet::apply
