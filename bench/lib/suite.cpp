#include "bench/suite.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "bench/controlplane.hpp"
#include "bench/machine.hpp"
#include "bench/metrics.hpp"
#include "bench/prefilter.hpp"
#include "bench/process.hpp"
#include "bench/scale.hpp"
#include "bench/services.hpp"
#include "bench/stats.hpp"
#include "bench/topology.hpp"

namespace ebpfnet::bench {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// One of an issue's targets, judged on a value of this run (null: not measured).
json target_of(const std::string& what, const json& value, const std::string& op, double goal) {
  json t = {{"what", what}, {"value", value}, {"op", op}, {"goal", goal}};
  if (value.is_number()) {
    const double v = value.get<double>();
    t["met"] = op == ">=" ? v >= goal : op == "<=" ? v <= goal : v < goal;
  } else {
    t["met"] = nullptr;
  }
  return t;
}

std::string now_utc() {
  char b[32];
  std::time_t t = std::time(nullptr);
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

// A private directory for state and generated files, removed at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ebpfnet-bench-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v >= 100 ? "%.0f" : "%.2f", v);
  return b;
}

class Run {
 public:
  Run(const SuiteOptions& opt, std::ostream& log) : opt_(opt), log_(log) {}

  json go() {
    auto t0 = Clock::now();
    std::string prefix = "eb-" + std::to_string(getpid()) + "-";
    TempDir dir;
    Tools tools = find_tools(opt_.tools_dir, opt_.ebpfnet_bin);
    json results = {{"schema", "ebpfnet-bench/1"},
                    {"started", now_utc()},
                    {"machine", describe_machine()},
                    {"tools", tool_versions(tools)},
                    {"datapaths", json::array()},
                    {"samples", json::array()},
                    {"measurements", json::array()},
                    {"unavailable", json::array()},
                    {"failures", json::array()},
                    {"notes", json::array()}};
    results["options"] = {{"quick", opt_.quick},
                          {"groups", groups_},
                          {"datapaths", datapaths_},
                          {"rounds", opt_.rounds},
                          {"duration_s", opt_.duration_s},
                          {"rule_counts", opt_.rule_counts},
                          {"cp_batch", opt_.cp_batch},
                          {"cp_singles", opt_.cp_singles},
                          {"scale_n", opt_.scale_n},
                          {"udp_flows", opt_.udp_flows},
                          {"service_counts", opt_.service_counts},
                          {"service_add_reps", opt_.service_add_reps},
                          {"placement",
                           {{"client_cpu", opt_.placement.client_cpu},
                            {"server_cpu", opt_.placement.server_cpu},
                            {"nice", opt_.placement.nice}}},
                          {"rr_placement",
                           {{"client_cpu", opt_.rr_placement.client_cpu},
                            {"server_cpu", opt_.rr_placement.server_cpu}}},
                          {"namespace_prefix", prefix}};
    results_ = &results;
    note("ebpfnet-xdp is not measured: ebpfnet has no XDP forwarding mode (XDP on veth turns "
         "off TSO on the endpoint side and loses checksum offload state on redirect; XDP "
         "belongs on the uplink).");
    note("CPU cost is the busy time of the whole machine (/proc/stat, all CPUs) during the "
         "client's run, divided by the bytes or packets received: other work on the machine "
         "counts too.");

    TopologyConfig tc{prefix, opt_.ebpfnet_bin, dir.path()};
    std::vector<std::unique_ptr<Topology>> topos;
    bool traffic = has(groups_, "tput") || has(groups_, "pps") || has(groups_, "rr") ||
                   has(groups_, "crr") || has(groups_, "rules");
    if (traffic) {
      for (const auto& dp : datapaths_) {
        progress("building " + dp);
        topos.push_back(make_topology(dp, tc));
        auto& t = topos.back();
        if (dp == "ebpfnet") {
          std::string why = t->set_rules(0);
          if (!why.empty()) {
            unavailable("ebpfnet policy (main metrics run without it)", why);
          }
        }
      }
      for (const auto& t : topos)
        results["datapaths"].push_back({{"name", t->name()},
                                        {"description", t->description()},
                                        {"namespaces", t->namespaces()},
                                        {"client", t->client_ip()},
                                        {"server", t->server_ip()}});
    }
    const int D = opt_.duration_s;
    const auto P = opt_.placement;
    const auto RP = opt_.rr_placement;
    for (int round = 1; round <= opt_.rounds; ++round) {
      round_ = round;
      for (const auto& t : topos) {
        if (!has(groups_, "tput")) break;
        measure("tput", *t, -1, [&] { return measure_tput(*t, tools, P, 1, D); });
        measure("tput", *t, -1, [&] { return measure_tput(*t, tools, P, 4, D); });
      }
      for (const auto& t : topos)
        if (has(groups_, "pps"))
          measure("pps", *t, -1, [&] { return measure_pps(*t, tools, P, D, opt_.udp_flows); });
      for (const auto& t : topos)
        if (has(groups_, "rr")) measure("rr", *t, -1, [&] { return measure_rr(*t, tools, RP, D); });
      for (const auto& t : topos)
        if (has(groups_, "crr"))
          measure("crr", *t, -1, [&] { return measure_crr(*t, tools, RP, D); });
      if (has(groups_, "rules")) run_rules(topos, tools);
      if (has(groups_, "cp")) run_cp(prefix, dir.path());
      if (has(groups_, "prefilter")) run_prefilter(prefix);
    }
    // Once, not per round: it takes minutes.
    round_ = 1;
    if (has(groups_, "scale")) run_scale_group(prefix, dir.path());
    if (has(groups_, "services")) run_services_group(prefix, dir.path(), tools);
    topos.clear();  // every sandbox goes before the report is written
    prefilter_.reset();
    progress("sandboxes removed");
    results["summary"] = summarize_samples(results["samples"]);
    for (const auto& row : results["summary"])
      if (row["metric"] == "pps_tx" && row["datapath"] == "direct")
        note("pps: the generator (one sending thread on CPU " +
             std::to_string(opt_.placement.client_cpu) + ", " + std::to_string(opt_.udp_flows) +
             " flows) reached " + fmt(row["median"].get<double>()) +
             " packets/s on direct: that is the ceiling here. The sending CPU also runs the "
             "veth hop's softirq (the whole path up to the receiver's socket), so the sender's "
             "rate is the datapath's per-packet cost, and loss stays 0 while the receiver on "
             "its own CPU keeps up.");
    summarize_prefilter(results);
    summarize_services(results);
    summarize_cp(results);
    results["duration_s"] = std::chrono::duration<double>(Clock::now() - t0).count();
    return results;
  }

