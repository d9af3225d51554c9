// The uplink prefilter (XDP) on crafted frames: denied prefixes and
// addresses dropped and counted on the entry that matched, everything else
// passed untouched, the longest prefix deciding, and a removed entry
// letting its sources through again. Entries are written by the same
// DatapathMaps calls `prefilter add` uses.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <system_error>

#include "datapath_fixture.hpp"
#include "footprint.hpp"

namespace ebpfnet::test {
namespace {

struct XdpRun {
  int retval = -1;
  Bytes out;
};

std::string xdp_verdict(int v) {
  switch (v) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    default: return "verdict " + std::to_string(v);
  }
}

XdpRun run_xdp(int prog_fd, const Bytes& frame) {
  XdpRun r;
  r.out.resize(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(r.out.size()), .repeat = 1);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    throw std::system_error(errno, std::generic_category(), "BPF_PROG_TEST_RUN (xdp)");
  r.retval = static_cast<int>(opts.retval);
  r.out.resize(opts.data_size_out);
  return r;
}

// A UDP datagram from src arriving at the uplink from its router.
Bytes from_outside(Ipv4 src, L4 l4 = L4::udp) {
  Packet p{.l4 = l4, .smac = kRouterMac, .dmac = kUplinkMac, .src = src, .dst = kUplinkIp,
           .sport = 5353, .dport = 8080, .tcp_flags = kSyn};
  return build(p);
}

class PrefilterTest : public DatapathTest {
 protected:
  int xdp() const { return dp_->uplink_prefilter_fd(); }

  // Runs the frame and checks the verdict; on a pass the frame is untouched.
  void expect(const Bytes& frame, int verdict) {
    const XdpRun r = run_xdp(xdp(), frame);
    EXPECT_EQ(xdp_verdict(r.retval), xdp_verdict(verdict)) << hex_diff(frame, r.out);
    if (verdict == XDP_PASS) EXPECT_TRUE(frames_equal(frame, r.out));
  }

