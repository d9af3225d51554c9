#include "bench/services.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <optional>
#include <sstream>
#include <tuple>

#include "bench/process.hpp"
#include "bench/stats.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  run_ok(Spawn{argv});
}

void remove_namespaces(const std::vector<std::string>& names) {
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    try {
      if (netns::exists(*it)) netns::del(*it);
    } catch (...) {
    }
  }
}

// kube-proxy names its chains by a hash of the service port (and endpoint):
// here FNV-1a 64 in 16 hex digits, as long as kube-proxy's base32 part.
std::string chain(const std::string& kind, const std::string& what) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : what) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char b[17];
  std::snprintf(b, sizeof b, "%016llX", static_cast<unsigned long long>(h));
  return kind + b;
}

std::string port_name(int i) { return "bench/" + service_name(i) + ":http"; }
std::string svc_chain(int i) { return chain("KUBE-SVC-", port_name(i) + "/tcp"); }
std::string sep_chain(int i, const std::string& backend) {
  return chain("KUBE-SEP-", port_name(i) + "/tcp/" + backend);
}

// One service as kube-proxy writes it: its chain declarations, its
// KUBE-SERVICES rule (without "-A CHAIN"), and the rules of its chains.
struct ServiceRules {
  std::string chains, portal, rules;
};

ServiceRules service_rules(int i, const std::vector<std::string>& backends, const std::string& subnet) {
  const std::string svc = svc_chain(i), vip = service_vip(i) + "/32", port = std::to_string(kSvcPort);
  const std::string name = port_name(i);
  ServiceRules r;
  r.chains = ":" + svc + " - [0:0]\n";
  r.portal = "-d " + vip + " -p tcp -m comment --comment \"" + name + " cluster IP\" -m tcp --dport " + port +
             " -j " + svc + "\n";
  // Clients outside the cluster's CIDR are masqueraded (the bench's client is inside).
  r.rules = "-A " + svc + " ! -s " + subnet + " -d " + vip + " -p tcp -m comment --comment \"" + name +
            " cluster IP\" -m tcp --dport " + port + " -j KUBE-MARK-MASQ\n";
  const size_t n = backends.size();
  for (size_t k = 0; k < n; ++k) {
    const std::string sep = sep_chain(i, backends[k]);
    const std::string to = backends[k] + ":" + std::to_string(kSvcBackendPort);
    r.chains += ":" + sep + " - [0:0]\n";
    // The k-th of n takes 1/(n-k) of what the ones before it left; the last, the rest.
    std::string pick;
    if (k + 1 < n) {
      char p[32];
      std::snprintf(p, sizeof p, "%0.11f", 1.0 / static_cast<double>(n - k));
      pick = " -m statistic --mode random --probability " + std::string(p);
    }
    r.rules += "-A " + svc + " -m comment --comment \"" + name + " -> " + to + "\"" + pick + " -j " + sep + "\n";
    r.rules += "-A " + sep + " -s " + backends[k] + "/32 -m comment --comment \"" + name +
               "\" -j KUBE-MARK-MASQ\n";
    r.rules += "-A " + sep + " -p tcp -m comment --comment \"" + name + "\" -m tcp -j DNAT --to-destination " + to + "\n";
  }
  return r;
}

ServiceSpec spec_of(int i, const std::vector<std::string>& backends) {
  ServiceSpec s;
  s.name = service_name(i);
  s.vip = Ipv4::parse(service_vip(i));
  s.port = kSvcPort;
  for (const auto& b : backends) s.backends.push_back({b, kSvcBackendPort, 1});
  return s;
}

