// The UDP generator counts what it sends and the receiver what it gets,
// checked against the interfaces' own counters (ip -s link, an independent
// witness) on the `direct` topology.
#include <gtest/gtest.h>

#include "bench_support.hpp"
#include "support.hpp"

namespace ebpfnet::bench {
namespace {

using test::counters;

// ARP (a request and a reply each way) may add a few frames to a counter.
constexpr uint64_t kSlack = 4;

TEST(UdpPps, PacedCountsMatchInterfaceCounters) {
  EBPFNET_REQUIRE_ROOT();
  test::TempConfig tc;
  auto t = make_topology("direct", tc.cfg);
  auto c0 = counters(t->client_ns(), "eth0");
  auto s0 = counters(t->server_ns(), "eth0");
  // 20,000 datagrams at 50,000/s: slow enough that nothing may be lost.
  Measurement m = measure_pps(*t, test::tools(), Placement{}, 5, 8, 20000, 50000);
  ASSERT_EQ(m.error, "");
  auto c1 = counters(t->client_ns(), "eth0");
  auto s1 = counters(t->server_ns(), "eth0");
  uint64_t sent = m.raw["sender"]["sent"], received = m.raw["receiver"]["received"];
  EXPECT_EQ(sent, 20000u);
  EXPECT_EQ(received, sent);
  EXPECT_EQ(m.raw["receiver"]["bytes"].get<uint64_t>(), received * 22) << "22-byte payloads";
  uint64_t tx = c1.tx_packets - c0.tx_packets, rx = s1.rx_packets - s0.rx_packets;
  EXPECT_GE(tx, sent);
  EXPECT_LE(tx, sent + kSlack);
  EXPECT_GE(rx, received);
  EXPECT_LE(rx, received + kSlack);
  EXPECT_DOUBLE_EQ(m.values["pps_loss_pct"], 0.0);
}

TEST(UdpPps, FullRateSentMatchesTransmitCounter) {
  EBPFNET_REQUIRE_ROOT();
  test::TempConfig tc;
  auto t = make_topology("direct", tc.cfg);
  auto c0 = counters(t->client_ns(), "eth0");
  auto s0 = counters(t->server_ns(), "eth0");
  Measurement m = measure_pps(*t, test::tools(), Placement{}, 1, 8);
  ASSERT_EQ(m.error, "");
  auto c1 = counters(t->client_ns(), "eth0");
  auto s1 = counters(t->server_ns(), "eth0");
  uint64_t sent = m.raw["sender"]["sent"], received = m.raw["receiver"]["received"];
  ASSERT_GT(sent, 1000u);
  // Every datagram sendmmsg accepted left the client's eth0 (or was counted dropped there).
  uint64_t tx = (c1.tx_packets - c0.tx_packets) + (c1.tx_dropped - c0.tx_dropped);
  EXPECT_GE(tx, sent);
  EXPECT_LE(tx, sent + kSlack);
  // The receiver never counts more than arrived at the server's eth0.
  EXPECT_LE(received, s1.rx_packets - s0.rx_packets);
  EXPECT_GT(received, 0u);
  EXPECT_NEAR(m.values["pps_loss_pct"], 100.0 * (double(sent) - double(received)) / double(sent),
              1e-6);
}

}  // namespace
}  // namespace ebpfnet::bench