  PrefilterCount count(const char* entry) const { return dp_->maps().prefilter_count(parse_prefilter_entry(entry)); }
  void deny(const char* entry) { dp_->maps().put_prefilter(parse_prefilter_entry(entry)); }
};

TEST_F(PrefilterTest, DeniedPrefixIsDroppedAndCounted) {
  deny("203.0.113.0/24");
  const Bytes f = from_outside(kClient);  // 203.0.113.20
  expect(f, XDP_DROP);
  expect(from_outside(kClient, L4::tcp), XDP_DROP);
  const PrefilterCount c = count("203.0.113.0/24");
  EXPECT_EQ(c.packets, 2u);
  EXPECT_EQ(c.bytes, f.size() + from_outside(kClient, L4::tcp).size());
}

TEST_F(PrefilterTest, DeniedAddressIsDroppedAndCountedOnItsSlash32) {
  deny("198.51.100.7");
  expect(from_outside(addr("198.51.100.7"), L4::icmp), XDP_DROP);
  EXPECT_EQ(count("198.51.100.7").packets, 1u);
  // Its neighbours are not denied.
  expect(from_outside(addr("198.51.100.8")), XDP_PASS);
  expect(from_outside(addr("198.51.100.6")), XDP_PASS);
  EXPECT_EQ(count("198.51.100.7").packets, 1u);
}

TEST_F(PrefilterTest, AllowedSourcesPassUntouchedAndCountNothing) {
  deny("203.0.113.0/24");
  deny("198.51.100.7");
  expect(from_outside(addr("192.0.2.9")), XDP_PASS);
  expect(from_outside(kRouterIp), XDP_PASS);
  expect(from_outside(addr("203.0.112.255")), XDP_PASS);  // just below the prefix
  expect(from_outside(addr("203.0.114.0")), XDP_PASS);    // just above it
  EXPECT_EQ(count("203.0.113.0/24").packets, 0u);
  EXPECT_EQ(count("198.51.100.7").packets, 0u);
  // A denied *destination* is no reason to drop: the prefilter judges sources.
  Packet to_denied{.l4 = L4::udp, .smac = kRouterMac, .dmac = kUplinkMac, .src = addr("192.0.2.9"),
                   .dst = kClient, .sport = 1, .dport = 2};
  expect(build(to_denied), XDP_PASS);
}

// Only IPv4 is judged: ARP (its sender in a denied prefix), IPv6, frames too
// short for their headers and IPv4 headers that are not valid pass, for the
// stack to judge as it would without the prefilter.
TEST_F(PrefilterTest, NonIpv4AndTruncatedFramesPass) {
  deny("203.0.113.0/24");
  expect(Frame()
             .eth(kRouterMac, kUplinkMac)
             .arp({.op = kArpRequest, .sha = kRouterMac, .spa = kClient, .tpa = kUplinkIp})
             .build(),
         XDP_PASS);
  expect(Frame().eth(kRouterMac, kUplinkMac).ipv6({}).udp(1, 2).payload("x").build(), XDP_PASS);
  const Bytes ip = from_outside(kClient);
  // Ethernet header only, and the IPv4 header cut short.
  expect(Bytes(ip.begin(), ip.begin() + kEthHeaderLen), XDP_PASS);
  expect(Bytes(ip.begin(), ip.begin() + kEthHeaderLen + 19), XDP_PASS);
  // An IPv4 header claiming 16 bytes (ihl 4), and one claiming version 6.
  expect(Frame().eth(kRouterMac, kUplinkMac).ipv4({.src = kClient, .dst = kUplinkIp, .ihl = 4}).udp(1, 2).build(),
         XDP_PASS);
  expect(Frame().eth(kRouterMac, kUplinkMac).ipv4({.src = kClient, .dst = kUplinkIp, .version = 6}).udp(1, 2).build(),
         XDP_PASS);
  EXPECT_EQ(count("203.0.113.0/24").packets, 0u);
  // The whole header is enough: a fragment with no L4 header is judged by its source.
  expect(Bytes(ip.begin(), ip.begin() + kEthHeaderLen + 20), XDP_DROP);
  EXPECT_EQ(count("203.0.113.0/24").packets, 1u);
}

// The controller refuses overlapping entries, but the program must still
// name the longest match, and an exact address before any prefix.
TEST_F(PrefilterTest, LongestPrefixIsTheEntryThatCounts) {
  deny("10.0.0.0/8");
  deny("10.1.0.0/16");
  deny("10.1.2.3");
  expect(from_outside(addr("10.1.2.3")), XDP_DROP);
  expect(from_outside(addr("10.1.2.4")), XDP_DROP);
  expect(from_outside(addr("10.1.9.9")), XDP_DROP);
  expect(from_outside(addr("10.2.0.1")), XDP_DROP);
  EXPECT_EQ(count("10.1.2.3").packets, 1u);
  EXPECT_EQ(count("10.1.0.0/16").packets, 2u);
  EXPECT_EQ(count("10.0.0.0/8").packets, 1u);
  // A /0 entry holds every source, and counts on itself.
  deny("0.0.0.0/0");
  expect(from_outside(addr("192.0.2.1")), XDP_DROP);
  EXPECT_EQ(count("0.0.0.0/0").packets, 1u);
}

TEST_F(PrefilterTest, RemovalRestoresAndDropsTheCounters) {
  deny("203.0.113.0/24");
  deny("198.51.100.7");
  expect(from_outside(kClient), XDP_DROP);
  expect(from_outside(addr("198.51.100.7")), XDP_DROP);
  dp_->maps().delete_prefilter(parse_prefilter_entry("203.0.113.0/24"));
  dp_->maps().delete_prefilter(parse_prefilter_entry("198.51.100.7"));
  expect(from_outside(kClient), XDP_PASS);
  expect(from_outside(addr("198.51.100.7")), XDP_PASS);
  EXPECT_EQ(count("203.0.113.0/24").packets, 0u);
  EXPECT_EQ(map_entries(dp_->maps().fd("prefilter_stats")), 0u);
  EXPECT_EQ(map_entries(dp_->maps().fd("prefilter_addr")), 0u);
}

// put_prefilter on an entry that has counted keeps its counts (attach and
// recovery write every entry of the state again).
TEST_F(PrefilterTest, WritingAnEntryAgainKeepsItsCounts) {
  deny("203.0.113.0/24");
  expect(from_outside(kClient), XDP_DROP);
  deny("203.0.113.0/24");
  EXPECT_EQ(count("203.0.113.0/24").packets, 1u);
}

// The XDP program and the tc programs share one set of maps.
TEST_F(PrefilterTest, SharesTheNodesMaps) {
  bpf_prog_info info{};
  __u32 len = sizeof(info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(xdp(), &info, &len), 0);
  EXPECT_EQ(info.type, BPF_PROG_TYPE_XDP);
  std::vector<__u32> ids(info.nr_map_ids);
  bpf_prog_info with_maps{};
  with_maps.nr_map_ids = static_cast<__u32>(ids.size());
  with_maps.map_ids = reinterpret_cast<__u64>(ids.data());
  len = sizeof(with_maps);
  ASSERT_EQ(bpf_obj_get_info_by_fd(xdp(), &with_maps, &len), 0);
  bpf_map_info cidr_info{};
  __u32 clen = sizeof(cidr_info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(dp_->maps().fd("prefilter_cidr"), &cidr_info, &clen), 0);
  EXPECT_NE(std::find(ids.begin(), ids.end(), cidr_info.id), ids.end());
}

}  // namespace
}  // namespace ebpfnet::test
