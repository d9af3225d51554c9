// One ebpfnet command line, run by main() of each binary with the
// subcommands it has: ebpfnet (everything but cluster and metrics),
// ebpfnet-cluster and ebpfnet-metrics.
#pragma once

#include "cli.hpp"

namespace ebpfnet::cli {

// --node, -o/--output, --state-dir, -v/--verbose: what every binary takes
// before the command word.
void add_global_options(CLI::App& app, Context& ctx, int& verbosity, std::string& state_dir);

using Commands = std::function<void(CLI::App&, Context&, Action&)>;
// Parses argv, runs the chosen subcommand, returns the exit code.
int run(int argc, char** argv, const Commands& add_commands);

}  // namespace ebpfnet::cli
