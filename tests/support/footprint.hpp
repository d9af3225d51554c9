// Everything of a sandbox node that a command can leave behind, read
// without taking the node's lock (so without recovering anything): what its
// state file records, what its namespace holds, its pins, the entries of
// its maps, its journal. Two footprints compare equal when nothing differs.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "support.hpp"

namespace ebpfnet::test {

struct Footprint {
  std::vector<std::string> endpoints, published;  // from the endpoint table, state.json
  std::vector<std::string> links, addresses, routes;  // the node's namespace
  std::vector<std::string> pins;                  // link pins
  std::map<std::string, size_t> entries;          // per map rebuilt from state
  bool journal = false;

  bool operator==(const Footprint&) const = default;
};

Footprint footprint(SandboxNode& sb);
std::ostream& operator<<(std::ostream& os, const Footprint& f);

// Entries in a map of any type (per-CPU or not), by walking its keys.
size_t map_entries(int fd);

}  // namespace ebpfnet::test
