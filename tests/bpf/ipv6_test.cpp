// from_endpoint on IPv6 frames of dual-stack endpoints, through
// BPF_PROG_TEST_RUN: neighbour solicitations for the gateway answered
// (bytes checked against an advertisement written out by hand), NDP and
// source-address spoofing, router advertisements and redirects dropped and
// counted, forwarding between endpoints, and IPv6 to the outside dropped.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/datapath.hpp"
#include "packet.hpp"
#include "support.hpp"

namespace ebpfnet::test {
namespace {

Ipv6Addr a6(const char* s) { return Ipv6::parse(s).value().bytes(); }

struct Endpoint6 {
  int ifindex;
  Ipv4 ip;
  std::optional<Ipv6Addr> ip6;  // none: an IPv4-only endpoint
  Mac mac;
  Mac node_mac;
};

// Fake ifindexes: the program only uses them as keys and redirect targets.
const Endpoint6 kA{2001, *Ipv4::parse("10.240.0.10"), a6("fd00:240::a"), {0x02, 0xaa, 0, 0, 0, 0x01},
                   {0x02, 0xee, 0, 0, 0, 0x01}};
const Endpoint6 kB{2002, *Ipv4::parse("10.240.0.11"), a6("fd00:240::b"), {0x02, 0xaa, 0, 0, 0, 0x02},
                   {0x02, 0xee, 0, 0, 0, 0x02}};
const Endpoint6 kV4Only{2003, *Ipv4::parse("10.240.0.12"), std::nullopt, {0x02, 0xaa, 0, 0, 0, 0x03},
                        {0x02, 0xee, 0, 0, 0, 0x03}};
const Endpoint6* const kEndpoints[] = {&kA, &kB, &kV4Only};

const Ipv4 kGateway = *Ipv4::parse("10.240.0.1");
const Ipv6Addr kGateway6 = a6("fd00:240::1");
const Ipv6Addr kGatewayLl = a6("fe80::1");
const Ipv6Addr kOutside6 = a6("2001:db8:ffff::1");
const Ipv6Addr kUnspecified{};
const Mac kStrangerMac = {0x02, 0x66, 0x66, 0x66, 0x66, 0x66};

constexpr uint8_t kNs = 135, kNa = 136, kRa = 134, kRedirect = 137, kEchoRequest = 128;
constexpr uint8_t kProtoIcmp6 = 58, kProtoDestOpts = 60;

// ff02::1:ffXX:XXXX, the solicited-node group of a, and its MAC.
Ipv6Addr solicited_node(const Ipv6Addr& a) {
  Ipv6Addr m = a6("ff02::1:ff00:0");
  m[13] = a[13], m[14] = a[14], m[15] = a[15];
  return m;
}
Mac multicast_mac(const Ipv6Addr& a) { return {0x33, 0x33, a[12], a[13], a[14], a[15]}; }

// An ICMPv6 message in an IPv6 frame, its checksum computed here over the
// RFC 8200 pseudo-header (independently of the datapath's). dest_opts: a
// destination options header (PadN only) before it.
Bytes icmp6(const Mac& smac, const Mac& dmac, const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t hop_limit,
            uint8_t type, const Bytes& body, bool dest_opts = false) {
  Bytes msg = {type, 0, 0, 0};
  msg.insert(msg.end(), body.begin(), body.end());
  Bytes pseudo(src.begin(), src.end());
  pseudo.insert(pseudo.end(), dst.begin(), dst.end());
  const auto len = static_cast<uint32_t>(msg.size());
  pseudo.insert(pseudo.end(), {uint8_t(len >> 24), uint8_t(len >> 16), uint8_t(len >> 8), uint8_t(len), 0, 0, 0,
                               kProtoIcmp6});
  pseudo.insert(pseudo.end(), msg.begin(), msg.end());
  const uint16_t check = internet_checksum(pseudo);
  msg[2] = uint8_t(check >> 8), msg[3] = uint8_t(check);
  Bytes ext;
  if (dest_opts) ext = {kProtoIcmp6, 0, 1, 4, 0, 0, 0, 0};  // next, length 0 (8 bytes), PadN of 4
  const auto plen = static_cast<uint16_t>(ext.size() + msg.size());
  Bytes f(dmac.begin(), dmac.end());
  f.insert(f.end(), smac.begin(), smac.end());
  f.insert(f.end(), {0x86, 0xdd, 0x60, 0, 0, 0, uint8_t(plen >> 8), uint8_t(plen),
                     dest_opts ? kProtoDestOpts : kProtoIcmp6, hop_limit});
  f.insert(f.end(), src.begin(), src.end());
  f.insert(f.end(), dst.begin(), dst.end());
  f.insert(f.end(), ext.begin(), ext.end());
  f.insert(f.end(), msg.begin(), msg.end());
  return f;
}

// NS/NA body: reserved or flags word, target, then an optional
// link-layer address option (type 1 source, 2 target).
Bytes nd_body(uint8_t flags, const Ipv6Addr& target, std::optional<std::pair<uint8_t, Mac>> lla) {
  Bytes b = {flags, 0, 0, 0};
  b.insert(b.end(), target.begin(), target.end());
  if (lla) {
    b.insert(b.end(), {lla->first, 1});
    b.insert(b.end(), lla->second.begin(), lla->second.end());
  }
  return b;
}

// A's solicitation for target, from its own address, with its MAC.
Bytes solicit(const Endpoint6& e, const Ipv6Addr& target, std::optional<Mac> slla = std::nullopt,
              uint8_t hop_limit = 255, std::optional<Ipv6Addr> src = std::nullopt) {
  return icmp6(e.mac, multicast_mac(solicited_node(target)), src.value_or(*e.ip6), solicited_node(target), hop_limit, kNs,
               nd_body(0, target, slla ? std::optional(std::pair{uint8_t(1), *slla}) : std::nullopt));
}

Bytes udp6(const Endpoint6& from, const Mac& dmac, const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t hop = 64) {
  return Frame().eth(from.mac, dmac).ipv6({.src = src, .dst = dst, .hop_limit = hop}).udp(40000, 53).payload("v6").build();
}

class Ipv6FromEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    dp_.emplace(Datapath::load({kGateway}));
    uint64_t hi = 0, lo = 0;
    std::memcpy(&hi, kGateway6.data(), 8);
    std::memcpy(&lo, kGateway6.data() + 8, 8);
    dp_->maps().write_slot(EBPFNET_CFG_GATEWAY6_HI, hi);
    dp_->maps().write_slot(EBPFNET_CFG_GATEWAY6_LO, lo);
    for (const Endpoint6* e : kEndpoints) {
      const ebpfnet_endpoint ep = make_endpoint(e->ifindex, e->ip, e->mac, e->node_mac);
      dp_->maps().put_endpoint(ep);
      if (e->ip6) dp_->maps().put_endpoint6(ep, Ipv6(*e->ip6));
    }
  }

