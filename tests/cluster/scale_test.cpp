// Past this machine by simulation: 5,000 node records (Kubernetes' node
// limit) written straight into etcd, then listed by an agent. Prints the
// time and the memory it takes; asserts only that every record arrives.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "cluster_fixture.hpp"
#include "ebpfnet/cluster/registry.hpp"

namespace ebpfnet::test {
namespace {

using namespace cluster;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

TEST_F(EtcdTest, FiveThousandNodesAreListedAndWatched) {
  constexpr int kNodes = 5000;
  const Keys keys(cluster_);
  EtcdClient c(etcd_->url());
  Registry(c, cluster_).ensure_config(ClusterConfig{*Ipv4Cidr::parse("10.0.0.0/8"), 24});
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < kNodes; ++i) {
    const std::string name = "sim-" + std::to_string(i);
    const Ipv4 underlay((198u << 24) | (18u << 16) | static_cast<uint32_t>(1 + i));
    const Ipv4Cidr pool{Ipv4((10u << 24) | static_cast<uint32_t>((1 + i) << 8)), 24};
    records.push_back({keys.node(name), encode(NodeRecord{name, underlay, pool, std::nullopt, Mode::vxlan})});
  }
  auto t0 = Clock::now();
  c.put_all(records);
  const double write_s = std::chrono::duration<double>(Clock::now() - t0).count();

  t0 = Clock::now();
  RangeResult listed = c.list(keys.nodes());
  const double list_s = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_EQ(listed.kvs.size(), static_cast<size_t>(kNodes));
  listed = {};

  const long rss_before = rss_kib();
  auto o = options("watcher", "198.18.250.1");
  o.cidr = Ipv4Cidr::parse("10.0.0.0/8");
  t0 = Clock::now();
  RunningAgent a(o);
  ASSERT_TRUE(a.joined()) << a.error();
  ASSERT_TRUE(wait_until([&] { return a.agent().peers().size() == kNodes; }, 20s)) << a.agent().peers().size();
  const double agent_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const long rss_after = rss_kib();

  // And a change among 5,000 still arrives by the watch.
  t0 = Clock::now();
  c.erase(keys.node("sim-42"));
  ASSERT_TRUE(wait_until([&] { return !a.has_peer("sim-42"); }, 5s));
  const double change_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_EQ(a.agent().ignored(), 0u);

  // The CLI lists them too: its time and peak RSS (GNU time, in the sandbox).
  CmdResult cli = run_in(etcd_->client_ns(), {"/usr/bin/time", "-f", "%e %M", ebpfnet_bin(), "-o", "json", "cluster",
                                              "peers", "--etcd", etcd_->url(), "--cluster", cluster_}, 30);
  ASSERT_EQ(cli.code, 0) << cli.err;
  // 4,999 simulated (one was deleted) and the watcher.
  EXPECT_EQ(nlohmann::json::parse(cli.out)["nodes"].size(), static_cast<size_t>(kNodes));
  double cli_s = 0;
  long cli_kib = 0;
  std::sscanf(cli.err.substr(cli.err.rfind('\n', cli.err.size() - 2) + 1).c_str(), "%lf %ld", &cli_s, &cli_kib);

  std::printf("[ measured ] %d records: written in %.2f s (txns of 100), listed in %.3f s; an agent joined and "
              "held all %d peers after %.2f s, RSS +%ld KiB (%ld KiB total); a delete among them seen after %.0f ms; `cluster peers -o json` took %.2f s, peak RSS %ld KiB\n",
              kNodes, write_s, list_s, kNodes, agent_s, rss_after - rss_before, rss_after, change_ms, cli_s, cli_kib);
}

}  // namespace
}  // namespace ebpfnet::test
