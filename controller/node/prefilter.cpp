#include "prefilter.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "pins.hpp"

namespace ebpfnet::prefilter {
namespace {

bool overlap(const Ipv4Cidr& a, const Ipv4Cidr& b) { return a.contains(b.network) || b.contains(a.network); }

// Addresses the node cannot lose: its uplink's own (replies to the node's
// own traffic come to it) and the uplink's gateway (its next hop).
std::vector<std::pair<Ipv4, std::string>> lifelines(NodeTxn& txn) {
  std::vector<std::pair<Ipv4, std::string>> out;
  const NodeState& st = txn.state();
  Netlink nl = Netlink::in(txn.node().netns());
  auto link = nl.link(st.uplink->ifname);
  if (!link) return out;
  for (const auto& a : nl.addresses(link->ifindex))
    out.push_back({a.ip, "the uplink's address " + a.ip.str()});
  for (const auto& r : nl.routes(link->ifindex))
    if (r.dst.prefix == 0 && r.via) out.push_back({*r.via, "the uplink's gateway " + r.via->str()});
  return out;
}

// Refuses a list the node cannot take: `fresh` are the entries new to it.
void check(NodeTxn& txn, const std::vector<Ipv4Cidr>& want, const std::vector<Ipv4Cidr>& fresh) {
  const NodeState& st = txn.state();
  if (!st.uplink)
    throw Error(Errc::usage, "node '" + txn.node().name() +
                                 "' has no uplink, so nothing to prefilter (attach --uplink IFNAME)");
  // What would cut the node off first: that matters more than an overlap.
  if (!fresh.empty())
    for (const auto& [ip, what] : lifelines(txn))
      for (const auto& c : fresh)
        if (c.contains(ip))
          throw Error(Errc::usage, entry_str(c) + " holds " + what + ": denying it would cut the node off");
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t k = 0; k < i; ++k) {
      if (want[i] == want[k]) throw Error(Errc::usage, entry_str(want[i]) + " is given twice");
      if (overlap(want[i], want[k])) {
        // Entries the node has come first; name one when it is the other.
        const bool held = std::find(fresh.begin(), fresh.end(), want[k]) == fresh.end();
        throw Error(Errc::usage, entry_str(want[i]) + " overlaps " + (held ? "the prefilter entry " : "") +
                                     entry_str(want[k]) + (held ? " (prefilter del it first)" : ""));
      }
    }
  size_t addrs = 0;
  for (const auto& c : want) addrs += c.prefix == 32;
  if (addrs > EBPFNET_MAX_PREFILTER || want.size() - addrs > EBPFNET_MAX_PREFILTER)
    throw Error(Errc::exhausted, "the prefilter holds at most " + std::to_string(EBPFNET_MAX_PREFILTER) +
                                     " addresses and as many prefixes");
}

// The program the node has pinned for the uplink's XDP hook.
UniqueFd pinned_program(const Node& node) {
  UniqueFd fd(bpf_obj_get((node.pin_dir() / "uplink_prefilter").c_str()));
  if (!fd.valid())
    throw Error(Errc::not_found, "node '" + node.name() + "' has no prefilter program pinned (ebpfnet --node " +
                                     node.name() + " attach)");
  return fd;
}

// Writes the maps and the attachment for `want`, then commits it.
void converge(NodeTxn& txn, std::vector<Ipv4Cidr> want, const char* op) {
  NodeState& st = txn.state();
  DatapathMaps& maps = txn.maps();
  UniqueFd& prog = txn.hold(pinned_program(txn.node()));
  std::vector<Ipv4Cidr> adding, removing;
  for (const auto& c : want)
    if (std::find(st.prefilter.begin(), st.prefilter.end(), c) == st.prefilter.end()) adding.push_back(c);
  for (const auto& c : st.prefilter)
    if (std::find(want.begin(), want.end(), c) == want.end()) removing.push_back(c);
  if (adding.empty() && removing.empty()) return;
  txn.journal({.op = op});
  txn.step("prefilter");
  // Removals first: an entry replaced by one overlapping it never coexists with it.
  for (const auto& c : removing) {
    maps.delete_prefilter(c);
    txn.undo("prefilter entry " + c.str(), [&maps, c] { maps.put_prefilter(c); });
  }
  for (const auto& c : adding) {
    maps.put_prefilter(c);
    txn.undo("prefilter entry " + c.str(), [&maps, c] { maps.delete_prefilter(c); });
  }
  st.prefilter = std::move(want);
  txn.step("xdp");
  converge_xdp(txn, prog.get(), prog.get(), true);
  txn.commit();
}

}  // namespace

Ipv4Cidr parse(std::string_view s) {
  if (s.find('/') == std::string_view::npos) {
    if (auto a = Ipv4::parse(s)) return {*a, 32};
    throw Error(Errc::usage, "'" + std::string(s) + "' is not an IPv4 address or prefix such as 203.0.113.0/24");
  }
  if (auto c = Ipv4Cidr::parse(s)) return *c;
  const auto slash = s.find('/');
  auto addr = Ipv4::parse(s.substr(0, slash));
  const auto len = s.substr(slash + 1);
  int prefix = -1;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (addr && ec == std::errc() && end == len.data() + len.size() && prefix >= 0 && prefix <= 32) {
    Ipv4Cidr net{Ipv4(addr->host() & Ipv4Cidr{*addr, prefix}.mask()), prefix};
    throw Error(Errc::usage, "'" + std::string(s) + "' has host bits set; did you mean " + net.str() + "?");
  }
  throw Error(Errc::usage, "'" + std::string(s) + "' is not an IPv4 address or prefix such as 203.0.113.0/24");
}

