// ebpfnet bench: the datapath benchmark suite (bench/lib does the work).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "bench/metrics.hpp"
#include "bench/process.hpp"
#include "bench/report.hpp"
#include "bench/suite.hpp"
#include "bench/topology.hpp"
#include "cli.hpp"
#include "ebpfnet/abi.h"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

std::string help_text() {
  std::string h =
      "Runs every datapath side by side in sandbox namespaces it creates and removes:\n"
      "  direct           one veth pair between the two namespaces (the limit)\n"
      "  tc-peer          a bare bpf_redirect_peer program on the node-side veths: the floor\n"
      "                   of ebpfnet's technique (no conntrack, NAT, policy or lookups)\n"
      "  bridge           veths on a Linux bridge (Docker's default)\n"
      "  bridge-iptables  bridge + br_netfilter, conntrack, MASQUERADE, N FORWARD rules\n"
      "  ebpfnet          ebpfnet's TC datapath: sandbox node with uplink (NAT, conntrack),\n"
      "                   policy with N rules on the server endpoint\n"
      "  (ebpfnet-xdp is not measured: there is no XDP forwarding mode)\n"
      "  services: ebpfnet (connect-time socket hooks), ebpfnet-tc (per-packet Maglev at tc)\n"
      "                   and iptables (kube-proxy's iptables mode on a bridge node), each with a\n"
      "                   client and two backends; ebpfnet-1: ebpfnet kept at one service,\n"
      "                   measured in the same rounds\n"
      "Metrics (--only):\n";
  for (const auto& [g, help] : bench::metric_groups()) h += "  " + g + std::string(g.size() < 8 ? 8 - g.size() : 1, ' ') + help + "\n";
  h += "Figures are medians (min-max) over the rounds; ratios (this / baseline) are taken\n"
       "round by round against direct, tc-peer and bridge (rules: against 0 rules and\n"
       "bridge-iptables; cp: against ip commands and ip -batch, alone and with a clsact\n"
       "filter or a TCX link per veth; services: against the fewest services, ebpfnet-1\n"
       "and iptables).\n";
  h += "Writes results.json, results.md and one PNG per metric to -o DIR; prints a table\n"
       "(or, with the global -o json, results.json) on stdout; progress on stderr.\n";
  return h;
}

// results.json, results.md and the charts in dir (nothing when dir is "").
void write_outputs(nlohmann::json& results, const std::string& out_dir) {
  if (out_dir.empty()) return;
  std::filesystem::path dir = out_dir;
  std::filesystem::create_directories(dir);
  std::string warning;
  auto charts = bench::write_charts(results, dir, &warning);
  if (!warning.empty()) std::cerr << "ebpfnet: " << warning << "\n";
  results["charts"] = nlohmann::json::array();
  for (const auto& c : charts) results["charts"].push_back(c.filename().string());
  std::ofstream(dir / "results.json") << results.dump(2) << "\n";
  std::ofstream(dir / "results.md") << bench::markdown_report(results);
  std::cerr << "bench: wrote " << (dir / "results.json").string() << ", results.md and "
            << charts.size() << " charts\n";
}

}  // namespace

