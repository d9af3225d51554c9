// The uplink prefilter with real traffic on a sandbox node: denied sources
// dropped by XDP on the uplink and counted, other sources and masqueraded
// flows untouched, removal restoring; bad input refused with nothing
// changed; apply converging the deny list; the XDP program attached only
// while the list is not empty; a node pinned at ABI 2 upgraded by attach.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "connection.hpp"
#include "ebpfnet/datapath.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/netns.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;
using test::CmdResult;
using test::SandboxNode;
using test::unique;

const Ipv4 kUplink = *Ipv4::parse(kSandboxUplinkIp);
const Ipv4 kServer = *Ipv4::parse(kSandboxServerIp);  // 203.0.113.1, on the outside's lo
// Two more outside sources on the outside's lo, inside the sandbox's 203.0.113.0/24.
const Ipv4 kDeniedSrc = *Ipv4::parse("203.0.113.7");
const Ipv4 kOtherSrc = *Ipv4::parse("203.0.113.8");
constexpr uint16_t kTargetPort = 7301, kPublished = 17301, kEchoPort = 7302;

UniqueFd udp_socket(const Netns& ns, Ipv4 bind_ip, uint16_t port) {
  UniqueFd fd = test::socket_in(ns, SOCK_DGRAM);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = bind_ip.be();
  a.sin_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("bind " + bind_ip.str() + ": " + std::strerror(errno));
  return fd;
}

void send_to(int fd, Ipv4 dst, uint16_t port, const std::string& msg) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = dst.be();
  a.sin_port = htons(port);
  ::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
}

// What arrives on fd within limit_ms: "message from-address" lines.
std::vector<std::string> receive_all(int fd, int limit_ms) {
  std::vector<std::string> got;
  while (test::ready(fd, POLLIN, limit_ms)) {
    char buf[256];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) break;
    got.push_back(std::string(buf, n) + " " + Ipv4::from_be(from.sin_addr.s_addr).str());
    limit_ms = 200;
  }
  return got;
}

using test::cli_json;

// `prefilter list -o json` as entry -> dropped packets.
std::map<std::string, uint64_t> drops(SandboxNode& sb) {
  std::map<std::string, uint64_t> out;
  for (const auto& e : cli_json(sb, {"prefilter", "list"})) out[e["entry"]] = e["dropped_packets"];
  return out;
}

// The status attachment of the prefilter, if there is one.
std::optional<json> xdp_attachment(SandboxNode& sb) {
  const json status = cli_json(sb, {"status"});
  for (const auto& a : status.at("attachments"))
    if (a.at("hook") == "xdp") return a;
  return std::nullopt;
}

class Prefilter : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace("10.246.0.0/29", /*attach=*/true, /*uplink_sandbox=*/true);
    ep_ = sb_->node().add_endpoint({unique("pf"), std::nullopt, std::nullopt, "eth0"});
    sb_->node().expose({ep_.name, "udp", kTargetPort, kPublished});
    const Netns out = Netns::open_named(sb_->outside());
    Netlink nl = Netlink::in(out);
    const int lo = nl.link("lo").value().ifindex;
    for (Ipv4 a : {kDeniedSrc, kOtherSrc}) nl.add_address({lo, a, 32});
  }

  // Datagrams from each outside source to the published port: which arrived.
  std::vector<std::string> from_outside(const std::string& tag) {
    const Netns out = Netns::open_named(sb_->outside()), ep = Netns::open_named(ep_.netns);
    UniqueFd server = udp_socket(ep, Ipv4(0), kTargetPort);
    UniqueFd denied = udp_socket(out, kDeniedSrc, 0), other = udp_socket(out, kOtherSrc, 0);
    for (int i = 0; i < 3; ++i) {
      send_to(denied.get(), kUplink, kPublished, tag + "-denied");
      send_to(other.get(), kUplink, kPublished, tag + "-other");
    }
    std::vector<std::string> got = receive_all(server.get(), 1000);
    std::sort(got.begin(), got.end());
    got.erase(std::unique(got.begin(), got.end()), got.end());
    return got;
  }

  // A masqueraded round trip from the endpoint to the outside server.
  bool masquerade_works() {
    const Netns out = Netns::open_named(sb_->outside()), ep = Netns::open_named(ep_.netns);
    UniqueFd server = udp_socket(out, kServer, kEchoPort);
    UniqueFd client = udp_socket(ep, Ipv4(0), 0);
    send_to(client.get(), kServer, kEchoPort, "ping");
    if (!test::ready(server.get(), POLLIN, 2000)) return false;
    char buf[64];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(server.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0 || Ipv4::from_be(from.sin_addr.s_addr) != kUplink) return false;
    ::sendto(server.get(), buf, n, 0, reinterpret_cast<sockaddr*>(&from), len);
    return test::ready(client.get(), POLLIN, 2000);
  }

  std::optional<SandboxNode> sb_;
  EndpointRecord ep_;
};

