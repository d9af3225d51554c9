// ebpfnet cluster agent|peers as users run them: inside the sandbox's client
// namespace (ip netns exec), never from the root namespace.
#include <gtest/gtest.h>
#include <signal.h>

#include "cluster_fixture.hpp"
#include "ebpfnet/cluster/etcd_client.hpp"
#include "ebpfnet/cluster/registry.hpp"

namespace ebpfnet::test {
namespace {

using namespace cluster;
using namespace std::chrono_literals;

class ClusterCli : public EtcdTest {
 protected:
  CmdResult cli(const std::vector<std::string>& args) {
    std::vector<std::string> full = {ebpfnet_bin()};
    full.insert(full.end(), args.begin(), args.end());
    return run_in(etcd_->client_ns(), full, 20);
  }
  nlohmann::json peers() {
    CmdResult r = cli({"-o", "json", "cluster", "peers", "--etcd", etcd_->url(), "--cluster", cluster_});
    if (r.code != 0) throw std::runtime_error("cluster peers: " + r.err);
    return nlohmann::json::parse(r.out);
  }
  std::vector<std::string> names(const nlohmann::json& j) {
    std::vector<std::string> out;
    for (const auto& n : j["nodes"]) out.push_back(n["name"]);
    return out;
  }
};

TEST_F(ClusterCli, AgentJoinsPeersListsItAndSigtermRevokesItsLease) {
  // --ttl 30: the record going at once can only be the revoke.
  Child agent({"ip", "netns", "exec", etcd_->client_ns(), ebpfnet_bin(), "--node", "cli-1", "cluster", "agent",
               "--etcd", etcd_->url(), "--cluster", cluster_, "--underlay", "198.18.0.21", "--cidr",
               "10.250.0.0/16", "--pool-size", "26", "--ttl", "30", "--mode", "native"});
  ASSERT_TRUE(wait_until([&] { return names(peers()) == std::vector<std::string>{"cli-1"}; }, 10s));
  RunningAgent other(options("lib-2", "198.18.0.22"));
  // The library agent asks for 10.244.0.0/16: the cluster is the CLI's 10.250.0.0/16.
  EXPECT_TRUE(wait_until([&] { return other.ended(); }, 10s));
  EXPECT_NE(other.error().find("10.250.0.0/16"), std::string::npos) << other.error();

  auto o = options("lib-3", "198.18.0.23");
  o.cidr.reset();  // joins whatever the cluster is
  RunningAgent third(o);
  ASSERT_TRUE(third.joined()) << third.error();
  ASSERT_TRUE(wait_until([&] { return third.has_peer("cli-1"); }, 5s));
  const auto j = peers();
  EXPECT_EQ(j["cidr"], "10.250.0.0/16");
  EXPECT_EQ(j["pool_prefix"], 26);
  ASSERT_EQ(j["nodes"].size(), 2u) << j.dump();
  const auto& cli1 = j["nodes"][0];
  EXPECT_EQ(cli1["name"], "cli-1");
  EXPECT_EQ(cli1["underlay"], "198.18.0.21");
  EXPECT_EQ(cli1["mode"], "native");
  EXPECT_EQ(cli1["pool"].get<std::string>().substr(0, 7), "10.250.");
  EXPECT_EQ(cli1["pool"].get<std::string>().substr(cli1["pool"].get<std::string>().size() - 3), "/26");

  EXPECT_EQ(agent.stop(SIGTERM, 5s), 0);
  EXPECT_TRUE(wait_until([&] { return !third.has_peer("cli-1"); }, 2s)) << "the lease was not revoked";
  EXPECT_EQ(names(peers()), std::vector<std::string>{"lib-3"});
}

TEST_F(ClusterCli, PeersTableAndIgnoredRecords) {
  EtcdClient c(etcd_->url());
  Registry(c, cluster_).ensure_config(ClusterConfig{*Ipv4Cidr::parse("10.244.0.0/16"), 24});
  c.put(Keys(cluster_).node("n1"), encode(NodeRecord{"n1", *Ipv4::parse("198.18.0.31"),
                                                     *Ipv4Cidr::parse("10.244.7.0/24"), std::nullopt, Mode::vxlan}));
  c.put(Keys(cluster_).node("junk"), "{\"name\":\"junk\"}\n\x1b[31m");
  CmdResult r = cli({"cluster", "peers", "--etcd", etcd_->url(), "--cluster", cluster_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("10.244.0.0/16, pools of /24"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("n1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10.244.7.0/24"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ignored /ebpfnet/" + cluster_ + "/nodes/junk: not a JSON object"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "an escape sequence from etcd reached the terminal";
  const auto j = peers();
  EXPECT_EQ(names(j), std::vector<std::string>{"n1"});
  ASSERT_EQ(j["ignored"].size(), 1u);
}

TEST_F(ClusterCli, ClearErrorsForBadInputAndAnEtcdThatDoesNotAnswer) {
  const std::string nobody = "http://" + etcd_->address() + ":2390";
  CmdResult r = cli({"cluster", "peers", "--etcd", nobody, "--cluster", cluster_});
  EXPECT_EQ(r.code, 1);
  expect_one_line_error(r);
  EXPECT_NE(r.err.find("etcd " + nobody + " /v3/kv/range: connection refused"), std::string::npos) << r.err;

  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const std::vector<Case> cases = {
      {{"cluster", "peers", "--etcd", etcd_->url(), "--cluster", "No/Good"}, "cluster name"},
      {{"cluster", "peers", "--etcd", "198.18.0.1:2379", "--cluster", "x"}, "http://ADDR:PORT"},
      {{"--node", "n1", "cluster", "agent", "--etcd", etcd_->url(), "--cluster", "x", "--underlay", "nope"}, "--underlay"},
      {{"--node", "n1", "cluster", "agent", "--etcd", etcd_->url(), "--cluster", "x", "--underlay", "224.0.0.1"}, "unicast"},
      {{"--node", "n1", "cluster", "agent", "--etcd", etcd_->url(), "--cluster", "x", "--underlay", "198.18.0.5",
        "--cidr", "10.0.0.0/33"}, "prefix"},
      {{"--node", "n1", "cluster", "agent", "--etcd", etcd_->url(), "--cluster", "x", "--underlay", "198.18.0.5",
        "--cidr", "10.0.0.0/16", "--pool-size", "12"}, "--pool-size"},
      {{"--node", "N_1", "cluster", "agent", "--etcd", etcd_->url(), "--cluster", "x", "--underlay", "198.18.0.5"}, "node name"},
      {{"cluster", "agent", "--etcd", etcd_->url(), "--cluster", "x"}, "--underlay"},
      // --node after the subcommand is the same global option.
      {{"cluster", "agent", "--etcd", etcd_->url(), "--cluster", "x", "--node", "Bad_Name", "--underlay", "198.18.0.5"},
       "node name 'Bad_Name'"},
  };
  for (const auto& c : cases) {
    CmdResult e = cli(c.args);
    EXPECT_EQ(e.code, 2) << joined(c.args) << ": " << e.err;
    expect_one_line_error(e);
    EXPECT_NE(e.err.find(c.says), std::string::npos) << joined(c.args) << ": " << e.err;
  }
  // A cluster that does not exist, joined without --cidr: not found, at once.
  r = cli({"--node", "n1", "cluster", "agent", "--etcd", etcd_->url(), "--cluster", cluster_, "--underlay", "198.18.0.5"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("give --cidr"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ebpfnet::test
