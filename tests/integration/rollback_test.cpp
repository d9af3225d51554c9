// Transactions: a failure injected before each step of add_endpoint and
// Node::create must leave the node exactly as it was.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

namespace fs = std::filesystem;
using test::entries;
using test::read_file;
using test::SandboxNode;
using test::step_name;
using test::unique;

// The steps an operation can fail at and be undone; "database" comes after
// the state file is saved (its counters only move forward) and before the
// endpoint's row is committed; after it comes only "journal-end", when the
// operation is done and saved.
const std::vector<std::string> kAddSteps = {
    "journal", "netns", "veth", "endpoint-config", "node-config", "maps", "attach", "state", "database"};
const std::vector<std::string> kCreateSteps = {"journal", "netns", "loopback", "state"};

std::vector<std::string> all_steps(std::vector<std::string> steps) {
  steps.push_back("journal-end");
  return steps;
}

// Thrown by the checkpoint, so a test knows the failure it sees is the injected one.
struct Injected : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws before `step`, recording every step it was asked about.
struct FailAt {
  std::string step;
  std::vector<std::string> seen;
  Checkpoint checkpoint() {
    return [this](std::string_view s) {
      seen.emplace_back(s);
      if (s == step) throw Injected("injected before " + step);
    };
  }
};

// The steps a checkpoint sees when the operation fails before `last`.
std::vector<std::string> steps_through(const std::vector<std::string>& steps,
                                       const std::string& last) {
  auto end = std::find(steps.begin(), steps.end(), last);
  return {steps.begin(), end == steps.end() ? end : end + 1};
}


std::vector<std::string> link_names(const Netns& ns) {
  std::vector<std::string> out;
  for (const auto& l : Netlink::in(ns).links()) out.push_back(l.name);
  std::sort(out.begin(), out.end());
  return out;
}

// What a node looks like from the outside, all of it private to the test.
struct NodeView {
  std::string state;
  std::vector<std::string> links, pins;
  size_t map_entries = 0;
  size_t node_routes = 0, node_addresses = 0;
};

NodeView view_of(SandboxNode& sb) {
  NodeView v;
  v.state = test::stored_state(sb.env().state_root / sb.name());
  Netns ns = sb.node().netns();
  v.links = link_names(ns);
  v.pins = entries(sb.node().pin_dir() / "links");
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  v.map_entries = maps ? maps->endpoint_count() : 0;
  Netlink nl = Netlink::in(ns);
  v.node_routes = nl.routes().size();
  v.node_addresses = nl.addresses().size();
  return v;
}

// Failed at "database", the state file was saved already: only its pool
// counter moved on (an address is never handed out twice), nothing else.
std::string without_pool_counter(const std::string& stored) {
  std::istringstream in(stored);  // the state file, then the endpoint rows
  nlohmann::json state;
  in >> state;
  state.erase("last_allocated");
  return state.dump() + std::string(std::istreambuf_iterator<char>(in), {});
}

void expect_same(const NodeView& before, const NodeView& after, const std::string& failed_at) {
  if (failed_at == "database")
    EXPECT_EQ(without_pool_counter(before.state), without_pool_counter(after.state)) << "the state changed";
  else
    EXPECT_EQ(before.state, after.state) << "the state changed";
  EXPECT_EQ(before.links, after.links) << "a device is left in the node";
  EXPECT_EQ(before.pins, after.pins) << "a link pin is left";
  EXPECT_EQ(before.map_entries, after.map_entries) << "a datapath entry is left";
  EXPECT_EQ(before.node_routes, after.node_routes) << "a route is left in the node";
  EXPECT_EQ(before.node_addresses, after.node_addresses) << "an address is left in the node";
}

class AddEndpointRollback : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace();
    // An endpoint already there, so "left as it was" is not just "empty".
    keep_ = sb_->node().add_endpoint({unique("rk"), std::nullopt, std::nullopt, "eth0"});
  }

  std::optional<SandboxNode> sb_;
  EndpointRecord keep_;
};

TEST(AddEndpointSteps, CheckpointSeesEveryDocumentedStep) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  FailAt none{"(none)", {}};
  sb.node().add_endpoint({unique("rs"), std::nullopt, std::nullopt, "eth0"}, none.checkpoint());
  EXPECT_EQ(none.seen, all_steps(kAddSteps));
}

