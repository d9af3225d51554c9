#include "routes.hpp"

#include <algorithm>

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"

namespace ebpfnet::routes {
namespace {

// A sandbox node tells its outside (the router) how to reach its own pool.
void advertise_pool(NodeTxn& txn) {
  const NodeState& st = txn.state();
  Netns out = Netns::open_named(st.uplink->outside);
  Netlink nl = Netlink::in(txn.node().netns());
  auto link = nl.link(st.uplink->ifname);
  auto addrs = link ? nl.addresses(link->ifindex) : std::vector<Address>{};
  if (addrs.empty()) throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " has no address");
  netns::write_sysctl(out, "net/ipv4/ip_forward", "1");
  Netlink nl_out = Netlink::in(out);
  for (const auto& r : nl_out.routes())
    if (r.dst == st.cidr) return;
  nl_out.add_route({st.cidr, addrs.front().ip, 0, std::nullopt, false});
}

}  // namespace

void add(NodeTxn& txn, const RouteRecord& r) {
  NodeState& st = txn.state();
  if (!st.uplink)
    throw Error(Errc::usage, "node '" + txn.node().name() + "' has no uplink (attach --uplink IFNAME)");
  if (r.dst.contains(st.cidr.network) || st.cidr.contains(r.dst.network))
    throw Error(Errc::usage, "route " + r.dst.str() + " overlaps the node's pool " + st.cidr.str());
  for (const auto& q : st.routes)
    if (q.dst == r.dst) throw Error(Errc::exists, "a route to " + r.dst.str() + " exists already");
  if (st.overlay)
    for (const auto& p : st.overlay->peers)
      if (r.dst.contains(p.pool.network) || p.pool.contains(r.dst.network))
        throw Error(Errc::usage, "route " + r.dst.str() + " overlaps the overlay's pool " + p.pool.str());
  DatapathMaps& maps = txn.maps();

  Netlink& nl = txn.hold(Netlink::in(txn.node().netns()));
  txn.journal({.op = "route add"});
  // One a killed route add made is taken as it is.
  const auto kernel = nl.routes();
  if (std::none_of(kernel.begin(), kernel.end(), [&](const Route& k) { return k.dst == r.dst && k.via == r.via; })) {
    nl.add_route({r.dst, r.via, 0, std::nullopt, false});
    txn.undo("route", [&nl, r] { nl.del_route({r.dst, r.via, 0, std::nullopt, false}); });
  }
  maps.put_routed(r.dst);
  txn.undo("routed prefix", [&maps, r] { maps.delete_routed(r.dst); });
  if (!st.uplink->outside.empty()) advertise_pool(txn);
  st.routes.push_back(r);
  txn.commit();
}

void del(NodeTxn& txn, const Ipv4Cidr& dst) {
  NodeState& st = txn.state();
  auto it = std::find_if(st.routes.begin(), st.routes.end(), [&](const RouteRecord& r) { return r.dst == dst; });
  if (it == st.routes.end()) throw Error(Errc::not_found, "no route to " + dst.str());
  txn.journal({.op = "route del"});
  if (DatapathMaps* maps = txn.maps_if_attached()) maps->delete_routed(dst);
  try {
    Netlink::in(txn.node().netns()).del_route({it->dst, it->via, 0, std::nullopt, false});
  } catch (const Error& e) {
    if (e.code() != Errc::not_found) throw;
  }
  st.routes.erase(it);
  txn.commit();
}

void set_native(NodeTxn& txn, const std::optional<Ipv4Cidr>& cidr) {
  NodeState& st = txn.state();
  if (st.native_cidr == cidr) return;
  if (cidr && !st.uplink)
    throw Error(Errc::usage, "node '" + txn.node().name() + "' has no uplink to route " + cidr->str() + " through");
  if (cidr && !cidr->contains(st.cidr.network))
    throw Error(Errc::usage, "cluster CIDR " + cidr->str() + " does not hold the node's pool " + st.cidr.str());
  txn.journal({.op = "native"});
  if (DatapathMaps* maps = txn.maps_if_attached()) {
    if (st.native_cidr) maps->delete_routed(*st.native_cidr);
    if (cidr) maps->put_routed(*cidr);
  }
  st.native_cidr = cidr;
  txn.commit();
}

}  // namespace ebpfnet::routes
