// What the results were measured on: kernel, CPUs, memory, load, and the
// versions of the tools in the comparison.
#pragma once

#include <nlohmann/json.hpp>

#include "bench/load.hpp"

namespace ebpfnet::bench {

nlohmann::json describe_machine();
nlohmann::json tool_versions(const Tools& tools);

}  // namespace ebpfnet::bench
