// The trace build of the programs (bpf/lib/trace.h) through the product's
// own runner (run_trace_program) on the fixture's node: the steps it records
// for each kind of decision, the verdict the real program then gives the
// same frame, and that the trace changed no map of the node (conntrack,
// counters, byte for byte).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "datapath_fixture.hpp"
#include "ebpfnet/policy_maps.hpp"
#include "ebpfnet/trace.hpp"
#include "map_dump.hpp"
#include "from_endpoint.skel.h"
#include "from_uplink.skel.h"
#include "trace_from_endpoint.skel.h"
#include "trace_from_uplink.skel.h"

namespace ebpfnet::test {
namespace {

std::string step_name(uint16_t code) {
  switch (code) {
    case EBPFNET_TRACE_SOURCE: return "source";
    case EBPFNET_TRACE_ANTISPOOF: return "antispoof";
    case EBPFNET_TRACE_PASS: return "pass";
    case EBPFNET_TRACE_CT_LOOKUP: return "ct_lookup";
    case EBPFNET_TRACE_CT_UPDATE: return "ct_update";
    case EBPFNET_TRACE_CT_REOPEN: return "ct_reopen";
    case EBPFNET_TRACE_CT_CREATE: return "ct_create";
    case EBPFNET_TRACE_POLICY: return "policy";
    case EBPFNET_TRACE_POLICY_NONE: return "policy_none";
    case EBPFNET_TRACE_NAT: return "nat";
    case EBPFNET_TRACE_ROUTE: return "route";
    case EBPFNET_TRACE_TO_ENDPOINT: return "to_endpoint";
    case EBPFNET_TRACE_ROUTED: return "routed";
    case EBPFNET_TRACE_ARP_REPLY: return "arp_reply";
    case EBPFNET_TRACE_DROP: return "drop";
    default: return "code " + std::to_string(code);
  }
}

// "source antispoof ct_lookup ..." for readable failures.
std::string codes(const TraceRun& r) {
  std::string s;
  for (const auto& st : r.steps) s += (s.empty() ? "" : " ") + step_name(st.code);
  return s;
}

const ebpfnet_trace_step* find(const TraceRun& r, uint16_t code) {
  for (const auto& s : r.steps)
    if (s.code == code) return &s;
  return nullptr;
}

class TraceTest : public DatapathTest {
 protected:
  // The node's state the trace must leave alone.
  struct Snapshot {
    MapDump ct, ep_stats, drop_stats;
    bool operator==(const Snapshot&) const = default;
  };
  Snapshot snapshot() const {
    const auto& m = dp_->maps();
    return {dump_map(m.fd("ct")), dump_map(m.fd("ep_stats")), dump_map(m.fd("drop_stats"))};
  }

  // Traces frame as sent by `from` (nullptr: arriving on the uplink),
  // checks nothing changed, then runs the real program on the same frame
  // and checks it gives the trace's verdict.
  TraceRun trace(const Bytes& frame, const Endpoint* from) {
    const Snapshot before = snapshot();
    const TraceRun r =
        run_trace_program(dp_->maps(), from ? TraceProgram::from_endpoint : TraceProgram::from_uplink, kGateway,
                          frame, static_cast<uint32_t>(from ? ifindex(*from) : up_));
    EXPECT_TRUE(snapshot() == before) << "the trace changed the node's conntrack or counters";
    EXPECT_EQ(r.overflow, 0u);
    const TcRun real = from ? run_endpoint(frame, *from) : run_uplink(frame);
    EXPECT_EQ(verdict_name(r.retval), verdict_name(real.retval)) << "steps: " << codes(r);
    return r;
  }

