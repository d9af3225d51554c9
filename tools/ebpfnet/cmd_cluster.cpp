// ebpfnet cluster agent|peers: a node in a cluster whose shared state is
// etcd (docs/cluster.md). The agent is the long-running part: it registers
// the node under a lease, keeps it alive and watches the other nodes.
// Sandbox clusters (create|delete|start|status): cmd_cluster_sandbox.cpp.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli.hpp"
#include "cluster_cli.hpp"
#include "output.hpp"
#include "ebpfnet/cluster/agent.hpp"
#include "ebpfnet/cluster/bgp_peers.hpp"
#include "ebpfnet/cluster/overlay_peers.hpp"
#include "ebpfnet/cluster/registry.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netns.hpp"

namespace ebpfnet::cli {
namespace {

using namespace cluster;

constexpr const char* kClusterHelp = R"(Nodes on several hosts share one cluster whose state lives in etcd (3.4+, its
JSON gateway at http://ADDR:2379). Each node runs an agent that registers it
under a lease, takes a pool of the cluster CIDR, and watches its peers:
  ebpfnet --node lab-1 cluster agent --etcd http://198.18.0.1:2379 --cluster lab \
      --underlay 198.18.0.11 --cidr 10.244.0.0/16          # the first agent creates the cluster
  ebpfnet cluster peers --etcd http://198.18.0.1:2379 --cluster lab -o json
The agent of a sandbox node runs in that node's namespace (it enters it);
otherwise in the namespace it is started in. Peers are logged, and with
--overlay programmed into the node's VXLAN overlay (docs/overlay.md), with
--bgp announced and learnt over BGP by the node's BIRD (--mode native).
A whole cluster on this machine, in sandbox namespaces (etcd, N nodes, agents):
  ebpfnet cluster create lab --nodes 3; ebpfnet cluster status lab; ebpfnet cluster delete lab
See docs/cluster.md for the keys, leases and what happens when etcd is down.)";

constexpr const char* kAgentHelp = R"(Runs in the foreground until SIGTERM or Ctrl-C, then revokes its lease so its
peers drop it at once (killed, it drops out after --ttl seconds). Examples:
  ebpfnet --node lab-1 cluster agent --etcd http://198.18.0.1:2379 --cluster lab \
      --underlay 198.18.0.11 --cidr 10.244.0.0/16 --pool-size 24
  ebpfnet --node lab-2 cluster agent --etcd http://198.18.0.1:2379 --cluster lab --underlay 198.18.0.12
--node is the node's name in the cluster (default: this host's name); when
it names a sandbox node, the agent talks to etcd from inside that node's
namespace. The node keeps its pool across restarts. While etcd does not answer the agent
keeps its last known peers and retries; when etcd returns it re-lists.
Exit codes: 2 bad input or a CIDR other than the cluster's, 3 the cluster does
not exist and no --cidr was given, 4 the node name is held by another node's
live lease, 5 no pool left, 1 etcd failed otherwise.)";

constexpr const char* kPeersHelp = R"(Lists the nodes registered in the cluster (those whose lease lives), read
straight from etcd: name, underlay address, pool, mode and lease. Records
that are not valid are listed apart, with the reason they are ignored.
  ebpfnet cluster peers --etcd http://198.18.0.1:2379 --cluster lab [-o json])";

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  std::string s = buf;
  if (auto dot = s.find('.'); dot != std::string::npos) s.resize(dot);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Ipv4 parse_underlay(const std::string& s) {
  auto a = Ipv4::parse(s);
  if (!a) throw Error(Errc::usage, "--underlay '" + s + "' is not an IPv4 address such as 198.18.0.11");
  if (!valid_underlay(*a))
    throw Error(Errc::usage, "--underlay " + s + " is not a unicast address other nodes can reach");
  return *a;
}

// The namespace of --node when it names a sandbox node of this state directory.
std::optional<Netns> sandbox_netns(const Context& ctx) {
  if (!ctx.node_given) return std::nullopt;
  const auto nodes = Node::list(ctx.env);
  if (std::find(nodes.begin(), nodes.end(), ctx.node) == nodes.end()) return std::nullopt;
  auto st = ctx.open_node().load_state();
  if (!st || !st->sandbox) return std::nullopt;
  return Netns::open_named(ctx.node);
}

