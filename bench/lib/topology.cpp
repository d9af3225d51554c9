// The baseline datapaths, built with the standard tools (`ip`, sysctl,
// iptables-restore), as DESIGN.md allows for baselines only, plus tc-peer's
// bare BPF program; and ebpfnet, built in-process through the controller library.
#include "bench/topology.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>

#include "bench/process.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/skeleton.hpp"
#include "ebpfnet/tc_attach.hpp"
#include "tc_peer.skel.h"

namespace ebpfnet::bench {
namespace {

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  run_ok(Spawn{argv});
}

void sysctl(const std::string& ns, const std::string& key, const std::string& value) {
  netns::write_sysctl(Netns::open_named(ns), key, value);
}

// Namespaces made with `ip netns add`, removed in reverse order.
class Baseline : public Topology {
 public:
  ~Baseline() override { teardown(); }
  std::vector<std::string> namespaces() const override { return made_; }

 protected:
  // Runs build(), undoing everything it made if it throws.
  void construct(const std::function<void()>& build) {
    try {
      build();
    } catch (...) {
      teardown();
      throw;
    }
  }

  void add_ns(const std::string& name) {
    ip({"netns", "add", name});
    made_.push_back(name);
    ip({"-n", name, "link", "set", "lo", "up"});
    // As ebpfnet does on its veths: no IPv6 router solicitations or MLD in the counts.
    sysctl(name, "net/ipv6/conf/all/disable_ipv6", "1");
    sysctl(name, "net/ipv6/conf/default/disable_ipv6", "1");
  }

  void teardown() {
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
      try {
        if (netns::exists(*it)) netns::del(*it);
      } catch (...) {
      }
    }
    made_.clear();
  }

  std::vector<std::string> made_;
};

// One veth pair straight between the two namespaces.
class Direct : public Baseline {
 public:
  explicit Direct(const TopologyConfig& cfg) {
    client_ns_ = cfg.prefix + "d-c";
    server_ns_ = cfg.prefix + "d-s";
    client_ip_ = "10.201.0.1";
    server_ip_ = "10.201.0.2";
    construct([&] {
      add_ns(client_ns_);
      add_ns(server_ns_);
      ip({"-n", client_ns_, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
          "netns", server_ns_});
      ip({"-n", client_ns_, "addr", "add", client_ip_ + "/24", "dev", "eth0"});
      ip({"-n", server_ns_, "addr", "add", server_ip_ + "/24", "dev", "eth0"});
      ip({"-n", client_ns_, "link", "set", "eth0", "up"});
      ip({"-n", server_ns_, "link", "set", "eth0", "up"});
    });
  }
  std::string name() const override { return "direct"; }
  std::string description() const override {
    return "one veth pair straight between the client and server namespaces";
  }
};

