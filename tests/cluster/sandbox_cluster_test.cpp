// ebpfnet cluster create|delete|start|status as users run them: a whole
// cluster in sandbox namespaces (an underlay router, etcd, N nodes with
// their agents), real traffic between endpoints of different nodes (1 MiB
// at an underlay MTU of 1500 among it), an
// agent killed (its peer goes from the others within TTL + 1 s, map entry
// included) and one restarted (traffic never stops), a stale overlay peer
// reconciled at agent start, a failed create and a delete that leave nothing.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "connection.hpp"
#include "ebpfnet/cluster/sandbox.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/probe.hpp"
#include "map_dump.hpp"
#include "support.hpp"

namespace ebpfnet::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kTtl = 3;

// A process that ran and has not ended (a zombie nobody reaped has ended).
bool running(pid_t pid) {
  const std::string st = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = st.rfind(')');
  return close != std::string::npos && close + 2 < st.size() && st[close + 2] != 'Z';
}
constexpr uint16_t kPort = 7411;

class SandboxCluster : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    env_.state_root = state_.path();
    name_ = unique("sc");
  }
  void TearDown() override {
    if (!created_) return;
    // Also when the test failed midway: nothing of the cluster may outlive it.
    CmdResult r = cli({"cluster", "delete", name_});
    if (r.code != 0 && r.err.find("no sandbox cluster") == std::string::npos) {
      ADD_FAILURE() << "cluster delete: " << r.err;
      try {
        cluster::delete_sandbox(env_, name_);
      } catch (const std::exception&) {
      }
    }
  }

  CmdResult cli(const std::vector<std::string>& args, int timeout_s = 90) {
    std::vector<std::string> full = {ebpfnet_bin(), "--state-dir", state_.path().string()};
    full.insert(full.end(), args.begin(), args.end());
    return run(full, "", timeout_s);
  }
  nlohmann::json cli_json(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"-o", "json"};
    full.insert(full.end(), args.begin(), args.end());
    CmdResult r = cli(full);
    if (r.code != 0) throw std::runtime_error("ebpfnet " + joined(args) + ": " + r.err);
    return nlohmann::json::parse(r.out);
  }
  nlohmann::json create(int nodes) {
    created_ = true;
    const auto t0 = Clock::now();
    nlohmann::json j = cli_json({"cluster", "create", name_, "--nodes", std::to_string(nodes), "--ttl",
                                 std::to_string(kTtl)});
    std::cout << "cluster create, " << nodes << " nodes: "
              << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() << " ms\n";
    return j;
  }
  nlohmann::json status() { return cli_json({"cluster", "status", name_}); }
  std::string node(int k) const { return name_ + "-" + std::to_string(k); }
  Node open(int k) { return Node(env_, node(k)); }
  EndpointRecord endpoint(int k, const std::string& prefix) {
    return open(k).add_endpoint({unique(prefix), std::nullopt, std::nullopt, "eth0"});
  }
  static Netns ns(const EndpointRecord& e) { return Netns::open_path(e.netns_path); }
  const nlohmann::json& node_status(const nlohmann::json& st, int k) {
    for (const auto& n : st.at("nodes"))
      if (n.at("name") == node(k)) return n;
    throw std::runtime_error("no node " + node(k) + " in " + st.dump());
  }
  // Node k's overlay holds a tunnel for pool, in its state and its pinned map.
  bool has_tunnel(int k, const std::string& pool) {
    auto o = open(k).overlay();
    if (!o) return false;
    for (const auto& p : o->peers)
      if (p.pool.str() == pool) return true;
    return false;
  }
  size_t tunnel_map_entries(int k) {
    UniqueFd fd(bpf_obj_get((open(k).pin_dir() / "maps" / "tunnel").c_str()));
    if (!fd.valid()) throw std::runtime_error("no pinned tunnel map for " + node(k));
    return dump_map(fd.get()).size();
  }

  TempStateDir state_;
  Env env_;
  std::string name_;
  bool created_ = false;
};

