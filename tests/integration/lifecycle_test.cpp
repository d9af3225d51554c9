// What endpoint del and node delete leave behind (nothing), what the
// command line reports, named namespaces shared with iproute2 both ways, and
// addresses handed out across separate processes.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::CmdResult;
using test::run;
using test::run_in;
using test::SandboxNode;
using test::unique;

// Deletes a named namespace at scope exit if the test has not.
class NsCleanup {
 public:
  explicit NsCleanup(std::string name) : name_(std::move(name)) {}
  ~NsCleanup() {
    try {
      if (netns::exists(name_)) netns::del(name_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "deleting namespace " << name_ << ": " << e.what();
    }
  }
  NsCleanup(const NsCleanup&) = delete;
  NsCleanup& operator=(const NsCleanup&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// A node made and deleted by the command line, with a private state
// directory; destroyed at scope exit if the test has not.
struct CliNode {
  test::TempStateDir state;
  Env env{state.path()};
  std::string name = unique("tl");

  ~CliNode() {
    if (!fs::exists(env.state_root / name / "state.json")) return;  // the test deleted it
    try {
      Node::destroy(env, name);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "destroying node " << name << ": " << e.what();
    }
  }
  CmdResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), {test::ebpfnet_bin(), "--state-dir", env.state_root.string()});
    return run(args, "", 30);
  }
};

CmdResult ebpfnet(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {test::ebpfnet_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, "", 10);
}

// The first word of every line: `ip netns list` adds "(id: N)" after a name.
std::set<std::string> names_in(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.insert(line.substr(0, line.find(' ')));
  return out;
}

EndpointRecord cli_add(SandboxNode& sb, const std::string& name) {
  CmdResult r = sb.cli({"endpoint", "add", name}, 20);
  if (r.code != 0) throw std::runtime_error("endpoint add " + name + ": " + r.err);
  for (const auto& v : sb.node().endpoints())
    if (v.rec.name == name) return v.rec;
  throw std::runtime_error("endpoint " + name + " missing from the state");
}

TEST(Lifecycle, EndpointDelLeavesNothingBehind) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  EndpointRecord keep = cli_add(sb, unique("tk"));
  EndpointRecord gone = cli_add(sb, unique("tg"));
  ASSERT_TRUE(probe_icmp(Netns::open_named(gone.name), keep.ip).ok);

  Netns nodens = sb.node().netns();
  Netlink nl = Netlink::in(nodens);
  fs::path pin = sb.node().pin_dir() / "links" / gone.host_ifname;
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  ASSERT_TRUE(maps);
  auto route_to = [&](Ipv4 ip) {
    auto routes = nl.routes();
    return std::any_of(routes.begin(), routes.end(), [&](const Route& r) {
      return r.dst == Ipv4Cidr{ip, 32};
    });
  };
  auto addresses_on = [&](int ifindex) { return nl.addresses(ifindex).size(); };
  // Everything checked below is there before, so its absence means something.
  ASSERT_TRUE(nl.link(gone.host_ifname));
  ASSERT_TRUE(route_to(gone.ip));
  ASSERT_GT(addresses_on(gone.host_ifindex), 0u);
  ASSERT_TRUE(maps->endpoint_by_ip(gone.ip));
  ASSERT_EQ(fs::exists(pin), gone.tc_mode == TcMode::tcx);

  CmdResult del = sb.cli({"endpoint", "del", gone.name});
  ASSERT_EQ(del.code, 0) << del.err;

  EXPECT_FALSE(nl.link(gone.host_ifname));
  for (const auto& l : nl.links()) EXPECT_NE(l.ifindex, gone.host_ifindex) << l.name;
  EXPECT_FALSE(netns::exists(gone.name));
  EXPECT_FALSE(maps->endpoint_by_ip(gone.ip));
  EXPECT_FALSE(maps->endpoint_by_ifindex(gone.host_ifindex));
  EXPECT_FALSE(maps->stats(gone.host_ifindex));
  EXPECT_FALSE(route_to(gone.ip));
  EXPECT_EQ(addresses_on(gone.host_ifindex), 0u);
  EXPECT_FALSE(fs::exists(pin));

  // The other endpoint is untouched.
  EXPECT_TRUE(maps->endpoint_by_ip(keep.ip));
  EXPECT_EQ(maps->endpoint_count(), 1u);
  auto views = sb.node().endpoints();
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].rec.name, keep.name);
  EXPECT_NE(views[0].prog_id, 0u);

  // Deleting it again is refused, not silently repeated.
  EXPECT_EQ(sb.cli({"endpoint", "del", gone.name}).code, static_cast<int>(Errc::not_found));
}

