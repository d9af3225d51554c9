#include "ebpfnet/cluster/sandbox.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "ebpfnet/cluster/bird.hpp"
#include "ebpfnet/cluster/in_netns.hpp"
#include "ebpfnet/cluster/registry.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/netns.hpp"

namespace ebpfnet::cluster {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// etcd's link to the underlay router: a /24 of its own, apart from the
// nodes' transfer nets 198.18.N.0/24 that Node::create hands out there.
const Ipv4 kEtcdRouterIp = *Ipv4::parse("198.19.0.1");
const Ipv4 kEtcdIp = *Ipv4::parse("198.19.0.2");
const Ipv4Cidr kNodeTransferNets = *Ipv4Cidr::parse("198.18.0.0/16");
// status and create ask etcd on a sandbox link: it answers at once or not at all.
const HttpTimeouts kQuick{500ms, 2000ms};
// Native mode: the nodes' uplinks share one segment, this bridge of the
// underlay namespace, and their addresses are on-link to each other (/16):
// each node's BIRD reaches its peers directly and installs routes to their
// pools through them, as nodes of one rack do (Calico's full mesh). The
// router's addresses move onto the bridge; etcd stays behind the router.
constexpr const char* kUnderlayBridge = "ul0";
constexpr int kSharedSegmentPrefix = 16;

std::string node_name(const std::string& cluster, int k) { return cluster + "-" + std::to_string(k); }

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw_errno(errno, "finding this ebpfnet binary (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

// The last line a daemon wrote, for an error that says why it ended.
std::string last_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last.empty() ? "(nothing in " + log.string() + ")" : printable(last, 300) + " (" + log.string() + ")";
}

// Runs iproute2's ip (for what Netlink does not make: a bridge and its ports).
void ip(const std::vector<std::string>& args) {
  std::string prog = find_program("ip");
  if (prog.empty()) prog = "/usr/sbin/ip";
  std::vector<std::string> argv = {prog};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProgramRun r = run_program(argv);
  if (r.status != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw Error(Errc::failed, cmd + ": " + printable(r.output, 300));
  }
}

void in_underlay(const SandboxCluster& c, const std::function<void()>& fn) {
  run_in(Netns::open_named(c.underlay_ns), fn);
}

// Nothing of the cluster's may exist yet: it would be another's.
void check_free(const Env& env, const SandboxOptions& o) {
  Keys check(o.name);
  if (o.nodes < 1 || o.nodes > kMaxSandboxNodes)
    throw Error(Errc::usage, "--nodes " + std::to_string(o.nodes) + ": from 1 to " + std::to_string(kMaxSandboxNodes));
  if (o.mode == Mode::native)
    if (std::string why = Bird::missing(); !why.empty()) throw Error(Errc::environment, why);
  if (std::string bad = check_config(o.config); !bad.empty()) throw Error(Errc::usage, bad);
  if (o.ttl < 2 || o.ttl > 3600) throw Error(Errc::usage, "--ttl " + std::to_string(o.ttl) + ": from 2 to 3600 s");
  if ((uint64_t{1} << (o.config.pool_prefix - o.config.cidr.prefix)) < uint64_t(o.nodes))
    throw Error(Errc::usage, o.config.cidr.str() + " has fewer than " + std::to_string(o.nodes) + " pools of /" +
                                 std::to_string(o.config.pool_prefix));
  std::vector<std::string> names = {o.name + "-ul", o.name + "-etcd"};
  for (int k = 1; k <= o.nodes; ++k) names.push_back(node_name(o.name, k));
  const auto nodes = Node::list(env);
  for (const auto& n : names) {
    validate_name("namespace", n);
    if (netns::exists(n)) throw Error(Errc::exists, "network namespace '" + n + "' exists: the cluster would take it");
    if (std::find(nodes.begin(), nodes.end(), n) != nodes.end())
      throw Error(Errc::exists, "node '" + n + "' exists: the cluster would take its name");
  }
}

// The router the nodes' uplinks join, and etcd's namespace behind it.
void make_underlay(const SandboxStore& store, SandboxCluster& c, const std::string& name) {
  netns::add(name + "-ul");
  c.underlay_ns = name + "-ul";
  store.save(c);
  Netns ul = Netns::open_named(c.underlay_ns);
  Netlink nl = Netlink::in(ul);
  if (auto lo = nl.link("lo")) nl.set_up(lo->ifindex);
  netns::write_sysctl(ul, "net/ipv4/ip_forward", "1");  // between nodes, and to etcd
  if (c.mode == Mode::native) {
    ip({"-n", c.underlay_ns, "link", "add", kUnderlayBridge, "type", "bridge"});
    ip({"-n", c.underlay_ns, "link", "set", kUnderlayBridge, "up"});
  }

  netns::add(name + "-etcd");
  c.etcd_ns = name + "-etcd";
  store.save(c);
  Netns en = Netns::open_named(c.etcd_ns);
  // Made in the router with its peer straight in etcd's namespace: the pair
  // never exists in the root namespace.
  const int r = nl.create_veth({"etcd0", random_mac(), "eth0", random_mac(), en.fd()});
  nl.add_address({r, kEtcdRouterIp, 24});
  nl.set_up(r);
  Netlink ne = Netlink::in(en);
  if (auto lo = ne.link("lo")) ne.set_up(lo->ifindex);
  const int e = ne.ifindex_of("eth0");
  ne.add_address({e, kEtcdIp, 24});
  ne.set_up(e);
  ne.add_route({kNodeTransferNets, kEtcdRouterIp, e, std::nullopt, false});  // no default route: only the nodes
  c.etcd_ip = kEtcdIp;
}

DaemonId start_etcd(const SandboxStore& store, const SandboxCluster& c) {
  const std::string etcd = find_program("etcd");
  if (etcd.empty()) throw Error(Errc::environment, "etcd is not on PATH (Debian: apt-get install etcd-server)");
  const std::string url = c.etcd_url(), peer = "http://" + c.etcd_ip.str() + ":2380";
  UniqueFd log = store.open_log("etcd.log");
  Netns ns = Netns::open_named(c.etcd_ns);
  return spawn_daemon({{etcd, "--name", c.etcd_ns, "--data-dir", (store.dir() / "etcd").string(),
                        "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer,
                        "--initial-advertise-peer-urls", peer, "--initial-cluster", c.etcd_ns + "=" + peer,
                        "--initial-cluster-token", c.etcd_ns, "--logger", "zap", "--log-outputs", "stderr"},
                       ns.fd(),
                       log.get(),
                       store.dir().string()});
}

// Waits for etcd, creates the cluster's configuration and takes each
// node's pool through the registry (compare-and-swap), as agents do.
void allocate_pools(const SandboxStore& store, SandboxCluster& c) {
  in_underlay(c, [&] {
    EtcdClient client(c.etcd_url(), kQuick);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      try {
        client.get(Keys(c.name).config());
        break;
      } catch (const EtcdError& e) {
        if (!daemon_alive(c.etcd))
          throw Error(Errc::failed, "etcd ended at start: " + last_line(store.dir() / "etcd.log"));
        if (std::chrono::steady_clock::now() > deadline)
          throw Error(Errc::failed, "etcd at " + c.etcd_url() + " did not answer within 20 s: " + e.what());
        std::this_thread::sleep_for(100ms);
      }
    }
    Registry reg(client, c.name);
    const ClusterConfig config = reg.ensure_config(c.config);
    for (auto& n : c.nodes) n.pool = reg.allocate_pool(config, n.name);
  });
  store.save(c);
}

