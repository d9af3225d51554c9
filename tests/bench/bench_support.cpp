#include "bench_support.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "bench/process.hpp"
#include "ebpfnet/netns.hpp"
#include "support.hpp"

namespace ebpfnet::bench::test {

Tools tools() { return find_tools(std::filesystem::path(BENCH_TOOLS_DIR), EBPFNET_BIN); }

TempConfig::TempConfig() {
  char tmpl[] = "/tmp/ebpfnet-benchtest-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  cfg.prefix = ebpfnet::test::unique("ebt") + "-";
  cfg.ebpfnet_bin = EBPFNET_BIN;
  cfg.state_dir = tmpl;
}

TempConfig::~TempConfig() {
  std::error_code ec;
  std::filesystem::remove_all(cfg.state_dir, ec);
}

LinkCounters counters(const std::string& netns, const std::string& ifname) {
  std::string out = run_ok(Spawn{{"ip", "-s", "-j", "link", "show", "dev", ifname}, netns});
  auto j = nlohmann::json::parse(out).at(0).at("stats64");
  LinkCounters c;
  c.rx_packets = j["rx"]["packets"];
  c.tx_packets = j["tx"]["packets"];
  c.rx_dropped = j["rx"]["dropped"];
  c.tx_dropped = j["tx"]["dropped"];
  return c;
}

std::set<std::string> netns_names() {
  auto v = netns::list();
  return {v.begin(), v.end()};
}

std::set<std::string> root_links() {
  auto j = nlohmann::json::parse(run_ok(Spawn{{"ip", "-j", "link", "show"}}));
  std::set<std::string> s;
  for (const auto& l : j) s.insert(l["ifname"].get<std::string>());
  return s;
}

std::set<std::string> pinned_nodes() {
  std::set<std::string> s;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/fs/bpf/ebpfnet", ec))
    s.insert(e.path().filename().string());
  return s;
}

}  // namespace ebpfnet::bench::test
