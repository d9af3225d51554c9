// Compiles one direction's rules into the policy_cidr and policy_port LPM
// tries, so the datapath decides with two longest-prefix lookups whatever the
// number of rules.
//
// Each distinct rule cidr C is a class. Cidrs nest or are disjoint, so an
// address whose longest containing rule cidr is C is in exactly the rule
// cidrs that contain C: those rules alone can match it. policy_cidr maps C to
// its class; the class's policy_port entries give, per protocol and port
// block, the rule that decides among them (evaluate_policy's order).
// Rules with peer any (0.0.0.0/0) stay in their own class, which the
// datapath asks when a longer class has no entry: they rank below every
// longer prefix anyway, and copying them into each class would multiply
// them by the number of classes. Where no rule matches there is no entry,
// and the datapath applies the default.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>
#include <set>
#include <unordered_map>

#include "ebpfnet/policy.hpp"

namespace ebpfnet {
namespace {

constexpr uint8_t kSlots[] = {IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, EBPFNET_POLICY_PROTO_OTHER};

Ipv4Cidr normalized(Ipv4Cidr c) { return {Ipv4(c.network.host() & c.mask()), c.prefix}; }

uint64_t cidr_id(Ipv4Cidr c) { return uint64_t(c.prefix) << 32 | c.network.host(); }

// The port range a rule matches; rules of other protocols ignore ports.
std::pair<uint32_t, uint32_t> port_range(const PolicyRule& r) {
  if (r.proto == PolicyProto::tcp || r.proto == PolicyProto::udp) return {r.port_min, r.port_max};
  return {0, 65535};
}

bool matches_proto(PolicyProto p, uint8_t ip_proto) {
  switch (p) {
    case PolicyProto::any: return true;
    case PolicyProto::tcp: return ip_proto == IPPROTO_TCP;
    case PolicyProto::udp: return ip_proto == IPPROTO_UDP;
    case PolicyProto::icmp: return ip_proto == IPPROTO_ICMP;
  }
  return false;
}

// Whether rule a decides over rule b when both match and a comes later.
bool overrides(const PolicyRule& a, const PolicyRule& b) {
  if (a.cidr.prefix != b.cidr.prefix) return a.cidr.prefix > b.cidr.prefix;
  return a.action == PolicyAction::deny && b.action == PolicyAction::allow;
}

struct Interval {
  uint32_t lo, hi;
  uint32_t rule;  // index into the direction's rules
};

// The pieces of 0..65535 that the given rules decide, with the deciding rule
// of each; adjacent pieces with the same rule are merged. rank orders rules
// by precedence (lower decides), order is its inverse.
std::vector<Interval> decide_ports(const DirectionPolicy& d, const std::vector<uint32_t>& rules,
                                   const std::vector<uint32_t>& rank,
                                   const std::vector<uint32_t>& order) {
  struct Event {
    uint32_t pos;
    bool add;
    uint32_t rank;
  };
  std::vector<Event> events;
  for (uint32_t i : rules) {
    auto [lo, hi] = port_range(d.rules[i]);
    events.push_back({lo, true, rank[i]});
    events.push_back({hi + 1, false, rank[i]});
  }
  std::sort(events.begin(), events.end(),
            [](const Event& a, const Event& b) { return a.pos < b.pos; });
  std::set<uint32_t> live;  // ranks of the rules covering the current port
  std::vector<Interval> out;
  for (size_t i = 0; i < events.size();) {
    uint32_t pos = events[i].pos;
    for (; i < events.size() && events[i].pos == pos; ++i) {
      if (events[i].add)
        live.insert(events[i].rank);
      else
        live.erase(events[i].rank);
    }
    // A live rule's removal is still ahead, so events[i] exists.
    if (live.empty()) continue;
    uint32_t hi = events[i].pos - 1, rule = order[*live.begin()];
    if (!out.empty() && out.back().rule == rule && out.back().hi + 1 == pos)
      out.back().hi = hi;
    else
      out.push_back({pos, hi, rule});
  }
  return out;
}

void add_port_entry(CompiledSet& out, uint32_t class_id, uint8_t slot, uint32_t port,
                    uint32_t port_bits, uint32_t rule, PolicyAction action) {
  ebpfnet_policy_port_key k;
  std::memset(&k, 0, sizeof k);
  k.prefixlen = 48 + port_bits;
  k.class_id = class_id;
  k.proto_port = htonl(uint32_t{slot} << 16 | port);
  ebpfnet_policy_verdict v;
  std::memset(&v, 0, sizeof v);
  v.rule = rule + 1;
  v.action = static_cast<uint8_t>(action);
  out.ports.push_back({k, v});
}

// Covers [lo, hi] with the fewest aligned power-of-two blocks.
void add_port_blocks(CompiledSet& out, uint32_t class_id, uint8_t slot, const Interval& iv,
                     PolicyAction action) {
  for (uint32_t lo = iv.lo; lo <= iv.hi;) {
    uint32_t size = lo == 0 ? 65536 : lo & (0u - lo);
    while (lo + size - 1 > iv.hi) size >>= 1;
    add_port_entry(out, class_id, slot, lo, 16 - std::countr_zero(size), iv.rule, action);
    lo += size;
  }
}

}  // namespace

PolicyDecision evaluate_policy(const DirectionPolicy& d, Ipv4 peer, uint8_t ip_proto,
                               uint16_t dport) {
  bool ports = ip_proto == IPPROTO_TCP || ip_proto == IPPROTO_UDP;
  const PolicyRule* best = nullptr;
  uint32_t best_index = 0;
  for (size_t i = 0; i < d.rules.size(); ++i) {
    const PolicyRule& r = d.rules[i];
    auto [lo, hi] = port_range(r);
    if (!normalized(r.cidr).contains(peer) || !matches_proto(r.proto, ip_proto) ||
        (ports && (dport < lo || dport > hi)))
      continue;
    if (!best || overrides(r, *best)) {
      best = &r;
      best_index = static_cast<uint32_t>(i + 1);
    }
  }
  if (!best) return {d.default_action, 0};
  return {best->action, best_index};
}

CompiledSet compile_policy(const DirectionPolicy& d, uint32_t set_id, uint32_t first_class) {
  size_t n = d.rules.size();
  // Rule indexes by normalized cidr; classes in order of first appearance.
  std::unordered_map<uint64_t, std::vector<uint32_t>> by_cidr;
  std::vector<Ipv4Cidr> classes;
  for (uint32_t i = 0; i < n; ++i) {
    Ipv4Cidr c = normalized(d.rules[i].cidr);
    auto [it, fresh] = by_cidr.try_emplace(cidr_id(c));
    if (fresh) classes.push_back(c);
    it->second.push_back(i);
  }

  std::vector<uint32_t> order(n), rank(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return overrides(d.rules[a], d.rules[b]); });
  for (uint32_t k = 0; k < n; ++k) rank[order[k]] = k;

