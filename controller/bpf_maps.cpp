#include "ebpfnet/bpf_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "ebpfnet/error.hpp"

namespace ebpfnet {
namespace {

enum MapIndex { kEpByIp = 0, kEpByIfindex = 1, kEpStats = 2, kDropStats = 3 };

int possible_cpus() {
  static const int n = libbpf_num_possible_cpus();
  if (n <= 0) throw Error(Errc::failed, "cannot tell the number of possible CPUs");
  return n;
}

}  // namespace

std::string_view drop_reason_name(int reason) {
  switch (reason) {
    case EBPFNET_DROP_UNKNOWN_ENDPOINT: return "unknown-endpoint";
    case EBPFNET_DROP_MALFORMED: return "malformed";
    case EBPFNET_DROP_SPOOFED_MAC: return "spoofed-mac";
    case EBPFNET_DROP_SPOOFED_IP: return "spoofed-ip";
    case EBPFNET_DROP_UNSUPPORTED_L3: return "unsupported-l3";
    default: return "unknown";
  }
}

uint64_t EndpointStats::drops_total() const {
  uint64_t n = 0;
  for (auto d : drops) n += d;
  return n;
}

ebpfnet_endpoint make_endpoint(int ifindex, Ipv4 ip, const Mac& mac, const Mac& node_mac) {
  ebpfnet_endpoint ep{};
  ep.ifindex = static_cast<__u32>(ifindex);
  ep.ip = ip.be();
  std::memcpy(ep.mac, mac.data(), mac.size());
  std::memcpy(ep.node_mac, node_mac.data(), node_mac.size());
  return ep;
}

DatapathMaps::DatapathMaps(UniqueFd ep_by_ip, UniqueFd ep_by_ifindex, UniqueFd ep_stats,
                           UniqueFd drop_stats) {
  fds_[kEpByIp] = std::move(ep_by_ip);
  fds_[kEpByIfindex] = std::move(ep_by_ifindex);
  fds_[kEpStats] = std::move(ep_stats);
  fds_[kDropStats] = std::move(drop_stats);
}

int DatapathMaps::fd(size_t i) const { return fds_.at(i).get(); }

void DatapathMaps::put_endpoint(const ebpfnet_endpoint& ep) {
  __u32 ifindex = ep.ifindex;
  __be32 ip = ep.ip;
  std::vector<ebpfnet_ep_stats> zero(possible_cpus());
  if (bpf_map_update_elem(fd(kEpStats), &ifindex, zero.data(), BPF_ANY) != 0)
    throw_errno(errno, "writing ep_stats for ifindex " + std::to_string(ifindex));
  if (bpf_map_update_elem(fd(kEpByIfindex), &ifindex, &ep, BPF_ANY) != 0)
    throw_errno(errno, "writing ep_by_ifindex for ifindex " + std::to_string(ifindex));
  if (bpf_map_update_elem(fd(kEpByIp), &ip, &ep, BPF_ANY) != 0)
    throw_errno(errno, "writing ep_by_ip for " + Ipv4::from_be(ip).str());
}

void DatapathMaps::delete_endpoint(int ifindex, Ipv4 ip) {
  __u32 key = static_cast<__u32>(ifindex);
  __be32 ip_key = ip.be();
  // Missing entries are fine: delete is idempotent.
  if (bpf_map_delete_elem(fd(kEpByIp), &ip_key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting ep_by_ip entry " + ip.str());
  if (bpf_map_delete_elem(fd(kEpByIfindex), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting ep_by_ifindex entry " + std::to_string(ifindex));
  if (bpf_map_delete_elem(fd(kEpStats), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting ep_stats entry " + std::to_string(ifindex));
}

std::optional<ebpfnet_endpoint> DatapathMaps::endpoint_by_ip(Ipv4 ip) const {
  __be32 key = ip.be();
  ebpfnet_endpoint ep{};
  if (bpf_map_lookup_elem(fd(kEpByIp), &key, &ep) != 0) return std::nullopt;
  return ep;
}

std::optional<ebpfnet_endpoint> DatapathMaps::endpoint_by_ifindex(int ifindex) const {
  __u32 key = static_cast<__u32>(ifindex);
  ebpfnet_endpoint ep{};
  if (bpf_map_lookup_elem(fd(kEpByIfindex), &key, &ep) != 0) return std::nullopt;
  return ep;
}

std::optional<EndpointStats> DatapathMaps::stats(int ifindex) const {
  __u32 key = static_cast<__u32>(ifindex);
  std::vector<ebpfnet_ep_stats> per_cpu(possible_cpus());
  if (bpf_map_lookup_elem(fd(kEpStats), &key, per_cpu.data()) != 0) return std::nullopt;
  EndpointStats s;
  for (const auto& c : per_cpu) {
    s.tx_packets += c.tx_packets;
    s.tx_bytes += c.tx_bytes;
    s.rx_packets += c.rx_packets;
    s.rx_bytes += c.rx_bytes;
    for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r) s.drops[r] += c.drops[r];
  }
  return s;
}

DropCounts DatapathMaps::node_drops() const {
  DropCounts out{};
  std::vector<__u64> per_cpu(possible_cpus());
  for (__u32 r = 0; r < EBPFNET_DROP_REASON_MAX; ++r) {
    if (bpf_map_lookup_elem(fd(kDropStats), &r, per_cpu.data()) != 0) continue;
    for (auto v : per_cpu) out[r] += v;
  }
  return out;
}

size_t DatapathMaps::endpoint_count() const {
  size_t n = 0;
  __u32 key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd(kEpByIfindex), prev, &next) == 0) {
    ++n;
    key = next;
    prev = &key;
  }
  return n;
}

}  // namespace ebpfnet
