// `ebpfnet apply -f node.yaml` on sandbox nodes it makes itself: from
// nothing, idempotent (the state file byte for byte), edits that converge,
// --diff that changes nothing, bad files refused whole, and a reboot-like
// loss of the node's pins that apply repairs, proven with real traffic.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;
using test::CmdResult;
using test::TempStateDir;
using test::unique;

constexpr uint16_t kPort = 7401;

class Apply : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    env_.state_root = state_.path();
    name_ = unique("ap");
  }
  // The node apply made, with its endpoints and outside, goes whatever happened.
  void TearDown() override {
    try {
      Node::destroy(env_, name_);
    } catch (const Error& e) {
      if (e.code() != Errc::not_found) ADD_FAILURE() << "destroying node " << name_ << ": " << e.what();
    }
    EXPECT_FALSE(netns::exists(name_)) << "the node's namespace is left behind";
    EXPECT_FALSE(netns::exists(name_ + "-out")) << "the node's outside is left behind";
    EXPECT_FALSE(std::filesystem::exists(env_.pin_root / name_)) << "the node's pins are left behind";
  }

  std::string file(const std::string& body, const std::string& head_extra = "") {
    const std::filesystem::path p = files_.path() / ("node-" + std::to_string(++files_made_) + ".yaml");
    std::ofstream(p) << "node: " << name_ << "\npool: 10.212.0.0/24\nuplink: {sandbox: true}\n"
                     << head_extra << body;
    return p.string();
  }
  CmdResult apply(const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {test::ebpfnet_bin(), "--state-dir", env_.state_root.string()};
    std::vector<std::string> tail = {"apply", "-f", path};
    argv.insert(argv.end(), tail.begin(), tail.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return test::run(argv);
  }
  void apply_ok(const std::string& path) {
    CmdResult r = apply(path);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
  }
  Node node() { return Node(env_, name_); }
  // What the node remembers: its state file and its endpoint rows (policies live there).
  std::string state_file() { return test::stored_state(env_.state_root / name_); }
  size_t map_entries(const char* map) {
    for (const auto& m : node().status().maps)
      if (m.name == map) return m.entries;
    ADD_FAILURE() << "no map " << map;
    return 0;
  }
  // Two endpoints, as a runtime or `endpoint add` makes them.
  void add_endpoints() {
    a_ = node().add_endpoint({unique("apa"), std::nullopt, std::nullopt, "eth0"});
    b_ = node().add_endpoint({unique("apb"), std::nullopt, std::nullopt, "eth0"});
  }
  // b's server port published twice, a route, and a policy on b: tcp kPort
  // from a only, no icmp.
  std::string full_body() {
    return "published:\n  - {endpoint: " + b_.name + ", port: 8080, target_port: " + std::to_string(kPort) +
           "}\n  - {endpoint: " + b_.name + ", proto: udp, port: 5353, target_port: 53}\nroutes:\n"
           "  - {dst: 10.240.9.0/24, via: 198.18.0.1}\npolicies:\n  " + b_.name +
           ":\n    ingress:\n      default: deny\n      rules:\n        - {action: allow, proto: tcp, port: " +
           std::to_string(kPort) + ", peer: " + a_.name + "}\n";
  }
  Netns ns(const EndpointRecord& e) { return Netns::open_path(e.netns_path); }

  TempStateDir state_, files_;
  int files_made_ = 0;
  Env env_;
  std::string name_;
  EndpointRecord a_, b_;
};

