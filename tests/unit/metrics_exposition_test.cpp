// The Prometheus text format as the builder writes it, and a node's
// snapshot as series: escaping, HELP and TYPE, counters against gauges,
// which series exist for which datapath.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "ebpfnet/error.hpp"
#include "ebpfnet/metrics/exposition.hpp"
#include "ebpfnet/metrics/render.hpp"
#include "ebpfnet/metrics/server.hpp"

namespace ebpfnet::metrics {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(MetricsExposition, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value(R"(a\b"c)" "\n" "d"), R"(a\\b\"c\nd)");
  EXPECT_EQ(escape_help("x\\y\n\"z\""), "x\\\\y\\n\"z\"");  // HELP keeps its quotes
  Exposition x;
  x.gauge("ebpfnet_t", "line one\nline \\two").add({{"endpoint", "we\"b\\1\n"}}, uint64_t{3});
  const std::string t = x.text();
  EXPECT_TRUE(has_line(t, R"(# HELP ebpfnet_t line one\nline \\two)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_t{endpoint="we\"b\\1\n"} 3)")) << t;
}

TEST(MetricsExposition, HelpAndTypeBeforeSamplesOfEachFamily) {
  Exposition x;
  x.counter("ebpfnet_c_total", "a counter").add({{"reason", "a"}}, uint64_t{1}).add({{"reason", "b"}}, uint64_t{2});
  x.gauge("ebpfnet_g", "a gauge").add({}, 0.5);
  EXPECT_EQ(x.text(),
            "# HELP ebpfnet_c_total a counter\n"
            "# TYPE ebpfnet_c_total counter\n"
            "ebpfnet_c_total{reason=\"a\"} 1\n"
            "ebpfnet_c_total{reason=\"b\"} 2\n"
            "# HELP ebpfnet_g a gauge\n"
            "# TYPE ebpfnet_g gauge\n"
            "ebpfnet_g 0.5\n");
  EXPECT_EQ(x.series(), 3u);
}

TEST(MetricsExposition, ValuesExactAndSpecial) {
  Exposition x;
  auto& g = x.gauge("ebpfnet_v", "values");
  g.add({{"k", "max"}}, std::numeric_limits<uint64_t>::max());
  g.add({{"k", "nan"}}, std::nan(""));
  g.add({{"k", "inf"}}, std::numeric_limits<double>::infinity());
  g.add({{"k", "ninf"}}, -std::numeric_limits<double>::infinity());
  g.add({{"k", "small"}}, 0.000123);
  const std::string t = x.text();
  EXPECT_TRUE(has_line(t, "ebpfnet_v{k=\"max\"} 18446744073709551615")) << t;
  EXPECT_TRUE(has_line(t, "ebpfnet_v{k=\"nan\"} NaN")) << t;
  EXPECT_TRUE(has_line(t, "ebpfnet_v{k=\"inf\"} +Inf")) << t;
  EXPECT_TRUE(has_line(t, "ebpfnet_v{k=\"ninf\"} -Inf")) << t;
  EXPECT_TRUE(has_line(t, "ebpfnet_v{k=\"small\"} 0.000123")) << t;
}

TEST(MetricsExposition, FamiliesWithoutSamplesAreLeftOut) {
  Exposition x;
  x.gauge("ebpfnet_empty", "nothing");
  x.gauge("ebpfnet_one", "one").add({}, uint64_t{1});
  EXPECT_EQ(x.text().find("ebpfnet_empty"), std::string::npos) << x.text();
  EXPECT_NE(x.text().find("ebpfnet_one 1"), std::string::npos) << x.text();
}

TEST(MetricsExposition, RefusesWhatPrometheusWouldNot) {
  Exposition x;
  EXPECT_THROW(x.counter("ebpfnet_packets", "no _total"), std::logic_error);
  EXPECT_THROW(x.gauge("ebpfnet_level_total", "a gauge named as a counter"), std::logic_error);
  EXPECT_THROW(x.gauge("9lives", "starts with a digit"), std::logic_error);
  EXPECT_THROW(x.gauge("ebpfnet-x", "a dash"), std::logic_error);
  auto& c = x.counter("ebpfnet_ok_total", "fine");
  EXPECT_THROW(c.add({}, -1.0), std::logic_error);
  EXPECT_THROW(c.add({}, std::nan("")), std::logic_error);
  EXPECT_NO_THROW(c.add({}, 1.5));  // durations summed in seconds
  EXPECT_THROW(c.add({{"bad-label", "v"}}, uint64_t{1}), std::logic_error);
  EXPECT_THROW(c.add({{"__reserved", "v"}}, uint64_t{1}), std::logic_error);
  EXPECT_THROW(x.counter("ebpfnet_ok_total", "twice"), std::logic_error);
}

// A node with two endpoints, one of them named with characters that need
// escaping, and traffic on both.
NodeSnapshot sample_node() {
  NodeSnapshot s;
  s.node = "lab";
  s.endpoints = 2;
  s.published = 1;
  s.policed_endpoints = 1;
  s.policy_rules = {3, 1};
  s.abi = EBPFNET_ABI_VERSION;
  s.build = 0xabcdef;
  s.binary_build = 0xabcdef;
  s.programs = {{"from_endpoint", "43a63f956c26ff4b"}};
  s.maps = {{"ct", "lru_hash", 1000, 250}, {"config", "array", 64, std::nullopt}};
  s.counters = true;
  EndpointStats a;
  a.tx_packets = 10, a.tx_bytes = 1000, a.rx_packets = 7, a.rx_bytes = 700;
  a.drops[EBPFNET_DROP_SPOOFED_IP] = 4;
  EndpointStats b;
  b.tx_packets = 1, b.tx_bytes = 100;
  s.per_endpoint = {{"web", a}, {"odd\"name", b}, {"no-counters", std::nullopt}};
  s.node_drops[EBPFNET_DROP_SPOOFED_IP] = 1;
  s.node_drops[EBPFNET_DROP_UNKNOWN_ENDPOINT] = 2;
  s.conntrack.by_state = {1, 4, 0};
  s.conntrack.nat_ports = {2, 0, 1};
  s.operations["endpoint add"] = {3, 1, 0.25};
  return s;
}

TEST(MetricsRender, SumsOverEndpointsWithBoundedLabels) {
  const std::string t = render(sample_node()).text();
  EXPECT_TRUE(has_line(t, R"(ebpfnet_forwarded_packets_total{node="lab",direction="egress"} 11)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_forwarded_bytes_total{node="lab",direction="ingress"} 700)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_dropped_packets_total{node="lab",reason="spoofed-ip"} 5)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_dropped_packets_total{node="lab",reason="unknown-endpoint"} 2)")) << t;
  // Every reason, seen or not, so a rate() has its series from the start.
  EXPECT_TRUE(has_line(t, R"(ebpfnet_dropped_packets_total{node="lab",reason="policy-deny"} 0)")) << t;
  EXPECT_TRUE(has_line(t, "# TYPE ebpfnet_dropped_packets_total counter")) << t;
  EXPECT_TRUE(has_line(t, "# TYPE ebpfnet_map_pressure gauge")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_map_pressure{node="lab",map="ct"} 0.25)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_map_max_entries{node="lab",map="config"} 64)")) << t;
  EXPECT_EQ(t.find(R"(ebpfnet_map_entries{node="lab",map="config"})"), std::string::npos) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_conntrack_live_entries{node="lab",state="established"} 4)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_nat_ports_in_use{node="lab",proto="icmp"} 1)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_policy_rules{node="lab",direction="ingress"} 3)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_program_info{node="lab",program="from_endpoint",tag="43a63f956c26ff4b"} 1)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_datapath_info{node="lab",abi=")" + std::to_string(EBPFNET_ABI_VERSION) +
                              R"(",build="0000000000abcdef",binary_abi=")" + std::to_string(EBPFNET_ABI_VERSION) +
                              R"(",binary_build="0000000000abcdef"} 1)"))
      << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_operations_total{node="lab",operation="endpoint add",result="ok"} 3)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_operations_total{node="lab",operation="endpoint add",result="failed"} 1)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_operation_duration_seconds_total{node="lab",operation="endpoint add"} 0.25)")) << t;
  // No endpoint's name without --per-endpoint.
  EXPECT_EQ(t.find("endpoint=\""), std::string::npos) << t;
  for (size_t at = t.find('\n'); at != std::string::npos; at = t.find('\n', at + 1)) {
    if (at + 1 < t.size() && t[at + 1] != '#') {
      EXPECT_EQ(t.compare(at + 1, 8, "ebpfnet_"), 0) << t.substr(at + 1, 60);
    }
  }
}

