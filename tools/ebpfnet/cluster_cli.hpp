// The cluster command group is split by concern: agent and peers (a node of
// any cluster, cmd_cluster.cpp), and sandbox clusters made on this machine
// (cmd_cluster_sandbox.cpp).
#pragma once

#include "cli.hpp"

namespace ebpfnet::cli {

void add_cluster_sandbox_commands(CLI::App* cluster, Context& ctx, Action& action);

}  // namespace ebpfnet::cli
