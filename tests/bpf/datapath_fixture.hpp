// A node for BPF program tests: a private namespace with a veth per endpoint
// and an uplink with a routed neighbour (the FIB lookups of test-run resolve
// in the calling thread's namespace), the datapath loaded on it, and the
// frames, flows and counters the tests compare.
#pragma once

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/datapath.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/netns.hpp"
#include "packet.hpp"
#include "support.hpp"

namespace ebpfnet::test {

inline Ipv4 addr(const char* s) { return Ipv4::parse(s).value(); }
inline Ipv4Cidr cidr(const char* s) { return Ipv4Cidr::parse(s).value(); }

struct Endpoint {
  std::string dev;  // node-side veth in the test namespace; its peer plays eth0
  Ipv4 ip;
  Mac mac;       // the endpoint's eth0
  Mac node_mac;  // its node-side veth
};

const Endpoint kA{
    "in0", addr("10.240.0.10"), {0x02, 0xaa, 0, 0, 0, 0x01}, {0x02, 0xee, 0, 0, 0, 0x01}};
const Endpoint kB{
    "in1", addr("10.240.0.11"), {0x02, 0xaa, 0, 0, 0, 0x02}, {0x02, 0xee, 0, 0, 0, 0x02}};
const Endpoint* const kEndpoints[] = {&kA, &kB};

const Ipv4 kGateway = addr("10.240.0.1");
const Ipv4 kUplinkIp = addr("198.18.0.2");
const Ipv4 kRouterIp = addr("198.18.0.1");
const Ipv4 kOtherUplinkAddr = addr("198.18.0.99");  // on the uplink's subnet, not ours
const Ipv4 kServer = addr("203.0.113.10");
const Ipv4 kServer2 = addr("203.0.113.11");
const Ipv4 kClient = addr("203.0.113.20");
const Ipv4 kRoutedElsewhere = addr("192.0.2.7");  // the node routes 192.0.2.0/24 out of in1
const Mac kUplinkMac = {0x02, 0x0b, 0, 0, 0, 0x01};
const Mac kUplinkPeerMac = {0x02, 0x0b, 0, 0, 0, 0x02};
const Mac kRouterMac = {0x02, 0x0c, 0, 0, 0, 0xfe};  // permanent neighbour of kRouterIp

constexpr uint32_t kCtSize = 4096;
constexpr uint16_t kPortMin = 20000;
constexpr uint16_t kPortMax = 20999;
constexpr uint16_t kPublished = 8080;
constexpr uint16_t kTargetPort = 80;
// Distinct timeouts, so a mix-up between them shows.
constexpr uint32_t kSynTimeout = 31;
constexpr uint32_t kTcpTimeout = 7201;
constexpr uint32_t kClosingTimeout = 17;
constexpr uint32_t kUdpTimeout = 61;
constexpr uint32_t kIcmpTimeout = 23;
constexpr uint64_t kNsPerSec = 1000000000ull;
constexpr uint64_t kCoarseClockLag = 20000000ull;  // 20 ms: a tick at HZ=100 and then some

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
constexpr uint8_t kSynAck = kSyn | kAck;
constexpr uint8_t kProtoGre = 47;
constexpr uint16_t kDontFragment = 0x4000;
constexpr uint16_t kMoreFragments = 0x2000;
constexpr size_t kQuoteLen = 28;  // what an ICMP error quotes: IPv4 header and 8 bytes of L4
const std::string kPayload = "odd-length payload";
const std::string kOversize(1600, 'x');  // more than the uplink's MTU of 1500

enum class L4 { tcp, udp, udp_no_checksum, icmp };

// One packet of a flow as it appears on one wire.
struct Packet {
  L4 l4 = L4::udp;
  Mac smac{}, dmac{};
  Ipv4 src, dst;
  uint16_t sport = 0, dport = 0;  // ICMP echo: both hold the identifier
  uint8_t tcp_flags = 0;
  bool echo_reply = false;
  uint8_t ttl = 64;
  std::string payload = kPayload;
  uint16_t frag = kDontFragment;
  Bytes ip_options;
};

inline uint8_t ip_proto(L4 l4) {
  switch (l4) {
    case L4::tcp: return IPPROTO_TCP;
    case L4::icmp: return IPPROTO_ICMP;
    default: return IPPROTO_UDP;
  }
}

inline Bytes build(const Packet& p) {
  Frame f;
  f.eth(p.smac, p.dmac)
      .ipv4({.src = p.src, .dst = p.dst, .ttl = p.ttl, .id = 0x2b2b, .options = p.ip_options,
             .frag = p.frag});
  switch (p.l4) {
    case L4::tcp: f.tcp(p.sport, p.dport, 0x11223344, p.tcp_flags); break;
    case L4::udp: f.udp(p.sport, p.dport); break;
    case L4::udp_no_checksum: f.udp_without_checksum(p.sport, p.dport); break;
    case L4::icmp:
      if (p.echo_reply)
        f.icmp_echo_reply(p.sport, 7);
      else
        f.icmp_echo(p.sport, 7);
      break;
  }
  return f.payload(p.payload).build();
}

// What e sends to the server, addressed to its gateway's MAC.
inline Packet sent_by(const Endpoint& e, L4 l4, uint16_t sport = 40000) {
  const uint16_t dport = l4 == L4::tcp ? 443 : l4 == L4::icmp ? sport : 53;
  return {.l4 = l4, .smac = e.mac, .dmac = e.node_mac, .src = e.ip, .dst = kServer,
          .sport = sport, .dport = dport, .tcp_flags = kSyn};
}

inline Packet with_src(Packet p, Ipv4 ip, uint16_t port) {
  p.src = ip;
  p.sport = port;
  if (p.l4 == L4::icmp) p.dport = port;
  return p;
}

inline Packet with_dst(Packet p, Ipv4 ip, uint16_t port) {
  p.dst = ip;
  p.dport = port;
  if (p.l4 == L4::icmp) p.sport = port;
  return p;
}

// One routing hop: TTL one less and a new Ethernet header.
inline Packet routed(Packet p, const Mac& smac, const Mac& dmac) {
  p.ttl--;
  p.smac = smac;
  p.dmac = dmac;
  return p;
}

// The peer's answer to p on the same wire.
inline Packet answer(const Packet& p, uint8_t tcp_flags = kSynAck) {
  Packet a = p;
  std::swap(a.smac, a.dmac);
  std::swap(a.src, a.dst);
  std::swap(a.sport, a.dport);
  a.tcp_flags = tcp_flags;
  a.echo_reply = !p.echo_reply;
  a.ttl = 64;
  return a;
}

// p masqueraded out of the uplink on port.
inline Packet masqueraded(const Packet& p, uint16_t port) {
  return routed(with_src(p, kUplinkIp, port), kUplinkMac, kRouterMac);
}

inline uint16_t be16_at(const Bytes& f, size_t at) {
  return static_cast<uint16_t>(f.at(at) << 8 | f.at(at + 1));
}

inline size_t l4_at(const Bytes& f) { return kEthHeaderLen + (f.at(kEthHeaderLen) & 0x0f) * 4u; }

// The source port (ICMP echo: the identifier) of a frame built like the ones here.
inline uint16_t sport_of(const Bytes& f, L4 l4) { return be16_at(f, l4_at(f) + (l4 == L4::icmp ? 4 : 0)); }

// What an ICMP error about the IPv4 packet in f quotes of it.
inline Bytes quote_of(const Bytes& f) {
  return Bytes(f.begin() + kEthHeaderLen, f.begin() + kEthHeaderLen + kQuoteLen);
}

// q with the L4 checksum bytes of `from` (for UDP and ICMP they are among
// the 8 quoted bytes, and translation leaves them alone).
inline Bytes with_l4_checksum_of(Bytes q, const Bytes& from, L4 l4) {
  if (l4 == L4::tcp) return q;
  const size_t at = 20 + (l4 == L4::icmp ? 2 : 6);
  std::copy(from.begin() + at, from.begin() + at + 2, q.begin() + at);
  return q;
}

struct IcmpError {
  uint8_t type, code;
  uint16_t mtu = 0;  // "fragmentation needed": the next hop's MTU
};

// An ICMP error as a router or host sends it, quoting `quote`.
inline Bytes icmp_error(const IcmpError& e, const Mac& smac, const Mac& dmac, Ipv4 src, Ipv4 dst,
                 uint8_t ttl, const Bytes& quote, uint16_t id = 0x1c1c, uint16_t frag = 0x4000) {
  Bytes icmp(8 + quote.size(), 0);
  icmp[0] = e.type;
  icmp[1] = e.code;
  icmp[6] = uint8_t(e.mtu >> 8);
  icmp[7] = uint8_t(e.mtu);
  std::copy(quote.begin(), quote.end(), icmp.begin() + 8);
  const uint16_t check = internet_checksum(icmp);
  icmp[2] = uint8_t(check >> 8);
  icmp[3] = uint8_t(check);
  return Frame()
      .eth(smac, dmac)
      .ipv4({.src = src, .dst = dst, .ttl = ttl, .id = id, .frag = frag, .protocol = IPPROTO_ICMP})
      .payload(icmp)
      .build();
}

inline ebpfnet_ct_key key_of(const Packet& p) {
  ebpfnet_ct_key k{};
  k.saddr = p.src.be();
  k.daddr = p.dst.be();
  k.sport = htons(p.sport);
  k.dport = htons(p.dport);
  k.proto = ip_proto(p.l4);
  return k;
}

inline std::string str(const ebpfnet_ct_key& k) {
  std::ostringstream o;
  o << "proto " << int(k.proto) << " " << Ipv4::from_be(k.saddr).str() << ":" << ntohs(k.sport)
    << " > " << Ipv4::from_be(k.daddr).str() << ":" << ntohs(k.dport);
  return o.str();
}

inline std::string str(const std::vector<CtFlow>& flows) {
  std::string s = std::to_string(flows.size()) + " live entries:\n";
  for (const CtFlow& f : flows) s += "  " + str(f.key) + " -> " + str(f.entry.xlate) + "\n";
  return s;
}

inline std::optional<ebpfnet_ct_entry> find_entry(const std::vector<CtFlow>& flows,
                                           const ebpfnet_ct_key& k) {
  for (const CtFlow& f : flows)
    if (std::memcmp(&f.key, &k, sizeof k) == 0) return f.entry;
  return std::nullopt;
}

// Where a deadline set during a run must lie.
struct Window {
  uint64_t lo, hi;
};

inline ::testing::AssertionResult within(uint64_t t, const Window& w) {
  if (t >= w.lo && t <= w.hi) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "deadline " << t << " is not in [" << w.lo << ", " << w.hi << "] ("
         << (int64_t(t) - int64_t(w.lo)) / 1000000 << " ms from its start)";
}

// Counters of every endpoint and the node, to compare what frames moved.
struct Counters {
  std::map<std::string, EndpointStats> eps;  // by node-side device
  DropCounts node{};

