// ebpfnet-cni: containers that runtimes start become ebpfnet endpoints.
// Exit 0 with the result (ADD) or nothing; else the spec's error JSON on
// stdout and exit 1.
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>

#include "cni.hpp"

namespace {

using namespace ebpfnet::cni;

void run(const Invocation& inv, const NetConf& conf) {
  if (inv.command == "STATUS") return cmd_status(conf);
  if (::geteuid() != 0)
    throw ebpfnet::Error(ebpfnet::Errc::environment,
                         "ebpfnet-cni needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF)");
  if (inv.command == "ADD") return cmd_add(inv, conf, std::cout);
  if (inv.command == "DEL") return cmd_del(inv, conf);
  if (inv.command == "CHECK") return cmd_check(inv, conf);
  cmd_gc(conf);
}

std::string describe(const Invocation& inv, const NetConf& conf) {
  std::string s = inv.command + " network " + conf.name + " node " + conf.node;
  if (!inv.container_id.empty()) s += " container " + inv.container_id + " " + inv.ifname;
  if (!inv.netns.empty()) s += " netns " + inv.netns;
  if (!inv.pod.empty()) s += " pod " + inv.pod;
  return s;
}

// Everything that can fail, each failure answered with the spec's error.
int serve() {
  std::string version(kLatestVersion), what;
  auto t0 = std::chrono::steady_clock::now();
  try {
    std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    version = sniff_version(input);
    Invocation inv = read_invocation();
    if (inv.command == "VERSION") {
      cmd_version(input, std::cout);
      return 0;
    }
    NetConf conf = parse_config(input);
    start_log(conf);
    what = describe(inv, conf);
    try {
      run(inv, conf);
    } catch (const ebpfnet::Error& e) {
      throw from_ebpfnet(e, what);
    }
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
    spdlog::info("{}: ok in {:.1f} ms", what, ms.count());
    return 0;
  } catch (const CniError& e) {
    spdlog::error("{}: code {}: {}", what.empty() ? "request" : what, e.code(), e.what());
    std::cout << to_text(error_json(version, e)) << "\n";
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", what.empty() ? "request" : what, e.what());
    std::cout << to_text(error_json(version, CniError(kInternal, e.what(), what))) << "\n";
  }
  return 1;
}

}  // namespace

int main() {
  try {
    // Until the log file is open nothing may log, least of all to stdout.
    spdlog::set_default_logger(spdlog::null_logger_mt("null"));
    return serve();
  } catch (...) {
    // Reporting the failure failed too (no memory, or a throw that is no
    // std::exception): a fixed reply that needs nothing that can fail.
    std::fputs(R"({"cniVersion":"1.1.0","code":999,"msg":"ebpfnet-cni failed unexpectedly"})"
               "\n",
               stdout);
    return 1;
  }
}
