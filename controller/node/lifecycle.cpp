#include "lifecycle.hpp"

#include <spdlog/spdlog.h>

#include "datapath.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "endpoints.hpp"
#include "marks.hpp"
#include "uplink.hpp"

namespace ebpfnet::lifecycle {

void check(const Node& node, const Ipv4Cidr& cidr, const std::optional<Ipv6Cidr>& cidr6) {
  if (node.is_root())
    throw Error(Errc::usage, "'root' names the root namespace; use `attach --cidr` for it");
  check_pool(cidr);
  if (cidr6)
    if (auto problem = ipv6_pool_problem(*cidr6); !problem.empty()) throw Error(Errc::usage, problem);
}

void check_pool(const Ipv4Cidr& cidr) {
  if (cidr.prefix > 30 || cidr.prefix < 8)
    throw Error(Errc::usage, "pool " + cidr.str() + " must be between /8 and /30");
}

namespace {

// Nodes on one outside route to each other's pools, so no two may overlap.
void check_pools_on(const Node& node, const Ipv4Cidr& cidr, const std::optional<Ipv6Cidr>& cidr6,
                    const std::string& outside) {
  for (const auto& other : Node::list(node.env())) {
    if (other == node.name()) continue;
    NodeState st;
    try {
      st = StateStore(node.env().state_root, other).load();
    } catch (const Error& e) {
      spdlog::warn("node {}: not checked for an overlapping pool: {}", other, e.what());
      continue;
    }
    if (st.uplink && st.uplink->outside == outside &&
        (st.cidr.contains(cidr.network) || cidr.contains(st.cidr.network)))
      throw Error(Errc::exists, "pool " + cidr.str() + " overlaps pool " + st.cidr.str() + " of node '" + other +
                                    "', which is on outside " + outside + " too");
    if (st.uplink && st.uplink->outside == outside && cidr6 && st.cidr6 && cidr6->overlaps(*st.cidr6))
      throw Error(Errc::exists, "pool " + cidr6->str() + " overlaps pool " + st.cidr6->str() + " of node '" +
                                    other + "', which is on outside " + outside + " too");
  }
}

}  // namespace

void create(NodeTxn& txn, const Ipv4Cidr& cidr, bool uplink_sandbox, const std::string& outside,
            const std::optional<Ipv6Cidr>& cidr6) {
  const std::string& name = txn.node().name();
  if (txn.has_state()) throw Error(Errc::exists, "node '" + name + "' already exists");
  if (uplink_sandbox && !outside.empty()) check_pools_on(txn.node(), cidr, cidr6, outside);
  Journal j{.op = "node create", .netns = {name}};
  if (uplink_sandbox && outside.empty()) j.netns.push_back(name + "-out");
  txn.journal(std::move(j));
  txn.step("netns");
  netns::add(name);
  txn.undo("netns " + name, [name] { netns::del(name); });
  txn.step("loopback");
  Netns ns = Netns::open_named(name);
  marks::mark_netns(ns, marks::of(txn.node()));
  Netlink nl = Netlink::in(ns);
  if (auto lo = nl.link("lo")) nl.set_up(lo->ifindex);
  NodeState& st = txn.state();
  if (uplink_sandbox) {
    txn.step("uplink");
    st.uplink = uplink::create_sandbox(txn, outside, cidr6.has_value());
  }
  st.name = name;
  st.sandbox = true;
  st.cidr = cidr;
  st.cidr6 = cidr6;
  txn.commit();
}

void destroy(NodeTxn& txn) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  if (!txn.has_state()) {
    // A node whose create was killed: recovery took its namespaces.
    if (!txn.recovered()) throw Error(Errc::not_found, "node '" + node.name() + "' does not exist");
    txn.commit_removal();
    return;
  }
  // Maps of another ABI go with their pins; their entries need no removal.
  auto maps = Datapath::abi_of(Datapath::open_map_pins(node.pin_dir())) == EBPFNET_ABI_VERSION
                  ? Datapath::open_pinned_maps(node.pin_dir())
                  : std::nullopt;
  // A delete killed after the node's namespace went took every veth with
  // it: what is left is the endpoints' own namespaces, the pins and the state.
  if (st.sandbox && !netns::exists(node.name())) {
    spdlog::info("node {}: its namespace is gone (an interrupted delete); removing the rest", node.name());
    txn.endpoints().for_each([](const EndpointRecord& e) {
      if (e.netns_owned && netns::exists(e.netns)) netns::del(e.netns);
    });
    remove_pins(node.pin_dir());
  } else {
    endpoints::remove(txn, txn.endpoints().all(), maps ? &*maps : nullptr);
    datapath::detach(txn);
  }
  txn.step("node-netns");
  if (st.sandbox && netns::exists(node.name())) netns::del(node.name());
  txn.step("outside");
  if (st.uplink && st.uplink->outside_owned && !st.uplink->outside.empty() && netns::exists(st.uplink->outside))
    netns::del(st.uplink->outside);
  // What no record names (made by a command killed before it wrote one, or
  // in a state that was lost) still carries the node's mark.
  for (const auto& name : marks::netns_of(node)) {
    spdlog::info("node {}: deleting namespace {}, which it made but did not record", node.name(), name);
    netns::del(name);
  }
  txn.step("state-removal");
  txn.commit_removal();
}

}  // namespace ebpfnet::lifecycle
