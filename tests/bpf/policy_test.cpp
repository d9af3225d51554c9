// Network policy on crafted frames through BPF_PROG_TEST_RUN: verdicts of
// compiled rule sets on every path a new connection takes (same node,
// published port, masquerade), conntrack of policed flows, atomic
// replacement of a rule set, drop and flow events, and drop counters.
#include "ebpfnet/policy.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "datapath_fixture.hpp"
#include "ebpfnet/policy_maps.hpp"

namespace ebpfnet::test {
namespace {

constexpr PolicyAction kAllow = PolicyAction::allow;
constexpr PolicyAction kDeny = PolicyAction::deny;

// Endpoint names rules may use as peers.
std::optional<Ipv4> resolve(std::string_view name) {
  if (name == "a") return kA.ip;
  if (name == "b") return kB.ip;
  return std::nullopt;
}

struct Side {
  PolicyAction default_action = kAllow;
  std::vector<std::string> rules;
};

DirectionPolicy direction(const Side& s, PolicyDir dir) {
  DirectionPolicy d{s.default_action, {}};
  for (const std::string& r : s.rules) d.rules.push_back(parse_policy_rule(r, dir, resolve));
  return d;
}

Policy policy(const Side& ingress, const Side& egress) {
  return {direction(ingress, PolicyDir::ingress), direction(egress, PolicyDir::egress)};
}
Policy ingress(PolicyAction d, std::vector<std::string> rules = {}) {
  return policy({d, std::move(rules)}, {});
}
Policy egress(PolicyAction d, std::vector<std::string> rules = {}) {
  return policy({}, {d, std::move(rules)});
}

// What A sends to B (ICMP echo: the identifier is dport).
Packet a_to_b(L4 l4, uint16_t dport, uint16_t sport = 40000) {
  return with_dst(sent_by(kA, l4, sport), kB.ip, dport);
}

// An outside client's packet to the published port on the uplink.
Packet from_client(uint16_t sport = 50000) {
  return {.l4 = L4::tcp,
          .smac = kRouterMac,
          .dmac = kUplinkMac,
          .src = kClient,
          .dst = kUplinkIp,
          .sport = sport,
          .dport = kPublished,
          .tcp_flags = kSyn};
}

// p's addresses, MACs and TTL around a GRE header instead of its L4.
Bytes gre_frame(const Packet& p) {
  const Bytes gre = {0x00, 0x00, 0x08, 0x00, 0x45, 0x00};
  return Frame()
      .eth(p.smac, p.dmac)
      .ipv4({.src = p.src, .dst = p.dst, .ttl = p.ttl, .id = 0x2b2b, .protocol = kProtoGre})
      .payload(gre)
      .build();
}

// p's answer as its receiver sends it from its own eth0.
Packet reply_to(const Packet& p, uint8_t tcp_flags = kSynAck) {
  Packet a = answer(p, tcp_flags);
  const Endpoint& e = a.src == kA.ip ? kA : kB;
  a.smac = e.mac;
  a.dmac = e.node_mac;
  return a;
}

Bytes frame_of(const Packet& p, bool gre) { return gre ? gre_frame(p) : build(p); }

std::string reason_name(int reason) {
  return reason < 0 ? "none" : std::string(drop_reason_name(reason));
}

// Reads the "events" ring buffer.
class EventReader {
 public:
  explicit EventReader(int fd)
      : rb_(ring_buffer__new(fd, &EventReader::on_sample, this, nullptr)) {}
  ~EventReader() { ring_buffer__free(rb_); }
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  bool ok() const { return rb_ != nullptr; }

  // Every record written since the last call.
  std::vector<ebpfnet_event> take() {
    got_.clear();
    const int n = ring_buffer__consume(rb_);
    EXPECT_GE(n, 0) << "ring_buffer__consume";
    return got_;
  }

 private:
  static int on_sample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<EventReader*>(ctx);
    EXPECT_EQ(size, sizeof(ebpfnet_event)) << "event record size";
    ebpfnet_event ev{};
    std::memcpy(&ev, data, std::min(size, sizeof ev));
    self->got_.push_back(ev);
    return 0;
  }

  ring_buffer* rb_;
  std::vector<ebpfnet_event> got_;
};

class PolicyTest : public DatapathTest {
 protected:
  // Writes p's rule sets under fresh ids and points e at them, as
  // set_policy does: the node's count of policed endpoints goes up first.
  PolicyIds install(const Endpoint& e, const Policy& p) {
    const PolicyIds ids = allocate_policy_ids(p, ids_);
    write_rule_sets(dp_->maps(), p, ids);
    dp_->maps().write_slot(EBPFNET_CFG_POLICIES, ++policed_);
    switch_policy(dp_->maps(), e.ip, p, ids);
    return ids;
  }
  uint64_t policed_ = 0;

  // Runs p from A (or from the uplink when outside) and checks the verdict.
  TcRun send(const Packet& p, bool outside, int verdict) {
    const Bytes frame = build(p);
    const TcRun r = outside ? run_uplink(frame) : run_endpoint(frame, p.src == kB.ip ? kB : kA);
    EXPECT_EQ(verdict_name(r.retval), verdict_name(verdict)) << hex_diff(frame, r.out);
    return r;
  }

