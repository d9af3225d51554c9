// Two sandbox nodes that route each other's pools through a shared router
// (the lan1 - router - lan2 picture): endpoints talk with their own
// addresses, while traffic to the internet is still masqueraded.
#include <gtest/gtest.h>

#include "ebpfnet/error.hpp"
#include "ebpfnet/probe.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using test::SandboxNode;
using test::unique;

constexpr uint16_t kPort = 7301;

class Routed : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    lan1_ = std::make_unique<SandboxNode>("10.240.1.0/24", true, true);
    lan2_ = std::make_unique<SandboxNode>("10.240.2.0/24", true, true, lan1_->outside());
    a1_ = lan1_->node().add_endpoint({unique("ra"), std::nullopt, std::nullopt, "eth0"});
    a2_ = lan2_->node().add_endpoint({unique("rb"), std::nullopt, std::nullopt, "eth0"});
  }
  void TearDown() override {
    lan2_.reset();  // it lives on lan1's outside namespace
    lan1_.reset();
  }
  void connect() {
    lan1_->node().route_add({*Ipv4Cidr::parse("10.240.2.0/24"), *Ipv4::parse("198.18.0.1")});
    lan2_->node().route_add({*Ipv4Cidr::parse("10.240.1.0/24"), *Ipv4::parse("198.18.1.1")});
  }
  Netns ns(const EndpointRecord& e) { return Netns::open_path(e.netns_path); }

  std::unique_ptr<SandboxNode> lan1_, lan2_;
  EndpointRecord a1_, a2_;
};

TEST_F(Routed, EndpointsOfTwoNodesTalkWithTheirOwnAddresses) {
  connect();
  ProbeResult there = probe_tcp(ns(a1_), ns(a2_), a2_.ip, kPort);
  ASSERT_TRUE(there.ok) << there.error;
  EXPECT_EQ(there.peer_saw, a1_.ip) << "routed traffic must not be masqueraded";
  ProbeResult back = probe_udp(ns(a2_), ns(a1_), a1_.ip, kPort);
  ASSERT_TRUE(back.ok) << back.error;
  EXPECT_EQ(back.peer_saw, a2_.ip);
  EXPECT_TRUE(probe_icmp(ns(a1_), a2_.ip).ok);
  // The internet still sees only the uplink address.
  Netns outside = Netns::open_named(lan1_->outside());
  ProbeResult out = probe_tcp(ns(a2_), outside, *Ipv4::parse(kSandboxServerIp), kPort);
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.peer_saw.str(), "198.18.1.2");
  EXPECT_EQ(lan1_->node().routes().size(), 1u);
}

TEST_F(Routed, WithoutRoutesThePoolsDoNotReachEachOther) {
  EXPECT_FALSE(probe_tcp(ns(a1_), ns(a2_), a2_.ip, kPort, ProbeTimeout(500)).ok);
  connect();
  EXPECT_TRUE(probe_tcp(ns(a1_), ns(a2_), a2_.ip, kPort).ok);
  lan1_->node().route_del(*Ipv4Cidr::parse("10.240.2.0/24"));
  EXPECT_TRUE(lan1_->node().routes().empty());
  EXPECT_FALSE(probe_tcp(ns(a1_), ns(a2_), a2_.ip, kPort, ProbeTimeout(500)).ok);
}

TEST_F(Routed, BadRoutesAreRefusedAndChangeNothing) {
  connect();
  auto code = test::error_code_of;
  Node& n = lan1_->node();
  EXPECT_EQ(code([&] { n.route_add({*Ipv4Cidr::parse("10.240.0.0/16"), *Ipv4::parse("198.18.0.1")}); }),
            Errc::usage);
  EXPECT_EQ(code([&] { n.route_add({*Ipv4Cidr::parse("10.240.2.0/24"), *Ipv4::parse("198.18.0.1")}); }),
            Errc::exists);
  EXPECT_EQ(code([&] { n.route_del(*Ipv4Cidr::parse("10.99.0.0/16")); }), Errc::not_found);
  EXPECT_EQ(n.routes().size(), 1u);
  auto cli = lan1_->cli({"route", "add", "10.240.3.0/24", "through", "198.18.0.1"});
  EXPECT_EQ(cli.code, static_cast<int>(Errc::usage)) << cli.err;
  EXPECT_EQ(n.routes().size(), 1u);
}

}  // namespace
}  // namespace ebpfnet

namespace ebpfnet {
namespace {

// Nodes sharing an outside route to each other's pools: a pool overlapping
// another node's there is refused, and nothing of the new node is made.
TEST(RoutedPools, OverlappingPoolOnTheSameOutsideIsRefused) {
  EBPFNET_REQUIRE_ROOT();
  test::SandboxNode lan1("10.203.80.0/24", true, true);
  const std::string name = test::unique("ov");
  for (const char* pool : {"10.203.80.0/25", "10.203.0.0/16"}) {
    try {
      Node::create(lan1.env(), name, *Ipv4Cidr::parse(pool), {}, true, lan1.outside());
      Node::destroy(lan1.env(), name);
      ADD_FAILURE() << pool << " overlapping " << lan1.name() << "'s 10.203.80.0/24 was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::exists) << e.what();
      EXPECT_NE(std::string(e.what()).find(lan1.name()), std::string::npos) << e.what();
    }
    EXPECT_FALSE(netns::exists(name)) << pool;
    EXPECT_FALSE(std::filesystem::exists(lan1.env().state_root / name)) << pool;
  }
  // A pool beside it joins.
  Node::create(lan1.env(), name, *Ipv4Cidr::parse("10.203.81.0/24"), {}, true, lan1.outside());
  Node::destroy(lan1.env(), name);
}

}  // namespace
}  // namespace ebpfnet
