#include "ebpfnet/bpf_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <cstring>

#include "ebpfnet/error.hpp"

namespace ebpfnet {
namespace {

enum MapIndex {
  kEpByIp, kEpByIfindex, kEpStats, kDropStats, kConfig, kCt, kPublished, kRouted,
  kEpPolicy, kPolicyCidr, kPolicyPort, kMonitor, kEvents, kPrefilterAddr, kPrefilterCidr, kPrefilterStats,
  kSvc, kMaglev, kBackends, kBackendStats, kSvcAffinity, kSockNetns, kSockRevnat, kTunnel,
  kEpByIp6, kEpIp6
};

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
    case EBPFNET_DROP_NAT_NO_PORT: return "nat-no-port";
    case EBPFNET_DROP_NAT_UNSUPPORTED: return "nat-unsupported";
    case EBPFNET_DROP_CT_FULL: return "ct-full";
    case EBPFNET_DROP_NO_ROUTE: return "no-route";
    case EBPFNET_DROP_TTL_EXCEEDED: return "ttl-exceeded";
    case EBPFNET_DROP_POLICY_DENY: return "policy-deny";
    case EBPFNET_DROP_POLICY_DEFAULT: return "policy-default-deny";
    case EBPFNET_DROP_NO_BACKEND: return "no-backend";
    case EBPFNET_DROP_TUNNEL_PEER: return "tunnel-peer";
    case EBPFNET_DROP_ND_ROUTER: return "nd-router";
    case EBPFNET_DROP_IPV6_NO_WAY_OUT: return "ipv6-no-way-out";
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

int DatapathMaps::fd(size_t i) const { return fds_.at(i).get(); }

int DatapathMaps::fd(std::string_view name) const {
  for (size_t i = 0; i < kMapNames.size(); ++i)
    if (name == kMapNames[i]) return fd(i);
  throw Error(Errc::failed, "no map named " + std::string(name));
}

size_t DatapathMaps::prune(std::string_view map, size_t key_size, const std::function<bool(const void*)>& keep) {
  const int f = fd(map);
  const std::string name(map);
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(f, &info, &len) != 0) throw_errno(errno, "reading map " + name);
  if (info.key_size != key_size)
    throw Error(Errc::failed, "map " + name + " has keys of " + std::to_string(info.key_size) + " bytes, not " +
                                  std::to_string(key_size));
  // Keys are collected first: deleting while walking a hash can restart the walk.
  std::vector<std::vector<uint8_t>> doomed;
  std::vector<uint8_t> key(key_size), next(key_size);
  for (const void* prev = nullptr; bpf_map_get_next_key(f, prev, next.data()) == 0; prev = key.data()) {
    if (!keep(next.data())) doomed.push_back(next);
    key.swap(next);
  }
  for (const auto& k : doomed)
    if (bpf_map_delete_elem(f, k.data()) != 0 && errno != ENOENT) throw_errno(errno, "deleting from map " + name);
  return doomed.size();
}

void DatapathMaps::put_endpoint(const ebpfnet_endpoint& ep, bool keep_counters) {
  __u32 ifindex = ep.ifindex;
  __be32 ip = ep.ip;
  std::vector<ebpfnet_ep_stats> zero(possible_cpus());
  if (bpf_map_update_elem(fd(kEpStats), &ifindex, zero.data(), keep_counters ? BPF_NOEXIST : BPF_ANY) != 0 &&
      !(keep_counters && errno == EEXIST))
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

void DatapathMaps::put_endpoint6(const ebpfnet_endpoint& ep, const Ipv6& ip6) {
  __u32 ifindex = ep.ifindex;
  ebpfnet_in6 key{};
  std::memcpy(key.addr, ip6.bytes().data(), 16);
  if (bpf_map_update_elem(fd(kEpByIp6), &key, &ep, BPF_ANY) != 0)
    throw_errno(errno, "writing ep_by_ip6 for " + ip6.str());
  if (bpf_map_update_elem(fd(kEpIp6), &ifindex, &key, BPF_ANY) != 0)
    throw_errno(errno, "writing ep_ip6 for ifindex " + std::to_string(ifindex));
}

void DatapathMaps::delete_endpoint6(int ifindex, const Ipv6& ip6) {
  __u32 idx = static_cast<__u32>(ifindex);
  ebpfnet_in6 key{};
  std::memcpy(key.addr, ip6.bytes().data(), 16);
  if (bpf_map_delete_elem(fd(kEpIp6), &idx) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting ep_ip6 entry " + std::to_string(ifindex));
  if (bpf_map_delete_elem(fd(kEpByIp6), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting ep_by_ip6 entry " + ip6.str());
}

std::optional<Ipv6> DatapathMaps::endpoint_ip6(int ifindex) const {
  __u32 idx = static_cast<__u32>(ifindex);
  ebpfnet_in6 v{};
  if (bpf_map_lookup_elem(fd(kEpIp6), &idx, &v) != 0) return std::nullopt;
  Ipv6::Bytes b{};
  std::memcpy(b.data(), v.addr, 16);
  return Ipv6(b);
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

namespace ebpfnet {

void DatapathMaps::write_slot(ebpfnet_cfg_slot slot, uint64_t value) {
  __u32 key = slot;
  if (bpf_map_update_elem(fd(kConfig), &key, &value, BPF_ANY) != 0)
    throw_errno(errno, "writing config slot " + std::to_string(slot));
}

void DatapathMaps::write_config(const NodeConfig& cfg) {
  const NodeConfig old = read_config();
  for (__u32 s = EBPFNET_CFG_BUILD + 1; s < EBPFNET_CFG_SLOT_COUNT; ++s) {
    auto slot = static_cast<ebpfnet_cfg_slot>(s);
    if (slot != EBPFNET_CFG_UPLINK_IFINDEX && slot != EBPFNET_CFG_TUNNEL_IFINDEX && cfg[slot] != old[slot])
      write_slot(slot, cfg[slot]);
  }
  // The devices last: each turns on what the other slots describe.
  for (auto slot : {EBPFNET_CFG_TUNNEL_IFINDEX, EBPFNET_CFG_UPLINK_IFINDEX})
    if (cfg[slot] != old[slot]) write_slot(slot, cfg[slot]);
}

NodeConfig DatapathMaps::read_config() const {
  NodeConfig cfg;
  for (__u32 s = 0; s < EBPFNET_CFG_SLOT_COUNT; ++s)
    if (bpf_map_lookup_elem(fd(kConfig), &s, &cfg.slots[s]) != 0)
      throw_errno(errno, "reading config slot " + std::to_string(s));
  return cfg;
}

namespace {
ebpfnet_prefix prefix_key(const Ipv4Cidr& c) {
  return {static_cast<__u32>(c.prefix), c.network.be()};
}
}  // namespace

void DatapathMaps::put_routed(const Ipv4Cidr& dst) {
  ebpfnet_prefix key = prefix_key(dst);
  __u8 one = 1;
  if (bpf_map_update_elem(fd(kRouted), &key, &one, BPF_ANY) != 0)
    throw_errno(errno, "writing routed prefix " + dst.str());
}

void DatapathMaps::delete_routed(const Ipv4Cidr& dst) {
  ebpfnet_prefix key = prefix_key(dst);
  if (bpf_map_delete_elem(fd(kRouted), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting routed prefix " + dst.str());
}

void DatapathMaps::put_tunnel(const Ipv4Cidr& pool, Ipv4 underlay) {
  ebpfnet_prefix key = prefix_key(pool);
  ebpfnet_tunnel_peer v{};
  v.underlay = underlay.be();
  if (bpf_map_update_elem(fd(kTunnel), &key, &v, BPF_ANY) != 0)
    throw_errno(errno, "writing tunnel peer of " + pool.str());
}

void DatapathMaps::delete_tunnel(const Ipv4Cidr& pool) {
  ebpfnet_prefix key = prefix_key(pool);
  if (bpf_map_delete_elem(fd(kTunnel), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting tunnel peer of " + pool.str());
}

std::optional<Ipv4> DatapathMaps::tunnel(const Ipv4Cidr& pool) const {
  ebpfnet_prefix key = prefix_key(pool);
  ebpfnet_tunnel_peer v{};
  if (bpf_map_lookup_elem(fd(kTunnel), &key, &v) != 0) return std::nullopt;
  return Ipv4::from_be(v.underlay);
}

void DatapathMaps::put_published(const PublishedPort& p) {
  ebpfnet_pub_key key{};
  key.port = htons(p.port);
  key.proto = p.proto;
  ebpfnet_pub_target t{};
  t.ip = p.ip.be();
  t.port = htons(p.target_port);
  if (bpf_map_update_elem(fd(kPublished), &key, &t, BPF_ANY) != 0)
    throw_errno(errno, "writing published port " + std::to_string(p.port));
}

void DatapathMaps::delete_published(uint8_t proto, uint16_t port) {
  ebpfnet_pub_key key{};
  key.port = htons(port);
  key.proto = proto;
  if (bpf_map_delete_elem(fd(kPublished), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting published port " + std::to_string(port));
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

std::vector<CtFlow> DatapathMaps::ct_flows(size_t limit) const {
  std::vector<CtFlow> out;
  uint64_t now = monotonic_ns();
  ebpfnet_ct_key key{}, next{};
  const void* prev = nullptr;
  while (out.size() < limit && bpf_map_get_next_key(fd(kCt), prev, &next) == 0) {
    key = next;
    prev = &key;
    CtFlow f{key, {}};
    if (bpf_map_lookup_elem(fd(kCt), &key, &f.entry) == 0 && f.entry.expires_ns >= now)
      out.push_back(f);
  }
  return out;
}

size_t DatapathMaps::ct_flush() {
  size_t n = 0;
  ebpfnet_ct_key key{};
  // Deleting while walking restarts the walk; always take the first key.
  while (bpf_map_get_next_key(fd(kCt), nullptr, &key) == 0) {
    if (bpf_map_delete_elem(fd(kCt), &key) != 0) throw_errno(errno, "flushing conntrack");
    ++n;
  }
  return n;
}

namespace {

// Deletes each flow with an entry that matches, and that entry's peer.
template <typename Match>
size_t ct_forget(int ct, Match matches) {
  std::vector<ebpfnet_ct_key> doomed;
  ebpfnet_ct_key key{}, next{};
  ebpfnet_ct_entry e{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(ct, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(ct, &key, &e) == 0 && matches(key, e)) {
      doomed.push_back(key);
      doomed.push_back(e.peer);
    }
  }
  size_t n = 0;
  for (const auto& k : doomed) {
    if (bpf_map_delete_elem(ct, &k) == 0)
      ++n;
    else if (errno != ENOENT)
      throw_errno(errno, "removing a conntrack entry");
  }
  return n;
}

}  // namespace

size_t DatapathMaps::ct_forget_service_flows(
    const std::function<bool(const ebpfnet_ct_key& addressed, const ebpfnet_ct_key& xlate)>& gone) {
  return ct_forget(fd(kCt), [&](const ebpfnet_ct_key& k, const ebpfnet_ct_entry& e) {
    return (e.flags & (EBPFNET_CT_F_SERVICE | EBPFNET_CT_F_REPLY)) == EBPFNET_CT_F_SERVICE && gone(k, e.xlate);
  });
}

size_t DatapathMaps::ct_forget_addresses(const std::set<Ipv4>& ips) {
  if (ips.empty()) return 0;
  auto in = [&](__be32 a) { return ips.count(Ipv4::from_be(a)) != 0; };
  return ct_forget(fd(kCt), [&](const ebpfnet_ct_key& k, const ebpfnet_ct_entry& e) {
    return in(k.saddr) || in(k.daddr) || in(e.xlate.saddr) || in(e.xlate.daddr);
  });
}

size_t DatapathMaps::ct_forget_published(uint8_t proto, uint16_t port) {
  const __be32 uplink = static_cast<__be32>(read_config()[EBPFNET_CFG_UPLINK_IP]);
  const __be16 p = htons(port);
  // Arriving for the published port, or a reply leaving as from it.
  return ct_forget(fd(kCt), [=](const ebpfnet_ct_key& k, const ebpfnet_ct_entry& e) {
    return (e.flags & EBPFNET_CT_F_DNAT) && k.proto == proto &&
           ((k.daddr == uplink && k.dport == p) || (e.xlate.saddr == uplink && e.xlate.sport == p));
  });
}

void DatapathMaps::put_policy_cidr(const ebpfnet_policy_cidr_key& key, uint32_t class_id) {
  __u32 v = class_id;
  if (bpf_map_update_elem(fd(kPolicyCidr), &key, &v, BPF_ANY) != 0)
    throw_errno(errno, "writing policy_cidr entry " + Ipv4::from_be(key.addr).str() + "/" +
                           std::to_string(key.prefixlen - 32));
}

void DatapathMaps::delete_policy_cidr(const ebpfnet_policy_cidr_key& key) {
  if (bpf_map_delete_elem(fd(kPolicyCidr), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting policy_cidr entry of rule set " + std::to_string(key.set_id));
}

void DatapathMaps::put_policy_port(const ebpfnet_policy_port_key& key, const ebpfnet_policy_verdict& v) {
  if (bpf_map_update_elem(fd(kPolicyPort), &key, &v, BPF_ANY) != 0)
    throw_errno(errno, "writing policy_port entry of class " + std::to_string(key.class_id));
}

void DatapathMaps::delete_policy_port(const ebpfnet_policy_port_key& key) {
  if (bpf_map_delete_elem(fd(kPolicyPort), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting policy_port entry of class " + std::to_string(key.class_id));
}

void DatapathMaps::put_ep_policy(Ipv4 endpoint, const ebpfnet_ep_policy& p) {
  __be32 key = endpoint.be();
  if (bpf_map_update_elem(fd(kEpPolicy), &key, &p, BPF_ANY) != 0)
    throw_errno(errno, "writing ep_policy of " + endpoint.str());
}

void DatapathMaps::delete_ep_policy(Ipv4 endpoint) {
  __be32 key = endpoint.be();
  if (bpf_map_delete_elem(fd(kEpPolicy), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting ep_policy of " + endpoint.str());
}

std::optional<ebpfnet_ep_policy> DatapathMaps::ep_policy(Ipv4 endpoint) const {
  __be32 key = endpoint.be();
  ebpfnet_ep_policy p{};
  if (bpf_map_lookup_elem(fd(kEpPolicy), &key, &p) != 0) return std::nullopt;
  return p;
}

void DatapathMaps::put_prefilter(const Ipv4Cidr& c) {
  ebpfnet_prefix key = prefix_key(c);
  std::vector<ebpfnet_prefilter_stats> zero(possible_cpus());
  if (bpf_map_update_elem(fd(kPrefilterStats), &key, zero.data(), BPF_NOEXIST) != 0 && errno != EEXIST)
    throw_errno(errno, "writing prefilter counters of " + c.str());
  if (c.prefix == 32) {
    __be32 addr = c.network.be();
    __u8 one = 1;
    if (bpf_map_update_elem(fd(kPrefilterAddr), &addr, &one, BPF_ANY) != 0)
      throw_errno(errno, "writing prefilter address " + c.network.str());
    return;
  }
  __u32 len = static_cast<__u32>(c.prefix);
  if (bpf_map_update_elem(fd(kPrefilterCidr), &key, &len, BPF_ANY) != 0)
    throw_errno(errno, "writing prefilter prefix " + c.str());
}

void DatapathMaps::delete_prefilter(const Ipv4Cidr& c) {
  ebpfnet_prefix key = prefix_key(c);
  __be32 addr = c.network.be();
  int rc = c.prefix == 32 ? bpf_map_delete_elem(fd(kPrefilterAddr), &addr) : bpf_map_delete_elem(fd(kPrefilterCidr), &key);
  if (rc != 0 && errno != ENOENT) throw_errno(errno, "deleting prefilter entry " + c.str());
  if (bpf_map_delete_elem(fd(kPrefilterStats), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting prefilter counters of " + c.str());
}

PrefilterCount DatapathMaps::prefilter_count(const Ipv4Cidr& c) const {
  ebpfnet_prefix key = prefix_key(c);
  PrefilterCount out{c};
  std::vector<ebpfnet_prefilter_stats> per_cpu(possible_cpus());
  if (bpf_map_lookup_elem(fd(kPrefilterStats), &key, per_cpu.data()) != 0) return out;
  for (const auto& s : per_cpu) {
    out.packets += s.packets;
    out.bytes += s.bytes;
  }
  return out;
}

void DatapathMaps::put_service(const ebpfnet_svc_key& key, const ebpfnet_svc& s) {
  if (bpf_map_update_elem(fd(kSvc), &key, &s, BPF_ANY) != 0) throw_errno(errno, "writing service " + std::to_string(s.id));
}

void DatapathMaps::delete_service(const ebpfnet_svc_key& key) {
  if (bpf_map_delete_elem(fd(kSvc), &key) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting service address " + Ipv4::from_be(key.addr).str() + ":" +
                           std::to_string(ntohs(key.port)));
}

void DatapathMaps::put_maglev(uint32_t svc_id, std::span<const uint32_t> table) {
  const std::string what = "Maglev table of service " + std::to_string(svc_id);
  if (table.empty()) {
    if (bpf_map_delete_elem(fd(kMaglev), &svc_id) != 0 && errno != ENOENT) throw_errno(errno, "deleting " + what);
    return;
  }
  if (table.size() != EBPFNET_MAGLEV_SIZE) throw Error(Errc::failed, what + " has " + std::to_string(table.size()) + " slots");
  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "maglev_svc", sizeof(__u32), sizeof(__u32), EBPFNET_MAGLEV_SIZE,
                                nullptr));
  if (!inner.valid()) throw_errno(errno, "creating " + what);
  std::vector<__u32> keys(table.size());
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<__u32>(i);
  __u32 count = static_cast<__u32>(table.size());
  if (bpf_map_update_batch(inner.get(), keys.data(), table.data(), &count, nullptr) != 0)
    throw_errno(errno, "writing " + what);
  const int inner_fd = inner.get();
  if (bpf_map_update_elem(fd(kMaglev), &svc_id, &inner_fd, BPF_ANY) != 0) throw_errno(errno, "switching " + what);
}

std::vector<uint32_t> DatapathMaps::maglev(uint32_t svc_id) const {
  __u32 inner_id = 0;
  if (bpf_map_lookup_elem(fd(kMaglev), &svc_id, &inner_id) != 0) return {};
  UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
  if (!inner.valid()) throw_errno(errno, "opening the Maglev table of service " + std::to_string(svc_id));
  std::vector<uint32_t> out(EBPFNET_MAGLEV_SIZE);
  for (__u32 i = 0; i < out.size(); ++i)
    if (bpf_map_lookup_elem(inner.get(), &i, &out[i]) != 0)
      throw_errno(errno, "reading the Maglev table of service " + std::to_string(svc_id));
  return out;
}

void DatapathMaps::put_backend(uint32_t id, const ebpfnet_backend& b) {
  std::vector<ebpfnet_backend_stats> zero(possible_cpus());
  if (bpf_map_update_elem(fd(kBackendStats), &id, zero.data(), BPF_NOEXIST) != 0 && errno != EEXIST)
    throw_errno(errno, "writing counters of backend " + std::to_string(id));
  if (bpf_map_update_elem(fd(kBackends), &id, &b, BPF_ANY) != 0)
    throw_errno(errno, "writing backend " + std::to_string(id));
}

void DatapathMaps::delete_backend(uint32_t id) {
  if (bpf_map_delete_elem(fd(kBackends), &id) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting backend " + std::to_string(id));
  if (bpf_map_delete_elem(fd(kBackendStats), &id) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting counters of backend " + std::to_string(id));
}

void DatapathMaps::put_sock_netns(uint64_t cookie, Ipv4 endpoint) {
  __be32 ip = endpoint.be();
  if (bpf_map_update_elem(fd(kSockNetns), &cookie, &ip, BPF_ANY) != 0)
    throw_errno(errno, "writing sock_netns entry of " + endpoint.str());
}

void DatapathMaps::delete_sock_netns(uint64_t cookie) {
  if (bpf_map_delete_elem(fd(kSockNetns), &cookie) != 0 && errno != ENOENT)
    throw_errno(errno, "deleting sock_netns entry " + std::to_string(cookie));
}

uint64_t DatapathMaps::backend_connections(uint32_t id) const {
  std::vector<ebpfnet_backend_stats> per_cpu(possible_cpus());
  if (bpf_map_lookup_elem(fd(kBackendStats), &id, per_cpu.data()) != 0) return 0;
  uint64_t n = 0;
  for (const auto& s : per_cpu) n += s.connections;
  return n;
}

void DatapathMaps::extend_monitor(uint64_t drops_until_ns, uint64_t flows_until_ns) {
  __u32 zero = 0;
  ebpfnet_monitor m{};
  if (bpf_map_lookup_elem(fd(kMonitor), &zero, &m) != 0) throw_errno(errno, "reading the monitor map");
  m.drops_until_ns = std::max<uint64_t>(m.drops_until_ns, drops_until_ns);
  m.flows_until_ns = std::max<uint64_t>(m.flows_until_ns, flows_until_ns);
  if (bpf_map_update_elem(fd(kMonitor), &zero, &m, BPF_ANY) != 0) throw_errno(errno, "writing the monitor map");
}

}  // namespace ebpfnet

namespace ebpfnet {

size_t count_keys(int map_fd, uint32_t key_size) {
  std::vector<char> key(key_size), next(key_size);
  size_t n = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
    ++n;
    key.swap(next);
    prev = key.data();
  }
  return n;
}

size_t copy_entries(int from, int to, bool only_missing) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(from, &info, &len) != 0) throw_errno(errno, "reading map info");
  const bool percpu = info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_PERCPU_ARRAY;
  // Per-CPU values come as one 8-byte aligned slot per possible CPU.
  const size_t value_size = percpu ? ((info.value_size + 7) & ~size_t{7}) * possible_cpus() : info.value_size;
  std::vector<char> key(info.key_size), next(info.key_size), value(value_size);
  const __u64 flags = only_missing ? BPF_NOEXIST : BPF_ANY;
  size_t n = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(from, prev, next.data()) == 0) {
    key.swap(next);
    prev = key.data();
    if (bpf_map_lookup_elem(from, key.data(), value.data()) != 0) continue;  // gone meanwhile
    if (bpf_map_update_elem(to, key.data(), value.data(), flags) == 0)
      ++n;
    else if (errno != EEXIST)
      throw_errno(errno, std::string("copying an entry of map ") + info.name);
  }
  return n;
}

}  // namespace ebpfnet
