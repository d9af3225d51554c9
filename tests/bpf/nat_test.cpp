// NAT on crafted frames through BPF_PROG_TEST_RUN: masquerade and reverse
// NAT, published ports and hairpin, conntrack states and expiry, and what
// must pass untouched.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "datapath_fixture.hpp"

namespace ebpfnet::test {
namespace {

using NatTest = DatapathTest;

::testing::AssertionResult checksums_valid(const Bytes& frame) {
  if (auto r = ipv4_checksum_valid(frame); !r) return r;
  return l4_checksum_valid(frame);
}

// The IPv4 header an ICMP error quotes still carries a valid checksum.
::testing::AssertionResult quote_checksum_valid(const Bytes& error) {
  const auto quoted = std::span(error).subspan(l4_at(error) + 8, 20);
  if (internet_checksum(quoted) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "quoted IPv4 header checksum does not verify";
}

uint32_t new_flow_timeout(L4 l4) {
  switch (l4) {
    case L4::tcp: return kSynTimeout;
    case L4::icmp: return kIcmpTimeout;
    default: return kUdpTimeout;
  }
}

uint32_t established_timeout(L4 l4) {
  switch (l4) {
    case L4::tcp: return kTcpTimeout;
    case L4::icmp: return kIcmpTimeout;
    default: return kUdpTimeout;
  }
}

std::string l4_name(L4 l4) {
  switch (l4) {
    case L4::tcp: return "TcpSyn";
    case L4::udp: return "Udp";
    case L4::udp_no_checksum: return "UdpWithoutChecksum";
    case L4::icmp: return "IcmpEcho";
  }
  return "?";
}

class NatFlows : public NatTest, public ::testing::WithParamInterface<L4> {};

TEST_P(NatFlows, MasqueradesThroughUplink) {
  const L4 l4 = GetParam();
  const Packet in = sent_by(kA, l4);
  const Bytes frame = build(in);
  const Counters before = counters();
  const TcRun r = run_endpoint(frame, kA);

  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT)) << hex_diff(frame, r.out);
  const uint16_t port = sport_of(r.out, l4);
  EXPECT_GE(port, kPortMin);
  EXPECT_LE(port, kPortMax);
  const Packet out = masqueraded(in, port);
  EXPECT_TRUE(frames_equal(build(out), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  if (l4 == L4::udp_no_checksum) {
    EXPECT_EQ(be16_at(r.out, l4_at(r.out) + 6), 0) << "no checksum must stay none";
  }
  EXPECT_TRUE(same_counters(Counters(before).tx(kA, frame.size()), counters()));

  expect_flow(in, out, EBPFNET_CT_F_SNAT, EBPFNET_CT_NEW, deadline(new_flow_timeout(l4)));
  EXPECT_EQ(ct_entries(), 2u);
  const auto fwd = entry(key_of(in));
  const auto rev = entry(key_of(answer(out)));
  ASSERT_TRUE(fwd && rev);
  EXPECT_EQ(fwd->packets, 1u);
  EXPECT_EQ(fwd->bytes, frame.size());
  EXPECT_EQ(rev->packets, 0u);
}

TEST_P(NatFlows, ReplyIsTranslatedBackToEndpoint) {
  const L4 l4 = GetParam();
  const Packet in = sent_by(kA, l4);
  const uint16_t port = masquerade(in, kA);
  const Packet back = answer(masqueraded(in, port));
  const Bytes frame = build(back);
  const Counters before = counters();
  const TcRun r = run_uplink(frame);

  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(routed(with_dst(back, kA.ip, in.sport), kA.node_mac, kA.mac)),
                           r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  if (l4 == L4::udp_no_checksum) {
    EXPECT_EQ(be16_at(r.out, l4_at(r.out) + 6), 0) << "no checksum must stay none";
  }
  EXPECT_TRUE(same_counters(Counters(before).rx(kA, frame.size()), counters()));

  expect_flow(in, masqueraded(in, port), EBPFNET_CT_F_SNAT, EBPFNET_CT_ESTABLISHED,
              deadline(established_timeout(l4)));
  const auto rev = entry(key_of(back));
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev->packets, 1u);
  EXPECT_EQ(rev->bytes, frame.size());
}

INSTANTIATE_TEST_SUITE_P(Protocols, NatFlows,
                         ::testing::Values(L4::tcp, L4::udp, L4::udp_no_checksum, L4::icmp),
                         [](const auto& info) { return l4_name(info.param); });

// Later packets of a flow find its entry and leave exactly as the first did.
TEST_F(NatTest, LaterPacketsKeepTheirTranslation) {
  const Packet in = sent_by(kA, L4::udp);
  const uint16_t port = masquerade(in, kA);
  const TcRun r = run_endpoint(build(in), kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(masqueraded(in, port)), r.out));
  EXPECT_EQ(ct_entries(), 2u);
  const auto fwd = entry(key_of(in));
  ASSERT_TRUE(fwd);
  EXPECT_EQ(fwd->packets, 2u);
  EXPECT_EQ(fwd->bytes, 2 * build(in).size());
}

// SYN, then flags from either side move both entries; a deadline is
// rewritten when the state changes (otherwise at most once a second).
TEST_F(NatTest, TcpStateFollowsFlags) {
  struct Step {
    const char* what;
    bool from_server;
    uint8_t flags;
    uint8_t state;
    std::optional<uint32_t> timeout;  // nullopt: the deadline stays where it was
  };
  const Step steps[] = {
      {"SYN", false, kSyn, EBPFNET_CT_NEW, kSynTimeout},
      {"a server ACK without SYN", true, kAck, EBPFNET_CT_NEW, std::nullopt},
      {"SYN-ACK", true, kSynAck, EBPFNET_CT_ESTABLISHED, kTcpTimeout},
      {"ACK", false, kAck, EBPFNET_CT_ESTABLISHED, std::nullopt},
      {"FIN", false, kFin | kAck, EBPFNET_CT_CLOSING, kClosingTimeout},
      {"the server's FIN", true, kFin | kAck, EBPFNET_CT_CLOSING, std::nullopt},
  };
  const Packet syn = sent_by(kA, L4::tcp);
  std::optional<uint16_t> port;
  Window when{};
  for (const Step& s : steps) {
    SCOPED_TRACE(s.what);
    Packet in = syn;
    in.tcp_flags = s.flags;
    if (!port) {
      port = masquerade(in, kA);
    } else if (s.from_server) {
      const Packet back = answer(masqueraded(syn, *port), s.flags);
      const TcRun r = run_uplink(build(back));
      EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
      EXPECT_TRUE(frames_equal(
          build(routed(with_dst(back, kA.ip, syn.sport), kA.node_mac, kA.mac)), r.out));
    } else {
      const TcRun r = run_endpoint(build(in), kA);
      EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
      EXPECT_TRUE(frames_equal(build(masqueraded(in, *port)), r.out));
    }
    if (s.timeout) when = deadline(*s.timeout);
    expect_flow(syn, masqueraded(syn, *port), EBPFNET_CT_F_SNAT, s.state, when);
  }
}

TEST_F(NatTest, TcpResetClosesFlow) {
  const Packet syn = sent_by(kA, L4::tcp);
  const uint16_t port = masquerade(syn, kA);
  const Packet out = masqueraded(syn, port);
  for (uint8_t flags : {kSynAck, uint8_t(kRst | kAck)})
    ASSERT_EQ(run_uplink(build(answer(out, flags))).retval, TC_ACT_REDIRECT);
  expect_flow(syn, out, EBPFNET_CT_F_SNAT, EBPFNET_CT_CLOSING, deadline(kClosingTimeout));
}

// Two endpoints, one source port, one destination: the translated tuples
// must differ, and each reply must find its own endpoint.
TEST_F(NatTest, SameSourcePortFromTwoEndpointsGetsTwoNatPorts) {
  const Packet from_a = sent_by(kA, L4::udp), from_b = sent_by(kB, L4::udp);
  const uint16_t port_a = masquerade(from_a, kA);
  const uint16_t port_b = masquerade(from_b, kB);
  EXPECT_NE(port_a, port_b);
  EXPECT_EQ(ct_entries(), 4u);

  struct Reply {
    const Endpoint& to;
    Packet sent;
    uint16_t port;
  };
  for (const Reply& rep : {Reply{kA, from_a, port_a}, Reply{kB, from_b, port_b}}) {
    SCOPED_TRACE("reply for " + rep.to.dev);
    const Packet back = answer(masqueraded(rep.sent, rep.port));
    const Counters before = counters();
    const TcRun r = run_uplink(build(back));
    EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
    EXPECT_TRUE(frames_equal(
        build(routed(with_dst(back, rep.to.ip, rep.sent.sport), rep.to.node_mac, rep.to.mac)),
        r.out));
    EXPECT_TRUE(same_counters(Counters(before).rx(rep.to, build(back).size()), counters()));
  }
}

// With one port there is one flow per destination: the next to the same
// destination is dropped (and counted on its sender), one elsewhere is not.
TEST_F(NatTest, ExhaustedPortRangeDropsWithNatNoPort) {
  NodeConfig c = config();
  c[EBPFNET_CFG_NAT_PORT_MAX] = c[EBPFNET_CFG_NAT_PORT_MIN];
  dp_->maps().write_config(c);

  EXPECT_EQ(masquerade(sent_by(kA, L4::udp), kA), kPortMin);
  const Bytes second = build(sent_by(kB, L4::udp));
  const Counters before = counters();
  const TcRun r = run_endpoint(second, kB);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT));
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kB, second.size()).dropped(kB, EBPFNET_DROP_NAT_NO_PORT), counters()));
  EXPECT_EQ(ct_entries(), 2u) << "a refused flow left entries";

  Packet elsewhere = sent_by(kB, L4::udp);
  elsewhere.dst = kServer2;
  EXPECT_EQ(masquerade(elsewhere, kB), kPortMin);
}

