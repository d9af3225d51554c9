// Control plane: creating and deleting endpoints with ebpfnet (in-process
// library, and the CLI) against the same wiring with separate `ip` commands
// on a Linux bridge, and the kernel's floor for namespaces and veth pairs
// (`ip -batch`: one process for all of them). Memory per endpoint: BPF map
// memory (memlock of the node's maps) and kernel memory (Slab + Percpu).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace ebpfnet::bench {

struct CpSample {
  std::string metric;    // cp_add1_ms, cp_del1_ms, cp_add_batch_ms, cp_del_batch_ms, ...
  std::string datapath;  // ebpfnet, ebpfnet-cli, ip, ip-batch
  double value = 0;
};

struct CpConfig {
  std::string prefix;
  std::filesystem::path ebpfnet_bin, state_dir;
  int singles = 5;   // single add/del timed this many times (median)
  int batch = 100;   // endpoints added, then deleted, in a row
};

// Calls emit for each sample; removes everything it made, also on failure.
void run_controlplane(const CpConfig& cfg, const std::function<void(const CpSample&)>& emit,
                      const std::function<void(const std::string&)>& progress);

// Kernel memory now (Slab + Percpu of /proc/meminfo), KiB; machine-wide.
double kernel_mem_kib();
// The memlock of every map pinned under dir (bpf map fdinfo), KiB.
double bpf_map_mem_kib(const std::filesystem::path& maps_dir);

}  // namespace ebpfnet::bench
