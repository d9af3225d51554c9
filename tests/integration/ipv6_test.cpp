// Dual-stack sandbox nodes with real traffic: endpoints get an address of
// each pool and default routes for both families, reach each other over
// IPv6 (ping -6, TCP and UDP through socat) by bpf_redirect_peer, reach the
// gateway's global and link-local addresses; spoofed sources and rogue
// router advertisements are dropped and counted, IPv6 to the outside never
// arrives there, and IPv4 works as before.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;
using test::Child;
using test::CmdResult;
using test::listening;
using test::run;
using test::run_in;
using test::SandboxNode;
using test::unique;

constexpr uint16_t kTcpPort = 7601, kUdpPort = 7602;
constexpr const char* kPool6 = "fd00:241::/64";
constexpr const char* kGateway6 = "fd00:241::1";

struct Ep {
  std::string name;
  std::string ip, ip6;
};

Ep cli_add(SandboxNode& sb) {
  Ep ep{unique("v6e"), "", ""};
  CmdResult r = sb.cli({"-o", "json", "endpoint", "add", ep.name}, 20);
  if (r.code != 0) throw std::runtime_error("endpoint add " + ep.name + ": " + r.err);
  const json j = json::parse(r.out);
  ep.ip = j.at("ip").get<std::string>();
  ep.ip6 = j.at("ip6").is_string() ? j.at("ip6").get<std::string>() : "";
  return ep;
}

CmdResult ping6(const std::string& from, const std::string& dst, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"ping", "-6", "-n", "-c1", "-W1"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(dst);
  return run_in(from, args, 10);
}

// One counter of the namespace's IPv6 statistics (/proc/net/snmp6 is per namespace).
uint64_t snmp6(const std::string& netns, const std::string& name) {
  CmdResult r = run_in(netns, {"cat", "/proc/net/snmp6"}, 10);
  std::istringstream in(r.out);
  std::string key;
  uint64_t v = 0;
  while (in >> key >> v)
    if (key == name) return v;
  ADD_FAILURE() << name << " not in /proc/net/snmp6 of " << netns;
  return 0;
}

uint64_t drops_of(SandboxNode& sb, const std::string& endpoint, const std::string& reason) {
  for (const auto& v : test::cli_json(sb, {"endpoint", "list"}))
    if (v.at("name") == endpoint) return v.at("stats").at("drops").value(reason, uint64_t{0});
  ADD_FAILURE() << "endpoint " << endpoint << " not listed";
  return 0;
}

class DualStack : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace("10.241.0.0/24", true, true, "", "v6", kPool6);
    for (int i = 0; i < 3; ++i) eps_.push_back(cli_add(*sb_));
  }

  std::optional<SandboxNode> sb_;
  std::vector<Ep> eps_;
};

