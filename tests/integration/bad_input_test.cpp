// Bad input through the ebpfnet binary: each is refused with its documented
// exit code and a one-line message, and leaves nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

namespace fs = std::filesystem;
using test::CmdResult;
using test::expect_one_line_error;
using test::joined;
using test::entries;
using test::read_file;
using test::run;
using test::SandboxNode;
using test::unique;


// What a refused command may not change. Everything here is private to the
// test's node and state directory, so other tests running at once do not
// disturb it; namespaces are global and checked by name instead.
struct Snapshot {
  std::string state;
  std::vector<std::string> state_root, node_links, link_pins;
  size_t map_entries = 0;
};

Snapshot snapshot(SandboxNode& sb) {
  Snapshot s;
  s.state = test::stored_state(sb.env().state_root / sb.name());
  s.state_root = entries(sb.env().state_root);
  for (const auto& l : Netlink::in(sb.node().netns()).links()) s.node_links.push_back(l.name);
  std::sort(s.node_links.begin(), s.node_links.end());
  s.link_pins = entries(sb.node().pin_dir() / "links");
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  if (maps) s.map_entries = maps->endpoint_count();
  return s;
}

void expect_same(const Snapshot& before, const Snapshot& after) {
  EXPECT_EQ(before.state, after.state) << "the node's state changed";
  EXPECT_EQ(before.state_root, after.state_root) << "the state directory changed";
  EXPECT_EQ(before.node_links, after.node_links) << "the node's devices changed";
  EXPECT_EQ(before.link_pins, after.link_pins) << "link pins changed";
  EXPECT_EQ(before.map_entries, after.map_entries) << "datapath entries changed";
}

bool named_ns(const std::string& name) {
  auto names = netns::list();
  return std::find(names.begin(), names.end(), name) != names.end();
}

class BadInput : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    // A /29: gateway .1, endpoints .2 to .6, broadcast .7.
    sb_.emplace("10.243.0.0/29");
    taken_ = sb_->node().add_endpoint({unique("tt"), std::nullopt, std::nullopt, "eth0"});
  }

  // Runs ebpfnet against the node and expects it refused with code, leaving
  // everything as it was and no namespace called `made`.
  void expect_refused(const std::vector<std::string>& args, Errc code,
                      const std::string& made = "") {
    SCOPED_TRACE(joined(args));
    Snapshot before = snapshot(*sb_);
    CmdResult r = sb_->cli(args, 20);
    EXPECT_EQ(r.code, static_cast<int>(code)) << r.err;
    expect_one_line_error(r);
    expect_same(before, snapshot(*sb_));
    if (!made.empty()) {
      EXPECT_FALSE(named_ns(made)) << made;
    }
  }

  std::optional<SandboxNode> sb_;
  EndpointRecord taken_;
};

std::vector<std::string> bad_names() {
  return {"", std::string(65, 'a'), "a/b", "../x", "..", "-lead", ".lead", "a b", "a\nb"};
}

TEST_F(BadInput, EndpointNames) {
  // "--": a leading '-' reaches the name check instead of the option parser.
  for (const auto& name : bad_names())
    expect_refused({"endpoint", "add", "--", name}, Errc::usage, name);
  for (const auto& name : bad_names()) expect_refused({"endpoint", "del", "--", name}, Errc::usage);
}

TEST_F(BadInput, LongestNameIsAccepted) {
  // The 65-character refusal is the limit, not an accident: 64 pass.
  std::string name = unique("tb");
  name += std::string(64 - name.size(), 'x');
  CmdResult r = sb_->cli({"endpoint", "add", name});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(netns::exists(name));
  r = sb_->cli({"endpoint", "del", name});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(netns::exists(name));
}