TEST_F(Apply, FromNothingThenASecondApplyChangesNothing) {
  CmdResult first = apply(file(""));
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_NE(first.out.find("+ node " + name_ + " (sandbox, pool 10.212.0.0/24, uplink sandbox " + name_ + "-out)"),
            std::string::npos)
      << first.out;
  EXPECT_NE(first.out.find("+ datapath load and pin"), std::string::npos) << first.out;
  ASSERT_TRUE(netns::exists(name_));
  ASSERT_TRUE(netns::exists(name_ + "-out"));
  EXPECT_EQ(node().status().abi, EBPFNET_ABI_VERSION) << "the new node is attached";

  add_endpoints();
  const std::string full = file(full_body());
  CmdResult second = apply(full);
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_NE(second.out.find("+ published tcp 8080 -> " + b_.name), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("4 change(s) applied"), std::string::npos) << second.out;
  ASSERT_EQ(node().published().size(), 2u);
  EXPECT_EQ(map_entries("published"), 2u);
  ASSERT_EQ(node().routes().size(), 1u);
  auto pols = node().policies();
  ASSERT_EQ(pols.size(), 1u);
  EXPECT_EQ(pols[0].endpoint, b_.name);
  EXPECT_EQ(pols[0].policy.ingress.rules.at(0).cidr, (Ipv4Cidr{a_.ip, 32}));

  const std::string before = state_file();
  ASSERT_FALSE(before.empty());
  CmdResult again = apply(full);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, "node " + name_ + ": no changes\n");
  EXPECT_EQ(state_file(), before) << "a second apply rewrote the state";
  CmdResult as_json = test::run({test::ebpfnet_bin(), "--state-dir", env_.state_root.string(), "-o", "json", "apply", "-f", full});
  ASSERT_EQ(as_json.code, 0) << as_json.err;
  json j = json::parse(as_json.out);
  EXPECT_EQ(j["node"], name_);
  EXPECT_TRUE(j["changes"].empty());
  EXPECT_EQ(j["applied"], false);
  EXPECT_EQ(state_file(), before);
}

TEST_F(Apply, EditsConverge) {
  apply_ok(file(""));
  add_endpoints();
  apply_ok(file(full_body()));
  // The policy lets a reach b's server and nothing else in.
  ASSERT_TRUE(probe_tcp(ns(a_), ns(b_), b_.ip, kPort).ok);
  ASSERT_FALSE(probe_icmp(ns(a_), b_.ip, ProbeTimeout(500)).ok);

  // Without the udp port and the route, and icmp allowed from a.
  const std::string edited = file("published:\n  - {endpoint: " + b_.name + ", port: 8080, target_port: " +
                                  std::to_string(kPort) + "}\npolicies:\n  " + b_.name +
                                  ":\n    ingress:\n      default: deny\n      rules:\n        - {action: allow, "
                                  "proto: tcp, port: " + std::to_string(kPort) + ", peer: " + a_.name +
                                  "}\n        - {action: allow, proto: icmp, peer: " + a_.name + "}\n");
  CmdResult r = apply(edited);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("- published udp 5353 -> " + b_.name + ":53"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("- route 10.240.9.0/24 via 198.18.0.1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    + ingress: allow icmp from " + a_.name), std::string::npos) << r.out;

  auto published = node().published();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].proto, "tcp");
  EXPECT_EQ(map_entries("published"), 1u) << "the udp port is still in the published map";
  CmdResult list = test::run({test::ebpfnet_bin(), "--state-dir", env_.state_root.string(), "--node", name_,
                              "expose", "list"});
  EXPECT_EQ(list.out.find("5353"), std::string::npos) << list.out;
  EXPECT_TRUE(node().routes().empty());
  for (const auto& route : Netlink::in(node().netns()).routes())
    EXPECT_FALSE(route.dst == *Ipv4Cidr::parse("10.240.9.0/24")) << "the kernel route is left";
  EXPECT_TRUE(probe_icmp(ns(a_), b_.ip).ok) << "the changed policy is not in the datapath";
  EXPECT_TRUE(probe_tcp(ns(a_), ns(b_), b_.ip, kPort).ok);

  // A file without policies removes b's: everything reaches it again.
  apply_ok(file("published:\n  - {endpoint: " + b_.name + ", port: 8080, target_port: " + std::to_string(kPort) +
                "}\n"));
  EXPECT_TRUE(node().policies().empty());
  EXPECT_TRUE(probe_udp(ns(a_), ns(b_), b_.ip, kPort).ok);
  EXPECT_EQ(apply(edited).code, 0);
  EXPECT_EQ(node().policies().size(), 1u) << "and applying the edited file brings it back";
}

