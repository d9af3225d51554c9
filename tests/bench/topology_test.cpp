// Each topology builder passes traffic and removes everything it made; a
// build that fails midway undoes its own steps and nothing else; the rule
// generators produce what they promise.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <regex>

#include "bench/process.hpp"
#include "bench_support.hpp"
#include "ebpfnet/netns.hpp"
#include "support.hpp"

namespace ebpfnet::bench {
namespace {

class Topologies : public ::testing::TestWithParam<std::string> {};

TEST_P(Topologies, PassesTrafficAndRemovesEverythingItMade) {
  EBPFNET_REQUIRE_ROOT();
  auto links0 = test::root_links();
  test::TempConfig tc;
  std::vector<std::string> made;
  {
    auto t = make_topology(GetParam(), tc.cfg);
    EXPECT_EQ(t->name(), GetParam());
    made = t->namespaces();
    ASSERT_FALSE(made.empty());
    auto ns1 = test::netns_names();
    for (const auto& n : made) {
      EXPECT_TRUE(ns1.count(n)) << n << " should exist";
      EXPECT_EQ(n.rfind(tc.cfg.prefix, 0), 0u) << n << " does not carry the run's prefix";
    }
    EXPECT_EQ(test::root_links(), links0) << "the root namespace got a link";
    Measurement m = measure_rr(*t, test::tools(), Placement{}, 1);
    EXPECT_EQ(m.error, "");
    EXPECT_GT(m.values["rr_tps"], 0);
  }
  // Other runs may share the machine: look only at this run's names.
  for (const auto& n : test::netns_names()) {
    EXPECT_NE(n.rfind(tc.cfg.prefix, 0), 0u) << n << " was left behind";
    EXPECT_FALSE(std::count(made.begin(), made.end(), n)) << n << " was left behind";
  }
  for (const auto& p : test::pinned_nodes())
    EXPECT_NE(p.rfind(tc.cfg.prefix, 0), 0u) << "pinned datapath " << p << " was left behind";
  EXPECT_EQ(test::root_links(), links0);
}

INSTANTIATE_TEST_SUITE_P(Bench, Topologies, ::testing::ValuesIn(known_datapaths()),
                         [](const auto& info) {
                           return std::regex_replace(info.param, std::regex("-"), "_");
                         });

TEST(Topology, FailedBuildUndoesOnlyItsOwnSteps) {
  EBPFNET_REQUIRE_ROOT();
  test::TempConfig tc;
  // Someone else's namespace with the name the server would get: the build
  // fails there, removes the client namespace it made, and leaves this one.
  std::string theirs = tc.cfg.prefix + "d-s";
  netns::add(theirs);
  EXPECT_THROW(make_topology("direct", tc.cfg), std::exception);
  EXPECT_FALSE(netns::exists(tc.cfg.prefix + "d-c"));
  EXPECT_TRUE(netns::exists(theirs));
  netns::del(theirs);
}

TEST(Topology, BridgeIptablesLoadsRulesInItsNodeOnly) {
  EBPFNET_REQUIRE_ROOT();
  test::TempConfig tc;
  auto root_rules = run(Spawn{{"iptables-save"}}).out;
  auto t = make_topology("bridge-iptables", tc.cfg);
  std::string node = tc.cfg.prefix + "i-n";
  ASSERT_EQ(t->set_rules(1000), "");
  auto saved = run_ok(Spawn{{"iptables-save", "-t", "filter"}, node});
  size_t drops = 0;
  for (size_t p = 0; (p = saved.find("-j DROP", p)) != std::string::npos; ++p) ++drops;
  EXPECT_EQ(drops, 1000u);
  EXPECT_NE(saved.find("RELATED,ESTABLISHED -j ACCEPT"), std::string::npos);
  // conntrack's ESTABLISHED accept comes before the first of the N rules
  EXPECT_LT(saved.find("RELATED,ESTABLISHED"), saved.find("-j DROP"));
  auto nat = run_ok(Spawn{{"iptables-save", "-t", "nat"}, node});
  EXPECT_NE(nat.find("MASQUERADE"), std::string::npos);
  auto sysctl = run_ok(Spawn{{"cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"}, node});
  EXPECT_EQ(sysctl, "1\n");
  EXPECT_EQ(run(Spawn{{"iptables-save"}}).out, root_rules) << "root namespace rules changed";
  Measurement m = measure_crr(*t, test::tools(), Placement{}, 1);
  EXPECT_EQ(m.error, "");
  EXPECT_GT(m.values["crr_cps"], 0);
}

TEST(Topology, RuleGeneratorsNeverMatchTheBenchTraffic) {
  auto y = policy_yaml(3, "10.204.0.2");
  EXPECT_NE(y.find("peer: 172.16.0.0/32"), std::string::npos);
  EXPECT_NE(y.find("peer: 172.16.0.2/32"), std::string::npos);
  EXPECT_EQ(y.find("peer: 172.16.0.3/32"), std::string::npos);
  EXPECT_NE(y.find("{action: allow, proto: tcp, port: 5202, peer: 10.204.0.2}"), std::string::npos);
  EXPECT_NE(y.find("default: deny"), std::string::npos);
  std::set<std::string> peers;
  for (int i = 0; i < 10000; ++i) peers.insert(nonmatching_peer(i));
  EXPECT_EQ(peers.size(), 10000u);
  EXPECT_EQ(nonmatching_peer(65536), "172.17.0.0/32");
  auto r = iptables_rules(2, "10.203.0.2", "10.203.0.3", "10.203.0.0/24");
  EXPECT_NE(r.find("-A FORWARD -s 172.16.0.1/32 -d 10.203.0.3/32 -p tcp -m tcp --dport 22 -j DROP"),
            std::string::npos);
  EXPECT_EQ(r.find("172.16.0.2/32"), std::string::npos);
}

}  // namespace
}  // namespace ebpfnet::bench

