// attach: loading the node's datapath, and upgrading a pinned one in place.
// A reload reuses every pinned map whose layout this binary keeps, makes the
// others new (copying conntrack and counters, rewriting the rest from node
// state), switches every attachment to the new programs one atomic swap at a
// time, copies the flows the old programs made meanwhile, and only then
// replaces the pins. Until that last step a failure switches back and leaves
// the old datapath as it was.
#include "datapath.hpp"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "endpoints.hpp"
#include "lifecycle.hpp"
#include "overlay.hpp"
#include "pins.hpp"
#include "policy.hpp"
#include "prefilter.hpp"
#include "services.hpp"
#include "socket_lb.hpp"
#include "uplink.hpp"

namespace ebpfnet::datapath {
namespace {

std::string program_tag(const std::filesystem::path& pin) {
  UniqueFd fd(bpf_obj_get(pin.c_str()));
  return fd.valid() ? Datapath::prog_info(fd.get()).tag : "";
}

// Writes what node state puts in the maps (idempotent: a reused map holds it already).
void refill(NodeTxn& txn, const std::vector<ServiceRecord>& services, Datapath& dp) {
  const NodeState& st = txn.state();
  endpoints::refill(txn.node(), txn.endpoints(), dp.maps());
  policies::refill(txn.endpoints(), dp.maps());
  prefilter::refill(st, dp.maps());
  services::refill(txn, services, dp.maps());
  socket_lb::refill(txn.endpoints(), dp.maps());
  overlay::refill(st, dp.maps());
}

struct Switched {
  int endpoints = 0;
  bool uplink = false;
  bool prefilter = false;  // the uplink's XDP link (only while the deny list is not empty)
  bool tunnel = false;     // the overlay device's program
};

// Attaches prog in mode `want` where one runs in mode `was`: the new first,
// then the old goes, so no packet meets neither (the TCX program runs before
// a clsact one, so for a moment the first decides).
TcMode switch_mode(int prog_fd, int ifindex, TcMode want, TcMode was, const std::filesystem::path& pin) {
  const TcMode now = attach_tc_ingress(prog_fd, ifindex, want, pin);
  if (now != was) detach_tc_ingress(was, ifindex, pin);
  return now;
}

// Switches every attachment to dp's programs where it runs another; each
// switch pushes its way back to old (when there is one).
Switched switch_attachments(NodeTxn& txn, Datapath& dp, const std::optional<Datapath>& old) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  Netns ns = node.netns();
  NetnsGuard in(ns);
  Switched switched;
  const uint32_t ep_prog = dp.from_endpoint_info().id;
  const std::set<std::string> gone = endpoints::vanished(node, txn.endpoints());
  // Those to switch, gathered first: the table is not written while it is read.
  std::vector<EndpointRecord> to_switch;
  txn.endpoints().for_each([&](const EndpointRecord& e) {
    if (gone.count(e.name)) return;
    // In the mode it runs in, so the new program replaces the old at once,
    // unless the node asks for another (attach --tc-mode).
    const TcMode want = st.tc_mode.value_or(e.tc_mode);
    if (want == e.tc_mode && attached_prog_id(e.tc_mode, e.host_ifindex, link_pin(node, e)) == ep_prog) return;
    to_switch.push_back(e);
  });
  for (auto& e : to_switch) {
    const TcMode want = st.tc_mode.value_or(e.tc_mode);
    const TcMode was = e.tc_mode;
    e.tc_mode = switch_mode(dp.from_endpoint_fd(), e.host_ifindex, want, was, link_pin(node, e));
    ++switched.endpoints;
    if (old)
      txn.undo("program of " + e.host_ifname, [&node, &old, e, was] {
        Netns ns = node.netns();
        NetnsGuard back(ns);
        switch_mode(old->from_endpoint_fd(), e.host_ifindex, was, e.tc_mode, link_pin(node, e));
      });
    txn.endpoints().put(e);
  }
  switched.tunnel = overlay::converge(txn, dp.from_tunnel_fd(), old ? old->from_tunnel_fd() : -1);
  if (!st.uplink) return switched;
  switched.prefilter =
      prefilter::converge_xdp(txn, dp.uplink_prefilter_fd(), old ? old->uplink_prefilter_fd() : -1, old.has_value());
  auto link = Netlink().link(st.uplink->ifname);
  if (!link)
    throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " does not exist in node " + node.name());
  const TcMode was = st.uplink->tc_mode;
  const uint32_t running = attached_prog_id(was, link->ifindex, uplink_pin(node));
  const TcMode want = st.tc_mode.value_or(was);
  if (want == was && running == dp.from_uplink_info().id) return switched;
  // Attached for the first time: TCX where the kernel has it.
  st.uplink->tc_mode = running || st.tc_mode
                           ? switch_mode(dp.from_uplink_fd(), link->ifindex, want, was, uplink_pin(node))
                           : attach_tc_ingress(dp.from_uplink_fd(), link->ifindex, std::nullopt, uplink_pin(node));
  if (old)
    txn.undo("program of uplink", [&node, &old, ifindex = link->ifindex, was, now = st.uplink->tc_mode] {
      Netns ns = node.netns();
      NetnsGuard back(ns);
      switch_mode(old->from_uplink_fd(), ifindex, was, now, uplink_pin(node));
    });
  spdlog::info("node {}: from_uplink attached to {} ({})", node.name(), st.uplink->ifname,
               to_string(st.uplink->tc_mode));
  switched.uplink = true;
  return switched;
}

