// The agent against a real (sandboxed) etcd: joining, a lease running out,
// etcd going away and coming back, hostile records, restarts.
#include <gtest/gtest.h>

#include <cstdio>

#include "cluster_fixture.hpp"
#include "ebpfnet/cluster/registry.hpp"

namespace ebpfnet::test {
namespace {

using namespace cluster;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point t0, Clock::time_point t1) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count());
}

TEST_F(EtcdTest, AgentsSeeEachOtherJoinAndADeadOneGoWithinTtlPlusOneSecond) {
  RunningAgent a(options("node-a", "198.18.0.11"));
  ASSERT_TRUE(a.joined()) << a.error();
  auto ob = options("node-b", "198.18.0.12");
  ob.revoke_on_stop = false;  // B dies: nobody revokes its lease
  const auto b_started = Clock::now();
  RunningAgent b(ob);
  ASSERT_TRUE(b.joined()) << b.error();
  const auto b_joined = Clock::now();
  ASSERT_TRUE(wait_until([&] { return a.has_peer("node-b") && b.has_peer("node-a"); }, 5s));
  const auto seen = a.consumer().added("node-b");
  ASSERT_TRUE(seen);
  // From B's start: its pool CAS, lease grant and registration, then A's watch.
  std::printf("[ measured ] join: node-a saw node-b %ld ms after node-b's agent started\n", ms_since(b_started, *seen));
  (void)b_joined;
  EXPECT_NE(*a.agent().pool(), *b.agent().pool());

  b.stop();
  const auto died = Clock::now();
  const auto ttl = ob.ttl;
  ASSERT_TRUE(wait_until([&] { return !a.has_peer("node-b"); }, ttl + 3s)) << "node-b never left";
  const auto gone = a.consumer().removed("node-b");
  ASSERT_TRUE(gone);
  const long after = ms_since(died, *gone);
  std::printf("[ measured ] lease expiry: node-b left node-a's peers %.2f s after it died (TTL %lld s)\n",
              after / 1000.0, static_cast<long long>(ttl.count()));
  EXPECT_LE(after, std::chrono::duration_cast<std::chrono::milliseconds>(ttl + 1s).count());  // the issue's bound
}

TEST_F(EtcdTest, ACleanStopRevokesTheLeaseAndARestartKeepsThePool) {
  RunningAgent a(options("node-a", "198.18.0.11"));
  ASSERT_TRUE(a.joined()) << a.error();
  std::optional<Ipv4Cidr> first;
  {
    RunningAgent b(options("node-b", "198.18.0.12"));
    ASSERT_TRUE(b.joined()) << b.error();
    first = b.agent().pool();
    ASSERT_TRUE(wait_until([&] { return a.has_peer("node-b"); }, 5s));
  }  // a clean stop: revoked, so gone long before the TTL
  EXPECT_TRUE(wait_until([&] { return !a.has_peer("node-b"); }, 2s));
  RunningAgent again(options("node-b", "198.18.0.12"));
  ASSERT_TRUE(again.joined()) << again.error();
  EXPECT_EQ(again.agent().pool(), first);
  EXPECT_TRUE(wait_until([&] { return a.has_peer("node-b"); }, 5s));
}

TEST_F(EtcdTest, AnAgentKilledAndRestartedWithinItsTtlIsNeverSeenToLeave) {
  RunningAgent a(options("node-a", "198.18.0.11"));
  ASSERT_TRUE(a.joined()) << a.error();
  auto ob = options("node-b", "198.18.0.12");
  ob.revoke_on_stop = false;  // killed: its record stays under the old lease
  std::optional<Ipv4Cidr> pool;
  {
    RunningAgent b(ob);
    ASSERT_TRUE(b.joined()) << b.error();
    pool = b.agent().pool();
    ASSERT_TRUE(wait_until([&] { return a.has_peer("node-b"); }, 5s));
  }
  RunningAgent again(ob);  // same name and underlay: takes its record over under a new lease
  ASSERT_TRUE(again.joined()) << again.error();
  EXPECT_EQ(again.agent().pool(), pool);
  std::this_thread::sleep_for(ob.ttl + 1s);  // past the old lease's expiry
  EXPECT_TRUE(a.has_peer("node-b"));
  EXPECT_FALSE(a.consumer().removed("node-b")) << "node-a saw node-b leave during a restart";
}

TEST_F(EtcdTest, ADuplicateNodeNameIsRefused) {
  RunningAgent a(options("node-a", "198.18.0.11"));
  ASSERT_TRUE(a.joined()) << a.error();
  LoggingPeerConsumer log;
  Agent dup(options("node-a", "198.18.0.99"), log);
  std::stop_source never;
  try {
    dup.run(never.get_token());
    ADD_FAILURE() << "a second node-a joined";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::exists) << e.what();
  }
  EXPECT_FALSE(dup.joined());
  // The refused agent revoked the lease it had taken: node-a's record is still A's.
  EtcdClient c(etcd_->url());
  EXPECT_EQ(c.get(Keys(cluster_).node("node-a"))->lease, a.agent().lease());
}

