// Attaching a program at tc ingress of one interface: a TCX link where the
// kernel has TCX (6.6+), else a cls_bpf filter on a clsact qdisc.
// ifindex is resolved in the calling thread's namespace: call these from
// inside the node's namespace.
#pragma once

#include <filesystem>
#include <optional>

#include "ebpfnet/fd.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet {

// Endpoint veths attach with clsact unless the node says otherwise: TCX's
// program ordering and link ownership bring nothing to a veth no other
// software hooks, and creating a TCX link waits for an RCU grace period
// (~10 ms on an idle machine) where a cls_bpf filter takes ~0.3 ms. The
// uplink, which other software may hook too, attaches with TCX.
constexpr TcMode kEndpointTcMode = TcMode::clsact;

// mode nullopt: TCX if the kernel has it, else clsact. A TCX link is pinned at
// link_pin so it outlives this process. Returns the mode used.
TcMode attach_tc_ingress(int prog_fd, int ifindex, std::optional<TcMode> mode,
                         const std::filesystem::path& link_pin);

// A TCX ingress link of prog_fd on ifindex, unpinned: it lives as long as the
// returned fd (or until the device goes). Invalid with errno set on failure.
UniqueFd create_tcx_link(int prog_fd, int ifindex);

// Idempotent: what is already gone is fine.
void detach_tc_ingress(TcMode mode, int ifindex, const std::filesystem::path& link_pin);

// The program id attached at tc ingress of ifindex, or 0.
uint32_t attached_prog_id(TcMode mode, int ifindex, const std::filesystem::path& link_pin);

}  // namespace ebpfnet