// A new connection (a SYN) may take over the port of a closing flow to the
// same destination; the closed flow's other entry goes with it.
TEST_F(NatTest, SynTakesOverPortOfClosingFlow) {
  NodeConfig c = config();
  c[EBPFNET_CFG_NAT_PORT_MAX] = c[EBPFNET_CFG_NAT_PORT_MIN];
  dp_->maps().write_config(c);
  const Packet from_a = sent_by(kA, L4::tcp);
  ASSERT_EQ(masquerade(from_a, kA), kPortMin);
  Packet fin = from_a;
  fin.tcp_flags = kFin | kAck;
  ASSERT_EQ(run_endpoint(build(fin), kA).retval, TC_ACT_REDIRECT);

  Packet not_syn = sent_by(kB, L4::tcp);
  not_syn.tcp_flags = kAck;
  EXPECT_EQ(verdict_name(run_endpoint(build(not_syn), kB).retval), verdict_name(TC_ACT_SHOT))
      << "only a SYN may take over a closing flow's port";

  const Packet from_b = sent_by(kB, L4::tcp);
  EXPECT_EQ(masquerade(from_b, kB), kPortMin);
  expect_flow(from_b, masqueraded(from_b, kPortMin), EBPFNET_CT_F_SNAT, EBPFNET_CT_NEW,
              deadline(kSynTimeout));
  EXPECT_EQ(ct_entries(), 2u) << str(dp_->maps().ct_flows());
  const Packet back = answer(masqueraded(from_b, kPortMin));
  const TcRun r = run_uplink(build(back));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(
      build(routed(with_dst(back, kB.ip, from_b.sport), kB.node_mac, kB.mac)), r.out));
}

