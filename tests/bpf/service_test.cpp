// Services on crafted frames through BPF_PROG_TEST_RUN: a virtual IP and a
// node port balanced per packet at tc, the reverse NAT of replies, Maglev's
// spread by weight, draining, session affinity and a service without backend.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <map>
#include <vector>

#include "datapath_fixture.hpp"
#include "ebpfnet/maglev.hpp"

namespace ebpfnet::test {
namespace {

const Ipv4 kVip = addr("10.96.0.10");
constexpr uint16_t kVipPort = 80;
constexpr uint16_t kNodePort = 30080;
constexpr uint16_t kBackendPort = 8080;
constexpr uint32_t kSvcId = 7;

struct Backend {
  const Endpoint* ep;
  uint32_t weight = 1;
  bool draining = false;
};

class ServiceTest : public DatapathTest {
 protected:
  // One service (vip or node port) over backends, ids 1..n in order.
  void add_service(L4 l4, const std::vector<Backend>& backends, bool node_port = false, uint32_t affinity = 0) {
    DatapathMaps& maps = dp_->maps();
    std::vector<MaglevBackend> active;
    for (size_t i = 0; i < backends.size(); ++i) {
      const uint32_t id = static_cast<uint32_t>(i + 1);
      ebpfnet_backend b{};
      b.ip = backends[i].ep->ip.be();
      b.port = htons(kBackendPort);
      b.state = backends[i].draining ? EBPFNET_BACKEND_DRAINING : EBPFNET_BACKEND_ACTIVE;
      b.svc_id = kSvcId;
      maps.put_backend(id, b);
      if (!backends[i].draining)
        active.push_back({id, backends[i].ep->ip.str() + ":" + std::to_string(kBackendPort), backends[i].weight});
    }
    maps.put_maglev(kSvcId, maglev_table(active, EBPFNET_MAGLEV_SIZE));
    maps.put_service(key(l4, node_port), {kSvcId, affinity});
    NodeConfig c = config();
    c[EBPFNET_CFG_SERVICES] = 1;
    maps.write_config(c);
  }

  static ebpfnet_svc_key key(L4 l4, bool node_port) {
    return {node_port ? 0u : kVip.be(), htons(node_port ? kNodePort : kVipPort), ip_proto(l4), 0};
  }

  // From `from` to the service's virtual IP.
  static Packet to_vip(const Endpoint& from, L4 l4, uint16_t sport, uint8_t flags = kSyn) {
    return {.l4 = l4, .smac = from.mac, .dmac = from.node_mac, .src = from.ip, .dst = kVip,
            .sport = sport, .dport = kVipPort, .tcp_flags = flags};
  }

  // The endpoint a redirected frame was sent to, by its destination address.
  const Endpoint* receiver(const TcRun& r) const {
    if (r.retval != TC_ACT_REDIRECT || r.out.size() < 34) return nullptr;
    const Ipv4 dst = Ipv4::from_be(htonl(uint32_t(r.out[30]) << 24 | r.out[31] << 16 | r.out[32] << 8 | r.out[33]));
    for (const Endpoint* e : kEndpoints)
      if (e->ip == dst) return e;
    return nullptr;
  }
};

class VipFlows : public ServiceTest, public ::testing::WithParamInterface<L4> {};

// A's connection to the virtual IP reaches the backend B at its port; B's
// answer reaches A from the virtual IP, never leaving the node.
TEST_P(VipFlows, BalancedToBackendAndRepliesFromTheVip) {
  const L4 l4 = GetParam();
  add_service(l4, {{&kB}});
  const Packet in = to_vip(kA, l4, 41000);
  Counters before = counters();
  const TcRun r = run_endpoint(build(in), kA);
  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT)) << hex_diff(build(in), r.out);
  const Packet out = routed(with_dst(in, kB.ip, kBackendPort), kB.node_mac, kB.mac);
  EXPECT_TRUE(frames_equal(build(out), r.out));
  EXPECT_TRUE(ipv4_checksum_valid(r.out));
  EXPECT_TRUE(l4_checksum_valid(r.out));
  const size_t len = build(in).size();
  EXPECT_TRUE(same_counters(Counters(before).tx(kA, len).rx(kB, len), counters()));
  expect_flow(in, out, EBPFNET_CT_F_DNAT | EBPFNET_CT_F_SERVICE, EBPFNET_CT_NEW,
              deadline(l4 == L4::tcp ? kSynTimeout : kUdpTimeout));
  EXPECT_EQ(dp_->maps().backend_connections(1), 1u);

