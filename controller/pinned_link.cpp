#include "ebpfnet/pinned_link.hpp"

#include <bpf/bpf.h>

namespace ebpfnet {

UniqueFd pinned_link_on(int ifindex, const std::filesystem::path& pin, uint32_t link_type) {
  UniqueFd link(bpf_obj_get(pin.c_str()));
  if (!link.valid()) return UniqueFd();
  bpf_link_info info{};
  __u32 len = sizeof(info);
  // TCX and XDP links both give their ifindex first in the info's union.
  if (bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0 || info.type != link_type ||
      info.xdp.ifindex != static_cast<__u32>(ifindex))
    return UniqueFd();
  return link;
}

}  // namespace ebpfnet
