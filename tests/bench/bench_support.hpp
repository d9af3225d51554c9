// Shared by the bench tests: where the load tools are, counters of an
// interface inside a namespace, and what exists on the machine.
#pragma once

#include <filesystem>
#include <set>
#include <string>

#include "bench/load.hpp"
#include "bench/topology.hpp"

namespace ebpfnet::bench::test {

Tools tools();
// A topology config with a unique prefix and a private state directory.
struct TempConfig {
  TempConfig();
  ~TempConfig();
  TopologyConfig cfg;
};

struct LinkCounters {
  uint64_t rx_packets = 0, tx_packets = 0, rx_dropped = 0, tx_dropped = 0;
};
// `ip -s -j link show dev IFNAME` in the namespace (an independent witness).
LinkCounters counters(const std::string& netns, const std::string& ifname);

std::set<std::string> netns_names();
// Names of the root namespace's links and of the pinned ebpfnet nodes.
std::set<std::string> root_links();
std::set<std::string> pinned_nodes();

}  // namespace ebpfnet::bench::test
