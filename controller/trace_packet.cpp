// The words of `ebpfnet trace` and the frame they describe.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cstring>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/trace.hpp"

namespace ebpfnet {
namespace {

constexpr uint8_t kFlagBits[] = {0x02, 0x10, 0x01, 0x04, 0x08, 0x20};
constexpr char kFlagLetters[] = "SAFRPU";

uint16_t parse_port(std::string_view s, const std::string& what) {
  if (s.empty() || s.size() > 5) throw Error(Errc::usage, what + ": '" + std::string(s) + "' is not a port (1-65535)");
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') throw Error(Errc::usage, what + ": '" + std::string(s) + "' is not a port (1-65535)");
    v = v * 10 + uint32_t(c - '0');
  }
  if (v == 0 || v > 65535) throw Error(Errc::usage, what + ": '" + std::string(s) + "' is not a port (1-65535)");
  return static_cast<uint16_t>(v);
}

// NAME[:PORT] or ADDR[:PORT].
TracePeer parse_peer(std::string_view s, const std::string& what) {
  if (s.empty()) throw Error(Errc::usage, what + " is empty: an endpoint's name or an address");
  TracePeer p;
  std::string_view host = s;
  if (auto colon = s.rfind(':'); colon != std::string_view::npos) {
    host = s.substr(0, colon);
    p.port = parse_port(s.substr(colon + 1), what + " '" + std::string(s) + "'");
  }
  if (auto ip = Ipv4::parse(host)) {
    p.ip = ip;
    return p;
  }
  // Digits and dots that are no address are a typo, not a name.
  if (!host.empty() && host.find_first_not_of("0123456789.") == std::string_view::npos)
    throw Error(Errc::usage, what + " '" + std::string(s) + "': '" + std::string(host) + "' is not an IPv4 address");
  validate_name(what + " endpoint", host);
  p.endpoint = std::string(host);
  return p;
}

uint8_t parse_flags(const std::string& s) {
  if (s.empty()) throw Error(Errc::usage, "--flags is empty: TCP flags as letters S A F R P U, e.g. S or SA");
  uint8_t flags = 0;
  for (char c : s) {
    const char* at = std::strchr(kFlagLetters, std::toupper(static_cast<unsigned char>(c)));
    if (!c || !at)
      throw Error(Errc::usage, "--flags '" + s + "': '" + std::string(1, c) +
                                   "' is not a TCP flag (S SYN, A ACK, F FIN, R RST, P PSH, U URG)");
    flags |= kFlagBits[at - kFlagLetters];
  }
  return flags;
}

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = uint8_t(v >> 8);
  b[at + 1] = uint8_t(v);
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

TraceRequest parse_trace_request(const std::string& from, const std::string& to,
                                 const std::optional<std::string>& flags, const std::optional<std::string>& spoof) {
  TraceRequest r;
  r.from = parse_peer(from, "--from");
  std::string_view t = to, proto = "tcp";
  if (auto slash = t.rfind('/'); slash != std::string_view::npos) {
    proto = t.substr(slash + 1);
    t = t.substr(0, slash);
  }
  if (proto == "tcp")
    r.proto = IPPROTO_TCP;
  else if (proto == "udp")
    r.proto = IPPROTO_UDP;
  else if (proto == "icmp")
    r.proto = IPPROTO_ICMP;
  else
    throw Error(Errc::usage, "--to '" + to + "': protocol '" + std::string(proto) + "' is not tcp, udp or icmp");
  r.to = parse_peer(t, "--to");
  if (r.proto == IPPROTO_ICMP && r.to.port)
    throw Error(Errc::usage, "--to '" + to + "': an ICMP echo has no destination port (--from ADDR:ID sets its identifier)");
  if (r.proto != IPPROTO_ICMP && !r.to.port)
    throw Error(Errc::usage, "--to '" + to + "' needs a port for " + std::string(proto) + ", e.g. " +
                                 (r.to.endpoint.empty() ? r.to.ip->str() : r.to.endpoint) + ":80/" + std::string(proto));
  if (flags) {
    if (r.proto != IPPROTO_TCP) throw Error(Errc::usage, "--flags is for TCP only");
    r.tcp_flags = parse_flags(*flags);
  }
  if (spoof) {
    if (r.from.endpoint.empty())
      throw Error(Errc::usage, "--spoof needs an endpoint as --from: it is the source address that endpoint lies about");
    r.spoof = Ipv4::parse(*spoof);
    if (!r.spoof) throw Error(Errc::usage, "--spoof '" + *spoof + "' is not an IPv4 address");
  }
  return r;
}

std::string tcp_flags_str(uint8_t flags) {
  std::string s;
  for (size_t i = 0; i < sizeof kFlagBits; ++i)
    if (flags & kFlagBits[i]) s += kFlagLetters[i];
  return s.empty() ? "-" : s;
}

std::vector<uint8_t> build_trace_frame(const Mac& smac, const Mac& dmac, const ebpfnet_ct_key& t, uint8_t tcp_flags) {
  constexpr size_t kEth = 14, kIp = 20;
  const size_t l4 = t.proto == IPPROTO_TCP ? 20 : 8;
  std::vector<uint8_t> b(kEth + kIp + l4, 0);
  std::memcpy(&b[0], dmac.data(), 6);
  std::memcpy(&b[6], smac.data(), 6);
  put16(b, 12, 0x0800);

  uint8_t* ip = &b[kEth];
  ip[0] = 0x45;
  put16(b, kEth + 2, static_cast<uint16_t>(kIp + l4));
  put16(b, kEth + 6, 0x4000);  // don't fragment
  ip[8] = 64;
  ip[9] = t.proto;
  std::memcpy(ip + 12, &t.saddr, 4);
  std::memcpy(ip + 16, &t.daddr, 4);
  put16(b, kEth + 10, fold(sum16(ip, kIp)));

  const size_t at = kEth + kIp;
  uint8_t* seg = &b[at];
  uint16_t check_at;
  if (t.proto == IPPROTO_ICMP) {
    seg[0] = 8;  // echo request
    std::memcpy(seg + 4, &t.sport, 2);
    put16(b, at + 6, 1);  // sequence
    put16(b, at + 2, fold(sum16(seg, l4)));
    return b;
  }
  std::memcpy(seg, &t.sport, 2);
  std::memcpy(seg + 2, &t.dport, 2);
  if (t.proto == IPPROTO_TCP) {
    put16(b, at + 4, 0x0001);  // sequence 1
    if (tcp_flags & 0x10) put16(b, at + 10, 0x0001);  // acknowledges 1
    seg[12] = 5 << 4;
    seg[13] = tcp_flags;
    put16(b, at + 14, 64240);  // window
    check_at = at + 16;
  } else {
    put16(b, at + 4, static_cast<uint16_t>(l4));
    check_at = at + 6;
  }
  uint32_t pseudo = sum16(ip + 12, 8) + t.proto + l4;
  uint16_t c = fold(sum16(seg, l4, pseudo));
  if (t.proto == IPPROTO_UDP && c == 0) c = 0xffff;
  put16(b, check_at, c);
  return b;
}

}  // namespace ebpfnet
