#include "packet.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace ebpfnet::test {
namespace {

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoNone = 59;  // IPv6 "No Next Header"; also marks a bare IPv4 payload
constexpr size_t kIpv4HeaderLen = 20;
// Room past the input in data_out, so a program that grows the frame is
// reported as such instead of failing the run with ENOSPC.
constexpr size_t kOutSlack = 256;

void put8(Bytes& b, uint8_t v) { b.push_back(v); }

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}

void put(Bytes& b, std::span<const uint8_t> s) { b.insert(b.end(), s.begin(), s.end()); }

void set16(Bytes& b, size_t at, uint16_t v) {
  b.at(at) = static_cast<uint8_t>(v >> 8);
  b.at(at + 1) = static_cast<uint8_t>(v);
}

std::array<uint8_t, 4> octets(Ipv4 a) {
  uint32_t h = a.host();
  return {static_cast<uint8_t>(h >> 24), static_cast<uint8_t>(h >> 16),
          static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h)};
}

}  // namespace

uint16_t internet_checksum(std::span<const uint8_t> data) {
  uint32_t sum = 0;
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  // An odd last byte is the high half of a word padded with zero.
  if (i < data.size()) sum += static_cast<uint32_t>(data[i] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Frame& Frame::eth(const Mac& src, const Mac& dst) {
  src_ = src;
  dst_ = dst;
  return *this;
}

Frame& Frame::ethertype(uint16_t type) {
  ethertype_ = type;
  return *this;
}

Frame& Frame::arp(const Arp& a) {
  l3_ = L3::arp;
  arp_ = a;
  return *this;
}

Frame& Frame::ipv4(const Ip4& ip) {
  l3_ = L3::ipv4;
  ip4_ = ip;
  return *this;
}

Frame& Frame::ipv6(const Ip6& ip) {
  l3_ = L3::ipv6;
  ip6_ = ip;
  return *this;
}

Frame& Frame::udp(uint16_t sport, uint16_t dport) {
  l4_ = L4::udp;
  sport_ = sport;
  dport_ = dport;
  udp_checksum_ = true;
  return *this;
}

Frame& Frame::udp_without_checksum(uint16_t sport, uint16_t dport) {
  udp(sport, dport);
  udp_checksum_ = false;
  return *this;
}

Frame& Frame::tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags) {
  l4_ = L4::tcp;
  sport_ = sport;
  dport_ = dport;
  tcp_seq_ = seq;
  tcp_flags_ = flags;
  return *this;
}

Frame& Frame::icmp_echo(uint16_t id, uint16_t seq) {
  l4_ = L4::icmp_echo;
  sport_ = id;
  dport_ = seq;
  icmp_type_ = 8;
  return *this;
}

Frame& Frame::icmp_echo_reply(uint16_t id, uint16_t seq) {
  icmp_echo(id, seq);
  icmp_type_ = 0;
  return *this;
}

Frame& Frame::payload(std::string_view text) {
  payload_.assign(text.begin(), text.end());
  return *this;
}

Frame& Frame::payload(const Bytes& bytes) {
  payload_ = bytes;
  return *this;
}

Frame& Frame::truncate(size_t n) {
  truncate_ = n;
  return *this;
}

uint8_t Frame::ip_protocol() const {
  switch (l4_) {
    case L4::udp: return kProtoUdp;
    case L4::tcp: return kProtoTcp;
    case L4::icmp_echo: return kProtoIcmp;
    case L4::none: return kProtoNone;
  }
  return kProtoNone;
}

Bytes Frame::l4_segment(std::span<const uint8_t> pseudo_src,
                        std::span<const uint8_t> pseudo_dst) const {
  Bytes s;
  size_t check_at = 0;
  switch (l4_) {
    case L4::none: return payload_;
    case L4::icmp_echo:
      if (l3_ != L3::ipv4) throw std::logic_error("Frame: ICMP echo is built for IPv4 only");
      put8(s, icmp_type_);
      put8(s, 0);
      put16(s, 0);
      put16(s, sport_);
      put16(s, dport_);
      put(s, payload_);
      // ICMPv4 has no pseudo-header.
      set16(s, 2, internet_checksum(s));
      return s;
    case L4::udp:
      put16(s, sport_);
      put16(s, dport_);
      put16(s, static_cast<uint16_t>(8 + payload_.size()));
      put16(s, 0);
      check_at = 6;
      break;
    case L4::tcp:
      put16(s, sport_);
      put16(s, dport_);
      put32(s, tcp_seq_);
      put32(s, 0);      // ack
      put8(s, 5 << 4);  // data offset: no options
      put8(s, tcp_flags_);
      put16(s, 65535);  // window
      put16(s, 0);      // checksum
      put16(s, 0);      // urgent pointer
      check_at = 16;
      break;
  }
  put(s, payload_);
  if (l4_ == L4::udp && !udp_checksum_) return s;

  Bytes pseudo;
  put(pseudo, pseudo_src);
  put(pseudo, pseudo_dst);
  if (pseudo_src.size() == 4) {
    put8(pseudo, 0);
    put8(pseudo, ip_protocol());
    put16(pseudo, static_cast<uint16_t>(s.size()));
  } else {
    put32(pseudo, static_cast<uint32_t>(s.size()));
    put(pseudo, std::array<uint8_t, 3>{});
    put8(pseudo, ip_protocol());
  }
  put(pseudo, s);
  uint16_t check = internet_checksum(pseudo);
  // In UDP a zero checksum means "none"; a computed zero is sent as all ones.
  if (l4_ == L4::udp && check == 0) check = 0xffff;
  set16(s, check_at, check);
  return s;
}

Bytes Frame::build() const {
  Bytes f;
  put(f, dst_);
  put(f, src_);
  uint16_t implied = 0;
  switch (l3_) {
    case L3::arp: implied = kEthPArp; break;
    case L3::ipv4: implied = kEthPIpv4; break;
    case L3::ipv6: implied = kEthPIpv6; break;
    case L3::none:
      if (!ethertype_) throw std::logic_error("Frame: no L3 layer and no ethertype");
      break;
  }
  put16(f, ethertype_.value_or(implied));

  switch (l3_) {
    case L3::none: put(f, payload_); break;
    case L3::arp:
      put16(f, arp_.hrd);
      put16(f, arp_.pro);
      put8(f, arp_.hln);
      put8(f, arp_.pln);
      put16(f, arp_.op);
      put(f, arp_.sha);
      put(f, octets(arp_.spa));
      put(f, arp_.tha);
      put(f, octets(arp_.tpa));
      break;
    case L3::ipv4: {
      Bytes options = ip4_.options;
      options.resize((options.size() + 3) / 4 * 4, 0);  // 0: end of options list
      size_t hdr_len = kIpv4HeaderLen + options.size();
      Bytes seg = l4_segment(octets(ip4_.src), octets(ip4_.dst));
      size_t start = f.size();
      put8(f, static_cast<uint8_t>(ip4_.version << 4 | ip4_.ihl.value_or(hdr_len / 4)));
      put8(f, 0);  // DSCP/ECN
      put16(f, static_cast<uint16_t>(hdr_len + seg.size()));
      put16(f, ip4_.id);
      put16(f, ip4_.frag);
      put8(f, ip4_.ttl);
      put8(f, ip4_.protocol.value_or(ip_protocol()));
      put16(f, 0);
      put(f, octets(ip4_.src));
      put(f, octets(ip4_.dst));
      put(f, options);
      set16(f, start + 10, internet_checksum(std::span(f).subspan(start, hdr_len)));
      put(f, seg);
      break;
    }
    case L3::ipv6: {
      Bytes seg = l4_segment(ip6_.src, ip6_.dst);
      put32(f, 6u << 28);
      put16(f, static_cast<uint16_t>(seg.size()));
      put8(f, ip_protocol());
      put8(f, ip6_.hop_limit);
      put(f, ip6_.src);
      put(f, ip6_.dst);
      put(f, seg);
      break;
    }
  }
  if (truncate_ && *truncate_ < f.size()) f.resize(*truncate_);
  return f;
}

std::string hex_diff(std::span<const uint8_t> expected, std::span<const uint8_t> actual) {
  std::ostringstream o;
  o << "expected " << expected.size() << " bytes, actual " << actual.size() << " bytes\n";
  const size_t n = std::max(expected.size(), actual.size());
  char buf[24];
  auto cell = [&](std::span<const uint8_t> s, size_t i) -> std::string {
    if (i >= s.size()) return "--";  // past the end of this frame
    std::snprintf(buf, sizeof buf, "%02x", s[i]);
    return buf;
  };
  for (size_t row = 0; row < n; row += 16) {
    const size_t end = std::min(row + 16, n);
    std::string exp, act, marks;
    bool same = true;
    for (size_t i = row; i < end; ++i) {
      const char* sep = i == row ? "" : " ";
      bool differs = i >= expected.size() || i >= actual.size() || expected[i] != actual[i];
      same = same && !differs;
      exp += sep + cell(expected, i);
      act += sep + cell(actual, i);
      marks += std::string(sep) + (differs ? "^^" : "  ");
    }
    std::snprintf(buf, sizeof buf, "%04zx", row);
    if (same) {
      o << "  " << buf << "  " << exp << "\n";
    } else {
      while (!marks.empty() && marks.back() == ' ') marks.pop_back();
      o << "- " << buf << "  " << exp << "\n";
      o << "+ " << buf << "  " << act << "\n";
      o << "        " << marks << "\n";
    }
  }
  return o.str();
}

::testing::AssertionResult frames_equal(const Bytes& expected, const Bytes& actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "frames differ (- expected, + actual):\n"
                                       << hex_diff(expected, actual);
}

::testing::AssertionResult ipv4_checksum_valid(const Bytes& frame) {
  if (frame.size() < kEthHeaderLen + kIpv4HeaderLen || (frame[12] << 8 | frame[13]) != kEthPIpv4)
    return ::testing::AssertionFailure() << "not an IPv4 frame";
  const size_t hdr_len = (frame[kEthHeaderLen] & 0x0f) * 4u;
  if (hdr_len < kIpv4HeaderLen || frame.size() < kEthHeaderLen + hdr_len)
    return ::testing::AssertionFailure() << "IPv4 header length " << hdr_len << " does not fit";
  auto header = std::span(frame).subspan(kEthHeaderLen, hdr_len);
  if (uint16_t rest = internet_checksum(header); rest != 0) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "IPv4 header checksum 0x%02x%02x does not verify (0x%04x)",
                  header[10], header[11], rest);
    return ::testing::AssertionFailure() << msg;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult l4_checksum_valid(const Bytes& frame) {
  if (auto ip = ipv4_checksum_valid(frame); !ip) return ip;
  const size_t l3 = kEthHeaderLen;
  const size_t hdr_len = (frame[l3] & 0x0f) * 4u;
  const size_t total = static_cast<size_t>(frame[l3 + 2] << 8 | frame[l3 + 3]);
  if (total < hdr_len || frame.size() < l3 + total)
    return ::testing::AssertionFailure() << "IPv4 total length " << total << " does not fit";
  const uint8_t proto = frame[l3 + 9];
  const auto seg = std::span(frame).subspan(l3 + hdr_len, total - hdr_len);
  size_t check_at = 0;
  Bytes summed;
  switch (proto) {
    case kProtoIcmp: check_at = 2; break;  // no pseudo-header
    case kProtoUdp: check_at = 6; break;
    case kProtoTcp: check_at = 16; break;
    default:
      return ::testing::AssertionFailure() << "IP protocol " << int(proto) << " is not checked";
  }
  if (seg.size() < check_at + 2)
    return ::testing::AssertionFailure() << "segment of " << seg.size() << " bytes is truncated";
  const uint16_t stored = static_cast<uint16_t>(seg[check_at] << 8 | seg[check_at + 1]);
  if (proto == kProtoUdp && stored == 0) return ::testing::AssertionSuccess();
  if (proto != kProtoIcmp) {
    put(summed, std::span(frame).subspan(l3 + 12, 8));  // source and destination address
    put8(summed, 0);
    put8(summed, proto);
    put16(summed, static_cast<uint16_t>(seg.size()));
  }
  put(summed, seg);
  if (uint16_t rest = internet_checksum(summed); rest != 0) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "IP protocol %u checksum 0x%04x does not verify (0x%04x)",
                  proto, stored, rest);
    return ::testing::AssertionFailure() << msg;
  }
  return ::testing::AssertionSuccess();
}

std::string verdict_name(int verdict) {
  switch (verdict) {
    case TC_ACT_OK: return "TC_ACT_OK";
    case TC_ACT_SHOT: return "TC_ACT_SHOT";
    case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
    default: return "verdict " + std::to_string(verdict);
  }
}

TcRun run_tc(int prog_fd, const Bytes& frame, uint32_t ingress_ifindex, const Gso& gso) {
  // The kernel takes the first 14 bytes as the Ethernet header.
  if (frame.size() < kEthHeaderLen)
    throw std::invalid_argument("run_tc: a test frame needs at least an Ethernet header");
  __sk_buff ctx{};
  ctx.ingress_ifindex = ingress_ifindex;
  ctx.gso_size = gso.size;
  ctx.gso_segs = gso.segs;
  TcRun r;
  r.out.resize(frame.size() + kOutSlack);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(r.out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof ctx);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    throw std::system_error(errno, std::generic_category(), "BPF_PROG_TEST_RUN");
  r.retval = static_cast<int>(opts.retval);
  r.out.resize(opts.data_size_out);
  return r;
}

}  // namespace ebpfnet::test