  TcRun run(const Bytes& frame, const Endpoint6& from) {
    return run_tc(dp_->from_endpoint_fd(), frame, static_cast<uint32_t>(from.ifindex));
  }
  EndpointStats stats(const Endpoint6& e) const { return dp_->maps().stats(e.ifindex).value(); }

  // Runs frame from `from` and expects verdict and (for a drop) one count
  // of reason. accepted: the frame passed anti-spoofing before it was
  // dropped, so it counts as sent (as IPv4's do).
  void expect(const Bytes& frame, const Endpoint6& from, int verdict, std::optional<int> reason = std::nullopt,
              bool accepted = false) {
    const EndpointStats before = stats(from);
    const TcRun r = run(frame, from);
    EXPECT_EQ(verdict_name(r.retval), verdict_name(verdict));
    const EndpointStats now = stats(from);
    if (reason) {
      EXPECT_EQ(now.drops[*reason], before.drops[*reason] + 1) << drop_reason_name(*reason);
      EXPECT_EQ(now.drops_total(), before.drops_total() + 1);
      EXPECT_EQ(now.tx_packets, before.tx_packets + (accepted ? 1 : 0)) << "counted as sent only once accepted";
    } else {
      EXPECT_EQ(now.drops_total(), before.drops_total());
    }
  }

