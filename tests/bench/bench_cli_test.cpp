// `ebpfnet bench` end to end: --quick exits 0 and writes a valid results.json
// with every datapath and numeric samples; an interrupted run removes its
// sandboxes. Speed is measured, never asserted.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench_support.hpp"
#include "support.hpp"

namespace ebpfnet::bench {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

bool has_prefix(const std::set<std::string>& names, const std::string& prefix) {
  for (const auto& n : names)
    if (n.rfind(prefix, 0) == 0) return true;
  return false;
}

TEST(BenchCli, QuickWritesResultsForEveryDatapath) {
  EBPFNET_REQUIRE_ROOT();
  ebpfnet::test::TempStateDir out;
  auto r = ebpfnet::test::run(
      {EBPFNET_BIN, "bench", "--quick", "--tools", BENCH_TOOLS_DIR, "-o", out.path().string()},
      "", 170);
  ASSERT_EQ(r.code, 0) << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0);
  EXPECT_NE(r.out.find("DATAPATH"), std::string::npos) << "no table on stdout";
  EXPECT_NE(r.err.find("bench: [round 1/1]"), std::string::npos) << "no progress on stderr";

  std::ifstream f(out.path() / "results.json");
  json j = json::parse(f);  // throws (fails the test) when not valid JSON
  EXPECT_EQ(j["schema"], "ebpfnet-bench/1");
  EXPECT_FALSE(j["machine"]["kernel"].get<std::string>().empty());
  EXPECT_TRUE(j["tools"].contains("iperf3"));
  std::set<std::string> dps;
  for (const auto& d : j["datapaths"]) dps.insert(d["name"].get<std::string>());
  EXPECT_EQ(dps, (std::set<std::string>{"direct", "tc-peer", "bridge", "bridge-iptables", "ebpfnet"}));

  // Every datapath has a positive numeric sample of every traffic metric.
  for (std::string dp : {"direct", "tc-peer", "bridge", "bridge-iptables", "ebpfnet"})
    for (std::string metric : {"tput1_gbps", "tput4_gbps", "pps_rx", "rr_tps", "crr_cps"}) {
      bool found = false;
      for (const auto& s : j["samples"])
        if (s["datapath"] == dp && s["metric"] == metric) {
          ASSERT_TRUE(s["value"].is_number()) << s.dump();
          EXPECT_GT(s["value"].get<double>(), 0) << s.dump();
          found = true;
        }
      EXPECT_TRUE(found) << dp << " has no " << metric << " sample";
    }
  // Rule scaling: bridge-iptables at 0 and 1000 rules; ebpfnet measured or said why not.
  for (int n : {0, 1000}) {
    bool found = false;
    for (const auto& s : j["samples"])
      found |= s["datapath"] == "bridge-iptables" && s["metric"] == "rules_crr_cps" &&
               s.value("rules", -1) == n;
    EXPECT_TRUE(found) << "bridge-iptables at " << n << " rules";
    bool eb = false;
    for (const auto& s : j["samples"])
      eb |= s["datapath"] == "ebpfnet" && s["metric"] == "rules_crr_cps" && s.value("rules", -1) == n;
    for (const auto& u : j["unavailable"])
      eb |= u["what"] == "ebpfnet at " + std::to_string(n) + " rules";
    EXPECT_TRUE(eb) << "ebpfnet at " << n << " rules: neither measured nor reported unavailable";
  }
  // Control plane: ebpfnet (default and TCX), the ip baseline and the floors.
  for (std::string dp :
       {"ebpfnet", "ebpfnet-tcx", "ip", "ip-batch", "ip-batch+attach", "ip-batch+tcx", "ip-batch+tcx-threads"}) {
    bool found = false;
    for (const auto& s : j["samples"]) found |= s["datapath"] == dp && s["metric"] == "cp_add_batch_ms";
    EXPECT_TRUE(found) << dp << " cp_add_batch_ms";
  }
  // Its targets, each judged on a ratio of this run.
  ASSERT_EQ(j["cp"]["targets"].size(), 3u) << j["cp"].dump();
  for (const auto& t : j["cp"]["targets"]) {
    EXPECT_TRUE(t["value"].is_number()) << t.dump();
    EXPECT_TRUE(t["met"].is_boolean()) << t.dump();
  }
  EXPECT_NE(r.out.find("target: cp: ebpfnet row create"), std::string::npos) << "cp targets not in the table";
  EXPECT_TRUE(j["machine"].contains("rcu_expedited"));
  ASSERT_FALSE(j["summary"].empty());
  for (const auto& row : j["summary"]) {
    EXPECT_TRUE(row["median"].is_number());
    if (row["datapath"] == "ebpfnet" && row["metric"] == "rr_tps") {
      EXPECT_TRUE(row["ratios"].contains("direct"));
      EXPECT_TRUE(row["ratios"].contains("tc-peer"));
      EXPECT_TRUE(row["ratios"].contains("bridge"));
    }
  }
  // The uplink prefilter: each hook's drop rate and the ratios to tc.
  for (std::string hook : {"xdp", "xdp-generic", "tc"}) {
    bool found = false;
    for (const auto& s : j["samples"])
      if (s["datapath"] == hook && s["metric"] == "prefilter_drop_pps") {
        EXPECT_GT(s["value"].get<double>(), 0) << s.dump();
        found = true;
      }
    EXPECT_TRUE(found) << hook << " has no prefilter_drop_pps sample";
  }
  EXPECT_TRUE(j["prefilter"]["xdp_over_tc"]["median"].is_number()) << j["prefilter"].dump();
  EXPECT_TRUE(j["failures"].empty()) << j["failures"].dump();
  EXPECT_TRUE(fs::exists(out.path() / "results.md"));
  std::string prefix = j["options"]["namespace_prefix"];
  EXPECT_FALSE(has_prefix(test::netns_names(), prefix)) << "namespaces of the run were left";
}