  std::vector<std::string> groups_, datapaths_;

 private:
  void progress(const std::string& s) { log_ << "bench: " << s << std::endl; }
  void note(const std::string& s) { (*results_)["notes"].push_back(s); }
  void unavailable(const std::string& what, const std::string& why) {
    for (const auto& u : (*results_)["unavailable"])
      if (u["what"] == what) return;
    (*results_)["unavailable"].push_back({{"what", what}, {"reason", why}});
    progress("not measured: " + what + ": " + why);
  }

  void record(const std::string& metric, const std::string& dp, int rules, double v) {
    json s = {{"round", round_}, {"metric", metric}, {"datapath", dp}, {"value", v}};
    if (rules >= 0) s["rules"] = rules;
    (*results_)["samples"].push_back(s);
  }

  template <typename F>
  void measure(const std::string& group, const Topology& t, int rules, F f) {
    throw_if_interrupted();
    Measurement m;
    try {
      m = f();
    } catch (const Interrupted&) {
      throw;
    } catch (const std::exception& e) {
      m.error = e.what();
    }
    json j = {{"round", round_}, {"group", group}, {"datapath", t.name()}, {"values", m.values},
              {"raw", m.raw}};
    if (rules >= 0) j["rules"] = rules;
    std::string line = "[round " + std::to_string(round_) + "/" + std::to_string(opt_.rounds) +
                       "] " + group + " " + t.name() +
                       (rules >= 0 ? " @" + std::to_string(rules) + " rules" : "") + ":";
    if (!m.error.empty()) {
      j["error"] = m.error;
      (*results_)["failures"].push_back(
          {{"round", round_}, {"group", group}, {"datapath", t.name()}, {"error", m.error}});
      line += " FAILED: " + m.error;
    }
    for (auto& [k, v] : m.values) {
      record(k, t.name(), rules, v);
      line += " " + k + "=" + fmt(v);
    }
    (*results_)["measurements"].push_back(j);
    progress(line);
  }