// The state attach works on: the node's, or a new one for the root node.
NodeState& state_to_attach(NodeTxn& txn, const AttachOptions& opts) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  if (txn.has_state()) {
    if (opts.cidr && !(*opts.cidr == st.cidr))
      throw Error(Errc::usage, "node '" + node.name() + "' has pool " + st.cidr.str() + ", not " +
                                   opts.cidr->str());
  } else if (node.is_root() && opts.cidr) {
    lifecycle::check_pool(*opts.cidr);
    st.name = node.name();
    st.sandbox = false;
    st.cidr = *opts.cidr;
  } else {
    throw Error(Errc::usage, "the root node has no pool yet: attach --cidr CIDR");
  }
  return st;
}

}  // namespace

void check(const Node& node, bool node_exists, const AttachOptions& opts) {
  CtTimeouts checked;  // bad input is refused before anything is done
  for (const auto& spec : opts.ct_timeouts) set_ct_timeout(checked, spec);
  if (opts.ct_size && (*opts.ct_size < 1024 || *opts.ct_size > (1u << 26)))
    throw Error(Errc::usage, "--ct-size " + std::to_string(*opts.ct_size) + " is not between 1024 and 67108864");
  ensure_bpffs();
  // Only the root node is made by attach; a sandbox node must exist already.
  if (!node.is_root() && !node_exists)
    throw Error(Errc::not_found, "node '" + node.name() + "' does not exist (ebpfnet node create " +
                                     node.name() + " --cidr CIDR)");
}

