#include "services.hpp"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "ebpfnet/error.hpp"
#include "ebpfnet/maglev.hpp"
#include "ebpfnet/names.hpp"
#include "endpoints.hpp"
#include "socket_lb.hpp"
#include "uplink.hpp"

namespace ebpfnet {
namespace {

constexpr uint32_t kMaxAffinitySeconds = 86400;

uint16_t parse_port(std::string_view s, std::string_view what, std::string_view whole) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
    throw Error(Errc::usage, "'" + printable(whole) + "': " + std::string(what) + " '" + printable(s) +
                                 "' is not a port (1-65535)");
  return static_cast<uint16_t>(v);
}

// "PORT[/PROTO]": the port, and the protocol when one is given.
std::pair<uint16_t, std::optional<std::string>> port_proto(std::string_view s, std::string_view what,
                                                           std::string_view whole) {
  const auto slash = s.find('/');
  std::optional<std::string> proto;
  if (slash != std::string_view::npos) {
    proto = std::string(s.substr(slash + 1));
    if (*proto != "tcp" && *proto != "udp")
      throw Error(Errc::usage, "'" + printable(whole) + "': '" + printable(*proto) + "' is not tcp or udp");
  }
  return {parse_port(s.substr(0, slash), what, whole), proto};
}

}  // namespace

void parse_service_address(std::string_view s, ServiceSpec& spec) {
  const auto colon = s.find(':');
  if (colon == std::string_view::npos)
    throw Error(Errc::usage, "'" + printable(s) + "' is not a service address such as 10.96.0.10:80/tcp");
  auto ip = Ipv4::parse(s.substr(0, colon));
  if (!ip) throw Error(Errc::usage, "'" + printable(s) + "': '" + printable(s.substr(0, colon)) + "' is not an IPv4 address");
  auto [port, proto] = port_proto(s.substr(colon + 1), "port", s);
  spec.vip = *ip;
  spec.port = port;
  if (proto) spec.proto = *proto;
}

void parse_node_port(std::string_view s, ServiceSpec& spec) {
  auto [port, proto] = port_proto(s, "node port", s);
  if (proto && spec.vip && *proto != spec.proto)
    throw Error(Errc::usage, "node port " + printable(s) + " is not " + spec.proto + " like the service's address");
  spec.node_port = port;
  if (proto) spec.proto = *proto;
}

BackendRef parse_backend_ref(std::string_view s) {
  BackendRef r;
  const auto colon = s.find(':');
  r.endpoint = std::string(s.substr(0, colon));
  validate_name("endpoint", r.endpoint);
  if (colon != std::string_view::npos) r.port = parse_port(s.substr(colon + 1), "backend port", s);
  return r;
}

BackendSpec parse_backend(std::string_view s) {
  BackendSpec b;
  const auto comma = s.find(',');
  BackendRef r = parse_backend_ref(s.substr(0, comma));
  b.endpoint = r.endpoint;
  b.port = r.port;
  if (comma == std::string_view::npos) return b;
  const std::string_view opt = s.substr(comma + 1);
  constexpr std::string_view kWeight = "weight=";
  unsigned w = 0;
  const std::string_view v = opt.substr(std::min(opt.size(), kWeight.size()));
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), w);
  if (!opt.starts_with(kWeight) || v.empty() || ec != std::errc() || end != v.data() + v.size() || w == 0 ||
      w > kMaxBackendWeight)
    throw Error(Errc::usage, "'" + printable(s) + "': '" + printable(opt) + "' is not weight=N with N from 1 to " +
                                 std::to_string(kMaxBackendWeight));
  b.weight = w;
  return b;
}