TEST_F(Prefilter, DeniedSourcesAreDroppedAndCountedOthersUntouchedRemovalRestores) {
  const std::string d = "before-denied " + kDeniedSrc.str(), o = "before-other " + kOtherSrc.str();
  EXPECT_EQ(from_outside("before"), (std::vector<std::string>{d, o})) << "both sources reach the published port";
  EXPECT_FALSE(xdp_attachment(*sb_)) << "no XDP program on the uplink while the deny list is empty";

  // An address: only its datagrams go, counted on it.
  CmdResult add = sb_->cli({"prefilter", "add", kDeniedSrc.str()});
  ASSERT_EQ(add.code, 0) << add.err;
  auto a = xdp_attachment(*sb_);
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)["xdp_mode"], "native") << "veth has native XDP";
  EXPECT_EQ((*a)["program"], "uplink_prefilte") << "the kernel keeps 15 characters of a program's name";
  EXPECT_EQ((*a)["stale"], false);
  EXPECT_EQ(from_outside("addr"), (std::vector<std::string>{"addr-other " + kOtherSrc.str()}));
  EXPECT_GE(drops(*sb_)[kDeniedSrc.str()], 3u);
  EXPECT_TRUE(masquerade_works()) << "masqueraded flows to another outside address are untouched";
  // trace says what the prefilter does, and moves no counter of it.
  const uint64_t counted = drops(*sb_)[kDeniedSrc.str()];
  auto trace = [&](Ipv4 src) {
    CmdResult t = sb_->cli({"-o", "json", "trace", "--from", src.str() + ":40000", "--to",
                            kUplink.str() + ":" + std::to_string(kPublished) + "/udp"});
    EXPECT_EQ(t.code, 0) << t.err;
    return nlohmann::json::parse(t.out.empty() ? "{}" : t.out);
  };
  nlohmann::json denied = trace(kDeniedSrc), other = trace(kOtherSrc);
  EXPECT_EQ(denied["verdict"]["action"], "drop") << denied.dump();
  EXPECT_EQ(denied["verdict"]["reason"], "prefilter") << denied.dump();
  EXPECT_EQ(denied["steps"].at(0)["stage"], "prefilter") << denied.dump();
  EXPECT_EQ(other["steps"].at(0)["result"], "ok") << other.dump();
  EXPECT_EQ(other["verdict"]["action"], "forward") << other.dump();
  EXPECT_EQ(drops(*sb_)[kDeniedSrc.str()], counted);

  // Removal restores, and with the list empty the XDP program goes.
  ASSERT_EQ(sb_->cli({"prefilter", "del", kDeniedSrc.str()}).code, 0);
  EXPECT_FALSE(xdp_attachment(*sb_));
  EXPECT_FALSE(std::filesystem::exists(sb_->node().pin_dir() / "uplink_xdp_link"));
  EXPECT_EQ(from_outside("after"), (std::vector<std::string>{"after-denied " + kDeniedSrc.str(),
                                                               "after-other " + kOtherSrc.str()}));

  // A prefix holding both sources (and the server): all of them go, counted on the prefix.
  ASSERT_EQ(sb_->cli({"prefilter", "add", "203.0.113.0/28", "198.51.100.7"}).code, 0);
  EXPECT_TRUE(from_outside("prefix").empty());
  EXPECT_FALSE(masquerade_works()) << "replies from the denied server are dropped too";
  const auto counts = drops(*sb_);
  EXPECT_GE(counts.at("203.0.113.0/28"), 6u);
  EXPECT_EQ(counts.at("198.51.100.7"), 0u);
  // The metric sums the entries.
  CmdResult m = sb_->cli({"metrics", "--textfile", (sb_->env().state_root / "m.prom").string()});
  ASSERT_EQ(m.code, 0) << m.err;
  const std::string prom = test::read_file(sb_->env().state_root / "m.prom");
  EXPECT_NE(prom.find("ebpfnet_prefilter_dropped_packets_total{node=\"" + sb_->name() + "\"} " +
                      std::to_string(counts.at("203.0.113.0/28"))),
            std::string::npos)
      << prom;
  EXPECT_NE(prom.find("ebpfnet_prefilter_entries{node=\"" + sb_->name() + "\",kind=\"prefix\"} 1"), std::string::npos);
  ASSERT_EQ(sb_->cli({"prefilter", "del", "203.0.113.0/28", "198.51.100.7"}).code, 0);
  EXPECT_TRUE(masquerade_works());
  EXPECT_TRUE(drops(*sb_).empty());
}

