// The VXLAN overlay on crafted frames through BPF_PROG_TEST_RUN: from_endpoint
// sends traffic for another node's pool into the node's vxlan device (the
// trace build tells the device and the peer, which test-run cannot show of
// the tunnel key), leaves local and outside traffic as it was, and hands a
// frame too big for the tunnel to the stack; from_tunnel's delivery accepts
// only the node that owns the inner source's pool and counts what it drops.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include "datapath_fixture.hpp"
#include "ebpfnet/skeleton.hpp"
#include "ebpfnet/trace.hpp"
#include "tunnel_probe.skel.h"

namespace ebpfnet::test {
namespace {

const Ipv4Cidr kRemotePool = cidr("10.241.0.0/24");
const Ipv4 kRemoteEndpoint = addr("10.241.0.5");
const Ipv4 kPeer = addr("198.18.0.3");  // the node owning kRemotePool
const Ipv4Cidr kOtherPool = cidr("10.242.0.0/24");
const Ipv4 kOtherPeer = addr("198.18.0.4");
const Ipv4 kStranger = addr("198.18.0.99");  // no node of the overlay
constexpr uint32_t kVni = 42;
const Mac kTunnelMac = {0x02, 0x7e, 0, 0, 0, 0x01};  // what the inner frame carries from the peer

class TunnelTest : public DatapathTest {
 protected:
  void SetUp() override {
    DatapathTest::SetUp();
    if (IsSkipped()) return;
    Netlink nl;
    vx_ = nl.create_vxlan({.name = "vx0", .mtu = 1450});
    nl.set_up(vx_);
    dp_->maps().put_tunnel(kRemotePool, kPeer);
    dp_->maps().put_tunnel(kOtherPool, kOtherPeer);
    dp_->maps().write_config(overlay_config());
  }

  NodeConfig overlay_config() const {
    NodeConfig c = config();
    c[EBPFNET_CFG_TUNNEL_IFINDEX] = static_cast<uint32_t>(vx_);
    c[EBPFNET_CFG_TUNNEL_VNI] = kVni;
    return c;
  }

  // from_tunnel's delivery of a decapsulated frame sent by outer_src.
  TcRun decap(const Bytes& frame, Ipv4 outer_src) {
    Skeleton<tunnel_probe_bpf> probe("tunnel_probe");
    share_maps(probe->obj, dp_->maps());
    probe.load();
    probe->bss->outer_src = outer_src.be();
    return run_tc(bpf_program__fd(probe->progs.tunnel_probe), frame, static_cast<uint32_t>(vx_));
  }

  // What a remote endpoint sends to e, as the vxlan device hands it over.
  static Packet from_remote(const Endpoint& e, L4 l4, Ipv4 src = kRemoteEndpoint) {
    return {.l4 = l4, .smac = kTunnelMac, .dmac = e.node_mac, .src = src, .dst = e.ip, .sport = 41000,
            .dport = l4 == L4::icmp ? 41000 : 8080, .tcp_flags = kSyn};
  }

