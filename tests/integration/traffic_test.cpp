// Real traffic between the endpoints of sandbox nodes: ping and socat run
// inside the namespaces, plus the in-process probes, through the datapath
// alone (no bridge, no resident ebpfnet process).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"
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
using test::wait_until;

constexpr uint16_t kTcpPort = 7001, kUdpPort = 7002, kProbePort = 7003;

// A namespace made by iproute2 itself, deleted by iproute2 at scope exit.
class IpNetns {
 public:
  IpNetns() : name_(unique("tx")) {
    CmdResult r = run({"ip", "netns", "add", name_}, "", 10);
    if (r.code != 0) throw std::runtime_error("ip netns add " + name_ + ": " + r.err);
  }
  ~IpNetns() {
    if (netns::exists(name_)) run({"ip", "netns", "del", name_}, "", 10);
  }
  IpNetns(const IpNetns&) = delete;
  IpNetns& operator=(const IpNetns&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

struct Ep {
  std::string name;  // also its namespace's name
  Ipv4 ip;
};

// Adds an endpoint with the command line, so a process that has exited made it.
Ep cli_add(SandboxNode& sb, const std::vector<std::string>& extra = {}) {
  Ep ep{unique("ta"), {}};
  std::vector<std::string> args = {"-o", "json", "endpoint", "add", ep.name};
  args.insert(args.end(), extra.begin(), extra.end());
  CmdResult r = sb.cli(args, 20);
  if (r.code != 0) throw std::runtime_error("endpoint add " + ep.name + ": " + r.err);
  ep.ip = Ipv4::parse(json::parse(r.out).at("ip").get<std::string>()).value();
  return ep;
}

Ep api_add(SandboxNode& sb) {
  EndpointRecord rec = sb.node().add_endpoint({unique("ta"), std::nullopt, std::nullopt, "eth0"});
  return {rec.name, rec.ip};
}

std::map<std::string, EndpointView> views_by_name(SandboxNode& sb) {
  std::map<std::string, EndpointView> out;
  for (auto& v : sb.node().endpoints()) out.emplace(v.rec.name, v);
  return out;
}

EndpointStats stats_of(SandboxNode& sb, const std::string& name) {
  auto views = views_by_name(sb);
  auto it = views.find(name);
  if (it == views.end() || !it->second.stats) throw std::runtime_error("no counters for " + name);
  return *it->second.stats;
}

CmdResult ping(const std::string& from_ns, Ipv4 dst, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"ping", "-n", "-c1", "-W1"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(dst.str());
  return run_in(from_ns, args, 10);
}

// TCP, UDP and ICMP one way with the in-process probes.
void expect_probes(const Netns& from, const Netns& to, Ipv4 dst, const std::string& what) {
  SCOPED_TRACE(what);
  ProbeResult tcp = probe_tcp(from, to, dst, kProbePort);
  EXPECT_TRUE(tcp.ok) << "tcp: " << tcp.error;
  ProbeResult udp = probe_udp(from, to, dst, kProbePort);
  EXPECT_TRUE(udp.ok) << "udp: " << udp.error;
  ProbeResult icmp = probe_icmp(from, dst);
  EXPECT_TRUE(icmp.ok) << "icmp: " << icmp.error;
}

void expect_probes(const Ep& from, const Ep& to) {
  expect_probes(Netns::open_named(from.name), Netns::open_named(to.name), to.ip,
                from.name + " -> " + to.name);
}

// Four endpoints made by separate `ebpfnet endpoint add` processes.
class FourEndpoints : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace();
    for (int i = 0; i < 4; ++i) eps_.push_back(cli_add(*sb_));
  }

  std::optional<SandboxNode> sb_;
  std::vector<Ep> eps_;
};