  std::optional<Datapath> dp_;
};

// A's solicitation for the gateway and the advertisement the datapath owes
// it, written out byte by byte: router and solicited flags, not override,
// the node-side veth's MAC as target link-layer address.
// clang-format off
const Bytes kNaWire = {
    0x02, 0xaa, 0x00, 0x00, 0x00, 0x01, 0x02, 0xee, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,  // eth
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,                                      // 32 bytes of ICMPv6, hop 255
    0xfd, 0x00, 0x02, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,                       // from the gateway
    0xfd, 0x00, 0x02, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a,                       // to A
    0x88, 0x00, 0x00, 0x00,                                                              // NA, checksum below
    0xc0, 0x00, 0x00, 0x00,                                                              // R, S, not O
    0xfd, 0x00, 0x02, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,                       // target
    0x02, 0x01, 0x02, 0xee, 0x00, 0x00, 0x00, 0x01};                                     // target LLA
// clang-format on

Bytes with_checksum(Bytes f) {
  const size_t l3 = kEthHeaderLen, l4 = l3 + 40;
  f[l4 + 2] = f[l4 + 3] = 0;
  Bytes pseudo(f.begin() + l3 + 8, f.begin() + l3 + 40);
  const auto len = static_cast<uint32_t>(f.size() - l4);
  pseudo.insert(pseudo.end(), {0, 0, uint8_t(len >> 8), uint8_t(len), 0, 0, 0, kProtoIcmp6});
  pseudo.insert(pseudo.end(), f.begin() + l4, f.end());
  const uint16_t c = internet_checksum(pseudo);
  f[l4 + 2] = uint8_t(c >> 8), f[l4 + 3] = uint8_t(c);
  return f;
}

TEST_F(Ipv6FromEndpointTest, SolicitationForGatewayIsAnsweredWithHandWrittenBytes) {
  for (const bool with_option : {true, false}) {
    SCOPED_TRACE(with_option ? "with a source link-layer option" : "without options (the frame grows)");
    const Bytes ns = solicit(kA, kGateway6, with_option ? std::optional(kA.mac) : std::nullopt);
    const EndpointStats before = stats(kA);
    const TcRun r = run(ns, kA);
    EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
    EXPECT_TRUE(frames_equal(with_checksum(kNaWire), r.out));
    const EndpointStats now = stats(kA);
    EXPECT_EQ(now.tx_packets, before.tx_packets + 1);
    EXPECT_EQ(now.rx_packets, before.rx_packets + 1) << "the advertisement is delivered to A";
    EXPECT_EQ(now.drops_total(), 0u);
  }
}

TEST_F(Ipv6FromEndpointTest, SolicitationForGatewayLinkLocalIsAnswered) {
  const TcRun r = run(solicit(kB, kGatewayLl, kB.mac), kB);
  ASSERT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  ASSERT_EQ(r.out.size(), kNaWire.size());
  EXPECT_EQ(Bytes(r.out.begin(), r.out.begin() + 6), Bytes(kB.mac.begin(), kB.mac.end()));
  EXPECT_EQ(Bytes(r.out.begin() + 6, r.out.begin() + 12), Bytes(kB.node_mac.begin(), kB.node_mac.end()));
  EXPECT_EQ(Bytes(r.out.begin() + 22, r.out.begin() + 38), Bytes(kGatewayLl.begin(), kGatewayLl.end()))
      << "sent from the address solicited";
  EXPECT_EQ(r.out[54], kNa);
  EXPECT_EQ(r.out[58], 0xc0);
  EXPECT_TRUE(frames_equal(with_checksum(r.out), r.out)) << "the checksum holds";
}

TEST_F(Ipv6FromEndpointTest, SolicitationsNotForTheGatewayGoToTheStack) {
  expect(solicit(kA, *kB.ip6, kA.mac), kA, TC_ACT_OK);
  // Duplicate address detection of its own address, from ::.
  expect(solicit(kA, *kA.ip6, std::nullopt, 255, a6("::")), kA, TC_ACT_OK);
}

