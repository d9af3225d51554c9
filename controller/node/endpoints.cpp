#include "endpoints.hpp"

#include <spdlog/spdlog.h>

#include <set>

#include "datapath.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/ipam.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "pins.hpp"
#include "policy.hpp"
#include "uplink.hpp"

namespace ebpfnet::endpoints {
namespace {

// IPv6 is not forwarded yet; keeping it off the veths keeps router
// solicitations and DAD from showing up as drops.
void disable_ipv6(const Netns& ns, const std::string& ifname) {
  try {
    netns::write_sysctl(ns, "net/ipv6/conf/" + ifname + "/disable_ipv6", "1");
  } catch (const Error& e) {
    if (e.code() != Errc::not_found) throw;  // a kernel without IPv6 is fine
  }
}

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

// The namespace, veth, addresses, routes, map entries and program of one
// endpoint; each step pushes its undo.
EndpointRecord wire(NodeTxn& txn, const EndpointRequest& req, Ipv4 ip, Datapath& dp, const Netns& nodens,
                    Netlink& nl_node) {
  const Node& node = txn.node();
  const NodeState& st = txn.state();
  EndpointRecord rec;
  rec.name = req.name;
  rec.ifname = req.ifname;
  rec.ip = ip;
  rec.container_id = req.container_id;
  rec.cni_network = req.cni_network;

  txn.step("netns");
  if (req.netns) {
    rec.netns = *req.netns;
    // A path is kept absolute: the state store refuses a relative one.
    rec.netns_path = req.netns->rfind("pid:", 0) == 0 ? "/proc/" + req.netns->substr(4) + "/ns/net"
                     : req.netns->find('/') != std::string::npos
                         ? std::filesystem::absolute(*req.netns).lexically_normal().string()
                         : netns::path_of(*req.netns);
  } else {
    netns::add(req.name);
    txn.undo("netns " + req.name, [name = req.name] { netns::del(name); });
    rec.netns = req.name;
    rec.netns_path = netns::path_of(req.name);
    rec.netns_owned = true;
  }
  Netns epns = req.netns ? Netns::open_spec(*req.netns) : Netns::open_named(req.name);
  if (epns.same_as(nodens))
    throw Error(Errc::usage, "endpoint '" + req.name + "' cannot live in the node's own namespace");
  Netlink nl_ep = Netlink::in(epns);
  if (nl_ep.link(req.ifname))
    throw Error(Errc::exists, "interface " + req.ifname + " already exists in netns " + rec.netns);

  for (unsigned attempt = 0;; ++attempt) {
    rec.host_ifname = host_ifname(req.name, attempt);
    if (!nl_node.link(rec.host_ifname)) break;
    if (attempt == 16)
      throw Error(Errc::exists, "no free interface name for endpoint " + req.name);
  }

  txn.step("veth");
  rec.mac = random_mac();
  rec.host_mac = random_mac();
  try {
    rec.host_ifindex = nl_node.create_veth(
        {rec.host_ifname, rec.host_mac, req.ifname, rec.mac, epns.fd()});
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + " (in netns " + rec.netns + ")");
  }
  txn.undo("veth " + rec.host_ifname, [&nl_node, idx = rec.host_ifindex] { nl_node.delete_link(idx); });

  txn.step("endpoint-config");
  disable_ipv6(epns, req.ifname);
  if (auto lo = nl_ep.link("lo")) nl_ep.set_up(lo->ifindex);
  auto eth = nl_ep.link(req.ifname);
  if (!eth) throw Error(Errc::failed, req.ifname + " is missing in netns " + rec.netns);
  nl_ep.add_address({eth->ifindex, ip, 32});
  nl_ep.set_up(eth->ifindex);
  Ipv4 gw = st.gateway();
  nl_ep.add_route({{gw, 32}, std::nullopt, eth->ifindex, std::nullopt, true});
  nl_ep.add_route({{Ipv4(0), 0}, gw, eth->ifindex, std::nullopt, false});

  txn.step("node-config");
  disable_ipv6(nodens, rec.host_ifname);
  // The datapath asks the node's FIB where masqueraded traffic goes, from
  // this veth's point of view: that needs forwarding on here (only here).
  netns::write_sysctl(nodens, "net/ipv4/conf/" + rec.host_ifname + "/forwarding", "1");
  // The gateway lives on every node-side veth (as the CNI ptp plugin does):
  // the node answers and sources from it, and it goes away with the veth.
  nl_node.add_address({rec.host_ifindex, gw, 32});
  nl_node.set_up(rec.host_ifindex);
  nl_node.add_route({{ip, 32}, std::nullopt, rec.host_ifindex, gw, true});
  nl_node.add_neighbor({rec.host_ifindex, ip, rec.mac});

  txn.step("maps");
  dp.maps().put_endpoint(make_endpoint(rec.host_ifindex, ip, rec.mac, rec.host_mac));
  txn.undo("map entries", [&dp, idx = rec.host_ifindex, ip] { dp.maps().delete_endpoint(idx, ip); });

