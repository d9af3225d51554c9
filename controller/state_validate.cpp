// A node's state as read from its file is checked like user input: the file
// may have been edited, and ebpfnet must not act on a bad name, path or
// address it holds (an interface name that is a path, an address outside
// the pool, a second endpoint on one interface).
#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>
#include <utility>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/state.hpp"
#include "service_json.hpp"

namespace ebpfnet {
namespace {

[[noreturn]] void refuse(const std::string& field, const std::string& problem) {
  throw Error(Errc::failed, field + ": " + problem);
}

// Runs a check written for user input (validate_name, validate_ifname) on a
// field of the state.
template <typename Check>
void check(const std::string& field, Check c) {
  try {
    c();
  } catch (const Error& e) {
    refuse(field, e.what());
  }
}

std::string item(const char* list, size_t i) { return std::string(list) + "[" + std::to_string(i) + "]."; }

// The fields of a list that must differ between its items: a repeat is
// refused naming the item that had the value first.
template <typename Key>
class Distinct {
 public:
  void add(const Key& key, const std::string& field, const std::string& shown) {
    auto [first, fresh] = seen_.emplace(key, field);
    if (!fresh) refuse(field, shown + " is also " + first->second);
  }

 private:
  std::map<Key, std::string> seen_;
};

// Why c is not a prefix as Ipv4Cidr::parse makes them, or "".
std::string cidr_problem(const Ipv4Cidr& c) {
  if (c.prefix < 0 || c.prefix > 32) return "/" + std::to_string(c.prefix) + " is not a prefix length";
  if ((c.network.host() & ~c.mask()) != 0) return c.str() + " has host bits set";
  return "";
}

bool plain_absolute(const std::string& path) {
  std::filesystem::path p(path);
  return p.is_absolute() && std::none_of(p.begin(), p.end(), [](const auto& part) { return part == ".."; });
}

// What names a namespace, a path or an interface: a journal's planned
// endpoints have these before anything else.
void validate_endpoint_names(const EndpointRecord& e, const std::string& at) {
  check(at + "name", [&] { validate_name("endpoint", e.name); });
  if (e.netns_owned)
    check(at + "netns", [&] { validate_name("netns", e.netns); });
  else if (e.netns.empty())
    refuse(at + "netns", "is empty");
  if (!plain_absolute(e.netns_path))
    refuse(at + "netns_path", "'" + printable(e.netns_path) + "' is not an absolute path without '..'");
  check(at + "ifname", [&] { validate_ifname(e.ifname); });
  check(at + "host_ifname", [&] { validate_ifname(e.host_ifname); });
}

// What a row of the endpoint table must be on its own.
void validate_one_endpoint(const EndpointRecord& e, const Ipv4Cidr& pool, const std::optional<Ipv6Cidr>& pool6,
                           const std::string& at) {
  validate_endpoint_names(e, at);
  // What Ipam hands out: inside the pool, above the gateway, below broadcast.
  if (!pool.contains(e.ip) || e.ip <= pool.first_host() || e.ip > pool.last_host())
    refuse(at + "ip", e.ip.str() + " is not an endpoint address of the pool " + pool.str() +
                          " (outside it, or its network, gateway or broadcast address)");
  if (e.ip6) {
    if (!pool6) refuse(at + "ip6", e.ip6->str() + " on a node without an IPv6 pool");
    auto off = pool6->offset_of(*e.ip6);
    if (!off || *off < 2)
      refuse(at + "ip6", e.ip6->str() + " is not an endpoint address of the pool " + pool6->str() +
                             " (outside it, or its subnet-router or gateway address)");
  }
  if (e.host_ifindex < 1)
    refuse(at + "host_ifindex", std::to_string(e.host_ifindex) + " is not an interface index");
}

// The endpoints a state file of schema 7 or older held, before they move to
// the endpoint table: each checked as a row is, and across them what the
// table's constraints keep unique.
void validate_legacy_endpoints(const NodeState& s) {
  if (!s.legacy_endpoints) return;
  Distinct<std::string> names, host_ifnames;
  Distinct<Ipv4> ips;
  Distinct<Ipv6> ip6s;
  Distinct<int> ifindexes;
  for (size_t i = 0; i < s.legacy_endpoints->size(); ++i) {
    const EndpointRecord& e = (*s.legacy_endpoints)[i];
    const std::string at = item("endpoints", i);
    validate_one_endpoint(e, s.cidr, s.cidr6, at);
    names.add(e.name, at + "name", "'" + e.name + "'");
    ips.add(e.ip, at + "ip", e.ip.str());
    if (e.ip6) ip6s.add(*e.ip6, at + "ip6", e.ip6->str());
    host_ifnames.add(e.host_ifname, at + "host_ifname", "'" + e.host_ifname + "'");
    ifindexes.add(e.host_ifindex, at + "host_ifindex", std::to_string(e.host_ifindex));
  }
}

// Whether a legacy state's endpoints name it; a state of schema 8 names its
// endpoints in the table, which the loading transaction asks.
bool legacy_endpoint_missing(const NodeState& s, const std::string& name) {
  return s.legacy_endpoints && std::none_of(s.legacy_endpoints->begin(), s.legacy_endpoints->end(),
                                            [&](const EndpointRecord& e) { return e.name == name; });
}

void validate_published(const NodeState& s) {
  Distinct<std::pair<std::string, uint16_t>> ports;
  for (size_t i = 0; i < s.published.size(); ++i) {
    const PublishRecord& p = s.published[i];
    const std::string at = item("published", i);
    if (p.proto != "tcp" && p.proto != "udp")
      refuse(at + "proto", "'" + printable(p.proto) + "' is not tcp or udp");
    if (p.port == 0) refuse(at + "port", "0 is not a port");
    if (p.target_port == 0) refuse(at + "target_port", "0 is not a port");
    if (legacy_endpoint_missing(s, p.endpoint))
      refuse(at + "endpoint", "'" + printable(p.endpoint) + "' is not an endpoint of this node");
    ports.add({p.proto, p.port}, at + "port", p.proto + " port " + std::to_string(p.port));
  }
}

void validate_routes(const NodeState& s) {
  Distinct<std::string> dsts;
  for (size_t i = 0; i < s.routes.size(); ++i) {
    const RouteRecord& r = s.routes[i];
    const std::string at = item("routes", i);
    if (auto problem = cidr_problem(r.dst); !problem.empty()) refuse(at + "dst", problem);
    if (r.dst.contains(s.cidr.network) || s.cidr.contains(r.dst.network))
      refuse(at + "dst", r.dst.str() + " overlaps the node's pool " + s.cidr.str());
    dsts.add(r.dst.str(), at + "dst", r.dst.str());
  }
}

}  // namespace

std::string tunnel_peer_problem(const NodeState& s, const Ipv4Cidr& pool, Ipv4 via, size_t skip) {
  auto overlaps = [](const Ipv4Cidr& a, const Ipv4Cidr& b) { return a.contains(b.network) || b.contains(a.network); };
  if (overlaps(pool, s.cidr)) return pool.str() + " overlaps the node's pool " + s.cidr.str();
  for (const auto& r : s.routes)
    if (overlaps(pool, r.dst)) return pool.str() + " overlaps the route to " + r.dst.str();
  if (s.overlay)
    for (size_t i = 0; i < s.overlay->peers.size(); ++i)
      if (i != skip && overlaps(pool, s.overlay->peers[i].pool))
        return pool.str() + " overlaps the pool " + s.overlay->peers[i].pool.str() + " of peer " +
               s.overlay->peers[i].via.str();
  const uint32_t h = via.host();
  if (h == 0 || h == 0xffffffffu || (h >> 24) == 127 || (h >> 28) == 0xe || (h >> 28) == 0xf)
    return via.str() + " is not a unicast address of a node";
  if (s.cidr.contains(via) || pool.contains(via))
    return "the peer's underlay address " + via.str() + " is inside a pool";
  return "";
}

namespace {

// The overlay's device has a name, a VNI of 24 bits and a port; each
// peer's pool is a prefix that overlaps neither the node's pool, a route,
// nor another peer's, and its node is a unicast address.
void validate_overlay(const NodeState& s) {
  if (!s.overlay) return;
  const OverlayRecord& o = *s.overlay;
  check("overlay.ifname", [&] { validate_ifname(o.ifname); });
  if (o.vni == 0 || o.vni >= (1u << 24)) refuse("overlay.vni", std::to_string(o.vni) + " is not a VNI (1..16777215)");
  if (o.port == 0) refuse("overlay.port", "0 is not a port");
  if (o.mtu < 576 || o.mtu > 65485) refuse("overlay.mtu", std::to_string(o.mtu) + " is not an MTU (576..65485)");
  for (size_t i = 0; i < o.peers.size(); ++i) {
    const TunnelPeerRecord& p = o.peers[i];
    const std::string at = item("overlay.peers", i);
    if (auto problem = cidr_problem(p.pool); !problem.empty()) refuse(at + "pool", problem);
    if (auto problem = tunnel_peer_problem(s, p.pool, p.via, i); !problem.empty()) refuse(at + "pool", problem);
  }
}

// No entry holds another: the datapath's counters name the entry that matched.
void validate_prefilter(const NodeState& s) {
  for (size_t i = 0; i < s.prefilter.size(); ++i) {
    const Ipv4Cidr& c = s.prefilter[i];
    const std::string at = "prefilter[" + std::to_string(i) + "]";
    if (auto problem = cidr_problem(c); !problem.empty()) refuse(at, problem);
    for (size_t k = 0; k < i; ++k) {
      const Ipv4Cidr& o = s.prefilter[k];
      if (o.contains(c.network) || c.contains(o.network))
        refuse(at, c.str() + " overlaps prefilter[" + std::to_string(k) + "] " + o.str());
    }
  }
  if (!s.prefilter.empty() && !s.uplink) refuse("prefilter", "the node has no uplink to filter");
}

// The services a state file of schema 6 or older held, before they move to
// the services table: each checked as a row of the table is, and across
// them what the table's constraints and the node keep: what the datapath
// keys them by is unique (a vip:port, a node port, which no published port
// may also hold), ids are unique and below their counters, virtual IPs are
// outside the pool, backends are endpoints.
void validate_legacy_services(const NodeState& s) {
  if (!s.legacy_services) return;
  const auto& services = s.legacy_services->services;
  const ServiceIdCounters& counters = s.legacy_services->counters;
  Distinct<std::string> names;
  Distinct<uint32_t> ids, backend_ids;
  Distinct<std::tuple<std::string, uint32_t, uint16_t>> keys;  // proto, vip (0: node port), port
  for (const auto& p : s.published) keys.add({p.proto, 0, p.port}, "published", p.proto + " port " + std::to_string(p.port));
  auto handed_out = [](const std::string& field, uint32_t id, uint32_t next) {
    if (id >= next) refuse(field, std::to_string(id) + " was not handed out (next is " + std::to_string(next) + ")");
  };
  for (size_t i = 0; i < services.size(); ++i) {
    const ServiceRecord& v = services[i];
    const std::string at = item("services", i);
    validate_service(v, at);
    names.add(v.name, at + "name", "'" + v.name + "'");
    handed_out(at + "id", v.id, counters.next_service);
    ids.add(v.id, at + "id", std::to_string(v.id));
    if (v.vip) {
      if (s.cidr.contains(*v.vip)) refuse(at + "vip", v.vip->str() + " is inside the node's pool " + s.cidr.str());
      keys.add({v.proto, v.vip->host(), v.port}, at + "vip",
               v.vip->str() + ":" + std::to_string(v.port) + "/" + v.proto);
    }
    if (v.node_port != 0)
      keys.add({v.proto, 0, v.node_port}, at + "node_port", v.proto + " port " + std::to_string(v.node_port));
    for (size_t k = 0; k < v.backends.size(); ++k) {
      const BackendRecord& b = v.backends[k];
      const std::string bat = at + item("backends", k);
      handed_out(bat + "id", b.id, counters.next_backend);
      backend_ids.add(b.id, bat + "id", std::to_string(b.id));
      if (legacy_endpoint_missing(s, b.endpoint))
        refuse(bat + "endpoint", "'" + printable(b.endpoint) + "' is not an endpoint of this node");
    }
  }
}

}  // namespace

std::string ipv6_pool_problem(const Ipv6Cidr& c) {
  const auto& b = c.network.bytes();
  if (c.prefix < 48 || c.prefix > 120)
    return "pool " + c.str() + " is not between /48 and /120 (a /127 or /128 has no room for endpoints)";
  if (b[0] == 0xff) return c.str() + " is a multicast prefix";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return c.str() + " is link-local";
  if (Ipv6Cidr{Ipv6(), 96}.contains(c.network)) return c.str() + " is inside ::/96 (unspecified, loopback, IPv4-compatible)";
  if (Ipv6Cidr{*Ipv6::parse("::ffff:0:0"), 96}.contains(c.network)) return c.str() + " is IPv4-mapped";
  return "";
}

void validate_state(const NodeState& s, std::string_view node) {
  check("name", [&] { validate_name("node", s.name); });
  if (s.name != node)
    refuse("name", "'" + s.name + "' is not the name of node '" + printable(node) + "'");
  if (auto problem = cidr_problem(s.cidr); !problem.empty()) refuse("cidr", problem);
  if (s.cidr.prefix < 8 || s.cidr.prefix > 30)
    refuse("cidr", "pool " + s.cidr.str() + " is not between /8 and /30");
  if (s.last_allocated != Ipv4() && !s.cidr.contains(s.last_allocated))
    refuse("last_allocated", s.last_allocated.str() + " is outside the pool " + s.cidr.str());
  if (s.cidr6)
    if (auto problem = ipv6_pool_problem(*s.cidr6); !problem.empty()) refuse("cidr6", problem);
  validate_legacy_endpoints(s);
  if (s.uplink) {
    check("uplink.ifname", [&] { validate_ifname(s.uplink->ifname); });
    if (!s.uplink->outside.empty()) check("uplink.outside", [&] { validate_name("netns", s.uplink->outside); });
  }
  validate_published(s);
  validate_routes(s);
  validate_prefilter(s);
  validate_legacy_services(s);
  validate_overlay(s);
  if (s.native_cidr && !s.native_cidr->contains(s.cidr.network))
    refuse("native_cidr", s.native_cidr->str() + " does not hold the node's pool " + s.cidr.str());
  const std::pair<const char*, uint32_t> timeouts[] = {{"syn", s.ct_timeouts.syn},
                                                       {"tcp", s.ct_timeouts.tcp},
                                                       {"closing", s.ct_timeouts.closing},
                                                       {"udp", s.ct_timeouts.udp},
                                                       {"icmp", s.ct_timeouts.icmp}};
  for (const auto& [name, seconds] : timeouts)
    if (seconds == 0) refuse(std::string("ct_timeouts.") + name, "0 seconds is not a timeout");
  if (s.ct_size == 0) refuse("ct_size", "a conntrack table of 0 entries holds no flow");
}

void validate_endpoint(const EndpointRecord& e, const Ipv4Cidr& pool, const std::optional<Ipv6Cidr>& pool6,
                       const std::string& at) {
  validate_one_endpoint(e, pool, pool6, at);
}

void validate_journal(const Journal& j) {
  for (size_t i = 0; i < j.adding.size(); ++i) validate_endpoint_names(j.adding[i], item("adding", i));
  for (size_t i = 0; i < j.removing.size(); ++i)
    check("removing[" + std::to_string(i) + "]", [&] { validate_name("endpoint", j.removing[i]); });
  for (size_t i = 0; i < j.unpublishing.size(); ++i) {
    const PublishRecord& p = j.unpublishing[i];
    const std::string at = item("unpublishing", i);
    if (p.proto != "tcp" && p.proto != "udp")
      refuse(at + "proto", "'" + printable(p.proto) + "' is not tcp or udp");
    if (p.port == 0) refuse(at + "port", "0 is not a port");
  }
  for (size_t i = 0; i < j.netns.size(); ++i)
    check("netns[" + std::to_string(i) + "]", [&] { validate_name("netns", j.netns[i]); });
}

}  // namespace ebpfnet
