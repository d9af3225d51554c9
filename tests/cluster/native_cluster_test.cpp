// cluster create --mode native as users run it: three sandbox nodes on one
// underlay segment, each with its BIRD announcing its pool over an iBGP full
// mesh. Real traffic between endpoints of different nodes, unmasqueraded and
// unencapsulated; BIRD's routes in every node's table; BIRD killed and an
// agent killed under a connection (graceful restart: the peers keep the
// route, no round trip lost); a node whose agent dies leaves its peers'
// tables; BIRD missing is a clear error. Strict rp_filter on every node. Prints what it measures.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <thread>

#include "connection.hpp"
#include "ebpfnet/cluster/bird.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/probe.hpp"
#include "support.hpp"

namespace ebpfnet::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kTtl = 3;
constexpr uint16_t kPort = 7511;

long ms_since(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

class NativeCluster : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    if (std::string why = cluster::Bird::missing(); !why.empty()) GTEST_SKIP() << "SKIPPED LOUDLY: " << why;
    env_.state_root = state_.path();
    name_ = unique("bg");
  }
  void TearDown() override {
    if (!created_) return;
    CmdResult r = cli({"cluster", "delete", name_});
    if (r.code != 0 && r.err.find("no sandbox cluster") == std::string::npos) ADD_FAILURE() << "delete: " << r.err;
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
  std::string node(int k) const { return name_ + "-" + std::to_string(k); }
  const nlohmann::json& node_status(const nlohmann::json& st, int k) {
    for (const auto& n : st.at("nodes"))
      if (n.at("name") == node(k)) return n;
    throw std::runtime_error("no node " + node(k));
  }
  EndpointRecord endpoint(int k, const std::string& prefix) {
    return Node(env_, node(k)).add_endpoint({unique(prefix), std::nullopt, std::nullopt, "eth0"});
  }
  static Netns ns(const EndpointRecord& e) { return Netns::open_path(e.netns_path); }
  // Node k's table routes pool via its owner's underlay address.
  bool has_route(int k, const std::string& pool, const std::string& via) {
    for (const auto& r : Netlink::in(Netns::open_named(node(k))).routes())
      if (r.dst.str() == pool && r.via && r.via->str() == via) return true;
    return false;
  }
  pid_t bird_pid(int k) {
    std::ifstream in(state_.path() / node(k) / "bird.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }
  bool established(int k, size_t peers) {
    const auto st = cli_json({"cluster", "status", name_});
    size_t up = 0;
    for (const auto& b : node_status(st, k).at("bgp")) up += b.at("info") == "Established";
    return up == peers;
  }

  TempStateDir state_;
  Env env_;
  std::string name_;
  bool created_ = false;
};

TEST_F(NativeCluster, ThreeNodesRouteOverBgpSurviveRestartsAndDropARemovedNode) {
  created_ = true;
  auto t0 = Clock::now();
  const nlohmann::json made = cli_json({"cluster", "create", name_, "--nodes", "3", "--mode", "native", "--ttl",
                                        std::to_string(kTtl)});
  std::cout << "cluster create --mode native, 3 nodes (every route in every table): " << ms_since(t0) << " ms\n";
  ASSERT_EQ(made.at("mode"), "native");
  std::map<int, std::pair<std::string, std::string>> pool_via;  // k -> pool, underlay
  for (int k = 1; k <= 3; ++k) {
    const auto& n = node_status(made, k);
    pool_via[k] = {n.at("pool"), n.at("underlay")};
    EXPECT_EQ(n.at("peers").size(), 2u) << n.dump();
    for (const auto& p : n.at("peers")) EXPECT_FALSE(p.at("node").is_null()) << n.dump();
    EXPECT_EQ(n.at("bgp").size(), 2u) << n.dump();
  }
  // BIRD's routes are in each node's table: each peer's pool via that peer.
  for (int k = 1; k <= 3; ++k)
    for (int j = 1; j <= 3; ++j)
      if (j != k) {
        EXPECT_TRUE(has_route(k, pool_via[j].first, pool_via[j].second)) << node(k) << " to " << node(j);
      }
  ASSERT_TRUE(wait_until([&] { return established(1, 2) && established(2, 2) && established(3, 2); }, 10s));
  for (int k = 1; k <= 3; ++k) EXPECT_FALSE(Node(env_, node(k)).overlay()) << "no encapsulation device";

  // Strict reverse-path filtering in every node, as many distributions set
  // it: the native path must not depend on it being off.
  for (int k = 1; k <= 3; ++k)
    for (const char* dev : {"all", "default", "eth0"})
      netns::write_sysctl(Netns::open_named(node(k)), std::string("net/ipv4/conf/") + dev + "/rp_filter", "1");
  const EndpointRecord a = endpoint(1, "na"), b = endpoint(2, "nb"), c = endpoint(3, "nc");
  ProbeResult tcp = probe_tcp(ns(a), ns(b), b.ip, kPort);
  ASSERT_TRUE(tcp.ok) << tcp.error;
  EXPECT_EQ(tcp.peer_saw, a.ip) << "not masqueraded: the peer sees the endpoint's own address";
  ProbeResult udp = probe_udp(ns(c), ns(a), a.ip, kPort);
  ASSERT_TRUE(udp.ok) << udp.error;
  EXPECT_EQ(udp.peer_saw, c.ip);
  ProbeResult icmp = probe_icmp(ns(b), c.ip);
  ASSERT_TRUE(icmp.ok) << icmp.error;
  Connection conn = connect_tcp("a to b", ns(a), b.ip, kPort + 1, ns(b), b.ip, kPort + 1);
  {
    const auto rr0 = Clock::now();
    int n = 0;
    while (n < 200 && conn.echo()) ++n;
    ASSERT_EQ(n, 200);
    std::cout << "cross-node TCP round trip (node 1 to node 2, native): "
              << std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - rr0).count() / n << " us\n";
  }

  // Under a connection from node 1 to node 2: BIRD of node 2 killed (its
  // agent starts it again with graceful restart recovery), then the agent
  // of node 2 killed and started. Node 1 keeps node 2's route throughout.
  std::atomic<bool> stop{false};
  std::atomic<int> echoes{0}, lost{0}, route_missing{0};
  std::thread traffic([&] {
    while (!stop) {
      (conn.echo() ? echoes : lost)++;
      if (!has_route(1, pool_via[2].first, pool_via[2].second)) route_missing++;
      std::this_thread::sleep_for(20ms);
    }
  });
  const pid_t bird2 = bird_pid(2);
  ASSERT_GT(bird2, 0);
  ASSERT_EQ(::kill(bird2, SIGKILL), 0);
  t0 = Clock::now();
  const bool back = wait_until([&] { return bird_pid(2) != bird2 && bird_pid(2) > 0 && established(1, 2); }, 20s);
  std::cout << "bird killed on node 2 -> restarted and its session to node 1 established again: " << ms_since(t0)
            << " ms\n";
  EXPECT_TRUE(back);
  const pid_t agent2 = node_status(made, 2).at("agent").at("pid").get<pid_t>();
  ASSERT_EQ(::kill(agent2, SIGKILL), 0);
  std::this_thread::sleep_for(300ms);
  CmdResult r = cli({"cluster", "start", name_});
  EXPECT_EQ(r.code, 0) << r.err;
  std::this_thread::sleep_for(std::chrono::seconds(kTtl + 1));
  stop = true;
  traffic.join();
  std::cout << "bird and agent restarts under traffic: " << echoes << " round trips, " << lost << " lost, route to "
            << "node 2's pool missing on node 1 in " << route_missing << " checks\n";
  EXPECT_GT(echoes, 50);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(route_missing, 0) << "graceful restart: the peer keeps the route";
  EXPECT_TRUE(established(1, 2));

  // Node 3's agent dies: its lease runs out, the others' BIRD lose the
  // session from their configuration and the route leaves their tables.
  const pid_t agent3 = node_status(made, 3).at("agent").at("pid").get<pid_t>();
  ASSERT_EQ(::kill(agent3, SIGKILL), 0);
  t0 = Clock::now();
  const auto [pool3, via3] = pool_via[3];
  ASSERT_TRUE(wait_until([&] { return !has_route(1, pool3, via3) && !has_route(2, pool3, via3); },
                         std::chrono::seconds(kTtl + 3)));
  const long gone = ms_since(t0);
  std::cout << "agent of node 3 killed -> its pool gone from both peers' tables: " << gone << " ms (TTL " << kTtl
            << " s)\n";
  EXPECT_LE(gone, (kTtl + 2) * 1000);

  // It comes back: the peers learn its pool again (the join's propagation).
  r = cli({"cluster", "start", name_});
  ASSERT_EQ(r.code, 0) << r.err;
  t0 = Clock::now();
  ASSERT_TRUE(wait_until([&] { return has_route(1, pool3, via3) && has_route(2, pool3, via3); }, 15s));
  std::cout << "agent of node 3 started -> its pool in both peers' tables: " << ms_since(t0) << " ms\n";
  tcp = probe_tcp(ns(a), ns(c), c.ip, kPort + 2);
  EXPECT_TRUE(tcp.ok) << tcp.error;
}

TEST_F(NativeCluster, WithoutBirdNativeIsRefusedBeforeAnythingIsMade) {
  // PATH without /usr/sbin, where Debian's bird2 installs bird and birdc.
  CmdResult r = run({"/usr/bin/env", "PATH=/usr/bin:/bin", ebpfnet_bin(), "--state-dir", state_.path().string(),
                     "cluster", "create", name_, "--nodes", "2", "--mode", "native"});
  EXPECT_EQ(r.code, static_cast<int>(Errc::environment)) << r.err;
  EXPECT_NE(r.err.find("--mode native needs BIRD (bird and birdc): apt-get install bird2"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(state_.path() / ".clusters" / name_));
  EXPECT_FALSE(netns::exists(name_ + "-ul")) << "nothing made";
  EXPECT_TRUE(Node::list(env_).empty());
}

}  // namespace
}  // namespace ebpfnet::test