// Native mode: node n's uplink leaves its transfer net for the shared
// segment (see kUnderlayBridge); its address stays the same.
void onto_shared_segment(const SandboxCluster& c, const SandboxNode& n) {
  Netlink nl = Netlink::in(Netns::open_named(c.underlay_ns));
  const Ipv4 up = *n.underlay, gw(up.host() - 1);
  int leg = 0;
  for (const auto& a : nl.addresses())
    if (a.ip == gw) {
      leg = a.ifindex;
      nl.del_address(a);
    }
  if (!leg) throw Error(Errc::failed, "node " + n.name + ": no router address " + gw.str() + " in " + c.underlay_ns);
  ip({"-n", c.underlay_ns, "link", "set", "dev", nl.name_of(leg), "master", kUnderlayBridge});
  nl.add_address({nl.ifindex_of(kUnderlayBridge), gw, kSharedSegmentPrefix});
  Netlink nn = Netlink::in(Netns::open_named(n.name));
  const int eth0 = nn.ifindex_of("eth0");
  nn.add_address({eth0, up, kSharedSegmentPrefix});
  nn.del_address({eth0, up, 24});
  bool has_default = false;
  for (const auto& r : nn.routes()) has_default |= r.dst.prefix == 0;
  if (!has_default) nn.add_route({{Ipv4(0), 0}, gw, eth0, std::nullopt, false});
}