// When the server closed first it holds the tuple in TIME_WAIT: its port is
// not handed to another endpoint's connection to it, even after the flow's
// entries expire, until that wait is over; the refused SYN is counted.
TEST_F(NatTest, PortInThePeersTimeWaitIsNotReused) {
  NodeConfig c = config();
  c[EBPFNET_CFG_NAT_PORT_MAX] = c[EBPFNET_CFG_NAT_PORT_MIN];
  dp_->maps().write_config(c);
  const Packet from_a = sent_by(kA, L4::tcp);
  ASSERT_EQ(masquerade(from_a, kA), kPortMin);
  const Packet server_fin = answer(masqueraded(from_a, kPortMin), kFin | kAck);
  ASSERT_EQ(verdict_name(run_uplink(build(server_fin)).retval), verdict_name(TC_ACT_REDIRECT));
  Packet fin = from_a;
  fin.tcp_flags = kFin | kAck;
  ASSERT_EQ(verdict_name(run_endpoint(build(fin), kA).retval), verdict_name(TC_ACT_REDIRECT));

  const Bytes syn_b = build(sent_by(kB, L4::tcp));
  for (const char* when : {"closing", "expired"}) {
    SCOPED_TRACE(when);
    const Counters before = counters();
    EXPECT_EQ(verdict_name(run_endpoint(syn_b, kB).retval), verdict_name(TC_ACT_SHOT));
    EXPECT_TRUE(same_counters(
        Counters(before).tx(kB, syn_b.size()).dropped(kB, EBPFNET_DROP_NAT_NO_PORT), counters()));
    expire(key_of(server_fin));
    expire(key_of(from_a));
  }
  // Once the server's TIME_WAIT is over, the port serves again.
  const ebpfnet_ct_key waiting = key_of(server_fin);
  ebpfnet_ct_entry e{};
  ASSERT_EQ(bpf_map_lookup_elem(ct_fd(), &waiting, &e), 0);
  EXPECT_TRUE(e.flags & EBPFNET_CT_F_PEER_WAITS);
  e.expires_ns = monotonic_ns() - 61 * kNsPerSec;
  ASSERT_EQ(bpf_map_update_elem(ct_fd(), &waiting, &e, BPF_EXIST), 0);
  EXPECT_EQ(masquerade(sent_by(kB, L4::tcp), kB), kPortMin);
}

// Removing an endpoint removes exactly its flows (masqueraded, published,
// ICMP); unpublishing a port removes the flows through it.
TEST_F(NatTest, ForgettingAnEndpointOrAPortRemovesExactlyTheirFlows) {
  publish(L4::tcp);
  masquerade(sent_by(kA, L4::udp), kA);
  masquerade(sent_by(kA, L4::icmp), kA);
  const uint16_t b_port = masquerade(sent_by(kB, L4::udp), kB);
  const Packet client{.l4 = L4::tcp, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient,
                      .dst = kUplinkIp, .sport = 50000, .dport = kPublished, .tcp_flags = kSyn};
  ASSERT_EQ(verdict_name(run_uplink(build(client)).retval), verdict_name(TC_ACT_REDIRECT));
  ASSERT_EQ(ct_entries(), 8u) << str(dp_->maps().ct_flows());

  EXPECT_EQ(dp_->maps().ct_forget_published(IPPROTO_UDP, kPublished), 0u) << "another protocol's port";
  EXPECT_EQ(dp_->maps().ct_forget_published(IPPROTO_TCP, kPublished), 2u);
  EXPECT_EQ(dp_->maps().ct_forget_addresses({kA.ip}), 4u);
  const auto left = dp_->maps().ct_flows();
  ASSERT_EQ(left.size(), 2u) << str(left);
  EXPECT_TRUE(find_entry(left, key_of(sent_by(kB, L4::udp))).has_value()) << "B's flow stays";
  EXPECT_TRUE(find_entry(left, key_of(answer(masqueraded(sent_by(kB, L4::udp), b_port)))).has_value());
}

