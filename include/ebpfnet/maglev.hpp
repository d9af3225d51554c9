// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table in
// which each backend holds a share of the slots proportional to its weight,
// and a change of one backend moves few slots of the others. The datapath
// picks a new connection's backend by the slot its flow hashes to.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ebpfnet {

struct MaglevBackend {
  uint32_t id = 0;     // what the table holds
  std::string key;     // what every node agrees on (the backend's "ip:port"): it places the backend
  uint32_t weight = 1;  // > 0
};

// The table of m slots (m prime); empty when there is no backend. The same
// backends give the same table in any order.
std::vector<uint32_t> maglev_table(std::span<const MaglevBackend> backends, uint32_t m);

}  // namespace ebpfnet