void add_bench_command(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    bool quick = false;
    std::string only, datapaths, rules, service_counts, cpus = "0,1", rr_cpus = "0,0";
    std::optional<int> rounds, duration, cp_batch, scale_n;
    std::string out_dir, tools, report;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "datapath benchmark: ebpfnet against direct veth, "
                                          "a bare redirect_peer program, bridge and bridge+iptables, in one run");
  cmd->footer(help_text());
  cmd->add_flag("--quick", a->quick, "CI smoke: 1 round of 1 s, rules 0 and 1000, 10 endpoints (< 1 min)");
  cmd->add_option("--only", a->only,
                  "metrics to run, comma-separated: tput,pps,rr,crr,rules,cp,prefilter,scale,services (default: all but "
                  "scale and services)")
      ->type_name("LIST");
  cmd->add_option("--datapaths", a->datapaths,
                  "datapaths, comma-separated: direct,tc-peer,bridge,bridge-iptables,ebpfnet")
      ->type_name("LIST");
  cmd->add_option("--rounds", a->rounds, "rounds (datapaths interleaved in each); default 3, quick 1")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--duration", a->duration, "seconds per measurement; default 3, quick 1")
      ->check(CLI::Range(1, 600));
  cmd->add_option("--rules", a->rules, "rule counts for the rules metric; default 0,1000,10000")
      ->type_name("LIST");
  cmd->add_option("--services-counts", a->service_counts,
                  "numbers of services present for the services metric; default 1,1000,10000")
      ->type_name("LIST");
  cmd->add_option("--cp-batch", a->cp_batch, "endpoints in a row for cp; default 100, quick 10")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--scale-n", a->scale_n, "endpoints for scale; default 10000")
      ->check(CLI::Range(2, EBPFNET_MAX_ENDPOINTS));
  cmd->add_option("--cpus", a->cpus, "client CPU,server CPU for tput and pps")->capture_default_str();
  cmd->add_option("--rr-cpus", a->rr_cpus,
                  "client CPU,server CPU for rr, crr and rules (one CPU: no cross-CPU wake-ups)")
      ->capture_default_str();
  cmd->add_option("-o,--out", a->out_dir, "write results.json, results.md and PNG charts here")
      ->type_name("DIR");
  cmd->add_option("--tools", a->tools,
                  "where udp_pps, tcp_rr and tcp_crr are (default: next to ebpfnet, or ../bench)")
      ->type_name("DIR");
  cmd->add_option("--report", a->report,
                  "run nothing: print the table of an earlier results.json (and with -o, "
                  "write its results.md and charts again)")
      ->type_name("FILE");
  cmd->callback([&ctx, &action, a] {
    action = [&ctx, a]() -> int {
      if (!a->report.empty()) {
        std::ifstream f(a->report);
        if (!f) throw Error(Errc::not_found, "cannot read " + a->report);
        nlohmann::json results;
        try {
          results = nlohmann::json::parse(f);
        } catch (const std::exception& e) {
          throw Error(Errc::usage, a->report + ": not a results.json: " + e.what());
        }
        // The summary again from the samples, by this build's rules.
        results["summary"] = bench::summarize_samples(results.at("samples"));
        write_outputs(results, a->out_dir);
        if (ctx.json()) std::cout << results.dump(2) << "\n";
        else std::cout << bench::terminal_table(results);
        return 0;
      }
      auto o = bench::default_options(a->quick);
      o.groups = split(a->only);
      o.datapaths = split(a->datapaths);
      if (a->rounds) o.rounds = *a->rounds;
      if (a->duration) o.duration_s = *a->duration;
      if (a->cp_batch) o.cp_batch = *a->cp_batch;
      if (a->scale_n) o.scale_n = *a->scale_n;
      if (!a->rules.empty()) {
        o.rule_counts.clear();
        for (const auto& r : split(a->rules)) {
          try {
            int n = std::stoi(r);
            if (n < 0 || n > 100000) throw std::out_of_range(r);
            o.rule_counts.push_back(n);
          } catch (...) {
            throw Error(Errc::usage, "--rules: '" + r + "' is not a count from 0 to 100000");
          }
        }
      }
      if (!a->service_counts.empty()) {
        o.service_counts.clear();
        for (const auto& r : split(a->service_counts)) {
          try {
            size_t end = 0;
            int n = std::stoi(r, &end);
            if (end != r.size() || n < 1 || n > 60000) throw std::out_of_range(r);
            o.service_counts.push_back(n);
          } catch (...) {
            throw Error(Errc::usage, "--services-counts: '" + r + "' is not a count from 1 to 60000");
          }
        }
      }
      long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
      auto placement = [ncpu](const std::string& opt, const std::string& v, bench::Placement& p) {
        auto cpus = split(v);
        try {
          if (cpus.size() != 2) throw std::invalid_argument("");
          p.client_cpu = std::stoi(cpus[0]);
          p.server_cpu = std::stoi(cpus[1]);
        } catch (...) {
          throw Error(Errc::usage, opt + ": expected CLIENT,SERVER, e.g. 0,1");
        }
        if (p.client_cpu < 0 || p.client_cpu >= ncpu || p.server_cpu < 0 || p.server_cpu >= ncpu)
          throw Error(Errc::usage, opt + ": this machine has CPUs 0-" + std::to_string(ncpu - 1));
      };
      placement("--cpus", a->cpus, o.placement);
      placement("--rr-cpus", a->rr_cpus, o.rr_placement);
      if (!a->tools.empty()) o.tools_dir = a->tools;
      o.ebpfnet_bin = std::filesystem::read_symlink("/proc/self/exe");

      bench::install_signal_handlers();
      nlohmann::json results;
      try {
        results = bench::run_suite(o, std::cerr);
      } catch (const bench::Interrupted&) {
        std::cerr << "ebpfnet: bench interrupted; sandboxes removed\n";
        return 130;
      } catch (const std::invalid_argument& e) {
        throw Error(Errc::usage, e.what());
      }
      write_outputs(results, a->out_dir);
      if (ctx.json()) std::cout << results.dump(2) << "\n";
      else std::cout << bench::terminal_table(results);
      return results["failures"].empty() ? 0 : 1;
    };
  });
}

}  // namespace ebpfnet::cli
