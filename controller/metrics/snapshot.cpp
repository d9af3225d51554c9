#include "ebpfnet/endpoint_table.hpp"
#include "ebpfnet/metrics/snapshot.hpp"

#include <bpf/bpf.h>
#include <linux/in.h>

#include <chrono>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet::metrics {
namespace {

// Maps whose entries can be counted by walking keys; an array has all its
// entries whatever is in them.
bool countable(uint32_t type) {
  return type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_LRU_HASH ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_LPM_TRIE;
}

// The node's endpoints one at a time: from its table, or from a state file
// of schema 7 or older that no command has moved into the table yet.
// Read without the node's lock, like the rest: a snapshot, not a transaction.
void each_endpoint(const Env& env, const NodeState& st, const std::function<void(const EndpointRecord&)>& fn) {
  if (st.legacy_endpoints) {
    for (const auto& e : *st.legacy_endpoints) fn(e);
    return;
  }
  const StateStore store(env.state_root, st.name);
  EndpointTable(std::make_shared<NodeDb>(store.checked_path("services.db"), NodeDb::Mode::read), st.cidr, st.cidr6)
      .for_each(fn);
}

void read_state(const Env& env, const NodeState& st, NodeSnapshot& s) {
  s.published = st.published.size();
  s.routes = st.routes.size();
  for (const auto& c : st.prefilter) ++(c.prefix == 32 ? s.prefilter_addresses : s.prefilter_prefixes);
  each_endpoint(env, st, [&](const EndpointRecord& e) {
    ++s.endpoints;
    if (!e.policy) return;
    ++s.policed_endpoints;
    s.policy_rules[EBPFNET_INGRESS] += e.policy->ingress.rules.size();
    s.policy_rules[EBPFNET_EGRESS] += e.policy->egress.rules.size();
  });
}

// Programs are read by their pins alone: a datapath of another ABI may lack
// maps this binary knows, and its programs are still worth naming.
void read_programs(const std::filesystem::path& pin_dir, NodeSnapshot& s) {
  for (const char* name : {"from_endpoint", "from_uplink", "uplink_prefilter"}) {
    UniqueFd fd(bpf_obj_get((pin_dir / name).c_str()));
    if (!fd.valid()) continue;
    s.programs.push_back({name, Datapath::prog_info(fd.get()).tag});
  }
}

// Layout-free facts of every pinned map: safe whatever ABI pinned it.
void read_maps(const MapFds& pins, NodeSnapshot& s) {
  for (size_t i = 0; i < kMapNames.size(); ++i) {
    if (!pins[i].valid()) continue;
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(pins[i].get(), &info, &len) != 0) continue;
    MapSample m{kMapNames[i], map_type_name(info.type), info.max_entries, std::nullopt};
    if (countable(info.type)) m.entries = count_keys(pins[i].get(), info.key_size);
    s.maps.push_back(std::move(m));
  }
}

size_t proto_slot(uint8_t proto) {
  return proto == IPPROTO_TCP ? 0 : proto == IPPROTO_UDP ? 1 : 2;
}

void read_counters(const Env& env, const NodeState& st, const DatapathMaps& maps, NodeSnapshot& s) {
  s.counters = true;
  each_endpoint(env, st, [&](const EndpointRecord& e) { s.per_endpoint.push_back({e.name, maps.stats(e.host_ifindex)}); });
  s.node_drops = maps.node_drops();
  for (const auto& c : st.prefilter) {
    const PrefilterCount n = maps.prefilter_count(c);
    s.prefilter_packets += n.packets;
    s.prefilter_bytes += n.bytes;
  }
  for (const auto& f : maps.ct_flows()) {
    if (f.entry.state < s.conntrack.by_state.size()) ++s.conntrack.by_state[f.entry.state];
    // The reply entry of a masqueraded flow is what holds its port (nat.h).
    constexpr uint8_t kHoldsPort = EBPFNET_CT_F_REPLY | EBPFNET_CT_F_SNAT;
    if ((f.entry.flags & kHoldsPort) == kHoldsPort) ++s.conntrack.nat_ports[proto_slot(f.key.proto)];
  }
}

}  // namespace

NodeSnapshot collect(const Env& env, const std::string& node) {
  const auto start = std::chrono::steady_clock::now();
  NodeSnapshot s;
  s.node = node;
  const NodeState st = StateStore(env.state_root, node).load();
  read_state(env, st, s);
  s.operations = read_operations(env, node);

  const std::filesystem::path pin_dir = Node(env, node).pin_dir();
  s.binary_build = Datapath::build_id();
  MapFds pins = Datapath::open_map_pins(pin_dir);
  s.abi = Datapath::abi_of(pins);
  s.build = Datapath::build_of(pins);
  read_programs(pin_dir, s);
  read_maps(pins, s);

  bool all_pinned = true;
  for (const auto& fd : pins) all_pinned = all_pinned && fd.valid();
  if (s.abi == EBPFNET_ABI_VERSION && all_pinned) read_counters(env, st, DatapathMaps(std::move(pins)), s);

  s.collect_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace ebpfnet::metrics
