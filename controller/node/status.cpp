#include "status.hpp"

#include <map>

#include <bpf/bpf.h>

#include "ebpfnet/netlink.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "ebpfnet/xdp_attach.hpp"
#include "endpoints.hpp"
#include "overlay.hpp"
#include "pins.hpp"
#include "socket_lb.hpp"

namespace ebpfnet::status {

NodeStatus read(NodeTxn& txn, const std::function<void(const NodeStatus&)>& head, const EndpointSink& each) {
  const Node& node = txn.node();
  NodeStatus s;
  s.state = txn.state();
  s.services = txn.services().size();
  s.endpoint_count = txn.endpoints().size();
  s.pin_dir = node.pin_dir();
  s.binary_build = Datapath::build_id();
  MapFds pins = Datapath::open_map_pins(s.pin_dir);
  s.abi = Datapath::abi_of(pins);
  s.build = Datapath::build_of(pins);
  auto dp = Datapath::open_pinned(s.pin_dir, true);
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
    // Like from_uplink, only a node with an uplink has a use for it.
    if (s.state.uplink && dp->uplink_prefilter_fd() >= 0) s.prefilter_prog = dp->uplink_prefilter_info();
    if (s.state.overlay && dp->from_tunnel_fd() >= 0) s.tunnel_prog = dp->from_tunnel_info();
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
  // An attachment is stale when it runs another program than the pinned
  // one, or the pinned one is not this binary's.
  const bool pinned_current = s.build == s.binary_build;
  // Every endpoint runs the same program: one lookup each.
  std::map<uint32_t, std::optional<ProgInfo>> progs;
  auto attachment = [&](std::string owner, std::string ifname, TcMode mode, uint32_t id, uint32_t want) {
    AttachmentView a{std::move(owner), std::move(ifname), mode, {}, true};
    auto known = progs.find(id);
    if (known == progs.end()) known = progs.emplace(id, Datapath::prog_info_by_id(id)).first;
    if (known->second) a.prog = *known->second;
    a.stale = id == 0 || id != want || !pinned_current;
    return a;
  };
  auto view = [&](std::string owner, std::string ifname, TcMode mode, uint32_t id, uint32_t want) {
    s.attachments.push_back(attachment(std::move(owner), std::move(ifname), mode, id, want));
  };
  if (s.state.uplink) {
    Netns ns = node.netns();
    NetnsGuard in(ns);
    auto l = Netlink().link(s.state.uplink->ifname);
    uint32_t id = l ? attached_prog_id(s.state.uplink->tc_mode, l->ifindex, uplink_pin(node)) : 0;
    view("uplink", s.state.uplink->ifname, s.state.uplink->tc_mode, id, s.uplink_prog ? s.uplink_prog->id : 0);
    // The prefilter's XDP link exists only while the deny list is not empty.
    const uint32_t xdp = l ? attached_xdp_prog_id(l->ifindex, uplink_xdp_pin(node)) : 0;
    if (xdp || !s.state.prefilter.empty()) {
      view("prefilter", s.state.uplink->ifname, s.state.uplink->tc_mode, xdp,
           s.prefilter_prog ? s.prefilter_prog->id : 0);
      s.attachments.back().xdp = s.state.uplink->xdp.value_or(XdpMode::native);
    }
  }
  if (s.state.overlay)
    view("overlay", s.state.overlay->ifname, s.state.overlay->tc_mode, overlay::attached_prog(node, s.state),
         s.tunnel_prog ? s.tunnel_prog->id : 0);
  for (const auto& l : Netlink::in(node.netns()).links("bridge")) s.bridges.push_back(l.name);
  s.socket_lb = socket_lb::status(node, s.state);
  head(s);
  endpoints::each_view(node, txn.endpoints(), ours ? &*dp : nullptr, [&](const EndpointView& v) {
    each(v, attachment(v.rec.name, v.rec.host_ifname, v.rec.tc_mode, v.prog_id, s.prog ? s.prog->id : 0));
  });
  return s;
}

}  // namespace ebpfnet::status
