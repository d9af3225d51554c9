// ebpfnet trace: what the datapath would do with a packet, decision by
// decision, without the packet or any change on the node.
#include <netinet/in.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/trace.hpp"
#include "output.hpp"

namespace ebpfnet::cli {
namespace {

constexpr const char* kTraceHelp = R"(The packet runs through the node's own programs with the node's own maps
(BPF_PROG_TEST_RUN), in a build of them that writes nothing: no conntrack
entry, no NAT port, no counter or event changes. Every decision is printed:
anti-spoofing, conntrack, NAT, policy (with the rule), route, and the verdict.
  --from NAME[:PORT]            sent by an endpoint of the node (source port default 40000)
  --from ADDR[:PORT]            arriving from outside on the uplink (an endpoint's address: that endpoint)
  --to NAME[:PORT][/PROTO]      to an endpoint; PROTO tcp (default), udp or icmp (echo request)
  --to ADDR[:PORT][/PROTO]      to any address (the uplink's address: a published port)
  --flags S|SA|A|FA|R...        TCP flags (default S, a new connection)
  --spoof ADDR                  the endpoint sends with this source address instead of its own
Examples:
  ebpfnet --node lab trace --from web --to 10.240.0.7:5432/tcp
  ebpfnet --node lab trace --from 198.51.100.7:40000 --to 198.18.0.2:8080/tcp --flags S
  ebpfnet --node lab trace --from web --to db/icmp -o json
Exit 0 whatever the verdict; 2 when the description does not parse; 3 for an
unknown endpoint or a node without a datapath.)";

nlohmann::json packet_json(const TracedPacket& p) {
  nlohmann::json j = {{"proto", proto_name(p.tuple.proto)},
                      {"src", addr_port(p.tuple.saddr, p.tuple.sport, p.tuple.proto)},
                      {"dst", addr_port(p.tuple.daddr, p.tuple.dport, p.tuple.proto)},
                      {"from", p.from_endpoint.empty() ? nlohmann::json("uplink") : nlohmann::json(p.from_endpoint)},
                      {"program", p.program},
                      {"ifname", p.ingress_ifname},
                      {"ifindex", p.ingress_ifindex},
                      {"len", p.frame_len}};
  if (p.tuple.proto == IPPROTO_TCP) j["tcp_flags"] = tcp_flags_str(p.tcp_flags);
  if (p.tuple.proto == IPPROTO_ICMP) j["icmp_id"] = ntohs(p.tuple.sport);
  return j;
}

// The program's return code: a TC verdict, or XDP's when the uplink's prefilter decided.
nlohmann::json verdict_json(const TraceVerdict& v, bool xdp) {
  nlohmann::json j = {{"action", v.action}, {xdp ? "xdp_verdict" : "tc_verdict", v.retval}};
  if (!v.endpoint.empty()) j["endpoint"] = v.endpoint;
  if (v.ifindex) {
    j["ifindex"] = v.ifindex;
    j["ifname"] = v.ifname;
  }
  if (!v.reason.empty()) j["reason"] = v.reason;
  return j;
}

}  // namespace

nlohmann::json trace_json(const std::string& node, const TraceResult& r) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : r.steps) {
    nlohmann::json j = {{"stage", s.stage}, {"result", s.result}, {"detail", s.detail}};
    for (const auto& [k, v] : s.fields) j[k] = v;
    steps.push_back(j);
  }
  return {{"node", node}, {"packet", packet_json(r.packet)}, {"steps", steps}, {"verdict", verdict_json(r.verdict, r.packet.program == "uplink_prefilter")},
          {"notes", r.notes}};
}

namespace {

std::string verdict_line(const TraceVerdict& v) {
  if (v.action == "forward") return "forward to endpoint " + v.endpoint + " (" + v.ifname + ")";
  if (v.action == "redirect") return "redirect out of " + v.ifname;
  if (v.action == "reply") return "reply out of " + v.ifname;
  if (v.action == "drop") return "drop (" + v.reason + ")";
  if (v.action == "pass") return "pass to the node's stack (" + v.reason + ")";
  return v.action;
}

}  // namespace

void print_trace(const TraceResult& r) {
  const TracedPacket& p = r.packet;
  std::cout << "packet   " << proto_name(p.tuple.proto) << " " << addr_port(p.tuple.saddr, p.tuple.sport, p.tuple.proto)
            << " -> " << addr_port(p.tuple.daddr, p.tuple.dport, p.tuple.proto);
  if (p.tuple.proto == IPPROTO_TCP) std::cout << " [" << tcp_flags_str(p.tcp_flags) << "]";
  std::cout << ", " << (p.from_endpoint.empty() ? "from outside" : "from endpoint " + p.from_endpoint) << " into "
            << p.program << " on " << p.ingress_ifname << "\n";
  size_t stage_w = 0, result_w = 0;
  for (const auto& s : r.steps) {
    stage_w = std::max(stage_w, s.stage.size());
    result_w = std::max(result_w, s.result.size());
  }
  for (const auto& s : r.steps)
    std::cout << "  " << s.stage << std::string(stage_w - s.stage.size() + 2, ' ') << s.result
              << std::string(result_w - s.result.size() + 2, ' ') << s.detail << "\n";
  std::cout << "verdict  " << verdict_line(r.verdict) << "\n";
  for (const auto& n : r.notes) std::cout << "note     " << n << "\n";
}

void add_trace_command(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string from, to, flags, spoof;
  };
  auto a = std::make_shared<Args>();
  auto* trace = app.add_subcommand(
      "trace", "run a described packet through the node's programs and maps and print every decision; "
               "changes nothing on the node");
  trace->footer(kTraceHelp);
  trace->add_option("--from", a->from, "an endpoint (NAME[:PORT]) or an outside address (ADDR[:PORT])")
      ->type_name("FROM")
      ->required();
  trace->add_option("--to", a->to, "NAME[:PORT][/PROTO] or ADDR[:PORT][/PROTO]; PROTO tcp, udp or icmp")
      ->type_name("TO")
      ->required();
  auto* flags = trace->add_option("--flags", a->flags, "TCP flags as letters S A F R P U (default S)")
                    ->type_name("FLAGS");
  auto* spoof = trace->add_option("--spoof", a->spoof, "source address instead of the endpoint's own")
                    ->type_name("ADDR");
  trace->callback([&ctx, &action, a, flags, spoof] {
    action = [&ctx, a, given_flags = flags->count() > 0, given_spoof = spoof->count() > 0] {
      const TraceRequest req =
          parse_trace_request(a->from, a->to, given_flags ? std::optional(a->flags) : std::nullopt,
                              given_spoof ? std::optional(a->spoof) : std::nullopt);
      const TraceResult r = ctx.open_node().trace(req);
      if (ctx.json())
        std::cout << trace_json(ctx.node, r).dump(2) << "\n";
      else
        print_trace(r);
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