  PolicyIds install(const Endpoint& e, const Policy& p) {
    const PolicyIds ids = allocate_policy_ids(p, ids_);
    write_rule_sets(dp_->maps(), p, ids);
    dp_->maps().write_slot(EBPFNET_CFG_POLICIES, ++policed_);
    switch_policy(dp_->maps(), e.ip, p, ids);
    return ids;
  }
  PolicyIdCounters ids_;
  uint64_t policed_ = 0;
};

std::optional<Ipv4> resolve(std::string_view name) {
  if (name == "a") return kA.ip;
  if (name == "b") return kB.ip;
  return std::nullopt;
}

Policy policy_for(PolicyAction ingress_default, const std::vector<std::string>& ingress_rules) {
  Policy p;
  p.ingress.default_action = ingress_default;
  for (const auto& r : ingress_rules) p.ingress.rules.push_back(parse_policy_rule(r, PolicyDir::ingress, resolve));
  return p;
}

TEST_F(TraceTest, SpoofedSourceIsDroppedBeforeAnythingElse) {
  Packet p = with_dst(sent_by(kA, L4::udp), kB.ip, 53);
  p.src = addr("10.240.0.99");
  const TraceRun r = trace(build(p), &kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT));
  EXPECT_EQ(codes(r), "source drop");
  ASSERT_FALSE(r.steps.empty());
  EXPECT_EQ(r.steps[0].arg[0], uint32_t(ifindex(kA)));
  EXPECT_EQ(r.steps[0].arg[1], kA.ip.be());
  EXPECT_EQ(r.steps.back().result, EBPFNET_DROP_SPOOFED_IP);
  EXPECT_EQ(r.steps.back().arg[1], 1u) << "counted for the sending endpoint";
}

TEST_F(TraceTest, EndpointToEndpointIsForwarded) {
  const TraceRun r = trace(build(with_dst(sent_by(kA, L4::udp), kB.ip, 53)), &kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_EQ(codes(r), "source antispoof to_endpoint");
  const auto* fwd = find(r, EBPFNET_TRACE_TO_ENDPOINT);
  ASSERT_TRUE(fwd);
  EXPECT_EQ(fwd->arg[0], uint32_t(ifindex(kB)));
  EXPECT_EQ(fwd->arg[1], kB.ip.be());
}

TEST_F(TraceTest, MasqueradeTellsTheWouldBePortAndTakesNone) {
  const Packet in = sent_by(kA, L4::tcp);
  const TraceRun r = trace(build(in), &kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_EQ(codes(r), "source antispoof ct_lookup route policy_none ct_create nat routed");
  const auto* lookup = find(r, EBPFNET_TRACE_CT_LOOKUP);
  ASSERT_TRUE(lookup);
  EXPECT_EQ(lookup->result, 0) << "a new flow";
  EXPECT_EQ(str(lookup->tuple), str(key_of(in)));
  const auto* created = find(r, EBPFNET_TRACE_CT_CREATE);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->result, 0);
  EXPECT_EQ(created->arg[0], uint32_t(EBPFNET_CT_F_SNAT));
  const uint16_t port = ntohs(created->tuple.sport);
  EXPECT_GE(port, kPortMin);
  EXPECT_LE(port, kPortMax);
  EXPECT_EQ(str(created->tuple), str(key_of(with_src(in, kUplinkIp, port))));
  const auto* nat = find(r, EBPFNET_TRACE_NAT);
  ASSERT_TRUE(nat);
  EXPECT_EQ(str(nat->tuple), str(created->tuple));
  const auto* out = find(r, EBPFNET_TRACE_ROUTED);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->arg[0], uint32_t(up_));
  // trace() ran the real program after the trace: its flow is the only one.
  EXPECT_EQ(ct_entries(), 2u);
}

TEST_F(TraceTest, PolicyDenyNamesTheRule) {
  install(kB, policy_for(PolicyAction::allow, {"allow udp 53", "deny tcp 5432 from 10.240.0.0/24"}));
  const TraceRun r = trace(build(with_dst(sent_by(kA, L4::tcp), kB.ip, 5432)), &kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_SHOT));
  EXPECT_EQ(codes(r), "source antispoof ct_lookup policy drop");
  const auto* v = find(r, EBPFNET_TRACE_POLICY);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->result, EBPFNET_DROP_POLICY_DENY);
  EXPECT_EQ(v->arg[0], uint32_t(EBPFNET_INGRESS));
  EXPECT_EQ(v->arg[1], kB.ip.be());
  EXPECT_EQ(v->arg[2], 2u) << "the second ingress rule decided";
  const auto* d = find(r, EBPFNET_TRACE_DROP);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->result, EBPFNET_DROP_POLICY_DENY);
  EXPECT_EQ(d->arg[0], kB.ip.be()) << "counted for the endpoint whose rule refused";
}

