// The control plane's operations on a node, counted for metrics: the
// ebpfnet command line adds each one it runs to a small tally beside the
// node's state (ops.json), which a scrape reads. No resident process is
// needed, and an operation pays one small file replace for it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ebpfnet/node.hpp"

namespace ebpfnet::metrics {

struct OperationStats {
  uint64_t ok = 0;
  uint64_t failed = 0;
  double seconds = 0;  // of all of them, ok or failed
};
using OperationTally = std::map<std::string, OperationStats>;  // "endpoint add" -> ...

// Adds one operation to the node's tally. A node without a state directory
// (deleted, or never made) records nothing. Throws on a failure to write:
// the caller decides that counting never fails the operation.
void record_operation(const Env& env, const std::string& node, const std::string& operation, bool ok,
                      double seconds);

// Without a lock: the tally is replaced by rename. An unreadable tally reads
// as empty rather than failing the scrape (it is only counts).
OperationTally read_operations(const Env& env, const std::string& node);

}  // namespace ebpfnet::metrics