TEST_F(EtcdTest, WithEtcdDownTheAgentKeepsItsPeersAndReconcilesWhenItReturns) {
  RunningAgent a(options("node-a", "198.18.0.11"));
  RunningAgent b(options("node-b", "198.18.0.12"));
  ASSERT_TRUE(a.joined() && b.joined()) << a.error() << b.error();
  ASSERT_TRUE(wait_until([&] { return a.has_peer("node-b") && a.agent().watching(); }, 5s));
  const uint64_t lists_before = a.agent().lists();

  etcd_->stop();
  EXPECT_TRUE(wait_until([&] { return !a.agent().watching(); }, 3s));
  std::this_thread::sleep_for(1500ms);  // outage: several failed keepalives and re-lists
  EXPECT_TRUE(a.has_peer("node-b")) << "the last known peers must stay while etcd is away";
  EXPECT_FALSE(a.ended()) << a.error();

  etcd_->start();
  // The agent re-lists when etcd returns (counted), and what was written
  // meanwhile arrives, by that list or by the watch after it.
  EtcdClient c(etcd_->url());
  const NodeRecord late{"node-c", *Ipv4::parse("198.18.0.13"), *Ipv4Cidr::parse("10.244.200.0/24"), std::nullopt,
                        Mode::vxlan};
  const int64_t lease = c.lease_grant(30);
  c.put(Keys(cluster_).node("node-c"), encode(late), lease);
  EXPECT_TRUE(wait_until([&] { return a.has_peer("node-c") && a.agent().watching(); }, 5s));
  EXPECT_GT(a.agent().lists(), lists_before) << "no re-list after etcd returned";
  EXPECT_TRUE(a.has_peer("node-b"));
  // And the watch works again: a change after it shows.
  c.lease_revoke(lease);
  EXPECT_TRUE(wait_until([&] { return !a.has_peer("node-c"); }, 3s));
  // Both kept their leases (etcd renews leases when it restarts).
  EXPECT_TRUE(c.get(Keys(cluster_).node("node-a")));
  EXPECT_TRUE(c.get(Keys(cluster_).node("node-b")));
}

TEST_F(EtcdTest, HostileRecordsAreIgnoredLoggedAndCounted) {
  RunningAgent a(options("node-a", "198.18.0.11"));
  ASSERT_TRUE(a.joined()) << a.error();
  EtcdClient c(etcd_->url());
  const Keys keys(cluster_);
  const std::vector<std::pair<std::string, std::string>> junk = {
      {keys.node("evil-1"), "not json at all"},
      {keys.node("evil-2"), R"({"name":"evil-2","underlay":"127.0.0.1","pool":"10.244.9.0/24","mode":"vxlan"})"},
      {keys.node("evil-3"), R"({"name":"evil-3","underlay":"198.18.0.66","pool":"192.168.0.0/24","mode":"vxlan"})"},
      {keys.node("evil-4"), R"({"name":"someone-else","underlay":"198.18.0.66","pool":"10.244.9.0/24","mode":"vxlan"})"},
      {keys.node("Evil\x01"), R"({"name":"evil","underlay":"198.18.0.66","pool":"10.244.9.0/24","mode":"vxlan"})"},
      {keys.node("evil-5"), std::string(100000, '{')},
      {keys.node("evil-6"), std::string("\0\xff\xfe", 3)}};
  c.put_all(junk);
  c.put(keys.root() + "foreign/thing", "whatever");  // another key under the prefix: not watched, not a node
  const NodeRecord good{"node-g", *Ipv4::parse("198.18.0.14"), *Ipv4Cidr::parse("10.244.201.0/24"), std::nullopt,
                        Mode::native};
  c.put(keys.node("node-g"), encode(good));
  ASSERT_TRUE(wait_until([&] { return a.has_peer("node-g"); }, 5s)) << "a valid record after junk was not seen";
  EXPECT_EQ(a.agent().peers().size(), 1u);
  EXPECT_EQ(a.agent().ignored(), junk.size());
  EXPECT_FALSE(a.ended()) << a.error();
  // A fresh agent lists them all at once: same verdict.
  RunningAgent fresh(options("node-f", "198.18.0.15"));
  ASSERT_TRUE(fresh.joined()) << fresh.error();
  EXPECT_TRUE(wait_until([&] { return fresh.has_peer("node-g") && fresh.has_peer("node-a"); }, 5s));
  EXPECT_EQ(fresh.agent().peers().size(), 2u);
  EXPECT_EQ(fresh.agent().ignored(), junk.size());
}

}  // namespace
}  // namespace ebpfnet::test
