// `ebpfnet trace` against real traffic: for a table of packets, the verdict
// trace prints equals what happens to the very same packet sent for real
// (delivered where, or dropped for which reason by the counters), and trace
// itself leaves the node's conntrack, NAT ports and counters byte for byte
// as they were. Bad descriptions are usage errors that change nothing.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "connection.hpp"
#include "ebpfnet/datapath.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/trace.hpp"
#include "map_dump.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;
using test::dump_map;
using test::MapDump;
using test::SandboxNode;
using test::unique;

struct Ep {
  EndpointRecord rec;
  Netns ns() const { return Netns::open_path(rec.netns_path); }
};

// What the node holds that trace must not change: conntrack (so the NAT
// ports it holds) and every counter, byte for byte.
struct NodeSnapshot {
  MapDump ct, ep_stats, drop_stats;

  std::string diff(const NodeSnapshot& o) const {
    std::ostringstream d;
    if (ct != o.ct) d << "conntrack: " << ct.size() << " entries before, " << o.ct.size() << " after, or their bytes differ\n";
    if (nat_ports() != o.nat_ports()) d << "NAT ports in use differ\n";
    if (ep_stats != o.ep_stats) d << "endpoint counters differ\n";
    if (drop_stats != o.drop_stats) d << "node drop counters differ\n";
    return d.str();
  }
  std::set<uint16_t> nat_ports() const {
    std::set<uint16_t> ports;
    for (const auto& [k, v] : ct) {
      ebpfnet_ct_entry e{};
      std::memcpy(&e, v.data(), std::min(v.size(), sizeof e));
      if ((e.flags & EBPFNET_CT_F_SNAT) && !(e.flags & EBPFNET_CT_F_REPLY)) ports.insert(ntohs(e.xlate.sport));
    }
    return ports;
  }
};

NodeSnapshot snapshot(Node& node) {
  auto maps = Datapath::open_pinned_maps(node.pin_dir());
  EXPECT_TRUE(maps.has_value());
  if (!maps) return {};
  return {dump_map(maps->fd("ct")), dump_map(maps->fd("ep_stats")), dump_map(maps->fd("drop_stats"))};
}

// Drop counters by endpoint and the node's, for what a real packet did.
struct Drops {
  std::map<std::string, DropCounts> eps;
  DropCounts node{};
};

Drops drops(Node& node) {
  Drops d;
  for (const auto& v : node.endpoints()) d.eps[v.rec.name] = v.stats.value_or(EndpointStats{}).drops;
  d.node = node.status().node_drops;
  return d;
}

// Frames arriving on one interface of a namespace (not the ones it sends).
class Capture {
 public:
  Capture(const Netns& ns, const std::string& ifname) {
    NetnsGuard in(ns);
    fd_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_IP)));
    if (!fd_.valid()) throw std::runtime_error("AF_PACKET socket: " + std::string(std::strerror(errno)));
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_IP);
    a.sll_ifindex = Netlink().link(ifname).value().ifindex;
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("binding AF_PACKET socket: " + std::string(std::strerror(errno)));
  }
  // Whether an IPv4 packet of proto with that source port, or with that
  // destination address and port, arrived within limit_ms.
  bool saw(uint8_t proto, uint16_t sport, Ipv4 daddr, uint16_t dport, int limit_ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
    uint8_t buf[2048];
    for (;;) {
      sockaddr_ll from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n >= 14 + 24 && from.sll_pkttype != PACKET_OUTGOING) {
        const uint8_t* ip = buf + 14;
        const uint8_t* l4 = ip + (ip[0] & 0x0f) * 4;
        uint16_t sp, dp;
        uint32_t da;
        std::memcpy(&sp, l4, 2);
        std::memcpy(&dp, l4 + 2, 2);
        std::memcpy(&da, ip + 16, 4);
        if (ip[9] == proto && (ntohs(sp) == sport || (da == daddr.be() && ntohs(dp) == dport))) return true;
        continue;
      }
      if (n >= 0) continue;
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count());
      if (left <= 0) return false;
      pollfd p{fd_.get(), POLLIN, 0};
      ::poll(&p, 1, left);
    }
  }

 private:
  UniqueFd fd_;
};