  Counters& tx(const Endpoint& e, size_t len) {
    eps.at(e.dev).tx_packets++;
    eps.at(e.dev).tx_bytes += len;
    return *this;
  }
  Counters& rx(const Endpoint& e, size_t len) {
    eps.at(e.dev).rx_packets++;
    eps.at(e.dev).rx_bytes += len;
    return *this;
  }
  Counters& dropped(const Endpoint& e, int reason) {
    eps.at(e.dev).drops.at(reason)++;
    return *this;
  }
};

inline ::testing::AssertionResult same_counters(const Counters& want, const Counters& got) {
  std::ostringstream diff;
  auto check = [&](const std::string& what, uint64_t w, uint64_t g) {
    if (w != g) diff << "  " << what << ": expected " << w << ", got " << g << "\n";
  };
  for (const auto& [dev, w] : want.eps) {
    const EndpointStats& g = got.eps.at(dev);
    check(dev + " tx_packets", w.tx_packets, g.tx_packets);
    check(dev + " tx_bytes", w.tx_bytes, g.tx_bytes);
    check(dev + " rx_packets", w.rx_packets, g.rx_packets);
    check(dev + " rx_bytes", w.rx_bytes, g.rx_bytes);
    for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r)
      check(dev + " drops[" + std::string(drop_reason_name(r)) + "]", w.drops[r], g.drops[r]);
  }
  for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r)
    check("node drops[" + std::string(drop_reason_name(r)) + "]", want.node[r], got.node[r]);
  if (diff.str().empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "counters differ:\n" << diff.str();
}

