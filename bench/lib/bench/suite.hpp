// The whole benchmark run: builds every datapath in its own sandbox, runs
// the chosen metrics round by round with the datapaths interleaved, and
// returns the results document (results.json); removes every sandbox on
// every exit path.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "bench/load.hpp"

namespace ebpfnet::bench {

struct SuiteOptions {
  bool quick = false;
  std::vector<std::string> groups;     // --only; empty = all
  std::vector<std::string> datapaths;  // --datapaths; empty = all
  int rounds = 3;
  int duration_s = 3;
  std::vector<int> rule_counts = {0, 1000, 10000};
  int cp_batch = 100;
  int cp_singles = 5;
  int scale_n = 10000;  // endpoints of the scale run
  int udp_flows = 8;
  std::vector<int> service_counts = {1, 1000, 10000};  // services: N present
  int service_add_reps = 5;  // services: single adds timed at each N (median per round)
  Placement placement;  // tput, pps: sender and receiver on two CPUs
  // rr, crr, rules: both on one CPU by default. Request/response is bound by
  // wake-up latency; waking an idle CPU of a VM (an IPI, a halted vCPU the
  // host must schedule) costs ~100 us here, p99 a host tick, and buries the
  // datapath's cost; on one CPU the ping-pong is a context switch.
  Placement rr_placement{0, 0};
  std::optional<std::filesystem::path> tools_dir;
  std::filesystem::path ebpfnet_bin;
};

// The standard suite, or with quick the CI smoke (1 round of 1 s, rules 0
// and 1000, control plane with 10 endpoints).
SuiteOptions default_options(bool quick);

// Progress goes to log as it goes.
nlohmann::json run_suite(const SuiteOptions& opt, std::ostream& log);

}  // namespace ebpfnet::bench