  txn.step("attach");
  {
    NetnsGuard in(nodens);
    rec.tc_mode = attach_tc_ingress(dp.from_endpoint_fd(), rec.host_ifindex, st.tc_mode, link_pin(node, rec));
  }
  txn.undo("tc attach", [&node, &nodens, rec] {
    NetnsGuard in(nodens);
    detach_tc_ingress(rec.tc_mode, rec.host_ifindex, link_pin(node, rec));
  });

  return rec;
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
  for (const auto& req : reqs) {
    if (st.find(req.name))
      throw Error(Errc::exists, "endpoint '" + req.name + "' already exists on node " + node.name());
    if (!req.netns && netns::exists(req.name))
      throw Error(Errc::exists, "network namespace '" + req.name +
                                    "' already exists; pass --netns " + req.name + " to wire it");
  }

  std::set<Ipv4> used;
  for (const auto& e : st.endpoints) used.insert(e.ip);
  Ipam ipam(st.cidr, used, st.last_allocated);
  std::vector<Ipv4> ips;
  for (const auto& req : reqs) ips.push_back(req.ip ? (ipam.reserve(*req.ip), *req.ip) : ipam.allocate());

  // Held by the transaction: undo steps use them.
  Datapath& dp = txn.hold(open_or_attach(txn));
  const Netns& nodens = txn.hold(node.netns());
  Netlink& nl_node = txn.hold(Netlink::in(nodens));
  txn.set_checkpoint(cp);
  std::vector<EndpointRecord> added;
  for (size_t i = 0; i < reqs.size(); ++i) added.push_back(wire(txn, reqs[i], ips[i], dp, nodens, nl_node));

  st.endpoints.insert(st.endpoints.end(), added.begin(), added.end());
  st.last_allocated = ipam.last();
  txn.commit();
  for (const auto& rec : added)
    spdlog::info("node {}: endpoint {} at {} on {} ({})", node.name(), rec.name, rec.ip.str(), rec.host_ifname,
                 to_string(rec.tc_mode));
  return added;
}

EndpointRecord& find(NodeTxn& txn, const std::string& name) {
  EndpointRecord* e = txn.state().find(name);
  if (!e) throw Error(Errc::not_found, "endpoint '" + name + "' does not exist on node " + txn.node().name());
  return *e;
}

void del(NodeTxn& txn, const std::string& name) {
  validate_name("endpoint", name);
  NodeState& st = txn.state();
  const EndpointRecord& e = find(txn, name);
  remove(txn, e, txn.maps_if_attached());
  st.endpoints.erase(st.endpoints.begin() + (&e - st.endpoints.data()));
  txn.commit();
}

void remove(NodeTxn& txn, const EndpointRecord& e, DatapathMaps* maps) {
  const Node& node = txn.node();
  uplink::unpublish_endpoint(txn, e, maps);
  Netns nodens = node.netns();
  {
    NetnsGuard in(nodens);
    detach_tc_ingress(e.tc_mode, e.host_ifindex, link_pin(node, e));
  }
  if (maps) policies::remove_endpoint(txn.state(), e, *maps);
  if (maps) {
    maps->delete_endpoint(e.host_ifindex, e.ip);
    // Its address may be handed out again: no flow may still lead to it.
    maps->ct_forget_address(e.ip);
  }
  // Deleting one side deletes the pair, with its addresses, routes and neighbour.
  Netlink nl = Netlink::in(nodens);
  auto l = nl.link(e.host_ifname);
  try {
    if (l && l->ifindex == e.host_ifindex) nl.delete_link(l->ifindex);
  } catch (const Error& err) {
    // The endpoint's namespace is being torn down and takes the pair with it.
    if (err.code() != Errc::not_found) throw;
  }
  if (e.netns_owned && netns::exists(e.netns)) netns::del(e.netns);
}

std::vector<EndpointView> views(const Node& node, const NodeState& st, const Datapath* dp) {
  std::vector<EndpointView> out;
  Netns ns = node.netns();
  for (const auto& e : st.endpoints) {
    EndpointView v{e, std::nullopt, 0};
    if (dp) v.stats = dp->maps().stats(e.host_ifindex);
    {
      NetnsGuard in(ns);
      v.prog_id = attached_prog_id(e.tc_mode, e.host_ifindex, link_pin(node, e));
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<EndpointView> list(NodeTxn& txn) {
  const std::filesystem::path pin_dir = txn.node().pin_dir();
  // Counters only from maps in this binary's layouts.
  MapFds pins = Datapath::open_map_pins(pin_dir);
  auto dp = Datapath::abi_of(pins) == EBPFNET_ABI_VERSION ? Datapath::open_pinned(pin_dir) : std::nullopt;
  return views(txn.node(), txn.state(), dp ? &*dp : nullptr);
}

void refill(const NodeState& st, DatapathMaps& maps) {
  for (const auto& e : st.endpoints)
    maps.put_endpoint(make_endpoint(e.host_ifindex, e.ip, e.mac, e.host_mac), true);
}

}  // namespace ebpfnet::endpoints