// Sends the IPv4 packet of frame (its Ethernet header dropped) from ns as
// it is, source included, through a raw socket.
void send_raw(const Netns& ns, const std::vector<uint8_t>& frame) {
  NetnsGuard in(ns);
  UniqueFd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  ASSERT_TRUE(fd.valid()) << std::strerror(errno);
  sockaddr_in d{};
  d.sin_family = AF_INET;
  std::memcpy(&d.sin_addr, &frame[14 + 16], 4);
  const ssize_t n = ::sendto(fd.get(), frame.data() + 14, frame.size() - 14, 0, reinterpret_cast<sockaddr*>(&d), sizeof d);
  ASSERT_EQ(n, static_cast<ssize_t>(frame.size() - 14)) << std::strerror(errno);
}

struct Case {
  std::string name;
  std::vector<std::string> args;  // trace's options
  std::string want_action;        // also asserted, so the table means what it says
  std::string want_detail;        // endpoint (forward), reason (drop), ifname (redirect)
};

class TraceTraffic : public ::testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace("10.242.0.0/24", true, true);
    Node& node = sb_->node();
    for (const char* p : {"ta", "tb", "tc"})
      eps_.push_back({node.add_endpoint({unique(p), std::nullopt, std::nullopt, "eth0"})});
    // The gateway's neighbour entry never expires, so no ARP moves a counter
    // between the snapshots around a trace.
    for (const Ep& e : eps_) {
      Netlink nl = Netlink::in(e.ns());
      nl.add_neighbor({nl.link("eth0").value().ifindex, sb_->node().status().state.gateway(), e.rec.host_mac});
    }
    node.expose({b().rec.name, "tcp", 8080, 18080});
    node.set_policy(c().rec.name, [&](const PeerResolver& r) {
      Policy p;
      p.ingress.rules.push_back(parse_policy_rule("deny tcp 5432 from " + a().rec.name, PolicyDir::ingress, r));
      return p;
    });
  }

  const Ep& a() const { return eps_[0]; }
  const Ep& b() const { return eps_[1]; }
  const Ep& c() const { return eps_[2]; }

  json trace(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"-o", "json", "trace"};
    argv.insert(argv.end(), args.begin(), args.end());
    const test::CmdResult r = sb_->cli(argv);
    EXPECT_EQ(r.code, 0) << test::joined(argv) << "\n" << r.err;
    return r.code == 0 ? json::parse(r.out) : json::object();
  }

  // Runs trace for c, checks it changed nothing, sends the same packet for
  // real and checks the outcome is the one trace printed.
  void check(const Case& cs, const Netns& sender, const std::vector<uint8_t>& frame) {
    SCOPED_TRACE(cs.name);
    Node& node = sb_->node();
    const NodeSnapshot before = snapshot(node);
    const json t = trace(cs.args);
    const NodeSnapshot after = snapshot(node);
    EXPECT_EQ(before.diff(after), "") << "trace changed the node";
    ASSERT_TRUE(t.contains("verdict")) << t.dump(2);
    const json& v = t["verdict"];
    EXPECT_EQ(v["action"], cs.want_action) << t.dump(2);

    // The very packet trace ran, sent for real.
    const uint8_t proto = frame[14 + 9];
    uint16_t sport, dport;
    std::memcpy(&sport, &frame[34], 2);
    std::memcpy(&dport, &frame[36], 2);
    uint32_t daddr;
    std::memcpy(&daddr, &frame[30], 4);
    std::map<std::string, std::unique_ptr<Capture>> caps;
    for (const Ep& e : eps_) caps[e.rec.name] = std::make_unique<Capture>(e.ns(), "eth0");
    caps["outside"] = std::make_unique<Capture>(Netns::open_named(sb_->outside()), "eth0");
    const Drops sent_before = drops(node);
    send_raw(sender, frame);

    std::string real_action, real_detail;
    // Where it arrived: the published port's target sees its own port.
    const uint16_t arriving_dport = t["packet"]["dst"] == std::string(kSandboxUplinkIp) + ":18080" ? 8080 : ntohs(dport);
    for (auto& [where, cap] : caps) {
      const bool outside = where == "outside";
      const Ipv4 at = outside ? Ipv4::from_be(daddr) : Ipv4();
      if (cap->saw(proto, ntohs(sport), outside ? at : Ipv4(0xffffffff), arriving_dport, real_action.empty() ? 1000 : 50)) {
        real_action = outside ? "redirect" : "forward";
        real_detail = outside ? "eth0" : where;
      }
    }
    if (real_action.empty()) {
      // Dropped: which counter moved says why.
      const Drops sent_after = drops(node);
      for (const auto& [name, d] : sent_after.eps)
        for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r)
          if (d[r] > sent_before.eps.at(name)[r]) {
            real_action = "drop";
            real_detail = drop_reason_name(r);
          }
      for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r)
        if (sent_after.node[r] > sent_before.node[r]) {
          real_action = "drop";
          real_detail = drop_reason_name(r);
        }
    }
    const std::string traced_detail = v.value("action", "") == "forward" ? v.value("endpoint", "")
                                      : v.value("action", "") == "drop"  ? v.value("reason", "")
                                                                         : v.value("ifname", "");
    EXPECT_EQ(real_action + " " + real_detail, v.value("action", "") + " " + traced_detail)
        << "trace said one thing, the packet did another:\n" << t.dump(2);
    EXPECT_EQ(traced_detail, cs.want_detail) << t.dump(2);
  }

  // The frame trace builds for these options, from the node's state.
  std::vector<uint8_t> frame_for(const Ep* from, Ipv4 src, uint16_t sport, Ipv4 dst, uint16_t dport, uint8_t proto,
                                 uint8_t flags = kTcpSyn) {
    ebpfnet_ct_key k{};
    k.saddr = src.be();
    k.daddr = dst.be();
    k.sport = htons(sport);
    k.dport = htons(proto == IPPROTO_ICMP ? sport : dport);
    k.proto = proto;
    const Mac none{};
    return build_trace_frame(from ? from->rec.mac : none, from ? from->rec.host_mac : none, k, flags);
  }

  std::optional<SandboxNode> sb_;
  std::vector<Ep> eps_;
};