  const Packet back = answer(out);
  const TcRun rb = run_endpoint(build(back), kB);
  ASSERT_EQ(verdict_name(rb.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(routed(with_src(back, kVip, kVipPort), kA.node_mac, kA.mac)), rb.out));
  EXPECT_TRUE(l4_checksum_valid(rb.out));
  EXPECT_EQ(dp_->maps().backend_connections(1), 1u) << "a reply is no new connection";
}

INSTANTIATE_TEST_SUITE_P(Protocols, VipFlows, ::testing::Values(L4::tcp, L4::udp),
                         [](const auto& info) { return info.param == L4::tcp ? "Tcp" : "Udp"; });

class Refusals : public ServiceTest, public ::testing::WithParamInterface<L4> {};

// Without an active backend a new connection is refused as a closed port
// refuses it: the client gets an ICMP port unreachable from the address it
// tried, quoting its packet, and the refusal is counted as no-backend.
TEST_P(Refusals, NoActiveBackendAnswersPortUnreachable) {
  const L4 l4 = GetParam();
  add_service(l4, {{&kB, 1, true}});
  const Bytes in = build(to_vip(kA, l4, 41001));
  const Counters before = counters();
  const TcRun r = run_endpoint(in, kA);
  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(icmp_error({3, 3}, kA.node_mac, kA.mac, kVip, kA.ip, 64, quote_of(in), 0, 0), r.out));
  EXPECT_TRUE(ipv4_checksum_valid(r.out));
  EXPECT_TRUE(l4_checksum_valid(r.out));
  EXPECT_TRUE(same_counters(Counters(before).tx(kA, in.size()).dropped(kA, EBPFNET_DROP_NO_BACKEND), counters()));
  EXPECT_EQ(ct_entries(), 0u);
}

