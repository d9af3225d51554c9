#include "recovery.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "ebpfnet/datapath.hpp"
#include "endpoints.hpp"
#include "marks.hpp"
#include "overlay.hpp"
#include "pins.hpp"
#include "policy.hpp"
#include "prefilter.hpp"
#include "services.hpp"
#include "socket_lb.hpp"
#include "uplink.hpp"

namespace ebpfnet::recovery {
namespace {

// The node's maps when they are of this binary's layout. Maps of another
// ABI are left alone: attach rebuilds them from the state anyway.
DatapathMaps* current_maps(NodeTxn& txn) {
  if (Datapath::abi_of(Datapath::open_map_pins(txn.node().pin_dir())) != EBPFNET_ABI_VERSION) return nullptr;
  return txn.maps_if_attached();
}

template <typename K, typename Keep>
size_t prune(DatapathMaps& maps, std::string_view map, Keep keep) {
  return maps.prune(map, sizeof(K), [&](const void* raw) {
    K key;
    std::memcpy(&key, raw, sizeof key);
    return keep(key);
  });
}

template <typename T>
std::string bytes_of(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

// The rule-set keys of every policy the state holds.
std::pair<std::set<std::string>, std::set<std::string>> policy_keys(EndpointTable& table) {
  std::set<std::string> cidrs, ports;
  table.for_each([&](const EndpointRecord& e) {
    if (!e.policy) return;
    for (PolicyDir d : {PolicyDir::ingress, PolicyDir::egress}) {
      const int i = static_cast<int>(d);
      if (!e.policy_ids.set[i]) continue;
      const CompiledSet c = compile_policy(e.policy->dir(d), e.policy_ids.set[i], e.policy_ids.first_class[i]);
      for (const auto& [key, cls] : c.cidrs) cidrs.insert(bytes_of(key));
      for (const auto& [key, v] : c.ports) ports.insert(bytes_of(key));
    }
  });
  return {std::move(cidrs), std::move(ports)};
}

// Every map rebuilt from the state (Refill::state) says what the state says:
// entries it does not name go, and what it names is written again.
void reconcile(NodeTxn& txn, DatapathMaps& maps) {
  const NodeState& st = txn.state();
  std::set<uint32_t> ifindexes, ips, policed, ifindexes6;
  std::set<Ipv6> ip6s;
  txn.endpoints().for_each([&](const EndpointRecord& e) {
    ifindexes.insert(static_cast<uint32_t>(e.host_ifindex));
    ips.insert(e.ip.be());
    if (e.ip6) {
      ip6s.insert(*e.ip6);
      ifindexes6.insert(static_cast<uint32_t>(e.host_ifindex));
    }
    if (e.policy) policed.insert(e.ip.be());
  });
  std::set<std::pair<uint8_t, uint16_t>> published;
  for (const auto& p : st.published) published.insert({uplink::proto_number(p.proto), p.port});
  std::set<std::pair<uint32_t, uint32_t>> routed;
  for (const auto& r : st.routes) routed.insert({static_cast<uint32_t>(r.dst.prefix), r.dst.network.be()});
  if (st.native_cidr) routed.insert({static_cast<uint32_t>(st.native_cidr->prefix), st.native_cidr->network.be()});
  const auto [cidr_keys, port_keys] = policy_keys(txn.endpoints());

  size_t gone = 0;
  gone += prune<uint32_t>(maps, "ep_by_ip", [&](uint32_t ip) { return ips.count(ip) > 0; });
  gone += prune<uint32_t>(maps, "ep_by_ifindex", [&](uint32_t i) { return ifindexes.count(i) > 0; });
  gone += prune<uint32_t>(maps, "ep_stats", [&](uint32_t i) { return ifindexes.count(i) > 0; });
  gone += prune<ebpfnet_in6>(maps, "ep_by_ip6", [&](const ebpfnet_in6& k) {
    Ipv6::Bytes b{};
    std::memcpy(b.data(), k.addr, b.size());
    return ip6s.count(Ipv6(b)) > 0;
  });
  gone += prune<uint32_t>(maps, "ep_ip6", [&](uint32_t i) { return ifindexes6.count(i) > 0; });
  gone += prune<ebpfnet_pub_key>(maps, "published", [&](const ebpfnet_pub_key& k) {
    return published.count({k.proto, ntohs(k.port)}) > 0;
  });
  gone += prune<ebpfnet_prefix>(maps, "routed",
                                [&](const ebpfnet_prefix& k) { return routed.count({k.prefixlen, k.addr}) > 0; });
  gone += prune<uint32_t>(maps, "ep_policy", [&](uint32_t ip) { return policed.count(ip) > 0; });
  gone += prune<ebpfnet_policy_cidr_key>(
      maps, "policy_cidr", [&](const ebpfnet_policy_cidr_key& k) { return cidr_keys.count(bytes_of(k)) > 0; });
  gone += prune<ebpfnet_policy_port_key>(
      maps, "policy_port", [&](const ebpfnet_policy_port_key& k) { return port_keys.count(bytes_of(k)) > 0; });
  gone += prefilter::prune(st, maps);
  const std::vector<ServiceRecord> services = txn.services().all();
  gone += services::prune(txn, services, maps);
  gone += socket_lb::prune(txn.endpoints(), maps);
  gone += overlay::prune(st, maps);
  endpoints::refill(txn.node(), txn.endpoints(), maps);
  policies::refill(txn.endpoints(), maps);
  prefilter::refill(st, maps);
  services::refill(txn, services, maps);
  socket_lb::refill(txn.endpoints(), maps);
  overlay::refill(st, maps);
  // A killed `tunnel add` may have made the device before the state had it.
  overlay::remove_stray_device(txn);
  uplink::write_config(txn, maps);
  // The uplink's XDP link follows the deny list (a killed prefilter add or
  // del may have attached or detached it before the state said so).
  if (UniqueFd prog(bpf_obj_get((txn.node().pin_dir() / "uplink_prefilter").c_str())); prog.valid())
    prefilter::converge_xdp(txn, prog.get(), -1, false);
  socket_lb::converge(txn, maps);
  if (gone) spdlog::info("node {}: {} map entries the state does not hold removed", txn.node().name(), gone);
}

}  // namespace

void run(NodeTxn& txn, const Journal& j) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  DatapathMaps* maps = txn.has_state() ? current_maps(txn) : nullptr;