  // Every key of a map (policy_cidr, policy_port) as raw bytes.
  std::vector<Bytes> keys_of(const char* map, size_t key_size) const {
    std::vector<Bytes> keys;
    Bytes key(key_size), next(key_size);
    for (const void* prev = nullptr;
         bpf_map_get_next_key(dp_->maps().fd(map), prev, next.data()) == 0; prev = key.data()) {
      key = next;
      keys.push_back(key);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  // The reader's callback holds its address, so it stays on the heap.
  std::unique_ptr<EventReader> events() {
    auto r = std::make_unique<EventReader>(dp_->maps().fd("events"));
    if (!r->ok()) {
      ADD_FAILURE() << "ring_buffer__new failed";
      r.reset();
    }
    return r;
  }

  ::testing::AssertionResult ran_within(uint64_t ts) const {
    if (ts >= ran_from_ && ts <= ran_to_) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "ts_ns " << ts << " is not within the run [" << ran_from_ << ", " << ran_to_ << "]";
  }

  PolicyIdCounters ids_;  // one per test, so ids never repeat within it
};

// ---------------------------------------------------------------------------
// Verdicts of new connections.

enum class Path { a_to_b, a_to_gateway, outside_to_published, a_to_outside };

struct Verdict {
  std::string name;
  std::optional<Policy> a, b;
  Path path;
  Packet in;
  int verdict;
  int reason = -1;                       // the drop reason when shot
  const Endpoint* refused_by = nullptr;  // whose counter it lands in
  bool gre = false;                      // in's addresses around GRE instead of its L4
};

void PrintTo(const Verdict& c, std::ostream* os) { *os << c.name; }

Verdict redirected(std::string name, std::optional<Policy> a, std::optional<Policy> b, Packet in,
                   Path path = Path::a_to_b) {
  return {std::move(name), std::move(a), std::move(b), path, in, TC_ACT_REDIRECT};
}

Verdict refused(std::string name, std::optional<Policy> a, std::optional<Policy> b, Packet in,
                int reason, const Endpoint& by, Path path = Path::a_to_b) {
  return {std::move(name), std::move(a), std::move(b), path, in, TC_ACT_SHOT, reason, &by};
}

constexpr int kDefault = EBPFNET_DROP_POLICY_DEFAULT;
constexpr int kRule = EBPFNET_DROP_POLICY_DENY;

std::vector<Verdict> verdicts() {
  const std::nullopt_t none = std::nullopt;
  const Packet tcp80 = a_to_b(L4::tcp, 80);
  const Packet ping = a_to_b(L4::icmp, 0x77);
  std::vector<Verdict> v = {
      // Defaults, and which side's rules each direction asks.
      refused("IngressDefaultDeny", none, ingress(kDeny), tcp80, kDefault, kB),
      redirected("IngressDefaultAllow", none, policy({kAllow, {}}, {kDeny, {}}), tcp80),
      refused("EgressDefaultDeny", egress(kDeny), none, tcp80, kDefault, kA),
      redirected("EgressDefaultAllow", policy({kDeny, {}}, {kAllow, {}}), none, tcp80),
      refused("EgressAllowsIngressRefuses", egress(kDeny, {"allow tcp 80 to b"}), ingress(kDeny),
              tcp80, kDefault, kB),
      refused("IngressAllowsEgressRefuses", egress(kDeny), ingress(kDeny, {"allow tcp 80 from a"}),
              tcp80, kDefault, kA),
      redirected("BothAllow", egress(kDeny, {"allow tcp 80 to 10.240.0.0/24"}),
                 ingress(kDeny, {"allow tcp 80 from a"}), tcp80),
      refused("EgressRuleDeniesBeforeIngressIsAsked", egress(kAllow, {"deny tcp 80 to b"}),
              ingress(kDeny), tcp80, kRule, kA),

      // Port ranges at their edges (1000-2000 spans several LPM blocks).
      refused("AllowRangeBelowLow", none, ingress(kDeny, {"allow tcp 1000-2000"}),
              a_to_b(L4::tcp, 999), kDefault, kB),
      redirected("AllowRangeLow", none, ingress(kDeny, {"allow tcp 1000-2000"}),
                 a_to_b(L4::tcp, 1000)),
      redirected("AllowRangeHigh", none, ingress(kDeny, {"allow tcp 1000-2000"}),
                 a_to_b(L4::tcp, 2000)),
      refused("AllowRangeAboveHigh", none, ingress(kDeny, {"allow tcp 1000-2000"}),
              a_to_b(L4::tcp, 2001), kDefault, kB),
      redirected("DenyRangeBelowLow", none, ingress(kAllow, {"deny udp 1023-1025"}),
                 a_to_b(L4::udp, 1022)),
      refused("DenyRangeLow", none, ingress(kAllow, {"deny udp 1023-1025"}), a_to_b(L4::udp, 1023),
              kRule, kB),
      refused("DenyRangeHigh", none, ingress(kAllow, {"deny udp 1023-1025"}), a_to_b(L4::udp, 1025),
              kRule, kB),
      redirected("DenyRangeAboveHigh", none, ingress(kAllow, {"deny udp 1023-1025"}),
                 a_to_b(L4::udp, 1026)),
      redirected("RangeToTopPort", none, ingress(kDeny, {"allow tcp 65000-65535"}),
                 a_to_b(L4::tcp, 65535)),
      refused("RangeToTopPortBelowLow", none, ingress(kDeny, {"allow tcp 65000-65535"}),
              a_to_b(L4::tcp, 64999), kDefault, kB),
      refused("TcpRuleDoesNotMatchUdp", none, ingress(kDeny, {"allow tcp 53"}), a_to_b(L4::udp, 53),
              kDefault, kB),

      // The longest prefix decides, whatever the rule order.
      redirected("HostAllowInsideDenyingSlash8", none,
                 ingress(kDeny, {"allow tcp 80 from 10.240.0.10", "deny tcp 80 from 10.0.0.0/8"}),
                 tcp80),
      refused("HostDenyInsideAllowingSlash8", none,
              ingress(kAllow, {"allow tcp 80 from 10.0.0.0/8", "deny tcp 80 from 10.240.0.10"}),
              tcp80, kRule, kB),
      refused("Slash8DenyOutsideAllowedHost", none,
              ingress(kAllow, {"allow tcp 80 from 10.240.0.99", "deny tcp 80 from 10.0.0.0/8"}),
              tcp80, kRule, kB),
      // A's /24 class has no rule for the port: the containing /8's rules decide.
      redirected("FallsThroughToShorterPrefix", none,
                 ingress(kDeny, {"allow tcp 22 from 10.0.0.0/8", "deny tcp 80 from 10.240.0.0/24"}),
                 a_to_b(L4::tcp, 22)),
      refused("LongerPrefixStillDecidesItsPort", none,
              ingress(kAllow, {"allow tcp 22 from 10.0.0.0/8", "deny tcp 80 from 10.240.0.0/24"}),
              tcp80, kRule, kB),
      refused("ThreeLevelsFallThroughToMiddle", none,
              ingress(kAllow, {"deny tcp 22 from 10.240.0.0/16", "allow tcp 80 from 10.240.0.0/24",
                               "allow tcp 22 from 10.0.0.0/8"}),
              a_to_b(L4::tcp, 22), kRule, kB),
      refused("NoRuleOfAnyPrefixMatchesPort", none,
              ingress(kDeny, {"allow tcp 22 from 10.0.0.0/8", "allow tcp 80 from 10.240.0.0/24"}),
              a_to_b(L4::tcp, 443), kDefault, kB),
      // Peer-any rules live in their own class, asked when a longer one is silent.
      redirected("PeerAnyAskedForPortLongerClassLacks", none,
                 ingress(kDeny, {"deny tcp 80 from 10.240.0.0/24", "allow tcp 443"}),
                 a_to_b(L4::tcp, 443)),
      redirected("PeerAnyAskedForProtocolLongerClassLacks", none,
                 ingress(kDeny, {"allow tcp 80 from 10.240.0.0/24", "allow udp"}),
                 a_to_b(L4::udp, 53)),
      refused("PeerAnyDenyBelowLongerAllow", none,
              ingress(kAllow, {"allow tcp 80 from a", "deny tcp"}), a_to_b(L4::tcp, 81), kRule, kB),
      redirected("LongerAllowOverPeerAnyDeny", none,
                 ingress(kAllow, {"deny tcp", "allow tcp 80 from a"}), tcp80),
      refused("PeerAnySilentToo", none, ingress(kDeny, {"allow tcp 80 from a", "allow udp"}),
              a_to_b(L4::tcp, 81), kDefault, kB),

      // Equal prefixes: deny beats allow, in either order.
      refused(
          "DenyAfterAllowAtEqualPrefix", none,
          ingress(kAllow, {"allow tcp 80 from 10.240.0.0/24", "deny tcp 70-90 from 10.240.0.0/24"}),
          tcp80, kRule, kB),
      refused("DenyBeforeAllowAtEqualPrefix", none,
              ingress(kAllow, {"deny tcp 80 from 10.240.0.0/24", "allow tcp from 10.240.0.0/24"}),
              tcp80, kRule, kB),
      refused("DenyOverAllowForPeerAny", none, ingress(kAllow, {"allow tcp 80", "deny tcp"}), tcp80,
              kRule, kB),

      // ICMP echo.
      redirected("IcmpAllowed", none, ingress(kDeny, {"allow icmp from a"}), ping),
      refused("IcmpDenied", none, ingress(kAllow, {"deny icmp"}), ping, kRule, kB),
      refused("IcmpNotMatchedByTcpRule", none, ingress(kDeny, {"allow tcp"}), ping, kDefault, kB),
      refused("IcmpEgressDenied", egress(kAllow, {"allow tcp to b", "deny icmp to b"}), none, ping,
              kRule, kA),

      // Endpoint names as peers.
      redirected("EgressToNamedPeer", egress(kDeny, {"allow udp 53 to b"}), none,
                 a_to_b(L4::udp, 53)),
      refused("EgressToOtherNamedPeer", egress(kDeny, {"allow udp 53 to a"}), none,
              a_to_b(L4::udp, 53), kDefault, kA),
      refused("IngressFromNamedPeerDenied", none, ingress(kAllow, {"deny from a"}), tcp80, kRule,
              kB),

      // The node is never policed.
      {"GatewayNotPoliced", egress(kDeny), ingress(kDeny), Path::a_to_gateway,
       with_dst(sent_by(kA, L4::tcp), kGateway, 22), TC_ACT_OK},

      // Published port: the target's ingress, with the outside client as peer
      // and the target port; the ingress rules only.
      refused("PublishedDefaultDeny", ingress(kDeny), none, from_client(), kDefault, kA,
              Path::outside_to_published),
      redirected("PublishedAllowedFromClientNet",
                 ingress(kDeny, {"allow tcp 80 from 203.0.113.0/24"}), none, from_client(),
                 Path::outside_to_published),
      refused("PublishedRuleOnPublishedPortDoesNotMatch", ingress(kDeny, {"allow tcp 8080"}), none,
              from_client(), kDefault, kA, Path::outside_to_published),
      refused("PublishedPeerIsClientNotUplink", ingress(kDeny, {"allow tcp 80 from 198.18.0.0/24"}),
              none, from_client(), kDefault, kA, Path::outside_to_published),
      refused("PublishedDeniedClient", ingress(kAllow, {"deny tcp from 203.0.113.20"}), none,
              from_client(), kRule, kA, Path::outside_to_published),
      redirected("PublishedIgnoresTargetEgress", policy({kAllow, {}}, {kDeny, {}}), none,
                 from_client(), Path::outside_to_published),

      // Masquerade: the sender's egress, with the outside destination as peer.
      refused("MasqueradeDefaultDeny", egress(kDeny), none, sent_by(kA, L4::tcp), kDefault, kA,
              Path::a_to_outside),
      redirected("MasqueradeAllowedDestination", egress(kDeny, {"allow tcp 443 to 203.0.113.10"}),
                 none, sent_by(kA, L4::tcp), Path::a_to_outside),
      refused("MasqueradeOtherDestination", egress(kDeny, {"allow tcp 443 to 203.0.113.11"}), none,
              sent_by(kA, L4::tcp), kDefault, kA, Path::a_to_outside),
      refused("MasqueradePeerIsNotTranslatedSource", egress(kDeny, {"allow tcp 443 to 198.18.0.2"}),
              none, sent_by(kA, L4::tcp), kDefault, kA, Path::a_to_outside),
      refused("MasqueradeDeniedDestination", egress(kAllow, {"deny udp 53 to 203.0.113.0/24"}),
              none, sent_by(kA, L4::udp), kRule, kA, Path::a_to_outside),
  };

  // GRE (47): only rules of protocol any match it, ports never.
  Verdict gre[] = {
      refused("GreNotMatchedByTcpUdpIcmpRules", none,
              ingress(kDeny, {"allow tcp from a", "allow udp from a", "allow icmp from a"}), tcp80,
              kDefault, kB),
      redirected("GreMatchedByAnyRule", none,
                 ingress(kDeny, {"allow tcp 80 from a", "allow from a"}), tcp80),
      refused("GreDeniedByAnyRule", none, ingress(kAllow, {"deny from 10.240.0.0/24"}), tcp80,
              kRule, kB),
      redirected("GreMatchedByPeerAnyRule", none, ingress(kDeny, {"allow tcp from a", "allow"}),
                 tcp80),
      refused("GreEgressDefault", egress(kDeny, {"allow tcp to b"}), none, tcp80, kDefault, kA),
  };
  for (Verdict& c : gre) {
    c.gre = true;
    v.push_back(std::move(c));
  }
  return v;
}

class PolicyVerdicts : public PolicyTest, public ::testing::WithParamInterface<Verdict> {};

TEST_P(PolicyVerdicts, NewConnection) {
  const Verdict& c = GetParam();
  if (c.path == Path::outside_to_published) publish(L4::tcp);
  if (c.a) install(kA, *c.a);
  if (c.b) install(kB, *c.b);
  const Bytes frame = frame_of(c.in, c.gre);
  const Counters before = counters();
  const bool outside = c.path == Path::outside_to_published;
  const TcRun r = outside ? run_uplink(frame) : run_endpoint(frame, kA);

  ASSERT_EQ(verdict_name(r.retval), verdict_name(c.verdict)) << hex_diff(frame, r.out);
  Counters want = before;
  if (!outside) want.tx(kA, frame.size());
  if (c.verdict == TC_ACT_SHOT) {
    want.dropped(*c.refused_by, c.reason);
  } else if (c.verdict == TC_ACT_REDIRECT) {
    switch (c.path) {
      case Path::a_to_b:
        want.rx(kB, frame.size());
        EXPECT_TRUE(frames_equal(frame_of(routed(c.in, kB.node_mac, kB.mac), c.gre), r.out));
        break;
      case Path::outside_to_published:
        want.rx(kA, frame.size());
        EXPECT_TRUE(frames_equal(
            build(routed(with_dst(c.in, kA.ip, kTargetPort), kA.node_mac, kA.mac)), r.out));
        break;
      case Path::a_to_outside: {
        const uint16_t port = sport_of(r.out, c.in.l4);
        EXPECT_TRUE(frames_equal(build(masqueraded(c.in, port)), r.out));
        break;
      }
      case Path::a_to_gateway: break;
    }
  } else {
    EXPECT_TRUE(frames_equal(frame, r.out));
  }
  EXPECT_TRUE(same_counters(want, counters())) << "drop reason expected: " << reason_name(c.reason);
  // A refused connection leaves no flow behind.
  if (c.verdict == TC_ACT_SHOT) {
    EXPECT_EQ(ct_entries(), 0u) << str(dp_->maps().ct_flows());
  }
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyVerdicts, ::testing::ValuesIn(verdicts()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Conntrack of policed flows.

std::string l4_name(L4 l4) {
  switch (l4) {
    case L4::tcp: return "Tcp";
    case L4::udp: return "Udp";
    case L4::udp_no_checksum: return "UdpWithoutChecksum";
    case L4::icmp: return "IcmpEcho";
  }
  return "?";
}

uint32_t new_flow_timeout(L4 l4) {
  return l4 == L4::tcp ? kSynTimeout : l4 == L4::icmp ? kIcmpTimeout : kUdpTimeout;
}

class PolicedFlows : public PolicyTest, public ::testing::WithParamInterface<L4> {};

// B may only be reached on 80 from A, and neither side may start anything
// else: replies pass on the flow alone.
TEST_P(PolicedFlows, RepliesFollowTheFlowNewReverseConnectionsDoNot) {
  const L4 l4 = GetParam();
  const std::string proto = l4 == L4::tcp ? "tcp 80" : l4 == L4::icmp ? "icmp" : "udp 80";
  install(kA, policy({kDeny, {}}, {kAllow, {}}));
  install(kB, policy({kDeny, {"allow " + proto + " from a"}}, {kDeny, {}}));
  const Packet in = a_to_b(l4, 80);

  send(in, false, TC_ACT_REDIRECT);
  expect_flow(in, in, 0, EBPFNET_CT_NEW, deadline(new_flow_timeout(l4)));
  EXPECT_EQ(ct_entries(), 2u) << str(dp_->maps().ct_flows());

  // B's egress and A's ingress would both refuse this as a new connection.
  const Packet reply = reply_to(in);
  Counters want = counters();
  const TcRun r = send(reply, false, TC_ACT_REDIRECT);
  EXPECT_TRUE(frames_equal(build(routed(reply, kA.node_mac, kA.mac)), r.out));
  want.tx(kB, build(reply).size()).rx(kA, build(reply).size());
  EXPECT_TRUE(same_counters(want, counters()));

  Packet later = in;
  later.tcp_flags = kAck;
  send(later, false, TC_ACT_REDIRECT);
  send(reply_to(later, kAck), false, TC_ACT_REDIRECT);
  EXPECT_EQ(ct_entries(), 2u);

  // B starting its own connection to A meets B's egress default.
  Packet reverse = with_src(with_dst(reply_to(in), kA.ip, 22), kB.ip, 5555);
  reverse.tcp_flags = kSyn;
  reverse.echo_reply = false;
  want = counters();
  send(reverse, false, TC_ACT_SHOT);
  want.tx(kB, build(reverse).size()).dropped(kB, EBPFNET_DROP_POLICY_DEFAULT);
  EXPECT_TRUE(same_counters(want, counters()));
  EXPECT_EQ(ct_entries(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicedFlows, ::testing::Values(L4::tcp, L4::udp, L4::icmp),
                         [](const auto& info) { return l4_name(info.param); });

// The only side with a policy may be the receiver: its replies still pass.
TEST_F(PolicyTest, RepliesPassWhenOnlyTheInitiatorIsPoliced) {
  install(kA, policy({kDeny, {}}, {kDeny, {"allow udp 53 to b"}}));
  const Packet in = a_to_b(L4::udp, 53);
  send(in, false, TC_ACT_REDIRECT);
  send(reply_to(in), false, TC_ACT_REDIRECT);
  expect_flow(in, in, 0, EBPFNET_CT_ESTABLISHED, deadline(kUdpTimeout));
  // Unsolicited, B's packet meets A's ingress default.
  const Packet other = with_src(reply_to(in), kB.ip, 54);
  const Counters before = counters();
  send(other, false, TC_ACT_SHOT);
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kB, build(other).size()).dropped(kA, EBPFNET_DROP_POLICY_DEFAULT),
      counters()));
}

// An endpoint's echo request must not ride on the reply entry of the other
// side's ping with the same identifier.
TEST_F(PolicyTest, EchoRequestDoesNotMatchReplyEntry) {
  install(kB, policy({kAllow, {}}, {kDeny, {}}));
  const Packet ping = a_to_b(L4::icmp, 0x77);
  send(ping, false, TC_ACT_REDIRECT);
  Packet reverse_ping = reply_to(ping);
  reverse_ping.echo_reply = false;
  const Counters before = counters();
  send(reverse_ping, false, TC_ACT_SHOT);
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kB, build(reverse_ping).size()).dropped(kB, EBPFNET_DROP_POLICY_DEFAULT),
      counters()));
  send(reply_to(ping), false, TC_ACT_REDIRECT);
}

// Without a policy on either side, same-node traffic needs no flow, with or
// without published ports (which send it through the tracked path).
TEST_F(PolicyTest, UnpolicedSameNodeFlowIsNotTracked) {
  for (bool published : {false, true}) {
    SCOPED_TRACE(published ? "published ports" : "no published ports");
    if (published) publish(L4::tcp);
    const Packet in = a_to_b(L4::tcp, 80);
    const TcRun r = send(in, false, TC_ACT_REDIRECT);
    EXPECT_TRUE(frames_equal(build(routed(in, kB.node_mac, kB.mac)), r.out));
    send(reply_to(in), false, TC_ACT_REDIRECT);
    EXPECT_EQ(ct_entries(), 0u) << str(dp_->maps().ct_flows());
  }
}

// The node's count of policed endpoints (a config slot) gates every ep_policy
// lookup: at 0 the datapath does not look, so a node without policy pays
// nothing for it; set_policy raises it before an endpoint's entry appears.
TEST_F(PolicyTest, PolicySlotGatesTheEpPolicyLookups) {
  install(kB, policy({kDeny, {}}, {kAllow, {}}));
  const Packet in = a_to_b(L4::udp, 80);
  send(in, false, TC_ACT_SHOT);
  dp_->maps().write_slot(EBPFNET_CFG_POLICIES, 0);
  const TcRun r = send(in, false, TC_ACT_REDIRECT);
  EXPECT_TRUE(frames_equal(build(routed(in, kB.node_mac, kB.mac)), r.out));
  EXPECT_EQ(ct_entries(), 0u) << "without policy an endpoint-to-endpoint flow is not tracked";
  dp_->maps().write_slot(EBPFNET_CFG_POLICIES, 1);
  send(in, false, TC_ACT_SHOT);
}

// ---------------------------------------------------------------------------
// Published ports and masquerade keep their flows: the reply passes whatever
// the endpoint's rules say about new connections.

TEST_F(PolicyTest, PublishedFlowRepliesPassTargetEgressDefaultDeny) {
  publish(L4::tcp);
  install(kA, policy({kDeny, {"allow tcp 80 from 203.0.113.0/24"}}, {kDeny, {}}));
  const Packet in = from_client();
  send(in, true, TC_ACT_REDIRECT);
  const Packet at_a = routed(with_dst(in, kA.ip, kTargetPort), kA.node_mac, kA.mac);
  const Packet reply = reply_to(at_a);
  const TcRun r = send(reply, false, TC_ACT_REDIRECT);
  Packet out = with_src(reply, kUplinkIp, kPublished);
  EXPECT_TRUE(frames_equal(build(routed(out, kUplinkMac, kRouterMac)), r.out));
  // A new connection from A to the client is its own egress's business.
  Packet own = with_dst(sent_by(kA, L4::tcp, 41000), kClient, 80);
  const Counters before = counters();
  send(own, false, TC_ACT_SHOT);
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kA, build(own).size()).dropped(kA, EBPFNET_DROP_POLICY_DEFAULT),
      counters()));
}