TEST_F(FourEndpoints, AllPairsTalkOverTcpUdpIcmpWithRealTools) {
  // One TCP and one UDP server per endpoint; the reply names the server and
  // carries the request, so it proves the payload went both ways.
  std::vector<std::unique_ptr<Child>> servers;
  for (const auto& ep : eps_) {
    std::string reply = "SYSTEM:read l; echo " + ep.name + "-got-$l";
    servers.push_back(std::make_unique<Child>(std::vector<std::string>{
        "ip", "netns", "exec", ep.name, "socat", "-T5",
        "TCP-LISTEN:" + std::to_string(kTcpPort) + ",reuseaddr,fork", reply}));
    servers.push_back(std::make_unique<Child>(
        std::vector<std::string>{"ip", "netns", "exec", ep.name, "socat", "-T5",
                                 "UDP-RECVFROM:" + std::to_string(kUdpPort) + ",fork", reply}));
    ASSERT_TRUE(listening(ep.name, "-t", kTcpPort)) << ep.name;
    ASSERT_TRUE(listening(ep.name, "-u", kUdpPort)) << ep.name;
  }

  struct PairResult {
    std::string what, expected;
    CmdResult tcp, udp, icmp;
  };
  // Pairs run at once: a UDP client waits out its -t after the reply.
  std::vector<std::future<PairResult>> pending;
  for (const auto& a : eps_) {
    for (const auto& b : eps_) {
      if (a.name == b.name) continue;
      pending.push_back(std::async(std::launch::async, [a, b] {
        PairResult p{a.name + " -> " + b.name, b.name + "-got-from-" + a.name + "\n", {}, {}, {}};
        std::string payload = "from-" + a.name + "\n";
        std::vector<std::string> socat = {"ip",    "netns", "exec", a.name,
                                          "socat", "-T3",   "-t1",  "-"};
        auto with = [&](std::string addr) {
          auto argv = socat;
          argv.push_back(std::move(addr));
          return run(argv, payload, 10);
        };
        p.tcp = with("TCP:" + b.ip.str() + ":" + std::to_string(kTcpPort));
        p.udp = with("UDP:" + b.ip.str() + ":" + std::to_string(kUdpPort));
        p.icmp = ping(a.name, b.ip);
        return p;
      }));
    }
  }
  ASSERT_EQ(pending.size(), 12u);
  for (auto& f : pending) {
    PairResult p = f.get();
    SCOPED_TRACE(p.what);
    EXPECT_EQ(p.tcp.code, 0) << p.tcp.err;
    EXPECT_EQ(p.tcp.out, p.expected);
    EXPECT_EQ(p.udp.code, 0) << p.udp.err;
    EXPECT_EQ(p.udp.out, p.expected);
    EXPECT_EQ(p.icmp.code, 0) << p.icmp.out << p.icmp.err;
  }
}

TEST_F(FourEndpoints, AllPairsTalkWithInProcessProbes) {
  for (const auto& a : eps_)
    for (const auto& b : eps_)
      if (a.name != b.name) expect_probes(a, b);
}

