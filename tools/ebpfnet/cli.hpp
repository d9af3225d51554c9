// What every subcommand of the ebpfnet command line shares.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "ebpfnet/node.hpp"

namespace ebpfnet::cli {

struct Context {
  std::string node = kRootNode;  // --node
  bool node_given = false;
  std::string output = "table";  // -o table|json
  Env env;

  bool json() const { return output == "json"; }
  Node open_node() const { return Node(env, node); }
};

// The action a parsed subcommand runs; it returns the exit code.
using Action = std::function<int()>;

// Each registers its subcommands on app and sets *action when one is chosen.
void add_node_commands(CLI::App& app, Context& ctx, Action& action);
void add_endpoint_commands(CLI::App& app, Context& ctx, Action& action);
void add_ns_commands(CLI::App& app, Context& ctx, Action& action);
void add_status_commands(CLI::App& app, Context& ctx, Action& action);
void add_demo_command(CLI::App& app, Context& ctx, Action& action);
void add_nat_commands(CLI::App& app, Context& ctx, Action& action);
void add_policy_commands(CLI::App& app, Context& ctx, Action& action);
void add_bench_command(CLI::App& app, Context& ctx, Action& action);
void add_metrics_command(CLI::App& app, Context& ctx, Action& action);
void add_apply_command(CLI::App& app, Context& ctx, Action& action);
void add_trace_command(CLI::App& app, Context& ctx, Action& action);
void add_prefilter_commands(CLI::App& app, Context& ctx, Action& action);
void add_service_commands(CLI::App& app, Context& ctx, Action& action);
void add_cluster_commands(CLI::App& app, Context& ctx, Action& action);
// `ebpfnet cluster|metrics ...` run ebpfnet-cluster|ebpfnet-metrics, beside
// ebpfnet, with the same arguments (sibling_exec.cpp): exec_sibling does it
// (and returns only for another command), add_sibling_commands lists them in
// --help.
void exec_sibling(int argc, char** argv);
void add_sibling_commands(CLI::App& app);
inline constexpr const char* kClusterSummary =
    "nodes on several hosts sharing state in etcd: agent, peers; sandbox create|delete|start|status";
inline constexpr const char* kMetricsSummary = "Prometheus metrics of a node: an HTTP endpoint or a textfile";

// Throws Errc::usage with an example when s is not a prefix.
Ipv4Cidr parse_cidr(const std::string& s);
// The same for an IPv6 prefix (--cidr6), naming what is wrong with it.
Ipv6Cidr parse_cidr6(const std::string& s);

}  // namespace ebpfnet::cli