TEST_F(PolicyTest, MasqueradedRepliesPassIngressDefaultDeny) {
  install(kA, policy({kDeny, {}}, {kDeny, {"allow udp 53 to 203.0.113.0/24"}}));
  const Packet in = sent_by(kA, L4::udp);
  const uint16_t port = masquerade(in, kA);
  const Packet back = answer(masqueraded(in, port));
  const TcRun r = run_uplink(build(back));
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_TRUE(
      frames_equal(build(routed(with_dst(back, kA.ip, in.sport), kA.node_mac, kA.mac)), r.out));
}

// Another node's pool, routed without NAT: the endpoint's ingress rules see
// the real source, and its replies pass on the flow.
TEST_F(PolicyTest, RoutedPoolMeetsIngressRulesRepliesFollowFlow) {
  dp_->maps().put_routed(cidr("203.0.113.0/24"));
  install(kA, policy({kDeny, {"allow tcp 80 from 203.0.113.0/24"}}, {kDeny, {}}));
  const Packet in{.l4 = L4::tcp,
                  .smac = kRouterMac,
                  .dmac = kUplinkMac,
                  .src = kClient,
                  .dst = kA.ip,
                  .sport = 50000,
                  .dport = 80,
                  .tcp_flags = kSyn};
  Counters want = counters();
  TcRun r = send(in, true, TC_ACT_REDIRECT);
  EXPECT_TRUE(frames_equal(build(routed(in, kA.node_mac, kA.mac)), r.out));
  want.rx(kA, build(in).size());
  EXPECT_TRUE(same_counters(want, counters()));
  expect_flow(in, in, 0, EBPFNET_CT_NEW, deadline(kSynTimeout));

  const Packet reply = reply_to(routed(in, kA.node_mac, kA.mac));
  r = send(reply, false, TC_ACT_REDIRECT);
  EXPECT_TRUE(frames_equal(build(routed(reply, kUplinkMac, kRouterMac)), r.out));

  Packet other = in;
  other.dport = 81;
  want = counters();
  send(other, true, TC_ACT_SHOT);
  want.dropped(kA, EBPFNET_DROP_POLICY_DEFAULT);
  EXPECT_TRUE(same_counters(want, counters()));
}

