// What a scrape reports about one node, read fresh each time from the
// node's state file and its pinned maps: plain values, so rendering them
// (render.hpp) is pure and the reading is done in one place.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/metrics/operations.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet::metrics {

struct MapSample {
  std::string name;
  std::string type;  // "lru_hash", ...
  uint32_t max_entries = 0;
  std::optional<size_t> entries;  // counted for hash maps and tries; arrays are full by nature
};

struct ProgramSample {
  std::string name;  // from_endpoint, from_uplink
  std::string tag;   // hex
};

struct EndpointSample {
  std::string name;
  std::optional<EndpointStats> stats;  // none: no counter entry (or counters unreadable)
};

// Conntrack as the datapath sees it now (live entries: expired ones hold a
// slot of the LRU map but no longer count as flows).
struct ConntrackSample {
  std::array<uint64_t, 3> by_state{};  // enum ebpfnet_ct_state
  // Masquerade ports held by live flows (one per flow; a port serves several
  // destinations): tcp, udp, icmp.
  std::array<uint64_t, 3> nat_ports{};
};

struct NodeSnapshot {
  std::string node;
  // From the node's state.
  size_t endpoints = 0;
  size_t published = 0;
  size_t routes = 0;
  size_t policed_endpoints = 0;
  std::array<size_t, 2> policy_rules{};  // ingress, egress (enum ebpfnet_policy_dir)
  size_t prefilter_addresses = 0;        // entries of the uplink prefilter: /32s
  size_t prefilter_prefixes = 0;         // and the others
  OperationTally operations;             // of the command line (operations.hpp)

  // The pinned datapath: 0 / empty when nothing is pinned.
  uint32_t abi = 0;
  uint64_t build = 0;
  uint64_t binary_build = 0;  // this binary's programs
  std::vector<ProgramSample> programs;
  std::vector<MapSample> maps;

  // Counters and conntrack are read only when the pinned maps have this
  // binary's layouts (abi == EBPFNET_ABI_VERSION); another ABI gets the
  // layout-free part above.
  bool counters = false;
  std::vector<EndpointSample> per_endpoint;
  DropCounts node_drops{};
  ConntrackSample conntrack;
  // What the uplink prefilter dropped, summed over the entries there are now.
  uint64_t prefilter_packets = 0, prefilter_bytes = 0;

  double collect_seconds = 0;  // how long reading all this took
};

// Reads without the node's lock: state.json is replaced by rename, so a
// read sees a whole state, and a scrape never waits for (or holds up) an
// operation on the node. Throws Errc::not_found when the node has no state.
NodeSnapshot collect(const Env& env, const std::string& node);

}  // namespace ebpfnet::metrics