TEST_F(DualStack, EndpointsGetBothFamiliesWithoutDad) {
  for (const auto& ep : eps_) {
    SCOPED_TRACE(ep.name);
    // The IPv6 address pairs with the IPv4 one: 10.241.0.N and fd00:241::N.
    const std::string host = ep.ip.substr(ep.ip.rfind('.') + 1);
    std::stringstream hex;
    hex << std::hex << std::stoi(host);
    EXPECT_EQ(ep.ip6, "fd00:241::" + hex.str());
    CmdResult addr = run_in(ep.name, {"ip", "-6", "addr", "show", "dev", "eth0"}, 10);
    EXPECT_NE(addr.out.find(ep.ip6 + "/128"), std::string::npos) << addr.out;
    EXPECT_EQ(addr.out.find("tentative"), std::string::npos) << "no DAD holds the address back:\n" << addr.out;
    EXPECT_EQ(addr.out.find("fe80"), std::string::npos) << "no link-local address:\n" << addr.out;
    CmdResult route = run_in(ep.name, {"ip", "-6", "route", "show", "default"}, 10);
    EXPECT_NE(route.out.find(std::string("via ") + kGateway6), std::string::npos) << route.out;
    CmdResult route4 = run_in(ep.name, {"ip", "-4", "route", "show", "default"}, 10);
    EXPECT_NE(route4.out.find("via 10.241.0.1"), std::string::npos) << route4.out;
  }
  const json st = test::cli_json(*sb_, {"status"});
  EXPECT_EQ(st.at("cidr6"), kPool6);
  EXPECT_EQ(st.at("gateway6"), kGateway6);
  const json list = test::cli_json(*sb_, {"endpoint", "list"});
  ASSERT_EQ(list.size(), eps_.size());
  for (const auto& v : list) EXPECT_TRUE(v.at("ip6").is_string()) << v.dump();
  CmdResult table = sb_->cli({"endpoint", "list"});
  EXPECT_NE(table.out.find("IPV6"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(eps_[0].ip6), std::string::npos) << table.out;
}

TEST_F(DualStack, AllPairsTalkOverIpv6AndIpv4) {
  std::vector<std::unique_ptr<Child>> servers;
  for (const auto& ep : eps_) {
    const std::string reply = "SYSTEM:read l; echo " + ep.name + "-got-$l";
    servers.push_back(std::make_unique<Child>(std::vector<std::string>{
        "ip", "netns", "exec", ep.name, "socat", "-T5", "TCP6-LISTEN:" + std::to_string(kTcpPort) + ",reuseaddr,fork",
        reply}));
    servers.push_back(std::make_unique<Child>(std::vector<std::string>{
        "ip", "netns", "exec", ep.name, "socat", "-T5", "UDP6-RECVFROM:" + std::to_string(kUdpPort) + ",fork", reply}));
    ASSERT_TRUE(listening(ep.name, "-t", kTcpPort)) << ep.name;
    ASSERT_TRUE(listening(ep.name, "-u", kUdpPort)) << ep.name;
  }
  for (const auto& a : eps_)
    for (const auto& b : eps_) {
      if (a.name == b.name) continue;
      SCOPED_TRACE(a.name + " -> " + b.name);
      // The first packet after endpoint add already gets through (no DAD wait).
      CmdResult icmp = ping6(a.name, b.ip6);
      EXPECT_EQ(icmp.code, 0) << icmp.out << icmp.err;
      const std::string payload = "from-" + a.name + "\n", expected = b.name + "-got-from-" + a.name + "\n";
      CmdResult tcp = run({"ip", "netns", "exec", a.name, "socat", "-T3", "-t1", "-",
                           "TCP6:[" + b.ip6 + "]:" + std::to_string(kTcpPort)},
                          payload, 10);
      EXPECT_EQ(tcp.code, 0) << tcp.err;
      EXPECT_EQ(tcp.out, expected);
      CmdResult udp = run({"ip", "netns", "exec", a.name, "socat", "-T3", "-t1", "-",
                           "UDP6:[" + b.ip6 + "]:" + std::to_string(kUdpPort)},
                          payload, 10);
      EXPECT_EQ(udp.code, 0) << udp.err;
      EXPECT_EQ(udp.out, expected);
      CmdResult v4 = run_in(a.name, {"ping", "-4", "-n", "-c1", "-W1", b.ip}, 10);
      EXPECT_EQ(v4.code, 0) << "IPv4 unchanged: " << v4.out << v4.err;
    }
  for (const auto& ep : eps_) {
    EXPECT_EQ(drops_of(*sb_, ep.name, "unsupported-l3"), 0u) << ep.name;
    EXPECT_EQ(drops_of(*sb_, ep.name, "spoofed-ip"), 0u) << ep.name;
  }
}

TEST_F(DualStack, GatewayAnswersOnItsGlobalAndLinkLocalAddress) {
  CmdResult global = ping6(eps_[0].name, kGateway6);
  EXPECT_EQ(global.code, 0) << global.out << global.err;
  CmdResult ll = ping6(eps_[0].name, "fe80::1%eth0");
  EXPECT_EQ(ll.code, 0) << ll.out << ll.err;
  // The gateway's neighbour entry came from the datapath's advertisement.
  CmdResult neigh = run_in(eps_[0].name, {"ip", "-6", "neigh", "show", "dev", "eth0"}, 10);
  EXPECT_NE(neigh.out.find(std::string(kGateway6) + " lladdr"), std::string::npos) << neigh.out;
  EXPECT_NE(neigh.out.find("router"), std::string::npos) << "the R flag is set:\n" << neigh.out;
}

TEST_F(DualStack, SpoofedSourceIsDroppedAndCounted) {
  const Ep &a = eps_[0], &b = eps_[1];
  // A takes B's address by hand (nodad, so it is usable at once) and sends from it.
  ASSERT_EQ(run_in(a.name, {"ip", "-6", "addr", "add", b.ip6 + "/128", "dev", "eth0", "nodad"}, 10).code, 0);
  const uint64_t before = drops_of(*sb_, a.name, "spoofed-ip");
  CmdResult r = ping6(a.name, eps_[2].ip6, {"-I", b.ip6});
  EXPECT_NE(r.code, 0) << "a spoofed echo must not be answered: " << r.out;
  EXPECT_GE(drops_of(*sb_, a.name, "spoofed-ip"), before + 1);
}

TEST_F(DualStack, RogueRouterAdvertisementIsDroppedAndCounted) {
  const Ep& a = eps_[0];
  // A router advertisement with a default-router lifetime of 1800 s to all
  // nodes, from a raw ICMPv6 socket (the kernel fills in the checksum).
  const std::string script =
      "import socket\n"
      "s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n"
      "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\n"
      "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex('eth0'))\n"
      "ra = bytes([134, 0, 0, 0, 64, 0, 0x07, 0x08]) + bytes(8)\n"
      "for _ in range(3): s.sendto(ra, ('ff02::1', 0, 0, socket.if_nametoindex('eth0')))\n";
  const uint64_t before = drops_of(*sb_, a.name, "nd-router");
  CmdResult r = run_in(a.name, {"python3", "-c", script}, 10);
  if (r.code != 0) GTEST_SKIP() << "python3 could not send a raw ICMPv6 packet: " << r.err;
  EXPECT_EQ(drops_of(*sb_, a.name, "nd-router"), before + 3);
  // Nothing learned a route from it: not the node, not a neighbour.
  CmdResult node_routes = run_in(sb_->name(), {"ip", "-6", "route", "show", "proto", "ra"}, 10);
  EXPECT_EQ(node_routes.out, "");
  CmdResult b_routes = run_in(eps_[1].name, {"ip", "-6", "route", "show", "proto", "ra"}, 10);
  EXPECT_EQ(b_routes.out, "");
}

TEST_F(DualStack, Ipv6ToTheOutsideIsDroppedNotLeaked) {
  const Ep& a = eps_[0];
  const uint64_t echoes = snmp6(sb_->outside(), "Icmp6InEchos");
  const uint64_t before = drops_of(*sb_, a.name, "ipv6-no-way-out");
  CmdResult r = ping6(a.name, "2001:db8:ffff::1");
  EXPECT_NE(r.code, 0) << "IPv6 has no way out yet: " << r.out;
  EXPECT_EQ(drops_of(*sb_, a.name, "ipv6-no-way-out"), before + 1);
  EXPECT_EQ(snmp6(sb_->outside(), "Icmp6InEchos"), echoes) << "the outside never saw it";
  // The outside has its documented IPv6 addresses, and the node reaches them itself.
  CmdResult out_addr = run_in(sb_->outside(), {"ip", "-6", "addr"}, 10);
  EXPECT_NE(out_addr.out.find("2001:db8:ffff::1/128"), std::string::npos) << out_addr.out;
  EXPECT_NE(out_addr.out.find("fd18::1/64"), std::string::npos) << out_addr.out;
  CmdResult node_ping = ping6(sb_->name(), "2001:db8:ffff::1");
  EXPECT_EQ(node_ping.code, 0) << node_ping.out << node_ping.err;
}

TEST(DualStackBadInput, RefusesPoolsThatCannotHoldEndpoints) {
  EBPFNET_REQUIRE_ROOT();
  test::TempStateDir dir;
  for (const char* bad : {"fd00::/127", "fd00::/128", "fd00::1/64", "fe80::/64", "10.0.0.0/8", "fd00::/47"}) {
    SCOPED_TRACE(bad);
    const std::string name = unique("v6b");
    CmdResult r = run({test::ebpfnet_bin(), "--state-dir", dir.path().string(), "node", "create", name, "--cidr",
                       "10.242.0.0/24", "--cidr6", bad},
                      "", 20);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find(bad), std::string::npos) << "the error names the pool: " << r.err;
    EXPECT_FALSE(netns::exists(name)) << "nothing half-made";
  }
}

}  // namespace
}  // namespace ebpfnet
