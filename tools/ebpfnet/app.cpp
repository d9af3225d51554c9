// The command line every ebpfnet binary shares: global options, logging,
// the root check, errors as exit codes.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "app.hpp"
#include "op_count.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {
namespace {

constexpr const char* kExitCodes = R"(Exit codes:
  0  success            3  not found           5  address pool exhausted
  1  system failure     4  already exists      6  not root, no bpffs, or a kernel feature missing
  2  bad usage or input  7  the kernel's verifier rejected a program, or the pinned
                           datapath is newer than this ebpfnet (no downgrade)
  (ns exec returns the command's own exit code)
)";

}  // namespace

Ipv4Cidr parse_cidr(const std::string& s) {
  auto c = Ipv4Cidr::parse(s);
  if (!c) throw Error(Errc::usage, "'" + s + "' is not an IPv4 prefix such as 10.240.0.0/24");
  return *c;
}

Ipv6Cidr parse_cidr6(const std::string& s) {
  if (auto c = Ipv6Cidr::parse(s)) return *c;
  const auto slash = s.find('/');
  if (slash != std::string::npos && Ipv6::parse(s.substr(0, slash)))
    throw Error(Errc::usage, "'" + s + "' has host bits set or a bad length (an IPv6 prefix such as fd00:240::/64)");
  throw Error(Errc::usage, "'" + s + "' is not an IPv6 prefix such as fd00:240::/64");
}

void add_global_options(CLI::App& app, Context& ctx, int& verbosity, std::string& state_dir) {
  app.add_option_function<std::string>(
         "--node", [&](const std::string& n) { ctx.node = n, ctx.node_given = true; },
         "the node to act on: a sandbox node's name (default: the root namespace)")
      ->type_name("NAME");
  app.add_option("-o,--output", ctx.output, "output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--state-dir", state_dir, "where node state lives")->capture_default_str();
  app.add_flag("-v,--verbose", verbosity, "log what is done (-vv: debug)");
}

int run(int argc, char** argv, const Commands& add_commands) {
  CLI::App app{
      "ebpfnet wires network namespaces (containers) to an eBPF datapath: TC programs that\n"
      "forward with bpf_redirect_peer instead of a Linux bridge and iptables.",
      "ebpfnet"};
  app.footer(kExitCodes);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("ebpfnet: ") + e.what() + " (see --help)\n";
  });
  app.require_subcommand(1);
  app.fallthrough();

  Context ctx;
  int verbosity = 0;
  std::string state_dir = ctx.env.state_root.string();
  add_global_options(app, ctx, verbosity, state_dir);

  Action action;
  add_commands(app, ctx, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; every other parse error is a usage error.
    int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(Errc::usage);
  }

  auto logger = spdlog::stderr_color_mt("ebpfnet");
  logger->set_pattern("ebpfnet: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(verbosity >= 2 ? spdlog::level::debug
                    : verbosity == 1 ? spdlog::level::info
                                     : spdlog::level::warn);
  ctx.env.state_root = state_dir;

  try {
    if (::geteuid() != 0)
      throw Error(Errc::environment, "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF)");
    OperationCount count(app, ctx);
    const int rc = action();
    count.done(rc == 0);
    return rc;
  } catch (const Error& e) {
    std::cerr << "ebpfnet: " << e.what() << "\n";
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "ebpfnet: " << e.what() << "\n";
    return static_cast<int>(Errc::failed);
  }
}

}  // namespace ebpfnet::cli