struct Args {
  std::string etcd, cluster, underlay, cidr, mode = "vxlan";
  int pool_size = 24;
  int ttl = 5;
  bool overlay = false;
  bool bgp = false;
};

// Runs the agent on a thread; the calling thread waits for SIGTERM/SIGINT.
int run_agent(const AgentOptions& opts, PeerConsumer& consumer) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // before any thread: they inherit it

  Agent agent(opts, consumer);
  std::atomic<bool> ended{false};
  std::exception_ptr failure;
  std::jthread worker([&](std::stop_token stop) {
    try {
      agent.run(stop);
    } catch (...) {
      failure = std::current_exception();
    }
    ended = true;
  });
  const timespec tick{0, 200 * 1000 * 1000};
  while (!ended) {
    const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("node {}: {} received, leaving the cluster", opts.node, sig == SIGINT ? "SIGINT" : "SIGTERM");
      worker.request_stop();
      break;
    }
  }
  worker.join();
  if (failure) std::rethrow_exception(failure);
  return 0;
}

int list_peers(const Context& ctx, const Args& a) {
  EtcdClient client(a.etcd);
  Keys keys(a.cluster);
  std::optional<ClusterConfig> config;
  if (auto kv = client.get(keys.config())) {
    std::string why;
    config = decode_config(kv->value, &why);
    if (!config) spdlog::warn("cluster configuration {} is unreadable: {}", keys.config(), printable(why));
  }
  const RangeResult listed = client.list(keys.nodes());
  nlohmann::json nodes = nlohmann::json::array(), ignored = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const auto& kv : listed.kvs) {
    std::string why;
    auto name = keys.node_of(kv.key);
    auto r = decode_node(kv.value, config ? &*config : nullptr, &why);
    if (r && name && r->name != *name) {
      why = "its name " + r->name + " is not the key's";
      r.reset();
    }
    if (!r) {
      ignored.push_back({{"key", printable(kv.key, 200)}, {"reason", printable(why, 200)}});
      continue;
    }
    char lease[32];
    std::snprintf(lease, sizeof lease, "%llx", static_cast<unsigned long long>(kv.lease));
    nlohmann::json j = {{"name", r->name},         {"underlay", r->underlay.str()}, {"pool", r->pool.str()},
                        {"mode", mode_name(r->mode)}, {"lease", lease}};
    if (r->vtep_mac) j["vtep_mac"] = mac_str(*r->vtep_mac);
    nodes.push_back(j);
    rows.push_back({r->name, r->underlay.str(), r->pool.str(), std::string(mode_name(r->mode)), lease});
  }
  if (ctx.json()) {
    nlohmann::json out = {{"cluster", a.cluster}, {"etcd", a.etcd}, {"revision", listed.revision},
                          {"nodes", nodes},       {"ignored", ignored}};
    out["cidr"] = config ? nlohmann::json(config->cidr.str()) : nlohmann::json(nullptr);
    out["pool_prefix"] = config ? nlohmann::json(config->pool_prefix) : nlohmann::json(nullptr);
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (config) std::cout << "cluster " << a.cluster << ": " << config->cidr.str() << ", pools of /" << config->pool_prefix << "\n";
  else std::cout << "cluster " << a.cluster << ": no configuration (no agent has created it)\n";
  print_table({"NODE", "UNDERLAY", "POOL", "MODE", "LEASE"}, rows);
  for (const auto& i : ignored)
    std::cout << "ignored " << i["key"].get<std::string>() << ": " << i["reason"].get<std::string>() << "\n";
  return 0;
}

}  // namespace

