// The netlink encoders, checked by parsing their output with libmnl.
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include <map>

#include "ebpfnet/netlink.hpp"

namespace ebpfnet {
namespace {

using Attrs = std::map<uint16_t, const nlattr*>;

int collect(const nlattr* a, void* data) {
  (*static_cast<Attrs*>(data))[mnl_attr_get_type(a)] = a;
  return MNL_CB_OK;
}

Attrs attrs_of(const nlmsghdr* nlh, size_t hdr) {
  Attrs a;
  EXPECT_EQ(mnl_attr_parse(nlh, hdr, collect, &a), MNL_CB_OK);
  return a;
}

Attrs nested(const nlattr* parent) {
  Attrs a;
  EXPECT_EQ(mnl_attr_parse_nested(parent, collect, &a), MNL_CB_OK);
  return a;
}

uint32_t be(const char* ip) { return Ipv4::parse(ip)->be(); }

TEST(NetlinkEncode, VethCarriesPeerNameMacAndNamespace) {
  alignas(8) char buf[8192];
  VethSpec spec{"ep-web", *parse_mac("02:00:00:00:00:01"), "eth0", *parse_mac("02:00:00:00:00:02"), 42};
  nlmsghdr* nlh = nlmsg::new_veth(buf, 7, spec);
  EXPECT_EQ(nlh->nlmsg_type, RTM_NEWLINK);
  EXPECT_EQ(nlh->nlmsg_seq, 7u);
  EXPECT_EQ(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  Attrs top = attrs_of(nlh, sizeof(ifinfomsg));
  ASSERT_TRUE(top.count(IFLA_IFNAME));
  EXPECT_STREQ(mnl_attr_get_str(top[IFLA_IFNAME]), "ep-web");
  ASSERT_EQ(mnl_attr_get_payload_len(top[IFLA_ADDRESS]), 6u);
  EXPECT_EQ(static_cast<const uint8_t*>(mnl_attr_get_payload(top[IFLA_ADDRESS]))[5], 0x01);
  Attrs info = nested(top[IFLA_LINKINFO]);
  EXPECT_STREQ(mnl_attr_get_str(info[IFLA_INFO_KIND]), "veth");
  Attrs data = nested(info[IFLA_INFO_DATA]);
  ASSERT_TRUE(data.count(VETH_INFO_PEER));
  // The peer nest starts with its own ifinfomsg, then attributes.
  const nlattr* peer = data[VETH_INFO_PEER];
  const char* start = static_cast<const char*>(mnl_attr_get_payload(peer)) + NLMSG_ALIGN(sizeof(ifinfomsg));
  const char* end = static_cast<const char*>(mnl_attr_get_payload(peer)) + mnl_attr_get_payload_len(peer);
  Attrs pa;
  for (auto* a = reinterpret_cast<const nlattr*>(start); mnl_attr_ok(a, end - reinterpret_cast<const char*>(a));
       a = mnl_attr_next(a))
    pa[mnl_attr_get_type(a)] = a;
  ASSERT_TRUE(pa.count(IFLA_IFNAME));
  EXPECT_STREQ(mnl_attr_get_str(pa[IFLA_IFNAME]), "eth0");
  ASSERT_TRUE(pa.count(IFLA_NET_NS_FD));
  EXPECT_EQ(mnl_attr_get_u32(pa[IFLA_NET_NS_FD]), 42u);
  EXPECT_EQ(static_cast<const uint8_t*>(mnl_attr_get_payload(pa[IFLA_ADDRESS]))[5], 0x02);
}

TEST(NetlinkEncode, DefaultRouteViaGateway) {
  alignas(8) char buf[8192];
  Route r{*Ipv4Cidr::parse("0.0.0.0/0"), Ipv4::parse("10.240.0.1"), 3, std::nullopt, false};
  nlmsghdr* nlh = nlmsg::route(buf, 1, r, true);
  EXPECT_EQ(nlh->nlmsg_type, RTM_NEWROUTE);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(rtm->rtm_dst_len, 0);
  EXPECT_EQ(rtm->rtm_table, RT_TABLE_MAIN);
  EXPECT_EQ(rtm->rtm_scope, RT_SCOPE_UNIVERSE);
  Attrs a = attrs_of(nlh, sizeof(rtmsg));
  EXPECT_FALSE(a.count(RTA_DST)) << "a default route has no destination attribute";
  EXPECT_EQ(mnl_attr_get_u32(a[RTA_GATEWAY]), be("10.240.0.1"));
  EXPECT_EQ(mnl_attr_get_u32(a[RTA_OIF]), 3u);
}

TEST(NetlinkEncode, HostRouteWithSourceIsLinkScope) {
  alignas(8) char buf[8192];
  Route r{*Ipv4Cidr::parse("10.240.0.7/32"), std::nullopt, 9, Ipv4::parse("10.240.0.1"), true};
  nlmsghdr* nlh = nlmsg::route(buf, 1, r, true);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(rtm->rtm_dst_len, 32);
  EXPECT_EQ(rtm->rtm_scope, RT_SCOPE_LINK);
  Attrs a = attrs_of(nlh, sizeof(rtmsg));
  EXPECT_EQ(mnl_attr_get_u32(a[RTA_DST]), be("10.240.0.7"));
  EXPECT_EQ(mnl_attr_get_u32(a[RTA_PREFSRC]), be("10.240.0.1"));
  EXPECT_FALSE(a.count(RTA_GATEWAY));
  nlmsghdr* del = nlmsg::route(buf, 2, r, false);
  EXPECT_EQ(del->nlmsg_type, RTM_DELROUTE);
  EXPECT_EQ(static_cast<rtmsg*>(mnl_nlmsg_get_payload(del))->rtm_scope, RT_SCOPE_NOWHERE);
}

TEST(NetlinkEncode, AddressAndPermanentNeighbour) {
  alignas(8) char buf[8192];
  nlmsghdr* nlh = nlmsg::address(buf, 1, {5, *Ipv4::parse("10.240.0.9"), 32}, true);
  EXPECT_EQ(nlh->nlmsg_type, RTM_NEWADDR);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(ifa->ifa_index, 5u);
  EXPECT_EQ(ifa->ifa_prefixlen, 32);
  Attrs a = attrs_of(nlh, sizeof(ifaddrmsg));
  EXPECT_EQ(mnl_attr_get_u32(a[IFA_LOCAL]), be("10.240.0.9"));

  nlh = nlmsg::neighbor(buf, 2, {5, *Ipv4::parse("10.240.0.9"), *parse_mac("02:11:22:33:44:55")}, true);
  EXPECT_EQ(nlh->nlmsg_type, RTM_NEWNEIGH);
  auto* nd = static_cast<ndmsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(nd->ndm_state, NUD_PERMANENT);
  EXPECT_EQ(nd->ndm_ifindex, 5);
  a = attrs_of(nlh, sizeof(ndmsg));
  EXPECT_EQ(mnl_attr_get_u32(a[NDA_DST]), be("10.240.0.9"));
  EXPECT_EQ(static_cast<const uint8_t*>(mnl_attr_get_payload(a[NDA_LLADDR]))[0], 0x02);
}

TEST(NetlinkEncode, LinkUpDownAndDelete) {
  alignas(8) char buf[8192];
  nlmsghdr* nlh = nlmsg::set_link_up(buf, 1, 4, true);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(ifi->ifi_index, 4);
  EXPECT_EQ(ifi->ifi_change, static_cast<unsigned>(IFF_UP));
  EXPECT_EQ(ifi->ifi_flags, static_cast<unsigned>(IFF_UP));
  nlh = nlmsg::set_link_up(buf, 1, 4, false);
  EXPECT_EQ(static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh))->ifi_flags, 0u);
  nlh = nlmsg::del_link(buf, 2, 4);
  EXPECT_EQ(nlh->nlmsg_type, RTM_DELLINK);
  EXPECT_EQ(static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh))->ifi_index, 4);
}

}  // namespace
}  // namespace ebpfnet
