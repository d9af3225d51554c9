#include <gtest/gtest.h>

#include "ebpfnet/error.hpp"
#include "ebpfnet/ipam.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Ipv4Cidr pool(const char* s) { return *Ipv4Cidr::parse(s); }

using test::error_code_of;

TEST(Ipam, AllocatesAfterTheGatewayInOrder) {
  Ipam ipam(pool("10.240.0.0/24"), {});
  EXPECT_EQ(ipam.gateway(), ip("10.240.0.1"));
  EXPECT_EQ(ipam.allocate(), ip("10.240.0.2"));
  EXPECT_EQ(ipam.allocate(), ip("10.240.0.3"));
}

TEST(Ipam, SkipsUsedAndDoesNotReuseAReleasedAddressAtOnce) {
  Ipam ipam(pool("10.240.0.0/24"), {ip("10.240.0.2"), ip("10.240.0.3")});
  Ipv4 a = ipam.allocate();
  EXPECT_EQ(a, ip("10.240.0.4"));
  ipam.release(ip("10.240.0.2"));
  EXPECT_EQ(ipam.allocate(), ip("10.240.0.5"));
}

TEST(Ipam, WrapsAroundToReleasedAddresses) {
  Ipam ipam(pool("10.0.0.0/29"), {});  // usable after the gateway: .2 - .6
  for (int i = 2; i <= 6; ++i) EXPECT_EQ(ipam.allocate().str(), "10.0.0." + std::to_string(i));
  EXPECT_EQ(error_code_of([&] { ipam.allocate(); }), Errc::exhausted);
  ipam.release(ip("10.0.0.3"));
  EXPECT_EQ(ipam.allocate(), ip("10.0.0.3"));
}

TEST(Ipam, ExhaustedPoolSaysSo) {
  Ipam ipam(pool("10.0.0.0/30"), {});  // .1 gateway, .2 the only one
  EXPECT_EQ(ipam.allocate(), ip("10.0.0.2"));
  EXPECT_EQ(error_code_of([&] { ipam.allocate(); }), Errc::exhausted);
}

TEST(Ipam, ReserveChecksPoolReservedAndTaken) {
  Ipam ipam(pool("10.240.0.0/24"), {ip("10.240.0.9")});
  EXPECT_EQ(error_code_of([&] { ipam.reserve(ip("10.241.0.5")); }), Errc::usage);
  EXPECT_EQ(error_code_of([&] { ipam.reserve(ip("10.240.0.0")); }), Errc::usage);
  EXPECT_EQ(error_code_of([&] { ipam.reserve(ip("10.240.0.1")); }), Errc::usage);
  EXPECT_EQ(error_code_of([&] { ipam.reserve(ip("10.240.0.255")); }), Errc::usage);
  EXPECT_EQ(error_code_of([&] { ipam.reserve(ip("10.240.0.9")); }), Errc::exists);
  ipam.reserve(ip("10.240.0.50"));
  EXPECT_TRUE(ipam.used().count(ip("10.240.0.50")));
}

TEST(Ipam, ResumesAfterThePersistedLastAllocation) {
  Ipam ipam(pool("10.240.0.0/24"), {ip("10.240.0.2")}, ip("10.240.0.7"));
  EXPECT_EQ(ipam.allocate(), ip("10.240.0.8"));
  EXPECT_EQ(ipam.last(), ip("10.240.0.8"));
}

}  // namespace
}  // namespace ebpfnet
