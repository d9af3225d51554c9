// The cluster commands live in their own binary, ebpfnet-cluster: they need
// libcurl, whose ~30 libraries every other command would load at start
// (`ebpfnet --version` took 805 page faults with them, 523 without; a fault
// costs tens of microseconds on a VM). ebpfnet
// runs it with its own arguments, so `ebpfnet cluster ...` is unchanged.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string_view>

#include "cli.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {

void add_cluster_exec(CLI::App& app) {
  // Listed in ebpfnet --help; never parsed here (exec_cluster runs first).
  app.add_subcommand("cluster", kClusterSummary)->allow_extras();
}

void exec_cluster(int argc, char** argv) {
  // The first word that is not a global option (nor its value) names the
  // command. The options that take a value are app.cpp's.
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--node" || a == "-o" || a == "--output" || a == "--state-dir") {
      ++i;
      continue;
    }
    if (!a.starts_with("-")) break;
  }
  if (i >= argc || std::string_view(argv[i]) != "cluster") return;
  const std::filesystem::path bin = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "ebpfnet-cluster";
  ::execv(bin.c_str(), argv);
  std::cerr << "ebpfnet: running " << bin.string() << ": " << std::strerror(errno) << "\n";
  std::exit(static_cast<int>(Errc::environment));
}

}  // namespace ebpfnet::cli