TEST_F(Ipv6FromEndpointTest, NdpSpoofingIsDropped) {
  // A source link-layer address that is not A's.
  expect(solicit(kA, kGateway6, kStrangerMac), kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_MAC);
  // Probing the gateway's address (DAD) claims it.
  expect(solicit(kA, kGateway6, std::nullopt, 255, a6("::")), kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_IP);
  // Advertising another endpoint's address, the gateway's, or its link-local one.
  for (const Ipv6Addr& target : {*kB.ip6, kGateway6, kGatewayLl}) {
    SCOPED_TRACE(Ipv6(target).str());
    expect(icmp6(kA.mac, multicast_mac(a6("ff02::1")), *kA.ip6, a6("ff02::1"), 255, kNa,
                 nd_body(0x20, target, std::pair{uint8_t(2), kA.mac})),
           kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_IP);
  }
  // Its own address with another MAC.
  expect(icmp6(kA.mac, multicast_mac(a6("ff02::1")), *kA.ip6, a6("ff02::1"), 255, kNa,
               nd_body(0x20, *kA.ip6, std::pair{uint8_t(2), kStrangerMac})),
         kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_MAC);
  // Its own address, truly: the stack may hear it.
  expect(icmp6(kA.mac, multicast_mac(a6("ff02::1")), *kA.ip6, a6("ff02::1"), 255, kNa,
               nd_body(0x20, *kA.ip6, std::pair{uint8_t(2), kA.mac})),
         kA, TC_ACT_OK);
  // Neighbour discovery that crossed a router (hop limit below 255).
  expect(solicit(kA, kGateway6, kA.mac, 64), kA, TC_ACT_SHOT, EBPFNET_DROP_MALFORMED);
}

TEST_F(Ipv6FromEndpointTest, RouterAdvertisementsAndRedirectsAreDroppedAndCounted) {
  const Bytes ra_body = {64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};  // hop limit, lifetime 1800 s
  const Bytes redirect_body = [] {
    Bytes b(4, 0);
    const Ipv6Addr t = a6("fd00:240::b"), d = a6("2001:db8::1");
    b.insert(b.end(), t.begin(), t.end());
    b.insert(b.end(), d.begin(), d.end());
    return b;
  }();
  const Ipv6Addr all_nodes = a6("ff02::1");
  // From its global and from a link-local address, and hidden behind a
  // destination options header (RFC 7113).
  for (const Ipv6Addr& src : {*kA.ip6, a6("fe80::a")}) {
    SCOPED_TRACE(Ipv6(src).str());
    expect(icmp6(kA.mac, multicast_mac(all_nodes), src, all_nodes, 255, kRa, ra_body), kA, TC_ACT_SHOT,
           EBPFNET_DROP_ND_ROUTER);
    expect(icmp6(kA.mac, kA.node_mac, src, *kB.ip6, 255, kRedirect, redirect_body), kA, TC_ACT_SHOT,
           EBPFNET_DROP_ND_ROUTER);
  }
  expect(icmp6(kA.mac, multicast_mac(all_nodes), *kA.ip6, all_nodes, 255, kRa, ra_body, true), kA, TC_ACT_SHOT,
         EBPFNET_DROP_ND_ROUTER);
  EXPECT_EQ(drop_reason_name(EBPFNET_DROP_ND_ROUTER), "nd-router");
}