TEST_F(BadInput, NodeAndNamespaceNames) {
  for (const auto& name : bad_names()) {
    expect_refused({"node", "create", "--cidr", "10.244.0.0/24", "--", name}, Errc::usage, name);
    expect_refused({"node", "delete", "--", name}, Errc::usage);
    expect_refused({"ns", "add", "--", name}, Errc::usage, name);
    // Whatever else it says, --node with a bad name is refused.
    CmdResult r = run({test::ebpfnet_bin(), "--state-dir", sb_->env().state_root.string(), "--node",
                       name, "status"},
                      "", 10);
    EXPECT_EQ(r.code, static_cast<int>(Errc::usage)) << joined({name}) << r.err;
  }
}

TEST_F(BadInput, InterfaceNames) {
  for (const std::string ifname : {"", "a/b", "x:1", "sixteen-chars-xx", "a b"}) {
    std::string name = unique("tf");
    expect_refused({"endpoint", "add", name, "--ifname", ifname}, Errc::usage, name);
  }
}

TEST_F(BadInput, Addresses) {
  for (const std::string ip : {"10.9.9.9", "10.243.0.8", "10.243.0.x", "10.243.0.300", "10.243.0.1",
                               "10.243.0.0", "10.243.0.7"}) {
    std::string name = unique("ti");
    expect_refused({"endpoint", "add", name, "--ip", ip}, Errc::usage, name);
  }
  std::string name = unique("ti");
  expect_refused({"endpoint", "add", name, "--ip", taken_.ip.str()}, Errc::exists, name);
}

TEST_F(BadInput, EmptyIpIsRefused) {
  // An empty --ip is malformed, not "pick one for me".
  std::string name = unique("ti");
  expect_refused({"endpoint", "add", name, "--ip", ""}, Errc::usage, name);
}

TEST_F(BadInput, DuplicateEndpointKeepsTheFirst) {
  expect_refused({"endpoint", "add", taken_.name}, Errc::exists);
  expect_refused({"endpoint", "add", taken_.name, "--ip", "10.243.0.6"}, Errc::exists);
  // The refusal did not undo the existing endpoint.
  EXPECT_TRUE(netns::exists(taken_.name));
  auto views = sb_->node().endpoints();
  ASSERT_EQ(views.size(), 1u);
  EXPECT_NE(views[0].prog_id, 0u);
}

TEST_F(BadInput, NamespaceOfThatNameExists) {
  std::string name = unique("te");
  ASSERT_EQ(run({"ip", "netns", "add", name}, "", 10).code, 0);
  struct Cleanup {
    std::string name;
    ~Cleanup() { run({"ip", "netns", "del", name}, "", 10); }
  } cleanup{name};
  SCOPED_TRACE("endpoint add over an existing namespace");
  Snapshot before = snapshot(*sb_);
  CmdResult r = sb_->cli({"endpoint", "add", name});
  EXPECT_EQ(r.code, static_cast<int>(Errc::exists)) << r.err;
  expect_one_line_error(r);
  expect_same(before, snapshot(*sb_));
  EXPECT_TRUE(netns::exists(name)) << "the refusal deleted a namespace it did not make";
}

TEST_F(BadInput, MissingProcessAndNamespace) {
  // pid_max itself is never a process id.
  std::string pid_max = read_file("/proc/sys/kernel/pid_max");
  pid_max.erase(pid_max.find_last_not_of("\n") + 1);
  std::string name = unique("tm");
  expect_refused({"endpoint", "add", name, "--pid", pid_max}, Errc::not_found, name);
  std::string missing = unique("tm");
  expect_refused({"endpoint", "add", name, "--netns", missing}, Errc::not_found, name);
  EXPECT_FALSE(netns::exists(missing)) << "a missing --netns was created";
  expect_refused({"endpoint", "add", name, "--netns", "/run/netns/" + missing}, Errc::not_found,
                 name);
}

TEST_F(BadInput, UnknownEndpointOnDel) {
  expect_refused({"endpoint", "del", unique("tu")}, Errc::not_found);
}

std::vector<std::vector<std::string>> unknown_node_commands(const std::string& node) {
  std::string ep = unique("tu");
  return {{"endpoint", "add", ep},
          {"endpoint", "del", ep},
          {"endpoint", "list"},
          {"status"},
          {"attach"},
          {"node", "delete", node}};
}