namespace ebpfnet::bench {
namespace {

// The ebpfnet line's rules are real: `policy show` holds the N deny rules and
// the allow rules, the bench traffic passes, and a port no rule allows is
// refused by the default deny.
TEST(Topology, EbpfnetPolicyRulesAreInForce) {
  EBPFNET_REQUIRE_ROOT();
  test::TempConfig tc;
  auto t = make_topology("ebpfnet", tc.cfg);
  std::string why = t->set_rules(1000);
  if (why.find("policy unavailable") != std::string::npos)
    GTEST_SKIP() << "SKIPPED: this build has no `ebpfnet policy`";
  ASSERT_EQ(why, "");
  std::string node = tc.cfg.prefix + "e";
  auto out = run_ok(Spawn{{EBPFNET_BIN, "--state-dir", (tc.cfg.state_dir / "ebpfnet-state").string(),
                           "--node", node, "-o", "json", "policy", "show", t->server_ns()}});
  auto j = nlohmann::json::parse(out);
  if (j.is_array()) j = j.at(0);
  const auto& rules = j.at("policy").at("ingress").at("rules");
  EXPECT_EQ(rules.size(), 1004u) << "1000 deny rules + 4 allow rules";
  EXPECT_EQ(j["policy"]["ingress"]["default"], "deny");
  Measurement rr = measure_rr(*t, test::tools(), Placement{0, 0}, 1);
  EXPECT_EQ(rr.error, "");
  EXPECT_GT(rr.values["rr_tps"], 0);
  // A TCP server on a port no rule allows: the client's connection must fail.
  Background server(Spawn{{test::tools().tcp_crr, "server", "5999", "20"}, t->server_ns()});
  ASSERT_TRUE(wait_bound(server, false, 5999));
  Result r = run(Spawn{{test::tools().tcp_crr, "client", t->server_ip(), "5999", "1", "1", "3"},
                       t->client_ns()},
                 20);
  auto cj = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
  EXPECT_EQ(cj["connections"], 0) << r.out;
}

}  // namespace
}  // namespace ebpfnet::bench
