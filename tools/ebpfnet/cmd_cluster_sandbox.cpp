// ebpfnet cluster create|delete|start|status: a whole cluster in sandbox
// namespaces on this machine (the demo, tests and benches use it).
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "cluster_cli.hpp"
#include "output.hpp"
#include "ebpfnet/cluster/sandbox.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {
namespace {

using namespace cluster;

constexpr const char* kCreateHelp = R"(Makes a whole cluster on this machine, in sandbox namespaces only:
  NAME-ul      the underlay: a router namespace; node k's uplink is 198.18.(k-1).2/24
  NAME-etcd    etcd (Debian's etcd-server), listening only on 198.19.0.2:2379
  NAME-1..N    ordinary sandbox nodes (node list, --node and every command work on
               them), attached, each with a pool of --cidr that etcd's registry gave
               it, and a `cluster agent --overlay` running in it (detached)
With --mode native the uplinks share one segment instead (a bridge in NAME-ul,
addresses /16), each agent runs `--bgp` and its node's BIRD (Debian's bird2)
announces the pool over iBGP to every other node; no encapsulation.
Nothing is routed to or from the machine's root namespace. When it returns,
every node has a VXLAN tunnel (native: a route) to every other one:
  ebpfnet cluster create lab --nodes 3
  ebpfnet --node lab-1 endpoint add a; ebpfnet --node lab-2 endpoint add b
  ebpfnet ns exec a ping 10.244.1.2             # b's address, on another node
  ebpfnet cluster status lab
  ebpfnet cluster delete lab
A create that fails takes back everything it made. What the cluster owns
(namespaces, PIDs, addresses) is kept under STATE-DIR/.clusters/NAME/ with
etcd's data and the logs of etcd and each agent (NAME-K.log).)";

constexpr const char* kDeleteHelp = R"(Stops every agent (each revokes its lease) and etcd by their PIDs, deletes the
nodes with their endpoints and pins, the underlay and etcd namespaces, and the
cluster's directory. What is already gone is skipped: a delete that failed
midway, or a create that was killed, is finished by running it again.)";

constexpr const char* kStartHelp = R"(Starts the agent of every node whose agent is not running (it crashed or was
killed); running agents are left alone. An agent back within the lease TTL
keeps its record and its peers never drop it: traffic does not stop.)";

constexpr const char* kStatusHelp = R"(Per node: underlay address, pool, its record in etcd (lease and seconds left
of it), its agent (PID, running or not), and the peers programmed in its
overlay (pool via underlay address, with the node that owns it); in native
mode the routes to peers' pools in its table and its BIRD's BGP session to
each peer (birdc show protocols). etcd is asked from inside the underlay;
when it does not answer the rest is shown.)";

std::string agent_str(const DaemonId& d, bool alive) {
  if (d.pid <= 0) return "not started";
  return "pid " + std::to_string(d.pid) + (alive ? " running" : " not running");
}

// The node a BGP protocol of BIRD's configuration is the session to.
std::string session_peer(const SandboxStatus& s, const BgpSession& b) {
  for (const auto& n : s.cluster.nodes)
    if (bgp_protocol_name(n.name) == b.protocol) return n.name;
  return b.protocol;
}

std::string owner_of(const SandboxStatus& s, const TunnelPeerRecord& t) {
  for (const auto& n : s.cluster.nodes)
    if (n.pool == t.pool && n.underlay == t.via) return n.name;
  return "";
}

