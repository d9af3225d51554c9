// The load runners: one measurement of one metric on one datapath, the
// server pinned to one CPU and the client to another, each bounded in time.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bench/topology.hpp"

namespace ebpfnet::bench {

struct Tools {
  std::string udp_pps, tcp_rr, tcp_crr, iperf3 = "iperf3";
};
// The load tools in dir, else next to the ebpfnet binary, else in ../bench
// from it (the build tree). Throws naming what is missing.
Tools find_tools(const std::optional<std::filesystem::path>& dir,
                 const std::filesystem::path& ebpfnet_bin);

struct Placement {
  int client_cpu = 0;
  int server_cpu = 1;
  int nice = -20;  // of the load processes: the machine's other work (nice 0) disturbs less
};

struct Measurement {
  std::map<std::string, double> values;  // metric id -> value
  nlohmann::json raw;                    // what the tools printed
  std::string error;                     // non-empty: this sample failed
};

// TCP throughput with iperf3 -J, `streams` parallel streams. Values:
// tput<streams>_gbps, and (1 stream) cpu_s_per_gb from /proc/stat.
Measurement measure_tput(const Topology& t, const Tools& tools, Placement p, int streams,
                         int seconds);
// UDP 64-byte frames: pps_rx (received/s), pps_tx (generator), pps_loss_pct,
// cpu_s_per_mpkt.
Measurement measure_pps(const Topology& t, const Tools& tools, Placement p, int seconds,
                        int flows = 8, long max_packets = 0, long pps_limit = 0);
// TCP ping-pong on one connection: rr_tps, rr_p50_us, rr_p99_us.
Measurement measure_rr(const Topology& t, const Tools& tools, Placement p, int seconds,
                       const std::string& prefix = "rr");
// TCP connect/request/response/close, 4 in flight: crr_cps, crr_p99_us.
Measurement measure_crr(const Topology& t, const Tools& tools, Placement p, int seconds,
                        const std::string& prefix = "crr");

// Busy and total CPU time of the machine so far (all CPUs, /proc/stat), seconds.
struct CpuTimes {
  double busy = 0, total = 0;
};
CpuTimes cpu_times();

}  // namespace ebpfnet::bench