// The scale run at a small N: every endpoint added, listed, reached,
// deleted, with its memory accounted; nothing of it left. Not in the
// default run.
TEST(BenchCli, ScaleRunsAtASmallCount) {
  EBPFNET_REQUIRE_ROOT();
  auto r = ebpfnet::test::run({EBPFNET_BIN, "-o", "json", "bench", "--only", "scale", "--scale-n", "24", "--tools",
                               BENCH_TOOLS_DIR},
                              "", 170);
  ASSERT_EQ(r.code, 0) << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0);
  json j = json::parse(r.out);
  EXPECT_TRUE(j["failures"].empty()) << j["failures"].dump();
  std::map<std::string, double> v;
  for (const auto& s : j["samples"]) {
    EXPECT_EQ(s["datapath"], "ebpfnet") << s.dump();
    v[s["metric"]] = s["value"].get<double>();
  }
  for (std::string m : {"scale_add_per_ep_ms", "scale_list_ms", "scale_status_ms", "scale_del_per_ep_ms",
                        "scale_cli_peak_rss_mib", "scale_state_per_ep_kib", "scale_map_entries_per_ep_kib"})
    EXPECT_GT(v[m], 0) << m;
  EXPECT_EQ(v["scale_pairs_ok_pct"], 100) << "every probed pair reaches the other";
  EXPECT_EQ(j["options"]["scale_n"], 24);
  std::string prefix = j["options"]["namespace_prefix"];
  EXPECT_FALSE(has_prefix(test::netns_names(), prefix)) << "namespaces of the run were left";
}

TEST(BenchCli, InterruptedRunRemovesItsSandboxes) {
  EBPFNET_REQUIRE_ROOT();
  ebpfnet::test::TempStateDir out;
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(EBPFNET_BIN, EBPFNET_BIN, "bench", "--only", "rr,crr", "--rounds", "5", "--duration",
          "2", "--tools", BENCH_TOOLS_DIR, static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string prefix = "eb-" + std::to_string(pid) + "-";
  // Interrupt once its sandboxes exist (all four are built before the first load runs).
  bool built = ebpfnet::test::wait_until(
      [&] { return has_prefix(test::netns_names(), prefix + "e"); }, std::chrono::seconds(30));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(pid, SIGINT);  // our own child, by PID
  int status = 0;
  bool exited = ebpfnet::test::wait_until(
      [&] { return waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(30));
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  ASSERT_TRUE(built) << "the bench never built its ebpfnet sandbox";
  ASSERT_TRUE(exited) << "the bench did not stop within 30 s of SIGINT";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(has_prefix(test::netns_names(), prefix)) << "namespaces of the run were left";
}

}  // namespace
}  // namespace ebpfnet::bench
