// `ebpfnet bench --only prefilter`: how fast the uplink prefilter drops a
// flood from a denied source, in XDP (the product's program, native mode on
// the receiving veth) against the same lookup-and-drop in a tc ingress
// program, on one CPU. Two namespaces of its own joined by a veth pair
// (10.209.0.0/24); the flood's source 10.209.1.7 lies in the denied
// 10.209.1.0/24, among other entries that never match (172.16.0.0/12).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/fd.hpp"

namespace ebpfnet::bench {

// xdp: native (driver) mode, as `prefilter add` attaches it on a veth;
// xdp-generic: the fallback mode for drivers without XDP; tc: tc ingress.
enum class DropHook { xdp, xdp_generic, tc };
std::string to_string(DropHook h);

struct DropSample {
  uint64_t sent = 0;     // frames the generator handed to the veth
  uint64_t dropped = 0;  // counted by the denied entry
  double seconds = 0;
  std::string xdp_mode;  // xdp: "native" or "generic"
};

class PrefilterBench {
 public:
  // prefix: unique per run; entries: size of the deny list (>= 1).
  PrefilterBench(const std::string& prefix, int entries = 1024);
  ~PrefilterBench();
  PrefilterBench(const PrefilterBench&) = delete;
  PrefilterBench& operator=(const PrefilterBench&) = delete;

  // Attaches the hook, floods 64-byte UDP frames from the denied source for
  // `seconds` from one thread pinned to `cpu` (the veth's receive path runs
  // in that CPU's softirq, so the whole drop path is on it), detaches.
  DropSample run(DropHook hook, int cpu, double seconds);

  std::vector<std::string> namespaces() const { return made_; }
  static constexpr const char* kDenied = "10.209.1.0/24";
  static constexpr const char* kSource = "10.209.1.7";

 private:
  void teardown();
  std::vector<std::string> made_;
  std::string out_ns_, node_ns_;
  int ifindex_ = 0;           // the receiving veth, in node_ns_
  int out_ifindex_ = 0;       // the sending veth, in out_ns_
  std::array<uint8_t, 6> node_mac_{}, out_mac_{};
  std::unique_ptr<Datapath> dp_;
  UniqueFd tc_prog_;
};

}  // namespace ebpfnet::bench