// What a refused command may not change.
struct Snapshot {
  std::string state;
  std::map<std::string, size_t> entries;
  bool xdp = false;
};

Snapshot snapshot(SandboxNode& sb) {
  Snapshot s;
  s.state = test::stored_state(sb.env().state_root / sb.name());
  if (auto maps = Datapath::open_pinned_maps(sb.node().pin_dir()))
    for (const char* m : {"prefilter_addr", "prefilter_cidr", "prefilter_stats"})
      s.entries[m] = count_keys(maps->fd(m), MapLayout::of_fd(maps->fd(m)).key_size);
  s.xdp = std::filesystem::exists(sb.node().pin_dir() / "uplink_xdp_link");
  return s;
}

TEST_F(Prefilter, BadInputIsRefusedWithNothingChanged) {
  ASSERT_EQ(sb_->cli({"prefilter", "add", "203.0.113.0/24"}).code, 0);
  struct Case {
    std::vector<std::string> args;
    Errc code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"prefilter", "add", "203.0.113.1/24"}, Errc::usage, "did you mean 203.0.113.0/24"},
      {{"prefilter", "add", "300.1.1.1"}, Errc::usage, "not an IPv4 address or prefix"},
      {{"prefilter", "add", "10.0.0.0/33"}, Errc::usage, "not an IPv4 address or prefix"},
      {{"prefilter", "add", "example.com"}, Errc::usage, "not an IPv4 address"},
      {{"prefilter", "add", ""}, Errc::usage, "not an IPv4 address"},
      {{"prefilter", "add", "192.0.2.0/24", "192.0.2.0/24"}, Errc::usage, "given twice"},
      {{"prefilter", "add", "192.0.2.0/24", "192.0.2.9"}, Errc::usage, "overlaps 192.0.2.0/24"},
      {{"prefilter", "add", "203.0.113.0/24"}, Errc::exists, "already in the prefilter"},
      {{"prefilter", "add", "203.0.113.9"}, Errc::usage, "overlaps the prefilter entry 203.0.113.0/24"},
      {{"prefilter", "add", "203.0.0.0/16"}, Errc::usage, "overlaps the prefilter entry 203.0.113.0/24"},
      // All or none: the good entry before the bad one is not added either.
      {{"prefilter", "add", "192.0.2.0/24", "203.0.113.77"}, Errc::usage, "203.0.113.0/24"},
      {{"prefilter", "add", "198.18.0.0/24"}, Errc::usage, "uplink's address 198.18.0.2"},
      {{"prefilter", "add", kSandboxUplinkIp}, Errc::usage, "cut the node off"},
      {{"prefilter", "add", kSandboxOutsideIp}, Errc::usage, "uplink's gateway 198.18.0.1"},
      {{"prefilter", "add", "0.0.0.0/0"}, Errc::usage, "cut the node off"},
      {{"prefilter", "del", "192.0.2.1"}, Errc::not_found, "not in the prefilter"},
      {{"prefilter", "del", "203.0.113.0/24", "192.0.2.0/24"}, Errc::not_found, "192.0.2.0/24 is not in"},
      {{"prefilter", "del", "203.0.113.5/24"}, Errc::usage, "host bits"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(test::joined(c.args));
    const Snapshot before = snapshot(*sb_);
    CmdResult r = sb_->cli(c.args, 20);
    EXPECT_EQ(r.code, static_cast<int>(c.code)) << r.err;
    test::expect_one_line_error(r);
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    const Snapshot after = snapshot(*sb_);
    EXPECT_EQ(before.state, after.state);
    EXPECT_EQ(before.entries, after.entries);
    EXPECT_EQ(before.xdp, after.xdp);
  }
  EXPECT_EQ(drops(*sb_).size(), 1u);
}

