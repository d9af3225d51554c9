// The bpf_links ebpfnet pins (TCX and XDP attachments): a pin may outlive
// its interface, so a pinned link counts only while it is attached to the
// interface it was made for.
#pragma once

#include <cstdint>
#include <filesystem>

#include "ebpfnet/fd.hpp"

namespace ebpfnet {

// From linux/bpf.h of 6.6+ (Debian's headers, from 6.1, predate TCX).
constexpr uint32_t kBpfLinkTypeTcx = 11;

// The link of type link_type pinned at pin when it is attached to ifindex,
// else an invalid fd.
UniqueFd pinned_link_on(int ifindex, const std::filesystem::path& pin, uint32_t link_type);

}  // namespace ebpfnet
