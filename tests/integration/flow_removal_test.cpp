// Removing an endpoint removes its conntrack flows (masqueraded, through a
// published port, ICMP), and unpublishing a port the flows through it, so an
// address handed out again never receives a former owner's traffic; every
// other flow stays.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <nlohmann/json.hpp>

#include "connection.hpp"
#include "ebpfnet/probe.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;
using test::SandboxNode;

const Ipv4 kUplink = *Ipv4::parse(kSandboxUplinkIp);
const Ipv4 kServer = *Ipv4::parse(kSandboxServerIp);
constexpr uint16_t kWeb = 80, kPublished = 18091, kOut = 7401;

// The flows conntrack list shows that involve ip, before or after translation.
size_t flows_of(SandboxNode& sb, Ipv4 ip) {
  test::CmdResult r = sb.cli({"-o", "json", "conntrack", "list"});
  EXPECT_EQ(r.code, 0) << r.err;
  size_t n = 0;
  const std::string a = ip.str() + ":";
  for (const auto& f : json::parse(r.out))
    for (const char* k : {"src", "dst", "nat_src", "nat_dst"})
      if (f.at(k).get<std::string>().rfind(a, 0) == 0 || f.at(k) == ip.str()) {
        ++n;
        break;
      }
  return n;
}

struct Held {
  std::string name;
  Ipv4 ip;
  std::vector<test::Connection> conns;
};

class FlowRemoval : public ::testing::Test {
 protected:
  FlowRemoval() : sb_("10.208.0.0/24", true, true) {}

  Held add(const std::string& suffix, std::optional<Ipv4> ip = std::nullopt) {
    Held e{sb_.name() + suffix, {}, {}};
    auto rec = sb_.node().add_endpoint({.name = e.name, .ip = ip});
    e.ip = rec.ip;
    return e;
  }
  // A masqueraded connection, one from outside through a published port, and a ping.
  void hold_flows(Held& e, uint16_t published) {
    const Netns ns = Netns::open_named(e.name), out = Netns::open_named(sb_.outside());
    e.conns.push_back(test::connect_tcp("masqueraded", ns, kServer, kOut + published % 100, out, kServer,
                                        kOut + published % 100));
    e.conns.push_back(test::connect_tcp("published", out, kUplink, published, ns, e.ip, kWeb));
    ProbeResult p = probe_icmp(ns, kServer);
    ASSERT_TRUE(p.ok) << p.error;
    for (auto& c : e.conns) ASSERT_TRUE(c.echo()) << c.what;
  }

  SandboxNode sb_;
};

TEST_F(FlowRemoval, EndpointDelRemovesExactlyItsFlows) {
  EBPFNET_REQUIRE_ROOT();
  Held a = add("-a"), b = add("-b");
  ASSERT_EQ(sb_.cli({"expose", a.name, "80/tcp", "--port", std::to_string(kPublished)}).code, 0);
  ASSERT_EQ(sb_.cli({"expose", b.name, "80/tcp", "--port", std::to_string(kPublished + 1)}).code, 0);
  hold_flows(a, kPublished);
  hold_flows(b, kPublished + 1);
  ASSERT_EQ(flows_of(sb_, a.ip), 3u);
  ASSERT_EQ(flows_of(sb_, b.ip), 3u);

  test::CmdResult del = sb_.cli({"endpoint", "del", a.name});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_EQ(flows_of(sb_, a.ip), 0u) << "the removed endpoint's flows stay in conntrack";
  EXPECT_EQ(flows_of(sb_, b.ip), 3u) << "another endpoint's flows went too";
  for (auto& c : b.conns) EXPECT_TRUE(c.echo()) << b.name << " " << c.what;

  // The address goes to a new endpoint, which inherits none of the old flows.
  Held c = add("-c", a.ip);
  EXPECT_EQ(flows_of(sb_, c.ip), 0u);
}

TEST_F(FlowRemoval, UnexposeRemovesTheFlowsThroughThePort) {
  EBPFNET_REQUIRE_ROOT();
  Held a = add("-a");
  ASSERT_EQ(sb_.cli({"expose", a.name, "80/tcp", "--port", std::to_string(kPublished)}).code, 0);
  hold_flows(a, kPublished);
  ASSERT_EQ(flows_of(sb_, a.ip), 3u);
  ASSERT_EQ(sb_.cli({"unexpose", a.name, "80/tcp"}).code, 0);
  EXPECT_EQ(flows_of(sb_, a.ip), 2u) << "only the published port's flow goes";
  EXPECT_TRUE(a.conns[0].echo()) << "the masqueraded connection must keep working";
}

}  // namespace
}  // namespace ebpfnet
