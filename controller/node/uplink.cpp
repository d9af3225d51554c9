#include "uplink.hpp"

#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/netlink.hpp"
#include "endpoints.hpp"
#include "services.hpp"
#include "marks.hpp"

namespace ebpfnet::uplink {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

void check_port(uint16_t port, const char* what) {
  if (port == 0) throw Error(Errc::usage, std::string(what) + " 0 is not a port");
}

}  // namespace

uint8_t proto_number(const std::string& proto) {
  if (proto == "tcp") return IPPROTO_TCP;
  if (proto == "udp") return IPPROTO_UDP;
  throw Error(Errc::usage, "protocol '" + proto + "' is not tcp or udp");
}

UplinkRecord create_sandbox(NodeTxn& txn, const std::string& outside, bool dual_stack) {
  const std::string& node = txn.node().name();
  bool join = !outside.empty();
  std::string out_name = join ? outside : node + "-out";
  validate_name("outside namespace", out_name);
  if (join && !netns::exists(out_name))
    throw Error(Errc::not_found, "outside namespace '" + out_name + "' does not exist");
  if (!join) {
    netns::add(out_name);
    txn.undo("netns " + out_name, [out_name] { netns::del(out_name); });
  }
  Netns out = Netns::open_named(out_name);
  if (!join) marks::mark_netns(out, marks::of(txn.node()));
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
  auto peer = nl_out.link(leg);
  if (!peer) throw Error(Errc::failed, "the outside end of the uplink vanished");
  if (dual_stack) {
    // Only the addresses given below: no link-local, so no DAD or router solicitation.
    nl_node.no_ipv6_addresses(uplink);
    nl_out.no_ipv6_addresses(peer->ifindex);
  } else {
    netns::write_sysctl(ns, "net/ipv6/conf/eth0/disable_ipv6", "1");
    netns::write_sysctl(out, "net/ipv6/conf/" + leg + "/disable_ipv6", "1");
  }
  if (!join) {
    if (auto lo = nl_out.link("lo")) {
      nl_out.set_up(lo->ifindex);
      nl_out.add_address({lo->ifindex, ip(kSandboxServerIp), 32});
      if (dual_stack) nl_out.add_address6({lo->ifindex, *Ipv6::parse(kSandboxServerIp6), 128});
    }
  }
  if (dual_stack) {
    auto transfer = [n](const char* a) {  // fd18:0:N::
      Ipv6::Bytes b = Ipv6::parse(a)->bytes();
      b[5] = static_cast<uint8_t>(n);
      return Ipv6(b);
    };
    const Ipv6 out6 = transfer(kSandboxOutsideIp6), up6 = transfer(kSandboxUplinkIp6);
    nl_out.add_address6({peer->ifindex, out6, 64});
    nl_node.add_address6({uplink, up6, 64});
  }
  nl_out.add_address({peer->ifindex, out_ip, 24});
  nl_out.set_up(peer->ifindex);
  nl_node.add_address({uplink, up_ip, 24});
  nl_node.set_up(uplink);
  nl_node.add_route({{Ipv4(0), 0}, out_ip, uplink, std::nullopt, false});
  if (dual_stack) {
    Ipv6::Bytes out6 = Ipv6::parse(kSandboxOutsideIp6)->bytes();
    out6[5] = static_cast<uint8_t>(n);
    nl_node.add_route6({Ipv6Cidr{Ipv6(), 0}, Ipv6(out6), uplink});
  }
  return join ? UplinkRecord{"eth0", outside, TcMode::tcx, false} : UplinkRecord{"eth0", out_name, TcMode::tcx, true};
}

