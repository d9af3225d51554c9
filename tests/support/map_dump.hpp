// Every entry of a BPF map as raw bytes, for tests that prove a command
// changed nothing in a map (expired conntrack entries included).
#pragma once

#include <map>
#include <string>

namespace ebpfnet::test {

using MapDump = std::map<std::string, std::string>;  // key bytes -> value bytes

// Per-CPU values hold every possible CPU's copy.
MapDump dump_map(int fd);

}  // namespace ebpfnet::test