// A named namespace for one test, removed when the test ends, however it ends.
class ScopedNetns {
 public:
  explicit ScopedNetns(std::string name) : name_(std::move(name)) { netns::add(name_); }
  ~ScopedNetns() {
    try {
      netns::del(name_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "removing namespace " << name_ << ": " << e.what();
    }
  }
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

class DatapathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    ns_.emplace(unique("bn"));
    const Netns ns = Netns::open_named(ns_->name());
    inside_.emplace(ns);
    build_node(ns);
    dp_.emplace(Datapath::load({kGateway, kCtSize}));
    for (const Endpoint* e : kEndpoints)
      dp_->maps().put_endpoint(make_endpoint(ifindex(*e), e->ip, e->mac, e->node_mac));
    dp_->maps().write_config(config());
  }

  // lo; a veth per endpoint (forwarding on, as on a node); the uplink up0
  // with a default route via a router whose MAC is a permanent neighbour; and
  // a prefix routed out of in1, so some outside traffic does not take the uplink.
  void build_node(const Netns& ns) {
    Netlink nl;
    nl.set_up(nl.link("lo").value().ifindex);
    for (const Endpoint* e : kEndpoints) {
      const int i = nl.create_veth(
          {.name = e->dev, .mac = e->node_mac, .peer_name = e->dev + "p", .peer_mac = e->mac});
      nl.set_up(i);
      nl.set_up(nl.link(e->dev + "p").value().ifindex);
      netns::write_sysctl(ns, "net/ipv4/conf/" + e->dev + "/forwarding", "1");
      ifindex_[e->dev] = i;
    }
    up_ = nl.create_veth(
        {.name = "up0", .mac = kUplinkMac, .peer_name = "up0p", .peer_mac = kUplinkPeerMac});
    nl.set_up(up_);
    nl.set_up(nl.link("up0p").value().ifindex);
    nl.add_address({.ifindex = up_, .ip = kUplinkIp, .prefix = 24});
    nl.add_neighbor({.ifindex = up_, .ip = kRouterIp, .mac = kRouterMac});
    nl.add_route({.dst = cidr("0.0.0.0/0"), .via = kRouterIp, .oif = up_});
    nl.add_route({.dst = cidr("192.0.2.0/24"), .oif = ifindex(kB), .link_scope = true});
  }