void write_config(NodeTxn& txn, DatapathMaps& maps) {
  const NodeState& st = txn.state();
  NodeConfig cfg;
  if (st.uplink) {
    Netlink nl = Netlink::in(txn.node().netns());
    auto link = nl.link(st.uplink->ifname);
    if (!link)
      throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " does not exist in node " +
                                       txn.node().name());
    auto addrs = nl.addresses(link->ifindex);
    if (addrs.empty())
      throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " has no IPv4 address to masquerade as");
    cfg[EBPFNET_CFG_UPLINK_IFINDEX] = static_cast<uint32_t>(link->ifindex);
    cfg[EBPFNET_CFG_UPLINK_IP] = addrs.front().ip.be();
  }
  // The published map follows the state (after a reload it starts empty).
  for (const auto& p : st.published)
    if (auto e = txn.endpoints().get(p.endpoint))
      maps.put_published({proto_number(p.proto), p.port, e->ip, p.target_port});
  for (const auto& r : st.routes) maps.put_routed(r.dst);
  if (st.native_cidr) maps.put_routed(*st.native_cidr);
  cfg[EBPFNET_CFG_NAT_PORT_MIN] = kNatPortMin;
  cfg[EBPFNET_CFG_NAT_PORT_MAX] = kNatPortMax;
  cfg[EBPFNET_CFG_PUBLISHED] = st.published.size();
  cfg[EBPFNET_CFG_CT_TIMEOUT_SYN] = st.ct_timeouts.syn;
  cfg[EBPFNET_CFG_CT_TIMEOUT_TCP] = st.ct_timeouts.tcp;
  cfg[EBPFNET_CFG_CT_TIMEOUT_CLOSING] = st.ct_timeouts.closing;
  cfg[EBPFNET_CFG_CT_TIMEOUT_UDP] = st.ct_timeouts.udp;
  cfg[EBPFNET_CFG_CT_TIMEOUT_ICMP] = st.ct_timeouts.icmp;
  cfg[EBPFNET_CFG_POLICIES] = txn.endpoints().policed();
  cfg[EBPFNET_CFG_SERVICES] = txn.services().key_count();
  if (auto gw6 = st.gateway6()) {
    std::memcpy(&cfg[EBPFNET_CFG_GATEWAY6_HI], gw6->bytes().data(), 8);
    std::memcpy(&cfg[EBPFNET_CFG_GATEWAY6_LO], gw6->bytes().data() + 8, 8);
  }
  if (st.overlay) {
    // Resolved in the node's namespace: the device is the node's.
    const int tunnel = Netlink::in(txn.node().netns()).ifindex_of(st.overlay->ifname);
    cfg[EBPFNET_CFG_TUNNEL_IFINDEX] = static_cast<uint32_t>(tunnel);
    cfg[EBPFNET_CFG_TUNNEL_VNI] = st.overlay->vni;
  }
  maps.write_config(cfg);
}

void expose(NodeTxn& txn, const PublishRecord& p) {
  const uint8_t proto = proto_number(p.proto);
  check_port(p.target_port, "endpoint port");
  check_port(p.port, "published port");
  NodeState& st = txn.state();
  const EndpointRecord e = txn.endpoint(p.endpoint);
  if (!st.uplink)
    throw Error(Errc::usage, "node '" + txn.node().name() + "' has no uplink (attach --uplink IFNAME)");
  for (const auto& q : st.published)
    if (q.proto == p.proto && q.port == p.port)
      throw Error(Errc::exists, p.proto + " port " + std::to_string(p.port) + " is already published for " +
                                    q.endpoint + ":" + std::to_string(q.target_port));
  if (auto v = txn.services().at_node_port(p.port, p.proto))
    throw Error(Errc::exists, p.proto + " port " + std::to_string(p.port) + " is the node port of service '" + *v + "'");
  DatapathMaps& maps = txn.maps();
  txn.journal({.op = "expose"});
  txn.step("publish");
  txn.undo("config", [&maps, before = maps.read_config()] { maps.write_config(before); });
  maps.put_published({proto, p.port, e.ip, p.target_port});
  txn.undo("published port", [&maps, proto, port = p.port] { maps.delete_published(proto, port); });
  st.published.push_back(p);
  write_config(txn, maps);
  txn.commit();
}

void unexpose(NodeTxn& txn, const std::string& endpoint, const std::string& proto, uint16_t target_port,
              std::optional<uint16_t> port) {
  const uint8_t number = proto_number(proto);
  NodeState& st = txn.state();
  txn.endpoint(endpoint);
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
  DatapathMaps* maps = txn.maps_if_attached();
  txn.journal({.op = "unexpose", .unpublishing = {*it}});
  txn.step("unpublish");
  if (maps) {
    maps->delete_published(number, it->port);
    maps->ct_forget_published(number, it->port);
  }
  st.published.erase(it);
  if (maps) write_config(txn, *maps);
  txn.commit();
}

void unpublish_endpoint(NodeTxn& txn, const EndpointRecord& e, DatapathMaps* maps) {
  NodeState& st = txn.state();
  const size_t published = st.published.size();
  std::erase_if(st.published, [&](const PublishRecord& p) {
    if (p.endpoint != e.name) return false;
    if (maps) maps->delete_published(proto_number(p.proto), p.port);
    return true;
  });
  if (maps && st.published.size() != published) write_config(txn, *maps);
}

}  // namespace ebpfnet::uplink