// An ICMP error about an allowed flow passes though the erring side's
// egress refuses everything new; one about no flow meets that egress.
TEST_F(PolicyTest, IcmpErrorsAboutTrackedFlowsPass) {
  install(kB, policy({kAllow, {}}, {kDeny, {}}));
  const Packet in = a_to_b(L4::udp, 53);
  send(in, false, TC_ACT_REDIRECT);
  const Bytes quote = quote_of(build(routed(in, kB.node_mac, kB.mac)));
  const Bytes error = icmp_error({3, 3}, kB.mac, kB.node_mac, kB.ip, kA.ip, 64, quote);
  TcRun r = run_endpoint(error, kB);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT)) << hex_diff(error, r.out);

  const Bytes unknown = quote_of(build(routed(a_to_b(L4::udp, 54, 40001), kB.node_mac, kB.mac)));
  const Bytes stray = icmp_error({3, 3}, kB.mac, kB.node_mac, kB.ip, kA.ip, 64, unknown);
  const Counters before = counters();
  r = run_endpoint(stray, kB);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT)) << hex_diff(stray, r.out);
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kB, stray.size()).dropped(kB, EBPFNET_DROP_POLICY_DEFAULT), counters()));
}

// ---------------------------------------------------------------------------
// Atomic replacement.