// Services declared in the file: added with traffic to the virtual IP,
// left alone by a second apply, replaced when edited, removed when omitted.
TEST_F(Apply, ServicesConverge) {
  apply_ok(file(""));
  add_endpoints();
  const Ipv4 vip = *Ipv4::parse("10.96.0.10");
  auto svc = [&](const std::string& backends) {
    return file("services:\n  api:\n    vip: " + vip.str() + ":80/tcp\n    backends: [" + backends + "]\n");
  };
  const std::string one = svc(b_.name + ":" + std::to_string(kPort));
  CmdResult r = apply(one);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("+ service api " + vip.str() + ":80/tcp -> " + b_.name + ":" + std::to_string(kPort)),
            std::string::npos)
      << r.out;
  ASSERT_EQ(node().services().size(), 1u);
  EXPECT_TRUE(probe_tcp_via(ns(a_), vip, 80, ns(b_), Ipv4(0), kPort).ok)
      << "the virtual IP reaches the backend";
  EXPECT_EQ(apply(one).out, "node " + name_ + ": no changes\n");

  CmdResult edited = apply(svc(b_.name + ":" + std::to_string(kPort) + "," + a_.name + ":" + std::to_string(kPort)));
  ASSERT_EQ(edited.code, 0) << edited.err;
  EXPECT_NE(edited.out.find("~ service api"), std::string::npos) << edited.out;
  ASSERT_EQ(node().services().size(), 1u);
  EXPECT_EQ(node().services()[0].backends.size(), 2u);

  apply_ok(file(""));
  EXPECT_TRUE(node().services().empty());
  EXPECT_EQ(map_entries("svc"), 0u);
}

TEST_F(Apply, DiffChangesNothing) {
  // Of a node that does not exist: nothing is made.
  CmdResult none = apply(file(""), {"--diff"});
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_NE(none.out.find("+ node " + name_), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("(--diff: nothing changed)"), std::string::npos) << none.out;
  EXPECT_FALSE(netns::exists(name_));
  EXPECT_FALSE(std::filesystem::exists(env_.state_root / name_)) << "--diff made the node's state directory";

  apply_ok(file(""));
  add_endpoints();
  const std::string before = state_file();
  CmdResult diff = apply(file(full_body()), {"--diff"});
  ASSERT_EQ(diff.code, 0) << diff.err;
  EXPECT_NE(diff.out.find("+ policy " + b_.name + ": ingress 1 rule, default deny"), std::string::npos) << diff.out;
  EXPECT_EQ(state_file(), before);
  EXPECT_TRUE(node().published().empty());
  EXPECT_EQ(map_entries("published"), 0u);
  EXPECT_TRUE(node().policies().empty());
  CmdResult as_json =
      test::run({test::ebpfnet_bin(), "--state-dir", env_.state_root.string(), "-o", "json", "apply", "-f",
                 file(full_body()), "--diff"});
  ASSERT_EQ(as_json.code, 0) << as_json.err;
  json j = json::parse(as_json.out);
  EXPECT_EQ(j["applied"], false);
  ASSERT_EQ(j["changes"].size(), 4u);
  EXPECT_EQ(j["changes"][0]["op"], "+");
  EXPECT_EQ(j["changes"][0]["kind"], "published");
  EXPECT_EQ(state_file(), before);
}

TEST_F(Apply, BadFilesAreRefusedWholeWithNothingChanged) {
  apply_ok(file(""));
  add_endpoints();
  const std::string before = state_file();
  struct Bad {
    std::string body, head_extra;
    int code;
    std::string error;  // after "ebpfnet: FILE:"
  };
  // Each has valid changes before its mistake: none of them may be made.
  const std::string good = "published:\n  - {endpoint: " + b_.name + ", port: 8080}\n";
  const std::vector<Bad> bad = {
      {good + "  - {endpoint: ghost, port: 8081}\n", "", 3, "6: no endpoint 'ghost' on node " + name_},
      {good + "routes:\n  - {dst: 10.240.9.0/33, via: 198.18.0.1}\n", "", 2,
       "7: dst '10.240.9.0/33' is not an IPv4 prefix such as 10.240.0.0/24"},
      {good + "route:\n  - {dst: 10.240.9.0/24, via: 198.18.0.1}\n", "", 2, "6: unknown key 'route' at the top level"},
      {good + "  - {endpoint: " + a_.name + ", port: 8080}\n", "", 2, "6: tcp port 8080 is published twice (also on line 5)"},
      {good + "policies:\n  " + a_.name + ":\n    ingress: {default: maybe}\n", "", 2,
       "8: 'maybe' is not an action (allow or deny)"},
      {good, "sandbox: 1\n", 2, "4: sandbox '1' is not true or false"},
  };
  for (const auto& b : bad) {
    const std::string path = file(b.body, b.head_extra);
    CmdResult r = apply(path);
    EXPECT_EQ(r.code, b.code) << r.err;
    test::expect_one_line_error(r);
    EXPECT_EQ(r.err.rfind("ebpfnet: " + path + ":" + b.error, 0), 0u) << r.err;
    EXPECT_EQ(state_file(), before) << "refused file changed the state: " << r.err;
    EXPECT_EQ(map_entries("published"), 0u);
  }
  // A pool the node does not have, and another node than --node.
  std::ofstream(files_.path() / "pool.yaml") << "node: " << name_ << "\npool: 10.212.1.0/24\nuplink: {sandbox: true}\n";
  CmdResult pool = apply((files_.path() / "pool.yaml").string());
  EXPECT_EQ(pool.code, 2);
  EXPECT_NE(pool.err.find("pool.yaml:2: node " + name_ + " has pool 10.212.0.0/24, not 10.212.1.0/24"),
            std::string::npos)
      << pool.err;
  CmdResult other = test::run({test::ebpfnet_bin(), "--state-dir", env_.state_root.string(), "--node", "elsewhere",
                               "apply", "-f", file(good)});
  EXPECT_EQ(other.code, 2);
  EXPECT_NE(other.err.find(":1: the file describes node " + name_ + ", not elsewhere (--node)"), std::string::npos)
      << other.err;
  EXPECT_EQ(state_file(), before);
}

