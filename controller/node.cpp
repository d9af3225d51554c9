#include "ebpfnet/node.hpp"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <netinet/in.h>

#include <algorithm>
#include <set>

#include "ebpfnet/error.hpp"
#include "ebpfnet/ipam.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/policy_maps.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "ebpfnet/undo.hpp"

namespace ebpfnet {
namespace {

void checkpoint(const Checkpoint& cp, std::string_view step) {
  if (cp) cp(step);
}

// IPv6 is not forwarded yet; keeping it off the veths keeps router
// solicitations and DAD from showing up as drops.
void disable_ipv6(const Netns& ns, const std::string& ifname) {
  try {
    netns::write_sysctl(ns, "net/ipv6/conf/" + ifname + "/disable_ipv6", "1");
  } catch (const Error& e) {
    if (e.code() != Errc::not_found) throw;  // a kernel without IPv6 is fine
  }
}

size_t count_keys(int fd, uint32_t key_size) {
  std::vector<char> key(key_size), next(key_size);
  size_t n = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    ++n;
    key.swap(next);
    prev = key.data();
  }
  return n;
}

void validate_node_name(const std::string& name) {
  validate_name("node", name);
}

}  // namespace

Node::Node(Env env, std::string name)
    : env_(std::move(env)), name_(std::move(name)), store_(env_.state_root, name_) {
  validate_node_name(name_);
}

Netns Node::netns() const {
  if (is_root()) return Netns::open_path("/proc/1/ns/net");
  return Netns::open_named(name_);
}

std::filesystem::path Node::link_pin(const EndpointRecord& e) const {
  return pin_dir() / "links" / e.host_ifname;
}

void Node::create(const Env& env, const std::string& name, Ipv4Cidr cidr, const Checkpoint& cp,
                  bool uplink_sandbox, const std::string& outside) {
  validate_node_name(name);
  if (name == kRootNode)
    throw Error(Errc::usage, "'root' names the root namespace; use `attach --cidr` for it");
  if (cidr.prefix > 30 || cidr.prefix < 8)
    throw Error(Errc::usage, "pool " + cidr.str() + " must be between /8 and /30");
  StateStore store(env.state_root, name);
  bool had_dir = std::filesystem::exists(store.dir());
  Undo undo;
  if (!had_dir) undo.push("state directory", [&] { store.remove(); });
  auto lock = store.lock(true);
  if (store.exists()) throw Error(Errc::exists, "node '" + name + "' already exists");
  checkpoint(cp, "netns");
  netns::add(name);
  undo.push("netns " + name, [&] { netns::del(name); });
  checkpoint(cp, "loopback");
  Netns ns = Netns::open_named(name);
  Netlink nl = Netlink::in(ns);
  if (auto lo = nl.link("lo")) nl.set_up(lo->ifindex);
  NodeState st;
  if (uplink_sandbox) {
    checkpoint(cp, "uplink");
    create_sandbox_uplink(name, outside, undo);
    st.uplink = outside.empty() ? UplinkRecord{"eth0", name + "-out", TcMode::tcx, true}
                                : UplinkRecord{"eth0", outside, TcMode::tcx, false};
  }
  checkpoint(cp, "state");
  st.name = name;
  st.sandbox = true;
  st.cidr = cidr;
  store.save(st);
  undo.commit();
}