  NodeConfig config() const {
    NodeConfig c;
    c[EBPFNET_CFG_UPLINK_IFINDEX] = static_cast<uint32_t>(up_);
    c[EBPFNET_CFG_UPLINK_IP] = kUplinkIp.be();
    c[EBPFNET_CFG_NAT_PORT_MIN] = kPortMin;
    c[EBPFNET_CFG_NAT_PORT_MAX] = kPortMax;
    c[EBPFNET_CFG_CT_TIMEOUT_SYN] = kSynTimeout;
    c[EBPFNET_CFG_CT_TIMEOUT_TCP] = kTcpTimeout;
    c[EBPFNET_CFG_CT_TIMEOUT_CLOSING] = kClosingTimeout;
    c[EBPFNET_CFG_CT_TIMEOUT_UDP] = kUdpTimeout;
    c[EBPFNET_CFG_CT_TIMEOUT_ICMP] = kIcmpTimeout;
    return c;
  }

  // kPublished of l4's protocol on the uplink address -> A:kTargetPort.
  void publish(L4 l4) {
    dp_->maps().put_published(
        {.proto = ip_proto(l4), .port = kPublished, .ip = kA.ip, .target_port = kTargetPort});
    NodeConfig c = config();
    c[EBPFNET_CFG_PUBLISHED] = 1;
    dp_->maps().write_config(c);
  }

  int ifindex(const Endpoint& e) const { return ifindex_.at(e.dev); }

  TcRun run_endpoint(const Bytes& frame, const Endpoint& from, const Gso& gso = {}) {
    return timed(dp_->from_endpoint_fd(), frame, ifindex(from), gso);
  }
  TcRun run_uplink(const Bytes& frame) { return timed(dp_->from_uplink_fd(), frame, up_, {}); }