void make_node(const Env& env, const SandboxStore& store, SandboxCluster& c, SandboxNode& n) {
  try {
    Node::create(env, n.name, *n.pool, {}, true, c.underlay_ns);
  } catch (const Error& e) {
    if (e.code() == Errc::exists) {  // another's, made since the check: never ours to delete
      n.name.clear();
      store.save(c);
    }
    throw;
  }
  Netlink nl = Netlink::in(Netns::open_named(n.name));
  for (const auto& a : nl.addresses(nl.ifindex_of("eth0"))) n.underlay = a.ip;
  if (!n.underlay) throw Error(Errc::failed, "node " + n.name + ": its uplink has no address");
  store.save(c);
  if (c.mode == Mode::native) onto_shared_segment(c, n);
  Node(env, n.name).attach();
}

DaemonId start_agent(const Env& env, const SandboxStore& store, const SandboxCluster& c, const SandboxNode& n,
                     const std::string& exe) {
  UniqueFd log = store.open_log(n.name + ".log");
  // The agent enters its node's namespace itself (--node of a sandbox node).
  return spawn_daemon({{exe, "--state-dir", env.state_root.string(), "--node", n.name, "cluster", "agent", "--etcd",
                        c.etcd_url(), "--cluster", c.name, "--underlay", n.underlay->str(), "--mode",
                        std::string(mode_name(c.mode)), "--ttl", std::to_string(c.ttl),
                        c.mode == Mode::native ? "--bgp" : "--overlay"},
                       -1,
                       log.get(),
                       store.dir().string()});
}

// Native mode: the routes of the node's table to other nodes' pools (BIRD's).
std::vector<TunnelPeerRecord> native_routes(const SandboxCluster& c, const std::string& node) {
  std::vector<TunnelPeerRecord> out;
  Netlink nl = Netlink::in(Netns::open_named(node));
  for (const auto& r : nl.routes())
    if (r.via && r.dst.prefix == c.config.pool_prefix && c.config.cidr.contains(r.dst.network))
      out.push_back({r.dst, *r.via});
  return out;
}

std::vector<TunnelPeerRecord> programmed(const Env& env, const SandboxCluster& c, const std::string& node) {
  if (c.mode == Mode::native) return native_routes(c, node);
  auto o = Node(env, node).overlay();
  return o ? o->peers : std::vector<TunnelPeerRecord>{};
}

size_t programmed_peers(const Env& env, const SandboxCluster& c, const std::string& node) {
  return programmed(env, c, node).size();
}

