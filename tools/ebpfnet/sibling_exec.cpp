// Some commands live in binaries of their own beside ebpfnet, because they
// need a library every other command would otherwise load at each start (a
// page fault costs tens of microseconds on a VM): ebpfnet-cluster (libcurl;
// `ebpfnet --version` took 805 page faults with it, 523 without) and
// ebpfnet-metrics (an HTTP server that brings OpenSSL: ~350 more). ebpfnet
// runs them with its own arguments, so `ebpfnet cluster ...` is unchanged.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "app.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {
namespace {

struct Sibling {
  const char* command;
  const char* binary;
  const char* summary;
};
constexpr Sibling kSiblings[] = {
    {"cluster", "ebpfnet-cluster", kClusterSummary},
    {"metrics", "ebpfnet-metrics", kMetricsSummary},
};

// The command word: the first argument that is neither a global option nor
// its value, found by the global options themselves.
std::string command_word(int argc, char** argv) {
  CLI::App globals;
  Context ctx;
  int verbosity = 0;
  std::string state_dir;
  add_global_options(globals, ctx, verbosity, state_dir);
  globals.prefix_command();
  try {
    globals.parse(argc, argv);
  } catch (const CLI::Error&) {
    return {};  // --help or a bad option: run() says so
  }
  const auto rest = globals.remaining();
  return rest.empty() ? std::string() : rest.front();
}

}  // namespace

void add_sibling_commands(CLI::App& app) {
  // Listed in ebpfnet --help; never parsed here (exec_sibling runs first).
  for (const Sibling& s : kSiblings) app.add_subcommand(s.command, s.summary)->allow_extras();
}

void exec_sibling(int argc, char** argv) {
  const std::string word = command_word(argc, argv);
  for (const Sibling& s : kSiblings) {
    if (word != s.command) continue;
    const std::filesystem::path bin = std::filesystem::read_symlink("/proc/self/exe").parent_path() / s.binary;
    ::execv(bin.c_str(), argv);
    std::cerr << "ebpfnet: running " << bin.string() << ": " << std::strerror(errno) << "\n";
    std::exit(static_cast<int>(Errc::environment));
  }
}

}  // namespace ebpfnet::cli