AttachResult attach(NodeTxn& txn, const AttachOptions& opts) {
  const Node& node = txn.node();
  const std::filesystem::path pin_dir = node.pin_dir();
  NodeState& st = state_to_attach(txn, opts);
  AttachResult r;
  r.dry_run = opts.dry_run;
  MapFds pins = Datapath::open_map_pins(pin_dir);
  r.from_abi = Datapath::abi_of(pins);
  if (r.from_abi > EBPFNET_ABI_VERSION)
    throw Error(Errc::rejected, "node '" + node.name() + "' runs datapath ABI version " + std::to_string(r.from_abi) +
                                    ", newer than this ebpfnet's " + std::to_string(EBPFNET_ABI_VERSION) +
                                    ": refusing to downgrade it (install the newer ebpfnet again)");
  const DatapathConfig cfg{st.gateway(), opts.ct_size.value_or(st.ct_size)};
  const MapLayouts wanted = Datapath::layouts(cfg);
  // Held by the transaction: undo steps switch back to old.
  std::optional<Datapath>& old = txn.hold(Datapath::open_pinned(pin_dir, true));

  // What a reload would do with each map that cannot be reused as it is.
  for (size_t i = 0; i < kMapNames.size(); ++i) {
    std::optional<MapLayout> have;
    if (pins[i].valid()) have = MapLayout::of_fd(pins[i].get());
    if (have == wanted[i]) continue;
    MapMigration m{kMapNames[i], have ? have->str() : "", wanted[i].str(), "created", 0};
    const bool same_entries = have && have->key_size == wanted[i].key_size && have->value_size == wanted[i].value_size;
    if (have) {
      switch (kMapRefill[i]) {
        case Refill::state: m.how = "rebuilt from state"; break;
        case Refill::counters: m.how = same_entries ? "copied" : "reset"; break;
        case Refill::none: m.how = "started empty"; break;
        case Refill::flows:
          if (!same_entries)
            throw Error(Errc::rejected, std::string("map ") + kMapNames[i] + " of node '" + node.name() + "' is " +
                                            have->str() + "; this ebpfnet wants " + wanted[i].str() +
                                            " and cannot convert its entries, so its flows would be cut");
          m.how = "copied";
          break;
      }
    }
    r.maps.push_back(m);
  }
  const bool programs_differ = !old || Datapath::build_of(pins) != Datapath::build_id();
  r.loaded = !old || !r.maps.empty() || programs_differ;

  if (opts.dry_run) {
    if (r.loaded)
      for (const char* p : {"from_endpoint", "from_uplink", "uplink_prefilter", "from_tunnel"})
        r.programs.push_back({p, program_tag(pin_dir / p), "", 0});
    return r;
  }

  if (opts.tc_mode) st.tc_mode = opts.tc_mode;
  if (opts.socket_lb) st.socket_lb = *opts.socket_lb;
  for (const auto& spec : opts.ct_timeouts) set_ct_timeout(st.ct_timeouts, spec);
  st.ct_size = cfg.ct_size;
  if (opts.uplink) {
    validate_ifname(*opts.uplink);
    if (st.uplink && st.uplink->ifname != *opts.uplink)
      throw Error(Errc::exists, "node '" + node.name() + "' already has uplink " + st.uplink->ifname);
    if (!st.uplink) st.uplink = UplinkRecord{*opts.uplink, "", TcMode::tcx};
  }

  std::optional<Datapath>& loaded = txn.hold(std::optional<Datapath>());
  if (r.loaded) {
    txn.step("load");
    loaded = Datapath::load(cfg, &pins);
    txn.step("migrate");
    for (auto& m : r.maps)
      if (m.how == "copied") {
        const size_t i = map_index(m.name);
        m.entries = copy_entries(pins[i].get(), loaded->maps().fd(i), false);
      }
    refill(txn, txn.services().all(), *loaded);
  }
  Datapath& dp = r.loaded ? *loaded : *old;
  uplink::write_config(txn, dp.maps());

  txn.step("switch");
  if (r.from_abi == 0) txn.undo("pin directory", [pin_dir] { remove_pins(pin_dir); });
  Datapath::make_pin_dirs(pin_dir);
  const Switched switched = switch_attachments(txn, dp, old);
  if (r.loaded) {
    // Flows the old programs made while the attachments switched over.
    for (auto& m : r.maps)
      if (const size_t i = map_index(m.name); m.how == "copied" && kMapRefill[i] == Refill::flows)
        m.entries += copy_entries(pins[i].get(), dp.maps().fd(i), true);
    r.programs.push_back({"from_endpoint", program_tag(pin_dir / "from_endpoint"), dp.from_endpoint_info().tag,
                          switched.endpoints});
    r.programs.push_back({"from_uplink", program_tag(pin_dir / "from_uplink"), dp.from_uplink_info().tag,
                          switched.uplink ? 1 : 0});
    r.programs.push_back({"uplink_prefilter", program_tag(pin_dir / "uplink_prefilter"),
                          dp.uplink_prefilter_info().tag, switched.prefilter ? 1 : 0});
    r.programs.push_back({"from_tunnel", program_tag(pin_dir / "from_tunnel"), dp.from_tunnel_info().tag,
                          switched.tunnel ? 1 : 0});
    txn.step("pin");
    const NodeConfig before = dp.maps().read_config();
    txn.undo("identity slots", [&dp, before] {
      dp.maps().write_slot(EBPFNET_CFG_ABI_VERSION, before[EBPFNET_CFG_ABI_VERSION]);
      dp.maps().write_slot(EBPFNET_CFG_BUILD, before[EBPFNET_CFG_BUILD]);
    });
    dp.maps().write_slot(EBPFNET_CFG_ABI_VERSION, EBPFNET_ABI_VERSION);
    dp.maps().write_slot(EBPFNET_CFG_BUILD, Datapath::build_id());
    // Undone by pinning the old objects again (a first load's directory goes with the step above).
    if (old) txn.undo("pins", [pin_dir, &old] { old->pin(pin_dir); });
    dp.pin(pin_dir);
    spdlog::info("node {}: datapath {} at {}", node.name(), old ? "upgraded" : "loaded and pinned", pin_dir.string());
  } else {
    r.links_repaired = switched.endpoints + (switched.uplink ? 1 : 0) + (switched.prefilter ? 1 : 0) +
                       (switched.tunnel ? 1 : 0);
  }
  st.attached = true;
  txn.step("socket-lb");
  socket_lb::converge(txn, dp.maps(), r.loaded && old ? &old->maps() : nullptr);
  txn.commit();
  return r;
}

void detach(NodeTxn& txn) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  Netns ns = node.netns();
  {
    NetnsGuard in(ns);
    txn.endpoints().for_each(
        [&](const EndpointRecord& e) { detach_tc_ingress(e.tc_mode, e.host_ifindex, link_pin(node, e)); });
    if (st.uplink) {
      auto l = Netlink().link(st.uplink->ifname);
      if (l) detach_tc_ingress(st.uplink->tc_mode, l->ifindex, uplink_pin(node));
    }
  }
  overlay::detach(txn);
  remove_pins(node.pin_dir());  // the prefilter's XDP link goes with its pin
  if (st.uplink) st.uplink->xdp.reset();
  st.attached = false;
}

}  // namespace ebpfnet::datapath