TEST_F(SandboxCluster, EndpointsOnThreeNodesTalkAndAKilledAgentsPeerGoesWithinTtl) {
  const nlohmann::json made = create(3);
  ASSERT_EQ(made.at("nodes").size(), 3u) << made.dump();
  for (int k = 1; k <= 3; ++k) {
    const auto& n = node_status(made, k);
    EXPECT_TRUE(n.at("registered").get<bool>()) << n.dump();
    EXPECT_TRUE(n.at("agent").at("alive").get<bool>()) << n.dump();
    EXPECT_EQ(n.at("peers").size(), 2u) << n.dump();
    EXPECT_GT(n.at("ttl_left").get<int>(), 0) << n.dump();
    for (const auto& p : n.at("peers")) EXPECT_FALSE(p.at("node").is_null()) << "no stale peer: " << n.dump();
  }
  EXPECT_TRUE(made.at("etcd").at("alive").get<bool>());
  EXPECT_EQ(Node::list(env_), (std::vector<std::string>{node(1), node(2), node(3)})) << "ordinary nodes";

  const EndpointRecord a = endpoint(1, "sa"), b = endpoint(2, "sb"), c = endpoint(3, "sc");
  ProbeResult tcp = probe_tcp(ns(a), ns(b), b.ip, kPort);
  ASSERT_TRUE(tcp.ok) << tcp.error;
  EXPECT_EQ(tcp.peer_saw, a.ip) << "the overlay carries the endpoint's own address";
  ProbeResult udp = probe_udp(ns(c), ns(a), a.ip, kPort);
  ASSERT_TRUE(udp.ok) << udp.error;
  ProbeResult icmp = probe_icmp(ns(b), c.ip);
  ASSERT_TRUE(icmp.ok) << icmp.error;
  // 1 MiB across the routed underlay at MTU 1500: the tunnel's 1450 is found
  // by PMTU discovery through the node, past the underlay router.
  Connection bulk = connect_tcp("a to c", ns(a), c.ip, kPort + 1, ns(c), c.ip, kPort + 1);
  const auto took = transfer(bulk, 1 << 20, 20s);
  std::cout << "1 MiB from node 1 to node 3: " << took.count() << " us\n";

  // The agent of node 3 dies without a word: its lease runs out, and nodes
  // 1 and 2 drop its pool (state and pinned map) within TTL + 1 s.
  const std::string pool3 = node_status(made, 3).at("pool");
  const pid_t agent3 = node_status(made, 3).at("agent").at("pid").get<pid_t>();
  const size_t entries_before = tunnel_map_entries(1);
  ASSERT_EQ(entries_before, 2u);
  const auto killed = Clock::now();
  ASSERT_EQ(::kill(agent3, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return !has_tunnel(1, pool3) && !has_tunnel(2, pool3); }, std::chrono::seconds(kTtl + 3)))
      << "node 3's peer is still programmed";
  const auto gone_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  std::cout << "agent killed -> its pool gone from both peers: " << gone_ms << " ms (TTL " << kTtl << " s)\n";
  EXPECT_LE(gone_ms, (kTtl + 1) * 1000);
  EXPECT_EQ(tunnel_map_entries(1), 1u) << "no stale tunnel map entry";
  EXPECT_EQ(tunnel_map_entries(2), 1u) << "no stale tunnel map entry";
  EXPECT_FALSE(probe_tcp(ns(a), ns(c), c.ip, kPort, ProbeTimeout(500)).ok);
  const nlohmann::json after = status();
  EXPECT_FALSE(node_status(after, 3).at("agent").at("alive").get<bool>());
  EXPECT_FALSE(node_status(after, 3).at("registered").get<bool>());
  EXPECT_TRUE(probe_tcp(ns(a), ns(b), b.ip, kPort).ok) << "the others still talk";

  // Started again it registers again, and its peers take it back.
  const auto restarted = Clock::now();
  const nlohmann::json started = cli_json({"cluster", "start", name_});
  EXPECT_EQ(started.at("started"), nlohmann::json::array({node(3)}));
  ASSERT_TRUE(wait_until([&] { return has_tunnel(1, pool3) && has_tunnel(2, pool3); }, 5s));
  std::cout << "agent started -> its pool programmed on both peers: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - restarted).count() << " ms\n";
  tcp = probe_tcp(ns(a), ns(c), c.ip, kPort);
  EXPECT_TRUE(tcp.ok) << tcp.error;
}