TEST(MetricsRender, PerEndpointOnlyWhenAsked) {
  const std::string t = render(sample_node(), {.per_endpoint = true}).text();
  EXPECT_TRUE(has_line(t, R"(ebpfnet_endpoint_forwarded_packets_total{node="lab",endpoint="web",direction="egress"} 10)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_endpoint_forwarded_bytes_total{node="lab",endpoint="odd\"name",direction="egress"} 100)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_endpoint_dropped_packets_total{node="lab",endpoint="web",reason="spoofed-ip"} 4)")) << t;
  // Reasons an endpoint never saw are left out: 12 per endpoint would be most of the series.
  EXPECT_EQ(t.find(R"(endpoint="web",reason="policy-deny")"), std::string::npos) << t;
  EXPECT_EQ(t.find("no-counters"), std::string::npos) << t;
}

TEST(MetricsRender, AnotherAbiGetsOnlyLayoutFreeSeries) {
  NodeSnapshot s = sample_node();
  s.abi = 1;
  s.build = 0;
  s.counters = false;
  s.per_endpoint.clear();
  const std::string t = render(s, {.per_endpoint = true}).text();
  EXPECT_TRUE(has_line(t, R"(ebpfnet_datapath_counters_readable{node="lab"} 0)")) << t;
  EXPECT_NE(t.find(R"(ebpfnet_datapath_info{node="lab",abi="1",build="")"), std::string::npos) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_map_entries{node="lab",map="ct"} 250)")) << t;
  EXPECT_TRUE(has_line(t, R"(ebpfnet_endpoints{node="lab"} 2)")) << t;
  for (const char* absent : {"ebpfnet_forwarded_", "ebpfnet_dropped_", "ebpfnet_conntrack_live", "ebpfnet_nat_ports",
                             "ebpfnet_endpoint_"})
    EXPECT_EQ(t.find(absent), std::string::npos) << absent << "\n" << t;
}

TEST(MetricsListen, ParsesAddressAndPort) {
  EXPECT_EQ(parse_listen("198.18.0.2").str(), "198.18.0.2:9657");
  EXPECT_EQ(parse_listen("10.0.0.1:9700").str(), "10.0.0.1:9700");
  for (const char* bad : {"", ":9657", "host:9657", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:9x",
                          "10.0.0.1:-1", "10.0.0.300"}) {
    try {
      parse_listen(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::usage) << bad;
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ebpfnet::metrics
