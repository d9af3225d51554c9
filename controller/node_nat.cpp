// The node's uplink, published ports and conntrack: the NAT half of the facade.
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/tc_attach.hpp"

namespace ebpfnet {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

uint8_t proto_number(const std::string& proto) {
  if (proto == "tcp") return IPPROTO_TCP;
  if (proto == "udp") return IPPROTO_UDP;
  throw Error(Errc::usage, "protocol '" + proto + "' is not tcp or udp");
}

void check_port(uint16_t port, const char* what) {
  if (port == 0) throw Error(Errc::usage, std::string(what) + " 0 is not a port");
}

}  // namespace

void Node::create_sandbox_uplink(const std::string& node, const std::string& outside,
                                 Undo& undo) {
  bool join = !outside.empty();
  std::string out_name = join ? outside : node + "-out";
  validate_name("outside namespace", out_name);
  if (join && !netns::exists(out_name))
    throw Error(Errc::not_found, "outside namespace '" + out_name + "' does not exist");
  if (!join) {
    netns::add(out_name);
    undo.push("netns " + out_name, [out_name] { netns::del(out_name); });
  }
  Netns out = Netns::open_named(out_name);
  Netns ns = Netns::open_named(node);
  Netlink nl_out = Netlink::in(out);
  Netlink nl_node = Netlink::in(ns);

  // Each node on an outside gets its own transfer net 198.18.N.0/24.
  uint32_t n = 0;
  for (const auto& a : nl_out.addresses())
    if ((a.ip.host() >> 16) == (198u << 8 | 18u)) n = std::max(n, ((a.ip.host() >> 8) & 0xff) + 1);
  if (n > 255) throw Error(Errc::exhausted, "outside namespace '" + out_name + "' has no free transfer net");
  Ipv4 base(ip(kSandboxOutsideIp).host() + (n << 8));
  Ipv4 out_ip = base, up_ip(base.host() + 1);

  // No route here leads anywhere but the sandbox's own namespaces.
  std::string leg = join ? host_ifname("up-" + node) : "eth0";
  int uplink = nl_node.create_veth({"eth0", random_mac(), leg, random_mac(), out.fd()});
  // Undone with the node's namespace, which takes the pair with it.
  netns::write_sysctl(ns, "net/ipv6/conf/eth0/disable_ipv6", "1");
  netns::write_sysctl(out, "net/ipv6/conf/" + leg + "/disable_ipv6", "1");
  auto peer = nl_out.link(leg);
  if (!peer) throw Error(Errc::failed, "the outside end of the uplink vanished");
  if (!join) {
    if (auto lo = nl_out.link("lo")) {
      nl_out.set_up(lo->ifindex);
      nl_out.add_address({lo->ifindex, ip(kSandboxServerIp), 32});
    }
  }
  nl_out.add_address({peer->ifindex, out_ip, 24});
  nl_out.set_up(peer->ifindex);
  nl_node.add_address({uplink, up_ip, 24});
  nl_node.set_up(uplink);
  nl_node.add_route({{Ipv4(0), 0}, out_ip, uplink, std::nullopt, false});
}

void Node::write_config_locked(const NodeState& st, DatapathMaps& maps) {
  NodeConfig cfg;
  if (st.uplink) {
    Netlink nl = Netlink::in(netns());
    auto link = nl.link(st.uplink->ifname);
    if (!link)
      throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " does not exist in node " + name_);
    auto addrs = nl.addresses(link->ifindex);
    if (addrs.empty())
      throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " has no IPv4 address to masquerade as");
    cfg[EBPFNET_CFG_UPLINK_IFINDEX] = static_cast<uint32_t>(link->ifindex);
    cfg[EBPFNET_CFG_UPLINK_IP] = addrs.front().ip.be();
  }
  // The published map follows the state (after a reload it starts empty).
  for (const auto& p : st.published)
    for (const auto& e : st.endpoints)
      if (e.name == p.endpoint) maps.put_published({proto_number(p.proto), p.port, e.ip, p.target_port});
  for (const auto& r : st.routes) maps.put_routed(r.dst);
  cfg[EBPFNET_CFG_NAT_PORT_MIN] = kNatPortMin;
  cfg[EBPFNET_CFG_NAT_PORT_MAX] = kNatPortMax;
  cfg[EBPFNET_CFG_PUBLISHED] = st.published.size();
  cfg[EBPFNET_CFG_CT_TIMEOUT_SYN] = st.ct_timeouts.syn;
  cfg[EBPFNET_CFG_CT_TIMEOUT_TCP] = st.ct_timeouts.tcp;
  cfg[EBPFNET_CFG_CT_TIMEOUT_CLOSING] = st.ct_timeouts.closing;
  cfg[EBPFNET_CFG_CT_TIMEOUT_UDP] = st.ct_timeouts.udp;
  cfg[EBPFNET_CFG_CT_TIMEOUT_ICMP] = st.ct_timeouts.icmp;
  cfg[EBPFNET_CFG_POLICIES] = st.policed_endpoints();
  maps.write_config(cfg);
}

