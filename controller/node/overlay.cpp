#include "overlay.hpp"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "pins.hpp"
#include "uplink.hpp"

namespace ebpfnet::overlay {
namespace {

// Marks the device as ebpfnet's: only such a device is ever removed.
constexpr const char* kAlias = "ebpfnet overlay";

Route pool_route(const Ipv4Cidr& pool, int ifindex) { return {pool, std::nullopt, ifindex, std::nullopt, true}; }

// The pinned from_tunnel program of the node.
UniqueFd from_tunnel_prog(const Node& node) {
  UniqueFd fd(bpf_obj_get((node.pin_dir() / "from_tunnel").c_str()));
  if (!fd.valid())
    throw Error(Errc::rejected, "the datapath of node '" + node.name() +
                                    "' has no from_tunnel program (pinned before ABI 5): `ebpfnet attach` upgrades it");
  return fd;
}

// Makes the device (down until its program runs), pushing its removal.
int make_device(NodeTxn& txn, Netlink& nl, const OverlayRecord& o) {
  if (nl.link(o.ifname))
    throw Error(Errc::exists, "node '" + txn.node().name() + "' has a link named " + o.ifname + " already");
  const int ifindex = nl.create_vxlan({.name = o.ifname, .port = o.port, .mtu = static_cast<int>(o.mtu)});
  txn.undo("vxlan device " + o.ifname, [&nl, ifindex] { nl.delete_link(ifindex); });
  nl.set_alias(ifindex, kAlias);
  nl.no_ipv6_addresses(ifindex);
  return ifindex;
}

TcMode attach_prog(NodeTxn& txn, int prog_fd, int ifindex, std::optional<TcMode> mode) {
  const Node& node = txn.node();
  Netns ns = node.netns();
  NetnsGuard in(ns);
  return attach_tc_ingress(prog_fd, ifindex, mode, tunnel_pin(node));
}

void remove_device(const Node& node, Netlink& nl, const OverlayRecord& o) {
  auto link = nl.link(o.ifname);
  if (!link) return;
  {
    Netns ns = node.netns();
    NetnsGuard in(ns);
    detach_tc_ingress(o.tc_mode, link->ifindex, tunnel_pin(node));
  }
  nl.delete_link(link->ifindex);
}

}  // namespace

void add(NodeTxn& txn, const TunnelPeerRecord& peer) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  if (st.overlay)
    for (const auto& p : st.overlay->peers)
      if (p.pool == peer.pool)
        throw Error(Errc::exists, "the overlay has pool " + p.pool.str() + " already (via " + p.via.str() + ")");
  if (auto problem = tunnel_peer_problem(st, peer.pool, peer.via); !problem.empty())
    throw Error(Errc::usage, problem);
  DatapathMaps& maps = txn.maps();
  UniqueFd& prog = txn.hold(from_tunnel_prog(node));
  Netlink& nl = txn.hold(Netlink::in(node.netns()));
  txn.journal({.op = "tunnel add"});

  txn.step("device");
  const bool first = !st.overlay;
  if (first) {
    OverlayRecord o;
    const int ifindex = make_device(txn, nl, o);
    o.tc_mode = attach_prog(txn, prog.get(), ifindex, st.tc_mode);
    txn.undo("from_tunnel", [&node, ifindex, mode = o.tc_mode] {
      Netns ns = node.netns();
      NetnsGuard in(ns);
      detach_tc_ingress(mode, ifindex, tunnel_pin(node));
    });
    nl.set_up(ifindex);
    st.overlay = std::move(o);
  }
  auto link = nl.link(st.overlay->ifname);
  if (!link)
    throw Error(Errc::not_found, "the overlay device " + st.overlay->ifname + " of node '" + node.name() +
                                     "' is gone (`ebpfnet attach` makes it again)");

  txn.step("route");
  const Route r = pool_route(peer.pool, link->ifindex);
  const auto kernel = nl.routes(link->ifindex);
  if (std::none_of(kernel.begin(), kernel.end(), [&](const Route& k) { return k.dst == peer.pool; })) {
    nl.add_route(r);
    if (!first) txn.undo("route", [&nl, r] { nl.del_route(r); });
  }

  txn.step("map");
  maps.put_tunnel(peer.pool, peer.via);
  txn.undo("tunnel entry", [&maps, pool = peer.pool] { maps.delete_tunnel(pool); });
  st.overlay->peers.push_back(peer);
  txn.undo("config", [&maps, before = maps.read_config()] { maps.write_config(before); });
  uplink::write_config(txn, maps);
  txn.commit();
  spdlog::info("node {}: pool {} through the overlay via {}", node.name(), peer.pool.str(), peer.via.str());
}