  // A node without state (a killed `node create`) has no endpoints.
  std::vector<EndpointRecord> removing;
  if (txn.has_state())
    for (const auto& name : j.removing)
      if (auto e = txn.endpoints().get(name)) removing.push_back(std::move(*e));
  // Only when there is one: removal works in the node's namespace, which a
  // killed `node create` may have left a placeholder file that cannot be entered.
  if (!removing.empty()) endpoints::remove(txn, removing, maps);
  for (const auto& e : removing) {
    txn.endpoints().erase(e.name);
    spdlog::info("node {}: removal of endpoint {} finished", node.name(), e.name);
  }
  for (EndpointRecord planned : j.adding) {
    const auto saved = txn.has_state() ? txn.endpoints().get(planned.name) : std::nullopt;
    if (saved && saved->host_ifname == planned.host_ifname) continue;  // it was saved: done
    // Its namespace goes only when it is the one that operation made.
    if (planned.netns_owned)
      planned.netns_owned = marks::netns_is(planned.netns, marks::of(node, planned.name), true);
    endpoints::remove(txn, {planned}, maps);
    spdlog::info("node {}: what was made of endpoint {} is taken back", node.name(), planned.name);
  }
  // A port the state still publishes keeps its flows (killed before it was saved).
  for (const auto& p : j.unpublishing) {
    const bool kept = std::any_of(st.published.begin(), st.published.end(),
                                  [&](const PublishRecord& q) { return q.proto == p.proto && q.port == p.port; });
    if (maps && !kept) maps->ct_forget_published(uplink::proto_number(p.proto), p.port);
  }
  if (!txn.has_state())
    for (const auto& name : j.netns)
      if (marks::netns_is(name, marks::of(node), true)) netns::del(name);
  if (maps) reconcile(txn, *maps);
}

}  // namespace ebpfnet::recovery
