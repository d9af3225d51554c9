// What runtimes do at once: many ADDs and DELs in parallel, and ADD racing
// DEL for the same container.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <set>

#include "cni_harness.hpp"
#include "ebpfnet/datapath.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"

namespace ebpfnet {
namespace {

using namespace test;

constexpr int kParallel = 50;

// Runs f(i) for i in [0, n) all at once, each in its own thread.
template <typename F>
auto in_parallel(int n, F f) {
  std::vector<std::future<decltype(f(0))>> futures;
  for (int i = 0; i < n; ++i) futures.push_back(std::async(std::launch::async, f, i));
  std::vector<decltype(f(0))> out;
  for (auto& fu : futures) out.push_back(fu.get());
  return out;
}

TEST(CniConcurrency, FiftyParallelAddsThenFiftyParallelDels) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  std::vector<std::unique_ptr<Container>> cs;
  for (int i = 0; i < kParallel; ++i) cs.push_back(std::make_unique<Container>());

  auto adds = in_parallel(kParallel, [&](int i) { return net.add(cs[i]->attachment()); });
  std::set<Ipv4> ips;
  std::vector<Ipv4> ip_of(kParallel);
  for (int i = 0; i < kParallel; ++i) {
    ASSERT_EQ(adds[i].code, 0) << "ADD " << i << ": " << adds[i].out;
    std::string a = adds[i].result()["ips"][0]["address"];
    ip_of[i] = *Ipv4::parse(a.substr(0, a.find('/')));
    ips.insert(ip_of[i]);
  }
  EXPECT_EQ(ips.size(), static_cast<size_t>(kParallel)) << "an address was handed out twice";
  EXPECT_EQ(sb.node().endpoints().size(), static_cast<size_t>(kParallel));

  // All work: each container reaches the next one through the datapath.
  for (int i = 0; i < kParallel; ++i) {
    ProbeResult p = probe_icmp(cs[i]->netns(), ip_of[(i + 1) % kParallel], ProbeTimeout(1000));
    EXPECT_TRUE(p.ok) << "container " << i << " -> " << ip_of[(i + 1) % kParallel].str() << ": "
                      << p.error;
  }

  auto dels = in_parallel(kParallel, [&](int i) { return net.del(cs[i]->attachment()); });
  for (int i = 0; i < kParallel; ++i)
    EXPECT_EQ(dels[i].code, 0) << "DEL " << i << ": " << dels[i].out;
  expect_node_empty(sb);
  for (const auto& c : cs) EXPECT_TRUE(links_besides_lo(c->netns()).empty()) << c->name();
}

// ADD and DEL of one container racing leave a whole endpoint or nothing.
TEST(CniConcurrency, AddRacingDelLeavesAllOrNothing) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  CniNet net(sb);
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  ASSERT_TRUE(maps);
  int whole = 0, nothing = 0;
  for (int round = 0; round < 8; ++round) {
    Container c;
    auto racers = in_parallel(2, [&](int i) {
      return i == 0 ? net.add(c.attachment()) : net.del(c.attachment());
    });
    EXPECT_EQ(racers[0].code, 0) << racers[0].out;
    EXPECT_EQ(racers[1].code, 0) << racers[1].out;
    auto rec = endpoint_of(sb, c.attachment());
    if (rec) {
      ++whole;
      EXPECT_EQ(links_besides_lo(c.netns()), std::vector<std::string>{"eth0"});
      EXPECT_TRUE(maps->endpoint_by_ip(rec->ip));
      ProbeResult p = probe_icmp(sb.node().netns(), rec->ip, ProbeTimeout(1000));
      EXPECT_TRUE(p.ok) << p.error;
      EXPECT_EQ(net.del(c.attachment()).code, 0);
    } else {
      ++nothing;
      EXPECT_TRUE(links_besides_lo(c.netns()).empty());
    }
    expect_node_empty(sb);
  }
  std::cout << "ADD/DEL races: " << whole << " left a whole endpoint, " << nothing
            << " left nothing\n";
}

}  // namespace
}  // namespace ebpfnet