TEST_F(FourEndpoints, NodeHasNoBridge) {
  auto links = Netlink::in(sb_->node().netns()).links();
  int veths = 0;
  for (const auto& l : links) {
    EXPECT_NE(l.kind, "bridge") << l.name;
    veths += l.kind == "veth";
  }
  EXPECT_EQ(veths, 4);  // the listing saw the endpoints' devices
  EXPECT_TRUE(sb_->node().status().bridges.empty());
  CmdResult r = sb_->cli({"-o", "json", "status"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("bridges"), json::array());
}

TEST_F(FourEndpoints, CountersRiseWithTraffic) {
  const Ep &a = eps_[0], &b = eps_[1];
  EndpointStats a0 = stats_of(*sb_, a.name), b0 = stats_of(*sb_, b.name);
  // Five echo requests of 98-byte frames (14 + 20 + 8 + 56).
  CmdResult r = run_in(a.name, {"ping", "-n", "-c5", "-i0.01", "-W1", b.ip.str()}, 10);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EndpointStats a1 = stats_of(*sb_, a.name), b1 = stats_of(*sb_, b.name);
  // At least the pings; a few ARP frames for the gateway may come on top.
  EXPECT_GE(a1.tx_packets - a0.tx_packets, 5u);
  EXPECT_LE(a1.tx_packets - a0.tx_packets, 10u);
  EXPECT_GE(a1.tx_bytes - a0.tx_bytes, 5u * 98);
  EXPECT_GE(b1.rx_packets - b0.rx_packets, 5u);
  EXPECT_GE(b1.tx_packets - b0.tx_packets, 5u);
  EXPECT_GE(a1.rx_packets - a0.rx_packets, 5u);
  EXPECT_GE(b1.rx_bytes - b0.rx_bytes, 5u * 98);
  EXPECT_EQ(a1.drops_total(), 0u);
  EXPECT_EQ(b1.drops_total(), 0u);
  // The command line shows the same counters.
  CmdResult list = sb_->cli({"-o", "json", "endpoint", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  for (const auto& e : json::parse(list.out)) {
    if (e.at("name") != b.name) continue;
    EXPECT_GE(e.at("stats").at("rx_packets").get<uint64_t>(), 5u);
  }
}

TEST_F(FourEndpoints, SecondAttachChangesNothingAndTrafficFlows) {
  CmdResult s0 = sb_->cli({"-o", "json", "status"});
  ASSERT_EQ(s0.code, 0) << s0.err;
  json before = json::parse(s0.out);
  ASSERT_EQ(before.at("programs").size(), 1u);
  uint32_t prog_id = before.at("programs")[0].at("id");
  ASSERT_NE(prog_id, 0u);

  CmdResult a = sb_->cli({"-o", "json", "attach"});
  ASSERT_EQ(a.code, 0) << a.err;
  json attach = json::parse(a.out);
  EXPECT_EQ(attach.at("loaded"), false);
  EXPECT_EQ(attach.at("links_repaired"), 0);

  CmdResult s1 = sb_->cli({"-o", "json", "status"});
  ASSERT_EQ(s1.code, 0) << s1.err;
  json after = json::parse(s1.out);
  ASSERT_EQ(after.at("programs").size(), 1u);
  EXPECT_EQ(after.at("programs")[0].at("id"), prog_id);
  ASSERT_EQ(after.at("endpoints").size(), 4u);
  for (const auto& e : after.at("endpoints")) EXPECT_EQ(e.at("prog_id"), prog_id) << e.at("name");

  expect_probes(eps_[0], eps_[3]);
  EXPECT_EQ(ping(eps_[3].name, eps_[0].ip).code, 0);
}

TEST(Traffic, ExistingNamedNamespaceIsWiredAndKeptOnDel) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep peer = cli_add(sb);
  IpNetns ns;
  Ep ep = cli_add(sb, {"--netns", ns.name()});
  EXPECT_FALSE(netns::exists(ep.name));  // wired, not created

  EXPECT_EQ(ping(ns.name(), peer.ip).code, 0);
  EXPECT_EQ(ping(peer.name, ep.ip).code, 0);
  expect_probes(Netns::open_named(ns.name()), Netns::open_named(peer.name), peer.ip, "ns -> peer");

  CmdResult del = sb.cli({"endpoint", "del", ep.name});
  ASSERT_EQ(del.code, 0) << del.err;
  CmdResult list = run({"ip", "netns", "list"}, "", 10);
  EXPECT_NE(list.out.find(ns.name()), std::string::npos) << "the user's namespace was deleted";
  ASSERT_TRUE(netns::exists(ns.name()));
  EXPECT_FALSE(Netlink::in(Netns::open_named(ns.name())).link("eth0"));
  EXPECT_NE(run_in(ns.name(), {"ip", "link", "show", "eth0"}).code, 0);
  EXPECT_NE(ping(peer.name, ep.ip).code, 0);
}

TEST(Traffic, ProcessNamespaceByPid) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep peer = api_add(sb);
  Child proc({"unshare", "--net", "sleep", "30"});
  // Until unshare has run, the child is still in our namespace.
  Netns self = Netns::current();
  ASSERT_TRUE(wait_until([&] { return !Netns::open_pid(proc.pid()).same_as(self); },
                         std::chrono::seconds(5)));

  Ep ep = cli_add(sb, {"--pid", std::to_string(proc.pid())});
  Netns ns = Netns::open_pid(proc.pid());
  EXPECT_TRUE(Netlink::in(ns).link("eth0"));
  expect_probes(ns, Netns::open_named(peer.name), peer.ip, "pid -> peer");
  expect_probes(Netns::open_named(peer.name), ns, ep.ip, "peer -> pid");
  EXPECT_EQ(ping(peer.name, ep.ip).code, 0);

  // A namespace with no name under /run/netns is identified by nothing.
  CmdResult id = run(
      {test::ebpfnet_bin(), "-o", "json", "ns", "identify", std::to_string(proc.pid())}, "", 10);
  ASSERT_EQ(id.code, 0) << id.err;
  EXPECT_EQ(json::parse(id.out), json::array());
}

TEST(Traffic, NamedProcessNamespaceIsIdentifiedAndWired) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep peer = api_add(sb);
  IpNetns ns;
  Child proc({"ip", "netns", "exec", ns.name(), "sleep", "30"});
  Netns named = Netns::open_named(ns.name());
  ASSERT_TRUE(wait_until([&] { return Netns::open_pid(proc.pid()).same_as(named); },
                         std::chrono::seconds(5)));

  CmdResult id = run({test::ebpfnet_bin(), "ns", "identify", std::to_string(proc.pid())}, "", 10);
  ASSERT_EQ(id.code, 0) << id.err;
  EXPECT_EQ(id.out, ns.name() + "\n");

  Ep ep = cli_add(sb, {"--pid", std::to_string(proc.pid())});
  EXPECT_EQ(ping(ns.name(), peer.ip).code, 0);
  EXPECT_EQ(ping(peer.name, ep.ip).code, 0);
}