  void run_rules(std::vector<std::unique_ptr<Topology>>& topos, const Tools& tools) {
    const int D = opt_.duration_s;
    const auto P = opt_.rr_placement;
    bool any = false;
    for (int n : opt_.rule_counts) {
      for (auto& t : topos) {
        if (t->name() != "bridge-iptables" && t->name() != "ebpfnet") continue;
        any = true;
        throw_if_interrupted();
        std::string why;
        auto t0 = Clock::now();
        try {
          why = t->set_rules(n);
        } catch (const Interrupted&) {
          throw;
        } catch (const std::exception& e) {
          why = std::string("loading rules failed: ") + e.what();
        }
        if (!why.empty()) {
          unavailable(t->name() + " at " + std::to_string(n) + " rules", why);
          continue;
        }
        double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
        progress(t->name() + ": " + std::to_string(n) + " rules loaded in " + fmt(load_s) + " s");
        measure("rules", *t, n, [&] { return measure_rr(*t, tools, P, D, "rules_rr"); });
        measure("rules", *t, n, [&] { return measure_crr(*t, tools, P, D, "rules_crr"); });
      }
    }
    if (!any) unavailable("rule scaling", "needs bridge-iptables or ebpfnet in --datapaths");
    // Back to the main metrics' setting.
    for (auto& t : topos)
      if (t->name() == "bridge-iptables" || t->name() == "ebpfnet") {
        try {
          t->set_rules(0);
        } catch (const std::exception& e) {
          progress(t->name() + ": resetting to 0 rules failed: " + e.what());
        }
      }
  }

  void run_scale_group(const std::string& prefix, const fs::path& dir) {
    ScaleConfig c{prefix, opt_.ebpfnet_bin, dir / "scale", opt_.scale_n, std::min(opt_.scale_n, 1000)};
    fs::create_directories(c.state_dir);
    note("scale: " + std::to_string(c.endpoints) + " endpoints added and deleted by the command line in "
         "rows of " + std::to_string(c.row) + "; the peak RSS is the largest of every command's; "
         "ebpfnet's own memory per endpoint is its share of the state on disk (state file, endpoint table) plus the keys and values of its "
         "endpoint map entries (the maps themselves are preallocated: see cp_bpfmem_total_kib).");
    try {
      run_scale(
          c,
          [&](const ScaleSample& s) {
            record(s.metric, "ebpfnet", -1, s.value);
            progress("scale " + s.metric + "=" + fmt(s.value));
          },
          [&](const std::string& s) { progress(s); });
    } catch (const Interrupted&) {
      throw;
    } catch (const std::exception& e) {
      (*results_)["failures"].push_back({{"round", 1}, {"group", "scale"}, {"datapath", "ebpfnet"}, {"error", e.what()}});
      progress(std::string("scale FAILED: ") + e.what());
    }
  }

