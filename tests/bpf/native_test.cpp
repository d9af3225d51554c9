// Native routing (cluster --mode native) on the real programs: the node's
// state marks the cluster CIDR as routed (Node::set_native writes the
// routed map); BIRD's routes are what bpf_fib_lookup finds (here the test
// namespace's default route via the router stands for the route to a
// peer's pool). Another node's pool leaves through the uplink with the
// endpoint's own address, no encapsulation; what comes from another node's
// pool on the uplink goes straight to its endpoint.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "datapath_fixture.hpp"

namespace ebpfnet::test {
namespace {

using NativeTest = DatapathTest;

// The fixture's pool is 10.240.0.0/24; the cluster's CIDR holds it and the
// peers' pools.
const Ipv4Cidr kClusterCidr = cidr("10.240.0.0/16");
const Ipv4 kPeerEndpoint = addr("10.240.1.7");  // in another node's pool

Packet to_peer(L4 l4) {
  Packet p = sent_by(kA, l4);
  p.dst = kPeerEndpoint;
  return p;
}

TEST_F(NativeTest, PeerPoolLeavesThroughUplinkUnmasqueradedAndUnencapsulated) {
  dp_->maps().put_routed(kClusterCidr);
  for (L4 l4 : {L4::tcp, L4::udp, L4::icmp}) {
    const Packet in = to_peer(l4);
    const Bytes frame = build(in);
    const TcRun r = run_endpoint(frame, kA);
    ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT)) << hex_diff(frame, r.out);
    // Routed as a router would: new MACs (the next hop's, from the fib),
    // TTL one less, addresses and ports as sent, no outer header.
    EXPECT_TRUE(frames_equal(build(routed(in, kUplinkMac, kRouterMac)), r.out)) << hex_diff(frame, r.out);
  }
  EXPECT_EQ(ct_entries(), 0u) << "no policy: nothing to track, nothing translated";
}

// Without the cluster CIDR marked (a node not in native mode) the same
// packet is masqueraded as the uplink's address: the mark is what matters.
TEST_F(NativeTest, WithoutTheMarkThePeerPoolIsMasqueraded) {
  const TcRun r = run_endpoint(build(to_peer(L4::udp)), kA);
  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_FALSE(frames_equal(build(routed(to_peer(L4::udp), kUplinkMac, kRouterMac)), r.out));
  EXPECT_EQ(ct_entries(), 2u) << "a masqueraded flow";
}

TEST_F(NativeTest, FromPeerPoolOnUplinkIsDeliveredToTheEndpoint) {
  dp_->maps().put_routed(kClusterCidr);
  const Packet in{.l4 = L4::tcp, .smac = kRouterMac, .dmac = kUplinkMac, .src = kPeerEndpoint,
                  .dst = kA.ip, .sport = 50000, .dport = 80, .tcp_flags = 0x02};
  const TcRun r = run_uplink(build(in));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(routed(in, kA.node_mac, kA.mac)), r.out));
}

}  // namespace
}  // namespace ebpfnet::test