void add_cluster_commands(CLI::App& app, Context& ctx, Action& action) {
  auto a = std::make_shared<Args>();
  auto* cl = app.add_subcommand("cluster", kClusterSummary);
  cl->footer(kClusterHelp);
  cl->require_subcommand(1);

  auto common = [a](CLI::App* cmd) {
    cmd->add_option("--etcd", a->etcd, "etcd's client URL (its JSON gateway)")->type_name("URL")->required();
    cmd->add_option("--cluster", a->cluster, "the cluster's name (keys under /ebpfnet/NAME/)")
        ->type_name("NAME")
        ->required();
  };

  auto* agent = cl->add_subcommand("agent", "join the cluster and keep this node in it (foreground)");
  agent->footer(kAgentHelp);
  common(agent);
  agent->add_option("--underlay", a->underlay, "the address other nodes reach this one at")
      ->type_name("ADDR")
      ->required();
  agent->add_option("--cidr", a->cidr, "the cluster CIDR pools are carved from (creates the cluster)")
      ->type_name("CIDR");
  agent->add_option("--pool-size", a->pool_size, "prefix length of each node's pool, with --cidr")
      ->type_name("LEN")
      ->capture_default_str();
  agent->add_option("--ttl", a->ttl, "seconds the node's record outlives a dead agent")
      ->type_name("S")
      ->check(CLI::Range(2, 3600))
      ->capture_default_str();
  agent->add_option("--mode", a->mode, "how peers reach this node's pool")
      ->check(CLI::IsMember({"vxlan", "native"}))
      ->capture_default_str();
  agent->add_flag("--overlay", a->overlay,
                  "program the node's VXLAN overlay from its peers (the node, --node, must be attached)");
  agent->add_flag("--bgp", a->bgp,
                  "native routing: run the node's BIRD (bird2) with its config rendered from the peers, "
                  "announcing the pool over iBGP (needs --mode native and an attached node)");
  agent->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      AgentOptions o;
      o.etcd = a->etcd;
      o.cluster = a->cluster;
      o.node = ctx.node_given ? ctx.node : host_name();
      o.underlay = parse_underlay(a->underlay);
      if (!a->cidr.empty()) {
        o.cidr = parse_cidr(a->cidr);
        if (std::string bad = check_config({*o.cidr, a->pool_size}); !bad.empty())
          throw Error(Errc::usage, "--pool-size: " + bad);
      }
      o.pool_prefix = a->pool_size;
      o.mode = *parse_mode(a->mode);
      o.ttl = std::chrono::seconds(a->ttl);
      // A daemon's log is its output: say what it does unless told more.
      if (spdlog::get_level() > spdlog::level::info) spdlog::set_level(spdlog::level::info);
      // A sandbox node's agent reaches etcd over the node's own uplink. The
      // whole process enters (before any thread starts, so all inherit it);
      // its mounts stay the host's, so the node's pins in bpffs are in view,
      // which they are not under ip netns exec.
      std::optional<NetnsGuard> inside;
      if (auto sandbox = sandbox_netns(ctx)) inside.emplace(*sandbox);
      if (a->bgp) {
        if (o.mode != Mode::native) throw Error(Errc::usage, "--bgp routes natively: it needs --mode native");
        if (a->overlay) throw Error(Errc::usage, "--bgp and --overlay: a node routes one way");
        if (std::string why = Bird::missing(); !why.empty()) throw Error(Errc::environment, why);
        Node node = ctx.open_node();
        if (!node.status().prog)
          throw Error(Errc::usage, "--bgp: node '" + node.name() + "' is not attached (ebpfnet --node " +
                                       node.name() + " attach)");
        // BIRD keeps the tag of a sandbox cluster's daemons, so the
        // cluster's delete finds and stops it.
        const char* tag = std::getenv("EBPFNET_DAEMON_OF");
        BgpPeerConsumer bgp(node, ctx.env.state_root / node.name(), tag ? tag : "");
        return run_agent(o, bgp);
      }
      if (!a->overlay) {
        LoggingPeerConsumer log_peers;
        return run_agent(o, log_peers);
      }
      Node node = ctx.open_node();
      if (!node.status().prog)
        throw Error(Errc::usage, "--overlay: node '" + node.name() + "' is not attached (ebpfnet --node " +
                                     node.name() + " attach)");
      OverlayPeerConsumer overlay(node);
      return run_agent(o, overlay);
    };
  });

  auto* peers = cl->add_subcommand("peers", "the nodes registered in the cluster, read from etcd");
  peers->footer(kPeersHelp);
  common(peers);
  peers->callback([&ctx, &action, a] {
    action = [&ctx, a] { return list_peers(ctx, *a); };
  });

  add_cluster_sandbox_commands(cl, ctx, action);
}

}  // namespace ebpfnet::cli