// The same for a node port from outside: the error leaves by the uplink.
TEST_P(Refusals, NodePortWithoutBackendAnswersPortUnreachable) {
  const L4 l4 = GetParam();
  add_service(l4, {{&kB, 1, true}}, true);
  const Bytes in = build({.l4 = l4, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient, .dst = kUplinkIp,
                          .sport = 50002, .dport = kNodePort, .tcp_flags = kSyn});
  Counters want = counters();
  want.node[EBPFNET_DROP_NO_BACKEND]++;
  const TcRun r = run_uplink(in);
  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(
      frames_equal(icmp_error({3, 3}, kUplinkMac, kRouterMac, kUplinkIp, kClient, 64, quote_of(in), 0, 0), r.out));
  EXPECT_TRUE(ipv4_checksum_valid(r.out));
  EXPECT_TRUE(l4_checksum_valid(r.out));
  EXPECT_TRUE(same_counters(want, counters()));
  EXPECT_EQ(ct_entries(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Protocols, Refusals, ::testing::Values(L4::tcp, L4::udp),
                         [](const auto& info) { return info.param == L4::tcp ? "Tcp" : "Udp"; });

// Maglev gives each backend a share of new flows by its weight: B has
// three times A's weight. A's flows to itself are hairpinned (masqueraded).
TEST_F(ServiceTest, FlowsSpreadByWeight) {
  add_service(L4::udp, {{&kA, 1}, {&kB, 3}});
  constexpr int kFlows = 2000;
  std::map<const Endpoint*, int> got;
  for (int i = 0; i < kFlows; ++i) got[receiver(run_endpoint(build(to_vip(kA, L4::udp, 20000 + i)), kA))]++;
  EXPECT_EQ(got[nullptr], 0);
  const double b_share = double(got[&kB]) / kFlows;
  EXPECT_NEAR(b_share, 0.75, 0.04) << "A " << got[&kA] << ", B " << got[&kB];
  EXPECT_EQ(dp_->maps().backend_connections(1) + dp_->maps().backend_connections(2), uint64_t(kFlows));
}

// A draining backend keeps the flows it has; new flows all go elsewhere.
TEST_F(ServiceTest, DrainingBackendKeepsItsFlowsAndTakesNoNew) {
  add_service(L4::udp, {{&kA}, {&kB}});
  // A flow that went to B.
  uint16_t sport = 30000;
  while (receiver(run_endpoint(build(to_vip(kA, L4::udp, sport)), kA)) != &kB) ASSERT_LT(++sport, 30100);
  add_service(L4::udp, {{&kA}, {&kB, 1, true}});

  EXPECT_EQ(receiver(run_endpoint(build(to_vip(kA, L4::udp, sport)), kA)), &kB) << "the existing flow stays";
  for (uint16_t p = 31000; p < 31200; ++p)
    ASSERT_EQ(receiver(run_endpoint(build(to_vip(kA, L4::udp, p)), kA)), &kA) << "new flow " << p;
}

// With affinity a client keeps its backend across connections.
TEST_F(ServiceTest, AffinityKeepsClientOnOneBackend) {
  add_service(L4::tcp, {{&kA}, {&kB}}, false, 60);
  const Endpoint* first = receiver(run_endpoint(build(to_vip(kA, L4::tcp, 42000)), kA));
  ASSERT_NE(first, nullptr);
  for (uint16_t p = 42001; p < 42100; ++p)
    ASSERT_EQ(receiver(run_endpoint(build(to_vip(kA, L4::tcp, p)), kA)), first) << "connection " << p;
}

// A packet of a flow conntrack lost hashes to the backend its first packet
// went to, as any node's would.
TEST_F(ServiceTest, LostFlowFindsItsBackendAgain) {
  add_service(L4::tcp, {{&kA}, {&kB}});
  for (uint16_t p = 43000; p < 43050; ++p) {
    const Endpoint* first = receiver(run_endpoint(build(to_vip(kA, L4::tcp, p)), kA));
    ASSERT_NE(first, nullptr);
    dp_->maps().ct_flush();
    ASSERT_EQ(receiver(run_endpoint(build(to_vip(kA, L4::tcp, p, kAck)), kA)), first) << "port " << p;
  }
}

// A node port from outside reaches the backend with the client's address;
// the answer leaves from the uplink's address and the node port.
TEST_F(ServiceTest, NodePortFromOutside) {
  add_service(L4::tcp, {{&kA}}, true);
  const Packet in{.l4 = L4::tcp, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient,
                  .dst = kUplinkIp, .sport = 50000, .dport = kNodePort, .tcp_flags = kSyn};
  const TcRun r = run_uplink(build(in));
  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  const Packet out = routed(with_dst(in, kA.ip, kBackendPort), kA.node_mac, kA.mac);
  EXPECT_TRUE(frames_equal(build(out), r.out));
  expect_flow(in, out, EBPFNET_CT_F_DNAT | EBPFNET_CT_F_SERVICE, EBPFNET_CT_NEW, deadline(kSynTimeout));

  const Packet back = answer(out);
  const TcRun rb = run_endpoint(build(back), kA);
  ASSERT_EQ(verdict_name(rb.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(masqueraded(back, kNodePort)), rb.out));
}

// A node port's later packets without a flow are the node's own traffic's,
// as for published ports: only a connection's first packet is balanced.
TEST_F(ServiceTest, NodePortBalancesOnlyFirstPackets) {
  add_service(L4::tcp, {{&kA}}, true);
  const Packet ack{.l4 = L4::tcp, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient,
                   .dst = kUplinkIp, .sport = 50001, .dport = kNodePort, .tcp_flags = kAck};
  EXPECT_EQ(verdict_name(run_uplink(build(ack)).retval), verdict_name(TC_ACT_OK));
  EXPECT_EQ(ct_entries(), 0u);
}

// Ports and addresses that are no service pass as before.
TEST_F(ServiceTest, OtherPortsOfTheVipAreNoService) {
  add_service(L4::tcp, {{&kB}});
  Packet in = to_vip(kA, L4::tcp, 44000);
  in.dport = 81;
  const TcRun r = run_endpoint(build(in), kA);
  EXPECT_NE(receiver(r), &kB);
  EXPECT_EQ(dp_->maps().backend_connections(1), 0u);
}

}  // namespace
}  // namespace ebpfnet::test
