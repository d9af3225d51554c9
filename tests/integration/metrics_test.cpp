// `ebpfnet metrics` on sandbox nodes with real traffic: promtool accepts the
// exposition, a real Prometheus server (Debian's) in the node's outside
// namespace scrapes the metrics server in the node and sees a drop the test
// causes; the server stops cleanly on SIGTERM and SIGINT, serves /metrics
// only, and refuses addresses it cannot have; the textfile is whole or
// absent; a datapath of another ABI gets its layout-free series.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "support.hpp"

namespace ebpfnet {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::CmdResult;
using test::run;
using test::run_in;
using test::SandboxNode;
using test::TempStateDir;
using test::unique;
using test::wait_until;

constexpr const char* kPool = "10.211.0.0/24";  // this file's own pool
constexpr uint16_t kMetricsPort = 9657;         // the documented default
constexpr uint16_t kPrometheusPort = 9090;      // inside the outside namespace only

// Sandbox nodes of this file are named mtr-<pid><n>.
SandboxNode node_with_uplink() { return SandboxNode(kPool, true, true, "", "mtr-"); }

struct Ep {
  std::string name;  // also its namespace's name
  Ipv4 ip;
};

Ep add(SandboxNode& sb) {
  EndpointRecord r = sb.node().add_endpoint({unique("mtr-e"), std::nullopt, std::nullopt, "eth0"});
  return {r.name, r.ip};
}

CmdResult ping(const std::string& from_ns, Ipv4 dst, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"ping", "-n", "-c1", "-W1"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(dst.str());
  return run_in(from_ns, args, 10);
}

// a sends from an address that is not its own: dropped as spoofed-ip.
void send_spoofed(const Ep& a, const Ep& b) {
  ASSERT_EQ(ping(a.name, b.ip).code, 0);  // the honest address works, and the gateway is resolved
  Ipv4 spoofed(b.ip.host() + 100);
  CmdResult add = run_in(a.name, {"ip", "addr", "add", spoofed.str() + "/32", "dev", "eth0"});
  ASSERT_EQ(add.code, 0) << add.err;
  EXPECT_NE(ping(a.name, b.ip, {"-I", spoofed.str()}).code, 0) << "a spoofed ping was answered";
}

// A tool the tests cannot do without: missing, the test fails and says so.
void require_tool(const std::string& tool) {
  CmdResult r = run({tool, "--version"}, "", 10);
  ASSERT_EQ(r.code, 0) << tool << " is missing (Debian package prometheus; scripts/bootstrap installs it): "
                       << r.err;
}

struct HttpReply {
  int status = 0;
  std::string body;
  std::string content_type;
};

// A GET from inside a namespace (the socket is made there).
std::optional<HttpReply> http_get(const std::string& netns, const std::string& host, uint16_t port,
                                  const std::string& path, const httplib::Params& params = {}) {
  NetnsGuard in(Netns::open_named(netns));
  httplib::Client c(host, port);
  c.set_connection_timeout(2);
  c.set_read_timeout(10);
  auto r = c.Get(path, params, httplib::Headers{});
  if (!r) return std::nullopt;
  return HttpReply{r->status, r->body, r->get_header_value("Content-Type")};
}

// The one value of a PromQL instant query; nullopt while it has no result.
std::optional<double> promql(const std::string& netns, const std::string& host, const std::string& query) {
  auto r = http_get(netns, host, kPrometheusPort, "/api/v1/query", {{"query", query}});
  if (!r || r->status != 200) return std::nullopt;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || j.value("status", "") != "success") return std::nullopt;
  const auto& result = j["data"]["result"];
  if (!result.is_array() || result.size() != 1) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

// The node's uplink address, where its metrics server listens, and the
// outside's, where Prometheus does.
const std::string kNodeAddr = kSandboxUplinkIp;
const std::string kOutsideAddr = kSandboxOutsideIp;

std::vector<std::string> metrics_cmd(SandboxNode& sb, std::vector<std::string> args) {
  std::vector<std::string> full = {test::ebpfnet_bin(), "--state-dir", sb.env().state_root.string(), "--node",
                                   sb.name(), "metrics"};
  full.insert(full.end(), args.begin(), args.end());
  return full;
}

TEST(MetricsPrometheus, ServerScrapesTheNodeAndSeesADrop) {
  EBPFNET_REQUIRE_ROOT();
  require_tool("prometheus");
  SandboxNode sb = node_with_uplink();
  Ep a = add(sb), b = add(sb);

  // Declared before the processes, so their data dir goes after them.
  TempStateDir prom_dir;
  std::ofstream(prom_dir.path() / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: ebpfnet\n    static_configs:\n      - targets: ['" << kNodeAddr << ":"
      << kMetricsPort << "']\n";

  Child server(metrics_cmd(sb, {"--listen", kNodeAddr}));
  ASSERT_TRUE(test::listening(sb.name(), "-t", kMetricsPort)) << "the metrics server does not listen in the node";
  Child prometheus({"ip", "netns", "exec", sb.outside(), "prometheus",
                    "--config.file=" + (prom_dir.path() / "prometheus.yml").string(),
                    "--storage.tsdb.path=" + (prom_dir.path() / "data").string(),
                    "--web.listen-address=" + kOutsideAddr + ":" + std::to_string(kPrometheusPort)});
  // Its start (TSDB, rules, web) takes a second or two, more on a busy machine.
  ASSERT_TRUE(wait_until(
      [&] {
        return !run_in(sb.outside(), {"ss", "-Hltn", "sport = :" + std::to_string(kPrometheusPort)}, 5).out.empty();
      },
      30s))
      << "prometheus did not start listening within 30 s";

  const std::string node = "node=\"" + sb.name() + "\"";
  ASSERT_TRUE(wait_until([&] { return promql(sb.outside(), kOutsideAddr, "up{job=\"ebpfnet\"}") == 1.0; }, 30s))
      << "Prometheus never scraped the metrics server (up != 1)";
  const std::string drops = "ebpfnet_dropped_packets_total{" + node + ",reason=\"spoofed-ip\"}";
  EXPECT_EQ(promql(sb.outside(), kOutsideAddr, drops), 0.0) << "a drop before the test caused one";

  send_spoofed(a, b);
  EXPECT_TRUE(wait_until(
      [&] {
        auto v = promql(sb.outside(), kOutsideAddr, drops);
        return v && *v >= 1;
      },
      20s))
      << "the spoofed ping never showed up in Prometheus as " << drops;
  EXPECT_EQ(promql(sb.outside(), kOutsideAddr, "ebpfnet_endpoints{" + node + "}"), 2.0);

  EXPECT_EQ(prometheus.stop(SIGTERM, 10s), 0) << "prometheus did not stop cleanly";
  EXPECT_EQ(server.stop(SIGTERM, 5s), 0) << "the metrics server did not exit 0 on SIGTERM";
}

// Traffic of every kind the series describe: forwarding, a drop, a policy,
// a published port, masquerade.
void make_traffic(SandboxNode& sb, const Ep& a, const Ep& b) {
  send_spoofed(a, b);
  CmdResult pol = sb.cli({"policy", "set", b.name, "--ingress-default", "deny", "--ingress", "allow icmp"});
  ASSERT_EQ(pol.code, 0) << pol.err;
  CmdResult pub = sb.cli({"expose", b.name, "80/tcp", "--port", "8080"});
  ASSERT_EQ(pub.code, 0) << pub.err;
  EXPECT_EQ(ping(a.name, Ipv4::parse(kSandboxServerIp).value()).code, 0) << "masquerade to the outside";
}

CmdResult promtool_check(const std::string& exposition) {
  return run({"promtool", "check", "metrics"}, exposition, 30);
}

TEST(MetricsTextfileMode, PromtoolAcceptsItAndItTellsTheDatapathsCounts) {
  EBPFNET_REQUIRE_ROOT();
  require_tool("promtool");
  SandboxNode sb = node_with_uplink();
  Ep a = add(sb), b = add(sb);
  make_traffic(sb, a, b);

  EXPECT_EQ(sb.cli({"endpoint", "del", "mtr-no-such"}).code, 3);  // a failed operation, counted as such

  TempStateDir out;
  const auto file = out.path() / "ebpfnet.prom";
  CmdResult r = run(metrics_cmd(sb, {"--textfile", file.string(), "--per-endpoint"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::entries(out.path()), std::vector<std::string>{"ebpfnet.prom"}) << "a temp file was left";
  const std::string text = test::read_file(file);
  CmdResult check = promtool_check(text);
  EXPECT_EQ(check.code, 0) << check.out << check.err << "\n" << text;
  EXPECT_EQ(check.out + check.err, "") << "promtool lint: " << check.out << check.err;

  // Against what the datapath says through `endpoint list`.
  CmdResult list = sb.cli({"-o", "json", "endpoint", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  uint64_t spoofed = 0;
  for (const auto& e : nlohmann::json::parse(list.out)) spoofed += e["stats"]["drops"]["spoofed-ip"].get<uint64_t>();
  ASSERT_GE(spoofed, 1u);
  const std::string node = "node=\"" + sb.name() + "\"";
  auto has = [&](const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("ebpfnet_dropped_packets_total{" + node + ",reason=\"spoofed-ip\"} " + std::to_string(spoofed))) << text;
  EXPECT_TRUE(has("ebpfnet_endpoints{" + node + "} 2")) << text;
  EXPECT_TRUE(has("ebpfnet_published_ports{" + node + "} 1")) << text;
  EXPECT_TRUE(has("ebpfnet_policy_endpoints{" + node + "} 1")) << text;
  EXPECT_TRUE(has("ebpfnet_nat_ports_in_use{" + node + ",proto=\"icmp\"} 1")) << text;
  EXPECT_TRUE(has("ebpfnet_datapath_counters_readable{" + node + "} 1")) << text;
  EXPECT_TRUE(has("ebpfnet_map_entries{" + node + ",map=\"ep_by_ip\"} 2")) << text;
  // Endpoints were added through the library, so only the command line's operations count.
  EXPECT_TRUE(has("ebpfnet_operations_total{" + node + ",operation=\"policy set\",result=\"ok\"} 1")) << text;
  EXPECT_TRUE(has("ebpfnet_operations_total{" + node + ",operation=\"expose\",result=\"ok\"} 1")) << text;
  EXPECT_TRUE(has("ebpfnet_operations_total{" + node + ",operation=\"endpoint del\",result=\"failed\"} 1")) << text;
  EXPECT_EQ(text.find("operation=\"endpoint add\""), std::string::npos) << text;
  EXPECT_TRUE(has("ebpfnet_map_entries{" + node + ",map=\"ep_policy\"} 1")) << text;
  EXPECT_NE(text.find("ebpfnet_endpoint_dropped_packets_total{" + node + ",endpoint=\"" + a.name +
                      "\",reason=\"spoofed-ip\"} "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ebpfnet_program_info{" + node + ",program=\"from_endpoint\",tag=\""), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_program_info{" + node + ",program=\"from_uplink\",tag=\""), std::string::npos) << text;
}

TEST(MetricsTextfileMode, BadPathIsAClearErrorAndWritesNothing) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb(kPool, true, false, "", "mtr-");
  TempStateDir out;
  const auto missing = out.path() / "nope" / "ebpfnet.prom";
  CmdResult r = run(metrics_cmd(sb, {"--textfile", missing.string()}));
  EXPECT_EQ(r.code, 3) << r.err;
  test::expect_one_line_error(r);
  EXPECT_NE(r.err.find((out.path() / "nope").string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;

  std::filesystem::create_directory(out.path() / "taken.prom");  // a directory where the file would go
  r = run(metrics_cmd(sb, {"--textfile", (out.path() / "taken.prom").string()}));
  EXPECT_NE(r.code, 0);
  test::expect_one_line_error(r);
  EXPECT_NE(r.err.find("taken.prom"), std::string::npos) << r.err;
  EXPECT_EQ(test::entries(out.path()), std::vector<std::string>{"taken.prom"}) << "a temp file was left";
  EXPECT_TRUE(test::entries(out.path() / "taken.prom").empty());
}

TEST(MetricsServer, ServesMetricsOnlyAndStopsCleanlyOnSigtermAndSigint) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb = node_with_uplink();
  for (int sig : {SIGTERM, SIGINT}) {
    Child server(metrics_cmd(sb, {"--listen", kNodeAddr + ":9700"}));
    ASSERT_TRUE(test::listening(sb.name(), "-t", 9700));
    auto m = http_get(sb.outside(), kNodeAddr, 9700, "/metrics");
    ASSERT_TRUE(m) << "no answer from the metrics server";
    EXPECT_EQ(m->status, 200);
    EXPECT_EQ(m->content_type, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(m->body.find("ebpfnet_endpoints{node=\"" + sb.name() + "\"} 0"), std::string::npos) << m->body;
    for (const char* other : {"/", "/metricsx", "/debug"}) {
      auto o = http_get(sb.outside(), kNodeAddr, 9700, other);
      ASSERT_TRUE(o) << other;
      EXPECT_EQ(o->status, 404) << other;
    }
    EXPECT_EQ(server.stop(sig, 5s), 0) << "exit status on signal " << sig;
    EXPECT_TRUE(wait_until([&] { return run_in(sb.name(), {"ss", "-Hltn", "sport = :9700"}).out.empty(); }, 5s))
        << "still listening after signal " << sig;
  }
}

TEST(MetricsServer, AddressTakenOrNotTheNodesIsRefusedByName) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb = node_with_uplink();
  Child first(metrics_cmd(sb, {"--listen", kNodeAddr + ":9701"}));
  ASSERT_TRUE(test::listening(sb.name(), "-t", 9701));
  CmdResult r = run(metrics_cmd(sb, {"--listen", kNodeAddr + ":9701"}), "", 10);
  EXPECT_EQ(r.code, 4) << r.err;
  test::expect_one_line_error(r);
  EXPECT_NE(r.err.find(kNodeAddr + ":9701"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Address already in use"), std::string::npos) << r.err;

  // Not an address of the node (documentation range; the machine's own
  // addresses are not the node's either).
  r = run(metrics_cmd(sb, {"--listen", "192.0.2.55"}), "", 10);
  EXPECT_EQ(r.code, 2) << r.err;
  test::expect_one_line_error(r);
  EXPECT_NE(r.err.find("192.0.2.55:9657"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Cannot assign requested address"), std::string::npos) << r.err;

  for (std::vector<std::string> bad : {std::vector<std::string>{"--listen", "198.18.0.2:http"},
                                       {"--listen", "localhost"}, {}, {"--listen", kNodeAddr, "--textfile", "/tmp/x.prom"}}) {
    r = run(metrics_cmd(sb, bad), "", 10);
    EXPECT_EQ(r.code, 2) << test::joined(bad) << ": " << r.err;
    EXPECT_NE(r.err.rfind("ebpfnet: ", 0), std::string::npos) << r.err;
  }
  r = run({test::ebpfnet_bin(), "--state-dir", sb.env().state_root.string(), "--node", unique("mtr-none"), "metrics",
           "--listen", kNodeAddr},
          "", 10);
  EXPECT_EQ(r.code, 3) << r.err;
  test::expect_one_line_error(r);
  EXPECT_EQ(first.stop(SIGTERM, 5s), 0);
}

// A node pinned by another ebpfnet: its ABI version in the config slot says
// so (an older one also lacks maps this binary has). The counters' layouts
// are not known, so only what needs no layout is exported.
TEST(MetricsTextfileMode, AnotherAbiGetsLayoutFreeSeriesOnly) {
  EBPFNET_REQUIRE_ROOT();
  require_tool("promtool");
  SandboxNode sb(kPool, true, false, "", "mtr-");
  Ep a = add(sb), b = add(sb);
  ASSERT_EQ(ping(a.name, b.ip).code, 0);

  const auto maps = sb.node().pin_dir() / "maps";
  UniqueFd config(bpf_obj_get((maps / "config").c_str()));
  ASSERT_TRUE(config.valid());
  __u32 slot = EBPFNET_CFG_ABI_VERSION;
  uint64_t older = 1;
  ASSERT_EQ(bpf_map_update_elem(config.get(), &slot, &older, BPF_ANY), 0);
  ASSERT_EQ(::unlink((maps / "events").c_str()), 0);

  TempStateDir out;
  const auto file = out.path() / "ebpfnet.prom";
  CmdResult r = run(metrics_cmd(sb, {"--textfile", file.string(), "--per-endpoint"}));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = test::read_file(file);
  CmdResult check = promtool_check(text);
  EXPECT_EQ(check.code, 0) << check.out << check.err << "\n" << text;
  const std::string node = "node=\"" + sb.name() + "\"";
  EXPECT_NE(text.find("ebpfnet_datapath_info{" + node + ",abi=\"1\",build=\"\""), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_datapath_counters_readable{" + node + "} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_map_entries{" + node + ",map=\"ep_by_ip\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_program_info{" + node + ",program=\"from_endpoint\""), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_endpoints{" + node + "} 2"), std::string::npos) << text;
  EXPECT_EQ(text.find("map=\"events\""), std::string::npos) << text;
  for (const char* absent : {"ebpfnet_forwarded_", "ebpfnet_dropped_", "ebpfnet_conntrack_live", "ebpfnet_endpoint_"})
    EXPECT_EQ(text.find(absent), std::string::npos) << absent << "\n" << text;
}

}  // namespace
}  // namespace ebpfnet
