// Two sandbox nodes joined by an underlay (a veth pair between their
// namespaces, addresses of the test's own) and the VXLAN overlay in BPF:
// endpoints on either node reach each other by their own addresses over TCP,
// UDP and ICMP; 1 MB crosses at an underlay MTU of 1500 (PMTU through the
// tunnel); removing a peer stops its traffic; a VXLAN packet from an
// address that is no node of the overlay is dropped and counted.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <cstring>
#include <iostream>
#include <vector>

#include "connection.hpp"
#include "ebpfnet/cluster/overlay_peers.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using test::SandboxNode;
using test::unique;

constexpr uint16_t kPort = 7401;
const Ipv4 kUnderlayA = *Ipv4::parse("198.18.250.1");
const Ipv4 kUnderlayB = *Ipv4::parse("198.18.250.2");
const Ipv4 kStranger = *Ipv4::parse("198.18.250.9");  // on the underlay, no node of the overlay
const Ipv4Cidr kPoolA = *Ipv4Cidr::parse("10.240.0.0/24");
const Ipv4Cidr kPoolB = *Ipv4Cidr::parse("10.241.0.0/24");

class Overlay : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    a_ = std::make_unique<SandboxNode>(kPoolA.str(), true, false, "", "ova");
    b_ = std::make_unique<SandboxNode>(kPoolB.str(), true, false, "", "ovb");
    // The underlay: one veth pair from node A's namespace into node B's.
    Netns nb = b_->node().netns();
    Netlink la = Netlink::in(a_->node().netns());
    const int ia = la.create_veth({.name = "ul0",
                                   .mac = {0x02, 0x18, 0xfa, 0, 0, 0x01},
                                   .peer_name = "ul0",
                                   .peer_mac = {0x02, 0x18, 0xfa, 0, 0, 0x02},
                                   .peer_ns_fd = nb.fd()});
    la.add_address({ia, kUnderlayA, 24});
    la.add_address({ia, kStranger, 24});
    la.set_up(ia);
    Netlink lb = Netlink::in(nb);
    const int ib = lb.ifindex_of("ul0");
    lb.add_address({ib, kUnderlayB, 24});
    lb.set_up(ib);
    ea_ = a_->node().add_endpoint({unique("oa"), std::nullopt, std::nullopt, "eth0"});
    ea2_ = a_->node().add_endpoint({unique("oc"), std::nullopt, std::nullopt, "eth0"});
    eb_ = b_->node().add_endpoint({unique("ob"), std::nullopt, std::nullopt, "eth0"});
  }
  void TearDown() override {
    b_.reset();
    a_.reset();
  }
  void connect() {
    a_->node().tunnel_add({kPoolB, kUnderlayB});
    b_->node().tunnel_add({kPoolA, kUnderlayA});
  }
  Netns ns(const EndpointRecord& e) { return Netns::open_path(e.netns_path); }
  uint64_t tunnel_peer_drops(SandboxNode& n) { return n.node().status().node_drops[EBPFNET_DROP_TUNNEL_PEER]; }

  std::unique_ptr<SandboxNode> a_, b_;
  EndpointRecord ea_, ea2_, eb_;
};

