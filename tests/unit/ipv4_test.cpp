#include <gtest/gtest.h>

#include "ebpfnet/ipv4.hpp"

namespace ebpfnet {
namespace {

TEST(Ipv4, ParsesDottedQuadOnly) {
  EXPECT_EQ(Ipv4::parse("10.240.0.5")->host(), 0x0af00005u);
  EXPECT_EQ(Ipv4::parse("10.240.0.5")->str(), "10.240.0.5");
  for (const char* bad : {"", "10.240.0", "10.240.0.256", "10.240.0.5 ", "a.b.c.d", "010.1.1.1x",
                          "1.2.3.4.5", "::1"})
    EXPECT_FALSE(Ipv4::parse(bad)) << bad;
  EXPECT_EQ(Ipv4::parse("0.0.0.0")->host(), 0u);
  EXPECT_EQ(Ipv4::parse("255.255.255.255")->host(), 0xffffffffu);
}

// inet_aton would read "010" as octal 8: such forms are refused, not guessed.
TEST(Ipv4, RefusesLeadingZerosSignsSpacesAndEmptyParts) {
  for (const char* bad : {"010.1.1.1", "10.01.1.1", "10.1.1.00", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4.",
                          "+1.2.3.4", "1.-2.3.4", " 1.2.3.4", "1.2. 3.4", "0x1.2.3.4", "1.2.3.4/24",
                          "1.2.3.0004", "4294967296.1.1.1", "1.2.3.4\n"})
    EXPECT_FALSE(Ipv4::parse(bad)) << bad;
  EXPECT_FALSE(Ipv4::parse(std::string_view("1.2.3.4\0", 8)));
}

TEST(Ipv4, NetworkOrderRoundTrips) {
  Ipv4 a = *Ipv4::parse("192.168.1.2");
  uint32_t be = a.be();
  const auto* b = reinterpret_cast<const uint8_t*>(&be);
  EXPECT_EQ(b[0], 192);
  EXPECT_EQ(b[3], 2);
  EXPECT_EQ(Ipv4::from_be(be), a);
}

TEST(Ipv4Cidr, ParsesAndRejects) {
  auto c = Ipv4Cidr::parse("10.240.0.0/24");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->prefix, 24);
  EXPECT_EQ(c->first_host().str(), "10.240.0.1");
  EXPECT_EQ(c->last_host().str(), "10.240.0.254");
  EXPECT_TRUE(c->contains(*Ipv4::parse("10.240.0.77")));
  EXPECT_FALSE(c->contains(*Ipv4::parse("10.240.1.1")));
  EXPECT_EQ(c->str(), "10.240.0.0/24");
  for (const char* bad : {"10.240.0.1/24", "10.240.0.0", "10.240.0.0/33", "10.240.0.0/-1",
                          "10.240.0.0/", "10.240.0.0/2x", "/24"})
    EXPECT_FALSE(Ipv4Cidr::parse(bad)) << bad;
  EXPECT_EQ(Ipv4Cidr::parse("0.0.0.0/0")->mask(), 0u);
}

TEST(Ipv4Cidr, PrefixLengthIsPlainDecimal) {
  for (const char* bad : {"10.203.70.0/024", "10.0.0.0/08", "10.0.0.0/00", "10.0.0.0/+8", "10.0.0.0/ 8",
                          "10.0.0.0/8 ", "10.0.0.0//8", "10.0.0.0/8/8", "10.0.0.0/0x8", "10.0.0.0/4294967304",
                          "010.0.0.0/8"})
    EXPECT_FALSE(Ipv4Cidr::parse(bad)) << bad;
  EXPECT_EQ(Ipv4Cidr::parse("10.203.70.0/24")->prefix, 24);
  EXPECT_EQ(Ipv4Cidr::parse("10.0.0.0/8")->prefix, 8);
  EXPECT_EQ(Ipv4Cidr::parse("1.2.3.4/32")->prefix, 32);
  EXPECT_EQ(Ipv4Cidr::parse("0.0.0.0/0")->prefix, 0);
}

TEST(Mac, ParsesFormatsAndRandomIsLocalUnicast) {
  auto m = parse_mac("02:ab:cd:00:11:ff");
  ASSERT_TRUE(m);
  EXPECT_EQ(mac_str(*m), "02:ab:cd:00:11:ff");
  EXPECT_FALSE(parse_mac("02:ab:cd:00:11"));
  EXPECT_FALSE(parse_mac("02-ab-cd-00-11-ff"));
  EXPECT_FALSE(parse_mac("02:ab:cd:00:11:fg"));
  for (int i = 0; i < 32; ++i) {
    Mac r = random_mac();
    EXPECT_EQ(r[0] & 0x01, 0) << "multicast bit set";
    EXPECT_EQ(r[0] & 0x02, 2) << "not locally administered";
  }
  EXPECT_NE(random_mac(), random_mac());
}

}  // namespace
}  // namespace ebpfnet
