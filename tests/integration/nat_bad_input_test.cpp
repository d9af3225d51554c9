// Bad input to expose, unexpose and attach --ct-timeout through the ebpfnet
// binary: each is refused with its documented exit code and a one-line
// message, and changes no state, no published port and no map entry.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;
using test::CmdResult;
using test::expect_one_line_error;
using test::joined;
using test::SandboxNode;
using test::unique;

// What a refused command may not change, all private to the test's node.
struct Snapshot {
  std::string state;       // state.json
  json published;          // `expose list -o json`
  size_t map_entries = 0;  // the datapath's published-port map
  std::string config;      // the datapath's config map (uplink, published, ct timeouts)
  json status;             // `status -o json` without the endpoints' counters
};

Snapshot snapshot(SandboxNode& sb) {
  Snapshot s;
  s.state = test::stored_state(sb.env().state_root / sb.name());
  CmdResult list = sb.cli({"-o", "json", "expose", "list"}, 20);
  EXPECT_EQ(list.code, 0) << list.err;
  s.published = json::parse(list.out, nullptr, false);
  for (const auto& m : sb.node().status().maps)
    if (m.name == "published") s.map_entries = m.entries;
  if (auto maps = Datapath::open_pinned_maps(sb.node().pin_dir())) {
    NodeConfig cfg = maps->read_config();
    s.config.assign(reinterpret_cast<const char*>(cfg.slots.data()), sizeof cfg.slots);
  }
  CmdResult status = sb.cli({"-o", "json", "status"}, 20);
  EXPECT_EQ(status.code, 0) << status.err;
  s.status = json::parse(status.out, nullptr, false);
  if (s.status.is_object()) s.status.erase("endpoints");
  return s;
}

void expect_same(const Snapshot& before, const Snapshot& after) {
  EXPECT_EQ(before.state, after.state) << "the node's state changed";
  EXPECT_EQ(before.published, after.published) << "the published ports changed";
  EXPECT_EQ(before.map_entries, after.map_entries) << "the published-port map changed";
  EXPECT_EQ(before.config, after.config) << "the datapath's config changed";
  EXPECT_EQ(before.status, after.status) << "the node's status changed";
}

void expect_refused_on(SandboxNode& sb, const std::vector<std::string>& args, Errc code) {
  SCOPED_TRACE(joined(args));
  Snapshot before = snapshot(sb);
  CmdResult r = sb.cli(args, 20);
  EXPECT_EQ(r.code, static_cast<int>(code)) << r.err;
  expect_one_line_error(r);
  expect_same(before, snapshot(sb));
}

// A node with an uplink, an endpoint whose 80/tcp is published on 8080, and
// a second endpoint with nothing published.
class NatBadInput : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace("10.247.0.0/29", /*attach=*/true, /*uplink_sandbox=*/true);
    pub_ = sb_->node().add_endpoint({unique("tp"), std::nullopt, std::nullopt, "eth0"}).name;
    other_ = sb_->node().add_endpoint({unique("tp"), std::nullopt, std::nullopt, "eth0"}).name;
    sb_->node().expose({pub_, "tcp", 80, 8080});
  }

  void expect_refused(const std::vector<std::string>& args, Errc code) {
    expect_refused_on(*sb_, args, code);
  }

  std::optional<SandboxNode> sb_;
  std::string pub_, other_;
};

TEST_F(NatBadInput, UnknownEndpoint) {
  expect_refused({"expose", unique("tu"), "80/tcp"}, Errc::not_found);
  expect_refused({"expose", unique("tu"), "80/tcp", "--port", "9090"}, Errc::not_found);
}

TEST_F(NatBadInput, PortsOutOfRange) {
  for (const std::string spec :
       {"0/tcp", "70000/tcp", "65536/udp", "-1/tcp", "x/tcp", "/tcp", "80x/tcp", ""})
    expect_refused({"expose", other_, spec}, Errc::usage);
  for (const std::string port : {"0", "70000", "-1", "x"})
    expect_refused({"expose", other_, "80/tcp", "--port", port}, Errc::usage);
}

TEST_F(NatBadInput, Protocols) {
  for (const std::string spec : {"80/sctp", "80/icmp", "80/", "80/tcp/udp"})
    expect_refused({"expose", other_, spec}, Errc::usage);
  expect_refused({"unexpose", pub_, "80/sctp"}, Errc::usage);
}

TEST_F(NatBadInput, PortAlreadyPublished) {
  expect_refused({"expose", other_, "81/tcp", "--port", "8080"}, Errc::exists);
  expect_refused({"expose", pub_, "80/tcp", "--port", "8080"}, Errc::exists);
  expect_refused({"expose", other_, "8080/tcp"}, Errc::exists);
  // The same number over udp is another port.
  CmdResult r = sb_->cli({"expose", other_, "8080/udp"});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(NatBadInput, NodeWithoutUplink) {
  SandboxNode plain("10.247.1.0/29");
  std::string ep =
      plain.node().add_endpoint({unique("tp"), std::nullopt, std::nullopt, "eth0"}).name;
  expect_refused_on(plain, {"expose", ep, "80/tcp"}, Errc::usage);
  expect_refused_on(plain, {"expose", ep, "53/udp", "--port", "5353"}, Errc::usage);
}

TEST_F(NatBadInput, UnexposeOfWhatIsNotPublished) {
  expect_refused({"unexpose", other_, "80/tcp"}, Errc::not_found);
  expect_refused({"unexpose", pub_, "80/udp"}, Errc::not_found);
  expect_refused({"unexpose", pub_, "8080/tcp"}, Errc::not_found);  // the target port names it
  expect_refused({"unexpose", unique("tu"), "80/tcp"}, Errc::not_found);
  expect_refused({"unexpose", pub_, "0/tcp"}, Errc::usage);
}

TEST_F(NatBadInput, CtTimeouts) {
  for (const std::string spec :
       {"bogus=1", "udp=0", "udp=-1", "udp=x", "udp=", "udp", "=2", "udp=2s", "udp=99999999999"})
    expect_refused({"attach", "--ct-timeout", spec}, Errc::usage);
  // One bad spec among good ones changes nothing either.
  expect_refused({"attach", "--ct-timeout", "udp=2", "--ct-timeout", "bogus=1"}, Errc::usage);
}

}  // namespace
}  // namespace ebpfnet