TEST_F(Overlay, EndpointsOfTwoNodesTalkThroughTheTunnel) {
  EXPECT_FALSE(probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort, ProbeTimeout(500)).ok) << "no overlay yet";
  connect();
  ProbeResult tcp = probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort);
  ASSERT_TRUE(tcp.ok) << tcp.error;
  EXPECT_EQ(tcp.peer_saw, ea_.ip) << "the overlay carries the endpoint's own address";
  ProbeResult udp = probe_udp(ns(eb_), ns(ea_), ea_.ip, kPort);
  ASSERT_TRUE(udp.ok) << udp.error;
  EXPECT_EQ(udp.peer_saw, eb_.ip);
  ProbeResult icmp = probe_icmp(ns(ea_), eb_.ip);
  ASSERT_TRUE(icmp.ok) << icmp.error;
  ProbeResult local = probe_icmp(ns(ea_), ea2_.ip);
  ASSERT_TRUE(local.ok) << local.error;
  // Round trips, for the record: best of a few, across the nodes and on one node.
  auto best_rtt = [](const Netns& from, Ipv4 dst) {
    auto best = std::chrono::microseconds::max();
    for (int i = 0; i < 20; ++i) {
      ProbeResult r = probe_icmp(from, dst);
      if (r.ok) best = std::min(best, r.rtt);
    }
    return best.count();
  };
  std::cout << "ping rtt (best of 20): across the overlay " << best_rtt(ns(ea_), eb_.ip) << " us, same node "
            << best_rtt(ns(ea_), ea2_.ip) << " us\n";

  const nlohmann::json list = test::cli_json(*a_, {"tunnel", "list"});
  ASSERT_EQ(list.at("peers").size(), 1u) << list.dump();
  EXPECT_EQ(list.at("peers")[0].at("pool"), kPoolB.str());
  EXPECT_EQ(list.at("peers")[0].at("via"), kUnderlayB.str());
  EXPECT_EQ(list.at("device"), "vx0");
  const nlohmann::json st = test::cli_json(*a_, {"status"});
  bool attached = false;
  for (const auto& at : st.at("attachments"))
    if (at.at("owner") == "overlay") attached = !at.at("stale").get<bool>();
  EXPECT_TRUE(attached) << st.at("attachments").dump();
}

// 1 MB each way at an underlay MTU of 1500: the endpoints' 1500-byte
// packets do not fit the tunnel (1450); the node answers "fragmentation
// needed" and TCP sends smaller ones.
TEST_F(Overlay, LargeTransfersCompleteAtUnderlayMtu1500) {
  connect();
  constexpr size_t kMiB = 1 << 20;
  test::Connection there = test::connect_tcp("a to b", ns(ea_), eb_.ip, kPort, ns(eb_), eb_.ip, kPort);
  const auto t = test::transfer(there, kMiB, std::chrono::seconds(20));
  test::Connection back = test::connect_tcp("b to a", ns(eb_), ea_.ip, kPort + 1, ns(ea_), ea_.ip, kPort + 1);
  test::transfer(back, kMiB, std::chrono::seconds(20));
  // For the record: a bounded bulk transfer across the overlay and on one node.
  constexpr size_t kBulk = 64 * kMiB;
  test::Connection bulk = test::connect_tcp("bulk", ns(ea_), eb_.ip, kPort + 2, ns(eb_), eb_.ip, kPort + 2);
  const auto tb = test::transfer(bulk, kBulk, std::chrono::seconds(60));
  test::Connection same = test::connect_tcp("same", ns(ea_), ea2_.ip, kPort + 3, ns(ea2_), ea2_.ip, kPort + 3);
  const auto ts = test::transfer(same, kBulk, std::chrono::seconds(60));
  auto mbit = [](size_t bytes, std::chrono::microseconds us) { return double(bytes) * 8 / double(us.count()); };
  std::cout << "1 MiB across the overlay: " << t.count() << " us; 64 MiB one stream (sender and receiver in one "
            << "thread): across the overlay " << mbit(kBulk, tb) << " Mbit/s, same node " << mbit(kBulk, ts)
            << " Mbit/s\n";
}

TEST_F(Overlay, RemovingThePeerStopsItsTraffic) {
  connect();
  ASSERT_TRUE(probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort).ok);
  a_->node().tunnel_del(kPoolB);
  EXPECT_FALSE(probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort, ProbeTimeout(500)).ok);
  EXPECT_FALSE(Netlink::in(a_->node().netns()).link("vx0")) << "the device goes with the last peer";
  EXPECT_FALSE(a_->node().overlay());
  // B still has A's pool, but A no longer sends: back again, it works.
  a_->node().tunnel_add({kPoolB, kUnderlayB});
  EXPECT_TRUE(probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort).ok);
}