TEST(PrefilterNoUplink, IsRefused) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.246.1.0/29", /*attach=*/true, /*uplink_sandbox=*/false);
  CmdResult r = sb.cli({"prefilter", "add", "203.0.113.0/24"});
  EXPECT_EQ(r.code, static_cast<int>(Errc::usage)) << r.err;
  EXPECT_NE(r.err.find("has no uplink"), std::string::npos) << r.err;
  test::expect_one_line_error(r);
}

// apply converges the list like published ports: entries the file omits go,
// a second apply changes nothing, --diff shows it, bad entries are FILE:LINE.
TEST_F(Prefilter, ApplyConvergesTheDenyList) {
  const std::string file = (sb_->env().state_root / "node.yaml").string();
  auto write = [&](const std::string& prefilter) {
    std::ofstream(file) << "node: " << sb_->name() << "\npool: 10.246.0.0/29\nuplink: {sandbox: true}\n"
                        << "published:\n  - {endpoint: " << ep_.name << ", proto: udp, port: " << kPublished
                        << ", target_port: " << kTargetPort << "}\n"
                        << prefilter;
  };
  ASSERT_EQ(sb_->cli({"prefilter", "add", "192.0.2.0/24"}).code, 0);
  write("prefilter:\n  - 203.0.113.7\n  - 198.51.100.0/24\n");
  CmdResult diff = sb_->cli({"apply", "-f", file, "--diff"});
  ASSERT_EQ(diff.code, 0) << diff.err;
  EXPECT_NE(diff.out.find("- prefilter 192.0.2.0/24"), std::string::npos) << diff.out;
  EXPECT_NE(diff.out.find("+ prefilter 203.0.113.7"), std::string::npos) << diff.out;
  EXPECT_NE(diff.out.find("+ prefilter 198.51.100.0/24"), std::string::npos) << diff.out;
  ASSERT_EQ(sb_->cli({"apply", "-f", file}).code, 0);
  auto counts = drops(*sb_);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_TRUE(counts.count("203.0.113.7") && counts.count("198.51.100.0/24"));
  EXPECT_EQ(from_outside("applied"), (std::vector<std::string>{"applied-other " + kOtherSrc.str()}));
  // Twice: nothing to do.
  CmdResult again = sb_->cli({"apply", "-f", file, "--diff"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out.find("prefilter"), std::string::npos) << again.out;
  const std::string state = test::read_file(sb_->env().state_root / sb_->name() / "state.json");
  ASSERT_EQ(sb_->cli({"apply", "-f", file}).code, 0);
  EXPECT_EQ(test::read_file(sb_->env().state_root / sb_->name() / "state.json"), state);
  // Bad entries: FILE:LINE: reason, nothing applied.
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"prefilter:\n  - 203.0.113.7/24\n", ":7: prefilter entry '203.0.113.7/24' has host bits set"},
           {"prefilter:\n  - 203.0.113.0/24\n  - 203.0.113.7\n", ":8: prefilter entry 203.0.113.7 overlaps 203.0.113.0/24"},
           {"prefilter:\n  - 10.0.0.1\n  - 10.0.0.1\n", ":8: prefilter entry 10.0.0.1 is given twice"},
           {"prefilter:\n  - nonsense\n", ":7: prefilter entry 'nonsense' is not an IPv4 address"}}) {
    write(bad);
    CmdResult r = sb_->cli({"apply", "-f", file});
    EXPECT_EQ(r.code, static_cast<int>(Errc::usage)) << r.err;
    EXPECT_NE(r.err.find(file + says), std::string::npos) << r.err;
    EXPECT_EQ(test::read_file(sb_->env().state_root / sb_->name() / "state.json"), state);
  }
  // Omitted: every entry goes, and the XDP program with them.
  write("");
  ASSERT_EQ(sb_->cli({"apply", "-f", file}).code, 0);
  EXPECT_TRUE(drops(*sb_).empty());
  EXPECT_FALSE(xdp_attachment(*sb_));
}