// An agent restarted (killed, then started within its TTL) under traffic:
// its peers never drop it, and a connection across nodes never misses a
// round trip.
TEST_F(SandboxCluster, AgentRestartUnderTrafficLosesNothing) {
  const nlohmann::json made = create(2);
  const EndpointRecord a = endpoint(1, "ra"), b = endpoint(2, "rb");
  Connection conn = connect_tcp("a to b", ns(a), b.ip, kPort, ns(b), b.ip, kPort);
  ASSERT_TRUE(conn.echo());
  const std::string pool1 = node_status(made, 1).at("pool");
  std::atomic<bool> stop{false};
  std::atomic<int> echoes{0}, lost{0}, peer_missing{0};
  std::thread traffic([&] {
    while (!stop) {
      (conn.echo() ? echoes : lost)++;
      if (!has_tunnel(2, pool1)) peer_missing++;
      std::this_thread::sleep_for(20ms);
    }
  });
  const pid_t agent1 = node_status(made, 1).at("agent").at("pid").get<pid_t>();
  std::this_thread::sleep_for(200ms);
  ::kill(agent1, SIGKILL);
  std::this_thread::sleep_for(500ms);
  CmdResult r = cli({"cluster", "start", name_});
  EXPECT_EQ(r.code, 0) << r.err;
  // Past the old lease's TTL: the record moved to the new agent's lease.
  std::this_thread::sleep_for(std::chrono::seconds(kTtl + 1));
  stop = true;
  traffic.join();
  std::cout << "agent restart under traffic: " << echoes << " round trips, " << lost << " lost\n";
  EXPECT_EQ(lost, 0);
  EXPECT_GT(echoes, 20);
  EXPECT_EQ(peer_missing, 0) << "node 2 never dropped node 1";
  const nlohmann::json now = status();
  const auto& n1 = node_status(now, 1);
  EXPECT_TRUE(n1.at("registered").get<bool>()) << n1.dump();
  EXPECT_NE(n1.at("agent").at("pid").get<pid_t>(), agent1);
  EXPECT_TRUE(n1.at("agent").at("alive").get<bool>());
}

// A tunnel peer programmed on a node that etcd does not know (left behind
// while no agent ran) is removed when the agent starts.
TEST_F(SandboxCluster, StaleOverlayPeerIsRemovedAtAgentStart) {
  const nlohmann::json made = create(2);
  const pid_t agent1 = node_status(made, 1).at("agent").at("pid").get<pid_t>();
  ASSERT_EQ(::kill(agent1, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return !node_status(status(), 1).at("agent").at("alive").get<bool>(); }, 5s));
  const auto stale = *Ipv4Cidr::parse("10.244.200.0/24");
  open(1).tunnel_add({stale, *Ipv4::parse("198.18.9.2")});
  ASSERT_TRUE(has_tunnel(1, stale.str()));
  ASSERT_EQ(cli({"cluster", "start", name_}).code, 0);
  EXPECT_TRUE(wait_until([&] { return !has_tunnel(1, stale.str()); }, 5s)) << "the stale peer is still programmed";
  EXPECT_TRUE(has_tunnel(1, node_status(made, 2).at("pool").get<std::string>())) << "the live peer stays";
  EXPECT_EQ(tunnel_map_entries(1), 1u);
}

// delete leaves nothing: no namespace, pin, process or file of the cluster.
TEST_F(SandboxCluster, DeleteLeavesNothing) {
  const nlohmann::json made = create(2);
  const EndpointRecord a = endpoint(1, "da");
  std::vector<pid_t> pids = {made.at("etcd").at("pid").get<pid_t>()};
  for (const auto& n : made.at("nodes")) pids.push_back(n.at("agent").at("pid").get<pid_t>());
  const CmdResult r = cli({"cluster", "delete", name_});
  ASSERT_EQ(r.code, 0) << r.err;
  created_ = false;
  for (const auto& n : netns::list()) EXPECT_NE(n.rfind(name_, 0), 0u) << "namespace " << n << " is left";
  EXPECT_FALSE(netns::exists(a.netns)) << "the endpoint's namespace is left";
  for (int k = 1; k <= 2; ++k) EXPECT_FALSE(std::filesystem::exists(open(k).pin_dir())) << node(k) << "'s pins";
  for (pid_t p : pids) EXPECT_FALSE(running(p)) << "pid " << p << " lives";
  EXPECT_TRUE(Node::list(env_).empty());
  EXPECT_FALSE(std::filesystem::exists(state_.path() / ".clusters" / name_));
  const CmdResult again = cli({"cluster", "delete", name_});
  EXPECT_EQ(again.code, static_cast<int>(Errc::not_found)) << again.err;
  expect_one_line_error(again);
}

