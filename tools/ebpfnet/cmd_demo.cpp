// ebpfnet demo: a sandbox node, three endpoints, every pair talking over
// TCP, UDP and ICMP with no bridge in sight, the counters, then cleanup.
#include <signal.h>
#include <sys/random.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/probe.hpp"
#include "output.hpp"

namespace ebpfnet::cli {
namespace {

constexpr uint16_t kProbePort = 8080;
constexpr uint16_t kPublishedPort = 18080;

std::string run_id() {
  uint16_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = static_cast<uint16_t>(getpid());
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04x", r);
  return buf;
}

// Ctrl-C waits until the sandbox is gone: the demo is bounded (every probe
// has a timeout), and a half-removed sandbox is worse than a short wait.
class DeferSignals {
 public:
  DeferSignals() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGHUP);
    sigprocmask(SIG_BLOCK, &s, &old_);
  }
  ~DeferSignals() { sigprocmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

std::string cell(const ProbeResult& r) {
  if (!r.ok) return "FAIL (" + r.error + ")";
  char buf[32];
  std::snprintf(buf, sizeof buf, "ok %.2f ms", r.rtt.count() / 1000.0);
  return buf;
}

int run_demo(const Context& ctx, bool keep, const std::string& cidr) {
  DeferSignals defer;
  const std::string id = run_id();
  const std::string node_name = "demo-" + id;
  Node::create(ctx.env, node_name, parse_cidr(cidr), {}, /*uplink_sandbox=*/true);
  struct Cleanup {
    const Env& env;
    std::string node;
    bool keep;
    ~Cleanup() {
      if (keep) return;
      try {
        Node::destroy(env, node);
      } catch (const std::exception& e) {
        std::cerr << "ebpfnet: demo cleanup: " << e.what() << "\n";
      }
    }
  } cleanup{ctx.env, node_name, keep};

  Node node(ctx.env, node_name);
  node.attach();
  std::vector<EndpointRecord> eps;
  for (const char* suffix : {"a", "b", "c"})
    eps.push_back(node.add_endpoint({node_name + "-" + suffix, std::nullopt, std::nullopt, "eth0"}));

  std::vector<std::string> bridges;
  for (const auto& l : Netlink::in(node.netns()).links())
    if (l.kind == "bridge") bridges.push_back(l.name);

  bool all_ok = bridges.empty();
  nlohmann::json pairs = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const auto& from : eps) {
    for (const auto& to : eps) {
      if (from.name == to.name) continue;
      Netns a = Netns::open_path(from.netns_path), b = Netns::open_path(to.netns_path);
      ProbeResult tcp = probe_tcp(a, b, to.ip, kProbePort);
      ProbeResult udp = probe_udp(a, b, to.ip, kProbePort);
      ProbeResult icmp = probe_icmp(a, to.ip);
      all_ok = all_ok && tcp.ok && udp.ok && icmp.ok;
      rows.push_back({from.name, to.name + " " + to.ip.str(), cell(tcp), cell(udp), cell(icmp)});
      pairs.push_back({{"from", from.name}, {"to", to.name}, {"tcp", tcp.ok}, {"udp", udp.ok},
                       {"icmp", icmp.ok}});
    }
  }

  // NAT: every endpoint reaches a server outside, which sees only the
  // uplink's address; a published port reaches an endpoint from outside and,
  // hairpinned, from another endpoint.
  Netns outside = Netns::open_named(node_name + "-out");
  Ipv4 uplink_ip = *Ipv4::parse(kSandboxUplinkIp), server = *Ipv4::parse(kSandboxServerIp);
  std::vector<std::vector<std::string>> nat_rows;
  nlohmann::json nat = nlohmann::json::array();
  auto nat_check = [&](const std::string& what, const std::string& from, const ProbeResult& r,
                       Ipv4 expect_src) {
    bool ok = r.ok && r.peer_saw == expect_src;
    all_ok = all_ok && ok;
    std::string result = ok     ? cell(r)
                         : r.ok ? "FAIL (expected source " + expect_src.str() + ")"
                                : "FAIL (" + r.error + ")";
    nat_rows.push_back({what, from, r.ok ? r.peer_saw.str() : "-", result});
    nat.push_back({{"check", what}, {"from", from}, {"ok", ok}, {"seen_source", r.peer_saw.str()}});
  };
  for (const auto& e : eps) {
    Netns a = Netns::open_path(e.netns_path);
    nat_check("tcp to " + server.str() + ":" + std::to_string(kProbePort), e.name,
              probe_tcp(a, outside, server, kProbePort), uplink_ip);
  }
  const auto& web = eps.back();
  node.expose({web.name, "tcp", kProbePort, kPublishedPort});
  Netns web_ns = Netns::open_path(web.netns_path);
  std::string published = uplink_ip.str() + ":" + std::to_string(kPublishedPort);
  nat_check("tcp to published " + published, "outside",
            probe_tcp_via(outside, uplink_ip, kPublishedPort, web_ns, web.ip, kProbePort),
            *Ipv4::parse(kSandboxOutsideIp));
  nat_check("tcp to published " + published, eps[0].name,
            probe_tcp_via(Netns::open_path(eps[0].netns_path), uplink_ip, kPublishedPort, web_ns,
                          web.ip, kProbePort),
            eps[0].ip);

  // Policy: web takes only the first endpoint's TCP on its port; the others,
  // and pings, are dropped; web's own connections get their replies.
  node.set_policy(web.name, [&](const PeerResolver& resolve) {
    Policy p;
    p.ingress.default_action = PolicyAction::deny;
    p.ingress.rules.push_back(parse_policy_rule("allow tcp " + std::to_string(kProbePort) + " from " + eps[0].name,
                                                PolicyDir::ingress, resolve));
    return p;
  });
  std::vector<std::vector<std::string>> policy_rows;
  nlohmann::json policy = nlohmann::json::array();
  auto policy_check = [&](const std::string& what, const std::string& from, bool expect, const ProbeResult& r) {
    const bool ok = r.ok == expect;
    all_ok = all_ok && ok;
    policy_rows.push_back({what, from, expect ? "allowed" : "dropped",
                           ok ? (r.ok ? cell(r) : "dropped") : (r.ok ? "FAIL (passed)" : "FAIL (" + r.error + ")")});
    policy.push_back({{"check", what}, {"from", from}, {"expected", expect}, {"passed", r.ok}, {"ok", ok}});
  };
  const ProbeTimeout blocked(400);
  const std::string web_port = web.name + " tcp " + std::to_string(kProbePort);
  policy_check(web_port, eps[0].name, true,
               probe_tcp(Netns::open_path(eps[0].netns_path), web_ns, web.ip, kProbePort));
  policy_check(web_port, eps[1].name, false,
               probe_tcp(Netns::open_path(eps[1].netns_path), web_ns, web.ip, kProbePort, blocked));
  policy_check(web.name + " icmp", eps[0].name, false,
               probe_icmp(Netns::open_path(eps[0].netns_path), web.ip, blocked));
  policy_check(eps[0].name + " icmp (its reply comes back)", web.name, true, probe_icmp(web_ns, eps[0].ip));

  // One refused connection traced through the datapath: trace must say what
  // the probe above saw, and name the default that refused it.
  const std::string to_web = web.name + ":" + std::to_string(kProbePort) + "/tcp";
  const TraceResult traced = node.trace(parse_trace_request(eps[1].name, to_web, std::nullopt, std::nullopt));
  const bool trace_ok = traced.verdict.action == "drop" && traced.verdict.reason == "policy-default-deny";
  all_ok = all_ok && trace_ok;

  auto views = node.endpoints();

  if (ctx.json()) {
    nlohmann::json j = {{"node", node_name}, {"bridges", bridges}, {"pairs", pairs}, {"nat", nat},
                        {"policy", policy},   {"trace", trace_json(node_name, traced)},
                        {"ok", all_ok},       {"kept", keep}};
    for (const auto& v : views) j["endpoints"].push_back(to_json(v));
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "sandbox node " << node_name << " (pool " << cidr << "), endpoints ";
    for (size_t i = 0; i < eps.size(); ++i) std::cout << (i ? ", " : "") << eps[i].name;
    std::cout << "\nbridge devices in the node: "
              << (bridges.empty() ? "none" : std::to_string(bridges.size())) << "\n\n";
    print_table({"FROM", "TO", "TCP", "UDP", "ICMP"}, rows);
    std::cout << "\nNAT through the uplink " << uplink_ip.str() << " (published: " << published
              << " -> " << web.name << ":" << kProbePort << ")\n";
    print_table({"CHECK", "FROM", "SERVER SAW", "RESULT"}, nat_rows);
    std::cout << "\npolicy of " << web.name << ": ingress default deny, allow tcp " << kProbePort << " from "
              << eps[0].name << "\n";
    print_table({"CHECK", "FROM", "EXPECTED", "RESULT"}, policy_rows);
    std::cout << "\nebpfnet --node " << node_name << " trace --from " << eps[1].name << " --to " << to_web
              << (trace_ok ? "" : "   FAIL (expected drop: policy-default-deny)") << "\n";
    print_trace(traced);
    std::cout << "\n";
    std::vector<std::vector<std::string>> counter_rows;
    for (const auto& v : views) counter_rows.push_back(endpoint_row(v));
    print_table(endpoint_header(), counter_rows);
    std::cout << "\n" << (all_ok ? "every pair talks over TCP, UDP and ICMP through the eBPF datapath; "
                                    "masquerade, a published port and policy work"
                                 : "SOME CHECKS FAILED") << "\n";
    if (keep)
      std::cout << "kept; try: ebpfnet ns exec " << eps[0].name << " ping -c1 " << eps[1].ip.str()
                << "\nremove it with: ebpfnet node delete " << node_name << "\n";
    else
      std::cout << "sandbox removed\n";
  }
  return all_ok ? 0 : static_cast<int>(Errc::failed);
}

}  // namespace

void add_demo_command(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    bool keep = false;
    std::string cidr = "10.240.0.0/24";
  };
  auto a = std::make_shared<Args>();
  auto* demo = app.add_subcommand(
      "demo", "build a sandbox node with three endpoints and an uplink, check every pair talks, "
              "NAT, a published port and a policy, then clean up");
  demo->add_flag("--keep", a->keep, "leave the sandbox in place and print how to remove it");
  demo->add_option("--cidr", a->cidr, "the sandbox's pool (lives only inside the sandbox)")
      ->capture_default_str();
  demo->callback([&ctx, &action, a] {
    action = [&ctx, a] { return run_demo(ctx, a->keep, a->cidr); };
  });
}

}  // namespace ebpfnet::cli