std::string port(uint16_t p) { return std::to_string(p); }

TEST_F(TraceTraffic, VerdictEqualsWhatHappensAndTraceChangesNothing) {
  const Ipv4 server = *Ipv4::parse(kSandboxServerIp), outside_ip = *Ipv4::parse(kSandboxOutsideIp),
             uplink_ip = *Ipv4::parse(kSandboxUplinkIp), spoofed = *Ipv4::parse("10.242.0.99");
  const Netns outside = Netns::open_named(sb_->outside());
  const std::string A = a().rec.name, B = b().rec.name, C = c().rec.name;

  check({"denied by policy", {"--from", A + ":41001", "--to", C + ":5432/tcp"}, "drop", "policy-deny"}, a().ns(),
        frame_for(&a(), a().rec.ip, 41001, c().rec.ip, 5432, IPPROTO_TCP));
  check({"allowed", {"--from", B + ":41002", "--to", C + ":5432/tcp"}, "forward", C}, b().ns(),
        frame_for(&b(), b().rec.ip, 41002, c().rec.ip, 5432, IPPROTO_TCP));
  check({"allowed udp", {"--from", A + ":41003", "--to", B + ":5353/udp"}, "forward", B}, a().ns(),
        frame_for(&a(), a().rec.ip, 41003, b().rec.ip, 5353, IPPROTO_UDP));
  check({"masqueraded", {"--from", A + ":41004", "--to", server.str() + ":8081/tcp"}, "redirect", "eth0"}, a().ns(),
        frame_for(&a(), a().rec.ip, 41004, server, 8081, IPPROTO_TCP));
  check({"published port from outside",
         {"--from", outside_ip.str() + ":41005", "--to", uplink_ip.str() + ":18080/tcp", "--flags", "S"},
         "forward",
         B},
        outside, frame_for(nullptr, outside_ip, 41005, uplink_ip, 18080, IPPROTO_TCP));
  check({"spoofed", {"--from", A + ":41006", "--spoof", spoofed.str(), "--to", C + ":5433/udp"}, "drop", "spoofed-ip"},
        a().ns(), frame_for(&a(), spoofed, 41006, c().rec.ip, 5433, IPPROTO_UDP));

  // A flow that exists: trace finds it and its port, and takes nothing more.
  test::Connection held = test::connect_tcp("held", a().ns(), server, 9000, outside, server, 9000);
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ASSERT_EQ(::getsockname(held.client.get(), reinterpret_cast<sockaddr*>(&local), &len), 0);
  const uint16_t lport = ntohs(local.sin_port);
  const json hit = trace({"--from", A + ":" + port(lport), "--to", server.str() + ":9000/tcp", "--flags", "A"});
  bool found = false;
  for (const auto& s : hit["steps"])
    if (s["stage"] == "conntrack" && s["result"] == "hit") found = true;
  EXPECT_TRUE(found) << "no conntrack hit for the held connection:\n" << hit.dump(2);
  check({"existing flow", {"--from", A + ":" + port(lport), "--to", server.str() + ":9000/tcp", "--flags", "A"},
         "redirect", "eth0"},
        a().ns(), frame_for(&a(), a().rec.ip, lport, server, 9000, IPPROTO_TCP, 0x10));
  EXPECT_TRUE(held.echo()) << "the held connection survived the traced and the real packet";
}

