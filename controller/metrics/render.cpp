#include "ebpfnet/metrics/render.hpp"

#include <cstdio>

namespace ebpfnet::metrics {
namespace {

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

const char* const kCtStates[] = {"new", "established", "closing"};  // enum ebpfnet_ct_state
const char* const kProtos[] = {"tcp", "udp", "icmp"};                // ConntrackSample::nat_ports
const char* const kDirections[] = {"ingress", "egress"};             // enum ebpfnet_policy_dir

void identity(Exposition& x, const NodeSnapshot& s, const Labels& node) {
  Labels info = node;
  info.insert(info.end(), {{"abi", std::to_string(s.abi)},
                           {"build", s.build ? hex(s.build) : ""},
                           {"binary_abi", std::to_string(EBPFNET_ABI_VERSION)},
                           {"binary_build", hex(s.binary_build)}});
  x.gauge("ebpfnet_datapath_info",
          "The pinned datapath's map ABI version and program build (abi 0: nothing pinned), and this "
          "ebpfnet's; always 1.")
      .add(info, uint64_t{1});
  auto& progs = x.gauge("ebpfnet_program_info", "A pinned program of the node and its tag; always 1.");
  for (const auto& p : s.programs) {
    Labels l = node;
    l.insert(l.end(), {{"program", p.name}, {"tag", p.tag}});
    progs.add(l, uint64_t{1});
  }
  x.gauge("ebpfnet_datapath_counters_readable",
          "1 when the pinned maps have this ebpfnet's layouts, so counters and conntrack are exported; 0 "
          "for a datapath of another ABI (or none), of which only layout-free series are.")
      .add(node, uint64_t{s.counters});
}

void state(Exposition& x, const NodeSnapshot& s, const Labels& node) {
  x.gauge("ebpfnet_endpoints", "Endpoints of the node.").add(node, uint64_t{s.endpoints});
  x.gauge("ebpfnet_published_ports", "Published ports (uplink port to an endpoint's port).")
      .add(node, uint64_t{s.published});
  x.gauge("ebpfnet_routes", "Destinations routed through the uplink without masquerade.")
      .add(node, uint64_t{s.routes});
  x.gauge("ebpfnet_policy_endpoints", "Endpoints with a network policy.").add(node, uint64_t{s.policed_endpoints});
  auto& prefilter = x.gauge("ebpfnet_prefilter_entries",
                            "Sources the uplink's XDP prefilter denies, by kind (address: a /32, prefix: any other).");
  for (const auto& [kind, n] : {std::pair{"address", s.prefilter_addresses}, std::pair{"prefix", s.prefilter_prefixes}}) {
    Labels l = node;
    l.emplace_back("kind", kind);
    prefilter.add(l, uint64_t{n});
  }
  auto& rules = x.gauge("ebpfnet_policy_rules", "Policy rules over all endpoints, by direction.");
  for (int d = 0; d < 2; ++d) {
    Labels l = node;
    l.emplace_back("direction", kDirections[d]);
    rules.add(l, uint64_t{s.policy_rules[d]});
  }
}

void operations(Exposition& x, const NodeSnapshot& s, const Labels& node) {
  auto& count = x.counter("ebpfnet_operations_total",
                          "Operations of the ebpfnet command line on the node (attach, endpoint add, ...), by "
                          "result.");
  auto& secs = x.counter("ebpfnet_operation_duration_seconds_total",
                         "Time those operations took, summed (over ebpfnet_operations_total: the mean).");
  for (const auto& [op, st] : s.operations) {
    Labels l = node;
    l.emplace_back("operation", op);
    secs.add(l, st.seconds);
    for (bool ok : {true, false}) {
      Labels r = l;
      r.emplace_back("result", ok ? "ok" : "failed");
      count.add(r, ok ? st.ok : st.failed);
    }
  }
}

void maps(Exposition& x, const NodeSnapshot& s, const Labels& node) {
  auto& entries = x.gauge("ebpfnet_map_entries",
                          "Entries of a pinned hash map or trie (conntrack: expired entries too, they hold a "
                          "slot until reused).");
  auto& max = x.gauge("ebpfnet_map_max_entries", "Capacity of a pinned map.");
  auto& pressure = x.gauge("ebpfnet_map_pressure", "Entries over capacity of a pinned hash map or trie (0 to 1).");
  for (const auto& m : s.maps) {
    Labels l = node;
    l.emplace_back("map", m.name);
    max.add(l, uint64_t{m.max_entries});
    if (!m.entries) continue;
    entries.add(l, uint64_t{*m.entries});
    pressure.add(l, m.max_entries ? static_cast<double>(*m.entries) / m.max_entries : 0.0);
  }
}

void traffic(Exposition& x, const NodeSnapshot& s, const Labels& node) {
  EndpointStats sum;
  for (const auto& e : s.per_endpoint) {
    if (!e.stats) continue;
    sum.tx_packets += e.stats->tx_packets;
    sum.tx_bytes += e.stats->tx_bytes;
    sum.rx_packets += e.stats->rx_packets;
    sum.rx_bytes += e.stats->rx_bytes;
    for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r) sum.drops[r] += e.stats->drops[r];
  }
  auto& pkts = x.counter("ebpfnet_forwarded_packets_total",
                         "Packets forwarded by the datapath, summed over the endpoints there are now: egress "
                         "is what endpoints sent and the datapath accepted, ingress what it delivered to them.");
  auto& bytes = x.counter("ebpfnet_forwarded_bytes_total",
                          "Bytes forwarded by the datapath, as ebpfnet_forwarded_packets_total.");
  for (int d = 0; d < 2; ++d) {
    Labels l = node;
    l.emplace_back("direction", kDirections[d]);
    const bool egress = d == EBPFNET_EGRESS;
    pkts.add(l, egress ? sum.tx_packets : sum.rx_packets);
    bytes.add(l, egress ? sum.tx_bytes : sum.rx_bytes);
  }
  auto& drops = x.counter("ebpfnet_dropped_packets_total",
                          "Packets the datapath dropped, by reason: those of the endpoints there are now and "
                          "those tied to no endpoint. (Dropped bytes are not counted by the datapath.)");
  for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r) {
    Labels l = node;
    l.emplace_back("reason", std::string(drop_reason_name(r)));
    drops.add(l, sum.drops[r] + s.node_drops[r]);
  }