std::vector<std::string> Node::list(const Env& env) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(env.state_root, ec))
    if (std::filesystem::exists(d.path() / "state.json")) out.push_back(d.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

void Node::destroy(const Env& env, const std::string& name) {
  Node node(env, name);
  auto lock = node.store_.lock();
  if (!node.store_.exists()) throw Error(Errc::not_found, "node '" + name + "' does not exist");
  NodeState st = node.store_.load();
  // Maps of another ABI go with their pins; their entries need no removal.
  auto maps = Datapath::abi_of(Datapath::open_map_pins(node.pin_dir())) == EBPFNET_ABI_VERSION
                  ? Datapath::open_pinned_maps(node.pin_dir())
                  : std::nullopt;
  for (const auto& e : st.endpoints) node.remove_endpoint_parts(st, e, maps ? &*maps : nullptr);
  st.endpoints.clear();
  node.detach_locked(st);
  if (st.sandbox && netns::exists(name)) netns::del(name);
  if (st.uplink && st.uplink->outside_owned && !st.uplink->outside.empty() &&
      netns::exists(st.uplink->outside))
    netns::del(st.uplink->outside);
  node.store_.remove();
}

EndpointRecord Node::add_endpoint(const EndpointRequest& req, const Checkpoint& cp) {
  return add_endpoints({req}, cp).front();
}

std::vector<EndpointRecord> Node::add_endpoints(const std::vector<EndpointRequest>& reqs,
                                                const Checkpoint& cp) {
  std::set<std::string> names;
  for (const auto& req : reqs) {
    validate_name("endpoint", req.name);
    validate_ifname(req.ifname);
    if (!names.insert(req.name).second)
      throw Error(Errc::usage, "endpoint '" + req.name + "' is given twice");
  }
  ensure_bpffs();
  auto lock = store_.lock();
  NodeState st = store_.load();
  for (const auto& req : reqs) {
    if (st.find(req.name))
      throw Error(Errc::exists, "endpoint '" + req.name + "' already exists on node " + name_);
    if (!req.netns && netns::exists(req.name))
      throw Error(Errc::exists, "network namespace '" + req.name +
                                    "' already exists; pass --netns " + req.name + " to wire it");
  }

  std::set<Ipv4> used;
  for (const auto& e : st.endpoints) used.insert(e.ip);
  Ipam ipam(st.cidr, used, st.last_allocated);
  std::vector<Ipv4> ips;
  for (const auto& req : reqs) ips.push_back(req.ip ? (ipam.reserve(*req.ip), *req.ip) : ipam.allocate());

  const uint32_t abi = Datapath::abi_of(Datapath::open_map_pins(pin_dir()));
  auto dp = abi == EBPFNET_ABI_VERSION ? Datapath::open_pinned(pin_dir()) : std::nullopt;
  if (!dp || !st.attached) {
    spdlog::info("node {}: datapath {}; attaching", name_,
                 abi && abi < EBPFNET_ABI_VERSION ? "of an older ABI" : "not attached yet");
    attach_locked(st, {});
    dp = Datapath::open_pinned(pin_dir());
    if (!dp) throw Error(Errc::failed, "datapath of node " + name_ + " is not pinned after attach");
  }
  Netns nodens = netns();
  Netlink nl_node = Netlink::in(nodens);
  // Declared after what its steps use, so it runs while they still exist.
  Undo undo;
  std::vector<EndpointRecord> added;
  for (size_t i = 0; i < reqs.size(); ++i)
    added.push_back(wire_endpoint(st, reqs[i], ips[i], *dp, nodens, nl_node, undo, cp));

  checkpoint(cp, "state");
  st.endpoints.insert(st.endpoints.end(), added.begin(), added.end());
  st.last_allocated = ipam.last();
  store_.save(st);
  undo.commit();
  for (const auto& rec : added)
    spdlog::info("node {}: endpoint {} at {} on {} ({})", name_, rec.name, rec.ip.str(), rec.host_ifname,
                 to_string(rec.tc_mode));
  return added;
}

EndpointRecord Node::wire_endpoint(const NodeState& st, const EndpointRequest& req, Ipv4 ip, Datapath& dp,
                                   const Netns& nodens, Netlink& nl_node, Undo& undo, const Checkpoint& cp) {
  EndpointRecord rec;
  rec.name = req.name;
  rec.ifname = req.ifname;
  rec.ip = ip;
  rec.container_id = req.container_id;
  rec.cni_network = req.cni_network;

  checkpoint(cp, "netns");
  if (req.netns) {
    rec.netns = *req.netns;
    rec.netns_path = req.netns->rfind("pid:", 0) == 0 ? "/proc/" + req.netns->substr(4) + "/ns/net"
                     : req.netns->find('/') != std::string::npos ? *req.netns
                                                                  : netns::path_of(*req.netns);
  } else {
    netns::add(req.name);
    undo.push("netns " + req.name, [name = req.name] { netns::del(name); });
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

  checkpoint(cp, "veth");
  rec.mac = random_mac();
  rec.host_mac = random_mac();
  try {
    rec.host_ifindex = nl_node.create_veth(
        {rec.host_ifname, rec.host_mac, req.ifname, rec.mac, epns.fd()});
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + " (in netns " + rec.netns + ")");
  }
  undo.push("veth " + rec.host_ifname,
            [&nl_node, idx = rec.host_ifindex] { nl_node.delete_link(idx); });

  checkpoint(cp, "endpoint-config");
  disable_ipv6(epns, req.ifname);
  if (auto lo = nl_ep.link("lo")) nl_ep.set_up(lo->ifindex);
  auto eth = nl_ep.link(req.ifname);
  if (!eth) throw Error(Errc::failed, req.ifname + " is missing in netns " + rec.netns);
  nl_ep.add_address({eth->ifindex, ip, 32});
  nl_ep.set_up(eth->ifindex);
  Ipv4 gw = st.gateway();
  nl_ep.add_route({{gw, 32}, std::nullopt, eth->ifindex, std::nullopt, true});
  nl_ep.add_route({{Ipv4(0), 0}, gw, eth->ifindex, std::nullopt, false});

  checkpoint(cp, "node-config");
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

  checkpoint(cp, "maps");
  dp.maps().put_endpoint(make_endpoint(rec.host_ifindex, ip, rec.mac, rec.host_mac));
  undo.push("map entries", [&dp, idx = rec.host_ifindex, ip] { dp.maps().delete_endpoint(idx, ip); });

  checkpoint(cp, "attach");
  {
    NetnsGuard in(nodens);
    rec.tc_mode = attach_tc_ingress(dp.from_endpoint_fd(), rec.host_ifindex, st.tc_mode, link_pin(rec));
  }
  undo.push("tc attach", [this, &nodens, rec] {
    NetnsGuard in(nodens);
    detach_tc_ingress(rec.tc_mode, rec.host_ifindex, link_pin(rec));
  });

  return rec;
}

DatapathMaps Node::attached_maps() const {
  auto maps = Datapath::open_pinned_maps(pin_dir());
  if (!maps)
    throw Error(Errc::not_found, "node '" + name_ + "' has no datapath attached (ebpfnet --node " + name_ +
                                     " attach)");
  return std::move(*maps);
}

void Node::remove_endpoint_parts(NodeState& st, const EndpointRecord& e, DatapathMaps* maps) {
  // Its published ports go with it.
  size_t published = st.published.size();
  std::erase_if(st.published, [&](const PublishRecord& p) {
    if (p.endpoint != e.name) return false;
    if (maps) maps->delete_published(p.proto == "tcp" ? IPPROTO_TCP : IPPROTO_UDP, p.port);
    return true;
  });
  if (maps && st.published.size() != published) write_config_locked(st, *maps);
  Netns nodens = netns();
  {
    NetnsGuard in(nodens);
    detach_tc_ingress(e.tc_mode, e.host_ifindex, link_pin(e));
  }
  if (maps && e.policy) {
    remove_policy(*maps, e.ip, *e.policy, e.policy_ids);
    maps->write_slot(EBPFNET_CFG_POLICIES, st.policed_endpoints() - 1);
  }
  if (maps) maps->delete_endpoint(e.host_ifindex, e.ip);
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

void Node::del_endpoint(const std::string& name) {
  validate_name("endpoint", name);
  auto lock = store_.lock();
  NodeState st = store_.load();
  EndpointRecord* e = st.find(name);
  if (!e) throw Error(Errc::not_found, "endpoint '" + name + "' does not exist on node " + name_);
  auto maps = Datapath::open_pinned_maps(pin_dir());
  remove_endpoint_parts(st, *e, maps ? &*maps : nullptr);
  st.endpoints.erase(st.endpoints.begin() + (e - st.endpoints.data()));
  store_.save(st);
}

std::vector<EndpointView> Node::views(const NodeState& st, const Datapath* dp) {
  std::vector<EndpointView> out;
  Netns ns = netns();
  for (const auto& e : st.endpoints) {
    EndpointView v{e, std::nullopt, 0};
    if (dp) v.stats = dp->maps().stats(e.host_ifindex);
    {
      NetnsGuard in(ns);
      v.prog_id = attached_prog_id(e.tc_mode, e.host_ifindex, link_pin(e));
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<EndpointView> Node::endpoints() {
  auto lock = store_.lock();
  NodeState st = store_.load();
  // Counters only from maps in this binary's layouts.
  MapFds pins = Datapath::open_map_pins(pin_dir());
  auto dp = Datapath::abi_of(pins) == EBPFNET_ABI_VERSION ? Datapath::open_pinned(pin_dir()) : std::nullopt;
  return views(st, dp ? &*dp : nullptr);
}

NodeStatus Node::status() {
  auto lock = store_.lock();
  NodeStatus s;
  s.state = store_.load();
  s.pin_dir = pin_dir();
  s.binary_build = Datapath::build_id();
  MapFds pins = Datapath::open_map_pins(pin_dir());
  s.abi = Datapath::abi_of(pins);
  s.build = Datapath::build_of(pins);
  auto dp = Datapath::open_pinned(pin_dir(), true);
  // Counters and config are read only in this binary's layouts.
  const bool ours = dp && s.abi == EBPFNET_ABI_VERSION;
  if (dp) {
    s.prog = dp->from_endpoint_info();
    if (ours) {
      NodeConfig cfg = dp->maps().read_config();
      if (cfg[EBPFNET_CFG_UPLINK_IFINDEX]) s.uplink_ip = Ipv4::from_be(static_cast<uint32_t>(cfg[EBPFNET_CFG_UPLINK_IP]));
      s.node_drops = dp->maps().node_drops();
    }
    if (s.state.uplink) s.uplink_prog = dp->from_uplink_info();
    for (size_t i = 0; i < kMapNames.size(); ++i) {
      bpf_map_info info{};
      __u32 len = sizeof(info);
      if (bpf_obj_get_info_by_fd(dp->maps().fd(i), &info, &len) != 0) continue;
      MapInfo m{kMapNames[i], map_type_name(info.type), info.id, info.max_entries, 0};
      if (info.type == BPF_MAP_TYPE_HASH || info.type == BPF_MAP_TYPE_PERCPU_HASH ||
          info.type == BPF_MAP_TYPE_LRU_HASH)
        m.entries = count_keys(dp->maps().fd(i), info.key_size);
      s.maps.push_back(m);
    }
  }
  s.endpoints = views(s.state, ours ? &*dp : nullptr);
  // An attachment is stale when it runs another program than the pinned
  // one, or the pinned one is not this binary's.
  const bool pinned_current = s.build == s.binary_build;
  auto view = [&](std::string owner, std::string ifname, TcMode mode, uint32_t id, uint32_t want) {
    AttachmentView a{std::move(owner), std::move(ifname), mode, {}, true};
    if (auto p = Datapath::prog_info_by_id(id)) a.prog = *p;
    a.stale = id == 0 || id != want || !pinned_current;
    s.attachments.push_back(std::move(a));
  };
  for (const auto& v : s.endpoints)
    view(v.rec.name, v.rec.host_ifname, v.rec.tc_mode, v.prog_id, s.prog ? s.prog->id : 0);
  if (s.state.uplink) {
    Netns ns = netns();
    NetnsGuard in(ns);
    auto l = Netlink().link(s.state.uplink->ifname);
    uint32_t id = l ? attached_prog_id(s.state.uplink->tc_mode, l->ifindex, uplink_pin()) : 0;
    view("uplink", s.state.uplink->ifname, s.state.uplink->tc_mode, id, s.uplink_prog ? s.uplink_prog->id : 0);
  }
  for (const auto& l : Netlink::in(netns()).links())
    if (l.kind == "bridge") s.bridges.push_back(l.name);
  return s;
}

}  // namespace ebpfnet
