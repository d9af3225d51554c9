#include "endpoints.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "datapath.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/ipam.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/sock_lb.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "marks.hpp"
#include "pins.hpp"
#include "policy.hpp"
#include "services.hpp"
#include "uplink.hpp"

namespace ebpfnet::endpoints {
namespace {

// The pinned datapath, attached first when it is not (or is of an older ABI).
Datapath open_or_attach(NodeTxn& txn) {
  const Node& node = txn.node();
  const uint32_t abi = Datapath::abi_of(Datapath::open_map_pins(node.pin_dir()));
  auto dp = abi == EBPFNET_ABI_VERSION ? Datapath::open_pinned(node.pin_dir()) : std::nullopt;
  if (dp && txn.state().attached) return std::move(*dp);
  spdlog::info("node {}: datapath {}; attaching", node.name(),
               abi && abi < EBPFNET_ABI_VERSION ? "of an older ABI" : "not attached yet");
  datapath::attach(txn, {});
  dp = Datapath::open_pinned(node.pin_dir());
  if (!dp) throw Error(Errc::failed, "datapath of node " + node.name() + " is not pinned after attach");
  return std::move(*dp);
}

// What an endpoint will be, decided before anything is made, so the journal
// names everything a killed add may leave: its namespace, its veth's name, its address.
EndpointRecord plan(const NodeState& st, const EndpointRequest& req, Ipv4 ip, std::optional<Ipv6> ip6,
                    Netlink& nl_node, const std::vector<EndpointRecord>& planned) {
  EndpointRecord rec;
  rec.name = req.name;
  rec.ifname = req.ifname;
  rec.ip = ip;
  rec.ip6 = ip6;
  rec.container_id = req.container_id;
  rec.cni_network = req.cni_network;
  rec.tc_mode = st.tc_mode.value_or(kEndpointTcMode);
  if (req.netns) {
    rec.netns = *req.netns;
    // A path is kept absolute: the state store refuses a relative one.
    rec.netns_path = req.netns->rfind("pid:", 0) == 0 ? "/proc/" + req.netns->substr(4) + "/ns/net"
                     : req.netns->find('/') != std::string::npos
                         ? std::filesystem::absolute(*req.netns).lexically_normal().string()
                         : netns::path_of(*req.netns);
  } else {
    rec.netns = req.name;
    rec.netns_path = netns::path_of(req.name);
    rec.netns_owned = true;
  }
  auto taken = [&](const std::string& ifname) {
    return nl_node.ifindex_of(ifname) || std::any_of(planned.begin(), planned.end(), [&](const EndpointRecord& p) {
             return p.host_ifname == ifname;
           });
  };
  for (unsigned attempt = 0;; ++attempt) {
    rec.host_ifname = host_ifname(req.name, attempt);
    if (!taken(rec.host_ifname)) break;
    if (attempt == 16) throw Error(Errc::exists, "no free interface name for endpoint " + req.name);
  }
  rec.mac = random_mac();
  rec.host_mac = random_mac();
  return rec;
}

// The namespace, veth, addresses, routes, map entries and program of one
// planned endpoint; each step pushes its undo.
void wire(NodeTxn& txn, EndpointRecord& rec, Datapath& dp, const Netns& nodens, Netlink& nl_node) {
  const Node& node = txn.node();
  const NodeState& st = txn.state();
  const std::string mark = marks::of(node, rec.name);

  txn.step("netns");
  if (rec.netns_owned) {
    netns::add(rec.name);
    txn.undo("netns " + rec.name, [name = rec.name] { netns::del(name); });
    marks::mark_netns(Netns::open_named(rec.name), mark);
  }
  Netns epns = rec.netns_owned ? Netns::open_named(rec.name) : Netns::open_spec(rec.netns);
  if (epns.same_as(nodens))
    throw Error(Errc::usage, "endpoint '" + rec.name + "' cannot live in the node's own namespace");
  rec.netns_cookie = sock_lb::netns_cookie(epns);
  Netlink nl_ep = Netlink::in(epns);
  if (nl_ep.link(rec.ifname))
    throw Error(Errc::exists, "interface " + rec.ifname + " already exists in netns " + rec.netns);

  txn.step("veth");
  try {
    rec.host_ifindex = nl_node.create_veth({rec.host_ifname, rec.host_mac, rec.ifname, rec.mac, epns.fd()});
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + " (in netns " + rec.netns + ")");
  }
  txn.undo("veth " + rec.host_ifname, [&nl_node, idx = rec.host_ifindex] { nl_node.delete_link(idx); });
  nl_node.set_alias(rec.host_ifindex, mark);

