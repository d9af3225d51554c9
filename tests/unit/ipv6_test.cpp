// IPv6 values, the IPv6 side of IPAM, IPv6 pools as the state accepts them,
// dual-stack pools through the state store (and files without them), and
// IPv6 addresses in the endpoint table.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "ebpfnet/endpoint_table.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/ipam.hpp"
#include "ebpfnet/ipv6.hpp"
#include "ebpfnet/state.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

Ipv6 a6(const char* s) { return Ipv6::parse(s).value(); }
Ipv6Cidr c6(const char* s) { return Ipv6Cidr::parse(s).value(); }

using test::error_code_of;

TEST(Ipv6, ParsesAndPrintsCanonically) {
  EXPECT_EQ(a6("fd00:240:0::0:2").str(), "fd00:240::2");
  EXPECT_FALSE(Ipv6::parse("fd00::240::2"));
  EXPECT_FALSE(Ipv6::parse("10.0.0.1"));
  EXPECT_FALSE(Ipv6::parse("fe80::1%eth0"));
  EXPECT_FALSE(Ipv6::parse(""));
  EXPECT_TRUE(Ipv6().is_unspecified());
  EXPECT_LT(a6("fd00::2"), a6("fd00::10"));
}

TEST(Ipv6Cidr, RefusesHostBitsAndBadLengths) {
  EXPECT_EQ(c6("fd00:240::/64").str(), "fd00:240::/64");
  EXPECT_FALSE(Ipv6Cidr::parse("fd00:240::1/64"));
  EXPECT_FALSE(Ipv6Cidr::parse("fd00:240::/129"));
  EXPECT_FALSE(Ipv6Cidr::parse("fd00:240::/064"));
  EXPECT_FALSE(Ipv6Cidr::parse("fd00:240::"));
  EXPECT_FALSE(Ipv6Cidr::parse("10.0.0.0/8"));
}

TEST(Ipv6Cidr, OffsetsAndOverlaps) {
  const Ipv6Cidr p = c6("fd00:240::/64");
  EXPECT_EQ(p.gateway().str(), "fd00:240::1");
  EXPECT_EQ(p.at(0x1234).str(), "fd00:240::1234");
  EXPECT_EQ(p.offset_of(a6("fd00:240::1234")), 0x1234u);
  EXPECT_FALSE(p.offset_of(a6("fd00:241::2")));
  EXPECT_EQ(c6("fd00::/120").max_offset(), 255u);
  EXPECT_TRUE(p.overlaps(c6("fd00:240::/96")));
  EXPECT_TRUE(c6("fd00:240::/48").overlaps(p));
  EXPECT_FALSE(c6("fd00::/48").overlaps(p));
  EXPECT_FALSE(p.overlaps(c6("fd00:241::/64")));
  EXPECT_EQ(gateway_link_local().str(), "fe80::1");
}

TEST(Ipam6, PairsWithTheIpv4OffsetWhenFree) {
  Ipam6 ipam(c6("fd00:240::/64"), {a6("fd00:240::3")});
  EXPECT_EQ(ipam.allocate(2).str(), "fd00:240::2");
  EXPECT_EQ(ipam.allocate(3).str(), "fd00:240::4") << "taken: the next free one";
  EXPECT_EQ(ipam.allocate(0).str(), "fd00:240::5") << "never the subnet-router address";
  EXPECT_EQ(ipam.allocate(1).str(), "fd00:240::6") << "never the gateway";
}

TEST(Ipam6, ReservesOnlyUsableFreeAddresses) {
  Ipam6 ipam(c6("fd00:240::/64"), {a6("fd00:240::7")});
  ipam.reserve(a6("fd00:240::9"));
  EXPECT_EQ(error_code_of([&] { ipam.reserve(a6("fd00:240::9")); }), Errc::exists);
  EXPECT_EQ(error_code_of([&] { ipam.reserve(a6("fd00:240::7")); }), Errc::exists);
  EXPECT_EQ(error_code_of([&] { ipam.reserve(a6("fd00:240::1")); }), Errc::usage);
  EXPECT_EQ(error_code_of([&] { ipam.reserve(a6("fd00:999::2")); }), Errc::usage);
}

TEST(Ipam6, ExhaustsASmallPool) {
  Ipam6 ipam(c6("fd00::/126"), {});
  EXPECT_EQ(ipam.allocate(2).str(), "fd00::2");
  EXPECT_EQ(ipam.allocate(2).str(), "fd00::3");
  EXPECT_EQ(error_code_of([&] { ipam.allocate(2); }), Errc::exhausted);
}