// A VXLAN packet for B's endpoint, claiming A's pool, from an underlay
// address that is not A's: B drops it as tunnel-peer and counts it.
TEST_F(Overlay, UnknownOuterSourceIsDroppedAndCounted) {
  connect();
  const uint64_t before = tunnel_peer_drops(*b_);
  // VXLAN header (flags: VNI valid; VNI 1), then the inner frame: Ethernet,
  // IPv4 (checksum left 0: the drop comes before anything reads it), UDP.
  std::vector<uint8_t> pkt = {0x08, 0, 0, 0, 0, 0, 1, 0};
  const uint8_t eth[14] = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
  pkt.insert(pkt.end(), eth, eth + 14);
  uint8_t ip[28] = {0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17};
  const uint32_t src = ea_.ip.be(), dst = eb_.ip.be();
  std::memcpy(ip + 12, &src, 4);
  std::memcpy(ip + 16, &dst, 4);
  ip[20] = 0x1c; ip[21] = 0xe9; ip[22] = 0x1c; ip[23] = 0xe9; ip[25] = 8;  // UDP 7401 -> 7401, length 8
  pkt.insert(pkt.end(), ip, ip + 28);
  UniqueFd s = test::socket_in(a_->node().netns(), SOCK_DGRAM);
  sockaddr_in from = socket_address(kStranger, 0), to = socket_address(kUnderlayB, 4789);
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&from), sizeof from), 0) << std::strerror(errno);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(::sendto(s.get(), pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              ssize_t(pkt.size()))
        << std::strerror(errno);
  uint64_t after = before;
  for (int i = 0; i < 50 && after < before + 3; ++i) {
    ::usleep(20000);
    after = tunnel_peer_drops(*b_);
  }
  EXPECT_EQ(after, before + 3) << "each spoofed packet is dropped and counted as tunnel-peer";
  EXPECT_TRUE(probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort).ok) << "the real peer still gets through";
}

TEST_F(Overlay, BadPeersAreRefused) {
  connect();
  auto code = test::error_code_of;
  Node& n = a_->node();
  EXPECT_EQ(code([&] { n.tunnel_add({*Ipv4Cidr::parse("10.240.0.0/16"), kUnderlayB}); }), Errc::usage)
      << "overlaps the node's own pool";
  EXPECT_EQ(code([&] { n.tunnel_add({*Ipv4Cidr::parse("10.241.0.128/25"), kUnderlayB}); }), Errc::usage)
      << "overlaps another peer's pool";
  EXPECT_EQ(code([&] { n.tunnel_add({kPoolB, kUnderlayB}); }), Errc::exists);
  EXPECT_EQ(code([&] { n.tunnel_add({*Ipv4Cidr::parse("10.242.0.0/24"), *Ipv4::parse("224.0.0.1")}); }),
            Errc::usage);
  EXPECT_EQ(code([&] { n.tunnel_add({*Ipv4Cidr::parse("10.242.0.0/24"), *Ipv4::parse("0.0.0.0")}); }), Errc::usage);
  EXPECT_EQ(code([&] { n.tunnel_del(*Ipv4Cidr::parse("10.243.0.0/24")); }), Errc::not_found);
  const test::CmdResult bad = a_->cli({"tunnel", "add", "10.242.0.0/24", "via", "not-an-address"});
  EXPECT_NE(bad.code, 0);
  test::expect_one_line_error(bad);
  EXPECT_EQ(n.overlay()->peers.size(), 1u) << "nothing refused was kept";
}