// A node as an ABI 2 ebpfnet leaves it (no prefilter maps or program pinned,
// state schema 2) is upgraded by attach: the prefilter maps are created, the
// state migrated, established connections kept, and prefilter add works.
TEST_F(Prefilter, AnAbi2NodeIsUpgradedAndGetsThePrefilter) {
  const auto pins = sb_->node().pin_dir();
  // The endpoint's TCP connection to the outside server, held across the upgrade.
  const Netns out = Netns::open_named(sb_->outside()), ep = Netns::open_named(ep_.netns);
  test::Connection conn = test::connect_tcp("masqueraded", ep, kServer, 7303, out, kServer, 7303);
  ASSERT_TRUE(conn.echo());
  // Make it ABI 2: the ABI 3 pins go, the ABI slot says 2, the state is schema 2.
  for (const char* p : {"maps/prefilter_addr", "maps/prefilter_cidr", "maps/prefilter_stats", "uplink_prefilter"})
    ASSERT_EQ(::unlink((pins / p).c_str()), 0) << p;
  {
    UniqueFd config(bpf_obj_get((pins / "maps" / "config").c_str()));
    __u32 key = EBPFNET_CFG_ABI_VERSION;
    uint64_t two = 2;
    ASSERT_EQ(bpf_map_update_elem(config.get(), &key, &two, BPF_ANY), 0);
  }
  const auto state_file = sb_->env().state_root / sb_->name() / "state.json";
  json st = json::parse(test::read_file(state_file));
  st["version"] = 2;
  st.erase("prefilter");
  // Schema 2 kept the endpoints in the file.
  st["endpoints"] = test::stored_endpoints_json(state_file.parent_path());
  st["uplink"].erase("xdp_mode");
  std::ofstream(state_file) << st.dump();

  CmdResult refused = sb_->cli({"prefilter", "add", "192.0.2.0/24"});
  EXPECT_EQ(refused.code, static_cast<int>(Errc::rejected)) << refused.err;
  EXPECT_NE(refused.err.find("ABI version 2"), std::string::npos) << refused.err;

  const json r = cli_json(*sb_, {"attach"});
  EXPECT_EQ(r["from_abi"], 2);
  EXPECT_EQ(r["to_abi"], EBPFNET_ABI_VERSION);
  std::set<std::string> created;
  for (const auto& m : r["maps"])
    if (m["how"] == "created") created.insert(m["name"]);
  EXPECT_EQ(created, (std::set<std::string>{"prefilter_addr", "prefilter_cidr", "prefilter_stats"})) << r.dump();
  for (const auto& m : r["maps"]) EXPECT_EQ(m["how"], "created") << m.dump() << ": ABI 2's maps are reused";
  EXPECT_TRUE(conn.echo()) << "the established connection survives the upgrade";
  EXPECT_GE(json::parse(test::read_file(state_file))["version"].get<int>(), 3) << "the schema with the prefilter";

  ASSERT_EQ(sb_->cli({"prefilter", "add", kDeniedSrc.str()}).code, 0);
  EXPECT_EQ(from_outside("upgraded"), (std::vector<std::string>{"upgraded-other " + kOtherSrc.str()}));
  EXPECT_GE(drops(*sb_)[kDeniedSrc.str()], 3u);
  EXPECT_TRUE(conn.echo());
}