// The port search goes on past a taken port: of two ports, the second flow
// gets whichever the first left, wherever its random start falls.
TEST_F(NatTest, PortSearchFindsTheLastFreePort) {
  NodeConfig c = config();
  c[EBPFNET_CFG_NAT_PORT_MAX] = c[EBPFNET_CFG_NAT_PORT_MIN] + 1;
  dp_->maps().write_config(c);
  for (int round = 0; round < 16; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const uint16_t a = masquerade(sent_by(kA, L4::udp), kA);
    const uint16_t b = masquerade(sent_by(kB, L4::udp), kB);
    EXPECT_NE(a, b);
    EXPECT_EQ(a + b, 2 * kPortMin + 1);
    dp_->maps().ct_flush();
  }
}

// An entry past its deadline is gone for the datapath and for listing, and
// its translated tuple is free for a new flow.
TEST_F(NatTest, ExpiredFlowIsIgnoredAndItsTupleReused) {
  const Packet from_a = sent_by(kA, L4::udp);
  const uint16_t port = masquerade(from_a, kA);
  const Packet back = answer(masqueraded(from_a, port));
  expire(key_of(from_a));
  expire(key_of(back));

  const Counters before = counters();
  const TcRun r = run_uplink(build(back));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_OK));
  EXPECT_TRUE(frames_equal(build(back), r.out));
  EXPECT_TRUE(same_counters(before, counters()));
  EXPECT_TRUE(dp_->maps().ct_flows().empty()) << str(dp_->maps().ct_flows());

  // The only port left is the expired flow's: B's flow must get it.
  NodeConfig c = config();
  c[EBPFNET_CFG_NAT_PORT_MIN] = c[EBPFNET_CFG_NAT_PORT_MAX] = port;
  dp_->maps().write_config(c);
  const Packet from_b = sent_by(kB, L4::udp);
  EXPECT_EQ(masquerade(from_b, kB), port);
  expect_flow(from_b, masqueraded(from_b, port), EBPFNET_CT_F_SNAT, EBPFNET_CT_NEW,
              deadline(kUdpTimeout));
  const TcRun to_b = run_uplink(build(back));
  EXPECT_EQ(verdict_name(to_b.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(
      build(routed(with_dst(back, kB.ip, from_b.sport), kB.node_mac, kB.mac)), to_b.out));
}

// The neighbour of the way out is unknown: the kernel resolves it on
// redirect, so the program leaves the Ethernet header alone.
TEST_F(NatTest, UnresolvedNeighbourIsLeftToRedirectNeigh) {
  Netlink().del_neighbor({.ifindex = up_, .ip = kRouterIp, .mac = kRouterMac});
  const Packet in = sent_by(kA, L4::udp);
  const TcRun r = run_endpoint(build(in), kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  Packet want = with_src(in, kUplinkIp, sport_of(r.out, L4::udp));
  want.ttl--;
  EXPECT_TRUE(frames_equal(build(want), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  EXPECT_EQ(ct_entries(), 2u);
}

// Translation finds the L4 header behind IP options.
TEST_F(NatTest, MasqueradesBehindIpOptions) {
  uint16_t sport = 40000;
  for (L4 l4 : {L4::tcp, L4::udp, L4::icmp}) {
    SCOPED_TRACE(l4_name(l4));
    Packet in = sent_by(kA, l4, sport++);
    in.ip_options = {0x94, 4, 0, 0};  // router alert
    const uint16_t port = masquerade(in, kA);
    const TcRun back = run_uplink(build(answer(masqueraded(in, port))));
    EXPECT_EQ(verdict_name(back.retval), verdict_name(TC_ACT_REDIRECT));
    EXPECT_TRUE(checksums_valid(back.out));
    EXPECT_EQ(sport_of(back.out, l4), l4 == L4::icmp ? in.sport : in.dport);
  }
}

// A packet of a flow too big for the uplink: with DF the node's stack owes
// the endpoint "fragmentation needed", so it gets the packet untranslated;
// without DF the stack would fragment it untranslated, so it is dropped.
TEST_F(NatTest, OversizePacketsOfFlowAreNotTranslated) {
  const Packet in = sent_by(kA, L4::udp);
  masquerade(in, kA);
  Packet big = in;
  big.payload = kOversize;
  const Bytes with_df = build(big);
  big.frag = 0;
  const Bytes without_df = build(big);

  Counters before = counters();
  TcRun r = run_endpoint(with_df, kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_OK));
  EXPECT_TRUE(frames_equal(with_df, r.out));
  EXPECT_TRUE(same_counters(Counters(before).tx(kA, with_df.size()), counters()));

  before = counters();
  r = run_endpoint(without_df, kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT));
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kA, without_df.size()).dropped(kA, EBPFNET_DROP_NAT_UNSUPPORTED),
      counters()));
  EXPECT_EQ(ct_entries(), 2u);
}

// The first packet of a flow too big for the uplink and without DF is not
// left to the stack, which would fragment it and send it untranslated.
TEST_F(NatTest, OversizeFirstPacketWithoutDfIsDropped) {
  Packet big = sent_by(kA, L4::udp);
  big.payload = kOversize;
  big.frag = 0;
  const Bytes frame = build(big);
  const Counters before = counters();
  const TcRun r = run_endpoint(frame, kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT));
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kA, frame.size()).dropped(kA, EBPFNET_DROP_NAT_UNSUPPORTED),
      counters()));
  EXPECT_EQ(ct_entries(), 0u);
}