nlohmann::json status_json(const SandboxStatus& s) {
  const SandboxCluster& c = s.cluster;
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : s.nodes) {
    nlohmann::json peers = nlohmann::json::array();
    for (const auto& t : n.programmed) {
      const std::string owner = owner_of(s, t);
      peers.push_back({{"pool", t.pool.str()}, {"via", t.via.str()},
                       {"node", owner.empty() ? nlohmann::json(nullptr) : nlohmann::json(owner)}});
    }
    nlohmann::json j = {{"name", n.node.name},
                        {"underlay", n.node.underlay ? nlohmann::json(n.node.underlay->str()) : nlohmann::json(nullptr)},
                        {"pool", n.node.pool ? nlohmann::json(n.node.pool->str()) : nlohmann::json(nullptr)},
                        {"registered", n.registered},
                        {"lease", n.lease.empty() ? nlohmann::json(nullptr) : nlohmann::json(n.lease)},
                        {"ttl_left", n.ttl_left >= 0 ? nlohmann::json(n.ttl_left) : nlohmann::json(nullptr)},
                        {"agent", {{"pid", n.node.agent.pid}, {"alive", n.agent_alive}}},
                        {"peers", peers}};
    if (!n.error.empty()) j["error"] = n.error;
    if (c.mode == Mode::native) {
      nlohmann::json bgp = nlohmann::json::array();
      for (const auto& b : n.bgp)
        bgp.push_back({{"peer", session_peer(s, b)}, {"protocol", b.protocol}, {"state", b.state}, {"info", b.info}});
      j["bgp"] = bgp;
      if (!n.bgp_error.empty()) j["bgp_error"] = n.bgp_error;
    }
    nodes.push_back(j);
  }
  nlohmann::json etcd = {{"url", c.etcd_url()}, {"netns", c.etcd_ns}, {"pid", c.etcd.pid}, {"alive", s.etcd_alive}};
  if (!s.etcd_error.empty()) etcd["error"] = s.etcd_error;
  return {{"cluster", c.name},       {"mode", mode_name(c.mode)},     {"cidr", c.config.cidr.str()},
          {"pool_prefix", c.config.pool_prefix}, {"ttl", c.ttl},      {"underlay_netns", c.underlay_ns},
          {"etcd", etcd},            {"nodes", nodes}};
}

void print_status(const SandboxStatus& s) {
  const SandboxCluster& c = s.cluster;
  std::cout << "cluster " << c.name << ": " << mode_name(c.mode) << ", " << c.config.cidr.str() << " in pools of /"
            << c.config.pool_prefix << ", lease TTL " << c.ttl << " s, underlay namespace " << c.underlay_ns << "\n"
            << "etcd    " << c.etcd_url() << " in " << c.etcd_ns << ", " << agent_str(c.etcd, s.etcd_alive);
  if (!s.etcd_error.empty()) std::cout << " (" << s.etcd_error << ")";
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : s.nodes) {
    std::string peers;
    for (const auto& t : n.programmed) {
      const std::string owner = owner_of(s, t);
      peers += (peers.empty() ? "" : ", ") + (owner.empty() ? "(no node)" : owner) + " " + t.pool.str() + " via " +
               t.via.str();
    }
    if (!n.error.empty()) peers = n.error;
    rows.push_back({n.node.name, n.node.underlay ? n.node.underlay->str() : "-", n.node.pool ? n.node.pool->str() : "-",
                    n.registered ? n.lease : "not registered", n.ttl_left >= 0 ? std::to_string(n.ttl_left) + " s" : "-",
                    agent_str(n.node.agent, n.agent_alive), peers.empty() ? "none" : peers});
    if (c.mode == Mode::native) {
      std::string bgp;
      for (const auto& b : n.bgp)
        bgp += (bgp.empty() ? "" : ", ") + session_peer(s, b) + " " + b.state + (b.info.empty() ? "" : " " + b.info);
      if (!n.bgp_error.empty()) bgp = n.bgp_error;
      rows.back().push_back(bgp.empty() ? "none" : bgp);
    }
  }
  std::vector<std::string> head = {"NODE", "UNDERLAY", "POOL", "LEASE", "TTL LEFT", "AGENT",
                                   c.mode == Mode::native ? "ROUTES TO PEERS" : "PEERS PROGRAMMED"};
  if (c.mode == Mode::native) head.push_back("BGP");
  print_table(head, rows);
}

struct SandboxArgs {
  std::string name, mode = "vxlan", cidr = "10.244.0.0/16";
  int nodes = 3, pool_size = 24, ttl = 5;
};