  CompiledSet out;
  out.classes = static_cast<uint32_t>(classes.size());
  std::vector<uint32_t> rules, slot_rules;
  for (uint32_t c = 0; c < classes.size(); ++c) {
    const Ipv4Cidr& cidr = classes[c];
    uint32_t class_id = first_class + c;
    ebpfnet_policy_cidr_key k;
    std::memset(&k, 0, sizeof k);
    k.prefixlen = 32 + cidr.prefix;
    k.set_id = set_id;
    k.addr = cidr.network.be();
    out.cidrs.push_back({k, class_id});

    rules.clear();
    for (int p = cidr.prefix; p >= (cidr.prefix == 0 ? 0 : 1); --p)
      if (auto it = by_cidr.find(cidr_id(normalized({cidr.network, p}))); it != by_cidr.end())
        rules.insert(rules.end(), it->second.begin(), it->second.end());

    for (uint8_t slot : kSlots) {
      slot_rules.clear();
      for (uint32_t i : rules)
        if (matches_proto(d.rules[i].proto, slot)) slot_rules.push_back(i);
      if (slot_rules.empty()) continue;
      if (slot != IPPROTO_TCP && slot != IPPROTO_UDP) {
        uint32_t best =
            *std::min_element(slot_rules.begin(), slot_rules.end(),
                              [&](uint32_t a, uint32_t b) { return rank[a] < rank[b]; });
        add_port_entry(out, class_id, slot, 0, 0, best, d.rules[best].action);
        continue;
      }
      for (const Interval& iv : decide_ports(d, slot_rules, rank, order))
        add_port_blocks(out, class_id, slot, iv, d.rules[iv.rule].action);
    }
  }
  return out;
}

}  // namespace ebpfnet
