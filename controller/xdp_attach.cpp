#include "ebpfnet/xdp_attach.hpp"

#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/pinned_link.hpp"

namespace ebpfnet {
namespace {

int create_link(int prog_fd, int ifindex, __u32 flags) {
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
  return bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
}

}  // namespace

std::string to_string(XdpMode m) { return m == XdpMode::native ? "native" : "generic"; }

std::optional<XdpMode> parse_xdp_mode(std::string_view s) {
  if (s == "native") return XdpMode::native;
  if (s == "generic") return XdpMode::generic;
  return std::nullopt;
}

XdpAttach attach_xdp(int prog_fd, int ifindex, const std::filesystem::path& link_pin, XdpMode was) {
  if (UniqueFd link = pinned_link_on(ifindex, link_pin, BPF_LINK_TYPE_XDP); link.valid()) {
    if (bpf_link_update(link.get(), prog_fd, nullptr) != 0)
      throw_errno(errno, "updating xdp link on ifindex " + std::to_string(ifindex));
    return {was, ""};
  }
  XdpAttach r;
  int fd = create_link(prog_fd, ifindex, XDP_FLAGS_DRV_MODE);
  if (fd < 0) {
    const int err = errno;
    // Another program holds the hook: not ours to replace.
    if (err == EBUSY || err == EEXIST)
      throw Error(Errc::exists, "ifindex " + std::to_string(ifindex) + " already has an XDP program");
    if (err == EPERM) throw_errno(err, "attaching xdp on ifindex " + std::to_string(ifindex));
    r.mode = XdpMode::generic;
    r.fallback_reason = std::strerror(err);
    fd = create_link(prog_fd, ifindex, XDP_FLAGS_SKB_MODE);
    if (fd < 0) {
      const int err2 = errno;
      throw_errno(err2, "attaching xdp on ifindex " + std::to_string(ifindex) + " (native mode: " +
                            r.fallback_reason + "; generic mode)");
    }
  }
  UniqueFd owned(fd);
  ::unlink(link_pin.c_str());  // a stale pin of a deleted interface
  if (bpf_obj_pin(owned.get(), link_pin.c_str()) != 0) throw_errno(errno, "pinning xdp link at " + link_pin.string());
  return r;
}

void detach_xdp(const std::filesystem::path& link_pin) {
  if (::unlink(link_pin.c_str()) != 0 && errno != ENOENT)
    throw_errno(errno, "removing xdp link pin " + link_pin.string());
}

uint32_t attached_xdp_prog_id(int ifindex, const std::filesystem::path& link_pin) {
  UniqueFd link = pinned_link_on(ifindex, link_pin, BPF_LINK_TYPE_XDP);
  bpf_link_info info{};
  __u32 len = sizeof(info);
  if (!link.valid() || bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0) return 0;
  return info.prog_id;
}

}  // namespace ebpfnet