// Docker's default: node-side veths on a Linux bridge carrying the gateway.
class Bridge : public Baseline {
 public:
  Bridge(const TopologyConfig& cfg, bool iptables)
      : iptables_(iptables), dir_(cfg.state_dir) {
    std::string tag = iptables ? "i" : "b";
    std::string net = iptables ? "10.203.0." : "10.202.0.";
    node_ns_ = cfg.prefix + tag + "-n";
    client_ns_ = cfg.prefix + tag + "-c";
    server_ns_ = cfg.prefix + tag + "-s";
    subnet_ = net + "0/24";
    client_ip_ = net + "2";
    server_ip_ = net + "3";
    construct([&] {
      add_ns(node_ns_);
      add_ns(client_ns_);
      add_ns(server_ns_);
      ip({"-n", node_ns_, "link", "add", "br0", "type", "bridge"});
      ip({"-n", node_ns_, "addr", "add", net + "1/24", "dev", "br0"});
      ip({"-n", node_ns_, "link", "set", "br0", "up"});
      for (auto [ns, addr, port] : {std::tuple{client_ns_, client_ip_, "vc"},
                                    std::tuple{server_ns_, server_ip_, "vs"}}) {
        ip({"-n", node_ns_, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns});
        ip({"-n", node_ns_, "link", "set", port, "master", "br0", "up"});
        ip({"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"});
        ip({"-n", ns, "link", "set", "eth0", "up"});
        ip({"-n", ns, "route", "add", "default", "via", net + "1", "dev", "eth0"});
      }
      if (iptables_) {
        // Docker's host settings, in the node namespace only (per-netns on this kernel).
        sysctl(node_ns_, "net/bridge/bridge-nf-call-iptables", "1");
        sysctl(node_ns_, "net/ipv4/ip_forward", "1");
        if (!set_rules(0).empty()) throw std::runtime_error("bridge-iptables: rules not loaded");
      }
    });
  }
  std::string name() const override { return iptables_ ? "bridge-iptables" : "bridge"; }
  std::string description() const override {
    if (!iptables_) return "veths on a Linux bridge in a node namespace, one subnet (Docker's default)";
    return "bridge + bridge-nf-call-iptables=1, conntrack ESTABLISHED,RELATED accepted first, "
           "MASQUERADE for traffic leaving, a published port (DNAT, Docker's way), N "
           "never-matching FORWARD rules, then the allow rules (iptables-restore, " +
           iptables_variant_ + ")";
  }
  std::vector<std::string> namespaces() const override { return made_; }

  std::string set_rules(int n) override {
    if (!iptables_) return Topology::set_rules(n);
    run_ok(Spawn{{"iptables-restore"}, node_ns_, -1,
                 iptables_rules(n, client_ip_, server_ip_, subnet_)},
           120);
    if (iptables_variant_.empty()) {
      auto v = run(Spawn{{"iptables", "-V"}});
      iptables_variant_ = v.out.substr(0, v.out.find('\n'));
    }
    return "";
  }

 private:
  bool iptables_;
  std::filesystem::path dir_;
  std::string node_ns_, subnet_, iptables_variant_;
};

// The floor of ebpfnet's technique: node-side veths in a node namespace with
// a bare bpf_redirect_peer program on each (bench/bpf/tc_peer.bpf.c), static
// neighbours, one subnet. No conntrack, NAT, policy, lookups or counters.
class TcPeer : public Baseline {
 public:
  explicit TcPeer(const TopologyConfig& cfg) : skel_("tc-peer") {
    node_ns_ = cfg.prefix + "p-n";
    client_ns_ = cfg.prefix + "p-c";
    server_ns_ = cfg.prefix + "p-s";
    client_ip_ = "10.207.0.2";
    server_ip_ = "10.207.0.3";
    construct([&] {
      add_ns(node_ns_);
      add_ns(client_ns_);
      add_ns(server_ns_);
      std::vector<Link> eth0;
      for (auto [ns, addr, port] : {std::tuple{client_ns_, client_ip_, "vc"}, std::tuple{server_ns_, server_ip_, "vs"}}) {
        ip({"-n", node_ns_, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns});
        ip({"-n", node_ns_, "link", "set", port, "up"});
        ip({"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"});
        ip({"-n", ns, "link", "set", "eth0", "up"});
        eth0.push_back(*Netlink::in(Netns::open_named(ns)).link("eth0"));
      }
      // Each side knows the other's MAC: the frames need no rewrite and no ARP.
      Netlink::in(Netns::open_named(client_ns_)).add_neighbor({eth0[0].ifindex, *Ipv4::parse(server_ip_), eth0[1].mac});
      Netlink::in(Netns::open_named(server_ns_)).add_neighbor({eth0[1].ifindex, *Ipv4::parse(client_ip_), eth0[0].mac});
      attach();
    });
  }
  std::string name() const override { return "tc-peer"; }
  std::string description() const override {
    return "the floor of ebpfnet's technique: a bare bpf_redirect_peer TC program (" +
           to_string(kEndpointTcMode) + ") on each node-side veth, static neighbours, no conntrack, NAT, policy or lookups";
  }