TEST_F(PolicyTest, ReplacedPolicyDecidesAndOldSetsGoWithoutHarm) {
  const Policy p1 = ingress(kDeny, {"allow tcp 80 from a"});
  const Policy p2 = ingress(kDeny, {"deny tcp 80 from a", "allow tcp 443 from a"});
  const PolicyIds ids1 = install(kB, p1);
  const Packet x = a_to_b(L4::tcp, 80, 40000);
  send(x, false, TC_ACT_REDIRECT);
  send(a_to_b(L4::tcp, 443, 40001), false, TC_ACT_SHOT);

  const PolicyIds ids2 = allocate_policy_ids(p2, ids_);
  ASSERT_NE(ids1.set[EBPFNET_INGRESS], ids2.set[EBPFNET_INGRESS]);
  write_rule_sets(dp_->maps(), p2, ids2);
  // Written beside P1 but not switched to: P1 still decides.
  send(a_to_b(L4::tcp, 80, 40002), false, TC_ACT_REDIRECT);
  switch_policy(dp_->maps(), kB.ip, p2, ids2);

  auto check_p2 = [&](uint16_t sport) {
    Counters want = counters();
    const Packet deny_x = a_to_b(L4::tcp, 80, sport);
    send(deny_x, false, TC_ACT_SHOT);
    want.tx(kA, build(deny_x).size()).dropped(kB, EBPFNET_DROP_POLICY_DENY);
    EXPECT_TRUE(same_counters(want, counters())) << "X must be denied by P2's rule 1";
    send(a_to_b(L4::tcp, 443, sport + 1), false, TC_ACT_REDIRECT);
  };
  {
    SCOPED_TRACE("after the switch");
    check_p2(41000);
  }
  // The connection P1 allowed goes on: its flow was admitted as a whole.
  Packet x_later = x;
  x_later.tcp_flags = kAck;
  send(x_later, false, TC_ACT_REDIRECT);

  const auto cidr_keys = keys_of("policy_cidr", sizeof(ebpfnet_policy_cidr_key));
  const auto port_keys = keys_of("policy_port", sizeof(ebpfnet_policy_port_key));
  erase_rule_sets(dp_->maps(), p1, ids1);
  {
    SCOPED_TRACE("after P1's sets are erased");
    check_p2(42000);
  }
  // Exactly P2's entries are left.
  const CompiledSet c2 =
      compile_policy(p2.ingress, ids2.set[EBPFNET_INGRESS], ids2.first_class[EBPFNET_INGRESS]);
  std::vector<Bytes> want_cidrs, want_ports;
  for (const auto& [k, cls] : c2.cidrs) {
    const auto* b = reinterpret_cast<const uint8_t*>(&k);
    want_cidrs.emplace_back(b, b + sizeof k);
  }
  for (const auto& [k, v] : c2.ports) {
    const auto* b = reinterpret_cast<const uint8_t*>(&k);
    want_ports.emplace_back(b, b + sizeof k);
  }
  std::sort(want_cidrs.begin(), want_cidrs.end());
  std::sort(want_ports.begin(), want_ports.end());
  EXPECT_EQ(keys_of("policy_cidr", sizeof(ebpfnet_policy_cidr_key)), want_cidrs);
  EXPECT_EQ(keys_of("policy_port", sizeof(ebpfnet_policy_port_key)), want_ports);
  EXPECT_GT(cidr_keys.size(), want_cidrs.size()) << "both sets were in the maps before the erase";
  EXPECT_GT(port_keys.size(), want_ports.size());
}

