// The trace build of a program (bpf/lib/trace.h) loaded over a node's maps
// and run once with BPF_PROG_TEST_RUN.
//
// Nothing on the node changes: the trace build writes no counter, conntrack
// entry or event (it only reads the node's maps), its steps go to the
// object's own .bss, and a redirect under test-run sends nothing. The kernel
// cannot enforce it (a program's write access to a map comes from the map's
// creation flags, not from the fd it was given), so before loading, the
// instructions are checked to call no helper that writes a map: a trace
// build that lost a DRY_RUN guard around such a call is refused, not run.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>

#include "ebpfnet/error.hpp"
#include "ebpfnet/skeleton.hpp"
#include "ebpfnet/trace.hpp"
#include "trace_from_endpoint.skel.h"
#include "trace_from_uplink.skel.h"

namespace ebpfnet {
namespace {

bool writes_state(int32_t helper) {
  switch (helper) {
    case BPF_FUNC_map_update_elem:
    case BPF_FUNC_map_delete_elem:
    case BPF_FUNC_map_push_elem:
    case BPF_FUNC_map_pop_elem:
    case BPF_FUNC_perf_event_output:
    case BPF_FUNC_ringbuf_output:
    case BPF_FUNC_ringbuf_reserve:
      return true;
    default:
      return false;
  }
}

// Every node map of obj becomes the node's; the trace's own .bss stays private.
void reuse_node_maps(bpf_object* obj, const DatapathMaps& maps) {
  for (size_t i = 0; i < kMapNames.size(); ++i) {
    bpf_map* m = bpf_object__find_map_by_name(obj, kMapNames[i]);
    if (!m) throw Error(Errc::failed, std::string("the trace object has no map ") + kMapNames[i]);
    if (bpf_map__reuse_fd(m, maps.fd(i)) != 0) throw_errno(errno, std::string("reusing map ") + kMapNames[i]);
  }
}

int test_run(int prog_fd, const std::vector<uint8_t>& frame, uint32_t ifindex) {
  __sk_buff ctx{};
  ctx.ingress_ifindex = ifindex;
  ctx.ifindex = ifindex;
  std::vector<uint8_t> out(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size()), .data_size_out = static_cast<__u32>(out.size()),
              .ctx_in = &ctx, .ctx_size_in = sizeof ctx);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    throw_errno(errno, "running the trace program (BPF_PROG_TEST_RUN)");
  return static_cast<int>(opts.retval);
}

template <class T>
TraceRun load_and_run(Skeleton<T>& s, bpf_program* prog, const DatapathMaps& maps, const std::vector<uint8_t>& frame,
                      uint32_t ifindex) {
  if (auto calls = state_writing_calls(bpf_program__insns(prog), bpf_program__insn_cnt(prog)); !calls.empty())
    throw Error(Errc::failed, std::string("the trace build of ") + bpf_program__name(prog) + " calls BPF helper " +
                                  std::to_string(calls.front()) + ", which writes: refusing to run it on a node");
  reuse_node_maps(s->obj, maps);
  s.load();
  TraceRun r;
  r.retval = test_run(bpf_program__fd(prog), frame, ifindex);
  const ebpfnet_trace& t = s->bss->trace_buf;
  r.steps.assign(t.steps, t.steps + std::min<uint32_t>(t.count, EBPFNET_TRACE_STEPS));
  r.overflow = t.overflow;
  return r;
}

}  // namespace

std::vector<int32_t> state_writing_calls(const bpf_insn* insns, size_t count) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < count; ++i)
    if (insns[i].code == (BPF_JMP | BPF_CALL) && insns[i].src_reg == 0 && writes_state(insns[i].imm))
      out.push_back(insns[i].imm);
  return out;
}

TraceRun run_trace_program(const DatapathMaps& maps, TraceProgram which, Ipv4 gateway,
                           const std::vector<uint8_t>& frame, uint32_t ifindex) {
  if (which == TraceProgram::from_endpoint) {
    Skeleton<trace_from_endpoint_bpf> s("trace from_endpoint");
    s->rodata->gateway_ip = gateway.be();
    return load_and_run(s, s->progs.from_endpoint, maps, frame, ifindex);
  }
  Skeleton<trace_from_uplink_bpf> s("trace from_uplink");
  return load_and_run(s, s->progs.from_uplink, maps, frame, ifindex);
}

}  // namespace ebpfnet