 private:
  // Loads the program with the two node-side ifindexes and attaches it to
  // both, from inside the node namespace (where those ifindexes mean them).
  void attach() {
    NetnsGuard in(Netns::open_named(node_ns_));
    Netlink nl;
    const int a = nl.link("vc")->ifindex, b = nl.link("vs")->ifindex;
    skel_->rodata->ifindex_a = static_cast<uint32_t>(a);
    skel_->rodata->ifindex_b = static_cast<uint32_t>(b);
    skel_.load();
    const int prog = bpf_program__fd(skel_->progs.tc_peer);
    // As ebpfnet attaches endpoint veths; the filters go with the veths.
    static_assert(kEndpointTcMode == TcMode::clsact, "tc-peer attaches as ebpfnet's endpoints do");
    for (int ifindex : {a, b}) attach_tc_ingress(prog, ifindex, kEndpointTcMode, {});
  }

  std::string node_ns_;
  Skeleton<tc_peer_bpf> skel_;
};

// ebpfnet: a sandbox node with an uplink sandbox (masquerade and conntrack on
// the way out), two endpoints, policy on the server's ingress.
class Ebpfnet : public Topology {
 public:
  explicit Ebpfnet(const TopologyConfig& cfg)
      : bin_(cfg.ebpfnet_bin), node_name_(cfg.prefix + "e") {
    env_.state_root = cfg.state_dir / "ebpfnet-state";
    client_ns_ = node_name_ + "-c";
    server_ns_ = node_name_ + "-s";
    client_ip_ = "10.204.0.2";
    server_ip_ = "10.204.0.3";
    dir_ = cfg.state_dir;
    Node::create(env_, node_name_, *Ipv4Cidr::parse("10.204.0.0/24"), {}, true);
    try {
      Node node(env_, node_name_);
      node.attach();
      node.add_endpoint(EndpointRequest{.name = client_ns_, .ip = Ipv4::parse(client_ip_)});
      node.add_endpoint(EndpointRequest{.name = server_ns_, .ip = Ipv4::parse(server_ip_)});
      // A published port (docker -p), as on bridge-iptables: with one, every
      // packet between endpoints takes the conntrack lookup.
      node.expose(PublishRecord{server_ns_, "tcp", kTputPort, kPublishedPort});
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~Ebpfnet() override { destroy(); }

  std::string name() const override { return "ebpfnet"; }
  std::string description() const override {
    return "ebpfnet TC datapath (" + tc_mode() +
           "): sandbox node with an uplink sandbox (masquerade, conntrack), two endpoints, "
           "a published port (server:" + std::to_string(kTputPort) + " on uplink:" +
           std::to_string(kPublishedPort) + "), " +
           (policy_ ? "policy with N never-matching rules + allow rules on the server's ingress"
                    : "no policy (policy unavailable in this build)");
  }
  std::vector<std::string> namespaces() const override {
    return {node_name_, node_name_ + "-out", client_ns_, server_ns_};
  }

  std::string set_rules(int n) override {
    if (!policy_available()) return "policy unavailable (no `ebpfnet policy` in this build)";
    auto file = dir_ / ("policy-" + std::to_string(n) + ".yaml");
    {
      std::ofstream f(file);
      f << policy_yaml(n, client_ip_);
      if (!f) throw std::runtime_error("writing " + file.string());
    }
    run_ok(Spawn{{bin_.string(), "--state-dir", env_.state_root.string(), "--node", node_name_,
                  "policy", "set", server_ns_, "-f", file.string()}},
           300);
    std::filesystem::remove(file);
    policy_ = true;
    return "";
  }

 private:
  bool policy_available() {
    if (!probed_) {
      probed_ = true;
      // `policy set --help` succeeds only where the subcommand exists (an
      // unknown word falls through to the top-level --help, which lists it not).
      Result r = run(Spawn{{bin_.string(), "--help"}}, 10);
      available_ = r.code == 0 && r.out.find("\n  policy ") != std::string::npos;
    }
    return available_;
  }
  std::string tc_mode() const {
    try {
      Node node(env_, node_name_);
      auto eps = node.endpoints();
      if (!eps.empty()) return eps.front().rec.tc_mode == TcMode::tcx ? "tcx" : "clsact";
    } catch (...) {
    }
    return "tc";
  }
  void destroy() {
    try {
      Node::destroy(env_, node_name_);
    } catch (...) {
      // Whatever is left: only names of this run.
      for (const auto& ns : namespaces())
        try {
          if (netns::exists(ns)) netns::del(ns);
        } catch (...) {
        }
    }
  }

  Env env_;
  std::filesystem::path bin_, dir_;
  std::string node_name_;
  bool probed_ = false, available_ = false, policy_ = false;
};

}  // namespace

const std::vector<std::string>& known_datapaths() {
  static const std::vector<std::string> v = {"direct", "tc-peer", "bridge", "bridge-iptables", "ebpfnet"};
  return v;
}

std::unique_ptr<Topology> make_topology(const std::string& dp, const TopologyConfig& cfg) {
  if (dp == "direct") return std::make_unique<Direct>(cfg);
  if (dp == "tc-peer") return std::make_unique<TcPeer>(cfg);
  if (dp == "bridge") return std::make_unique<Bridge>(cfg, false);
  if (dp == "bridge-iptables") return std::make_unique<Bridge>(cfg, true);
  if (dp == "ebpfnet") return std::make_unique<Ebpfnet>(cfg);
  throw std::invalid_argument("unknown datapath '" + dp + "'");
}

std::string nonmatching_peer(int i) {
  return "172." + std::to_string(16 + (i >> 16)) + "." + std::to_string((i >> 8) & 255) + "." +
         std::to_string(i & 255) + "/32";
}

std::string policy_yaml(int n, const std::string& client_ip) {
  std::string y = "ingress:\n  default: deny\n  rules:\n";
  for (int i = 0; i < n; ++i)
    y += "    - {action: deny, proto: tcp, port: 22, peer: " + nonmatching_peer(i) + "}\n";
  for (int port : {kTputPort, kRrPort, kCrrPort})
    y += "    - {action: allow, proto: tcp, port: " + std::to_string(port) + ", peer: " +
         client_ip + "}\n";
  y += "    - {action: allow, proto: udp, port: " + std::to_string(kUdpPort) + ", peer: " +
       client_ip + "}\n";
  y += "egress:\n  default: allow\n";
  return y;
}

std::string iptables_rules(int n, const std::string& client_ip, const std::string& server_ip,
                           const std::string& subnet) {
  std::string r;
  r.reserve(static_cast<size_t>(n) * 80 + 1024);
  r += "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";
  r += "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n";
  for (int i = 0; i < n; ++i)
    r += "-A FORWARD -s " + nonmatching_peer(i) + " -d " + server_ip +
         "/32 -p tcp -m tcp --dport 22 -j DROP\n";
  for (int port : {kTputPort, kRrPort, kCrrPort})
    r += "-A FORWARD -s " + client_ip + "/32 -d " + server_ip + "/32 -p tcp -m tcp --dport " +
         std::to_string(port) + " -j ACCEPT\n";
  r += "-A FORWARD -s " + client_ip + "/32 -d " + server_ip + "/32 -p udp -m udp --dport " +
       std::to_string(kUdpPort) + " -j ACCEPT\n";
  r += "COMMIT\n";
  r += "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
       ":POSTROUTING ACCEPT [0:0]\n";
  // Docker's -p: DNAT of a published port to the server, for addresses of the node.
  r += ":DOCKER - [0:0]\n";
  r += "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n";
  r += "-A POSTROUTING -s " + subnet + " ! -o br0 -j MASQUERADE\n";
  r += "-A DOCKER ! -i br0 -p tcp -m tcp --dport " + std::to_string(kPublishedPort) +
       " -j DNAT --to-destination " + server_ip + ":" + std::to_string(kTputPort) + "\n";
  r += "COMMIT\n";
  return r;
}

}  // namespace ebpfnet::bench