TEST_F(TraceTraffic, HumanOutputNamesTheRule) {
  const test::CmdResult r = sb_->cli({"trace", "--from", a().rec.name, "--to", c().rec.name + ":5432/tcp"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("anti-spoofing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("conntrack"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ingress of " + c().rec.name + ": rule 1 \"deny tcp 5432 from"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict  drop (policy-deny)"), std::string::npos) << r.out;
}

// Bad descriptions: usage errors (unknown names: not found), one line,
// nothing on the node changed.
TEST_F(TraceTraffic, BadInputIsRefusedAndChangesNothing) {
  const std::string A = a().rec.name;
  struct Bad {
    std::vector<std::string> args;
    Errc code;
  };
  const std::vector<Bad> bad = {
      {{"--from", A, "--to", "10.242.0.3"}, Errc::usage},                    // tcp needs a port
      {{"--from", A, "--to", "10.242.0.3:99999/tcp"}, Errc::usage},          // port out of range
      {{"--from", A, "--to", "10.242.0.3:80/sctp"}, Errc::usage},            // protocol
      {{"--from", A, "--to", "10.242.0.3:80/icmp"}, Errc::usage},            // icmp has no port
      {{"--from", A, "--to", "10.242.0.300:80"}, Errc::usage},               // not an address
      {{"--from", A + ":x", "--to", "10.242.0.3:80"}, Errc::usage},          // source port
      {{"--from", "", "--to", "10.242.0.3:80"}, Errc::usage},                // empty
      {{"--from", "a b", "--to", "10.242.0.3:80"}, Errc::usage},             // not a name
      {{"--from", A, "--to", "10.242.0.3:80", "--flags", "SX"}, Errc::usage},  // flag letter
      {{"--from", A, "--to", "10.242.0.3:80/udp", "--flags", "S"}, Errc::usage},  // flags on udp
      {{"--from", A, "--to", "10.242.0.3:80", "--spoof", "10.1"}, Errc::usage},
      {{"--from", "198.51.100.7", "--to", "10.242.0.3:80", "--spoof", "10.1.1.1"}, Errc::usage},
      {{"--from", A, "--to", "10.242.0.3:80", "--bogus"}, Errc::usage},
      {{"--to", "10.242.0.3:80"}, Errc::usage},                              // --from missing
      {{"--from", "nosuch", "--to", "10.242.0.3:80"}, Errc::not_found},
      {{"--from", A, "--to", "nosuch:80"}, Errc::not_found},
  };
  Node& node = sb_->node();
  const NodeSnapshot before = snapshot(node);
  for (const Bad& b : bad) {
    std::vector<std::string> argv = {"trace"};
    argv.insert(argv.end(), b.args.begin(), b.args.end());
    const test::CmdResult r = sb_->cli(argv);
    EXPECT_EQ(r.code, static_cast<int>(b.code)) << test::joined(argv) << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << test::joined(argv) << "\n" << r.out;
    if (b.args.size() > 1 && b.args.back() != "--bogus" && b.args[0] == "--from") test::expect_one_line_error(r);
  }
  EXPECT_EQ(before.diff(snapshot(node)), "");
}

}  // namespace
}  // namespace ebpfnet