  void run_cp(const std::string& prefix, const fs::path& dir) {
    CpConfig c{prefix, opt_.ebpfnet_bin, dir / ("cp" + std::to_string(round_)),
               opt_.cp_singles, opt_.cp_batch};
    fs::create_directories(c.state_dir);
    if (round_ == 1) {
      note("cp: kernel memory per endpoint is the Slab+Percpu growth of the whole machine while "
           "the row was added, divided by its length: other work on the machine counts too.");
      note("cp: BPF map memory is what the kernel charges each map (fdinfo memlock), sized by "
           "max_entries and preallocated, so it does not grow per endpoint; "
           "cp_bpfmem_total_kib is the node's whole datapath.");
      note("cp: ip-batch is the kernel's floor for the namespaces and veth pairs alone (two `ip "
           "-batch` processes for the whole row; deleting the namespaces takes the veths, and the "
           "row is deleted when they are gone); ip-batch+attach adds a clsact filter with a "
           "two-instruction program on each veth, the floor for a datapath; ip-batch+tcx a TCX "
           "link instead, one after another, and ip-batch+tcx-threads from 8 threads at once "
           "(each TCX attach waits for an RCU grace period: the machine's rcu_expedited decides "
           "how long); ebpfnet also addresses, routes and maps; ebpfnet-tcx is a node attached "
           "with --tc-mode tcx.");
    }
    try {
      run_controlplane(
          c,
          [&](const CpSample& s) {
            record(s.metric, s.datapath, -1, s.value);
            if (s.metric == "cp_add_batch_ms") record("cp_add_per_ep_ms", s.datapath, -1, s.value / c.batch);
            if (s.metric == "cp_del_batch_ms") record("cp_del_per_ep_ms", s.datapath, -1, s.value / c.batch);
            progress("[round " + std::to_string(round_) + "] cp " + s.datapath + " " + s.metric +
                     "=" + fmt(s.value));
          },
          [&](const std::string& s) { progress(s); });
    } catch (const Interrupted&) {
      throw;
    } catch (const std::exception& e) {
      (*results_)["failures"].push_back(
          {{"round", round_}, {"group", "cp"}, {"datapath", "-"}, {"error", e.what()}});
      progress(std::string("control plane FAILED: ") + e.what());
    }
  }

  // XDP and tc in turn (which goes first alternates by round), each a flood
  // of D seconds from one thread on the client CPU, which also runs the
  // veth's receive softirq: the whole drop path is on that one CPU.
  void run_prefilter(const std::string& prefix) {
    const int cpu = opt_.placement.client_cpu;
    try {
      if (!prefilter_) {
        progress("building the prefilter bench");
        prefilter_ = std::make_unique<PrefilterBench>(prefix);
        // Not a forwarding datapath: described under results["prefilter"].
        prefilter_setup_ = json(
            {{"description", "two namespaces and a veth pair; 1024 deny entries (the flood's source " +
                                 std::string(PrefilterBench::kSource) + " in " + PrefilterBench::kDenied +
                                 "); xdp: the uplink prefilter program in native mode (as prefilter add attaches it "
                                 "on a veth); xdp-generic: the same in generic mode; tc: the same lookup and drop at "
                                 "tc ingress (bench/bpf/tc_prefilter.bpf.c)"},
             {"namespaces", prefilter_->namespaces()}});
        note("prefilter: one sending thread on CPU " + std::to_string(cpu) +
             " floods 64-byte frames (AF_PACKET, qdisc bypass) into a veth; the veth's receive path runs in "
             "that CPU's softirq, so the generator, the hook and the drop share one CPU and the rates include "
             "the generator's own cost. On a veth the sender has already built the skb XDP sees, and native XDP "
             "copies it into a page with XDP's headroom first: what XDP saves on a real NIC (no skb at all) "
             "does not show here.");
      }
      std::vector<DropHook> order = {DropHook::xdp, DropHook::tc, DropHook::xdp_generic};
      std::rotate(order.begin(), order.begin() + (round_ - 1) % 3, order.end());
      for (DropHook h : order) {
        throw_if_interrupted();
        const DropSample s = prefilter_->run(h, cpu, opt_.duration_s);
        const double drop = s.seconds > 0 ? s.dropped / s.seconds : 0, sent = s.seconds > 0 ? s.sent / s.seconds : 0;
        record("prefilter_drop_pps", to_string(h), -1, drop);
        record("prefilter_sent_pps", to_string(h), -1, sent);
        json m = {{"round", round_}, {"group", "prefilter"}, {"datapath", to_string(h)},
                  {"values", {{"prefilter_drop_pps", drop}, {"prefilter_sent_pps", sent}}},
                  {"raw", {{"sent", s.sent}, {"dropped", s.dropped}, {"seconds", s.seconds}}}};
        if (!s.xdp_mode.empty()) m["raw"]["xdp_mode"] = s.xdp_mode;
        (*results_)["measurements"].push_back(m);
        progress("[round " + std::to_string(round_) + "/" + std::to_string(opt_.rounds) + "] prefilter " +
                 to_string(h) + (s.xdp_mode.empty() ? "" : " (" + s.xdp_mode + ")") + ": dropped " + fmt(drop) +
                 "/s, sent " + fmt(sent) + "/s");
      }
    } catch (const Interrupted&) {
      throw;
    } catch (const std::exception& e) {
      (*results_)["failures"].push_back(
          {{"round", round_}, {"group", "prefilter"}, {"datapath", "-"}, {"error", e.what()}});
      progress(std::string("prefilter FAILED: ") + e.what());
    }
  }