  txn.step("endpoint-config");
  if (auto lo = nl_ep.link("lo")) nl_ep.set_up(lo->ifindex);
  auto eth = nl_ep.link(rec.ifname);
  if (!eth) throw Error(Errc::failed, rec.ifname + " is missing in netns " + rec.netns);
  // No link-local address (nor, on an IPv4 node, any IPv6): no DAD, router
  // solicitation or MLD report shows up as a drop. A dual-stack endpoint's
  // one IPv6 address skips DAD (IPAM made it unique), so its first packet
  // leaves at once.
  nl_ep.no_ipv6_addresses(eth->ifindex);
  nl_ep.add_address({eth->ifindex, rec.ip, 32});
  if (rec.ip6) nl_ep.add_address6({eth->ifindex, *rec.ip6, 128});
  nl_ep.set_up(eth->ifindex);
  Ipv4 gw = st.gateway();
  nl_ep.add_route({{gw, 32}, std::nullopt, eth->ifindex, std::nullopt, true});
  nl_ep.add_route({{Ipv4(0), 0}, gw, eth->ifindex, std::nullopt, false});
  if (rec.ip6) {
    const Ipv6 gw6 = *st.gateway6();
    nl_ep.add_route6({{gw6, 128}, std::nullopt, eth->ifindex});
    nl_ep.add_route6({{Ipv6(), 0}, gw6, eth->ifindex});
  }

  txn.step("node-config");
  // Here IPv6 goes off entirely: a link with IPv6 on, even without an
  // address, gets a multicast route, and the node's table would hold one per
  // veth (each insert walks them). The name is the node's only such one, so
  // the sysctl's lookup is cheap, unlike eth0's in the endpoint's namespace.
  // A dual-stack node keeps IPv6 on, with only the gateway's addresses set
  // below (through netlink: no sysctl write per endpoint), and pays that route.
  if (rec.ip6) {
    nl_node.no_ipv6_addresses(rec.host_ifindex);
  } else {
    try {
      netns::write_sysctl(nodens, "net/ipv6/conf/" + rec.host_ifname + "/disable_ipv6", "1");
    } catch (const Error& e) {
      if (e.code() != Errc::not_found) throw;  // a kernel without IPv6 is fine
    }
  }
  // The datapath asks the node's FIB where masqueraded traffic goes, from
  // this veth's point of view: that needs forwarding on here (only here).
  netns::write_sysctl(nodens, "net/ipv4/conf/" + rec.host_ifname + "/forwarding", "1");
  // The gateway lives on every node-side veth (as the CNI ptp plugin does):
  // the node answers and sources from it, and it goes away with the veth.
  nl_node.add_address({rec.host_ifindex, gw, 32});
  nl_node.set_up(rec.host_ifindex);
  nl_node.add_route({{rec.ip, 32}, std::nullopt, rec.host_ifindex, gw, true});
  nl_node.add_neighbor({rec.host_ifindex, rec.ip, rec.mac});
  if (rec.ip6) {
    // The gateway's IPv6 and link-local address, on every veth like the
    // IPv4 one; the datapath answers neighbour solicitations for both.
    nl_node.add_address6({rec.host_ifindex, *st.gateway6(), 128});
    nl_node.add_address6({rec.host_ifindex, gateway_link_local(), 64});
    nl_node.add_route6({{*rec.ip6, 128}, std::nullopt, rec.host_ifindex});
    nl_node.add_neighbor6({rec.host_ifindex, *rec.ip6, rec.mac});
  }