// A SYN on the tuple of a closing flow is a new connection: it meets the
// policy in force now, not the one that allowed the old connection.
TEST_F(PolicyTest, NewConnectionOnClosedTupleMeetsCurrentPolicy) {
  install(kB, ingress(kDeny, {"allow tcp 80 from a"}));
  const Packet syn = a_to_b(L4::tcp, 80);
  send(syn, false, TC_ACT_REDIRECT);
  Packet rst = syn;
  rst.tcp_flags = kRst | kAck;
  send(rst, false, TC_ACT_REDIRECT);
  install(kB, ingress(kDeny));
  const Counters before = counters();
  send(syn, false, TC_ACT_SHOT);
  EXPECT_TRUE(same_counters(
      Counters(before).tx(kA, build(syn).size()).dropped(kB, EBPFNET_DROP_POLICY_DEFAULT),
      counters()));
}

// ---------------------------------------------------------------------------
// Events.

uint64_t in_ten_seconds() { return monotonic_ns() + 10 * kNsPerSec; }

TEST_F(PolicyTest, NoDropEventWithoutListener) {
  install(kB, ingress(kDeny));
  auto ev = events();
  ASSERT_TRUE(ev);
  send(a_to_b(L4::tcp, 80, 40000), false, TC_ACT_SHOT);
  EXPECT_EQ(ev->take().size(), 0u) << "no deadline set";

  // A deadline that has passed.
  const ebpfnet_monitor past{monotonic_ns() - kNsPerSec, 0};
  const uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(dp_->maps().fd("monitor"), &zero, &past, BPF_ANY), 0);
  send(a_to_b(L4::tcp, 80, 40001), false, TC_ACT_SHOT);
  EXPECT_EQ(ev->take().size(), 0u) << "drops deadline in the past";

  // Listening for flows only.
  dp_->maps().extend_monitor(0, in_ten_seconds());
  send(a_to_b(L4::tcp, 80, 40002), false, TC_ACT_SHOT);
  EXPECT_EQ(ev->take().size(), 0u) << "only flows listened for";

  // The counters count either way.
  EXPECT_EQ(counters().eps.at(kB.dev).drops[EBPFNET_DROP_POLICY_DEFAULT], 3u);
}