// Every agent up and every node with a tunnel to every other.
void wait_ready(const Env& env, const SandboxStore& store, const SandboxCluster& c, std::chrono::seconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  const size_t want = c.nodes.size() - 1;
  for (;;) {
    const SandboxNode* behind = nullptr;
    size_t have = 0;
    for (const auto& n : c.nodes) {
      if (!daemon_alive(n.agent))
        throw Error(Errc::failed, "the agent of node " + n.name + " ended: " + last_line(store.dir() / (n.name + ".log")));
      if ((have = programmed_peers(env, c, n.name)) < want) {
        behind = &n;
        break;
      }
    }
    if (!behind) return;
    if (std::chrono::steady_clock::now() > deadline)
      throw Error(Errc::failed, "node " + behind->name + " has " + std::to_string(have) + " of " +
                                    std::to_string(want) + " peers after " + std::to_string(within.count()) +
                                    " s: " + last_line(store.dir() / (behind->name + ".log")));
    std::this_thread::sleep_for(100ms);
  }
}

// Takes away what the record names, newest first; what is gone is skipped.
// Returns what could not be removed.
std::vector<std::string> teardown(const Env& env, const SandboxStore& store, const SandboxCluster& c) {
  std::vector<std::string> problems;
  // Agents first: stopped, each revokes its lease, and none reprograms a
  // node that is going. Then any daemon of the cluster no record names (its
  // starter was killed before it wrote the PID down).
  for (const auto& n : c.nodes)
    if (!stop_daemon(n.agent, 3s)) problems.push_back("the agent of " + n.name + " (pid " + std::to_string(n.agent.pid) + ") did not stop");
  for (const auto& d : daemons_of(store.dir().string()))
    if (!stop_daemon(d, 3s)) problems.push_back("a daemon of the cluster (pid " + std::to_string(d.pid) + ") did not stop");
  // Every recorded node, listed or not: one whose create was killed has no
  // state yet, and destroy recovers what its journal says it made.
  for (auto it = c.nodes.rbegin(); it != c.nodes.rend(); ++it) {
    if (it->name.empty()) continue;
    try {
      Node::destroy(env, it->name);
    } catch (const Error& e) {
      if (e.code() != Errc::not_found) problems.push_back("node " + it->name + ": " + e.what());
    } catch (const std::exception& e) {
      problems.push_back("node " + it->name + ": " + e.what());
    }
  }
  if (!stop_daemon(c.etcd, 5s)) problems.push_back("etcd (pid " + std::to_string(c.etcd.pid) + ") did not stop");
  for (const auto& ns : {c.etcd_ns, c.underlay_ns}) {
    if (ns.empty() || !netns::exists(ns)) continue;
    try {
      netns::del(ns);
    } catch (const std::exception& e) {
      problems.push_back("namespace " + ns + ": " + e.what());
    }
  }
  return problems;
}

// Removes the cluster when every part went; else says what is left and
// keeps the record, so that delete can be run again.
void remove_all(const Env& env, const SandboxStore& store, const std::optional<SandboxCluster>& c) {
  const auto problems = c ? teardown(env, store, *c) : std::vector<std::string>{};
  if (!problems.empty()) {
    std::string what;
    for (const auto& p : problems) what += (what.empty() ? "" : "; ") + p;
    throw Error(Errc::failed, "sandbox cluster " + c->name + " not fully removed (run delete again): " + what);
  }
  store.remove();
}

}  // namespace