  x.counter("ebpfnet_prefilter_dropped_packets_total",
            "Packets the uplink's XDP prefilter dropped (denied sources), summed over the entries there are now.")
      .add(node, s.prefilter_packets);
  x.counter("ebpfnet_prefilter_dropped_bytes_total", "Bytes of those packets.").add(node, s.prefilter_bytes);

  auto& ct = x.gauge("ebpfnet_conntrack_live_entries",
                     "Conntrack entries not yet expired, by state (one entry per direction of a flow).");
  for (size_t i = 0; i < s.conntrack.by_state.size(); ++i) {
    Labels l = node;
    l.emplace_back("state", kCtStates[i]);
    ct.add(l, s.conntrack.by_state[i]);
  }
  auto& nat = x.gauge("ebpfnet_nat_ports_in_use",
                      "Masquerade source ports held by live flows, by protocol; one per flow, as a port "
                      "serves several destinations at once.");
  for (size_t i = 0; i < s.conntrack.nat_ports.size(); ++i) {
    Labels l = node;
    l.emplace_back("proto", kProtos[i]);
    nat.add(l, s.conntrack.nat_ports[i]);
  }
}

void per_endpoint(Exposition& x, const NodeSnapshot& s, const Labels& node) {
  auto& pkts = x.counter("ebpfnet_endpoint_forwarded_packets_total",
                         "Packets forwarded for one endpoint (--per-endpoint): egress sent by it, ingress "
                         "delivered to it.");
  auto& bytes = x.counter("ebpfnet_endpoint_forwarded_bytes_total", "Bytes forwarded for one endpoint (--per-endpoint).");
  auto& drops = x.counter("ebpfnet_endpoint_dropped_packets_total",
                          "Packets dropped for one endpoint, by reason (--per-endpoint; reasons never seen "
                          "are left out).");
  for (const auto& e : s.per_endpoint) {
    if (!e.stats) continue;
    Labels ep = node;
    ep.emplace_back("endpoint", e.name);
    for (int d = 0; d < 2; ++d) {
      Labels l = ep;
      l.emplace_back("direction", kDirections[d]);
      const bool egress = d == EBPFNET_EGRESS;
      pkts.add(l, egress ? e.stats->tx_packets : e.stats->rx_packets);
      bytes.add(l, egress ? e.stats->tx_bytes : e.stats->rx_bytes);
    }
    for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r) {
      if (!e.stats->drops[r]) continue;
      Labels l = ep;
      l.emplace_back("reason", std::string(drop_reason_name(r)));
      drops.add(l, e.stats->drops[r]);
    }
  }
}

}  // namespace

Exposition render(const NodeSnapshot& s, const RenderOptions& opts) {
  Exposition x;
  const Labels node = {{"node", s.node}};
  identity(x, s, node);
  state(x, s, node);
  operations(x, s, node);
  maps(x, s, node);
  if (s.counters) {
    traffic(x, s, node);
    if (opts.per_endpoint) per_endpoint(x, s, node);
  }
  x.gauge("ebpfnet_metrics_collect_seconds", "How long reading the node's state and maps took for this scrape.")
      .add(node, s.collect_seconds);
  return x;
}

}  // namespace ebpfnet::metrics