  txn.step("maps");
  const ebpfnet_endpoint ep = make_endpoint(rec.host_ifindex, rec.ip, rec.mac, rec.host_mac);
  dp.maps().put_endpoint(ep);
  if (rec.ip6) dp.maps().put_endpoint6(ep, *rec.ip6);
  dp.maps().put_sock_netns(rec.netns_cookie, rec.ip);
  txn.undo("map entries", [&dp, idx = rec.host_ifindex, ip = rec.ip, ip6 = rec.ip6, cookie = rec.netns_cookie] {
    dp.maps().delete_sock_netns(cookie);
    if (ip6) dp.maps().delete_endpoint6(idx, *ip6);
    dp.maps().delete_endpoint(idx, ip);
  });

  txn.step("attach");
  {
    NetnsGuard in(nodens);
    rec.tc_mode = attach_tc_ingress(dp.from_endpoint_fd(), rec.host_ifindex, rec.tc_mode, link_pin(node, rec));
  }
  txn.undo("tc attach", [&node, &nodens, rec] {
    NetnsGuard in(nodens);
    detach_tc_ingress(rec.tc_mode, rec.host_ifindex, link_pin(node, rec));
  });
}

}  // namespace

void check(const std::vector<EndpointRequest>& reqs) {
  std::set<std::string> names;
  for (const auto& req : reqs) {
    validate_name("endpoint", req.name);
    validate_ifname(req.ifname);
    if (!names.insert(req.name).second)
      throw Error(Errc::usage, "endpoint '" + req.name + "' is given twice");
  }
  ensure_bpffs();
}

std::vector<EndpointRecord> add(NodeTxn& txn, const std::vector<EndpointRequest>& reqs, const Checkpoint& cp) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  EndpointTable& table = txn.endpoints();
  for (const auto& req : reqs) {
    if (table.contains(req.name))
      throw Error(Errc::exists, "endpoint '" + req.name + "' already exists on node " + node.name());
    if (!req.netns && netns::exists(req.name))
      throw Error(Errc::exists, "network namespace '" + req.name +
                                    "' already exists; pass --netns " + req.name + " to wire it");
  }

  Ipam ipam(st.cidr, table.addresses(), st.last_allocated);
  std::vector<Ipv4> ips;
  for (const auto& req : reqs) ips.push_back(req.ip ? (ipam.reserve(*req.ip), *req.ip) : ipam.allocate());
  std::vector<std::optional<Ipv6>> ip6s(reqs.size());
  if (st.cidr6) {
    // Given addresses first, so an allocated one never takes them.
    Ipam6 ipam6(*st.cidr6, table.addresses6());
    for (size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i].ip6) ipam6.reserve(*(ip6s[i] = reqs[i].ip6));
    for (size_t i = 0; i < reqs.size(); ++i)
      if (!ip6s[i]) ip6s[i] = ipam6.allocate(ips[i].host() - st.cidr.network.host());
  } else {
    for (const auto& req : reqs)
      if (req.ip6)
        throw Error(Errc::usage, "node " + node.name() + " has no IPv6 pool for " + req.ip6->str() +
                                     " (node create --cidr6)");
  }

  // Held by the transaction: undo steps use them.
  Datapath& dp = txn.hold(open_or_attach(txn));
  const Netns& nodens = txn.hold(node.netns());
  Netlink& nl_node = txn.hold(Netlink::in(nodens));
  txn.set_checkpoint(cp);
  std::vector<EndpointRecord> added;
  for (size_t i = 0; i < reqs.size(); ++i) added.push_back(plan(st, reqs[i], ips[i], ip6s[i], nl_node, added));
  txn.journal({.op = "endpoint add", .adding = added});
  for (auto& rec : added) wire(txn, rec, dp, nodens, nl_node);

  for (const auto& rec : added) table.put(rec);
  st.last_allocated = ipam.last();
  txn.commit();
  for (const auto& rec : added)
    spdlog::info("node {}: endpoint {} at {} on {} ({})", node.name(), rec.name, rec.ip.str(), rec.host_ifname,
                 to_string(rec.tc_mode));
  return added;
}