SandboxCluster create_sandbox(const Env& env_in, const SandboxOptions& o) {
  Env env = env_in;
  env.state_root = fs::absolute(env.state_root);  // the agents run elsewhere
  check_free(env, o);
  const std::string exe = self_exe();  // the agents run this very binary
  SandboxStore store(env.state_root, o.name, true);
  store.lock();
  SandboxCluster c;
  c.name = o.name;
  c.mode = o.mode;
  c.config = o.config;
  c.ttl = o.ttl;
  for (int k = 1; k <= o.nodes; ++k) c.nodes.push_back({node_name(o.name, k), std::nullopt, std::nullopt, {}});
  try {
    store.save(c);
    make_underlay(store, c, o.name);
    c.etcd = start_etcd(store, c);
    store.save(c);
    allocate_pools(store, c);
    for (auto& n : c.nodes) make_node(env, store, c, n);
    for (auto& n : c.nodes) {
      n.agent = start_agent(env, store, c, n, exe);
      store.save(c);
    }
    wait_ready(env, store, c, o.ready_within);
    spdlog::info("sandbox cluster {}: {} nodes, etcd at {}", c.name, c.nodes.size(), c.etcd_url());
    return c;
  } catch (const std::exception& e) {
    spdlog::warn("sandbox cluster {}: create failed, taking back what it made: {}", c.name, e.what());
    try {
      remove_all(env, store, c);
    } catch (const std::exception& e2) {
      spdlog::error("{}", e2.what());
    }
    throw;
  }
}

void delete_sandbox(const Env& env, const std::string& name) {
  SandboxStore store(fs::absolute(env.state_root), name, false);
  store.lock();  // a create still running is finished (or taken back) first
  remove_all(env, store, store.load());
}

std::vector<std::string> start_agents(const Env& env_in, const std::string& name) {
  Env env = env_in;
  env.state_root = fs::absolute(env.state_root);
  SandboxStore store(env.state_root, name, false);
  store.lock();
  auto c = store.load();
  if (!c) throw Error(Errc::not_found, "sandbox cluster '" + name + "' has no record (a create that was killed: delete it)");
  if (!daemon_alive(c->etcd)) throw Error(Errc::failed, "etcd of cluster " + name + " is not running");
  std::vector<std::string> started;
  const std::string exe = self_exe();
  for (auto& n : c->nodes) {
    if (n.name.empty() || !n.underlay || daemon_alive(n.agent)) continue;
    n.agent = start_agent(env, store, *c, n, exe);
    store.save(*c);
    started.push_back(n.name);
  }
  return started;
}

SandboxStatus sandbox_status(const Env& env, const std::string& name) {
  SandboxStore store(fs::absolute(env.state_root), name, false);
  auto c = store.load();
  if (!c) throw Error(Errc::not_found, "sandbox cluster '" + name + "' has no record (a create that was killed: delete it)");
  SandboxStatus s;
  s.cluster = *c;
  s.etcd_alive = daemon_alive(c->etcd);
  for (const auto& n : c->nodes) {
    SandboxNodeStatus ns;
    ns.node = n;
    ns.agent_alive = daemon_alive(n.agent);
    try {
      ns.programmed = programmed(env, *c, n.name);
    } catch (const std::exception& e) {
      ns.error = e.what();
    }
    if (c->mode == Mode::native) {
      try {
        ns.bgp = Bird(fs::absolute(env.state_root) / n.name).sessions();
      } catch (const std::exception& e) {
        ns.bgp_error = e.what();
      }
    }
    s.nodes.push_back(std::move(ns));
  }
  if (c->underlay_ns.empty() || !netns::exists(c->underlay_ns)) {
    s.etcd_error = "the underlay namespace is gone";
    return s;
  }
  try {
    in_underlay(*c, [&] {
      EtcdClient client(c->etcd_url(), kQuick);
      const Keys keys(c->name);
      for (auto& ns : s.nodes) {
        auto kv = client.get(keys.node(ns.node.name));
        if (!kv) continue;
        ns.registered = true;
        char lease[32];
        std::snprintf(lease, sizeof lease, "%llx", static_cast<unsigned long long>(kv->lease));
        ns.lease = lease;
        if (kv->lease) ns.ttl_left = client.lease_ttl(kv->lease);
      }
    });
  } catch (const std::exception& e) {
    s.etcd_error = e.what();
  }
  return s;
}

}  // namespace ebpfnet::cluster
