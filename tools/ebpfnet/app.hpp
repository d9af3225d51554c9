// One ebpfnet command line, run by main() of each binary with the
// subcommands it has: ebpfnet (everything but cluster) and ebpfnet-cluster.
#pragma once

#include "cli.hpp"

namespace ebpfnet::cli {

using Commands = std::function<void(CLI::App&, Context&, Action&)>;
// Parses argv, runs the chosen subcommand, returns the exit code.
int run(int argc, char** argv, const Commands& add_commands);

}  // namespace ebpfnet::cli
