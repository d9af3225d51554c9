#include "map_dump.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

namespace ebpfnet::test {

MapDump dump_map(int fd) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
  const bool percpu = info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_PERCPU_ARRAY;
  const size_t vsize = percpu ? ((info.value_size + 7) / 8 * 8) * libbpf_num_possible_cpus() : info.value_size;
  MapDump d;
  std::string key(info.key_size, '\0'), next(info.key_size, '\0'), value(vsize, '\0');
  for (const void* prev = nullptr; bpf_map_get_next_key(fd, prev, next.data()) == 0; prev = key.data()) {
    key = next;
    if (bpf_map_lookup_elem(fd, key.data(), value.data()) == 0) d[key] = value;
  }
  return d;
}

}  // namespace ebpfnet::test