  void record_services(const std::string& metric, const std::string& dp, int n, double v) {
    (*results_)["samples"].push_back(
        {{"round", round_}, {"metric", metric}, {"datapath", dp}, {"services", n}, {"value", v}});
  }

  // N services on ebpfnet and on kube-proxy's iptables mode: the services
  // are loaded once per N (ascending), then each round measures the
  // connection rate on both (which goes first alternates) and times single
  // adds. Sandboxes go when the group ends, also on failure.
  void run_services_group(const std::string& prefix, const fs::path& dir, const Tools& tools) {
    ServicesConfig c{prefix, opt_.ebpfnet_bin, dir / "services"};
    fs::create_directories(c.state_dir);
    std::vector<int> counts = opt_.service_counts;
    std::sort(counts.begin(), counts.end());
    counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
    services_setup_ = {{"counts", counts}, {"datapaths", json::array()}};
    note("services: ebpfnet-1 is a second ebpfnet sandbox that keeps one service; it is measured in the "
         "same rounds as ebpfnet and iptables at every N (its records carry that N), so ebpfnet at N against "
         "ebpfnet-1 compares the two under the same load of the machine.");
    note("services: tcp_crr (4 in flight, client CPU " + std::to_string(opt_.rr_placement.client_cpu) +
         ", backends' servers CPU " + std::to_string(opt_.rr_placement.server_cpu) +
         ") to the virtual IP of the last service added, while N exist; connect latency is connect() alone "
         "(SYN to SYN-ACK through the balancer). Service add: " + std::to_string(opt_.service_add_reps) +
         " single adds at each N, each removed again, median per round: ebpfnet-cli is a whole `ebpfnet "
         "service add` process, ebpfnet-lib Node::service_add in the bench's process, iptables-noflush an "
         "`iptables-restore --noflush` of that one service's chains and rules, iptables-restore the whole "
         "tables with N+1 services (a kube-proxy full sync).");
    std::vector<std::unique_ptr<ServiceDatapath>> dps;
    try {
      for (const auto& name : service_datapaths()) {
        progress("building the services bench: " + name);
        dps.push_back(make_service_datapath(name, c));
        services_setup_["datapaths"].push_back({{"name", name},
                                                {"description", dps.back()->description()},
                                                {"namespaces", dps.back()->namespaces()}});
      }
      for (int n : counts) {
        round_ = 1;
        for (auto& d : dps) {
          throw_if_interrupted();
          if (d->name() == "ebpfnet-1") {  // the reference stays at one service
            if (d->services() == 0) d->grow_to(1);
            continue;
          }
          const double s = d->grow_to(n);
          record_services("svc_load_s", d->name(), n, s);
          progress("services: " + d->name() + " has " + std::to_string(n) + " services (" + fmt(s) + " s)");
        }
        for (int round = 1; round <= opt_.rounds; ++round) {
          round_ = round;
          for (size_t k = 0; k < dps.size(); ++k) {
            throw_if_interrupted();
            const ServiceDatapath& d = *dps[(k + static_cast<size_t>(round) - 1) % dps.size()];
            Measurement m = measure_service_crr(d, tools, opt_.rr_placement, opt_.duration_s);
            json j = {{"round", round_}, {"group", "services"}, {"datapath", d.name()}, {"services", n},
                      {"values", m.values}, {"raw", m.raw}};
            std::string line = "[round " + std::to_string(round_) + "/" + std::to_string(opt_.rounds) +
                               "] services " + d.name() + " @" + std::to_string(n) + ":";
            if (!m.error.empty()) {
              j["error"] = m.error;
              (*results_)["failures"].push_back({{"round", round_}, {"group", "services"}, {"datapath", d.name()},
                                                 {"error", m.error}});
              line += " FAILED: " + m.error;
            }
            for (auto& [k2, v] : m.values) {
              record_services(k2, d.name(), n, v);
              line += " " + k2 + "=" + fmt(v);
            }
            (*results_)["measurements"].push_back(j);
            progress(line);
          }
          for (auto& d : dps) {
            if (d->name() == "ebpfnet-1") continue;
            for (auto& [way, ms] : d->time_add(opt_.service_add_reps)) {
              const double med = summarize(ms).median;
              record_services("svc_add_ms", way, n, med);
              (*results_)["measurements"].push_back({{"round", round_}, {"group", "services"}, {"datapath", way},
                                                     {"services", n}, {"values", {{"svc_add_ms", med}}},
                                                     {"raw", {{"add_ms", ms}}}});
              progress("[round " + std::to_string(round_) + "/" + std::to_string(opt_.rounds) + "] services " +
                       way + " @" + std::to_string(n) + ": one more service added in " + fmt(med) + " ms");
            }
          }
        }
      }
    } catch (const Interrupted&) {
      throw;
    } catch (const std::exception& e) {
      (*results_)["failures"].push_back(
          {{"round", round_}, {"group", "services"}, {"datapath", "-"}, {"error", e.what()}});
      progress(std::string("services FAILED: ") + e.what());
    }
    dps.clear();
    progress("services: sandboxes removed");
  }