TEST_F(Ipv6FromEndpointTest, SourceAddressSpoofingIsDropped) {
  expect(udp6(kA, kA.node_mac, *kB.ip6, *kB.ip6), kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_IP);
  expect(udp6(kA, kA.node_mac, kGateway6, *kB.ip6), kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_IP);
  // A link-local source only for traffic that stays on the link, and never the gateway's.
  expect(udp6(kA, kA.node_mac, a6("fe80::a"), *kB.ip6), kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_IP);
  expect(udp6(kA, kA.node_mac, kGatewayLl, a6("fe80::2")), kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_IP);
  expect(udp6(kA, kA.node_mac, a6("fe80::a"), kGatewayLl), kA, TC_ACT_OK);
  // :: only probes an address; it sends nothing else.
  expect(udp6(kA, kA.node_mac, kUnspecified, *kB.ip6), kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_IP);
  // Another endpoint's MAC (checked before any family).
  Bytes f = udp6(kA, kA.node_mac, *kA.ip6, *kB.ip6);
  std::copy(kStrangerMac.begin(), kStrangerMac.end(), f.begin() + 6);
  expect(f, kA, TC_ACT_SHOT, EBPFNET_DROP_SPOOFED_MAC);
}

TEST_F(Ipv6FromEndpointTest, ForwardedToAnotherEndpointByRedirectPeer) {
  const Bytes in = udp6(kA, kA.node_mac, *kA.ip6, *kB.ip6, 64);
  const EndpointStats a0 = stats(kA), b0 = stats(kB);
  const TcRun r = run(in, kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  // One routing hop: new MACs, hop limit one less, nothing else (IPv6 has
  // no header checksum; the UDP checksum does not cover the hop limit).
  Bytes want = udp6(kA, kA.node_mac, *kA.ip6, *kB.ip6, 63);
  std::copy(kB.mac.begin(), kB.mac.end(), want.begin());
  std::copy(kB.node_mac.begin(), kB.node_mac.end(), want.begin() + 6);
  EXPECT_TRUE(frames_equal(want, r.out));
  EXPECT_EQ(stats(kA).tx_packets, a0.tx_packets + 1);
  EXPECT_EQ(stats(kB).rx_packets, b0.rx_packets + 1);
  EXPECT_EQ(stats(kB).rx_bytes, b0.rx_bytes + in.size());
  // An echo request goes the same way.
  expect(icmp6(kA.mac, kA.node_mac, *kA.ip6, *kB.ip6, 64, kEchoRequest, {0, 1, 0, 1}), kA, TC_ACT_REDIRECT);
}

TEST_F(Ipv6FromEndpointTest, GatewayAndLastHopGoToTheStack) {
  expect(udp6(kA, kA.node_mac, *kA.ip6, kGateway6), kA, TC_ACT_OK);
  expect(udp6(kA, kA.node_mac, *kA.ip6, *kB.ip6, 1), kA, TC_ACT_OK);
  expect(icmp6(kA.mac, kA.node_mac, *kA.ip6, kGatewayLl, 64, kEchoRequest, {0, 1, 0, 1}), kA, TC_ACT_OK);
}

TEST_F(Ipv6FromEndpointTest, Ipv6BeyondTheNodeIsDroppedAndCounted) {
  expect(udp6(kA, kA.node_mac, *kA.ip6, kOutside6), kA, TC_ACT_SHOT, EBPFNET_DROP_IPV6_NO_WAY_OUT, true);
  expect(icmp6(kA.mac, kA.node_mac, *kA.ip6, kOutside6, 64, kEchoRequest, {0, 1, 0, 1}), kA, TC_ACT_SHOT,
         EBPFNET_DROP_IPV6_NO_WAY_OUT, true);
  EXPECT_EQ(drop_reason_name(EBPFNET_DROP_IPV6_NO_WAY_OUT), "ipv6-no-way-out");
}

TEST_F(Ipv6FromEndpointTest, MalformedAndIpv4OnlyEndpoints) {
  // The payload length claims more than the frame holds.
  Bytes f = udp6(kA, kA.node_mac, *kA.ip6, *kB.ip6);
  f[kEthHeaderLen + 5] += 16;
  expect(f, kA, TC_ACT_SHOT, EBPFNET_DROP_MALFORMED);
  // An endpoint without IPv6 sends none.
  expect(udp6(kV4Only, kV4Only.node_mac, *kA.ip6, *kB.ip6), kV4Only, TC_ACT_SHOT, EBPFNET_DROP_UNSUPPORTED_L3);
}

}  // namespace
}  // namespace ebpfnet::test