// etcd gone (killed): forwarding goes on on what is programmed, status
// says etcd does not answer and still shows the nodes, and delete works.
TEST_F(SandboxCluster, TrafficFlowsWithEtcdGoneAndDeleteStillWorks) {
  const nlohmann::json made = create(2);
  const EndpointRecord a = endpoint(1, "ea"), b = endpoint(2, "eb");
  Connection conn = connect_tcp("a to b", ns(a), b.ip, kPort, ns(b), b.ip, kPort);
  ASSERT_EQ(::kill(made.at("etcd").at("pid").get<pid_t>(), SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return !status().at("etcd").at("alive").get<bool>(); }, 5s));
  std::this_thread::sleep_for(std::chrono::seconds(kTtl + 1));  // past every lease's TTL
  EXPECT_TRUE(conn.echo()) << "an established connection goes on";
  ProbeResult tcp = probe_tcp(ns(b), ns(a), a.ip, kPort + 2);
  EXPECT_TRUE(tcp.ok) << "new connections too: " << tcp.error;
  const nlohmann::json st = status();
  EXPECT_TRUE(st.at("etcd").contains("error")) << st.dump();
  EXPECT_EQ(node_status(st, 1).at("peers").size(), 1u) << "the agent keeps the peers it knew: " << st.dump();
  EXPECT_TRUE(node_status(st, 1).at("agent").at("alive").get<bool>()) << "the agent waits for etcd";
  const CmdResult r = cli({"cluster", "delete", name_});
  EXPECT_EQ(r.code, 0) << r.err;
  created_ = r.code != 0;
  for (const auto& n : netns::list()) EXPECT_NE(n.rfind(name_, 0), 0u) << "namespace " << n << " is left";
}

// A create killed (SIGKILL) midway leaves a record that delete finishes:
// inside a node's create (EBPFNET_FAILPOINT names the node step, the Nth
// time with #N), or by the test once the first node's namespace exists.
class KilledSandboxCreate : public SandboxCluster, public testing::WithParamInterface<std::string> {};

TEST_P(KilledSandboxCreate, DeleteFinishesIt) {
  created_ = true;
  const std::string point = GetParam() == "timed" ? "" : GetParam();
  std::vector<std::string> argv = {"/usr/bin/env"};
  if (!point.empty()) argv.push_back("EBPFNET_FAILPOINT=" + point);
  for (const auto& a : {ebpfnet_bin(), std::string("--state-dir"), state_.path().string(), std::string("cluster"),
                        std::string("create"), name_, std::string("--nodes"), std::string("2")})
    argv.push_back(a);
  Child creating(argv);
  if (point.empty()) {
    ASSERT_TRUE(wait_until([&] { return netns::exists(node(1)); }, 20s));
    creating.stop(SIGKILL, 5s);
  } else {
    EXPECT_EQ(creating.stop(0, 30s), 128 + SIGKILL) << "create reached " << point << " and died there";
  }
  EXPECT_TRUE(std::filesystem::exists(state_.path() / ".clusters" / name_ / "cluster.json"));
  const CmdResult r = cli({"cluster", "delete", name_});
  EXPECT_EQ(r.code, 0) << r.err;
  created_ = r.code != 0;
  for (const auto& n : netns::list()) EXPECT_NE(n.rfind(name_, 0), 0u) << "namespace " << n << " is left";
  for (int k = 1; k <= 2; ++k) EXPECT_FALSE(std::filesystem::exists(open(k).pin_dir())) << node(k) << "'s pins";
  EXPECT_TRUE(Node::list(env_).empty());
  EXPECT_TRUE(entries(state_.path()) == std::vector<std::string>{".clusters"}) << "nothing of a node is left";
  EXPECT_FALSE(std::filesystem::exists(state_.path() / ".clusters" / name_));
}

INSTANTIATE_TEST_SUITE_P(Points, KilledSandboxCreate, testing::Values("netns", "uplink", "uplink#2", "timed"),
                         step_name);

// etcd missing from PATH: create fails after it made the underlay, and
// takes back everything it made.
TEST_F(SandboxCluster, FailedCreateTakesBackWhatItMade) {
  const CmdResult r = run({"/usr/bin/env", "PATH=/nonexistent", ebpfnet_bin(), "--state-dir", state_.path().string(),
                           "cluster", "create", name_, "--nodes", "2"});
  EXPECT_EQ(r.code, static_cast<int>(Errc::environment)) << r.err;
  EXPECT_NE(r.err.find("etcd"), std::string::npos) << r.err;
  for (const auto& n : netns::list()) EXPECT_NE(n.rfind(name_, 0), 0u) << "namespace " << n << " is left";
  EXPECT_FALSE(std::filesystem::exists(state_.path() / ".clusters" / name_));
}

}  // namespace
}  // namespace ebpfnet::test