// The cluster agent's seam: its peers' changes program each node's overlay
// through the node's own operations (here without etcd: the consumer is
// handed the records the agent would hand it).
TEST_F(Overlay, AgentPeersProgramTheOverlay) {
  using cluster::NodeRecord;
  cluster::OverlayPeerConsumer on_a(a_->node()), on_b(b_->node());
  const NodeRecord ra{"node-a", kUnderlayA, kPoolA, std::nullopt, cluster::Mode::vxlan};
  const NodeRecord rb{"node-b", kUnderlayB, kPoolB, std::nullopt, cluster::Mode::vxlan};
  on_a.peer_added(rb);
  on_b.peer_added(ra);
  ProbeResult tcp = probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort);
  ASSERT_TRUE(tcp.ok) << tcp.error;
  on_a.peer_added(rb);  // a re-list after a restart: nothing changes
  ASSERT_TRUE(a_->node().overlay());
  EXPECT_EQ(a_->node().overlay()->peers.size(), 1u);

  NodeRecord moved = rb;
  moved.underlay = kStranger;
  on_a.peer_changed(rb, moved);
  ASSERT_TRUE(a_->node().overlay());
  ASSERT_EQ(a_->node().overlay()->peers.size(), 1u);
  EXPECT_EQ(a_->node().overlay()->peers[0].via, kStranger);
  on_a.peer_changed(moved, rb);
  EXPECT_TRUE(probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort).ok);

  on_a.peer_removed(rb);
  EXPECT_FALSE(a_->node().overlay()) << "the last peer took the device with it";
  EXPECT_FALSE(probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort, ProbeTimeout(500)).ok);
}

// A node running map ABI 4 (no tunnel map, no from_tunnel) and state schema
// 5 is upgraded by attach: the tunnel map is created, every other map is
// reused, a connection between its endpoints survives, and the overlay
// works afterwards; before the upgrade, tunnel add is refused.
TEST_F(Overlay, AnAbi4NodeIsUpgradedAndGetsTheOverlay) {
  const auto pins = a_->node().pin_dir();
  test::Connection conn = test::connect_tcp("same node", ns(ea_), ea2_.ip, kPort + 5, ns(ea2_), ea2_.ip, kPort + 5);
  ASSERT_TRUE(conn.echo());
  for (const char* p : {"maps/tunnel", "from_tunnel"}) ASSERT_EQ(::unlink((pins / p).c_str()), 0) << p;
  {
    UniqueFd config(bpf_obj_get((pins / "maps" / "config").c_str()));
    __u32 key = EBPFNET_CFG_ABI_VERSION;
    uint64_t four = 4;
    ASSERT_EQ(bpf_map_update_elem(config.get(), &key, &four, BPF_ANY), 0);
  }
  const auto state_file = a_->env().state_root / a_->name() / "state.json";
  nlohmann::json st = nlohmann::json::parse(test::read_file(state_file));
  st["version"] = 5;
  st.erase("overlay");
  // Schema 5 kept the endpoints in the file too.
  st["endpoints"] = test::stored_endpoints_json(state_file.parent_path());
  // Schema 5 kept the services in the file (none here).
  st["services"] = nlohmann::json::array();
  st["service_counters"] = {{"next_service", 1}, {"next_backend", 1}};
  std::ofstream(state_file) << st.dump();

  const test::CmdResult refused = a_->cli({"tunnel", "add", kPoolB.str(), "via", kUnderlayB.str()});
  EXPECT_EQ(refused.code, static_cast<int>(Errc::rejected)) << refused.err;
  EXPECT_NE(refused.err.find("ABI version 4"), std::string::npos) << refused.err;

  const nlohmann::json r = test::cli_json(*a_, {"attach"});
  EXPECT_EQ(r["from_abi"], 4);
  EXPECT_EQ(r["to_abi"], EBPFNET_ABI_VERSION);
  std::set<std::string> created;
  for (const auto& m : r["maps"]) {
    EXPECT_EQ(m["how"], "created") << m.dump() << ": ABI 4's maps are reused";
    created.insert(m["name"]);
  }
  EXPECT_EQ(created, std::set<std::string>{"tunnel"}) << r.dump();
  EXPECT_TRUE(conn.echo()) << "the established connection survives the upgrade";
  EXPECT_EQ(nlohmann::json::parse(test::read_file(state_file))["version"].get<int>(), 9);
  connect();
  ProbeResult tcp = probe_tcp(ns(ea_), ns(eb_), eb_.ip, kPort);
  EXPECT_TRUE(tcp.ok) << tcp.error;
  EXPECT_TRUE(conn.echo());
}

}  // namespace
}  // namespace ebpfnet