TEST(Ipv6Pool, RefusesWhatCannotHoldEndpoints) {
  EXPECT_EQ(ipv6_pool_problem(c6("fd00:240::/64")), "");
  for (const char* bad : {"fd00::/127", "fd00::1/128", "fd00::/47", "fe80::/64", "ff02::/64", "::/96",
                          "::ffff:0:0/96"}) {
    auto c = Ipv6Cidr::parse(bad);
    ASSERT_TRUE(c) << bad;
    EXPECT_NE(ipv6_pool_problem(*c), "") << bad;
  }
}

const Ipv4Cidr kPool = *Ipv4Cidr::parse("10.240.0.0/24");
const Ipv6Cidr kPool6 = c6("fd00:240::/64");

EndpointRecord dual_stack_endpoint(const std::string& name, int n) {
  EndpointRecord e;
  e.name = name;
  e.netns = name;
  e.netns_path = "/run/netns/" + name;
  e.netns_owned = true;
  e.ip = Ipv4(kPool.network.host() + 1 + static_cast<uint32_t>(n));
  e.ip6 = a6(("fd00:240::" + std::to_string(n + 1)).c_str());
  e.host_ifname = "ep-" + name;
  e.host_ifindex = 6 + n;
  return e;
}

TEST(StateStore, DualStackPoolRoundTripsAndIpv4FilesStayAsTheyWere) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  NodeState s;
  s.name = "lab";
  s.cidr = kPool;
  s.cidr6 = kPool6;
  store.save(s);
  NodeState back = store.load();
  ASSERT_TRUE(back.cidr6);
  EXPECT_EQ(back.cidr6->str(), "fd00:240::/64");
  EXPECT_EQ(back.gateway6()->str(), "fd00:240::1");

  // An IPv4 node: no IPv6 field is written, and none is read back.
  s.cidr6.reset();
  store.save(s);
  std::ifstream in(dir.path() / "lab" / "state.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("cidr6"), std::string::npos);
  EXPECT_FALSE(store.load().cidr6);
}

TEST(EndpointTable, KeepsIpv6AddressesUniqueAndReadsThemBack) {
  test::TempStateDir dir;
  EndpointTable t(std::make_shared<NodeDb>(dir.path() / "services.db", NodeDb::Mode::write), kPool, kPool6);
  t.put(dual_stack_endpoint("web", 1));
  EndpointRecord v4 = dual_stack_endpoint("db", 2);
  v4.ip6.reset();
  t.put(v4);
  ASSERT_TRUE(t.get("web")->ip6);
  EXPECT_EQ(t.get("web")->ip6->str(), "fd00:240::2");
  EXPECT_FALSE(t.get("db")->ip6) << "an IPv4-only endpoint stays so";
  EXPECT_EQ(t.addresses6(), std::set<Ipv6>{a6("fd00:240::2")});
  EndpointRecord twin = dual_stack_endpoint("twin", 3);
  twin.ip6 = a6("fd00:240::2");
  EXPECT_EQ(error_code_of([&] { t.put(twin); }), Errc::exists) << "another endpoint's IPv6 address";
}

TEST(StateValidate, RefusesIpv6OutsideItsPool) {
  EndpointRecord e = dual_stack_endpoint("web", 1);
  EXPECT_EQ(error_code_of([&] { validate_endpoint(e, kPool, kPool6, ""); }), Errc{0});
  e.ip6 = a6("fd00:241::2");
  EXPECT_EQ(error_code_of([&] { validate_endpoint(e, kPool, kPool6, ""); }), Errc::failed);
  e.ip6 = a6("fd00:240::1");
  EXPECT_EQ(error_code_of([&] { validate_endpoint(e, kPool, kPool6, ""); }), Errc::failed) << "the gateway";
  e = dual_stack_endpoint("web", 1);
  EXPECT_EQ(error_code_of([&] { validate_endpoint(e, kPool, std::nullopt, ""); }), Errc::failed)
      << "an IPv6 address without a pool";
  NodeState s;
  s.name = "lab";
  s.cidr = kPool;
  s.cidr6 = c6("fd00::/127");
  EXPECT_EQ(error_code_of([&] { validate_state(s, "lab"); }), Errc::failed);
}

}  // namespace
}  // namespace ebpfnet
