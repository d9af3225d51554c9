// The words of `ebpfnet trace` and the frame they describe.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "ebpfnet/error.hpp"
#include "ebpfnet/trace.hpp"

namespace ebpfnet {
namespace {

TEST(TraceParse, EndpointsAddressesPortsAndProtocols) {
  TraceRequest r = parse_trace_request("web", "10.240.0.7:5432/tcp", std::nullopt, std::nullopt);
  EXPECT_EQ(r.from.endpoint, "web");
  EXPECT_FALSE(r.from.port);
  EXPECT_EQ(r.to.ip->str(), "10.240.0.7");
  EXPECT_EQ(*r.to.port, 5432);
  EXPECT_EQ(r.proto, IPPROTO_TCP);
  EXPECT_EQ(r.tcp_flags, kTcpSyn);

  r = parse_trace_request("198.51.100.7:40001", "db:53/udp", std::nullopt, std::nullopt);
  EXPECT_EQ(r.from.ip->str(), "198.51.100.7");
  EXPECT_EQ(*r.from.port, 40001);
  EXPECT_EQ(r.to.endpoint, "db");
  EXPECT_EQ(r.proto, IPPROTO_UDP);

  r = parse_trace_request("web", "db/icmp", std::nullopt, std::nullopt);
  EXPECT_EQ(r.proto, IPPROTO_ICMP);
  EXPECT_FALSE(r.to.port);

  r = parse_trace_request("web:51000", "db:5432", std::string("fa"), std::string("10.240.0.99"));
  EXPECT_EQ(r.tcp_flags, 0x11);
  EXPECT_EQ(r.spoof->str(), "10.240.0.99");
  EXPECT_EQ(tcp_flags_str(r.tcp_flags), "AF");
  EXPECT_EQ(tcp_flags_str(0x12), "SA");
}

TEST(TraceParse, MalformedDescriptionsAreUsageErrors) {
  struct Bad {
    const char *from, *to;
    std::optional<std::string> flags, spoof;
  };
  const Bad bad[] = {
      {"web", "db", {}, {}},                   // tcp needs a port
      {"web", "db:0", {}, {}},                 // port 0
      {"web", "db:65536", {}, {}},             // too big
      {"web", "db:80x", {}, {}},               // not a number
      {"web", "db:80/sctp", {}, {}},           // protocol
      {"web", "db:80/", {}, {}},               // empty protocol
      {"web", "db:7/icmp", {}, {}},            // icmp has no port
      {"web", "10.240.0.300:80", {}, {}},      // not an address
      {"web", ":80", {}, {}},                  // no host
      {"", "db:80", {}, {}},                   // empty
      {"we b", "db:80", {}, {}},               // not a name
      {"-web", "db:80", {}, {}},               // not a name
      {"web:", "db:80", {}, {}},               // empty port
      {"web", "db:80", std::string(""), {}},   // empty flags
      {"web", "db:80", std::string("SY"), {}}, // not a flag
      {"web", "db:80/udp", std::string("S"), {}},
      {"web", "db:80", {}, std::string("10.1")},
      {"198.51.100.7", "db:80", {}, std::string("10.1.1.1")},  // spoof needs an endpoint
  };
  for (const Bad& b : bad) {
    try {
      parse_trace_request(b.from, b.to, b.flags, b.spoof);
      ADD_FAILURE() << "accepted --from '" << b.from << "' --to '" << b.to << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::usage) << b.from << " " << b.to << ": " << e.what();
    }
  }
}

// RFC 1071 over a span, as a receiver checks it: 0 when valid.
uint16_t fold_sum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

TEST(TraceFrame, HeadersAndChecksumsAreValid) {
  for (uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP), uint8_t(IPPROTO_ICMP)}) {
    SCOPED_TRACE(int(proto));
    ebpfnet_ct_key k{};
    k.saddr = Ipv4::parse("10.240.0.5")->be();
    k.daddr = Ipv4::parse("203.0.113.1")->be();
    k.sport = htons(40000);
    k.dport = htons(proto == IPPROTO_ICMP ? 40000 : 443);
    k.proto = proto;
    const Mac s = {2, 0, 0, 0, 0, 1}, d = {2, 0, 0, 0, 0, 2};
    const auto f = build_trace_frame(s, d, k, 0x12);
    ASSERT_GE(f.size(), 14u + 20 + 8);
    EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + 6), std::vector<uint8_t>(d.begin(), d.end()));
    EXPECT_EQ(f[12], 0x08);
    EXPECT_EQ(f[14], 0x45);
    EXPECT_EQ(f[14 + 9], proto);
    EXPECT_EQ(fold_sum(&f[14], 20), 0) << "IPv4 header checksum";
    const size_t l4 = f.size() - 34;
    uint32_t pseudo = 0;
    if (proto != IPPROTO_ICMP) {
      pseudo = (uint32_t(f[26]) << 8 | f[27]) + (uint32_t(f[28]) << 8 | f[29]) + (uint32_t(f[30]) << 8 | f[31]) +
               (uint32_t(f[32]) << 8 | f[33]) + proto + l4;
    }
    EXPECT_EQ(fold_sum(&f[34], l4, pseudo), 0) << "L4 checksum";
    if (proto == IPPROTO_TCP) {
      EXPECT_EQ(f[34 + 13], 0x12);
    }
  }
}

}  // namespace
}  // namespace ebpfnet