// ebpfnet: a sandbox node (no uplink) with the client and the two backends
// as endpoints; services through the controller library, one transaction
// per bulk load, and `ebpfnet service add` for the timed single add.
// "ebpfnet" balances at connect time (the socket hooks, the default),
// "ebpfnet-tc" per packet at tc (attach --socket-lb off); "ebpfnet-1" is
// "ebpfnet" on a node of its own, kept at one service.
class EbpfnetServices : public ServiceDatapath {
 public:
  EbpfnetServices(const ServicesConfig& cfg, const std::string& name)
      : name_(name),
        bin_(cfg.ebpfnet_bin),
        node_(cfg.prefix + (name == "ebpfnet" ? "sv" : name == "ebpfnet-tc" ? "st" : "s1")) {
    env_.state_root = cfg.state_dir / "ebpfnet-svc-state";
    client_ns_ = node_ + "-c";
    backend_ns_ = {node_ + "-b1", node_ + "-b2"};
    Node::create(env_, node_, *Ipv4Cidr::parse("10.210.0.0/24"));
    try {
      Node node(env_, node_);
      AttachOptions opts;
      opts.socket_lb = name_ != "ebpfnet-tc";
      node.attach(opts);
      node.add_endpoint(EndpointRequest{.name = client_ns_, .ip = Ipv4::parse("10.210.0.2")});
      node.add_endpoint(EndpointRequest{.name = backend_ns_[0], .ip = Ipv4::parse("10.210.0.3")});
      node.add_endpoint(EndpointRequest{.name = backend_ns_[1], .ip = Ipv4::parse("10.210.0.4")});
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~EbpfnetServices() override { destroy(); }

  std::string name() const override { return name_; }
  std::string description() const override {
    return "ebpfnet sandbox node without uplink: a client and two backend endpoints; every service a "
           "virtual IP:80/tcp with both backends, " +
           std::string(name_ == "ebpfnet-tc" ? "balanced per packet (Maglev at tc, from_endpoint; --socket-lb off)"
                                             : "balanced at connect time (cgroup socket hooks, Maglev)") +
           std::string(name_ == "ebpfnet-1" ? "; kept at one service, measured in the same rounds as ebpfnet" : "");
  }
  std::vector<std::string> namespaces() const override {
    return {node_, client_ns_, backend_ns_[0], backend_ns_[1]};
  }

  double grow_to(int n) override {
    std::vector<ServiceSpec> specs;
    for (int i = count_; i < n; ++i) specs.push_back(spec_of(i, backend_ns_));
    Node node(env_, node_);
    const auto t0 = Clock::now();
    node.service_add_many(specs);
    const double s = ms_since(t0) / 1000;
    count_ = std::max(count_, n);
    return s;
  }

  std::map<std::string, std::vector<double>> time_add(int reps) override {
    std::map<std::string, std::vector<double>> out;
    Node node(env_, node_);
    for (int r = 0; r < reps; ++r) {
      throw_if_interrupted();
      const int i = count_;  // the next one, removed again
      const std::string vip = service_vip(i) + ":" + std::to_string(kSvcPort) + "/tcp";
      const std::string b = ":" + std::to_string(kSvcBackendPort);
      const Spawn cli{{bin_.string(), "--state-dir", env_.state_root.string(), "--node", node_, "service", "add",
                       service_name(i), vip, "--backend", backend_ns_[0] + b, "--backend", backend_ns_[1] + b}};
      auto t0 = Clock::now();
      run_ok(cli, 60);
      out[name_ + "-cli"].push_back(ms_since(t0));
      node.service_del({service_name(i)});
      const ServiceSpec spec = spec_of(i, backend_ns_);
      t0 = Clock::now();
      node.service_add(spec);
      out[name_ + "-lib"].push_back(ms_since(t0));
      node.service_del({service_name(i)});
    }
    return out;
  }

 private:
  void destroy() {
    // Each service says it lost its backends as the endpoints go: 10,000 lines.
    const auto level = spdlog::get_level();
    spdlog::set_level(std::max(level, spdlog::level::warn));
    try {
      Node::destroy(env_, node_);
    } catch (...) {
      remove_namespaces(namespaces());  // only names of this run
    }
    spdlog::set_level(level);
  }

  Env env_;
  std::string name_;
  std::filesystem::path bin_;
  std::string node_;
};

// kube-proxy's iptables mode on a bridge node: the node namespace holds the
// bridge (the pods' gateway), br_netfilter and forwarding on, and the
// filter and nat tables kube-proxy writes, loaded with iptables-restore in
// the node namespace only.
class KubeIptables : public ServiceDatapath {
 public:
  explicit KubeIptables(const ServicesConfig& cfg) {
    node_ns_ = cfg.prefix + "sk-n";
    client_ns_ = cfg.prefix + "sk-c";
    backend_ns_ = {cfg.prefix + "sk-b1", cfg.prefix + "sk-b2"};
    try {
      build();
    } catch (...) {
      remove_namespaces(made_);
      throw;
    }
  }
  ~KubeIptables() override { remove_namespaces(made_); }

  std::string name() const override { return "iptables"; }
  std::string description() const override {
    return "kube-proxy's iptables mode: client and two backends on a Linux bridge in a node namespace, "
           "bridge-nf-call-iptables=1, nat KUBE-SERVICES with one rule per service -> KUBE-SVC (statistic "
           "random) -> KUBE-SEP (DNAT), KUBE-MARK-MASQ/KUBE-POSTROUTING, filter KUBE-FORWARD (" +
           variant_ + ")";
  }
  std::vector<std::string> namespaces() const override { return made_; }

  double grow_to(int n) override {
    const std::string rules = kube_proxy_rules(n, backend_ips_, kSubnet);
    const auto t0 = Clock::now();
    restore(rules, false);
    const double s = ms_since(t0) / 1000;
    count_ = n;
    return s;
  }

  std::map<std::string, std::vector<double>> time_add(int reps) override {
    std::map<std::string, std::vector<double>> out;
    for (int r = 0; r < reps; ++r) {
      throw_if_interrupted();
      const int i = count_;  // the next one, removed again
      const ServiceRules s = service_rules(i, backend_ips_, kSubnet);
      // The one-service change, as a partial restore: its chains, its
      // portal just before the node-ports rule (the last), its rules.
      std::string add = "*nat\n" + s.chains + "-I KUBE-SERVICES " + std::to_string(count_ + 1) + " " + s.portal +
                        s.rules + "COMMIT\n";
      auto t0 = Clock::now();
      restore(add, true);
      out["iptables-noflush"].push_back(ms_since(t0));
      std::string del = "*nat\n-D KUBE-SERVICES " + s.portal;
      std::istringstream chains(s.chains);
      std::vector<std::string> names;
      for (std::string line; std::getline(chains, line);) names.push_back(line.substr(1, line.find(' ') - 1));
      for (const auto& c : names) del += "-F " + c + "\n";
      for (const auto& c : names) del += "-X " + c + "\n";
      restore(del + "COMMIT\n", true);
      // What kube-proxy does on a full sync: the whole tables again.
      const std::string all = kube_proxy_rules(count_ + 1, backend_ips_, kSubnet);
      t0 = Clock::now();
      restore(all, false);
      out["iptables-restore"].push_back(ms_since(t0));
      restore(kube_proxy_rules(count_, backend_ips_, kSubnet), false);
    }
    return out;
  }

 private:
  static constexpr const char* kSubnet = "10.211.0.0/24";

  void add_ns(const std::string& n) {
    ip({"netns", "add", n});
    made_.push_back(n);
    ip({"-n", n, "link", "set", "lo", "up"});
    netns::write_sysctl(Netns::open_named(n), "net/ipv6/conf/all/disable_ipv6", "1");
    netns::write_sysctl(Netns::open_named(n), "net/ipv6/conf/default/disable_ipv6", "1");
  }

  void build() {
    const std::string gw = "10.211.0.1";
    add_ns(node_ns_);
    add_ns(client_ns_);
    for (const auto& b : backend_ns_) add_ns(b);
    ip({"-n", node_ns_, "link", "add", "br0", "type", "bridge"});
    ip({"-n", node_ns_, "addr", "add", gw + "/24", "dev", "br0"});
    ip({"-n", node_ns_, "link", "set", "br0", "up"});
    backend_ips_ = {"10.211.0.3", "10.211.0.4"};
    const std::vector<std::tuple<std::string, std::string, std::string>> pods = {
        {client_ns_, "10.211.0.2", "vc"}, {backend_ns_[0], backend_ips_[0], "vb1"}, {backend_ns_[1], backend_ips_[1], "vb2"}};
    for (const auto& [ns, addr, port] : pods) {
      ip({"-n", node_ns_, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns});
      ip({"-n", node_ns_, "link", "set", port, "master", "br0", "up"});
      ip({"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"});
      ip({"-n", ns, "link", "set", "eth0", "up"});
      ip({"-n", ns, "route", "add", "default", "via", gw, "dev", "eth0"});
    }
    // A Kubernetes node's settings, in the node namespace only (per-netns on this kernel).
    const Netns node = Netns::open_named(node_ns_);
    netns::write_sysctl(node, "net/bridge/bridge-nf-call-iptables", "1");
    netns::write_sysctl(node, "net/ipv4/ip_forward", "1");
    Result v = run(Spawn{{"iptables-restore", "--version"}});
    if (v.code != 0) throw std::runtime_error("iptables-restore is not installed (scripts/bootstrap installs iptables)");
    variant_ = v.out.substr(0, v.out.find('\n'));
    grow_to(0);
  }

  void restore(const std::string& rules, bool noflush) {
    std::vector<std::string> argv = {"iptables-restore"};
    if (noflush) argv.push_back("--noflush");
    run_ok(Spawn{argv, node_ns_, -1, rules}, 600);
  }

  std::string node_ns_, variant_;
  std::vector<std::string> made_, backend_ips_;
};

// The last line of out that parses as a JSON object.
std::optional<json> last_json(const std::string& out) {
  std::istringstream s(out);
  std::optional<json> j;
  for (std::string line; std::getline(s, line);) {
    if (line.empty() || line[0] != '{') continue;
    try {
      j = json::parse(line);
    } catch (...) {
    }
  }
  return j;
}

// "tcp_crr server: N transactions, ...": N, or -1.
long long served(const Result& r) {
  const std::string text = r.out + r.err;
  const std::string key = "tcp_crr server: ";
  const auto at = text.rfind(key);
  if (at == std::string::npos) return -1;
  return std::atoll(text.c_str() + at + key.size());
}

}  // namespace

std::string service_name(int i) { return "svc" + std::to_string(i); }

std::string service_vip(int i) {
  return "10.96." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250);
}

