// The services bench at small N: kube-proxy's rules as iptables-restore
// input; the group through the suite passes traffic to the virtual IP on
// both datapaths (both backends answer), times every way of adding a
// service, states the targets, and removes everything it made. Speed is
// measured, never asserted.
#include <gtest/gtest.h>

#include <sstream>

#include "bench/services.hpp"
#include "bench/suite.hpp"
#include "bench_support.hpp"
#include "support.hpp"

namespace ebpfnet::bench {
namespace {

using nlohmann::json;

int count_lines(const std::string& text, const std::string& start) {
  std::istringstream s(text);
  int n = 0;
  for (std::string line; std::getline(s, line);) n += line.rfind(start, 0) == 0;
  return n;
}

TEST(ServicesBench, KubeProxyRulesHaveOnePortalPerServiceAndRandomBackends) {
  const std::string r = kube_proxy_rules(3, {"10.0.0.3", "10.0.0.4"}, "10.0.0.0/24");
  EXPECT_EQ(count_lines(r, "-A KUBE-SERVICES -d "), 3);
  EXPECT_EQ(count_lines(r, ":KUBE-SVC-"), 3);
  EXPECT_EQ(count_lines(r, ":KUBE-SEP-"), 6);
  EXPECT_EQ(count_lines(r, "COMMIT"), 2);
  EXPECT_NE(r.find("-d " + service_vip(2) + "/32 -p tcp"), std::string::npos);
  EXPECT_NE(r.find("--probability 0.50000000000 -j KUBE-SEP-"), std::string::npos);
  EXPECT_NE(r.find("DNAT --to-destination 10.0.0.4:" + std::to_string(kSvcBackendPort)), std::string::npos);
  // The node-ports rule comes after every service's.
  EXPECT_GT(r.find("-j KUBE-NODEPORTS"), r.rfind("-A KUBE-SERVICES -d "));
  EXPECT_NE(service_vip(0), service_vip(250));
}

TEST(ServicesBench, GroupRunsBothDatapathsAtSmallNAndLeavesNothing) {
  EBPFNET_REQUIRE_ROOT();
  const auto links0 = test::root_links();
  SuiteOptions o = default_options(true);
  o.groups = {"services"};
  o.service_counts = {50, 1};  // sorted by the run
  o.service_add_reps = 2;
  o.tools_dir = std::filesystem::path(BENCH_TOOLS_DIR);
  o.ebpfnet_bin = EBPFNET_BIN;
  std::ostringstream log;
  const json j = run_suite(o, log);
  SCOPED_TRACE(log.str());
  EXPECT_TRUE(j["failures"].empty()) << j["failures"].dump();

  // Traffic to the last service's VIP on both datapaths at each N, both
  // backends serving; ebpfnet-1 (one service) measured beside them.
  for (std::string dp : {"ebpfnet", "ebpfnet-tc", "iptables", "ebpfnet-1"})
    for (int n : {1, 50}) {
      bool found = false;
      for (const auto& m : j["measurements"]) {
        if (m["group"] != "services" || m["datapath"] != dp || m["services"] != n || !m["values"].contains("svc_crr_cps"))
          continue;
        found = true;
        for (std::string v : {"svc_crr_cps", "svc_connect_p50_us", "svc_connect_p99_us"})
          EXPECT_GT(m["values"][v].get<double>(), 0) << dp << " @" << n << " " << v;
        EXPECT_EQ(m["raw"]["vip"], service_vip(dp == "ebpfnet-1" ? 0 : n - 1));
        ASSERT_EQ(m["raw"]["served_per_backend"].size(), 2u);
        for (const auto& served : m["raw"]["served_per_backend"]) EXPECT_GT(served.get<long long>(), 0) << dp << " @" << n;
      }
      EXPECT_TRUE(found) << dp << " @" << n << ": no connection-rate measurement";
    }
  // Every way of adding one more service, at each N.
  for (std::string way : {"ebpfnet-cli", "ebpfnet-lib", "iptables-noflush", "iptables-restore"})
    for (int n : {1, 50}) {
      bool found = false;
      for (const auto& s : j["samples"])
        if (s["metric"] == "svc_add_ms" && s["datapath"] == way && s.value("services", -1) == n) {
          EXPECT_GT(s["value"].get<double>(), 0);
          found = true;
        }
      EXPECT_TRUE(found) << way << " @" << n;
    }
  // The summary: figures per datapath and N, and the four targets with values.
  const json& sv = j["services"];
  EXPECT_EQ(sv["setup"]["counts"], json::array({1, 50}));
  for (std::string dp : {"ebpfnet", "ebpfnet-tc", "iptables"})
    EXPECT_GT(sv["traffic"][dp]["50"]["conn_per_s"].get<double>(), 0) << dp;
  ASSERT_EQ(sv["targets"].size(), 4u);
  EXPECT_NE(sv["targets"][0]["what"].get<std::string>().find("ebpfnet-1"), std::string::npos);
  for (const auto& t : sv["targets"]) {
    EXPECT_TRUE(t["value"].is_number()) << t.dump();
    EXPECT_TRUE(t["met"].is_boolean()) << t.dump();
  }

  // Nothing left: the run's namespaces, pins and links (other tests may
  // run beside this one: only the run's names count).
  const std::string prefix = j["options"]["namespace_prefix"];
  for (const auto& n : test::netns_names()) EXPECT_NE(n.rfind(prefix, 0), 0u) << n << " was left behind";
  for (const auto& p : test::pinned_nodes()) EXPECT_NE(p.rfind(prefix, 0), 0u) << "pinned datapath " << p << " was left behind";
  EXPECT_EQ(test::root_links(), links0);
}

}  // namespace
}  // namespace ebpfnet::bench