// A GSO packet is far longer than the MTU but leaves as segments that fit:
// it is translated like any other (the stack would send it untranslated).
TEST_F(NatTest, GsoPacketIsMasqueraded) {
  const Packet syn = sent_by(kA, L4::tcp);
  const uint16_t port = masquerade(syn, kA);
  Packet segs = syn;
  segs.tcp_flags = kAck;
  segs.payload = std::string(2 * 1448, 'z');  // test-run takes at most a page
  const TcRun r = run_endpoint(build(segs), kA, {.size = 1448, .segs = 2});
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(masqueraded(segs, port)), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
}

// Destinations the node reaches by routing (other nodes' pools) leave
// through the uplink with the endpoint's own address.
TEST_F(NatTest, RoutedPrefixLeavesWithoutMasquerade) {
  dp_->maps().put_routed(cidr("203.0.113.0/24"));
  const Packet in = sent_by(kA, L4::udp);
  const Counters before = counters();
  const TcRun r = run_endpoint(build(in), kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(routed(in, kUplinkMac, kRouterMac)), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  EXPECT_EQ(ct_entries(), 0u);
  EXPECT_TRUE(same_counters(Counters(before).tx(kA, build(in).size()), counters()));
}

// And the other way: traffic from such a prefix for an endpoint's own
// address goes straight to it (from elsewhere it is left alone: see the table).
TEST_F(NatTest, UplinkTrafficFromRoutedPrefixReachesEndpoint) {
  dp_->maps().put_routed(cidr("203.0.113.0/24"));
  const Packet in{.l4 = L4::udp, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient,
                  .dst = kA.ip, .sport = 50000, .dport = 53};
  const Counters before = counters();
  const TcRun r = run_uplink(build(in));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(routed(in, kA.node_mac, kA.mac)), r.out));
  EXPECT_EQ(ct_entries(), 0u);
  EXPECT_TRUE(same_counters(Counters(before).rx(kA, build(in).size()), counters()));
}