TEST_F(TraceTest, ConntrackHitOfAnExistingFlow) {
  const Packet in = sent_by(kA, L4::udp);
  const uint16_t port = masquerade(in, kA);
  const TraceRun r = trace(build(in), &kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_EQ(codes(r), "source antispoof ct_lookup ct_update route nat routed");
  const auto* lookup = find(r, EBPFNET_TRACE_CT_LOOKUP);
  ASSERT_TRUE(lookup);
  EXPECT_EQ(lookup->result, 1) << "a hit";
  EXPECT_EQ(lookup->arg[0], uint32_t(EBPFNET_CT_NEW));
  EXPECT_EQ(lookup->arg[1], uint32_t(EBPFNET_CT_F_SNAT));
  EXPECT_EQ(lookup->arg[2], 1u) << "one packet so far: the trace counted none";
  const auto* nat = find(r, EBPFNET_TRACE_NAT);
  ASSERT_TRUE(nat);
  EXPECT_EQ(str(nat->tuple), str(key_of(with_src(in, kUplinkIp, port)))) << "the flow's own port";
}

TEST_F(TraceTest, ReplyFromOutsideFindsItsEndpoint) {
  const Packet in = sent_by(kA, L4::tcp);
  const uint16_t port = masquerade(in, kA);
  const TraceRun r = trace(build(answer(masqueraded(in, port))), nullptr);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_EQ(codes(r), "ct_lookup ct_update nat to_endpoint");
  const auto* update = find(r, EBPFNET_TRACE_CT_UPDATE);
  ASSERT_TRUE(update);
  EXPECT_EQ(update->arg[1], uint32_t(EBPFNET_CT_ESTABLISHED)) << "a SYN-ACK would establish the flow";
}

TEST_F(TraceTest, PublishedPortFromOutside) {
  publish(L4::tcp);
  const Packet client{.l4 = L4::tcp, .smac = kRouterMac, .dmac = kUplinkMac, .src = kClient, .dst = kUplinkIp,
                      .sport = 50000, .dport = kPublished, .tcp_flags = kSyn};
  const TraceRun r = trace(build(client), nullptr);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_REDIRECT));
  EXPECT_EQ(codes(r), "ct_lookup policy_none ct_create nat to_endpoint");
  const auto* created = find(r, EBPFNET_TRACE_CT_CREATE);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->arg[0], uint32_t(EBPFNET_CT_F_DNAT));
  EXPECT_EQ(str(created->tuple), str(key_of(with_dst(client, kA.ip, kTargetPort))));
}

TEST_F(TraceTest, GatewayIsLeftToTheNode) {
  const TraceRun r = trace(build(with_dst(sent_by(kA, L4::icmp), kGateway, 7)), &kA);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(TC_ACT_OK));
  ASSERT_FALSE(r.steps.empty());
  EXPECT_EQ(r.steps.back().code, EBPFNET_TRACE_PASS);
  EXPECT_EQ(r.steps.back().result, EBPFNET_PASS_GATEWAY);
}

// The trace build calls no helper that writes a map or sends an event; the
// normal build does (so the check that guards run_trace_program can fail).
TEST(TraceBuild, CallsNoHelperThatWrites) {
  auto calls = [](bpf_program* prog) { return state_writing_calls(bpf_program__insns(prog), bpf_program__insn_cnt(prog)); };
  {
    auto* s = trace_from_endpoint_bpf::open();
    ASSERT_TRUE(s);
    EXPECT_TRUE(calls(s->progs.from_endpoint).empty());
    trace_from_endpoint_bpf::destroy(s);
  }
  {
    auto* s = trace_from_uplink_bpf::open();
    ASSERT_TRUE(s);
    EXPECT_TRUE(calls(s->progs.from_uplink).empty());
    trace_from_uplink_bpf::destroy(s);
  }
  {
    auto* s = from_endpoint_bpf::open();
    ASSERT_TRUE(s);
    EXPECT_FALSE(calls(s->progs.from_endpoint).empty());
    from_endpoint_bpf::destroy(s);
  }
  {
    auto* s = from_uplink_bpf::open();
    ASSERT_TRUE(s);
    EXPECT_FALSE(calls(s->progs.from_uplink).empty());
    from_uplink_bpf::destroy(s);
  }
}

}  // namespace
}  // namespace ebpfnet::test
