// Crafted frames for BPF program tests: a fluent builder, an independent
// checksum, a hex diff for mismatches, and a runner over BPF_PROG_TEST_RUN.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/ipv4.hpp"

namespace ebpfnet::test {

using Bytes = std::vector<uint8_t>;
using Ipv6Addr = std::array<uint8_t, 16>;

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr uint16_t kEthPArp = 0x0806;
inline constexpr uint16_t kEthPIpv4 = 0x0800;
inline constexpr uint16_t kEthPIpv6 = 0x86dd;
inline constexpr uint16_t kArpRequest = 1;
inline constexpr uint16_t kArpReply = 2;

// RFC 1071 Internet checksum of data, as the value to store big-endian.
// Over a header that already holds its checksum the result is 0 when valid.
// Written from the RFC, independently of bpf/lib/csum.h.
uint16_t internet_checksum(std::span<const uint8_t> data);

// Ethernet/IPv4 ARP. The header fields default to the only values the
// datapath accepts; tests change them to build malformed ARP.
struct Arp {
  uint16_t op = kArpRequest;
  Mac sha{};
  Ipv4 spa;
  Mac tha{};
  Ipv4 tpa;
  uint16_t hrd = 1;  // Ethernet
  uint16_t pro = kEthPIpv4;
  uint8_t hln = 6;
  uint8_t pln = 4;
};

struct Ip4 {
  Ipv4 src, dst;
  uint8_t ttl = 64;
  uint16_t id = 0;
  Bytes options;               // padded with end-of-options to 4 bytes
  std::optional<uint8_t> ihl;  // written instead of the real header length
  uint8_t version = 4;
  uint16_t frag = 0x4000;  // flags and fragment offset: don't fragment
  // Written instead of the protocol the L4 layer implies.
  std::optional<uint8_t> protocol;
};

struct Ip6 {
  Ipv6Addr src{}, dst{};
  uint8_t hop_limit = 64;
};

// Builds one Ethernet frame, layer by layer:
//   Frame().eth(src, dst).ipv4({.src = a, .dst = b}).udp(1, 2).payload("hi").build()
// Lengths, the ethertype, the IP protocol and all checksums (IPv4 header,
// UDP/TCP with pseudo-header, ICMP) are filled in by build().
class Frame {
 public:
  Frame& eth(const Mac& src, const Mac& dst);
  // Overrides the ethertype the L3 layer implies (or sets one when there is none).
  Frame& ethertype(uint16_t type);
  Frame& arp(const Arp& a);
  Frame& ipv4(const Ip4& ip);
  Frame& ipv6(const Ip6& ip);
  Frame& udp(uint16_t sport, uint16_t dport);
  // UDP with checksum 0: "no checksum", which IPv4 allows.
  Frame& udp_without_checksum(uint16_t sport, uint16_t dport);
  Frame& tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags);
  Frame& icmp_echo(uint16_t id, uint16_t seq);
  Frame& icmp_echo_reply(uint16_t id, uint16_t seq);
  Frame& payload(std::string_view text);
  Frame& payload(const Bytes& bytes);
  // Cuts the finished frame to n bytes (after checksums): a truncated frame.
  Frame& truncate(size_t n);

  Bytes build() const;

 private:
  enum class L3 { none, arp, ipv4, ipv6 };
  enum class L4 { none, udp, tcp, icmp_echo };

  Bytes l4_segment(std::span<const uint8_t> pseudo_src, std::span<const uint8_t> pseudo_dst) const;
  uint8_t ip_protocol() const;

  Mac src_{}, dst_{};
  std::optional<uint16_t> ethertype_;
  L3 l3_ = L3::none;
  Arp arp_;
  Ip4 ip4_;
  Ip6 ip6_;
  L4 l4_ = L4::none;
  uint16_t sport_ = 0, dport_ = 0;  // ICMP echo: id and sequence
  bool udp_checksum_ = true;
  uint8_t icmp_type_ = 8;  // echo request
  uint32_t tcp_seq_ = 0;
  uint8_t tcp_flags_ = 0;
  Bytes payload_;
  std::optional<size_t> truncate_;
};

// A hex dump of both frames, 16 bytes a line; lines that differ are shown
// twice (-expected, +actual) with ^^ under each differing byte.
std::string hex_diff(std::span<const uint8_t> expected, std::span<const uint8_t> actual);

// Equal frames, or a failure that carries the hex diff.
::testing::AssertionResult frames_equal(const Bytes& expected, const Bytes& actual);

// The frame is IPv4 and its header checksum is valid by internet_checksum().
::testing::AssertionResult ipv4_checksum_valid(const Bytes& frame);

// The frame is IPv4 carrying TCP, UDP or ICMP whose checksum is valid by
// internet_checksum() over the whole segment (the IPv4 total length), with the
// pseudo-header for TCP and UDP. A UDP checksum of 0 ("none") passes.
::testing::AssertionResult l4_checksum_valid(const Bytes& frame);

struct TcRun {
  int retval = -1;  // the TC verdict
  Bytes out;        // the frame as the program left it
};

// "TC_ACT_OK", "TC_ACT_SHOT", "TC_ACT_REDIRECT" or "verdict N", for readable failures.
std::string verdict_name(int verdict);

// Marks the frame as a GSO packet, as a veth hands over what a TCP stack
// sent with segmentation offload: segs segments of size payload bytes each.
struct Gso {
  uint16_t size = 0;
  uint16_t segs = 0;
};

// Runs a TC program once on frame as if it arrived on ingress_ifindex
// (no real interface: ctx ifindex stays 0). Throws std::system_error with
// the kernel's errno when it refuses the run.
TcRun run_tc(int prog_fd, const Bytes& frame, uint32_t ingress_ifindex, const Gso& gso = {});

}  // namespace ebpfnet::test
