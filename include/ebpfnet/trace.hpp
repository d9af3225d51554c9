// ebpfnet trace: a described packet run through the node's real programs
// with the node's real maps (BPF_PROG_TEST_RUN on the trace build, which
// writes no node state), and every decision they took.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <linux/bpf.h>

#include "ebpfnet/abi.h"
#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/trace_abi.h"

namespace ebpfnet {

// One end of a traced packet: an endpoint of the node by name, or an
// address (an endpoint's address means that endpoint).
struct TracePeer {
  std::string endpoint;  // "" when given as an address
  std::optional<Ipv4> ip;
  std::optional<uint16_t> port;
};

inline constexpr uint16_t kTraceSourcePort = 40000;  // when --from gives none
inline constexpr uint8_t kTcpSyn = 0x02;

struct TraceRequest {
  TracePeer from, to;
  uint8_t proto = 6;  // IPPROTO_TCP; 17 UDP, 1 ICMP echo request
  uint8_t tcp_flags = kTcpSyn;
  std::optional<Ipv4> spoof;  // the source address instead of the endpoint's own
};

// The command line's words, checked (Errc::usage on anything malformed):
//   from  NAME[:PORT] | ADDR[:PORT]
//   to    NAME[:PORT][/PROTO] | ADDR[:PORT][/PROTO]   PROTO tcp (default), udp, icmp
//   flags TCP flags as letters: S A F R P U (default S); TCP only
//   spoof ADDR: only with an endpoint as --from
TraceRequest parse_trace_request(const std::string& from, const std::string& to,
                                 const std::optional<std::string>& flags,
                                 const std::optional<std::string>& spoof);
// "S", "SA", "FA", ... for tcp flags.
std::string tcp_flags_str(uint8_t flags);

// An Ethernet frame carrying t (addresses and ports in network order) with
// valid checksums: a TCP segment with tcp_flags, a UDP datagram or an ICMP
// echo request (identifier t.sport), no payload.
std::vector<uint8_t> build_trace_frame(const Mac& smac, const Mac& dmac, const ebpfnet_ct_key& t,
                                       uint8_t tcp_flags);

// The trace build of a program, run once (controller/trace_run.cpp).
enum class TraceProgram { from_endpoint, from_uplink };

struct TraceRun {
  int retval = -1;  // the program's TC verdict
  std::vector<ebpfnet_trace_step> steps;
  uint32_t overflow = 0;  // steps that did not fit
};

// Loads the trace build of `which` with every node map taken from maps
// (gateway: the node's, for from_endpoint's ARP and gateway checks) and runs
// it once on frame as if it arrived on ifindex. bpf_fib_lookup and ifindexes
// resolve in the calling thread's namespace: call it inside the node's.
// Writes none of maps.
TraceRun run_trace_program(const DatapathMaps& maps, TraceProgram which, Ipv4 gateway,
                           const std::vector<uint8_t>& frame, uint32_t ifindex);

// The helper calls among insns that would write a map or send an event (the
// trace build must have none; run_trace_program refuses one that does).
std::vector<int32_t> state_writing_calls(const bpf_insn* insns, size_t count);

// The packet as it was built and where it arrived.
struct TracedPacket {
  ebpfnet_ct_key tuple{};  // network order, as the datapath keys it
  uint8_t tcp_flags = 0;
  std::string from_endpoint;  // "" when it arrived on the uplink
  std::string program;        // "from_endpoint" or "from_uplink"
  uint32_t ingress_ifindex = 0;
  std::string ingress_ifname;
  size_t frame_len = 0;
};

// One decision, with the names that go with it.
struct TraceStep {
  ebpfnet_trace_step raw{};
  std::string stage;   // "source", "anti-spoofing", "conntrack", "policy", "nat", "route", "forward", "drop", ...
  std::string result;  // "ok", "new", "hit", "allowed", "denied", ...
  std::string detail;  // for people
  std::vector<std::pair<std::string, std::string>> fields;  // for -o json
};

struct TraceVerdict {
  std::string action;    // "forward" (to an endpoint), "redirect" (out of a device), "reply" (ARP), "pass", "drop"
  std::string endpoint;  // forward: the endpoint's name
  uint32_t ifindex = 0;  // forward, redirect: the device, in the node
  std::string ifname;
  std::string reason;    // drop: the drop reason's name; pass: why
  int retval = 0;        // the program's TC verdict
};

struct TraceResult {
  TracedPacket packet;
  std::vector<TraceStep> steps;
  TraceVerdict verdict;
  std::vector<std::string> notes;  // what the reader should know (a stale datapath, a long trace)
};

}  // namespace ebpfnet
