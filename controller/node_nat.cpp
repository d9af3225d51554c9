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

void Node::create_sandbox_uplink(const std::string& node, Undo& undo) {
  std::string outside = node + "-out";
  validate_name("outside namespace", outside);
  netns::add(outside);
  undo.push("netns " + outside, [outside] { netns::del(outside); });
  Netns out = Netns::open_named(outside);
  Netns ns = Netns::open_named(node);
  Netlink nl_out = Netlink::in(out);
  Netlink nl_node = Netlink::in(ns);
  // No route here leads anywhere but the other sandbox namespace.
  int uplink = nl_node.create_veth({"eth0", random_mac(), "eth0", random_mac(), out.fd()});
  for (const auto* n : {&ns, &out}) {
    netns::write_sysctl(*n, "net/ipv6/conf/eth0/disable_ipv6", "1");
  }
  auto peer = nl_out.link("eth0");
  if (!peer) throw Error(Errc::failed, "the outside end of the uplink vanished");
  if (auto lo = nl_out.link("lo")) {
    nl_out.set_up(lo->ifindex);
    nl_out.add_address({lo->ifindex, ip(kSandboxServerIp), 32});
  }
  nl_out.add_address({peer->ifindex, ip(kSandboxOutsideIp), 24});
  nl_out.set_up(peer->ifindex);
  nl_node.add_address({uplink, ip(kSandboxUplinkIp), 24});
  nl_node.set_up(uplink);
  nl_node.add_route({{Ipv4(0), 0}, ip(kSandboxOutsideIp), uplink, std::nullopt, false});
}

void Node::attach_uplink_locked(NodeState& st, Datapath& dp, AttachResult& r) {
  if (!st.uplink) return;
  Netns ns = netns();
  NetnsGuard in(ns);
  auto link = Netlink().link(st.uplink->ifname);
  if (!link)
    throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " does not exist in node " + name_);
  if (attached_prog_id(st.uplink->tc_mode, link->ifindex, uplink_pin()) ==
      dp.from_uplink_info().id)
    return;
  st.uplink->tc_mode = attach_tc_ingress(dp.from_uplink_fd(), link->ifindex, st.tc_mode, uplink_pin());
  if (!r.loaded) ++r.links_repaired;
  spdlog::info("node {}: from_uplink attached to {} ({})", name_, st.uplink->ifname,
               to_string(st.uplink->tc_mode));
}

void Node::write_config_locked(const NodeState& st, DatapathMaps& maps) {
  ebpfnet_config cfg{};
  if (st.uplink) {
    Netlink nl = Netlink::in(netns());
    auto link = nl.link(st.uplink->ifname);
    if (!link)
      throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " does not exist in node " + name_);
    auto addrs = nl.addresses(link->ifindex);
    if (addrs.empty())
      throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " has no IPv4 address to masquerade as");
    cfg.uplink_ifindex = static_cast<__u32>(link->ifindex);
    cfg.uplink_ip = addrs.front().ip.be();
  }
  // The published map follows the state (after a reload it starts empty).
  for (const auto& p : st.published)
    for (const auto& e : st.endpoints)
      if (e.name == p.endpoint) maps.put_published({proto_number(p.proto), p.port, e.ip, p.target_port});
  cfg.nat_port_min = kNatPortMin;
  cfg.nat_port_max = kNatPortMax;
  cfg.published = static_cast<__u32>(st.published.size());
  cfg.ct_timeout_syn = st.ct_timeouts.syn;
  cfg.ct_timeout_tcp = st.ct_timeouts.tcp;
  cfg.ct_timeout_closing = st.ct_timeouts.closing;
  cfg.ct_timeout_udp = st.ct_timeouts.udp;
  cfg.ct_timeout_icmp = st.ct_timeouts.icmp;
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

void Node::unexpose(const std::string& endpoint, const std::string& proto, uint16_t target_port) {
  uint8_t number = proto_number(proto);
  auto lock = store_.lock();
  NodeState st = store_.load();
  if (!st.find(endpoint))
    throw Error(Errc::not_found, "endpoint '" + endpoint + "' does not exist on node " + name_);
  auto it = std::find_if(st.published.begin(), st.published.end(), [&](const PublishRecord& p) {
    return p.endpoint == endpoint && p.proto == proto && p.target_port == target_port;
  });
  if (it == st.published.end())
    throw Error(Errc::not_found, endpoint + " " + std::to_string(target_port) + "/" + proto +
                                     " is not published");
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
  auto maps = Datapath::open_pinned_maps(pin_dir());
  if (!maps) throw Error(Errc::not_found, "datapath of node " + name_ + " is not attached");
  return maps->ct_flows();
}

size_t Node::conntrack_flush() {
  auto lock = store_.lock();
  auto maps = Datapath::open_pinned_maps(pin_dir());
  if (!maps) throw Error(Errc::not_found, "datapath of node " + name_ + " is not attached");
  return maps->ct_flush();
}

}  // namespace ebpfnet