CmdResult run_on_node(const SandboxNode& sb, const std::string& node,
                      const std::vector<std::string>& args) {
  std::vector<std::string> argv = {test::ebpfnet_bin(), "--state-dir", sb.env().state_root.string(),
                                   "--node", node};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, "", 20);
}

TEST_F(BadInput, UnknownNode) {
  std::string node = unique("tu");
  for (const auto& args : unknown_node_commands(node)) {
    SCOPED_TRACE(joined(args));
    CmdResult r = run_on_node(*sb_, node, args);
    EXPECT_EQ(r.code, static_cast<int>(Errc::not_found)) << r.err;
    expect_one_line_error(r);
    EXPECT_FALSE(named_ns(node));
    if (args[0] == "endpoint") {
      EXPECT_FALSE(named_ns(args.back()));
    }
    EXPECT_FALSE(fs::exists(sb_->env().pin_root / node));
  }
}

TEST_F(BadInput, UnknownNodeLeavesNoStateDirectory) {
  // A typo in --node must not leave a directory for the misspelt node.
  std::string node = unique("tu");
  fs::path root = sb_->env().state_root;
  const auto before = entries(root);
  for (const auto& args : unknown_node_commands(node)) {
    SCOPED_TRACE(joined(args));
    run_on_node(*sb_, node, args);
    EXPECT_EQ(entries(root), before);
    fs::remove_all(root / node);  // each command starts clean, so each is judged alone
  }
}

TEST_F(BadInput, BadCidrOnNodeCreate) {
  for (const std::string cidr : {"10.0.0.1/24", "bogus", "10.0.0.0", "10.0.0.0/31", "10.0.0.0/33",
                                 "10.0.0.0/4", "300.0.0.0/8", ""}) {
    std::string node = unique("tc");
    expect_refused({"node", "create", node, "--cidr", cidr}, Errc::usage, node);
  }
}

TEST_F(BadInput, NodeCreateOfExistingNode) {
  expect_refused({"node", "create", sb_->name(), "--cidr", "10.245.0.0/24"}, Errc::exists);
  EXPECT_TRUE(netns::exists(sb_->name()));
}

TEST_F(BadInput, PoolExhausted) {
  SandboxNode small("10.243.1.0/30");  // gateway .1, broadcast .3: only .2 is handed out
  CmdResult r = small.cli({"endpoint", "add", unique("tx")});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string name = unique("tx");
  Snapshot before = snapshot(small);
  r = small.cli({"endpoint", "add", name});
  EXPECT_EQ(r.code, static_cast<int>(Errc::exhausted)) << r.err;
  expect_one_line_error(r);
  expect_same(before, snapshot(small));
  EXPECT_FALSE(named_ns(name));
}

TEST_F(BadInput, NotRoot) {
  std::string name = unique("tr"), node = unique("tr");
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"endpoint", "add", name},
                                             {"endpoint", "del", taken_.name},
                                             {"node", "create", node, "--cidr", "10.246.0.0/24"},
                                             {"attach"},
                                             {"ns", "add", name}}) {
    SCOPED_TRACE(joined(args));
    std::vector<std::string> argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    std::vector<std::string> cli = {test::ebpfnet_bin(), "--state-dir",
                                    sb_->env().state_root.string(), "--node", sb_->name()};
    argv.insert(argv.end(), cli.begin(), cli.end());
    argv.insert(argv.end(), args.begin(), args.end());
    Snapshot before = snapshot(*sb_);
    CmdResult r = run(argv, "", 10);
    EXPECT_EQ(r.code, static_cast<int>(Errc::environment)) << r.err;
    expect_one_line_error(r);
    expect_same(before, snapshot(*sb_));
    EXPECT_FALSE(named_ns(name));
    EXPECT_FALSE(named_ns(node));
  }
}

}  // namespace
}  // namespace ebpfnet
