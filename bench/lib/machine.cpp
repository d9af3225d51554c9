#include "bench/machine.hpp"

#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "bench/process.hpp"

namespace ebpfnet::bench {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string version_of(const std::vector<std::string>& argv) {
  try {
    Result r = run(Spawn{argv}, 10);
    std::string out = r.out.empty() ? r.err : r.out;
    return r.code == 0 || !out.empty() ? first_line(out) : "not installed";
  } catch (...) {
    return "not installed";
  }
}

std::string read_first(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

}  // namespace

nlohmann::json describe_machine() {
  utsname u{};
  uname(&u);
  std::string model;
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  double mem_kib = 0;
  std::ifstream mi("/proc/meminfo");
  std::string key;
  mi >> key >> mem_kib;
  std::string os;
  std::ifstream rel("/etc/os-release");
  for (std::string line; std::getline(rel, line);)
    if (line.rfind("PRETTY_NAME=", 0) == 0) os = line.substr(13, line.size() - 14);
  return {{"kernel", std::string(u.release)},
          {"kernel_build", std::string(u.version)},
          {"arch", std::string(u.machine)},
          {"os", os},
          {"cpu_model", model},
          {"cpus_online", sysconf(_SC_NPROCESSORS_ONLN)},
          {"memory_mib", mem_kib / 1024},
          {"loadavg_at_start", read_first("/proc/loadavg")},
          // 1: RCU grace periods are expedited, so a TCX attach costs ~0.2 ms, not ~10.
          {"rcu_expedited", read_first("/sys/kernel/rcu_expedited")},
          {"hostname", std::string(u.nodename)}};
}

nlohmann::json tool_versions(const Tools& tools) {
  return {{"iperf3", version_of({tools.iperf3, "--version"})},
          {"clang", version_of({"clang", "--version"})},
          {"libbpf", std::to_string(libbpf_major_version()) + "." +
                         std::to_string(libbpf_minor_version())},
          {"iptables", version_of({"iptables", "-V"})},
          {"iproute2", version_of({"ip", "-V"})},
          {"gnuplot", version_of({"gnuplot", "--version"})}};
}

}  // namespace ebpfnet::bench