  TcRun timed(int prog_fd, const Bytes& frame, int ingress, const Gso& gso) {
    ran_from_ = monotonic_ns();
    TcRun r = run_tc(prog_fd, frame, static_cast<uint32_t>(ingress), gso);
    ran_to_ = monotonic_ns();
    return r;
  }

  // Where a deadline of `seconds` set by the last run must lie. Conntrack's
  // clock is CLOCK_MONOTONIC_COARSE, up to a tick behind the precise one.
  Window deadline(uint32_t seconds) const {
    return {ran_from_ - kCoarseClockLag + seconds * kNsPerSec, ran_to_ + seconds * kNsPerSec};
  }

  // Masquerades p (which must succeed) and returns the port it got.
  uint16_t masquerade(const Packet& p, const Endpoint& from) {
    const TcRun r = run_endpoint(build(p), from);
    EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT)) << hex_diff(build(p), r.out);
    const uint16_t port = sport_of(r.out, p.l4);
    EXPECT_TRUE(frames_equal(build(masqueraded(p, port)), r.out));
    return port;
  }

  Counters counters() const {
    Counters c;
    for (const Endpoint* e : kEndpoints) c.eps[e->dev] = dp_->maps().stats(ifindex(*e)).value();
    c.node = dp_->maps().node_drops();
    return c;
  }

  std::optional<ebpfnet_ct_entry> entry(const ebpfnet_ct_key& k) const {
    return find_entry(dp_->maps().ct_flows(), k);
  }

  // Every entry in the table, expired or not.
  size_t ct_entries() const {
    size_t n = 0;
    ebpfnet_ct_key key{}, next{};
    for (const void* prev = nullptr; bpf_map_get_next_key(ct_fd(), prev, &next) == 0; prev = &key) {
      key = next;
      ++n;
    }
    return n;
  }

  int ct_fd() const { return dp_->maps().fd("ct"); }

  void expire(const ebpfnet_ct_key& k) {
    ebpfnet_ct_entry e{};
    ASSERT_EQ(bpf_map_lookup_elem(ct_fd(), &k, &e), 0) << "no entry " << str(k);
    e.expires_ns = monotonic_ns() - kNsPerSec;
    ASSERT_EQ(bpf_map_update_elem(ct_fd(), &k, &e, BPF_EXIST), 0) << str(k);
  }

  // Both entries of the flow that arrives as `in` and leaves as `out`: keys,
  // translations, peers, flags, state and a deadline inside `when`.
  void expect_flow(const Packet& in, const Packet& out, int nat, int state,
                   const Window& when) {
    const std::vector<CtFlow> flows = dp_->maps().ct_flows();
    const ebpfnet_ct_key fwd = key_of(in), rev = key_of(answer(out));
    const auto f = find_entry(flows, fwd);
    const auto r = find_entry(flows, rev);
    ASSERT_TRUE(f) << "no entry " << str(fwd) << " in " << str(flows);
    ASSERT_TRUE(r) << "no entry " << str(rev) << " in " << str(flows);
    EXPECT_EQ(str(f->xlate), str(key_of(out)));
    EXPECT_EQ(str(f->peer), str(rev));
    EXPECT_EQ(int(f->flags), nat);
    EXPECT_EQ(str(r->xlate), str(key_of(answer(in))));
    EXPECT_EQ(str(r->peer), str(fwd));
    EXPECT_EQ(int(r->flags), nat | EBPFNET_CT_F_REPLY);
    EXPECT_EQ(int(f->state), state);
    EXPECT_EQ(int(r->state), state);
    EXPECT_TRUE(within(f->expires_ns, when));
    EXPECT_TRUE(within(r->expires_ns, when));
  }

  // Members go in reverse: the datapath, then back to our namespace, then
  // the test namespace is removed.
  std::optional<ScopedNetns> ns_;
  std::optional<NetnsGuard> inside_;
  std::optional<Datapath> dp_;
  std::map<std::string, int> ifindex_;
  int up_ = 0;
  uint64_t ran_from_ = 0, ran_to_ = 0;
};

}  // namespace ebpfnet::test