  // Per datapath and N: conn/s, connect p50/p99, add and load times; and
  // the issue's targets as ratios read from this run.
  void summarize_services(json& results) {
    if (services_setup_.is_null()) return;
    json out = {{"setup", services_setup_}, {"traffic", json::object()}, {"add_ms", json::object()},
                {"load_s", json::object()}, {"targets", json::array()}};
    const std::map<std::string, std::pair<std::string, std::string>> where = {
        {"svc_crr_cps", {"traffic", "conn_per_s"}},
        {"svc_connect_p50_us", {"traffic", "connect_p50_us"}},
        {"svc_connect_p99_us", {"traffic", "connect_p99_us"}},
        {"svc_add_ms", {"add_ms", ""}},
        {"svc_load_s", {"load_s", ""}}};
    const json* crr_hi = nullptr;
    const std::vector<int> counts = services_setup_["counts"];
    const int lo = counts.empty() ? 0 : counts.front(), hi = counts.empty() ? 0 : counts.back();
    for (const auto& row : results["summary"]) {
      auto it = where.find(row["metric"].get<std::string>());
      if (it == where.end() || !row.contains("services")) continue;
      const std::string dp = row["datapath"], n = std::to_string(row["services"].get<int>());
      const auto& [section, field] = it->second;
      if (field.empty()) out[section][dp][n] = row["median"];
      else out[section][dp][n][field] = row["median"];
      if (row["metric"] == "svc_crr_cps" && dp == "ebpfnet" && row["services"] == hi) crr_hi = &row;
    }
    auto target = [&](const std::string& what, const json& value, const std::string& op, double goal) {
      out["targets"].push_back(target_of(what, value, op, goal));
    };
    auto ratio = [&](const std::string& key) -> json {
      if (!crr_hi || !(*crr_hi)["ratios"].contains(key)) return nullptr;
      return (*crr_hi)["ratios"][key]["median"];
    };
    const std::string H = std::to_string(hi);
    // Against the reference at one service measured in the same rounds; else
    // against ebpfnet's own rounds at the fewest services.
    if (json r = ratio("ebpfnet-1"); !r.is_null())
      target("ebpfnet conn/s at " + H + " services / at 1 (ebpfnet-1, same rounds)", r, ">=", 0.97);
    else if (lo != hi)
      target("ebpfnet conn/s at " + H + " services / at " + std::to_string(lo), ratio("same datapath at " + std::to_string(lo)),
             ">=", 0.97);
    target("ebpfnet conn/s / iptables conn/s at " + H + " services", ratio("iptables"), ">=", 2.0);
    for (std::string way : {"ebpfnet-lib", "ebpfnet-cli"}) {
      json v = out["add_ms"].contains(way) && out["add_ms"][way].contains(H) ? out["add_ms"][way][H] : json();
      target("service add at " + H + " services, " + way + " (ms)", v, "<", 10.0);
    }
    results["services"] = out;
  }