std::string entry_str(const Ipv4Cidr& c) { return c.prefix == 32 ? c.network.str() : c.str(); }

void add(NodeTxn& txn, const std::vector<Ipv4Cidr>& entries) {
  if (entries.empty()) throw Error(Errc::usage, "prefilter add needs an address or prefix");
  const NodeState& st = txn.state();
  for (const auto& c : entries)
    if (std::find(st.prefilter.begin(), st.prefilter.end(), c) != st.prefilter.end())
      throw Error(Errc::exists, entry_str(c) + " is already in the prefilter");
  std::vector<Ipv4Cidr> want = st.prefilter;
  want.insert(want.end(), entries.begin(), entries.end());
  check(txn, want, entries);
  converge(txn, std::move(want), "prefilter add");
}

void del(NodeTxn& txn, const std::vector<Ipv4Cidr>& entries) {
  if (entries.empty()) throw Error(Errc::usage, "prefilter del needs an address or prefix");
  std::vector<Ipv4Cidr> want = txn.state().prefilter;
  for (const auto& c : entries) {
    auto it = std::find(want.begin(), want.end(), c);
    if (it == want.end()) throw Error(Errc::not_found, entry_str(c) + " is not in the prefilter");
    want.erase(it);
  }
  converge(txn, std::move(want), "prefilter del");
}

void set(NodeTxn& txn, const std::vector<Ipv4Cidr>& entries) {
  const NodeState& st = txn.state();
  std::vector<Ipv4Cidr> fresh;
  for (const auto& c : entries)
    if (std::find(st.prefilter.begin(), st.prefilter.end(), c) == st.prefilter.end()) fresh.push_back(c);
  if (!entries.empty() || !st.prefilter.empty()) {
    if (!entries.empty()) check(txn, entries, fresh);
    converge(txn, entries, "prefilter set");
  }
}

std::vector<PrefilterCount> list(NodeTxn& txn) {
  std::vector<PrefilterCount> out;
  DatapathMaps* maps = txn.state().prefilter.empty() ? nullptr : &txn.maps();
  for (const auto& c : txn.state().prefilter) out.push_back(maps->prefilter_count(c));
  return out;
}

void refill(const NodeState& st, DatapathMaps& maps) {
  for (const auto& c : st.prefilter) maps.put_prefilter(c);
}

size_t prune(const NodeState& st, DatapathMaps& maps) {
  std::set<std::pair<uint32_t, uint32_t>> keys;
  for (const auto& c : st.prefilter) keys.insert({static_cast<uint32_t>(c.prefix), c.network.be()});
  auto keep_prefix = [&](const void* raw) {
    ebpfnet_prefix k;
    std::memcpy(&k, raw, sizeof k);
    return keys.count({k.prefixlen, k.addr}) > 0;
  };
  size_t gone = maps.prune("prefilter_cidr", sizeof(ebpfnet_prefix), keep_prefix);
  gone += maps.prune("prefilter_stats", sizeof(ebpfnet_prefix), keep_prefix);
  gone += maps.prune("prefilter_addr", sizeof(uint32_t), [&](const void* raw) {
    uint32_t a;
    std::memcpy(&a, raw, sizeof a);
    return keys.count({32u, a}) > 0;
  });
  return gone;
}

bool converge_xdp(NodeTxn& txn, int prog_fd, int old_prog_fd, bool undo) {
  const Node& node = txn.node();
  NodeState& st = txn.state();
  if (!st.uplink) return false;
  Netns ns = node.netns();
  NetnsGuard in(ns);
  auto link = Netlink().link(st.uplink->ifname);
  if (!link) {
    if (st.prefilter.empty()) return false;
    throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " does not exist in node " + node.name());
  }
  const int ifindex = link->ifindex;
  const auto pin = uplink_xdp_pin(node);
  const uint32_t have = attached_xdp_prog_id(ifindex, pin);
  const std::optional<XdpMode> was = st.uplink->xdp;
  auto back = [&node, ifindex, pin, old_prog_fd, mode = was.value_or(XdpMode::native)] {
    Netns ns = node.netns();
    NetnsGuard in(ns);
    if (old_prog_fd >= 0)
      attach_xdp(old_prog_fd, ifindex, pin, mode);
    else
      detach_xdp(pin);
  };
  if (st.prefilter.empty()) {
    if (!have) {
      st.uplink->xdp.reset();
      return false;
    }
    detach_xdp(pin);
    if (undo) txn.undo("xdp prefilter of uplink", back);
    st.uplink->xdp.reset();
    spdlog::info("node {}: prefilter detached from {}", node.name(), st.uplink->ifname);
    return true;
  }
  if (have && have == Datapath::prog_info(prog_fd).id) return false;
  const XdpAttach a = attach_xdp(prog_fd, ifindex, pin, was.value_or(XdpMode::native));
  if (undo) {
    if (have)
      txn.undo("xdp prefilter of uplink", back);
    else
      txn.undo("xdp prefilter of uplink", [pin] { detach_xdp(pin); });
  }
  if (!a.fallback_reason.empty())
    spdlog::warn("node {}: {} refused native XDP ({}); the prefilter runs in generic mode, after the kernel "
                 "has built an skb",
                 node.name(), st.uplink->ifname, a.fallback_reason);
  st.uplink->xdp = a.mode;
  spdlog::info("node {}: prefilter attached to {} ({} XDP)", node.name(), st.uplink->ifname, to_string(a.mode));
  return true;
}

}  // namespace ebpfnet::prefilter

namespace ebpfnet {
Ipv4Cidr parse_prefilter_entry(std::string_view s) { return prefilter::parse(s); }
std::string prefilter_entry_str(const Ipv4Cidr& c) { return prefilter::entry_str(c); }
}  // namespace ebpfnet