namespace services {
namespace {

uint8_t proto_of(const ServiceRecord& v) { return uplink::proto_number(v.proto); }

std::vector<ebpfnet_svc_key> keys_of(const ServiceRecord& v) {
  std::vector<ebpfnet_svc_key> keys;
  if (v.vip) keys.push_back({v.vip->be(), htons(v.port), proto_of(v), 0});
  if (v.node_port) keys.push_back({0, htons(v.node_port), proto_of(v), 0});
  return keys;
}

Ipv4 address_of(EndpointTable& eps, const std::string& name) {
  if (auto e = eps.get(name)) return e->ip;
  throw Error(Errc::not_found, "endpoint '" + printable(name) + "' does not exist");
}

std::string backend_str(const BackendRecord& b) { return b.endpoint + ":" + std::to_string(b.port); }

// Its active backends, placed by address:port, which every node agrees on.
std::vector<uint32_t> table_of(EndpointTable& eps, const ServiceRecord& v) {
  std::vector<MaglevBackend> active;
  for (const auto& b : v.backends)
    if (!b.draining) active.push_back({b.id, address_of(eps, b.endpoint).str() + ":" + std::to_string(b.port), b.weight});
  return maglev_table(active, EBPFNET_MAGLEV_SIZE);
}

ebpfnet_backend backend_entry(EndpointTable& eps, const ServiceRecord& v, const BackendRecord& b) {
  ebpfnet_backend e{};
  e.ip = address_of(eps, b.endpoint).be();
  e.port = htons(b.port);
  e.state = b.draining ? EBPFNET_BACKEND_DRAINING : EBPFNET_BACKEND_ACTIVE;
  e.svc_id = v.id;
  return e;
}

// Backends, then the table, then the keys: a client never finds a service
// whose table names a backend the map does not have.
void write(EndpointTable& eps, const ServiceRecord& v, DatapathMaps& maps) {
  for (const auto& b : v.backends) maps.put_backend(b.id, backend_entry(eps, v, b));
  maps.put_maglev(v.id, table_of(eps, v));
  for (const auto& k : keys_of(v)) maps.put_service(k, {v.id, v.affinity_s});
}

void erase(const ServiceRecord& v, DatapathMaps& maps) {
  for (const auto& k : keys_of(v)) maps.delete_service(k);
  maps.put_maglev(v.id, {});
  for (const auto& b : v.backends) maps.delete_backend(b.id);
}

// Whether a flow addressed `a` (as the client sent it) to service v.
bool addressed_to(const ServiceRecord& v, const ebpfnet_ct_key& a) {
  if (a.proto != proto_of(v)) return false;
  if (v.vip && a.daddr == v.vip->be() && a.dport == htons(v.port)) return true;
  return v.node_port && a.dport == htons(v.node_port) && !(v.vip && a.daddr == v.vip->be());
}

// Ends the connections balanced to these backends of v (all of v's: none given).
size_t forget_flows(DatapathMaps& maps, EndpointTable& eps, const ServiceRecord& v,
                    const std::vector<BackendRecord>& only = {}) {
  std::vector<std::pair<uint32_t, uint16_t>> targets;
  for (const auto& b : only) targets.push_back({address_of(eps, b.endpoint).be(), htons(b.port)});
  return maps.ct_forget_service_flows([&](const ebpfnet_ct_key& a, const ebpfnet_ct_key& x) {
    if (!addressed_to(v, a)) return false;
    return only.empty() || std::find(targets.begin(), targets.end(), std::pair<uint32_t, uint16_t>{x.daddr, x.dport}) !=
                               targets.end();
  });
}

ServiceRecord find(NodeTxn& txn, const std::string& name) {
  if (auto v = txn.services().get(name)) return std::move(*v);
  throw Error(Errc::not_found, "service '" + printable(name) + "' does not exist");
}

std::vector<BackendRecord>::iterator find_backend(ServiceRecord& v, const BackendRef& r) {
  auto matches = [&](const BackendRecord& b) { return b.endpoint == r.endpoint && (!r.port || b.port == *r.port); };
  auto it = std::find_if(v.backends.begin(), v.backends.end(), matches);
  const std::string named = r.endpoint + (r.port ? ":" + std::to_string(*r.port) : "");
  if (it == v.backends.end())
    throw Error(Errc::not_found, named + " is not a backend of service '" + v.name + "'");
  if (!r.port && std::count_if(v.backends.begin(), v.backends.end(), matches) > 1)
    throw Error(Errc::usage, r.endpoint + " serves service '" + v.name + "' on several ports; say which (" +
                                 r.endpoint + ":PORT)");
  return it;
}

// The backend spec as a record of v, checked.
BackendRecord backend_of(EndpointTable& eps, const ServiceRecord& v, const BackendSpec& b) {
  address_of(eps, b.endpoint);
  if (!b.port && !v.vip)
    throw Error(Errc::usage, "backend " + b.endpoint + " needs a port (" + b.endpoint +
                                 ":PORT): service '" + v.name + "' has no virtual IP port to take it from");
  if (b.weight == 0 || b.weight > kMaxBackendWeight)
    throw Error(Errc::usage, "weight " + std::to_string(b.weight) + " is not between 1 and " +
                                 std::to_string(kMaxBackendWeight));
  return {0, b.endpoint, b.port.value_or(v.port), b.weight, false};
}

void check_capacity(ServiceTable& table, size_t more_keys, size_t more_backends) {
  if (table.key_count() + more_keys > EBPFNET_MAX_SERVICES)
    throw Error(Errc::exhausted, "a node holds at most " + std::to_string(EBPFNET_MAX_SERVICES) +
                                     " service addresses (virtual IPs and node ports)");
  if (table.backend_count() + more_backends > EBPFNET_MAX_BACKENDS)
    throw Error(Errc::exhausted, "a node holds at most " + std::to_string(EBPFNET_MAX_BACKENDS) + " backends");
}

// What a new service may not take: refused with what holds it (in the
// table, or among the ones this call adds before it).
void check_new(NodeTxn& txn, const ServiceSpec& spec, const std::vector<ServiceRecord>& adding) {
  const NodeState& st = txn.state();
  ServiceTable& table = txn.services();
  validate_name("service", spec.name);
  auto taken = [&](auto&& holds) -> std::optional<std::string> {
    for (const auto& v : adding)
      if (holds(v)) return v.name;
    return std::nullopt;
  };
  if (taken([&](const ServiceRecord& v) { return v.name == spec.name; }) || table.get(spec.name))
    throw Error(Errc::exists, "service '" + spec.name + "' already exists");
  if (!spec.vip && !spec.node_port)
    throw Error(Errc::usage, "service '" + spec.name +
                                 "' needs a virtual IP (VIP:PORT[/PROTO]) or a node port (--node-port PORT)");
  if (spec.affinity_s > kMaxAffinitySeconds)
    throw Error(Errc::usage, "an affinity of " + std::to_string(spec.affinity_s) + " s is above the limit of " +
                                 std::to_string(kMaxAffinitySeconds) + " s");
  const uint64_t uplink_ip = txn.maps().read_config()[EBPFNET_CFG_UPLINK_IP];
  if (spec.vip) {
    const Ipv4 vip = *spec.vip;
    const uint32_t h = vip.host();
    if (h == 0 || h == 0xffffffff || (h >> 24) == 127 || (h >> 28) == 0xe)
      throw Error(Errc::usage, vip.str() + " is not a unicast address a service can have");
    if (st.cidr.contains(vip))
      throw Error(Errc::usage, "virtual IP " + vip.str() + " is inside the node's pool " + st.cidr.str() +
                                   " (endpoints and the gateway take their addresses from it)");
    if (uplink_ip && vip.be() == uplink_ip)
      throw Error(Errc::usage, "virtual IP " + vip.str() + " is the uplink's address (use --node-port)");
    auto holder = taken([&](const ServiceRecord& v) {
      return v.vip == spec.vip && v.port == spec.port && v.proto == spec.proto;
    });
    if (!holder) holder = table.at_vip(vip, spec.port, spec.proto);
    if (holder)
      throw Error(Errc::exists, vip.str() + ":" + std::to_string(spec.port) + "/" + spec.proto + " is service '" +
                                    *holder + "'");
  }
  if (spec.node_port) {
    const std::string port = std::to_string(spec.node_port) + "/" + spec.proto;
    if (!st.uplink)
      throw Error(Errc::usage, "node '" + txn.node().name() + "' has no uplink for node port " + port +
                                   " (attach --uplink IFNAME)");
    if (spec.node_port >= kNatPortMin && spec.node_port <= kNatPortMax)
      throw Error(Errc::usage, "node port " + port + " is in the masquerade range " + std::to_string(kNatPortMin) +
                                   "-" + std::to_string(kNatPortMax));
    for (const auto& p : st.published)
      if (p.proto == spec.proto && p.port == spec.node_port)
        throw Error(Errc::exists, "port " + port + " is published for " + p.endpoint);
    auto holder = taken([&](const ServiceRecord& v) { return v.node_port == spec.node_port && v.proto == spec.proto; });
    if (!holder) holder = table.at_node_port(spec.node_port, spec.proto);
    if (holder) throw Error(Errc::exists, "node port " + port + " is service '" + *holder + "'");
  }
}

// Rewrites v's backends and table after a change of its backends, with
// the undo that puts `before` back.
void rewrite(NodeTxn& txn, const ServiceRecord& before, const ServiceRecord& after) {
  EndpointTable& eps = txn.endpoints();
  DatapathMaps& maps = txn.maps();
  txn.undo("service " + before.name, [&maps, &eps, before] {
    for (const auto& b : before.backends) maps.put_backend(b.id, backend_entry(eps, before, b));
    maps.put_maglev(before.id, table_of(eps, before));
  });
  for (const auto& b : after.backends) maps.put_backend(b.id, backend_entry(eps, after, b));
  maps.put_maglev(after.id, table_of(eps, after));
}

void write_config(NodeTxn& txn) {
  DatapathMaps& maps = txn.maps();
  txn.undo("config", [&maps, before = maps.read_config()] { maps.write_config(before); });
  uplink::write_config(txn, maps);
}

}  // namespace

void add_many(NodeTxn& txn, const std::vector<ServiceSpec>& specs) {
  if (specs.empty()) return;
  EndpointTable& eps = txn.endpoints();
  ServiceTable& table = txn.services();
  // Checked one by one, so each meets the table and the ones before it; a
  // refusal throws before anything is written or saved.
  std::vector<ServiceRecord> adding;
  size_t keys = 0, backends = 0;
  for (const auto& spec : specs) {
    check_new(txn, spec, adding);
    ServiceRecord v{spec.name, 0, spec.proto, spec.vip, spec.port, spec.node_port, spec.affinity_s, {}};
    for (const auto& b : spec.backends) {
      BackendRecord r = backend_of(eps, v, b);
      for (const auto& o : v.backends)
        if (o.endpoint == r.endpoint && o.port == r.port)
          throw Error(Errc::usage, "backend " + backend_str(r) + " is given twice");
      v.backends.push_back(r);
    }
    keys += keys_of(v).size();
    backends += v.backends.size();
    adding.push_back(std::move(v));
  }
  check_capacity(table, keys, backends);
  ServiceIdCounters ids = table.counters();
  for (auto& v : adding) {
    v.id = ids.next_service++;
    for (auto& b : v.backends) b.id = ids.next_backend++;
  }

  DatapathMaps& maps = txn.maps();
  txn.journal({.op = "service add"});
  txn.step("service");
  for (const auto& v : adding) {
    txn.undo("service " + v.name, [&maps, v] { erase(v, maps); });
    write(eps, v, maps);
    table.put(v);
  }
  table.set_counters(ids);
  txn.step("config");
  write_config(txn);
  txn.step("socket-lb");
  socket_lb::converge(txn, maps);
  txn.commit();
  if (specs.size() == 1)
    spdlog::info("node {}: service {} added with {} backends", txn.node().name(), specs[0].name,
                 specs[0].backends.size());
  else
    spdlog::info("node {}: {} services added", txn.node().name(), specs.size());
}

void add(NodeTxn& txn, const ServiceSpec& spec) { add_many(txn, {spec}); }

void del(NodeTxn& txn, const std::vector<std::string>& names) {
  if (names.empty()) throw Error(Errc::usage, "service del needs a service name");
  EndpointTable& eps = txn.endpoints();
  std::vector<ServiceRecord> doomed;
  for (const auto& n : names) {
    if (std::any_of(doomed.begin(), doomed.end(), [&](const ServiceRecord& v) { return v.name == n; }))
      throw Error(Errc::usage, "service '" + printable(n) + "' is given twice");
    doomed.push_back(find(txn, n));
  }
  DatapathMaps* maps = txn.maps_if_attached();
  txn.journal({.op = "service del"});
  txn.step("service");
  for (const auto& v : doomed) {
    if (maps) {
      txn.undo("service " + v.name, [maps, &eps, v] { write(eps, v, *maps); });
      erase(v, *maps);
      forget_flows(*maps, eps, v);
    }
    txn.services().erase(v.name);
  }
  if (maps) {
    write_config(txn);
    txn.step("socket-lb");
    socket_lb::converge(txn, *maps);
  }
  txn.commit();
}

void set_backend(NodeTxn& txn, const std::string& service, const BackendSpec& spec) {
  EndpointTable& eps = txn.endpoints();
  ServiceTable& table = txn.services();
  ServiceRecord v = find(txn, service);
  BackendRecord r = backend_of(eps, v, spec);
  const ServiceRecord before = v;
  auto it = std::find_if(v.backends.begin(), v.backends.end(),
                         [&](const BackendRecord& b) { return b.endpoint == r.endpoint && b.port == r.port; });
  const bool fresh = it == v.backends.end();
  if (!fresh) {
    if (it->weight == r.weight && !it->draining) return;
    it->weight = r.weight;
    it->draining = false;
  } else {
    check_capacity(table, 0, 1);
    ServiceIdCounters ids = table.counters();
    r.id = ids.next_backend++;
    table.set_counters(ids);
    v.backends.push_back(r);
  }
  DatapathMaps& maps = txn.maps();
  txn.journal({.op = "service backend"});
  txn.step("service");
  if (fresh) txn.undo("backend " + backend_str(r), [&maps, id = r.id] { maps.delete_backend(id); });
  rewrite(txn, before, v);
  table.put(v);
  txn.commit();
}

void drain(NodeTxn& txn, const std::string& service, const BackendRef& ref) {
  ServiceRecord v = find(txn, service);
  auto it = find_backend(v, ref);
  if (it->draining) return;
  const ServiceRecord before = v;
  it->draining = true;
  txn.journal({.op = "service drain"});
  txn.step("service");
  rewrite(txn, before, v);
  txn.services().put(v);
  txn.commit();
}

void remove_backend(NodeTxn& txn, const std::string& service, const BackendRef& ref) {
  EndpointTable& eps = txn.endpoints();
  ServiceRecord v = find(txn, service);
  auto it = find_backend(v, ref);
  const BackendRecord gone = *it;
  const ServiceRecord before = v;
  v.backends.erase(it);
  DatapathMaps* maps = txn.maps_if_attached();
  txn.journal({.op = "service backend del"});
  txn.step("service");
  if (maps) {
    rewrite(txn, before, v);
    txn.undo("backend " + backend_str(gone), [maps, &eps, before, gone] {
      maps->put_backend(gone.id, backend_entry(eps, before, gone));
    });
    maps->delete_backend(gone.id);
    forget_flows(*maps, eps, before, {gone});
  }
  txn.services().put(v);
  txn.commit();
}

std::vector<ServiceView> list(NodeTxn& txn) {
  EndpointTable& eps = txn.endpoints();
  std::vector<ServiceRecord> all = txn.services().all();
  DatapathMaps* maps = all.empty() ? nullptr : txn.maps_if_attached();
  std::vector<ServiceView> out;
  for (auto& v : all) {
    ServiceView view{std::move(v), {}};
    for (const auto& b : view.record.backends)
      view.backends.push_back({b, address_of(eps, b.endpoint), maps ? maps->backend_connections(b.id) : 0});
    out.push_back(std::move(view));
  }
  return out;
}

void forget_endpoints(NodeTxn& txn, const std::set<std::string>& endpoints, DatapathMaps* maps) {
  EndpointTable& eps = txn.endpoints();
  size_t services = 0, backends = 0;
  std::string named;
  for (auto& v : txn.services().with_backends_on(endpoints)) {
    std::vector<BackendRecord> gone;
    for (const auto& b : v.backends)
      if (endpoints.count(b.endpoint)) gone.push_back(b);
    std::erase_if(v.backends, [&](const BackendRecord& b) { return endpoints.count(b.endpoint) > 0; });
    if (maps) {
      maps->put_maglev(v.id, table_of(eps, v));
      for (const auto& b : gone) maps->delete_backend(b.id);
    }
    txn.services().put(v);
    if (++services <= 3) named += (named.empty() ? "" : ", ") + v.name;
    backends += gone.size();
  }
  // One line, not one per service: a node with 10,000 services logs 10,000.
  if (services)
    spdlog::info("node {}: {} backend(s) left {} service(s) ({}{}) with their endpoints", txn.node().name(),
                 backends, services, named, services > 3 ? ", ..." : "");
}

void refill(NodeTxn& txn, const std::vector<ServiceRecord>& services, DatapathMaps& maps) {
  for (const auto& v : services) write(txn.endpoints(), v, maps);
}

size_t prune(NodeTxn& txn, const std::vector<ServiceRecord>& services, DatapathMaps& maps) {
  std::set<std::tuple<uint32_t, uint16_t, uint8_t>> keys;
  std::set<uint32_t> ids, backend_ids;
  // Each backend's address looked up once, not once per flow.
  std::map<std::string, uint32_t> addresses;
  for (const auto& v : services) {
    ids.insert(v.id);
    for (const auto& k : keys_of(v)) keys.insert({k.addr, k.port, k.proto});
    for (const auto& b : v.backends) {
      backend_ids.insert(b.id);
      if (!addresses.count(b.endpoint)) addresses[b.endpoint] = address_of(txn.endpoints(), b.endpoint).be();
    }
  }
  auto key32 = [](const void* raw) {
    uint32_t k;
    std::memcpy(&k, raw, sizeof k);
    return k;
  };
  size_t gone = maps.prune("svc", sizeof(ebpfnet_svc_key), [&](const void* raw) {
    ebpfnet_svc_key k;
    std::memcpy(&k, raw, sizeof k);
    return keys.count({k.addr, k.port, k.proto}) > 0;
  });
  gone += maps.prune("maglev", sizeof(uint32_t), [&](const void* raw) { return ids.count(key32(raw)) > 0; });
  gone += maps.prune("backends", sizeof(uint32_t), [&](const void* raw) { return backend_ids.count(key32(raw)) > 0; });
  gone += maps.prune("backend_stats", sizeof(uint32_t),
                     [&](const void* raw) { return backend_ids.count(key32(raw)) > 0; });
  // Flows balanced to a backend the state no longer has (a killed removal's).
  gone += maps.ct_forget_service_flows([&](const ebpfnet_ct_key& a, const ebpfnet_ct_key& x) {
    for (const auto& v : services) {
      if (!addressed_to(v, a)) continue;
      for (const auto& b : v.backends)
        if (x.daddr == addresses.at(b.endpoint) && x.dport == htons(b.port)) return false;
    }
    return true;
  });
  return gone;
}

}  // namespace services
}  // namespace ebpfnet
