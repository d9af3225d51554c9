// CHECK: is the container's attachment still what ADD made? Every
// difference found is reported at once, so one CHECK tells the whole story.
#include <sys/stat.h>

#include <algorithm>

#include "cni.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/tc_attach.hpp"

namespace ebpfnet::cni {
namespace {

using Problems = std::vector<std::string>;

void check_container_side(const Netns& ns, const EndpointRecord& rec, Ipv4 gw, Problems& p) {
  Netlink nl = Netlink::in(ns);
  auto link = nl.link(rec.ifname);
  if (!link) {
    p.push_back("interface " + rec.ifname + " is missing in the container");
    return;
  }
  if (link->mac != rec.mac)
    p.push_back(rec.ifname + " has MAC " + mac_str(link->mac) + ", not " + mac_str(rec.mac));
  if (!link->up) p.push_back(rec.ifname + " is down");
  auto addrs = nl.addresses(link->ifindex);
  if (std::none_of(addrs.begin(), addrs.end(),
                   [&](const Address& a) { return a.ip == rec.ip && a.prefix == 32; }))
    p.push_back(rec.ifname + " lacks its address " + rec.ip.str() + "/32");
  auto routes = nl.routes(link->ifindex);
  auto has_route = [&](Ipv4Cidr dst, std::optional<Ipv4> via) {
    return std::any_of(routes.begin(), routes.end(),
                       [&](const Route& r) { return r.dst == dst && r.via == via; });
  };
  if (!has_route({gw, 32}, std::nullopt))
    p.push_back("the route to the gateway " + gw.str() + " on " + rec.ifname + " is missing");
  if (!has_route({Ipv4(0), 0}, gw))
    p.push_back("the default route via " + gw.str() + " on " + rec.ifname + " is missing");
}

void check_node_side(Node& node, const EndpointRecord& rec, Problems& p) {
  auto link = Netlink::in(node.netns()).link(rec.host_ifname);
  if (!link || link->ifindex != rec.host_ifindex) {
    p.push_back("the node-side veth " + rec.host_ifname + " is missing");
    return;
  }
  auto maps = Datapath::open_pinned_maps(node.pin_dir());
  auto entry = maps ? maps->endpoint_by_ip(rec.ip) : std::nullopt;
  if (!entry || static_cast<int>(entry->ifindex) != rec.host_ifindex)
    p.push_back("the datapath has no entry for " + rec.ip.str() + " on " + rec.host_ifname);
  auto views = node.endpoints();
  auto v = std::find_if(views.begin(), views.end(),
                        [&](const EndpointView& x) { return x.rec.name == rec.name; });
  if (v == views.end() || v->prog_id == 0)
    p.push_back("no program is attached to " + rec.host_ifname);
}

// The spec: the plugin consults prevResult for what it expects.
void check_prev_result(const json& prev, const EndpointRecord& rec, Problems& p) {
  if (!prev.is_object()) return;
  std::string want = rec.ip.str() + "/32";
  auto ips = prev.find("ips");
  bool listed = ips != prev.end() && ips->is_array() &&
                std::any_of(ips->begin(), ips->end(), [&](const json& ip) {
                  return ip.is_object() && ip.contains("address") && ip["address"] == want;
                });
  if (!listed) p.push_back("prevResult does not list the address " + want);
}

}  // namespace

void cmd_check(const Invocation& inv, const NetConf& conf) {
  struct stat st{};
  if (::stat(inv.netns.c_str(), &st) != 0)
    throw CniError(kUnknownContainer, "network namespace " + inv.netns + " does not exist");
  Node node(conf.env(), conf.node);
  auto state = node.load_state();
  auto rec = node.find_container_endpoint(inv.container());
  if (!state || !rec)
    throw CniError(kCheckFailed, "no endpoint for container " + inv.container_id + " " +
                                     inv.ifname + " on node " + node.name());
  Problems problems;
  Netns ns = Netns::open_path(inv.netns);
  if (!rec->netns_path.empty() && ::stat(rec->netns_path.c_str(), &st) == 0 &&
      !Netns::open_path(rec->netns_path).same_as(ns))
    problems.push_back("CNI_NETNS is not the namespace ADD wired (" + rec->netns_path + ")");
  check_container_side(ns, *rec, state->gateway(), problems);
  check_node_side(node, *rec, problems);
  check_prev_result(conf.prev_result, *rec, problems);
  if (problems.empty()) return;
  std::string msg;
  for (const auto& s : problems) msg += (msg.empty() ? "" : "; ") + s;
  throw CniError(kCheckFailed, "endpoint " + rec->name + " of container " + inv.container_id +
                                   " " + inv.ifname + ": " + msg);
}

}  // namespace ebpfnet::cni