struct DropEvent {
  std::string name;
  std::optional<Policy> a, b;
  Path path;
  Packet in;
  Ipv4 endpoint;
  int dir;
  uint32_t rule;
  int reason;
};

void PrintTo(const DropEvent& c, std::ostream* os) { *os << c.name; }

std::vector<DropEvent> drop_events() {
  const std::nullopt_t none = std::nullopt;
  return {
      {"IngressDenyRule", none, ingress(kAllow, {"allow tcp 80 from a", "deny tcp 22 from a"}),
       Path::a_to_b, a_to_b(L4::tcp, 22), kB.ip, EBPFNET_INGRESS, 2, EBPFNET_DROP_POLICY_DENY},
      {"IngressDefault", none, ingress(kDeny, {"allow tcp 80 from a"}), Path::a_to_b,
       a_to_b(L4::udp, 80), kB.ip, EBPFNET_INGRESS, 0, EBPFNET_DROP_POLICY_DEFAULT},
      {"EgressDefault", egress(kDeny, {"allow udp to b"}), ingress(kDeny), Path::a_to_b,
       a_to_b(L4::tcp, 80), kA.ip, EBPFNET_EGRESS, 0, EBPFNET_DROP_POLICY_DEFAULT},
      {"EgressDenyRuleFromPeerAnyClass",
       egress(kAllow, {"allow tcp 80 to b", "allow udp to b", "deny tcp"}), none, Path::a_to_b,
       a_to_b(L4::tcp, 81), kA.ip, EBPFNET_EGRESS, 3, EBPFNET_DROP_POLICY_DENY},
      {"PublishedIngressRule",
       ingress(kAllow, {"allow tcp 80 from 10.0.0.0/8", "deny tcp 80 from 203.0.113.0/24"}), none,
       Path::outside_to_published, from_client(), kA.ip, EBPFNET_INGRESS, 2,
       EBPFNET_DROP_POLICY_DENY},
      {"MasqueradeEgressRule",
       egress(kAllow, {"allow udp 53 to 203.0.113.11", "deny udp 53 to 203.0.113.0/24"}), none,
       Path::a_to_outside, sent_by(kA, L4::udp), kA.ip, EBPFNET_EGRESS, 2,
       EBPFNET_DROP_POLICY_DENY},
  };
}

class PolicyDropEvents : public PolicyTest, public ::testing::WithParamInterface<DropEvent> {};

TEST_P(PolicyDropEvents, OneEventDescribesTheRefusal) {
  const DropEvent& c = GetParam();
  const bool outside = c.path == Path::outside_to_published;
  if (outside) publish(L4::tcp);
  if (c.a) install(kA, *c.a);
  if (c.b) install(kB, *c.b);
  auto ev = events();
  ASSERT_TRUE(ev);
  dp_->maps().extend_monitor(in_ten_seconds(), 0);
  const Bytes frame = build(c.in);
  send(c.in, outside, TC_ACT_SHOT);

  const std::vector<ebpfnet_event> got = ev->take();
  ASSERT_EQ(got.size(), 1u);
  const ebpfnet_event& e = got[0];
  EXPECT_EQ(int(e.type), EBPFNET_EVENT_DROP);
  EXPECT_EQ(reason_name(e.reason), reason_name(c.reason));
  EXPECT_EQ(Ipv4::from_be(e.endpoint).str(), c.endpoint.str());
  EXPECT_EQ(int(e.dir), c.dir);
  EXPECT_EQ(e.rule, c.rule);
  EXPECT_EQ(str(e.tuple), str(key_of(c.in)));
  EXPECT_EQ(e.ifindex, uint32_t(outside ? up_ : ifindex(kA)));
  EXPECT_EQ(e.len, frame.size());
  EXPECT_TRUE(ran_within(e.ts_ns));
  // The same refusal in the counters of the endpoint the event names.
  const Endpoint& refuser = c.endpoint == kA.ip ? kA : kB;
  EXPECT_EQ(counters().eps.at(refuser.dev).drops[c.reason], 1u);
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyDropEvents, ::testing::ValuesIn(drop_events()),
                         [](const auto& info) { return info.param.name; });

