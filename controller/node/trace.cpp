// trace: the packet described by the request built against the node's
// state, run by the trace build of its program over the node's pinned maps
// in the node's namespace (so bpf_fib_lookup asks the node's routes and
// ifindexes mean the node's devices), and its recorded steps named.
#include "trace.hpp"

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <cerrno>
#include <map>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/node_txn.hpp"
#include "ebpfnet/policy.hpp"

namespace ebpfnet::trace {
namespace {

// A source MAC for frames from outside: the datapath does not look at it.
constexpr Mac kOutsideMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

// The node as trace names it.
class Names {
 public:
  // Interfaces are named by asking for each (an ioctl): a dump of a node's
  // links costs the kernel O(endpoints) per veth.
  Names(const std::vector<EndpointRecord>& endpoints, const std::vector<ServiceRecord>& services, Netlink& nl)
      : endpoints_(endpoints), services_(services), nl_(nl) {}

  const EndpointRecord* endpoint(__be32 ip) const {
    for (const auto& e : endpoints_)
      if (e.ip.be() == ip) return &e;
    return nullptr;
  }
  std::string endpoint_name(__be32 ip) const {
    const EndpointRecord* e = endpoint(ip);
    return e ? e->name : Ipv4::from_be(ip).str();
  }
  std::string ifname(uint32_t ifindex) const {
    std::string name = nl_.name_of(static_cast<int>(ifindex));
    return name.empty() ? "ifindex " + std::to_string(ifindex) : name;
  }
  std::string service_name(uint32_t id) const {
    for (const auto& v : services_)
      if (v.id == id) return v.name;
    return "service " + std::to_string(id);
  }
  std::string backend_name(uint32_t service_id, uint32_t backend_id) const {
    for (const auto& v : services_)
      for (const auto& b : v.backends)
        if (v.id == service_id && b.id == backend_id) return b.endpoint + ":" + std::to_string(b.port);
    return "backend " + std::to_string(backend_id);
  }
  // "ingress of db: rule 2 "deny tcp 5432 from 10.240.0.0/24"" or "egress of web: default deny".
  std::string rule(uint32_t dir_raw, __be32 ip, uint32_t rule) const {
    const PolicyDir dir = dir_raw == EBPFNET_INGRESS ? PolicyDir::ingress : PolicyDir::egress;
    const EndpointRecord* e = endpoint(ip);
    std::string s = std::string(to_string(dir)) + " of " + endpoint_name(ip) + ": ";
    if (!e || !e->policy) return s + (rule ? "rule " + std::to_string(rule) : "default");
    const DirectionPolicy& dp = e->policy->dir(dir);
    if (rule == 0) return s + "default " + std::string(to_string(dp.default_action));
    if (rule > dp.rules.size()) return s + "rule " + std::to_string(rule);
    return s + "rule " + std::to_string(rule) + " \"" + format_rule(dp.rules[rule - 1], dir) + "\"";
  }