void del(NodeTxn& txn, const Ipv4Cidr& pool) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  auto it = st.overlay ? std::find_if(st.overlay->peers.begin(), st.overlay->peers.end(),
                                      [&](const TunnelPeerRecord& p) { return p.pool == pool; })
                       : std::vector<TunnelPeerRecord>::iterator();
  if (!st.overlay || it == st.overlay->peers.end())
    throw Error(Errc::not_found, "the overlay of node '" + node.name() + "' has no pool " + pool.str());
  txn.journal({.op = "tunnel del"});
  DatapathMaps* maps = txn.maps_if_attached();
  if (maps) maps->delete_tunnel(pool);
  Netlink nl = Netlink::in(node.netns());
  auto link = nl.link(st.overlay->ifname);
  if (link) {
    try {
      nl.del_route(pool_route(pool, link->ifindex));
    } catch (const Error& e) {
      if (e.code() != Errc::not_found) throw;
    }
  }
  st.overlay->peers.erase(it);
  if (st.overlay->peers.empty()) {
    // The datapath stops sending into the device before it goes.
    const OverlayRecord o = *st.overlay;
    st.overlay.reset();
    if (maps) uplink::write_config(txn, *maps);
    remove_device(node, nl, o);
  }
  txn.commit();
}

void refill(const NodeState& st, DatapathMaps& maps) {
  if (!st.overlay) return;
  for (const auto& p : st.overlay->peers) maps.put_tunnel(p.pool, p.via);
}

size_t prune(const NodeState& st, DatapathMaps& maps) {
  std::set<std::pair<uint32_t, uint32_t>> keys;
  if (st.overlay)
    for (const auto& p : st.overlay->peers) keys.insert({static_cast<uint32_t>(p.pool.prefix), p.pool.network.be()});
  return maps.prune("tunnel", sizeof(ebpfnet_prefix), [&](const void* raw) {
    ebpfnet_prefix k;
    std::memcpy(&k, raw, sizeof k);
    return keys.count({k.prefixlen, k.addr}) > 0;
  });
}

bool converge(NodeTxn& txn, int prog_fd, int old_prog_fd) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  if (!st.overlay || prog_fd < 0) return false;
  Netlink& nl = txn.hold(Netlink::in(node.netns()));
  OverlayRecord& o = *st.overlay;
  auto link = nl.link(o.ifname);
  if (!link) {
    const int ifindex = make_device(txn, nl, o);
    for (const auto& p : o.peers) nl.add_route(pool_route(p.pool, ifindex));
    o.tc_mode = attach_prog(txn, prog_fd, ifindex, st.tc_mode);
    nl.set_up(ifindex);
    spdlog::info("node {}: overlay device {} made again", node.name(), o.ifname);
    return true;
  }
  const TcMode was = o.tc_mode;
  const TcMode want = st.tc_mode.value_or(was);
  uint32_t running = 0;
  {
    Netns ns = node.netns();
    NetnsGuard in(ns);
    running = attached_prog_id(was, link->ifindex, tunnel_pin(node));
  }
  if (want == was && running && running == Datapath::prog_info(prog_fd).id) return false;
  o.tc_mode = attach_prog(txn, prog_fd, link->ifindex, want);
  if (o.tc_mode != was) {
    Netns ns = node.netns();
    NetnsGuard in(ns);
    detach_tc_ingress(was, link->ifindex, tunnel_pin(node));
  }
  if (old_prog_fd >= 0)
    txn.undo("program of " + o.ifname, [&node, old_prog_fd, ifindex = link->ifindex, was, now = o.tc_mode] {
      Netns ns = node.netns();
      NetnsGuard back(ns);
      attach_tc_ingress(old_prog_fd, ifindex, was, tunnel_pin(node));
      if (now != was) detach_tc_ingress(now, ifindex, tunnel_pin(node));
    });
  return true;
}

void remove_stray_device(NodeTxn& txn) {
  if (txn.state().overlay) return;
  Netlink nl = Netlink::in(txn.node().netns());
  auto link = nl.link(OverlayRecord{}.ifname);
  if (!link || link->kind != "vxlan" || link->alias != kAlias) return;
  remove_device(txn.node(), nl, OverlayRecord{});
  spdlog::info("node {}: overlay device {} the state does not have removed", txn.node().name(), link->name);
}

void detach(NodeTxn& txn) {
  const NodeState& st = txn.state();
  if (!st.overlay) return;
  const Node& node = txn.node();
  Netns ns = node.netns();
  NetnsGuard in(ns);
  if (int ifindex = Netlink().ifindex_of(st.overlay->ifname))
    detach_tc_ingress(st.overlay->tc_mode, ifindex, tunnel_pin(node));
}

uint32_t attached_prog(const Node& node, const NodeState& st) {
  if (!st.overlay) return 0;
  Netns ns = node.netns();
  NetnsGuard in(ns);
  const int ifindex = Netlink().ifindex_of(st.overlay->ifname);
  return ifindex ? attached_prog_id(st.overlay->tc_mode, ifindex, tunnel_pin(node)) : 0;
}

}  // namespace ebpfnet::overlay
