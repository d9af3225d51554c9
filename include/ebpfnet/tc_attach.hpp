// Attaching a program at tc ingress of one interface: a TCX link where the
// kernel has TCX (6.6+), else a cls_bpf filter on a clsact qdisc.
// ifindex is resolved in the calling thread's namespace: call these from
// inside the node's namespace.
#pragma once

#include <filesystem>
#include <optional>

#include "ebpfnet/state.hpp"

namespace ebpfnet {

// mode nullopt: TCX if the kernel has it, else clsact. A TCX link is pinned at
// link_pin so it outlives this process. Returns the mode used.
TcMode attach_tc_ingress(int prog_fd, int ifindex, std::optional<TcMode> mode,
                         const std::filesystem::path& link_pin);

// Idempotent: what is already gone is fine.
void detach_tc_ingress(TcMode mode, int ifindex, const std::filesystem::path& link_pin);

// The program id attached at tc ingress of ifindex, or 0.
uint32_t attached_prog_id(TcMode mode, int ifindex, const std::filesystem::path& link_pin);

}  // namespace ebpfnet
