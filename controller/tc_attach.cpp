#include "ebpfnet/tc_attach.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>

#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/pinned_link.hpp"

namespace ebpfnet {
namespace {

// From linux/bpf.h of 6.6+; Debian's headers (6.1) and libbpf (1.1) predate TCX.
constexpr int kBpfTcxIngress = 46;
constexpr uint32_t kClsactHandle = 1, kClsactPriority = 1;

bpf_tc_hook ingress_hook(int ifindex) {
  bpf_tc_hook h{};
  h.sz = sizeof(h);
  h.ifindex = ifindex;
  h.attach_point = BPF_TC_INGRESS;
  return h;
}

bpf_tc_opts clsact_opts(int prog_fd) {
  bpf_tc_opts o{};
  o.sz = sizeof(o);
  o.handle = kClsactHandle;
  o.priority = kClsactPriority;
  o.prog_fd = prog_fd;
  return o;
}

void attach_clsact(int prog_fd, int ifindex) {
  bpf_tc_hook hook = ingress_hook(ifindex);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) throw_errno(-err, "creating clsact qdisc on ifindex " + std::to_string(ifindex));
  bpf_tc_opts opts = clsact_opts(prog_fd);
  opts.flags = BPF_TC_F_REPLACE;
  if ((err = bpf_tc_attach(&hook, &opts)) != 0)
    throw_errno(-err, "attaching tc filter on ifindex " + std::to_string(ifindex));
}

}  // namespace

UniqueFd create_tcx_link(int prog_fd, int ifindex) {
  return UniqueFd(bpf_link_create(prog_fd, ifindex, static_cast<bpf_attach_type>(kBpfTcxIngress), nullptr));
}

TcMode attach_tc_ingress(int prog_fd, int ifindex, std::optional<TcMode> mode,
                         const std::filesystem::path& link_pin) {
  if (mode != TcMode::clsact) {
    // A new program replaces the old one in its link atomically: no packet
    // sees neither, none sees both.
    if (UniqueFd link = pinned_link_on(ifindex, link_pin, kBpfLinkTypeTcx); link.valid()) {
      if (bpf_link_update(link.get(), prog_fd, nullptr) != 0)
        throw_errno(errno, "updating tcx link on ifindex " + std::to_string(ifindex));
      return TcMode::tcx;
    }
    if (UniqueFd owned = create_tcx_link(prog_fd, ifindex); owned.valid()) {
      ::unlink(link_pin.c_str());  // a stale pin of a deleted interface
      if (bpf_obj_pin(owned.get(), link_pin.c_str()) != 0)
        throw_errno(errno, "pinning tcx link at " + link_pin.string());
      return TcMode::tcx;
    }
    // EINVAL: this kernel does not know the TCX attach type.
    if (mode == TcMode::tcx || errno != EINVAL)
      throw_errno(errno, "attaching tcx link on ifindex " + std::to_string(ifindex) +
                             (errno == EINVAL ? " (the kernel lacks TCX, 6.6+)" : ""));
  }
  attach_clsact(prog_fd, ifindex);
  return TcMode::clsact;
}

void detach_tc_ingress(TcMode mode, int ifindex, const std::filesystem::path& link_pin) {
  if (mode == TcMode::tcx) {
    // The link goes when its last reference, the pin, does.
    if (::unlink(link_pin.c_str()) != 0 && errno != ENOENT)
      throw_errno(errno, "removing tcx link pin " + link_pin.string());
    return;
  }
  bpf_tc_hook hook = ingress_hook(ifindex);
  bpf_tc_opts opts = clsact_opts(0);
  opts.prog_fd = 0;
  int err = bpf_tc_detach(&hook, &opts);
  if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
    throw_errno(-err, "detaching tc filter on ifindex " + std::to_string(ifindex));
}

uint32_t attached_prog_id(TcMode mode, int ifindex, const std::filesystem::path& link_pin) {
  if (mode == TcMode::tcx) {
    UniqueFd link = pinned_link_on(ifindex, link_pin, kBpfLinkTypeTcx);
    bpf_link_info info{};
    __u32 len = sizeof(info);
    if (!link.valid() || bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0) return 0;
    return info.prog_id;
  }
  bpf_tc_hook hook = ingress_hook(ifindex);
  bpf_tc_opts opts = clsact_opts(0);
  opts.prog_fd = 0;
  if (bpf_tc_query(&hook, &opts) != 0) return 0;
  return opts.prog_id;
}

}  // namespace ebpfnet