TEST(Traffic, SpoofedSourceGetsNothingThrough) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep a = api_add(sb), b = api_add(sb);
  ASSERT_EQ(ping(a.name, b.ip).code, 0);  // the honest address works

  Ipv4 spoofed(b.ip.host() + 100);
  CmdResult add = run_in(a.name, {"ip", "addr", "add", spoofed.str() + "/32", "dev", "eth0"});
  ASSERT_EQ(add.code, 0) << add.err;
  EndpointStats a0 = stats_of(sb, a.name), b0 = stats_of(sb, b.name);
  EXPECT_NE(ping(a.name, b.ip, {"-I", spoofed.str()}).code, 0);
  CmdResult udp =
      run({"ip", "netns", "exec", a.name, "socat", "-u", "-",
           "UDP-SENDTO:" + b.ip.str() + ":" + std::to_string(kUdpPort) + ",bind=" + spoofed.str()},
          "spoofed\n", 10);
  EXPECT_EQ(udp.code, 0) << udp.err;  // sent; it must be dropped on the way
  EndpointStats a1 = stats_of(sb, a.name), b1 = stats_of(sb, b.name);
  EXPECT_GE(a1.drops[EBPFNET_DROP_SPOOFED_IP] - a0.drops[EBPFNET_DROP_SPOOFED_IP], 2u);
  EXPECT_EQ(b1.rx_packets, b0.rx_packets) << "a spoofed frame reached " << b.name;
}

TEST(Traffic, ClsactModeForwards) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.240.0.0/24", /*attach=*/false);
  AttachResult r = sb.node().attach({std::nullopt, TcMode::clsact});
  EXPECT_TRUE(r.loaded);
  Ep a = api_add(sb), b = api_add(sb);

  expect_probes(a, b);
  expect_probes(b, a);
  EXPECT_EQ(ping(a.name, b.ip).code, 0);

  NodeStatus st = sb.node().status();
  ASSERT_TRUE(st.prog);
  ASSERT_EQ(st.endpoints.size(), 2u);
  for (const auto& v : st.endpoints) {
    EXPECT_EQ(v.rec.tc_mode, TcMode::clsact) << v.rec.name;
    EXPECT_EQ(v.prog_id, st.prog->id) << v.rec.name;
    // clsact filters live on the device; there is no link to pin.
    EXPECT_FALSE(std::filesystem::exists(sb.node().pin_dir() / "links" / v.rec.host_ifname));
    ASSERT_TRUE(v.stats);
    EXPECT_GT(v.stats->rx_packets, 0u);
  }
  CmdResult list = sb.cli({"-o", "json", "endpoint", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  for (const auto& e : json::parse(list.out)) EXPECT_EQ(e.at("tc_mode"), "clsact");
}

}  // namespace
}  // namespace ebpfnet