TEST(Lifecycle, NodeDeleteRemovesNamespacePinsAndState) {
  EBPFNET_REQUIRE_ROOT();
  CliNode n;
  std::string a = unique("tp"), b = unique("tp");
  CmdResult r = n.cli({"node", "create", n.name, "--cidr", "10.241.0.0/24"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--node", n.name, "attach"},
                                             {"--node", n.name, "endpoint", "add", a},
                                             {"--node", n.name, "endpoint", "add", b}}) {
    r = n.cli(args);
    ASSERT_EQ(r.code, 0) << r.err;
  }
  fs::path pins = n.env.pin_root / n.name, state = n.env.state_root / n.name;
  ASSERT_TRUE(netns::exists(n.name));
  ASSERT_TRUE(netns::exists(a));
  ASSERT_TRUE(fs::exists(pins / "from_endpoint"));
  ASSERT_TRUE(fs::exists(state / "state.json"));
  r = n.cli({"-o", "json", "node", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::array({n.name}));

  r = n.cli({"node", "delete", n.name});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(netns::exists(n.name));
  EXPECT_FALSE(netns::exists(a));
  EXPECT_FALSE(netns::exists(b));
  EXPECT_FALSE(fs::exists(pins));
  EXPECT_FALSE(fs::exists(state));
  r = n.cli({"-o", "json", "node", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::array());
  EXPECT_EQ(n.cli({"node", "delete", n.name}).code, static_cast<int>(Errc::not_found));
}

TEST(Lifecycle, EndpointListJsonHasEveryField) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  EndpointRecord rec = cli_add(sb, unique("tj"));
  CmdResult r = sb.cli({"-o", "json", "endpoint", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  json list = json::parse(r.out);
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 1u);
  const json& e = list[0];
  EXPECT_EQ(e.at("name"), rec.name);
  EXPECT_EQ(e.at("ip"), rec.ip.str());
  EXPECT_TRUE(parse_mac(e.at("mac").get<std::string>()));
  EXPECT_EQ(e.at("mac"), mac_str(rec.mac));
  EXPECT_EQ(e.at("netns"), rec.name);
  EXPECT_EQ(e.at("netns_owned"), true);
  EXPECT_EQ(e.at("ifname"), "eth0");
  EXPECT_EQ(e.at("host_ifname"), "ep-" + rec.name);
  EXPECT_EQ(e.at("host_ifindex"), rec.host_ifindex);
  EXPECT_GT(e.at("host_ifindex").get<int>(), 0);
  EXPECT_EQ(e.at("tc_mode"), to_string(rec.tc_mode));
  auto st = sb.node().status();
  ASSERT_TRUE(st.prog);
  EXPECT_EQ(e.at("prog_id"), st.prog->id);
  const json& stats = e.at("stats");
  for (const char* k : {"tx_packets", "tx_bytes", "rx_packets", "rx_bytes"})
    EXPECT_TRUE(stats.at(k).is_number_unsigned()) << k;
  for (int reason = 0; reason < EBPFNET_DROP_REASON_MAX; ++reason)
    EXPECT_TRUE(stats.at("drops").at(std::string(drop_reason_name(reason))).is_number_unsigned());
}

TEST(Lifecycle, EbpfnetNamespacesWorkWithIproute2) {
  EBPFNET_REQUIRE_ROOT();
  NsCleanup ns(unique("tq"));
  CmdResult r = ebpfnet({"ns", "add", ns.name()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(names_in(run({"ip", "netns", "list"}).out).count(ns.name()));
  r = run_in(ns.name(), {"ip", "-o", "link", "show"});
  EXPECT_EQ(r.code, 0) << r.err;
  // A new namespace has loopback only.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(": lo:"), std::string::npos) << r.out;

  r = ebpfnet({"ns", "del", ns.name()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(names_in(run({"ip", "netns", "list"}).out).count(ns.name()));
  EXPECT_FALSE(netns::exists(ns.name()));
}

TEST(Lifecycle, Iproute2NamespacesWorkWithEbpfnet) {
  EBPFNET_REQUIRE_ROOT();
  NsCleanup ns(unique("ti"));
  ASSERT_EQ(run({"ip", "netns", "add", ns.name()}).code, 0);
  CmdResult r = ebpfnet({"ns", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(names_in(r.out).count(ns.name())) << r.out;
  r = ebpfnet({"-o", "json", "ns", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto names = json::parse(r.out).get<std::vector<std::string>>();
  EXPECT_NE(std::find(names.begin(), names.end(), ns.name()), names.end());

  // The command's exit code and output come through; flags belong to it.
  r = ebpfnet({"ns", "exec", ns.name(), "sh", "-c", "echo out-$((3+4)); exit 7"});
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_EQ(r.out, "out-7\n");

  // /sys shows the namespace's devices, not the caller's.
  r = run_in(ns.name(), {"ip", "link", "add", "tv0", "type", "veth", "peer", "name", "tv1"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = ebpfnet({"ns", "exec", ns.name(), "ls", "/sys/class/net"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "lo\ntv0\ntv1\n");

  ASSERT_EQ(run({"ip", "netns", "del", ns.name()}).code, 0);
  r = ebpfnet({"ns", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(names_in(r.out).count(ns.name()));
}

TEST(Lifecycle, AddressesPersistAcrossProcesses) {
  EBPFNET_REQUIRE_ROOT();
  // A /29: the gateway is .1, so .2 to .6 are handed out.
  SandboxNode sb("10.242.0.0/29");
  std::vector<EndpointRecord> eps;
  std::set<std::string> ips;
  for (int i = 0; i < 5; ++i) {
    eps.push_back(cli_add(sb, unique("ta")));
    ips.insert(eps.back().ip.str());
  }
  EXPECT_EQ(ips, (std::set<std::string>{"10.242.0.2", "10.242.0.3", "10.242.0.4", "10.242.0.5",
                                        "10.242.0.6"}));
  std::string extra = unique("ta");
  CmdResult r = sb.cli({"endpoint", "add", extra});
  EXPECT_EQ(r.code, static_cast<int>(Errc::exhausted)) << r.err;
  EXPECT_FALSE(netns::exists(extra));

  // Released, the address is the one free again.
  r = sb.cli({"endpoint", "del", eps[1].name});
  ASSERT_EQ(r.code, 0) << r.err;
  EndpointRecord again = cli_add(sb, extra);
  EXPECT_EQ(again.ip.str(), eps[1].ip.str());
}

TEST(Lifecycle, ReleasedAddressIsNotHandedOutAtOnce) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  EndpointRecord first = cli_add(sb, unique("ta"));
  ASSERT_EQ(sb.cli({"endpoint", "del", first.name}).code, 0);
  EndpointRecord second = cli_add(sb, unique("ta"));
  EXPECT_NE(second.ip.str(), first.ip.str());
}

// As after a reboot, or a runtime that deleted a namespace behind ebpfnet's
// back: an endpoint's veth is gone and the datapath with it. attach brings
// the others back, leaves the lost one out of the maps (its old ifindex may
// be another device's now), and `endpoint del` removes its record.
TEST(Lifecycle, AttachLeavesOutAnEndpointThatLostItsVeth) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  EndpointRecord a = cli_add(sb, unique("ta")), b = cli_add(sb, unique("ta")), lost = cli_add(sb, unique("ta"));
  netns::del(lost.name);
  remove_pins(sb.node().pin_dir());
  CmdResult r = sb.cli({"attach"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("endpoint " + lost.name + " has lost its veth"), std::string::npos) << r.err;
  ProbeResult p = probe_icmp(Netns::open_named(a.name), b.ip);
  EXPECT_TRUE(p.ok) << p.error;
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  ASSERT_TRUE(maps);
  EXPECT_TRUE(maps->endpoint_by_ip(b.ip));
  EXPECT_FALSE(maps->endpoint_by_ip(lost.ip));
  EXPECT_FALSE(maps->endpoint_by_ifindex(lost.host_ifindex));
  ASSERT_EQ(sb.cli({"endpoint", "del", lost.name}).code, 0);
  EXPECT_EQ(sb.node().endpoints().size(), 2u);
}

// One del of several: all go (their namespaces first, the veths with them),
// or, when one name is wrong, none.
TEST(Lifecycle, SeveralEndpointsDeletedAtOnce) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  EndpointRecord keep = cli_add(sb, unique("tk"));
  std::vector<EndpointRecord> row;
  for (int i = 0; i < 3; ++i) row.push_back(cli_add(sb, unique("tr")));
  for (const auto& e : row) EXPECT_EQ(e.tc_mode, kEndpointTcMode) << e.name;
  Netlink nl = Netlink::in(sb.node().netns());

  EXPECT_EQ(sb.cli({"endpoint", "del", row[0].name, "nosuch"}).code, static_cast<int>(Errc::not_found));
  EXPECT_EQ(sb.cli({"endpoint", "del", row[0].name, row[0].name}).code, static_cast<int>(Errc::usage));
  EXPECT_EQ(sb.node().endpoints().size(), 4u) << "a refused del removes nothing";
  EXPECT_TRUE(nl.link(row[0].host_ifname));

  CmdResult del = sb.cli({"endpoint", "del", row[0].name, row[1].name, row[2].name});
  ASSERT_EQ(del.code, 0) << del.err;
  for (const auto& e : row) {
    EXPECT_FALSE(netns::exists(e.name)) << e.name;
    for (const auto& l : nl.links()) EXPECT_NE(l.ifindex, e.host_ifindex) << l.name;
  }
  for (const auto& r : nl.routes())
    for (const auto& e : row) EXPECT_FALSE(r.dst == (Ipv4Cidr{e.ip, 32})) << e.name;
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  ASSERT_TRUE(maps);
  EXPECT_EQ(maps->endpoint_count(), 1u);
  auto views = sb.node().endpoints();
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].rec.name, keep.name);
  // The addresses are free at once: the row comes back.
  for (const auto& e : row) cli_add(sb, e.name);
  ProbeResult p = probe_icmp(Netns::open_named(row[2].name), keep.ip);
  EXPECT_TRUE(p.ok) << p.error;
}

// On a node attached with TCX, a row's links go with their veths (the
// kernel detaches them as it unregisters the row) and del removes their
// pins after: no link is left, pinned or not.
TEST(Lifecycle, TcxLinksOfARowGoWithTheirVeths) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  ASSERT_EQ(sb.cli({"attach", "--tc-mode", "tcx"}).code, 0);
  EndpointRecord keep = cli_add(sb, unique("tk"));
  std::vector<EndpointRecord> row;
  for (int i = 0; i < 3; ++i) row.push_back(cli_add(sb, unique("tx")));
  std::vector<uint32_t> link_ids;
  for (const auto& e : row) {
    ASSERT_EQ(e.tc_mode, TcMode::tcx) << e.name;
    const fs::path pin = sb.node().pin_dir() / "links" / e.host_ifname;
    UniqueFd link(bpf_obj_get(pin.c_str()));
    ASSERT_TRUE(link.valid()) << pin;
    bpf_link_info info{};
    __u32 len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(link.get(), &info, &len), 0) << pin;
    link_ids.push_back(info.id);
  }

  CmdResult del = sb.cli({"endpoint", "del", row[0].name, row[1].name, row[2].name});
  ASSERT_EQ(del.code, 0) << del.err;
  Netlink nl = Netlink::in(sb.node().netns());
  for (const auto& e : row) {
    EXPECT_FALSE(fs::exists(sb.node().pin_dir() / "links" / e.host_ifname)) << e.name;
    for (const auto& l : nl.links()) EXPECT_NE(l.ifindex, e.host_ifindex) << l.name;
  }
  for (uint32_t id : link_ids) {
    UniqueFd gone(bpf_link_get_fd_by_id(id));
    EXPECT_FALSE(gone.valid()) << "link " << id << " outlived its endpoint";
  }
  // The endpoint left keeps its link and forwards.
  EXPECT_TRUE(fs::exists(sb.node().pin_dir() / "links" / keep.host_ifname));
  EndpointRecord next = cli_add(sb, unique("tn"));
  ProbeResult p = probe_icmp(Netns::open_named(next.name), keep.ip);
  EXPECT_TRUE(p.ok) << p.error;
}

// A namespace that some process still holds outlives its deletion, and so
// would its veth: del removes the veth itself.
TEST(Lifecycle, DelRemovesTheVethOfANamespaceSomeoneHolds) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  EndpointRecord held = cli_add(sb, unique("th"));
  Netns hold = Netns::open_named(held.name);
  ASSERT_EQ(sb.cli({"endpoint", "del", held.name}).code, 0);
  EXPECT_FALSE(netns::exists(held.name));
  Netlink nl = Netlink::in(sb.node().netns());
  for (const auto& l : nl.links()) EXPECT_NE(l.ifindex, held.host_ifindex) << l.name;
  EXPECT_TRUE(Netlink::in(hold).link(held.ifname) == std::nullopt) << "the pair is gone from both sides";
}

// attach --tc-mode moves every attachment to that mode, new program first,
// and leaves exactly one program on each veth; auto keeps each where it is.
TEST(Lifecycle, AttachSwitchesTcMode) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.240.0.0/24", /*attach=*/true, /*uplink_sandbox=*/true);
  EndpointRecord a = cli_add(sb, unique("tm")), b = cli_add(sb, unique("tm"));
  const fs::path pin_dir = sb.node().pin_dir();
  auto modes = [&] {
    std::set<std::string> m;
    for (const auto& v : sb.node().endpoints()) m.insert(to_string(v.rec.tc_mode));
    return m;
  };
  auto only_one_program = [&](TcMode mode) {
    NetnsGuard in(sb.node().netns());
    const TcMode other = mode == TcMode::tcx ? TcMode::clsact : TcMode::tcx;
    for (const auto& v : sb.node().endpoints()) {
      const fs::path pin = pin_dir / "links" / v.rec.host_ifname;
      if (attached_prog_id(mode, v.rec.host_ifindex, pin) == 0) return false;
      if (attached_prog_id(other, v.rec.host_ifindex, pin) != 0) return false;
    }
    return true;
  };
  ASSERT_EQ(modes(), std::set<std::string>{to_string(kEndpointTcMode)});
  for (TcMode mode : {TcMode::tcx, TcMode::clsact}) {
    CmdResult r = sb.cli({"attach", "--tc-mode", to_string(mode)});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(modes(), std::set<std::string>{to_string(mode)});
    EXPECT_TRUE(only_one_program(mode)) << to_string(mode);
    EXPECT_EQ(sb.node().status().state.uplink->tc_mode, mode);
    ProbeResult p = probe_icmp(Netns::open_named(a.name), b.ip);
    EXPECT_TRUE(p.ok) << to_string(mode) << ": " << p.error;
  }
}

}  // namespace
}  // namespace ebpfnet