// A sandbox subcommand on a cluster NAME: its help, and what it runs.
using SandboxRun = std::function<int(const Context&, const SandboxArgs&)>;
CLI::App* add_sandbox_command(CLI::App* cl, Context& ctx, Action& action, std::shared_ptr<SandboxArgs> a,
                              const char* cmd, const char* what, const char* footer, SandboxRun run) {
  auto* sub = cl->add_subcommand(cmd, what);
  sub->footer(footer);
  sub->add_option("NAME", a->name, "the cluster's name (a DNS label; its nodes are NAME-1..NAME-N)")->required();
  sub->callback([&ctx, &action, a, run] { action = [&ctx, a, run] { return run(ctx, *a); }; });
  return sub;
}

int create(const Context& ctx, const SandboxArgs& a) {
  SandboxOptions o;
  o.name = a.name;
  o.nodes = a.nodes;
  o.mode = *parse_mode(a.mode);
  o.config = {parse_cidr(a.cidr), a.pool_size};
  o.ttl = a.ttl;
  create_sandbox(ctx.env, o);
  const SandboxStatus s = sandbox_status(ctx.env, a.name);
  if (ctx.json()) {
    std::cout << status_json(s).dump() << "\n";
    return 0;
  }
  print_status(s);
  std::cout << "endpoints on any node reach each other: ebpfnet --node " << a.name
            << "-1 endpoint add NAME; removed by: ebpfnet cluster delete " << a.name << "\n";
  return 0;
}

int del(const Context& ctx, const SandboxArgs& a) {
  delete_sandbox(ctx.env, a.name);
  if (ctx.json()) std::cout << nlohmann::json{{"cluster", a.name}, {"deleted", true}}.dump() << "\n";
  else std::cout << "sandbox cluster " << a.name << " removed\n";
  return 0;
}

int start(const Context& ctx, const SandboxArgs& a) {
  const auto started = start_agents(ctx.env, a.name);
  if (ctx.json()) {
    std::cout << nlohmann::json{{"cluster", a.name}, {"started", started}}.dump() << "\n";
    return 0;
  }
  if (started.empty()) std::cout << "every agent of " << a.name << " is running\n";
  for (const auto& n : started) std::cout << "agent of " << n << " started\n";
  return 0;
}

int status(const Context& ctx, const SandboxArgs& a) {
  const SandboxStatus s = sandbox_status(ctx.env, a.name);
  if (ctx.json()) std::cout << status_json(s).dump() << "\n";
  else print_status(s);
  return 0;
}

}  // namespace

void add_cluster_sandbox_commands(CLI::App* cl, Context& ctx, Action& action) {
  auto a = std::make_shared<SandboxArgs>();
  auto* made = add_sandbox_command(cl, ctx, action, a, "create",
                                   "sandbox: N nodes on an underlay, etcd and the agents, one command", kCreateHelp,
                                   create);
  made->add_option("--nodes", a->nodes, "how many nodes")->check(CLI::Range(1, kMaxSandboxNodes))->capture_default_str();
  made->add_option("--mode", a->mode, "how nodes reach each other's pools: vxlan (overlay) or native (BGP with BIRD)")
      ->check(CLI::IsMember({"vxlan", "native"}))
      ->capture_default_str();
  made->add_option("--cidr", a->cidr, "the cluster CIDR the pools are carved from")->type_name("CIDR")->capture_default_str();
  made->add_option("--pool-size", a->pool_size, "prefix length of each node's pool")->type_name("LEN")->capture_default_str();
  made->add_option("--ttl", a->ttl, "seconds a node's record outlives its dead agent")
      ->type_name("S")
      ->check(CLI::Range(2, 3600))
      ->capture_default_str();
  add_sandbox_command(cl, ctx, action, a, "delete", "sandbox: stop the agents and etcd, remove everything create made",
                      kDeleteHelp, del);
  add_sandbox_command(cl, ctx, action, a, "start", "sandbox: start the agents that are not running", kStartHelp, start);
  add_sandbox_command(cl, ctx, action, a, "status", "sandbox: nodes, pools, underlay, leases, peers, agents",
                      kStatusHelp, status);
}

}  // namespace ebpfnet::cli