struct ErrorCase {
  std::string name;
  L4 l4;
  IcmpError error;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class IcmpErrors : public NatTest, public ::testing::WithParamInterface<ErrorCase> {};

// A router's error about a masqueraded packet reaches the endpoint that sent
// it, quoting the packet as the endpoint sent it (after our hop).
TEST_P(IcmpErrors, AboutMasqueradedPacketReachSender) {
  const ErrorCase& c = GetParam();
  const Packet in = sent_by(kA, c.l4);
  const Packet out = masqueraded(in, masquerade(in, kA));
  const Bytes error = icmp_error(c.error, kRouterMac, kUplinkMac, kRouterIp, kUplinkIp, 64,
                                 quote_of(build(out)));
  const Counters before = counters();
  const TcRun r = run_uplink(error);

  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  Packet sent = in;
  sent.ttl--;
  const Bytes quote = with_l4_checksum_of(quote_of(build(sent)), quote_of(build(out)), c.l4);
  EXPECT_TRUE(frames_equal(
      icmp_error(c.error, kA.node_mac, kA.mac, kRouterIp, kA.ip, 63, quote), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  EXPECT_TRUE(quote_checksum_valid(r.out));
  EXPECT_TRUE(same_counters(Counters(before).rx(kA, error.size()), counters()));
}

INSTANTIATE_TEST_SUITE_P(
    Table, IcmpErrors,
    ::testing::Values(ErrorCase{"TcpFragmentationNeeded", L4::tcp, {3, 4, 1400}},
                      ErrorCase{"UdpTimeExceeded", L4::udp, {11, 0}},
                      ErrorCase{"UdpPortUnreachable", L4::udp, {3, 3}},
                      ErrorCase{"EchoTimeExceeded", L4::icmp, {11, 0}}),
    [](const auto& info) { return info.param.name; });

class PublishedPort : public NatTest, public ::testing::WithParamInterface<L4> {};

TEST_P(PublishedPort, TranslatesBothWays) {
  const L4 l4 = GetParam();
  publish(l4);
  const Packet in{.l4 = l4, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient,
                  .dst = kUplinkIp, .sport = 50000, .dport = kPublished, .tcp_flags = kSyn};
  const Bytes frame = build(in);
  Counters before = counters();
  const TcRun r = run_uplink(frame);

  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  const Packet out = routed(with_dst(in, kA.ip, kTargetPort), kA.node_mac, kA.mac);
  EXPECT_TRUE(frames_equal(build(out), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  EXPECT_TRUE(same_counters(Counters(before).rx(kA, frame.size()), counters()));
  expect_flow(in, out, EBPFNET_CT_F_DNAT, EBPFNET_CT_NEW, deadline(new_flow_timeout(l4)));

  const Packet back = answer(out);
  before = counters();
  const TcRun rb = run_endpoint(build(back), kA);
  EXPECT_EQ(verdict_name(rb.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(masqueraded(back, kPublished)), rb.out));
  EXPECT_TRUE(checksums_valid(rb.out));
  EXPECT_TRUE(same_counters(Counters(before).tx(kA, build(back).size()), counters()));
  expect_flow(in, out, EBPFNET_CT_F_DNAT, EBPFNET_CT_ESTABLISHED,
              deadline(established_timeout(l4)));
}

INSTANTIATE_TEST_SUITE_P(Protocols, PublishedPort, ::testing::Values(L4::tcp, L4::udp),
                         [](const auto& info) { return l4_name(info.param); });

// B reaches A through the uplink address: DNAT straight to A, and A's
// answer comes back to B from the published address, never leaving the node.
TEST_F(NatTest, HairpinThroughPublishedPort) {
  publish(L4::tcp);
  const Packet in{.l4 = L4::tcp, .smac = kB.mac, .dmac = kB.node_mac, .src = kB.ip,
                  .dst = kUplinkIp, .sport = 41000, .dport = kPublished, .tcp_flags = kSyn};
  Counters before = counters();
  const TcRun r = run_endpoint(build(in), kB);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  const Packet out = routed(with_dst(in, kA.ip, kTargetPort), kA.node_mac, kA.mac);
  EXPECT_TRUE(frames_equal(build(out), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  EXPECT_TRUE(same_counters(Counters(before).tx(kB, build(in).size()).rx(kA, build(in).size()),
                            counters()));
  expect_flow(in, out, EBPFNET_CT_F_DNAT, EBPFNET_CT_NEW, deadline(kSynTimeout));

  const Packet back = answer(out);
  before = counters();
  const TcRun rb = run_endpoint(build(back), kA);
  EXPECT_EQ(verdict_name(rb.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(
      build(routed(with_src(back, kUplinkIp, kPublished), kB.node_mac, kB.mac)), rb.out));
  EXPECT_TRUE(checksums_valid(rb.out));
  const size_t len = build(back).size();
  EXPECT_TRUE(same_counters(Counters(before).tx(kA, len).rx(kB, len), counters()));
  expect_flow(in, out, EBPFNET_CT_F_DNAT, EBPFNET_CT_ESTABLISHED, deadline(kTcpTimeout));
}

// An endpoint's error about a connection to its published port leaves from
// the published address and port, as the client knows them.
TEST_F(NatTest, IcmpErrorFromEndpointAboutPublishedPortLeavesTranslated) {
  publish(L4::udp);
  const Packet in{.l4 = L4::udp, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient,
                  .dst = kUplinkIp, .sport = 50000, .dport = kPublished};
  const TcRun r = run_uplink(build(in));
  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  const Packet out = routed(with_dst(in, kA.ip, kTargetPort), kA.node_mac, kA.mac);
  const IcmpError unreachable{3, 3};
  const Bytes error =
      icmp_error(unreachable, kA.mac, kA.node_mac, kA.ip, kClient, 64, quote_of(build(out)));
  const TcRun re = run_endpoint(error, kA);

  EXPECT_EQ(verdict_name(re.retval), verdict_name(TC_ACT_REDIRECT));
  Packet arrived = in;
  arrived.ttl--;
  const Bytes quote =
      with_l4_checksum_of(quote_of(build(arrived)), quote_of(build(out)), L4::udp);
  EXPECT_TRUE(frames_equal(
      icmp_error(unreachable, kUplinkMac, kRouterMac, kUplinkIp, kClient, 63, quote), re.out));
  EXPECT_TRUE(checksums_valid(re.out));
  EXPECT_TRUE(quote_checksum_valid(re.out));
}

// An endpoint reaching its own published port is masqueraded as well, so
// that its answer comes back through the datapath instead of straight to itself.
TEST_F(NatTest, HairpinToOwnPublishedPortIsMasqueraded) {
  publish(L4::tcp);
  const Packet in{.l4 = L4::tcp, .smac = kA.mac, .dmac = kA.node_mac, .src = kA.ip,
                  .dst = kUplinkIp, .sport = 41000, .dport = kPublished, .tcp_flags = kSyn};
  const TcRun r = run_endpoint(build(in), kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  const uint16_t port = sport_of(r.out, L4::tcp);
  EXPECT_GE(port, kPortMin);
  EXPECT_LE(port, kPortMax);
  const Packet out = routed(with_src(with_dst(in, kA.ip, kTargetPort), kUplinkIp, port),
                            kA.node_mac, kA.mac);
  EXPECT_TRUE(frames_equal(build(out), r.out));
  EXPECT_TRUE(checksums_valid(r.out));
  expect_flow(in, out, EBPFNET_CT_F_DNAT | EBPFNET_CT_F_SNAT, EBPFNET_CT_NEW,
              deadline(kSynTimeout));

  const Packet back = answer(out);
  const TcRun rb = run_endpoint(build(back), kA);
  EXPECT_EQ(verdict_name(rb.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(frames_equal(build(routed(answer(in), kA.node_mac, kA.mac)), rb.out));
  EXPECT_TRUE(checksums_valid(rb.out));
}

// Listing skips expired entries; flushing removes every entry, after which
// replies are no longer translated.
TEST_F(NatTest, CtFlowsSkipsExpiredAndFlushRemovesAll) {
  const Packet udp = sent_by(kA, L4::udp), tcp = sent_by(kA, L4::tcp, 40001);
  const Packet icmp = sent_by(kB, L4::icmp, 0x4242);
  const uint16_t udp_port = masquerade(udp, kA);
  masquerade(tcp, kA);
  const uint16_t icmp_port = masquerade(icmp, kB);
  EXPECT_EQ(dp_->maps().ct_flows().size(), 6u);
  EXPECT_EQ(dp_->maps().ct_flows(4).size(), 4u);

  expire(key_of(udp));
  expire(key_of(answer(masqueraded(udp, udp_port))));
  const std::vector<CtFlow> live = dp_->maps().ct_flows();
  EXPECT_EQ(live.size(), 4u) << str(live);
  EXPECT_FALSE(find_entry(live, key_of(udp)));
  EXPECT_FALSE(find_entry(live, key_of(answer(masqueraded(udp, udp_port)))));
  EXPECT_TRUE(find_entry(live, key_of(tcp)));
  EXPECT_TRUE(find_entry(live, key_of(icmp)));

  EXPECT_EQ(dp_->maps().ct_flush(), 6u);
  EXPECT_EQ(ct_entries(), 0u);
  EXPECT_TRUE(dp_->maps().ct_flows().empty());
  const Bytes back = build(answer(masqueraded(icmp, icmp_port)));
  const TcRun r = run_uplink(back);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_OK));
  EXPECT_TRUE(frames_equal(back, r.out));
}

// What NAT must leave alone, or refuse: {program, frame, verdict, drop}.
// The frame always comes out unchanged and no conntrack entry is made.
struct Untouched {
  std::string name;
  bool at_uplink;  // from_uplink; else from_endpoint on A's veth
  Bytes in;
  int verdict = TC_ACT_OK;
  int drop = -1;  // counted on A when the frame is dropped
  bool uplink_configured = true;
};

void PrintTo(const Untouched& c, std::ostream* os) { *os << c.name; }

Packet to_uplink(L4 l4, uint16_t dport) {
  return {.l4 = l4, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient, .dst = kUplinkIp,
          .sport = 50000, .dport = dport, .tcp_flags = kSyn};
}

Bytes ip_from_a(Ipv4 dst, uint8_t protocol, const Bytes& payload, uint16_t frag = kDontFragment) {
  return Frame()
      .eth(kA.mac, kA.node_mac)
      .ipv4({.src = kA.ip, .dst = dst, .frag = frag, .protocol = protocol})
      .payload(payload)
      .build();
}

std::vector<Untouched> untouched() {
  Packet ack_to_published = to_uplink(L4::tcp, kPublished);
  ack_to_published.tcp_flags = kAck;
  Packet to_endpoint_a = to_uplink(L4::udp, 53);
  to_endpoint_a.dst = kA.ip;
  Packet other_addr = to_uplink(L4::tcp, kPublished);
  other_addr.dst = kOtherUplinkAddr;
  const Bytes gre = {0x00, 0x00, 0x08, 0x00, 0x45, 0x00};  // GRE header, then IPv4 would follow
  const Bytes port_unreachable = {3, 3, 0xfc, 0xfc, 0, 0, 0, 0};
  Packet ttl_one = sent_by(kA, L4::udp);
  ttl_one.ttl = 1;
  Packet elsewhere = sent_by(kA, L4::udp);
  elsewhere.dst = kRoutedElsewhere;
  Packet oversize = sent_by(kA, L4::udp);
  oversize.payload = kOversize;
  const Bytes unknown_flow = quote_of(build(masqueraded(sent_by(kA, L4::udp), kPortMin)));
  return {
      // from_uplink: the node's own traffic
      {"TcpToUnpublishedUplinkPort", true, build(to_uplink(L4::tcp, 22))},
      {"UdpToUplinkPortWithoutFlow", true, build(to_uplink(L4::udp, kPortMin))},
      {"UdpToPortPublishedForTcp", true, build(to_uplink(L4::udp, kPublished))},
      {"TcpAckToPublishedPortStartsNoFlow", true, build(ack_to_published)},
      {"UdpToEndpointAddressFromUnroutedSource", true, build(to_endpoint_a)},
      {"IcmpEchoToUplink", true, build(to_uplink(L4::icmp, 0x77))},
      {"TcpToOtherAddress", true, build(other_addr)},
      {"FragmentToPublishedPort", true,
       Frame()
           .eth(kRouterMac, kUplinkMac)
           .ipv4({.src = kClient, .dst = kUplinkIp, .frag = kMoreFragments})
           .tcp(50000, kPublished, 1, kSyn)
           .build()},
      {"ArpForUplinkAddress", true,
       Frame()
           .eth(kRouterMac, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
           .arp({.op = kArpRequest, .sha = kRouterMac, .spa = kRouterIp, .tpa = kUplinkIp})
           .build()},
      {"IcmpErrorAboutUnknownFlow", true,
       icmp_error({11, 0}, kRouterMac, kUplinkMac, kRouterIp, kUplinkIp, 64, unknown_flow)},
      {"Ipv6", true,
       Frame()
           .eth(kRouterMac, kUplinkMac)
           .ipv6({.src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
                  .dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}})
           .udp(50000, kPublished)
           .build()},

      // from_endpoint: no NAT where it does not apply
      {"NoUplinkConfigured", false, build(sent_by(kA, L4::udp)), TC_ACT_OK, -1, false},
      {"GreWithNoUplinkConfigured", false, ip_from_a(kServer, kProtoGre, gre), TC_ACT_OK, -1,
       false},
      {"RoutedElsewhere", false, build(elsewhere)},
      {"GreRoutedElsewhere", false, ip_from_a(kRoutedElsewhere, kProtoGre, gre)},
      {"ExpiringTtlGoesToStackUntranslated", false, build(ttl_one)},
      {"OversizeWithDontFragmentGoesToStack", false, build(oversize)},

      // from_endpoint: would leave through the uplink with the endpoint's address
      {"FirstFragmentIsUnsupported", false,
       Frame()
           .eth(kA.mac, kA.node_mac)
           .ipv4({.src = kA.ip, .dst = kServer, .frag = kMoreFragments})
           .udp(40000, 53)
           .payload(kPayload)
           .build(),
       TC_ACT_SHOT, EBPFNET_DROP_NAT_UNSUPPORTED},
      {"LaterFragmentIsUnsupported", false,
       ip_from_a(kServer, IPPROTO_UDP, Bytes(16, 0x5a), 185), TC_ACT_SHOT,
       EBPFNET_DROP_NAT_UNSUPPORTED},
      {"GreIsUnsupported", false, ip_from_a(kServer, kProtoGre, gre), TC_ACT_SHOT,
       EBPFNET_DROP_NAT_UNSUPPORTED},
      {"IcmpErrorIsUnsupported", false, ip_from_a(kServer, IPPROTO_ICMP, port_unreachable),
       TC_ACT_SHOT, EBPFNET_DROP_NAT_UNSUPPORTED},
  };
}

class UntouchedFrames : public NatTest, public ::testing::WithParamInterface<Untouched> {};

TEST_P(UntouchedFrames, PassOrDropWithoutTranslation) {
  const Untouched& c = GetParam();
  publish(L4::tcp);
  if (!c.uplink_configured) {
    NodeConfig cfg = config();
    cfg[EBPFNET_CFG_UPLINK_IFINDEX] = 0;
    dp_->maps().write_config(cfg);
  }
  const Counters before = counters();
  const TcRun r = c.at_uplink ? run_uplink(c.in) : run_endpoint(c.in, kA);

  EXPECT_EQ(verdict_name(r.retval), verdict_name(c.verdict));
  EXPECT_TRUE(frames_equal(c.in, r.out));
  EXPECT_EQ(ct_entries(), 0u) << str(dp_->maps().ct_flows());
  Counters want = before;
  if (!c.at_uplink) want.tx(kA, c.in.size());
  if (c.drop >= 0) want.dropped(kA, c.drop);
  EXPECT_TRUE(same_counters(want, counters()));
}

INSTANTIATE_TEST_SUITE_P(Table, UntouchedFrames, ::testing::ValuesIn(untouched()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ebpfnet::test

namespace ebpfnet::test {
namespace {

// Same-node delivery is counted on the receiver also while ports are
// published (then every frame takes the conntrack path).
TEST_F(NatTest, LocalDeliveryIsCountedWhilePortsArePublished) {
  publish(L4::tcp);
  Packet p = sent_by(kA, L4::udp);
  p.dst = kB.ip;
  const Bytes frame = build(p);
  const Counters before = counters();
  const TcRun r = run_endpoint(frame, kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(
      same_counters(Counters(before).tx(kA, frame.size()).rx(kB, frame.size()), counters()));
}

// A reply with no hop left is dropped before translation: the node's stack
// must not quote an endpoint's address back to the outside. The node's own
// such packets (no flow, no published port) still pass.
TEST_F(NatTest, LastHopPacketsOfFlowsAreDroppedUntranslated) {
  const Packet syn = sent_by(kA, L4::udp);
  const uint16_t port = masquerade(syn, kA);
  Packet back = answer(masqueraded(syn, port));
  back.ttl = 1;
  const TcRun r = run_uplink(build(back));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT));
  EXPECT_EQ(dp_->maps().node_drops()[EBPFNET_DROP_TTL_EXCEEDED], 1u);

  Packet own = back;
  own.dport = 9;  // no flow there
  const TcRun o = run_uplink(build(own));
  EXPECT_EQ(verdict_name(o.retval), verdict_name(TC_ACT_OK));
  EXPECT_TRUE(frames_equal(build(own), o.out));
}

// The outside peer of an endpoint's ping cannot ping the endpoint through
// the ping's identifier: an echo request never matches a reply entry.
TEST_F(NatTest, EchoRequestFromOutsideDoesNotRideAnEndpointsPing) {
  const Packet ping = sent_by(kA, L4::icmp);
  const uint16_t id = masquerade(ping, kA);
  Packet request = answer(masqueraded(ping, id));
  request.echo_reply = false;
  const TcRun r = run_uplink(build(request));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_OK));
  EXPECT_TRUE(frames_equal(build(request), r.out));
  // The real reply still gets through.
  EXPECT_EQ(run_uplink(build(answer(masqueraded(ping, id)))).retval, TC_ACT_REDIRECT);
}

// A new connection on the tuple of a closed one is tracked afresh: its
// SYN-ACK establishes it, with the established timeout.
TEST_F(NatTest, NewConnectionOnAClosedTupleEstablishes) {
  const Packet syn = sent_by(kA, L4::tcp);
  const uint16_t port = masquerade(syn, kA);
  const Packet out = masqueraded(syn, port);
  Packet fin = syn;
  fin.tcp_flags = kFin | kAck;
  ASSERT_EQ(run_endpoint(build(fin), kA).retval, TC_ACT_REDIRECT);
  ASSERT_EQ(run_endpoint(build(syn), kA).retval, TC_ACT_REDIRECT);
  ASSERT_EQ(run_uplink(build(answer(out, kSynAck))).retval, TC_ACT_REDIRECT);
  expect_flow(syn, out, EBPFNET_CT_F_SNAT, EBPFNET_CT_ESTABLISHED, deadline(kTcpTimeout));
}

}  // namespace
}  // namespace ebpfnet::test
