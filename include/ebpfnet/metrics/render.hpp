// A node's snapshot as Prometheus series (docs/metrics.md lists them).
// Every series carries the node's name, so the textfiles of several nodes
// can sit in one node_exporter directory.
#pragma once

#include "ebpfnet/metrics/exposition.hpp"
#include "ebpfnet/metrics/snapshot.hpp"

namespace ebpfnet::metrics {

struct RenderOptions {
  // Series per endpoint (its name as a label): as many as there are
  // endpoints, so off by default.
  bool per_endpoint = false;
};

Exposition render(const NodeSnapshot& s, const RenderOptions& opts = {});

}  // namespace ebpfnet::metrics
