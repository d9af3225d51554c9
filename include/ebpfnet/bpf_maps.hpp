// Typed access to a node's datapath maps (layouts from abi.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <vector>

#include "ebpfnet/abi.h"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/ipv6.hpp"

namespace ebpfnet {

static_assert(sizeof(ebpfnet_endpoint) == 20, "abi.h: ebpfnet_endpoint layout changed");
static_assert(sizeof(ebpfnet_in6) == 16, "abi.h: ebpfnet_in6 layout changed");
static_assert(sizeof(ebpfnet_tunnel_peer) == 8, "abi.h: ebpfnet_tunnel_peer layout changed");
static_assert(sizeof(ebpfnet_ep_stats) == 8 * (4 + EBPFNET_DROP_SLOTS),
              "abi.h: ebpfnet_ep_stats layout changed");

using DropCounts = std::array<uint64_t, EBPFNET_DROP_REASON_MAX>;

// The name users see for a drop reason ("spoofed-ip", ...).
std::string_view drop_reason_name(int reason);

// Counters summed over CPUs.
struct EndpointStats {
  uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
  DropCounts drops{};
  uint64_t drops_total() const;
};

// The map names, as declared in bpf/lib/maps.h and pinned under <pin dir>/maps/.
// Append only: a map of a newer ABI goes at the end (ABI 3: the prefilter's,
// ABI 4: the services', ABI 5: the overlay's).
inline constexpr std::array<const char*, 26> kMapNames = {
    "ep_by_ip",  "ep_by_ifindex",  "ep_stats",       "drop_stats",      "config",       "ct",
    "published", "routed",         "ep_policy",      "policy_cidr",     "policy_port",  "monitor",
    "events",    "prefilter_addr", "prefilter_cidr", "prefilter_stats", "svc",          "maglev",
    "backends",  "backend_stats",  "svc_affinity",   "sock_netns",      "sock_revnat",  "tunnel",
    "ep_by_ip6", "ep_ip6"};
using MapFds = std::array<UniqueFd, kMapNames.size()>;

constexpr size_t map_index(std::string_view name) {
  for (size_t i = 0; i < kMapNames.size(); ++i)
    if (name == kMapNames[i]) return i;
  return kMapNames.size();
}

// How a map's entries reach a new map when a reload cannot reuse it.
enum class Refill {
  state,     // rewritten from node state: endpoints, published ports, routes, policy, config
  flows,     // copied entry by entry (conntrack): refused when the layouts cannot be converted
  counters,  // copied when key and value keep their size, else they start at zero
  none,      // starts empty: monitor deadlines, the event ring, session affinity
};
inline constexpr std::array<Refill, kMapNames.size()> kMapRefill = {
    Refill::state, Refill::state, Refill::counters, Refill::counters, Refill::state, Refill::flows,
    Refill::state, Refill::state, Refill::state,    Refill::state,    Refill::state, Refill::none,
    Refill::none,  Refill::state, Refill::state,    Refill::counters, Refill::state, Refill::state,
    Refill::state, Refill::counters, Refill::none,  Refill::state,    Refill::counters, Refill::state,
    Refill::state, Refill::state};
// The first ABI version that has each map: attach upgrades a datapath that lacks them.
constexpr uint32_t map_since_abi(size_t i) { return i >= 24 ? 6 : i >= 23 ? 5 : i >= 16 ? 4 : i >= 13 ? 3 : 1; }

// The entries of a hash map or a trie, whatever its layout: walks the keys
// (key_size from the map's info), so maps of another ABI are counted too.
size_t count_keys(int map_fd, uint32_t key_size);

// Copies every entry of map from into map to (same key and value sizes);
// only_missing keeps what to has. Returns the entries written.
size_t copy_entries(int from, int to, bool only_missing);

// A published port: uplink port -> endpoint address and port.
struct PublishedPort {
  uint8_t proto = 0;  // IPPROTO_TCP or IPPROTO_UDP
  uint16_t port = 0;  // on the uplink address
  Ipv4 ip;
  uint16_t target_port = 0;
};

// The node's settings as the datapath reads them: one u64 per slot of enum
// ebpfnet_cfg_slot (abi.h); a slot not set reads 0.
struct NodeConfig {
  std::array<uint64_t, EBPFNET_CFG_SLOT_COUNT> slots{};
  uint64_t& operator[](ebpfnet_cfg_slot s) { return slots[s]; }
  uint64_t operator[](ebpfnet_cfg_slot s) const { return slots[s]; }
};

// An entry of the uplink prefilter (an address is its /32) and what it dropped.
struct PrefilterCount {
  Ipv4Cidr cidr;
  uint64_t packets = 0, bytes = 0;
};

// One direction of a tracked flow.
struct CtFlow {
  ebpfnet_ct_key key{};
  ebpfnet_ct_entry entry{};
};

class DatapathMaps {
 public:
  DatapathMaps() = default;
  explicit DatapathMaps(MapFds fds) : fds_(std::move(fds)) {}