TEST_F(Apply, AfterTheNodesPinsAreLostApplyRestoresForwarding) {
  apply_ok(file(""));
  add_endpoints();
  const std::string full = file(full_body());
  apply_ok(full);
  ASSERT_TRUE(probe_tcp(ns(a_), ns(b_), b_.ip, kPort).ok);

  // What a reboot takes: bpffs (this sandbox node's pins only; its TCX links
  // go with them) and the clsact filters of its veths.
  std::filesystem::remove_all(env_.pin_root / name_);
  {
    NetnsGuard in(node().netns());
    for (const auto& v : node().endpoints())
      if (v.rec.tc_mode == TcMode::clsact) detach_tc_ingress(TcMode::clsact, v.rec.host_ifindex, {});
  }
  NodeStatus lost = node().status();
  ASSERT_EQ(lost.abi, 0u);
  for (const auto& a : lost.attachments) EXPECT_EQ(a.prog.id, 0u) << a.owner << " is still attached";

  CmdResult r = apply(full);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "+ datapath load and pin (nothing is pinned)\nnode " + name_ + ": 1 change(s) applied\n");
  NodeStatus back = node().status();
  EXPECT_EQ(back.abi, EBPFNET_ABI_VERSION);
  for (const auto& a : back.attachments) EXPECT_FALSE(a.stale) << a.owner << " is not attached again";

  // Traffic goes through the programs again (a's counters move), with b's policy.
  auto tx_of_a = [&] {
    for (const auto& v : node().endpoints())
      if (v.rec.name == a_.name && v.stats) return v.stats->tx_packets;
    return uint64_t{0};
  };
  const uint64_t tx = tx_of_a();
  ProbeResult tcp = probe_tcp(ns(a_), ns(b_), b_.ip, kPort);
  ASSERT_TRUE(tcp.ok) << tcp.error;
  EXPECT_EQ(tcp.peer_saw, a_.ip);
  EXPECT_GT(tx_of_a(), tx) << "the packets did not pass a's program";
  EXPECT_FALSE(probe_icmp(ns(a_), b_.ip, ProbeTimeout(500)).ok) << "b's policy was not restored";
  // The published port is back: a reaches b through it (hairpin), the outside is refused by b's policy.
  const Ipv4 uplink_ip = *Ipv4::parse(kSandboxUplinkIp);
  ProbeResult hairpin = probe_tcp_via(ns(a_), uplink_ip, 8080, ns(b_), b_.ip, kPort);
  EXPECT_TRUE(hairpin.ok) << hairpin.error;
  Netns outside = Netns::open_named(name_ + "-out");
  EXPECT_FALSE(probe_tcp_via(outside, uplink_ip, 8080, ns(b_), b_.ip, kPort, ProbeTimeout(500)).ok)
      << "b's policy allows only a, also through its published port";
  EXPECT_EQ(apply(full).out, "node " + name_ + ": no changes\n");
}

}  // namespace
}  // namespace ebpfnet