  int vx_ = 0;
};

class Encap : public TunnelTest, public ::testing::WithParamInterface<L4> {};

// A's packet for the remote pool leaves into the vxlan device with one hop
// less, its Ethernet header as it was (the peer's device takes it off), and
// is counted as sent by A.
TEST_P(Encap, RemotePoolGoesIntoTheTunnel) {
  const Packet p = with_dst(sent_by(kA, GetParam()), kRemoteEndpoint, 8080);
  Counters want = counters();
  const TcRun r = run_endpoint(build(p), kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  Packet out = p;
  out.ttl--;
  EXPECT_TRUE(frames_equal(build(out), r.out)) << hex_diff(build(out), r.out);
  want.tx(kA, build(p).size());
  EXPECT_TRUE(same_counters(want, counters()));
  EXPECT_TRUE(dp_->maps().ct_flows().empty()) << "without a policy nothing is tracked";

  // Where it went: the trace build records the device and the peer.
  const TraceRun t =
      run_trace_program(dp_->maps(), TraceProgram::from_endpoint, kGateway, build(p), static_cast<uint32_t>(ifindex(kA)));
  EXPECT_EQ(verdict_name(t.retval), verdict_name(TC_ACT_REDIRECT));
  ASSERT_FALSE(t.steps.empty());
  const ebpfnet_trace_step& last = t.steps.back();
  EXPECT_EQ(last.code, EBPFNET_TRACE_ROUTED);
  EXPECT_EQ(last.result, 2u) << "into the overlay";
  EXPECT_EQ(last.arg[0], uint32_t(vx_)) << "out of the vxlan device";
  EXPECT_EQ(last.arg[1], kPeer.be()) << "to the node owning the pool";
}

INSTANTIATE_TEST_SUITE_P(L4s, Encap, ::testing::Values(L4::tcp, L4::udp, L4::icmp),
                         [](const auto& info) { return std::string(info.param == L4::tcp   ? "tcp"
                                                                   : info.param == L4::udp ? "udp"
                                                                                           : "icmp"); });

// The longest prefix decides: the other pool goes to its own node.
TEST_F(TunnelTest, EachPoolGoesToItsOwnNode) {
  const Packet p = with_dst(sent_by(kA, L4::udp), addr("10.242.0.9"), 53);
  const TraceRun t =
      run_trace_program(dp_->maps(), TraceProgram::from_endpoint, kGateway, build(p), static_cast<uint32_t>(ifindex(kA)));
  ASSERT_FALSE(t.steps.empty());
  EXPECT_EQ(t.steps.back().arg[1], kOtherPeer.be());
}

// With an overlay, traffic between endpoints of the node and to the outside
// takes the ways it took without one.
TEST_F(TunnelTest, LocalAndOutsideTrafficAreUnaffected) {
  const Packet local = with_dst(sent_by(kA, L4::tcp), kB.ip, 80);
  const TcRun r = run_endpoint(build(local), kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(routed(local, kB.node_mac, kB.mac)), r.out))
      << hex_diff(build(routed(local, kB.node_mac, kB.mac)), r.out);
  masquerade(sent_by(kA, L4::udp), kA);
}

// A node without an overlay (slot 0) never looks the pool up: the same
// packet is masqueraded out of the uplink like any other destination.
TEST_F(TunnelTest, WithoutTheDeviceSlotThereIsNoOverlay) {
  dp_->maps().write_config(config());
  const Packet p = with_dst(sent_by(kA, L4::udp), kRemoteEndpoint, 53);
  masquerade(p, kA);
}

// Too big for the tunnel's MTU (1450) with DF: the node's stack answers
// "fragmentation needed"; without DF the outer packet may fragment.
TEST_F(TunnelTest, TooBigWithDontFragmentGoesToTheStack) {
  Packet p = with_dst(sent_by(kA, L4::udp), kRemoteEndpoint, 53);
  p.payload = std::string(1440, 'x');
  EXPECT_EQ(verdict_name(run_endpoint(build(p), kA).retval), verdict_name(TC_ACT_OK));
  p.frag = 0;
  EXPECT_EQ(verdict_name(run_endpoint(build(p), kA).retval), verdict_name(TC_ACT_REDIRECT));
  p.frag = kDontFragment;
  p.payload = std::string(1400, 'x');
  EXPECT_EQ(verdict_name(run_endpoint(build(p), kA).retval), verdict_name(TC_ACT_REDIRECT));
}

class Decap : public TunnelTest, public ::testing::WithParamInterface<L4> {};

// From the node that owns the source's pool: delivered to the endpoint as a
// router would, counted as received by it.
TEST_P(Decap, FromTheOwningPeerIsDelivered) {
  const Packet p = from_remote(kA, GetParam());
  Counters want = counters();
  const TcRun r = decap(build(p), kPeer);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  const Bytes delivered = build(routed(p, kA.node_mac, kA.mac));
  EXPECT_TRUE(frames_equal(delivered, r.out)) << hex_diff(delivered, r.out);
  want.rx(kA, build(p).size());
  EXPECT_TRUE(same_counters(want, counters()));
}

INSTANTIATE_TEST_SUITE_P(L4s, Decap, ::testing::Values(L4::tcp, L4::udp, L4::icmp),
                         [](const auto& info) { return std::string(info.param == L4::tcp   ? "tcp"
                                                                   : info.param == L4::udp ? "udp"
                                                                                           : "icmp"); });

// An outer source that is no node of the overlay, or a node sending from a
// pool that is not its own: dropped and counted for the node as tunnel-peer.
TEST_F(TunnelTest, UnknownOrWrongPeerIsDroppedAndCounted) {
  Counters want = counters();
  EXPECT_EQ(verdict_name(decap(build(from_remote(kA, L4::udp)), kStranger).retval), verdict_name(TC_ACT_SHOT));
  want.node[EBPFNET_DROP_TUNNEL_PEER]++;
  EXPECT_TRUE(same_counters(want, counters()));

  const Packet spoofed = from_remote(kA, L4::udp, addr("10.242.0.9"));  // kOtherPeer's pool
  EXPECT_EQ(verdict_name(decap(build(spoofed), kPeer).retval), verdict_name(TC_ACT_SHOT));
  want.node[EBPFNET_DROP_TUNNEL_PEER]++;
  const Packet outsider = from_remote(kA, L4::udp, addr("203.0.113.5"));  // in no pool
  EXPECT_EQ(verdict_name(decap(build(outsider), kPeer).retval), verdict_name(TC_ACT_SHOT));
  want.node[EBPFNET_DROP_TUNNEL_PEER]++;
  EXPECT_TRUE(same_counters(want, counters()));
  EXPECT_EQ(drop_reason_name(EBPFNET_DROP_TUNNEL_PEER), "tunnel-peer");
}

// For no endpoint of this node: dropped as unknown-endpoint.
TEST_F(TunnelTest, ForNoEndpointIsDropped) {
  Counters want = counters();
  Packet p = from_remote(kA, L4::udp);
  p.dst = addr("10.240.0.77");
  EXPECT_EQ(verdict_name(decap(build(p), kPeer).retval), verdict_name(TC_ACT_SHOT));
  want.node[EBPFNET_DROP_UNKNOWN_ENDPOINT]++;
  EXPECT_TRUE(same_counters(want, counters()));
}

// The real program on a frame without a tunnel key (what test-run gives
// it): nothing says who sent it, so it is dropped as tunnel-peer.
TEST_F(TunnelTest, FromTunnelWithoutTunnelKeyIsDropped) {
  Counters want = counters();
  const TcRun r = run_tc(dp_->from_tunnel_fd(), build(from_remote(kA, L4::udp)), static_cast<uint32_t>(vx_));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT));
  want.node[EBPFNET_DROP_TUNNEL_PEER]++;
  EXPECT_TRUE(same_counters(want, counters()));
}

}  // namespace
}  // namespace ebpfnet::test