void del(NodeTxn& txn, const std::vector<std::string>& names) {
  EndpointTable& table = txn.endpoints();
  // A killed add or del of one, just recovered, leaves nothing to remove of it.
  const Journal* killed = txn.recovered() ? &*txn.recovered() : nullptr;
  auto handled_by_killed = [&](const std::string& name) {
    return killed &&
           (std::any_of(killed->adding.begin(), killed->adding.end(), [&](const auto& e) { return e.name == name; }) ||
            std::find(killed->removing.begin(), killed->removing.end(), name) != killed->removing.end());
  };
  std::set<std::string> doomed;
  for (const auto& name : names) {
    validate_name("endpoint", name);
    if (!doomed.insert(name).second) throw Error(Errc::usage, "endpoint '" + name + "' is given twice");
  }
  std::vector<EndpointRecord> gone;
  Journal j{.op = "endpoint del"};
  for (const auto& name : names) {
    auto e = table.get(name);
    if (!e && handled_by_killed(name)) continue;
    gone.push_back(e ? std::move(*e) : txn.endpoint(name));
    j.removing.push_back(name);
  }
  if (gone.empty()) return;
  txn.journal(std::move(j));
  remove(txn, gone, txn.maps_if_attached());
  for (const auto& e : gone) table.erase(e.name);
  txn.commit();
}