TEST_P(AddEndpointRollback, OwnNamespace) {
  const std::string name = unique("rb");
  const Ipv4 next(keep_.ip.host() + 1);  // what this add would have been given
  NodeView before = view_of(*sb_);
  FailAt fail{GetParam(), {}};
  EXPECT_THROW(
      sb_->node().add_endpoint({name, std::nullopt, std::nullopt, "eth0"}, fail.checkpoint()),
      Injected);
  ASSERT_EQ(fail.seen, steps_through(kAddSteps, GetParam())) << "not failed where injected";

  EXPECT_FALSE(netns::exists(name));
  expect_same(before, view_of(*sb_), GetParam());
  auto maps = Datapath::open_pinned_maps(sb_->node().pin_dir());
  ASSERT_TRUE(maps);
  EXPECT_FALSE(maps->endpoint_by_ip(next));
  ASSERT_EQ(sb_->node().endpoints().size(), 1u);

  // The name and the address are free again, and the node still forwards.
  EndpointRecord again = sb_->node().add_endpoint({name, std::nullopt, std::nullopt, "eth0"});
  EXPECT_EQ(again.ip.str(), GetParam() == "database" ? Ipv4(next.host() + 1).str() : next.str());
  ProbeResult p = probe_icmp(Netns::open_named(name), keep_.ip);
  EXPECT_TRUE(p.ok) << p.error;
}

TEST_P(AddEndpointRollback, ExistingNamespaceIsKept) {
  const std::string ns = unique("ru"), name = unique("rb");
  netns::add(ns);
  struct Cleanup {
    std::string ns;
    ~Cleanup() {
      try {
        if (netns::exists(ns)) netns::del(ns);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "deleting namespace " << ns << ": " << e.what();
      }
    }
  } cleanup{ns};
  NodeView before = view_of(*sb_);
  FailAt fail{GetParam(), {}};
  EXPECT_THROW(sb_->node().add_endpoint({name, std::nullopt, ns, "eth0"}, fail.checkpoint()),
               Injected);
  ASSERT_EQ(fail.seen, steps_through(kAddSteps, GetParam())) << "not failed where injected";

  ASSERT_TRUE(netns::exists(ns)) << "rollback deleted a namespace it did not make";
  EXPECT_EQ(link_names(Netns::open_named(ns)), std::vector<std::string>{"lo"});
  expect_same(before, view_of(*sb_), GetParam());
  EndpointRecord again = sb_->node().add_endpoint({name, std::nullopt, ns, "eth0"});
  EXPECT_EQ(again.ip.str(), Ipv4(keep_.ip.host() + (GetParam() == "database" ? 2 : 1)).str());
}

INSTANTIATE_TEST_SUITE_P(Steps, AddEndpointRollback, testing::ValuesIn(kAddSteps), step_name);

TEST(CreateNodeSteps, CheckpointSeesEveryDocumentedStep) {
  EBPFNET_REQUIRE_ROOT();
  test::TempStateDir state;
  Env env{state.path()};
  std::string name = unique("rn");
  FailAt none{"(none)", {}};
  Node::create(env, name, *Ipv4Cidr::parse("10.247.0.0/24"), none.checkpoint());
  Node::destroy(env, name);
  EXPECT_EQ(none.seen, all_steps(kCreateSteps));
}

class CreateNodeRollback : public testing::TestWithParam<std::string> {};

TEST_P(CreateNodeRollback, LeavesNothing) {
  EBPFNET_REQUIRE_ROOT();
  test::TempStateDir state;
  Env env{state.path()};
  const std::string name = unique("rn");
  // Removes the node made again below, or what a broken rollback left.
  struct Cleanup {
    const Env& env;
    std::string name;
    ~Cleanup() {
      try {
        if (fs::exists(env.state_root / name / "state.json"))
          Node::destroy(env, name);
        else if (netns::exists(name))
          netns::del(name);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cleaning up node " << name << ": " << e.what();
      }
    }
  } cleanup{env, name};

  FailAt fail{GetParam(), {}};
  const Ipv4Cidr cidr = *Ipv4Cidr::parse("10.247.0.0/24");
  EXPECT_THROW(Node::create(env, name, cidr, fail.checkpoint()), Injected);
  ASSERT_EQ(fail.seen, steps_through(kCreateSteps, GetParam())) << "not failed where injected";
  EXPECT_FALSE(netns::exists(name));
  EXPECT_FALSE(fs::exists(env.state_root / name));
  EXPECT_TRUE(Node::list(env).empty());

  // Nothing in the way of doing it again.
  Node::create(env, name, cidr);
  EXPECT_TRUE(netns::exists(name));
  EXPECT_EQ(Node::list(env), std::vector<std::string>{name});
}

INSTANTIATE_TEST_SUITE_P(Steps, CreateNodeRollback, testing::ValuesIn(kCreateSteps), step_name);

}  // namespace
}  // namespace ebpfnet