  // Zeroed counters first, then the lookups the program uses, so a frame
  // never finds an endpoint without its counters.
  // keep_counters: counters the endpoint has already stay (a reload).
  void put_endpoint(const ebpfnet_endpoint& ep, bool keep_counters = false);
  void delete_endpoint(int ifindex, Ipv4 ip);
  // A dual-stack endpoint's IPv6, after put_endpoint (ep_ip6 last: a frame
  // from it is judged as IPv6 only once its address is findable).
  void put_endpoint6(const ebpfnet_endpoint& ep, const Ipv6& ip6);
  void delete_endpoint6(int ifindex, const Ipv6& ip6);
  std::optional<Ipv6> endpoint_ip6(int ifindex) const;
  std::optional<ebpfnet_endpoint> endpoint_by_ip(Ipv4 ip) const;
  std::optional<ebpfnet_endpoint> endpoint_by_ifindex(int ifindex) const;
  std::optional<EndpointStats> stats(int ifindex) const;
  DropCounts node_drops() const;
  size_t endpoint_count() const;

  // Writes the settings that differ, the vxlan device's and the uplink's
  // ifindexes (which turn the overlay and NAT on) last, so a packet never
  // sees NAT without its address and ports, or the overlay without its VNI. The
  // datapath's identity (ABI version, build) is attach's, through write_slot.
  void write_config(const NodeConfig& cfg);
  NodeConfig read_config() const;
  void write_slot(ebpfnet_cfg_slot slot, uint64_t value);

  void put_routed(const Ipv4Cidr& dst);
  void delete_routed(const Ipv4Cidr& dst);

  // The overlay (abi.h): a remote pool and the underlay address of the node
  // that owns it.
  void put_tunnel(const Ipv4Cidr& pool, Ipv4 underlay);
  void delete_tunnel(const Ipv4Cidr& pool);
  std::optional<Ipv4> tunnel(const Ipv4Cidr& pool) const;

  void put_published(const PublishedPort& p);
  void delete_published(uint8_t proto, uint16_t port);

  // Live entries only (expired ones are skipped), at most limit.
  std::vector<CtFlow> ct_flows(size_t limit = SIZE_MAX) const;
  size_t ct_flush();  // returns how many entries were removed
  // Removes the flows (both entries) of these addresses: as they arrive or
  // as they leave, so masqueraded, published, hairpinned and tracked flows
  // all go. For removed endpoints, whose addresses may be handed out again;
  // one walk of the table for all of them.
  size_t ct_forget_addresses(const std::set<Ipv4>& ips);
  // Removes the flows through a published port (proto, port on the uplink).
  size_t ct_forget_published(uint8_t proto, uint16_t port);

  // Policy (abi.h): rule-set entries are written before the ep_policy entry
  // that switches to them, and deleted after it no longer names them.
  void put_policy_cidr(const ebpfnet_policy_cidr_key& key, uint32_t class_id);
  void delete_policy_cidr(const ebpfnet_policy_cidr_key& key);
  void put_policy_port(const ebpfnet_policy_port_key& key, const ebpfnet_policy_verdict& v);
  void delete_policy_port(const ebpfnet_policy_port_key& key);
  void put_ep_policy(Ipv4 endpoint, const ebpfnet_ep_policy& p);
  void delete_ep_policy(Ipv4 endpoint);
  std::optional<ebpfnet_ep_policy> ep_policy(Ipv4 endpoint) const;

  // Prefilter (abi.h): the entry's counters (kept when it has some), then
  // the deny entry; deleted in the other order. A /32 goes in prefilter_addr.
  void put_prefilter(const Ipv4Cidr& c);
  void delete_prefilter(const Ipv4Cidr& c);
  PrefilterCount prefilter_count(const Ipv4Cidr& c) const;

  // Services (abi.h). A service's Maglev table is written whole into a new
  // inner map that one update of maglev swaps in; an empty table removes
  // it (the service has no active backend). A backend's counters are
  // created with it (kept when it has some) and go with it.
  void put_service(const ebpfnet_svc_key& key, const ebpfnet_svc& s);
  void delete_service(const ebpfnet_svc_key& key);
  void put_maglev(uint32_t svc_id, std::span<const uint32_t> table);
  std::vector<uint32_t> maglev(uint32_t svc_id) const;  // empty: none
  void put_backend(uint32_t id, const ebpfnet_backend& b);
  void delete_backend(uint32_t id);
  uint64_t backend_connections(uint32_t id) const;
  // Removes the flows balanced to a service (both entries) for which gone()
  // says yes, given the tuple the client addressed and the one it leaves as.
  size_t ct_forget_service_flows(
      const std::function<bool(const ebpfnet_ct_key& addressed, const ebpfnet_ct_key& xlate)>& gone);

  // Connect-time balancing: which network namespaces are the endpoints'
  // (their cookies), so the socket hooks touch no other socket.
  void put_sock_netns(uint64_t cookie, Ipv4 endpoint);
  void delete_sock_netns(uint64_t cookie);

  // Moves the monitor deadlines (CLOCK_MONOTONIC ns) to at least these; 0
  // leaves a deadline as it is, so monitors of either kind coexist.
  void extend_monitor(uint64_t drops_until_ns, uint64_t flows_until_ns);

  // Deletes every entry whose key keep() refuses (keys of key_size bytes,
  // checked against the map's); returns how many went. For making the maps
  // follow the state again after a killed command.
  size_t prune(std::string_view map, size_t key_size, const std::function<bool(const void* key)>& keep);

  int fd(size_t i) const;  // in kMapNames order
  int fd(std::string_view name) const;

 private:
  MapFds fds_;
};

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns().
uint64_t monotonic_ns();

// A plain ebpfnet_endpoint from controller-side values.
ebpfnet_endpoint make_endpoint(int ifindex, Ipv4 ip, const Mac& mac, const Mac& node_mac);

}  // namespace ebpfnet