  // The control plane's targets (issue 12), as round-by-round ratios of this run.
  void summarize_cp(json& results) {
    auto ratio = [&](const std::string& metric, const std::string& dp, const std::string& base) -> json {
      for (const auto& row : results["summary"])
        if (row["metric"] == metric && row["datapath"] == dp && row["ratios"].contains(base))
          return row["ratios"][base]["median"];
      return nullptr;
    };
    if (!has(groups_, "cp")) return;
    json targets = json::array();
    targets.push_back(target_of("ebpfnet row create / ip -batch with a clsact filter per veth",
                                ratio("cp_add_batch_ms", "ebpfnet", "ip-batch+attach"), "<=", 1.5));
    targets.push_back(target_of("ebpfnet CLI create one / ip commands",
                                ratio("cp_add1_ms", "ebpfnet-cli", "ip"), "<=", 0.5));
    targets.push_back(target_of("ebpfnet row delete / ip -batch",
                                ratio("cp_del_batch_ms", "ebpfnet", "ip-batch"), "<=", 1.2));
    results["cp"] = {{"targets", targets}};
  }

  // Both rates and their ratio, at the top of results.json.
  void summarize_prefilter(json& results) {
    if (prefilter_setup_.is_null()) return;
    json out = {{"setup", prefilter_setup_}};
    for (const auto& row : results["summary"]) {
      if (row["metric"] != "prefilter_drop_pps") continue;
      out[row["datapath"].get<std::string>() + "_drop_pps"] = row["median"];
      if (row["ratios"].contains("tc"))
        out[row["datapath"].get<std::string>() + "_over_tc"] = row["ratios"]["tc"];
    }
    results["prefilter"] = out;
  }

  const SuiteOptions& opt_;
  std::ostream& log_;
  json* results_ = nullptr;
  int round_ = 0;
  std::unique_ptr<PrefilterBench> prefilter_;
  json prefilter_setup_;
  json services_setup_;
};

}  // namespace

SuiteOptions default_options(bool quick) {
  SuiteOptions o;
  o.quick = quick;
  if (quick) {
    o.rounds = 1;
    o.duration_s = 1;
    o.rule_counts = {0, 1000};
    o.cp_batch = 10;
    o.cp_singles = 3;
  }
  return o;
}

json run_suite(const SuiteOptions& opt, std::ostream& log) {
  Run r(opt, log);
  for (const auto& [g, help] : metric_groups())
    if (opt.groups.empty() ? !has(opt_in_groups(), g) : has(opt.groups, g)) r.groups_.push_back(g);
  for (const auto& g : opt.groups) {
    bool known = false;
    for (const auto& [k, help] : metric_groups()) known |= k == g;
    if (!known) throw std::invalid_argument("unknown metric '" + g + "'");
  }
  for (const auto& d : opt.datapaths)
    if (!has(known_datapaths(), d)) throw std::invalid_argument("unknown datapath '" + d + "'");
  r.datapaths_ = opt.datapaths.empty() ? known_datapaths() : opt.datapaths;
  return r.go();
}

}  // namespace ebpfnet::bench
