#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <iterator>
#include <random>
#include <set>

#include "ebpfnet/policy.hpp"

namespace ebpfnet {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

std::optional<Ipv4> fake_endpoints(std::string_view name) {
  if (name == "web") return ip("10.1.2.3");
  return std::nullopt;
}

// The bytes after prefixlen, as the kernel's LPM trie compares them.
template <class Key>
const uint8_t* key_data(const Key& k) {
  return reinterpret_cast<const uint8_t*>(&k) + sizeof k.prefixlen;
}

bool same_prefix(const uint8_t* a, const uint8_t* b, uint32_t bits) {
  for (uint32_t i = 0; i < bits; ++i) {
    uint8_t mask = 0x80 >> (i % 8);
    if ((a[i / 8] & mask) != (b[i / 8] & mask)) return false;
  }
  return true;
}

// The entry an LPM trie lookup of `query` finds among `entries`, or null.
template <class Key, class Value>
const std::pair<Key, Value>* longest_match(const std::vector<std::pair<Key, Value>>& entries,
                                           const Key& query) {
  const std::pair<Key, Value>* best = nullptr;
  for (const auto& e : entries)
    if (e.first.prefixlen <= query.prefixlen &&
        same_prefix(key_data(e.first), key_data(query), e.first.prefixlen) &&
        (!best || e.first.prefixlen > best->first.prefixlen))
      best = &e;
  return best;
}

// What the datapath decides with the compiled tries: class of the peer, then
// the verdict for protocol slot and port, then that of the peer-any class
// (a cidr lookup bounded to the set id), else the default.
PolicyDecision lookup(const CompiledSet& cs, PolicyAction default_action, uint32_t set_id,
                      Ipv4 peer, uint8_t proto, uint16_t port) {
  ebpfnet_policy_cidr_key ck;
  std::memset(&ck, 0, sizeof ck);
  ck.prefixlen = 64;
  ck.set_id = set_id;
  ck.addr = peer.be();
  auto c = longest_match(cs.cidrs, ck);
  if (!c) return {default_action, 0};
  bool ports = proto == IPPROTO_TCP || proto == IPPROTO_UDP;
  uint32_t slot = ports || proto == IPPROTO_ICMP ? proto : EBPFNET_POLICY_PROTO_OTHER;
  ebpfnet_policy_port_key pk;
  std::memset(&pk, 0, sizeof pk);
  pk.prefixlen = 64;
  pk.class_id = c->second;
  pk.proto_port = htonl(slot << 16 | (ports ? port : 0));
  auto v = longest_match(cs.ports, pk);
  if (!v && c->first.prefixlen > 32) {
    ck.prefixlen = 32;
    if (auto any = longest_match(cs.cidrs, ck)) {
      pk.class_id = any->second;
      v = longest_match(cs.ports, pk);
    }
  }
  if (!v) return {default_action, 0};
  return {static_cast<PolicyAction>(v->second.action), v->second.rule};
}

// What an LPM trie requires and the datapath relies on: distinct keys, the
// id fields matched in full, nothing set beyond the prefix.
template <class Key, class Value>
void expect_well_formed(const std::vector<std::pair<Key, Value>>& entries, uint32_t min_prefixlen) {
  std::set<std::vector<uint8_t>> keys;
  for (const auto& [k, v] : entries) {
    EXPECT_GE(k.prefixlen, min_prefixlen);
    EXPECT_LE(k.prefixlen, 64u);
    const uint8_t* d = key_data(k);
    for (uint32_t bit = k.prefixlen; bit < 64; ++bit)
      EXPECT_EQ(d[bit / 8] & (0x80 >> (bit % 8)), 0)
          << "bit " << bit << " of prefixlen " << k.prefixlen;
    std::vector<uint8_t> bytes(reinterpret_cast<const uint8_t*>(&k),
                               reinterpret_cast<const uint8_t*>(&k) + sizeof k);
    EXPECT_TRUE(keys.insert(bytes).second) << "duplicate key";
  }
}

void expect_well_formed(const CompiledSet& cs, uint32_t set_id, uint32_t first_class) {
  expect_well_formed(cs.cidrs, 32);
  expect_well_formed(cs.ports, 48);
  EXPECT_EQ(cs.cidrs.size(), cs.classes);
  for (const auto& [k, cls] : cs.cidrs) {
    EXPECT_EQ(k.set_id, set_id);
    EXPECT_GE(cls, first_class);
    EXPECT_LT(cls, first_class + cs.classes);
  }
  for (const auto& [k, v] : cs.ports) {
    EXPECT_GE(k.class_id, first_class);
    EXPECT_LT(k.class_id, first_class + cs.classes);
    uint8_t slot = (ntohl(k.proto_port) >> 16) & 0xff;
    EXPECT_TRUE(slot == IPPROTO_ICMP || slot == IPPROTO_TCP || slot == IPPROTO_UDP ||
                slot == EBPFNET_POLICY_PROTO_OTHER);
    if (slot != IPPROTO_TCP && slot != IPPROTO_UDP) {
      EXPECT_EQ(k.prefixlen, 48u);
    }
    EXPECT_GE(v.rule, 1u);
  }
}

DirectionPolicy direction(const std::vector<std::string>& rules, PolicyAction def) {
  DirectionPolicy d;
  d.default_action = def;
  for (const auto& r : rules)
    d.rules.push_back(parse_policy_rule(r, PolicyDir::ingress, fake_endpoints));
  return d;
}

constexpr auto allow = PolicyAction::allow;
constexpr auto deny = PolicyAction::deny;
constexpr uint8_t tcp = IPPROTO_TCP, udp = IPPROTO_UDP, icmp = IPPROTO_ICMP, gre = 47;

struct Row {
  const char* name;
  std::vector<std::string> rules;
  PolicyAction default_action;
  const char* peer;
  uint8_t proto;
  uint16_t port;
  PolicyAction want;
  uint32_t want_rule;
};

TEST(PolicyCompile, DecidesAsTheSemanticsSay) {
  const std::vector<std::string> range = {"allow tcp 1000-1999"};
  const std::vector<std::string> nested = {"deny from 10.0.0.0/8", "allow tcp 80 from 10.1.2.3"};
  const std::vector<std::string> nested_rev = {"allow from 10.0.0.0/8", "deny from web"};
  const std::vector<std::string> equal = {"allow tcp 80 from 10.0.0.0/8",
                                          "deny tcp 70-90 from 10.0.0.0/8",
                                          "allow tcp 60-100 from 10.0.0.0/8"};
  const std::vector<std::string> three = {"allow from 10.0.0.0/8", "deny tcp 80 from 10.1.0.0/16",
                                          "allow udp from 10.1.2.0/24"};
  const std::vector<std::string> any_peer = {"deny", "allow tcp 22 from 192.0.2.0/24"};
  const Row rows[] = {
      {"no rules, default allow", {}, allow, "10.0.0.1", tcp, 80, allow, 0},
      {"no rules, default deny", {}, deny, "10.0.0.1", udp, 80, deny, 0},
      {"range lo-1", range, deny, "10.0.0.1", tcp, 999, deny, 0},
      {"range lo", range, deny, "10.0.0.1", tcp, 1000, allow, 1},
      {"range inside", range, deny, "10.0.0.1", tcp, 1536, allow, 1},
      {"range hi", range, deny, "10.0.0.1", tcp, 1999, allow, 1},
      {"range hi+1", range, deny, "10.0.0.1", tcp, 2000, deny, 0},
      {"range port 0", range, deny, "10.0.0.1", tcp, 0, deny, 0},
      {"range port 65535", range, deny, "10.0.0.1", tcp, 65535, deny, 0},
      {"range other protocol", range, deny, "10.0.0.1", udp, 1000, deny, 0},
      {"all but port 0, at 0", {"deny tcp 1-65535"}, allow, "10.0.0.1", tcp, 0, allow, 0},
      {"all but port 0, at 1", {"deny tcp 1-65535"}, allow, "10.0.0.1", tcp, 1, deny, 1},
      {"all but port 0, at 65535", {"deny tcp 1-65535"}, allow, "10.0.0.1", tcp, 65535, deny, 1},
      {"top port", {"deny udp 65535"}, allow, "10.0.0.1", udp, 65535, deny, 1},
      {"below top port", {"deny udp 65535"}, allow, "10.0.0.1", udp, 65534, allow, 0},
      {"/32 allow in /8 deny", nested, allow, "10.1.2.3", tcp, 80, allow, 2},
      {"/32's rule misses the port: the /8 decides", nested, allow, "10.1.2.3", tcp, 81, deny, 1},
      {"/32's rule misses the protocol: the /8 decides", nested, allow, "10.1.2.3", udp, 80, deny,
       1},
      {"next address: the /8", nested, allow, "10.1.2.4", tcp, 80, deny, 1},
      {"outside the /8: default", nested, allow, "11.0.0.1", tcp, 80, allow, 0},
      {"/32 deny in /8 allow", nested_rev, deny, "10.1.2.3", tcp, 80, deny, 2},
      {"/8 allow around it", nested_rev, deny, "10.255.255.255", icmp, 0, allow, 1},
      {"outside both: default deny", nested_rev, deny, "9.255.255.255", icmp, 0, deny, 0},
      {"equal prefix: deny beats allow", equal, allow, "10.0.0.1", tcp, 80, deny, 2},
      {"equal prefix: deny edge", equal, allow, "10.0.0.1", tcp, 70, deny, 2},
      {"equal prefix: allow outside the deny", equal, deny, "10.0.0.1", tcp, 69, allow, 3},
      {"equal prefix: allow above the deny", equal, deny, "10.0.0.1", tcp, 91, allow, 3},
      {"equal prefix and action: earliest",
       {"allow tcp 80", "allow tcp 70-90"},
       deny,
       "1.2.3.4",
       tcp,
       80,
       allow,
       1},
      {"equal prefix and action: the other",
       {"allow tcp 80", "allow tcp 70-90"},
       deny,
       "1.2.3.4",
       tcp,
       85,
       allow,
       2},
      {"any rule of longer prefix beats tcp rule",
       {"allow tcp 80", "deny from 10.0.0.0/8"},
       allow,
       "10.0.0.1",
       tcp,
       80,
       deny,
       2},
      {"three levels: /16 decides tcp 80", three, deny, "10.1.2.9", tcp, 80, deny, 2},
      {"three levels: /24 decides udp", three, deny, "10.1.2.9", udp, 80, allow, 3},
      {"three levels: /8 decides tcp 81", three, deny, "10.1.2.9", tcp, 81, allow, 1},
      {"three levels: outside the /24", three, deny, "10.1.3.9", udp, 80, allow, 1},
      {"three levels: outside the /16", three, deny, "10.2.0.1", tcp, 80, allow, 1},
      {"icmp rule", {"allow icmp from 10.0.0.0/8"}, deny, "10.0.0.1", icmp, 0, allow, 1},
      {"icmp rule, tcp packet", {"allow icmp from 10.0.0.0/8"}, deny, "10.0.0.1", tcp, 0, deny, 0},
      {"icmp rule, other peer", {"allow icmp from 10.0.0.0/8"}, deny, "11.0.0.1", icmp, 0, deny, 0},
      {"gre matches no tcp/udp/icmp rule",
       {"allow tcp", "allow udp", "allow icmp"},
       deny,
       "10.0.0.1",
       gre,
       0,
       deny,
       0},
      {"gre matches any",
       {"allow tcp", "allow from 10.0.0.0/8"},
       deny,
       "10.0.0.1",
       gre,
       0,
       allow,
       2},
      {"peer any: the /24 port rule", any_peer, allow, "192.0.2.9", tcp, 22, allow, 2},
      {"peer any: the /24 misses, any decides", any_peer, allow, "192.0.2.9", tcp, 23, deny, 1},
      {"peer any: elsewhere", any_peer, allow, "198.51.100.1", tcp, 22, deny, 1},
      {"peer any: other protocol", any_peer, allow, "198.51.100.1", gre, 0, deny, 1},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    DirectionPolicy d = direction(row.rules, row.default_action);
    CompiledSet cs = compile_policy(d, 7, 100);
    expect_well_formed(cs, 7, 100);
    PolicyDecision evaluated = evaluate_policy(d, ip(row.peer), row.proto, row.port);
    PolicyDecision looked_up = lookup(cs, row.default_action, 7, ip(row.peer), row.proto, row.port);
    EXPECT_EQ(evaluated.action, row.want);
    EXPECT_EQ(evaluated.rule, row.want_rule);
    EXPECT_EQ(looked_up.action, row.want);
    EXPECT_EQ(looked_up.rule, row.want_rule);
    EXPECT_EQ(looked_up.action, evaluated.action);
    EXPECT_EQ(looked_up.rule, evaluated.rule);
  }
}

TEST(PolicyCompile, SetsAndClassesStayApart) {
  DirectionPolicy a = direction({"deny tcp 80 from 10.0.0.0/8"}, allow);
  DirectionPolicy b = direction({"allow udp 53 from 10.0.0.0/8", "allow from web"}, deny);
  CompiledSet ca = compile_policy(a, 1, 10), cb = compile_policy(b, 2, 11);
  EXPECT_EQ(ca.classes, 1u);
  EXPECT_EQ(cb.classes, 2u);
  // One pair of maps holds both sets, as in the datapath.
  CompiledSet both = ca;
  both.cidrs.insert(both.cidrs.end(), cb.cidrs.begin(), cb.cidrs.end());
  both.ports.insert(both.ports.end(), cb.ports.begin(), cb.ports.end());
  both.classes += cb.classes;
  expect_well_formed(both.ports, 48);
  expect_well_formed(both.cidrs, 32);
  EXPECT_EQ(lookup(both, allow, 1, ip("10.1.2.3"), tcp, 80).action, deny);
  EXPECT_EQ(lookup(both, allow, 1, ip("10.1.2.3"), udp, 53).action, allow);
  EXPECT_EQ(lookup(both, allow, 1, ip("10.1.2.3"), udp, 53).rule, 0u);
  EXPECT_EQ(lookup(both, deny, 2, ip("10.1.2.3"), tcp, 80).rule, 2u);
  EXPECT_EQ(lookup(both, deny, 2, ip("10.1.2.4"), udp, 53).rule, 1u);
  EXPECT_EQ(lookup(both, deny, 2, ip("10.1.2.4"), tcp, 80).rule, 0u);
  EXPECT_EQ(lookup(both, deny, 3, ip("10.1.2.3"), tcp, 80).rule, 0u);
}

TEST(PolicyCompile, HostBitsInARuleCidrAreIgnored) {
  DirectionPolicy d;
  PolicyRule r;
  r.action = deny;
  r.cidr = Ipv4Cidr{ip("10.1.2.3"), 8};
  d.rules = {r};
  CompiledSet cs = compile_policy(d, 1, 1);
  expect_well_formed(cs, 1, 1);
  ASSERT_EQ(cs.cidrs.size(), 1u);
  EXPECT_EQ(cs.cidrs[0].first.addr, ip("10.0.0.0").be());
  EXPECT_EQ(evaluate_policy(d, ip("10.9.9.9"), tcp, 1).rule, 1u);
  EXPECT_EQ(lookup(cs, allow, 1, ip("10.9.9.9"), tcp, 1).rule, 1u);
}

struct Count {
  const char* name;
  std::vector<std::string> rules;
  size_t cidrs, ports;
};

TEST(PolicyCompile, EntryCountsStaySmall) {
  const Count cases[] = {
      {"one port, one address", {"allow tcp 80 from 10.1.2.3"}, 1, 1},
      // 1000-1007, 1008-1023, 1024-1535, 1536-1791, 1792-1919, 1920-1983, 1984-1999
      {"1000-1999", {"allow tcp 1000-1999 from 10.1.2.3"}, 1, 7},
      {"every port of tcp", {"allow tcp"}, 1, 1},
      {"everything: one entry per slot", {"allow"}, 1, 4},
      {"icmp", {"deny icmp from 10.0.0.0/8"}, 1, 1},
      // The allow inside the deny's range loses, so 1024-2047 stays one block.
      {"merged around a losing rule", {"deny tcp 1024-2047", "allow tcp 1500"}, 1, 1},
      {"two cidrs, one shared",
       {"allow udp 53 from 10.1.2.3", "allow udp 53 from 10.1.2.3", "deny udp 53 from 10.0.0.0/8"},
       2,
       2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    CompiledSet cs = compile_policy(direction(c.rules, deny), 1, 1);
    expect_well_formed(cs, 1, 1);
    EXPECT_EQ(cs.cidrs.size(), c.cidrs);
    EXPECT_EQ(cs.ports.size(), c.ports);
  }
  CompiledSet one = compile_policy(direction({"allow tcp 80 from 10.1.2.3"}, deny), 5, 9);
  ASSERT_EQ(one.cidrs.size(), 1u);
  ASSERT_EQ(one.ports.size(), 1u);
  EXPECT_EQ(one.cidrs[0].first.prefixlen, 64u);
  EXPECT_EQ(one.cidrs[0].first.addr, ip("10.1.2.3").be());
  EXPECT_EQ(one.cidrs[0].second, 9u);
  EXPECT_EQ(one.ports[0].first.prefixlen, 64u);
  EXPECT_EQ(one.ports[0].first.class_id, 9u);
  EXPECT_EQ(one.ports[0].first.proto_port, htonl(IPPROTO_TCP << 16 | 80));
  EXPECT_EQ(one.ports[0].second.rule, 1u);
  EXPECT_EQ(one.ports[0].second.action, EBPFNET_POLICY_ALLOW);
}

uint32_t pick(std::mt19937& rng, uint32_t n) { return rng() % n; }

TEST(PolicyCompile, LookupAgreesWithEvaluationOnRandomPolicies) {
  std::mt19937 rng(20240611);
  const int prefixes[] = {0, 8, 16, 20, 24, 28, 30, 31, 32};
  const PolicyProto protos[] = {PolicyProto::any, PolicyProto::tcp, PolicyProto::udp,
                                PolicyProto::icmp};
  const uint8_t packet_protos[] = {tcp, udp, icmp, gre};
  size_t packets = 0, entries = 0;
  for (int policy = 0; policy < 300; ++policy) {
    DirectionPolicy d;
    d.default_action = pick(rng, 2) ? allow : deny;
    uint32_t n = 1 + pick(rng, 12);
    for (uint32_t i = 0; i < n; ++i) {
      PolicyRule r;
      r.action = pick(rng, 2) ? allow : deny;
      r.proto = protos[pick(rng, 4)];
      if ((r.proto == PolicyProto::tcp || r.proto == PolicyProto::udp) && pick(rng, 4)) {
        // Small ports overlap often; now and then the top of the range.
        uint32_t a = pick(rng, 3) ? pick(rng, 64) : 65535 - pick(rng, 64);
        uint32_t b = pick(rng, 2) ? a : a + pick(rng, 40);
        r.port_min = static_cast<uint16_t>(std::max(a, 1u));
        r.port_max = static_cast<uint16_t>(std::min(b, 65535u));
      }
      int prefix = prefixes[pick(rng, std::size(prefixes))];
      Ipv4 addr(0x0a000000u | pick(rng, 4) << 8 | pick(rng, 8));  // within 10.0.0.0/22
      if (prefix < 16 && pick(rng, 2)) prefix = 16;
      r.cidr = Ipv4Cidr{Ipv4(addr.host() & Ipv4Cidr{addr, prefix}.mask()), prefix};
      r.peer = r.cidr.str();
      d.rules.push_back(r);
    }
    uint32_t set_id = 1 + pick(rng, 1000);
    CompiledSet cs = compile_policy(d, set_id, 1 + pick(rng, 1000));
    entries += cs.ports.size();
    for (int k = 0; k < 50; ++k) {
      const PolicyRule& r = d.rules[pick(rng, n)];
      Ipv4 peer;
      switch (pick(rng, 4)) {
        case 0: peer = r.cidr.network; break;
        case 1: peer = Ipv4(r.cidr.network.host() | ~r.cidr.mask()); break;  // the last address
        case 2: peer = Ipv4(0x0a000000u | pick(rng, 1024)); break;
        default: peer = Ipv4(rng()); break;
      }
      uint8_t proto = packet_protos[pick(rng, 4)];
      uint16_t port;
      switch (pick(rng, 5)) {
        case 0: port = r.port_min - 1; break;
        case 1: port = r.port_min; break;
        case 2: port = r.port_max; break;
        case 3: port = r.port_max + 1; break;
        default: port = pick(rng, 3) ? pick(rng, 128) : rng(); break;
      }
      if (proto != tcp && proto != udp) port = 0;
      PolicyDecision want = evaluate_policy(d, peer, proto, port);
      PolicyDecision got = lookup(cs, d.default_action, set_id, peer, proto, port);
      ++packets;
      if (got.action != want.action || got.rule != want.rule) {
        std::string rules;
        for (const auto& x : d.rules) rules += "\n  " + format_rule(x, PolicyDir::ingress);
        FAIL() << "policy " << policy << " (default " << to_string(d.default_action)
               << "):" << rules << "\npacket " << peer.str() << " proto " << int(proto) << " port "
               << port << ": evaluated rule " << want.rule << ", looked up rule " << got.rule;
      }
    }
  }
  std::cout << packets << " packets over 300 random policies (" << entries
            << " port entries) agree\n";
}

TEST(PolicyCompile, TenThousandRulesCompileFast) {
  DirectionPolicy d;
  d.default_action = deny;
  for (uint32_t i = 0; i < 10000; ++i) {
    PolicyRule r;
    r.proto = PolicyProto::tcp;
    r.port_min = r.port_max = 443;
    r.cidr = Ipv4Cidr{Ipv4(0x0a000000u + i * 7), 32};
    r.peer = r.cidr.network.str();
    d.rules.push_back(r);
  }
  for (const char* extra : {"allow udp 53", "deny tcp 1000-1999 from 10.0.0.0/8",
                            "allow icmp from 10.0.0.0/8", "allow tcp 8080 from 0.0.0.0/0"})
    d.rules.push_back(parse_policy_rule(extra, PolicyDir::ingress, fake_endpoints));

  auto start = std::chrono::steady_clock::now();
  CompiledSet cs = compile_policy(d, 1, 1);
  auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "compiled " << d.rules.size() << " rules in " << ms << " ms: " << cs.classes
            << " classes, " << cs.cidrs.size() << " cidr entries, " << cs.ports.size()
            << " port entries\n";
  EXPECT_EQ(cs.classes, 10002u);
  // Each /32 class: its own port and the 10.0.0.0/8 rules (7 blocks of tcp
  // 1000-1999, icmp); the peer-any rules only once, in their own class.
  EXPECT_EQ(cs.ports.size(), 10000u * 9 + 8 + 2);
  for (const char* peer : {"10.0.0.7", "10.0.0.8", "10.0.1.0", "192.0.2.1"})
    for (uint8_t proto : {tcp, udp, icmp, gre})
      for (uint16_t port : {443, 53, 1000, 8080, 0}) {
        SCOPED_TRACE(std::string(peer) + " " + std::to_string(proto) + " " + std::to_string(port));
        PolicyDecision want = evaluate_policy(d, ip(peer), proto, port);
        PolicyDecision got = lookup(cs, deny, 1, ip(peer), proto, port);
        EXPECT_EQ(got.rule, want.rule);
        EXPECT_EQ(got.action, want.action);
      }
}

}  // namespace
}  // namespace ebpfnet