namespace {

// Veths taken down with their namespaces go in the kernel's namespace
// cleanup, which runs apart from the caller; this waits until they are gone
// from the node, and deletes those a namespace kept (some process still
// holds it) once no more go for a while.
void await_unlinked(Netlink& nl, std::set<int> ifindexes) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kStall = std::chrono::seconds(1);
  auto progress = Clock::now();
  while (!ifindexes.empty()) {
    std::set<int> present;
    for (int ifindex : ifindexes)
      if (!nl.name_of(ifindex).empty()) present.insert(ifindex);
    if (present.size() < ifindexes.size()) progress = Clock::now();
    ifindexes = std::move(present);
    if (ifindexes.empty()) return;
    if (Clock::now() - progress > kStall) {
      for (int ifindex : ifindexes) try {
          nl.delete_link(ifindex);
        } catch (const Error& err) {
          if (err.code() != Errc::not_found) throw;
        }
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

void remove(NodeTxn& txn, const std::vector<EndpointRecord>& es, DatapathMaps* maps) {
  const Node& node = txn.node();
  Netns nodens = node.netns();
  Netlink nl = Netlink::in(nodens);
  // Each endpoint's node-side veth, when it is still the one it made.
  std::vector<int> veths;
  // Pins of TCX links that go with their veths.
  std::vector<std::filesystem::path> late_pins;
  std::set<std::string> names;
  for (const auto& e : es) names.insert(e.name);
  services::forget_endpoints(txn, names, maps);
  for (const auto& e : es) {
    uplink::unpublish_endpoint(txn, e, maps);
    // A planned record (a killed add's) has no ifindex yet: its veth, if it
    // was made, is the one of its name that carries its mark.
    const bool planned = e.host_ifindex == 0;
    int ifindex = e.host_ifindex;
    if (planned) {
      auto l = nl.link(e.host_ifname);
      ifindex = l && (l->alias == marks::of(node, e.name) || l->alias.empty()) ? l->ifindex : 0;
    }
    veths.push_back(ifindex && nl.ifindex_of(e.host_ifname) == ifindex ? ifindex : 0);
    // A clsact filter goes with its veth; a TCX link with its pin. Detaching
    // a TCX link from a live device waits for an RCU grace period, so one
    // on a veth whose namespace is deleted below stays until the kernel
    // unregisters the row's devices together, which detaches them all at
    // once; only its pin is left to remove then.
    txn.step("detach");
    if (e.tc_mode == TcMode::tcx) {
      if (e.netns_owned && netns::exists(e.netns)) {
        late_pins.push_back(link_pin(node, e));
      } else {
        NetnsGuard in(nodens);
        detach_tc_ingress(e.tc_mode, ifindex, link_pin(node, e));
      }
    }
    txn.step("unmap");
    if (maps) {
      policies::remove_endpoint(txn, e, *maps);
      if (e.ip6) maps->delete_endpoint6(ifindex, *e.ip6);
      maps->delete_endpoint(ifindex, e.ip);
      // Endpoints may share a namespace (a container with two interfaces).
      const auto sharing = e.netns_cookie ? txn.endpoints().in_netns(e.netns_cookie) : std::vector<std::string>{};
      if (e.netns_cookie &&
          std::all_of(sharing.begin(), sharing.end(), [&](const std::string& o) { return names.count(o) != 0; }))
        maps->delete_sock_netns(e.netns_cookie);
    }
  }
  if (maps) {
    // Their addresses may be handed out again: no flow may still lead to them.
    std::set<Ipv4> ips;
    for (const auto& e : es) ips.insert(e.ip);
    maps->ct_forget_addresses(ips);
  }
  // Deleting one side of a pair deletes both, with their addresses, routes
  // and neighbours. A namespace ebpfnet made goes first and takes its veth
  // with it: the kernel unregisters the devices of namespaces deleted
  // together in one batch, so a row costs one wait, not one per endpoint.
  std::set<int> awaited;
  for (size_t i = 0; i < es.size(); ++i) {
    const EndpointRecord& e = es[i];
    txn.step("unlink");
    if (veths[i] && !(e.netns_owned && netns::exists(e.netns))) try {
        nl.delete_link(veths[i]);
      } catch (const Error& err) {
        // The endpoint's namespace is being torn down and takes the pair with it.
        if (err.code() != Errc::not_found) throw;
      }
    txn.step("netns-del");
    if (e.netns_owned && netns::exists(e.netns)) {
      netns::del(e.netns);
      if (veths[i]) awaited.insert(veths[i]);
    }
  }
  await_unlinked(nl, std::move(awaited));
  if (late_pins.empty()) return;
  txn.step("unpin");
  for (const auto& pin : late_pins) detach_tc_ingress(TcMode::tcx, 0, pin);
}

void each_view(const Node& node, EndpointTable& table, const Datapath* dp,
               const std::function<void(const EndpointView&)>& fn) {
  Netns ns = node.netns();
  NetnsGuard in(ns);
  table.for_each([&](const EndpointRecord& e) {
    EndpointView v{e, std::nullopt, 0};
    if (dp) v.stats = dp->maps().stats(e.host_ifindex);
    v.prog_id = attached_prog_id(e.tc_mode, e.host_ifindex, link_pin(node, e));
    fn(v);
  });
}

void list(NodeTxn& txn, const std::function<void(const EndpointView&)>& fn) {
  const std::filesystem::path pin_dir = txn.node().pin_dir();
  // Counters only from maps in this binary's layouts.
  MapFds pins = Datapath::open_map_pins(pin_dir);
  auto dp = Datapath::abi_of(pins) == EBPFNET_ABI_VERSION ? Datapath::open_pinned(pin_dir) : std::nullopt;
  each_view(txn.node(), txn.endpoints(), dp ? &*dp : nullptr, fn);
}

std::set<std::string> vanished(const Node& node, EndpointTable& table) {
  Netlink nl = Netlink::in(node.netns());
  std::set<std::string> out;
  table.for_each([&](const EndpointRecord& e) {
    if (nl.ifindex_of(e.host_ifname) != e.host_ifindex) {
      spdlog::warn("node {}: endpoint {} has lost its veth {} (its namespace was deleted, or the machine "
                   "restarted): left out of the datapath; `endpoint del {}` or CNI GC removes it",
                   node.name(), e.name, e.host_ifname, e.name);
      out.insert(e.name);
    }
  });
  return out;
}

void refill(const Node& node, EndpointTable& table, DatapathMaps& maps) {
  const std::set<std::string> gone = vanished(node, table);
  table.for_each([&](const EndpointRecord& e) {
    if (gone.count(e.name)) return;
    const ebpfnet_endpoint ep = make_endpoint(e.host_ifindex, e.ip, e.mac, e.host_mac);
    maps.put_endpoint(ep, true);
    if (e.ip6) maps.put_endpoint6(ep, *e.ip6);
  });
}

}  // namespace ebpfnet::endpoints
