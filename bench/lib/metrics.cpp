#include "bench/metrics.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include "bench/stats.hpp"

namespace ebpfnet::bench {

using nlohmann::json;

const std::vector<MetricDef>& metric_defs() {
  static const std::vector<MetricDef> v = {
      {"tput1_gbps", "tput", "TCP throughput, 1 stream", "Gbit/s", true},
      {"tput4_gbps", "tput", "TCP throughput, 4 streams", "Gbit/s", true},
      {"cpu_s_per_gb", "tput", "CPU cost of TCP, 1 stream", "CPU s per GB", false},
      {"pps_rx", "pps", "UDP 64-byte packets received", "packets/s", true},
      {"pps_tx", "pps", "UDP 64-byte packets sent (generator)", "packets/s", true},
      {"pps_loss_pct", "pps", "UDP 64-byte loss", "%", false},
      {"cpu_s_per_mpkt", "pps", "CPU cost of UDP 64-byte", "CPU s per million packets", false},
      {"rr_tps", "rr", "TCP request/response", "transactions/s", true},
      {"rr_p50_us", "rr", "TCP request/response latency p50", "us", false},
      {"rr_p99_us", "rr", "TCP request/response latency p99", "us", false},
      {"crr_cps", "crr", "TCP connection rate", "connections/s", true},
      {"crr_p99_us", "crr", "TCP connection latency p99", "us", false},
      {"rules_rr_tps", "rules", "TCP request/response with N rules", "transactions/s", true},
      {"rules_rr_p50_us", "rules", "TCP RR latency p50 with N rules", "us", false},
      {"rules_rr_p99_us", "rules", "TCP RR latency p99 with N rules", "us", false},
      {"rules_crr_cps", "rules", "TCP connection rate with N rules", "connections/s", true},
      {"prefilter_drop_pps", "prefilter", "denied 64-byte frames dropped on one CPU (xdp: the uplink prefilter; tc: the same lookup at tc ingress)", "packets/s", true},
      {"prefilter_sent_pps", "prefilter", "denied 64-byte frames sent (generator, same CPU)", "packets/s", true},
      {"cp_add1_ms", "cp", "create one endpoint", "ms", false},
      {"cp_del1_ms", "cp", "delete one endpoint", "ms", false},
      {"cp_add_batch_ms", "cp", "create endpoints in a row", "ms", false},
      {"cp_del_batch_ms", "cp", "delete endpoints in a row", "ms", false},
      {"cp_add_per_ep_ms", "cp", "create, per endpoint of the row", "ms", false},
      {"cp_del_per_ep_ms", "cp", "delete, per endpoint of the row", "ms", false},
      {"cp_attach_per_ep_ms", "cp", "floor: attach a program, per veth of the row", "ms", false},
      {"cp_step_prepare_ms", "cp", "ebpfnet create, step: lock, state, open maps", "ms", false},
      {"cp_step_netns_ms", "cp", "ebpfnet create, step: netns", "ms", false},
      {"cp_step_veth_ms", "cp", "ebpfnet create, step: veth pair", "ms", false},
      {"cp_step_endpoint_config_ms", "cp", "ebpfnet create, step: endpoint side config", "ms", false},
      {"cp_step_node_config_ms", "cp", "ebpfnet create, step: node side config", "ms", false},
      {"cp_step_maps_ms", "cp", "ebpfnet create, step: BPF maps", "ms", false},
      {"cp_step_attach_ms", "cp", "ebpfnet create, step: attach program", "ms", false},
      {"cp_step_state_ms", "cp", "ebpfnet create, step: state file", "ms", false},
      {"cp_kmem_per_ep_kib", "cp", "kernel memory per endpoint (Slab+Percpu)", "KiB", false},
      {"cp_bpfmem_per_ep_kib", "cp", "BPF map memory per endpoint (memlock)", "KiB", false},
      {"cp_bpfmem_total_kib", "cp", "BPF map memory of the node (memlock)", "KiB", false},
      {"scale_add_per_ep_ms", "scale", "create, per endpoint, rows up to N", "ms", false},
      {"scale_add_first_row_per_ep_ms", "scale", "create, per endpoint of the first row", "ms", false},
      {"scale_add_last_row_per_ep_ms", "scale", "create, per endpoint of the last row", "ms", false},
      {"scale_list_ms", "scale", "endpoint list -o json at N", "ms", false},
      {"scale_status_ms", "scale", "status -o json at N", "ms", false},
      {"scale_pairs_ok_pct", "scale", "random endpoint pairs reachable (ICMP)", "%", true},
      {"scale_del_per_ep_ms", "scale", "delete, per endpoint, rows of N", "ms", false},
      {"scale_cli_peak_rss_mib", "scale", "peak RSS of any ebpfnet command", "MiB", false},
      {"scale_kmem_per_ep_kib", "scale", "kernel memory per endpoint (Slab+Percpu)", "KiB", false},
      {"scale_state_per_ep_kib", "scale", "state on disk per endpoint (state file, endpoint table)", "KiB", false},
      {"scale_map_entries_per_ep_kib", "scale", "map entries per endpoint (keys, values)", "KiB", false},
      {"scale_own_mem_pct_of_kernel", "scale", "ebpfnet's own memory per endpoint / the kernel's", "%", false},
      {"svc_crr_cps", "services", "TCP connection rate to one service, N services present", "connections/s", true},
      {"svc_connect_p50_us", "services", "TCP connect latency p50 to one service, N present", "us", false},
      {"svc_connect_p99_us", "services", "TCP connect latency p99 to one service, N present", "us", false},
      {"svc_add_ms", "services", "add one more service with N present", "ms", false},
      {"svc_load_s", "services", "load services up to N (ebpfnet: one transaction from the previous N; iptables: "
                                 "iptables-restore of all N)", "s", false},
  };
  return v;
}

const MetricDef* find_metric(const std::string& id) {
  for (const auto& m : metric_defs())
    if (m.id == id) return &m;
  return nullptr;
}

const std::vector<std::pair<std::string, std::string>>& metric_groups() {
  static const std::vector<std::pair<std::string, std::string>> v = {
      {"tput", "TCP throughput, 1 and 4 streams (iperf3), CPU s per GB"},
      {"pps", "UDP 64-byte packets/s received and loss (udp_pps), CPU s per million packets"},
      {"rr", "TCP ping-pong transactions/s, p50/p99 latency (tcp_rr)"},
      {"crr", "TCP connect/request/response/close per second (tcp_crr)"},
      {"rules", "RR and connection rate at each --rules count (bridge-iptables, ebpfnet)"},
      {"cp", "control plane: create/delete 1 and a row of endpoints; memory per endpoint"},
      {"prefilter", "uplink prefilter: denied 64-byte frames dropped/s on one CPU, XDP vs the same drop at tc"},
      {"scale", "N endpoints on one node (--scale-n, default 10000): add, list, status, traffic, "
                "delete, memory; only with --only (minutes)"},
      {"services", "N services (--services-counts, default 1,1000,10000): conn/s and connect p50/p99 to one, "
                   "ebpfnet vs kube-proxy's iptables mode; adding one more; only with --only (minutes)"},
  };
  return v;
}

const std::vector<std::string>& opt_in_groups() {
  static const std::vector<std::string> v = {"scale", "services"};
  return v;
}

namespace {

// metric, datapath, rules (or services, by the metric's group; -1: none)
using Key = std::tuple<std::string, std::string, int>;

int rules_of(const json& s) {
  if (s.contains("rules")) return s["rules"].get<int>();
  return s.contains("services") ? s["services"].get<int>() : -1;
}

}  // namespace

json summarize_samples(const json& samples) {
  // (metric, datapath, rules) -> round -> value
  std::map<Key, std::map<int, double>> by;
  std::vector<Key> order;
  for (const auto& s : samples) {
    if (!s.contains("value") || !s["value"].is_number()) continue;
    Key k{s["metric"], s["datapath"], rules_of(s)};
    if (!by.count(k)) order.push_back(k);
    by[k][s["round"].get<int>()] = s["value"].get<double>();
  }
  auto ratio = [&](const std::map<int, double>& v, const Key& base) -> json {
    auto it = by.find(base);
    if (it == by.end()) return nullptr;
    std::vector<double> r;
    for (auto [round, x] : v) {
      auto b = it->second.find(round);
      // A ratio to a baseline that is not positive (a noisy memory delta) means nothing.
      if (b != it->second.end() && b->second > 0) r.push_back(x / b->second);
    }
    if (r.empty()) return nullptr;
    Summary s = summarize(r);
    return {{"median", s.median}, {"min", s.min}, {"max", s.max}};
  };
  json rows = json::array();
  for (const auto& k : order) {
    const auto& [metric, dp, rules] = k;
    const auto& v = by[k];
    std::vector<double> xs;
    for (auto [r, x] : v) xs.push_back(x);
    Summary s = summarize(xs);
    const MetricDef* def = find_metric(metric);
    json row = {{"metric", metric},
                {"datapath", dp},
                {"median", s.median},
                {"min", s.min},
                {"max", s.max},
                {"n", s.n},
                {"unit", def ? def->unit : ""},
                {"better", def && !def->higher_better ? "lower" : "higher"}};
    std::string group = def ? def->group : "";
    if (rules >= 0) row[group == "services" ? "services" : "rules"] = rules;
    json ratios = json::object();
    if (group == "cp") {
      for (std::string b : {"ip", "ip-batch", "ip-batch+attach", "ip-batch+tcx"})
        if (b != dp) {
          auto r = ratio(v, {metric, b, rules});
          if (!r.is_null()) ratios[b] = r;
        }
    } else if (group == "prefilter") {
      if (dp != "tc") {
        auto r = ratio(v, {metric, "tc", rules});
        if (!r.is_null()) ratios["tc"] = r;
      }
    } else if (group == "services") {
      // Against the same datapath at the fewest services, and the iptables baseline at as many.
      int fewest = rules;
      for (const auto& [other, v2] : by)
        if (std::get<0>(other) == metric && std::get<1>(other) == dp) fewest = std::min(fewest, std::get<2>(other));
      if (fewest != rules) {
        auto r = ratio(v, {metric, dp, fewest});
        if (!r.is_null()) ratios["same datapath at " + std::to_string(fewest)] = r;
      }
      if (dp == "ebpfnet") {
        auto r = ratio(v, {metric, "ebpfnet-1", rules});
        if (!r.is_null()) ratios["ebpfnet-1"] = r;
      }
      if (dp.rfind("iptables", 0) != 0)
        for (std::string b : {"iptables", "iptables-noflush", "iptables-restore"}) {
          auto r = ratio(v, {metric, b, rules});
          if (!r.is_null()) ratios[b] = r;
        }
    } else if (group == "rules") {
      if (rules != 0) {
        auto r = ratio(v, {metric, dp, 0});
        if (!r.is_null()) ratios["same datapath at 0 rules"] = r;
      }
      if (dp != "bridge-iptables") {
        auto r = ratio(v, {metric, "bridge-iptables", rules});
        if (!r.is_null()) ratios["bridge-iptables"] = r;
      }
    } else {
      for (std::string b : {"direct", "tc-peer", "bridge"})
        if (b != dp) {
          auto r = ratio(v, {metric, b, rules});
          if (!r.is_null()) ratios[b] = r;
        }
    }
    row["ratios"] = ratios;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace ebpfnet::bench