// An upgrade with a prefilter attached switches its XDP link in place
// (bpf_link_update): no moment without the prefilter.
TEST_F(Prefilter, AttachSwitchesTheXdpLinkInPlace) {
  ASSERT_EQ(sb_->cli({"prefilter", "add", kDeniedSrc.str()}).code, 0);
  const auto link_pin = sb_->node().pin_dir() / "uplink_xdp_link";
  UniqueFd link(bpf_obj_get(link_pin.c_str()));
  ASSERT_TRUE(link.valid());
  bpf_link_info before{};
  __u32 len = sizeof before;
  ASSERT_EQ(bpf_obj_get_info_by_fd(link.get(), &before, &len), 0);
  // Another build pinned: attach sees the programs differ and reloads them.
  {
    UniqueFd config(bpf_obj_get((sb_->node().pin_dir() / "maps" / "config").c_str()));
    __u32 key = EBPFNET_CFG_BUILD;
    uint64_t other = 1;
    ASSERT_EQ(bpf_map_update_elem(config.get(), &key, &other, BPF_ANY), 0);
  }
  const json r = cli_json(*sb_, {"attach"});
  bool switched = false;
  for (const auto& p : r["programs"])
    if (p["program"] == "uplink_prefilter") switched = p["attachments"] == 1;
  EXPECT_TRUE(switched) << r.dump();
  bpf_link_info after{};
  len = sizeof after;
  UniqueFd again(bpf_obj_get(link_pin.c_str()));
  ASSERT_EQ(bpf_obj_get_info_by_fd(again.get(), &after, &len), 0);
  EXPECT_EQ(after.id, before.id) << "the same link, its program replaced";
  EXPECT_NE(after.prog_id, before.prog_id);
  EXPECT_EQ(from_outside("switched"), (std::vector<std::string>{"switched-other " + kOtherSrc.str()}));
  EXPECT_GE(drops(*sb_)[kDeniedSrc.str()], 3u) << "counters kept across the reload";
}

// SIGKILL at each step of prefilter add and del: the next command converges
// (the maps and the XDP attachment follow the saved list), running the
// command again finishes it, and del leaves no entry and no XDP program.
class PrefilterKilled : public testing::TestWithParam<std::string> {};

TEST_P(PrefilterKilled, TheNextCommandConverges) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.246.2.0/29", /*attach=*/true, /*uplink_sandbox=*/true);
  auto killed_at = [&](const std::string& step, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"env", "EBPFNET_FAILPOINT=" + step, test::ebpfnet_bin(), "--state-dir",
                                     sb.env().state_root.string(), "--node", sb.name()};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run(argv).code;
  };
  // The list, the maps and the attachment say the same.
  auto consistent = [&](bool expect_entry) {
    const auto counts = drops(sb);  // recovers first, under the lock
    EXPECT_EQ(counts.count("192.0.2.0/24"), expect_entry ? 1u : 0u);
    const Snapshot s = snapshot(sb);
    EXPECT_EQ(s.entries.at("prefilter_cidr"), expect_entry ? 1u : 0u);
    EXPECT_EQ(s.entries.at("prefilter_stats"), expect_entry ? 1u : 0u);
    EXPECT_EQ(s.xdp, expect_entry) << "the XDP link follows the list";
    EXPECT_FALSE(std::filesystem::exists(sb.env().state_root / sb.name() / "journal.json"));
  };
  EXPECT_EQ(killed_at(GetParam(), {"prefilter", "add", "192.0.2.0/24"}), 128 + 9);
  const bool saved = GetParam() == "journal-end";
  consistent(saved);
  CmdResult again = sb.cli({"prefilter", "add", "192.0.2.0/24"});
  EXPECT_EQ(again.code, saved ? static_cast<int>(Errc::exists) : 0) << again.err;
  consistent(true);
  EXPECT_EQ(killed_at(GetParam(), {"prefilter", "del", "192.0.2.0/24"}), 128 + 9);
  consistent(!saved);
  CmdResult del = sb.cli({"prefilter", "del", "192.0.2.0/24"});
  EXPECT_EQ(del.code, saved ? static_cast<int>(Errc::not_found) : 0) << del.err;
  consistent(false);
}

INSTANTIATE_TEST_SUITE_P(Steps, PrefilterKilled, testing::Values("journal", "prefilter", "xdp", "state", "journal-end"),
                         test::step_name);

}  // namespace
}  // namespace ebpfnet