void Node::expose(const PublishRecord& p) {
  uint8_t proto = proto_number(p.proto);
  check_port(p.target_port, "endpoint port");
  check_port(p.port, "published port");
  auto lock = store_.lock();
  NodeState st = store_.load();
  const EndpointRecord* e = st.find(p.endpoint);
  if (!e) throw Error(Errc::not_found, "endpoint '" + p.endpoint + "' does not exist on node " + name_);
  if (!st.uplink)
    throw Error(Errc::usage, "node '" + name_ + "' has no uplink (attach --uplink IFNAME)");
  for (const auto& q : st.published)
    if (q.proto == p.proto && q.port == p.port)
      throw Error(Errc::exists, p.proto + " port " + std::to_string(p.port) +
                                    " is already published for " + q.endpoint + ":" +
                                    std::to_string(q.target_port));
  auto dp = Datapath::open_pinned(pin_dir());
  if (!dp) throw Error(Errc::not_found, "datapath of node " + name_ + " is not attached");
  st.published.push_back(p);
  dp->maps().put_published({proto, p.port, e->ip, p.target_port});
  try {
    write_config_locked(st, dp->maps());
    store_.save(st);
  } catch (...) {
    dp->maps().delete_published(proto, p.port);
    st.published.pop_back();
    write_config_locked(st, dp->maps());
    throw;
  }
}

void Node::unexpose(const std::string& endpoint, const std::string& proto, uint16_t target_port,
                    std::optional<uint16_t> port) {
  uint8_t number = proto_number(proto);
  auto lock = store_.lock();
  NodeState st = store_.load();
  if (!st.find(endpoint))
    throw Error(Errc::not_found, "endpoint '" + endpoint + "' does not exist on node " + name_);
  auto matches = [&](const PublishRecord& p) {
    return p.endpoint == endpoint && p.proto == proto && p.target_port == target_port &&
           (!port || p.port == *port);
  };
  auto it = std::find_if(st.published.begin(), st.published.end(), matches);
  if (it == st.published.end())
    throw Error(Errc::not_found, endpoint + " " + std::to_string(target_port) + "/" + proto +
                                     " is not published" +
                                     (port ? " on port " + std::to_string(*port) : ""));
  if (std::count_if(st.published.begin(), st.published.end(), matches) > 1)
    throw Error(Errc::usage, endpoint + " " + std::to_string(target_port) + "/" + proto +
                                 " is published on several ports; say which with --port");
  auto maps = Datapath::open_pinned_maps(pin_dir());
  if (maps) maps->delete_published(number, it->port);
  st.published.erase(it);
  if (maps) write_config_locked(st, *maps);
  store_.save(st);
}

std::vector<PublishRecord> Node::published() {
  auto lock = store_.lock();
  return store_.load().published;
}

std::vector<CtFlow> Node::conntrack() {
  auto lock = store_.lock();
  auto maps = attached_maps();
  return maps.ct_flows();
}

size_t Node::conntrack_flush() {
  auto lock = store_.lock();
  auto maps = attached_maps();
  return maps.ct_flush();
}

}  // namespace ebpfnet

namespace ebpfnet {

void Node::route_add(const RouteRecord& r) {
  auto lock = store_.lock();
  NodeState st = store_.load();
  if (!st.uplink)
    throw Error(Errc::usage, "node '" + name_ + "' has no uplink (attach --uplink IFNAME)");
  if (r.dst.contains(st.cidr.network) || st.cidr.contains(r.dst.network))
    throw Error(Errc::usage, "route " + r.dst.str() + " overlaps the node's pool " + st.cidr.str());
  for (const auto& q : st.routes)
    if (q.dst == r.dst) throw Error(Errc::exists, "a route to " + r.dst.str() + " exists already");
  auto maps = attached_maps();

  Netlink nl = Netlink::in(netns());
  Undo undo;
  nl.add_route({r.dst, r.via, 0, std::nullopt, false});
  undo.push("route", [&nl, r] { nl.del_route({r.dst, r.via, 0, std::nullopt, false}); });
  maps.put_routed(r.dst);
  undo.push("routed prefix", [&maps, r] { maps.delete_routed(r.dst); });
  // A sandbox node tells its outside (the router) how to reach its own pool.
  if (!st.uplink->outside.empty()) advertise_pool_locked(st);
  st.routes.push_back(r);
  store_.save(st);
  undo.commit();
}

void Node::advertise_pool_locked(const NodeState& st) {
  Netns out = Netns::open_named(st.uplink->outside);
  Netlink nl = Netlink::in(netns());
  auto link = nl.link(st.uplink->ifname);
  auto addrs = link ? nl.addresses(link->ifindex) : std::vector<Address>{};
  if (addrs.empty()) throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " has no address");
  netns::write_sysctl(out, "net/ipv4/ip_forward", "1");
  Netlink nl_out = Netlink::in(out);
  for (const auto& r : nl_out.routes())
    if (r.dst == st.cidr) return;
  nl_out.add_route({st.cidr, addrs.front().ip, 0, std::nullopt, false});
}

void Node::route_del(const Ipv4Cidr& dst) {
  auto lock = store_.lock();
  NodeState st = store_.load();
  auto it = std::find_if(st.routes.begin(), st.routes.end(),
                         [&](const RouteRecord& r) { return r.dst == dst; });
  if (it == st.routes.end()) throw Error(Errc::not_found, "no route to " + dst.str());
  auto maps = Datapath::open_pinned_maps(pin_dir());
  if (maps) maps->delete_routed(dst);
  try {
    Netlink::in(netns()).del_route({it->dst, it->via, 0, std::nullopt, false});
  } catch (const Error& e) {
    if (e.code() != Errc::not_found) throw;
  }
  st.routes.erase(it);
  store_.save(st);
}

std::vector<RouteRecord> Node::routes() {
  auto lock = store_.lock();
  return store_.load().routes;
}

}  // namespace ebpfnet