const std::vector<std::string>& service_datapaths() {
  static const std::vector<std::string> v = {"ebpfnet", "ebpfnet-tc", "iptables", "ebpfnet-1"};
  return v;
}

std::unique_ptr<ServiceDatapath> make_service_datapath(const std::string& name, const ServicesConfig& cfg) {
  if (name == "ebpfnet" || name == "ebpfnet-tc" || name == "ebpfnet-1") return std::make_unique<EbpfnetServices>(cfg, name);
  if (name == "iptables") return std::make_unique<KubeIptables>(cfg);
  throw std::invalid_argument("unknown services datapath '" + name + "'");
}

Measurement measure_service_crr(const ServiceDatapath& d, const Tools& tools, Placement p, int seconds) {
  Measurement m;
  if (d.services() < 1) {
    m.error = d.name() + ": no service to connect to";
    return m;
  }
  std::vector<std::unique_ptr<Background>> servers;
  for (const auto& ns : d.backend_ns()) {
    auto s = std::make_unique<Background>(Spawn{
        {tools.tcp_crr, "server", std::to_string(kSvcBackendPort), std::to_string(seconds + 30)}, ns, p.server_cpu, "", p.nice});
    if (!wait_bound(*s, false, kSvcBackendPort)) {
      Result r = s->stop();
      m.error = d.name() + ": backend server in " + ns + " did not bind: " + r.err.substr(0, 200);
      return m;
    }
    servers.push_back(std::move(s));
  }
  const std::string vip = service_vip(d.services() - 1);
  Result r = run(Spawn{{tools.tcp_crr, "client", vip, std::to_string(kSvcPort), std::to_string(seconds), "4"},
                       d.client_ns(), p.client_cpu, "", p.nice},
                 seconds + 15);
  json per_backend = json::array();
  for (auto& s : servers) per_backend.push_back(served(s->stop()));
  auto j = last_json(r.out);
  if (!j || r.code != 0) {
    m.error = "tcp_crr to " + vip + ": " + (j ? (*j)["first_error"].get<std::string>() : r.err.substr(0, 200));
    return m;
  }
  m.values["svc_crr_cps"] = (*j)["conn_per_s"].get<double>();
  m.values["svc_connect_p50_us"] = (*j)["connect_p50_us"].get<double>();
  m.values["svc_connect_p99_us"] = (*j)["connect_p99_us"].get<double>();
  m.raw = *j;
  m.raw["vip"] = vip;
  m.raw["services"] = d.services();
  m.raw["served_per_backend"] = per_backend;
  return m;
}

std::string kube_proxy_rules(int n, const std::vector<std::string>& backends, const std::string& subnet) {
  std::string chains, portals, rules;
  chains.reserve(static_cast<size_t>(n) * 130);
  portals.reserve(static_cast<size_t>(n) * 150);
  rules.reserve(static_cast<size_t>(n) * 700);
  for (int i = 0; i < n; ++i) {
    ServiceRules s = service_rules(i, backends, subnet);
    chains += s.chains;
    portals += "-A KUBE-SERVICES " + s.portal;
    rules += s.rules;
  }
  std::string r =
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-FORWARD - [0:0]\n"
      "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
      "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n"
      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate "
      "RELATED,ESTABLISHED -j ACCEPT\n"
      "COMMIT\n"
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      ":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n";
  r += chains;
  r += "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
       "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
       "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
       "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n"
       "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
       "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n"
       "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE "
       "--random-fully\n";
  r += portals;
  r += "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in "
       "this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
  r += rules;
  r += "COMMIT\n";
  return r;
}

}  // namespace ebpfnet::bench