struct FlowEvent {
  std::string name;
  std::optional<Policy> a, b;
  Path path;
  Packet in;
  Ipv4 endpoint;
  int dir;
  uint32_t rule;
};

void PrintTo(const FlowEvent& c, std::ostream* os) { *os << c.name; }

std::vector<FlowEvent> flow_events() {
  const std::nullopt_t none = std::nullopt;
  return {
      {"ReceiverIngressRule", egress(kAllow),
       ingress(kDeny, {"allow udp 53 from a", "allow tcp 80 from a"}), Path::a_to_b,
       a_to_b(L4::tcp, 80), kB.ip, EBPFNET_INGRESS, 2},
      {"SenderEgressRuleOnly", egress(kDeny, {"allow udp", "allow tcp 80 to b"}), none,
       Path::a_to_b, a_to_b(L4::tcp, 80), kA.ip, EBPFNET_EGRESS, 2},
      {"ReceiverIngressDefault", none, ingress(kAllow, {"deny udp from a"}), Path::a_to_b,
       a_to_b(L4::tcp, 80), kB.ip, EBPFNET_INGRESS, 0},
      {"PublishedIngressRule", ingress(kDeny, {"allow tcp 80 from 203.0.113.20"}), none,
       Path::outside_to_published, from_client(), kA.ip, EBPFNET_INGRESS, 1},
      {"MasqueradeEgressRule", egress(kDeny, {"allow tcp 443 to 203.0.113.10"}), none,
       Path::a_to_outside, sent_by(kA, L4::tcp), kA.ip, EBPFNET_EGRESS, 1},
  };
}

class PolicyFlowEvents : public PolicyTest, public ::testing::WithParamInterface<FlowEvent> {};

TEST_P(PolicyFlowEvents, OnlyTheFirstPacketOfAllowedConnection) {
  const FlowEvent& c = GetParam();
  const bool outside = c.path == Path::outside_to_published;
  if (outside) publish(L4::tcp);
  if (c.a) install(kA, *c.a);
  if (c.b) install(kB, *c.b);
  auto ev = events();
  ASSERT_TRUE(ev);
  dp_->maps().extend_monitor(0, in_ten_seconds());
  send(c.in, outside, TC_ACT_REDIRECT);

  std::vector<ebpfnet_event> got = ev->take();
  ASSERT_EQ(got.size(), 1u);
  const ebpfnet_event& e = got[0];
  EXPECT_EQ(int(e.type), EBPFNET_EVENT_FLOW);
  EXPECT_EQ(int(e.reason), 0);
  EXPECT_EQ(Ipv4::from_be(e.endpoint).str(), c.endpoint.str());
  EXPECT_EQ(int(e.dir), c.dir);
  EXPECT_EQ(e.rule, c.rule);
  EXPECT_EQ(str(e.tuple), str(key_of(c.in)));
  EXPECT_EQ(e.ifindex, uint32_t(outside ? up_ : ifindex(kA)));
  EXPECT_EQ(e.len, build(c.in).size());
  EXPECT_TRUE(ran_within(e.ts_ns));

  Packet later = c.in;
  later.tcp_flags = kAck;
  send(later, outside, TC_ACT_REDIRECT);
  EXPECT_EQ(ev->take().size(), 0u) << "the second packet follows the flow";
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyFlowEvents, ::testing::ValuesIn(flow_events()),
                         [](const auto& info) { return info.param.name; });

// With no policy anywhere, a flow event names the receiving endpoint, never
// the outside client (which is no endpoint).
TEST_F(PolicyTest, PublishedFlowEventWithoutPolicyNamesTheTarget) {
  publish(L4::tcp);
  auto ev = events();
  ASSERT_TRUE(ev);
  dp_->maps().extend_monitor(0, in_ten_seconds());
  send(from_client(), true, TC_ACT_REDIRECT);
  const std::vector<ebpfnet_event> got = ev->take();
  ASSERT_EQ(got.size(), 1u);
  const std::string endpoint = Ipv4::from_be(got[0].endpoint).str();
  EXPECT_EQ(endpoint, kA.ip.str()) << "(the client is " << kClient.str() << ")";
}

// ---------------------------------------------------------------------------
// Counters: each refusal lands on the endpoint whose rule refused it, by reason.

TEST_F(PolicyTest, DropReasonsCountedOnRefusingEndpoint) {
  install(kA, policy({kAllow, {"deny udp 7 from b"}}, {kAllow, {"deny udp 9 to b"}}));
  install(kB, policy({kDeny, {"allow udp 9-10 from a"}},
                     {kDeny, {"allow udp 7 to a", "allow udp 8 to a"}}));
  struct Step {
    const char* what;
    Packet in;
    const Endpoint& by;
    int reason;
  };
  const Step steps[] = {
      {"A's egress rule", a_to_b(L4::udp, 9), kA, EBPFNET_DROP_POLICY_DENY},
      {"B's ingress default", a_to_b(L4::udp, 11), kB, EBPFNET_DROP_POLICY_DEFAULT},
      {"A's ingress rule", with_dst(sent_by(kB, L4::udp), kA.ip, 7), kA, EBPFNET_DROP_POLICY_DENY},
      {"B's egress default", with_dst(sent_by(kB, L4::udp), kA.ip, 6), kB,
       EBPFNET_DROP_POLICY_DEFAULT},
  };
  for (const Step& s : steps) {
    SCOPED_TRACE(s.what);
    const Endpoint& from = s.in.src == kA.ip ? kA : kB;
    Counters want = counters();
    send(s.in, false, TC_ACT_SHOT);
    want.tx(from, build(s.in).size()).dropped(s.by, s.reason);
    EXPECT_TRUE(same_counters(want, counters()));
  }
  // And one that both sides allow moves no drop counter.
  Counters want = counters();
  const Packet ok = with_dst(sent_by(kB, L4::udp), kA.ip, 8);
  send(ok, false, TC_ACT_REDIRECT);
  want.tx(kB, build(ok).size()).rx(kA, build(ok).size());
  EXPECT_TRUE(same_counters(want, counters()));
}

}  // namespace
}  // namespace ebpfnet::test