 private:
  const std::vector<EndpointRecord>& endpoints_;
  const std::vector<ServiceRecord>& services_;
  Netlink& nl_;
};

std::string proto_str(uint8_t p) {
  return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : p == IPPROTO_ICMP ? "icmp" : std::to_string(p);
}

std::string tuple_str(const ebpfnet_ct_key& k) {
  auto end = [&](__be32 a, __be16 p) {
    return Ipv4::from_be(a).str() + (k.proto == IPPROTO_ICMP ? "" : ":" + std::to_string(ntohs(p)));
  };
  std::string s = proto_str(k.proto) + " " + end(k.saddr, k.sport) + " -> " + end(k.daddr, k.dport);
  if (k.proto == IPPROTO_ICMP) s += " id " + std::to_string(ntohs(k.sport));
  return s;
}

std::string ct_state_name(uint32_t s) {
  switch (s) {
    case EBPFNET_CT_NEW: return "new";
    case EBPFNET_CT_ESTABLISHED: return "established";
    case EBPFNET_CT_CLOSING: return "closing";
    default: return std::to_string(s);
  }
}

std::string ct_flags_str(uint32_t f) {
  std::string s;
  auto add = [&](uint32_t bit, const char* name) {
    if (f & bit) s += std::string(s.empty() ? "" : ",") + name;
  };
  add(EBPFNET_CT_F_REPLY, "reply");
  add(EBPFNET_CT_F_SNAT, "snat");
  add(EBPFNET_CT_F_DNAT, "dnat");
  add(EBPFNET_CT_F_PEER_WAITS, "peer-waits");
  return s.empty() ? "untranslated" : s;
}

std::string fib_result(int rc) {
  switch (rc) {
    case BPF_FIB_LKUP_RET_SUCCESS: return "found";
    case BPF_FIB_LKUP_RET_BLACKHOLE: return "blackhole";
    case BPF_FIB_LKUP_RET_UNREACHABLE: return "unreachable";
    case BPF_FIB_LKUP_RET_PROHIBIT: return "prohibited";
    case BPF_FIB_LKUP_RET_NOT_FWDED: return "not forwarded (local)";
    case BPF_FIB_LKUP_RET_FWD_DISABLED: return "forwarding disabled";
    case BPF_FIB_LKUP_RET_UNSUPP_LWT: return "unsupported";
    case BPF_FIB_LKUP_RET_NO_NEIGH: return "found, neighbour unresolved";
    case BPF_FIB_LKUP_RET_FRAG_NEEDED: return "found, too big";
    default: return "error " + std::to_string(rc);
  }
}

std::string pass_reason(uint32_t why) {
  switch (why) {
    case EBPFNET_PASS_GATEWAY: return "to-gateway";
    case EBPFNET_PASS_TTL: return "last-hop";
    case EBPFNET_PASS_NOT_OURS: return "not-for-the-datapath";
    case EBPFNET_PASS_TOO_BIG: return "too-big";
    case EBPFNET_PASS_ARP: return "arp";
    case EBPFNET_PASS_LINK: return "on-link";
    default: return "unknown";
  }
}

std::string pass_detail(uint32_t why) {
  switch (why) {
    case EBPFNET_PASS_GATEWAY: return "addressed to the gateway, the node itself";
    case EBPFNET_PASS_TTL: return "no hop left: the node's stack answers time-exceeded";
    case EBPFNET_PASS_NOT_OURS: return "not the datapath's to forward: the node's stack routes or takes it";
    case EBPFNET_PASS_TOO_BIG: return "too big for the way out with DF: the node's stack sends fragmentation-needed";
    case EBPFNET_PASS_ARP: return "ARP not for the gateway";
    case EBPFNET_PASS_LINK: return "IPv6 that stays on the link (neighbour discovery, link-local, multicast): the node's stack";
    default: return "";
  }
}

TraceStep name_step(const ebpfnet_trace_step& s, const Names& names) {
  TraceStep t;
  t.raw = s;
  const uint32_t a0 = s.arg[0], a1 = s.arg[1], a2 = s.arg[2];
  auto field = [&](std::string k, std::string v) { t.fields.emplace_back(std::move(k), std::move(v)); };
  switch (s.code) {
    case EBPFNET_TRACE_SOURCE:
      t.stage = "source";
      t.result = names.endpoint_name(a1);
      t.detail = "endpoint " + names.endpoint_name(a1) + " (" + Ipv4::from_be(a1).str() + ") on " + names.ifname(a0);
      field("endpoint", names.endpoint_name(a1));
      field("ifname", names.ifname(a0));
      break;
    case EBPFNET_TRACE_ANTISPOOF:
      t.stage = "anti-spoofing";
      t.result = "ok";
      t.detail = "source MAC and address are the endpoint's own";
      break;
    case EBPFNET_TRACE_PASS:
      t.stage = "pass";
      t.result = pass_reason(s.result);
      t.detail = pass_detail(s.result);
      break;
    case EBPFNET_TRACE_CT_LOOKUP:
      t.stage = "conntrack";
      t.result = s.result ? "hit" : "new";
      t.detail = s.result ? "flow " + tuple_str(s.tuple) + ": " + ct_state_name(a0) + ", " + ct_flags_str(a1) + ", " +
                                std::to_string(a2) + " packets so far"
                          : "no flow for " + tuple_str(s.tuple);
      field("tuple", tuple_str(s.tuple));
      if (s.result) {
        field("state", ct_state_name(a0));
        field("flags", ct_flags_str(a1));
      }
      break;
    case EBPFNET_TRACE_CT_UPDATE:
      t.stage = "conntrack";
      t.result = "update";
      t.detail = a0 == a1 ? "the flow would stay " + ct_state_name(a1)
                          : "the flow would go from " + ct_state_name(a0) + " to " + ct_state_name(a1);
      field("state_before", ct_state_name(a0));
      field("state_after", ct_state_name(a1));
      break;
    case EBPFNET_TRACE_CT_REOPEN:
      t.stage = "conntrack";
      t.result = "reopen";
      t.detail = s.result ? "a SYN on a closing flow's tuple: the old flow would be forgotten"
                          : "a SYN on a closing translated flow: it keeps its translation if policy allows";
      break;
    case EBPFNET_TRACE_CT_CREATE: {
      t.stage = "conntrack";
      const bool snat = a0 & EBPFNET_CT_F_SNAT, dnat = a0 & EBPFNET_CT_F_DNAT;
      const bool svc = a0 & EBPFNET_CT_F_SERVICE;
      const std::string to = svc ? "service" : "published port";
      const std::string kind = snat && dnat ? "hairpin (" + to + ", masqueraded)"
                               : snat       ? "masquerade"
                               : dnat       ? to
                                            : "tracked, untranslated";
      if (s.result == 0) {
        t.result = "would create";
        t.detail = kind + " flow leaving as " + tuple_str(s.tuple);
        if (snat)
          t.detail += " (port " + std::to_string(ntohs(s.tuple.sport)) + " is free now; a real packet draws its own)";
      } else {
        t.result = s.result == 1 ? "tuple taken" : "table full";
        t.detail = kind + ": " + (s.result == 1 ? "no free tuple after " + std::to_string(a1) + " tries"
                                                : "the conntrack map refused the entry");
      }
      field("kind", kind);
      field("leaves_as", tuple_str(s.tuple));
      break;
    }
    case EBPFNET_TRACE_POLICY:
      t.stage = "policy";
      t.result = s.result == 0 ? "allowed" : "denied";
      t.detail = names.rule(a0, a1, a2);
      field("direction", a0 == EBPFNET_INGRESS ? "ingress" : "egress");
      field("endpoint", names.endpoint_name(a1));
      field("rule", std::to_string(a2));
      field("decided_by", names.rule(a0, a1, a2));
      break;
    case EBPFNET_TRACE_POLICY_NONE:
      t.stage = "policy";
      t.result = "none";
      t.detail = "no policy on either side";
      break;
    case EBPFNET_TRACE_NAT:
      t.stage = "nat";
      t.result = "rewrite";
      t.detail = "the packet becomes " + tuple_str(s.tuple);
      field("becomes", tuple_str(s.tuple));
      break;
    case EBPFNET_TRACE_ROUTE: {
      t.stage = "route";
      const int rc = static_cast<int16_t>(s.result);
      t.result = fib_result(rc);
      t.detail = rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH || rc == BPF_FIB_LKUP_RET_FRAG_NEEDED
                     ? "the node's routes lead out of " + names.ifname(a0)
                     : "the node's routes: " + fib_result(rc);
      field("ifname", names.ifname(a0));
      break;
    }
    case EBPFNET_TRACE_TO_ENDPOINT:
      t.stage = "forward";
      t.result = "to " + names.endpoint_name(a1);
      t.detail = "redirect_peer into " + names.endpoint_name(a1) + " through " + names.ifname(a0);
      field("endpoint", names.endpoint_name(a1));
      field("ifname", names.ifname(a0));
      break;
    case EBPFNET_TRACE_ROUTED:
      t.stage = "forward";
      t.result = "out of " + names.ifname(a0);
      t.detail = s.result == 2 ? "into the overlay through " + names.ifname(a0) + " to node " + Ipv4::from_be(a1).str()
                 : std::string(s.result ? "redirect_neigh (the kernel resolves the next hop)" : "redirect") +
                       " out of " + names.ifname(a0);
      field("ifname", names.ifname(a0));
      break;
    case EBPFNET_TRACE_ARP_REPLY:
      t.stage = "arp";
      t.result = "reply";
      t.detail = "the gateway's ARP reply goes back out of " + names.ifname(a0);
      break;
    case EBPFNET_TRACE_ND_REPLY:
      t.stage = "nd";
      t.result = "reply";
      t.detail = "the gateway's neighbour advertisement goes back out of " + names.ifname(a0);
      break;
    case EBPFNET_TRACE_SERVICE:
      t.stage = "service";
      t.result = s.result ? names.backend_name(a0, a1) : "no active backend";
      t.detail = names.service_name(a0) + (s.result ? ": balanced to backend " + names.backend_name(a0, a1) + " (" +
                                                          Ipv4::from_be(a2).str() + ")"
                                                    : ": no active backend takes a new connection");
      field("service", names.service_name(a0));
      if (s.result) field("backend", names.backend_name(a0, a1));
      break;
    case EBPFNET_TRACE_DROP:
      t.stage = "drop";
      t.result = std::string(drop_reason_name(s.result));
      t.detail = "counted for " + (a0 ? "endpoint " + names.endpoint_name(a0)
                                      : a1 ? std::string("the sending endpoint") : std::string("the node"));
      field("reason", t.result);
      break;
    default:
      t.stage = "step " + std::to_string(s.code);
      t.result = "?";
  }
  return t;
}

TraceVerdict verdict_of(int retval, const std::vector<TraceStep>& steps, const Names& names) {
  TraceVerdict v;
  v.retval = retval;
  const ebpfnet_trace_step* last = nullptr;
  auto find_last = [&](std::initializer_list<uint16_t> codes) {
    for (auto it = steps.rbegin(); it != steps.rend(); ++it)
      for (uint16_t c : codes)
        if (it->raw.code == c) return &it->raw;
    return static_cast<const ebpfnet_trace_step*>(nullptr);
  };
  switch (retval) {
    case TC_ACT_REDIRECT:
      last = find_last(
          {EBPFNET_TRACE_TO_ENDPOINT, EBPFNET_TRACE_ROUTED, EBPFNET_TRACE_ARP_REPLY, EBPFNET_TRACE_ND_REPLY});
      if (last && last->code == EBPFNET_TRACE_TO_ENDPOINT) {
        v.action = "forward";
        v.endpoint = names.endpoint_name(last->arg[1]);
      } else {
        v.action = last && (last->code == EBPFNET_TRACE_ARP_REPLY || last->code == EBPFNET_TRACE_ND_REPLY)
                       ? "reply"
                       : "redirect";
      }
      if (last) {
        v.ifindex = last->arg[0];
        v.ifname = names.ifname(v.ifindex);
      }
      break;
    case TC_ACT_SHOT:
      v.action = "drop";
      last = find_last({EBPFNET_TRACE_DROP});
      v.reason = last ? std::string(drop_reason_name(last->result)) : "unknown";
      break;
    case TC_ACT_OK:
      v.action = "pass";
      last = find_last({EBPFNET_TRACE_PASS});
      v.reason = last ? pass_reason(last->result) : "unknown";
      break;
    default:
      v.action = "verdict " + std::to_string(retval);
  }
  return v;
}

const EndpointRecord& endpoint_named(const std::vector<EndpointRecord>& endpoints, const Node& node,
                                     const std::string& name) {
  for (const auto& e : endpoints)
    if (e.name == name) return e;
  throw Error(Errc::not_found, "endpoint '" + name + "' does not exist on node " + node.name());
}

const EndpointRecord* endpoint_at(const std::vector<EndpointRecord>& endpoints, Ipv4 ip) {
  for (const auto& e : endpoints)
    if (e.ip == ip) return &e;
  return nullptr;
}

// The uplink's XDP prefilter judges a packet from outside before from_uplink
// sees it. Its program counts what it drops, so trace reads the deny list
// (the state it is written from) instead of running it. Entries never
// overlap: at most one holds the source.
std::optional<TraceStep> prefilter_step(const NodeState& st, Ipv4 source, const std::string& uplink) {
  if (st.prefilter.empty()) return std::nullopt;
  TraceStep t;
  t.stage = "prefilter";
  for (const auto& c : st.prefilter)
    if (c.contains(source)) {
      t.result = "denied";
      t.detail = "source " + source.str() + " is in the deny entry " + c.str() + ": dropped by XDP on " + uplink +
                 ", counted on the entry";
      t.fields = {{"entry", c.str()}};
      return t;
    }
  t.result = "ok";
  t.detail = "source " + source.str() + " is in none of the " + std::to_string(st.prefilter.size()) +
             " deny entries";
  return t;
}

}  // namespace

TraceResult run(const Node& node, const TraceRequest& req) {
  NodeState st;
  std::vector<EndpointRecord> endpoints;
  std::vector<ServiceRecord> services;
  {
    NodeTxn txn(node);
    st = txn.state();
    endpoints = txn.endpoints().all();
    services = txn.services().all();
  }
  const DatapathMaps maps = attached_maps(node);
  const NodeConfig cfg = maps.read_config();
  const Netns ns = node.netns();
  Netlink nl = Netlink::in(ns);
  const Names names(endpoints, services, nl);

  TraceResult r;
  TracedPacket& p = r.packet;
  const EndpointRecord* from = nullptr;
  if (!req.from.endpoint.empty())
    from = &endpoint_named(endpoints, node, req.from.endpoint);
  else
    from = endpoint_at(endpoints, *req.from.ip);
  Ipv4 dst = req.to.ip.value_or(Ipv4());
  if (!req.to.endpoint.empty()) dst = endpoint_named(endpoints, node, req.to.endpoint).ip;

  Mac smac, dmac;
  if (from) {
    auto ep = maps.endpoint_by_ip(from->ip);
    if (!ep)
      throw Error(Errc::not_found, "endpoint '" + from->name + "' is not in the datapath of node " + node.name() +
                                       " (ebpfnet --node " + node.name() + " attach puts it back)");
    std::copy(std::begin(ep->mac), std::end(ep->mac), smac.begin());
    std::copy(std::begin(ep->node_mac), std::end(ep->node_mac), dmac.begin());
    p.from_endpoint = from->name;
    p.program = "from_endpoint";
    p.ingress_ifindex = ep->ifindex;
    p.tuple.saddr = req.spoof.value_or(from->ip).be();
  } else {
    p.ingress_ifindex = static_cast<uint32_t>(cfg[EBPFNET_CFG_UPLINK_IFINDEX]);
    if (!p.ingress_ifindex || !st.uplink)
      throw Error(Errc::usage, "node " + node.name() + " has no uplink: a packet from " + req.from.ip->str() +
                                   " (not an endpoint of the node) has nowhere to arrive");
    p.program = "from_uplink";
    smac = kOutsideMac;
    auto link = Netlink::in(ns).link(st.uplink->ifname);
    if (!link) throw Error(Errc::not_found, "uplink " + st.uplink->ifname + " does not exist in node " + node.name());
    dmac = link->mac;
    p.tuple.saddr = req.from.ip->be();
  }
  p.ingress_ifname = names.ifname(p.ingress_ifindex);
  p.tuple.daddr = dst.be();
  p.tuple.proto = req.proto;
  p.tuple.sport = htons(req.from.port.value_or(kTraceSourcePort));
  p.tuple.dport = req.proto == IPPROTO_ICMP ? p.tuple.sport : htons(*req.to.port);
  p.tcp_flags = req.proto == IPPROTO_TCP ? req.tcp_flags : 0;
  const std::vector<uint8_t> frame = build_trace_frame(smac, dmac, p.tuple, p.tcp_flags);
  p.frame_len = frame.size();

  if (!from)
    if (auto pre = prefilter_step(st, *req.from.ip, st.uplink->ifname)) {
      r.steps.push_back(*pre);
      if (pre->result == "denied") {
        p.program = "uplink_prefilter";
        p.ingress_ifname = names.ifname(p.ingress_ifindex);
        r.verdict.action = "drop";
        r.verdict.reason = "prefilter";
        r.verdict.retval = XDP_DROP;
        return r;
      }
    }
  TraceRun ran;
  {
    // FIB lookups and ifindexes resolve in the caller's namespace: the node's.
    NetnsGuard in(ns);
    ran = run_trace_program(maps, from ? TraceProgram::from_endpoint : TraceProgram::from_uplink, st.gateway(), frame,
                            p.ingress_ifindex);
  }
  for (const auto& step : ran.steps) r.steps.push_back(name_step(step, names));
  r.verdict = verdict_of(ran.retval, r.steps, names);
  if (ran.overflow) r.notes.push_back(std::to_string(ran.overflow) + " later steps did not fit in the trace");
  if (cfg[EBPFNET_CFG_BUILD] != Datapath::build_id())
    r.notes.push_back("node " + node.name() + " runs programs of another ebpfnet build; this trace ran this "
                      "ebpfnet's (ebpfnet --node " + node.name() + " attach upgrades the node)");
  return r;
}

}  // namespace ebpfnet::trace
