#include "bench/controlplane.hpp"

#include <bpf/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "bench/process.hpp"
#include "bench/stats.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/tc_attach.hpp"

namespace ebpfnet::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// Threads of the TCX floor attached from several threads at once: whether
// the grace periods their attaches wait for overlap is what it measures.
constexpr int kTcxThreads = 8;

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  run_ok(Spawn{argv});
}

// The baseline node: a namespace with a bridge carrying the gateway; each
// endpoint a namespace wired to it by a veth, addressed and routed, with
// one `ip` process per step (as a shell script or Docker's older tooling does).
class IpNode {
 public:
  explicit IpNode(const std::string& prefix) : node_(prefix + "cpn"), prefix_(prefix) {
    ip({"netns", "add", node_});
    made_.insert(node_);
    ip({"-n", node_, "link", "add", "br0", "type", "bridge"});
    ip({"-n", node_, "addr", "add", "10.206.0.1/16", "dev", "br0"});
    ip({"-n", node_, "link", "set", "br0", "up"});
  }
  ~IpNode() {
    for (const auto& ns : made_)
      try {
        if (netns::exists(ns)) netns::del(ns);
      } catch (...) {
      }
  }
  std::string ns_of(int i) const { return prefix_ + "ci" + std::to_string(i); }
  static std::string host_of(int i) { return "h" + std::to_string(i); }
  static std::string addr_of(int i) {
    return "10.206." + std::to_string(1 + i / 250) + "." + std::to_string(2 + i % 250);
  }

  void add(int i) {
    std::string ns = ns_of(i), h = host_of(i);
    ip({"netns", "add", ns});
    made_.insert(ns);
    ip({"-n", node_, "link", "add", h, "type", "veth", "peer", "name", "eth0", "netns", ns});
    ip({"-n", ns, "link", "set", "lo", "up"});
    ip({"-n", ns, "addr", "add", addr_of(i) + "/16", "dev", "eth0"});
    ip({"-n", ns, "link", "set", "eth0", "up"});
    ip({"-n", ns, "route", "add", "default", "via", "10.206.0.1"});
    ip({"-n", node_, "link", "set", h, "master", "br0", "up"});
  }
  void del(int i) {
    ip({"-n", node_, "link", "del", host_of(i)});
    ip({"netns", "del", ns_of(i)});
    made_.erase(ns_of(i));
  }
  // The kernel's floor: the namespaces and veth pairs (enslaved, up) of
  // endpoints [from, to), made by two `ip -batch` processes.
  void add_batch(int from, int to) {
    std::string a, b;
    for (int i = from; i < to; ++i) {
      a += "netns add " + ns_of(i) + "\n";
      made_.insert(ns_of(i));
      b += "link add " + host_of(i) + " type veth peer name eth0 netns " + ns_of(i) + "\n";
      b += "link set " + host_of(i) + " master br0 up\n";
    }
    run_ok(Spawn{{"ip", "-batch", "-"}, "", -1, a}, 120);
    run_ok(Spawn{{"ip", "-n", node_, "-batch", "-"}, "", -1, b}, 120);
  }
  // prog at tc ingress of each node-side veth of [from, to): a clsact
  // filter, or a TCX link kept in links (it goes with its veth). With TCX,
  // `threads` threads attach at once: each attach waits for an RCU grace
  // period, which concurrent attaches could share.
  void attach_batch(int from, int to, int prog, TcMode mode, int threads, std::vector<UniqueFd>& links) {
    NetnsGuard in(Netns::open_named(node_));
    std::map<std::string, int> ifindex;
    for (const auto& l : Netlink().links()) ifindex[l.name] = l.ifindex;
    if (mode == TcMode::clsact) {
      for (int i = from; i < to; ++i) attach_tc_ingress(prog, ifindex.at(host_of(i)), TcMode::clsact, {});
      return;
    }
    links.resize(links.size() + (to - from));
    UniqueFd* out = &links[links.size() - (to - from)];
    std::vector<std::string> errors(threads);
    // Threads made here start in the node's namespace, where the ifindexes are.
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int i = from + t; i < to && errors[t].empty(); i += threads) {
          out[i - from] = create_tcx_link(prog, ifindex.at(host_of(i)));
          if (!out[i - from].valid()) errors[t] = "tcx link on " + host_of(i) + ": " + std::strerror(errno);
        }
      });
    for (auto& th : pool) th.join();
    for (const auto& e : errors)
      if (!e.empty()) throw std::runtime_error("floor with attach: " + e);
  }
  // The namespaces of [from, to) in one `ip -batch`: the kernel unregisters
  // their veths together, after the command returns; done when they are
  // gone from the node.
  void del_batch(int from, int to) {
    std::string a;
    for (int i = from; i < to; ++i) a += "netns del " + ns_of(i) + "\n";
    run_ok(Spawn{{"ip", "-batch", "-"}, "", -1, a}, 120);
    for (int i = from; i < to; ++i) made_.erase(ns_of(i));
    Netlink nl = Netlink::in(Netns::open_named(node_));
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (bool left = true; left;) {
      if (Clock::now() > deadline) throw std::runtime_error("veths of deleted namespaces still there after 60 s");
      left = false;
      for (const auto& l : nl.links()) left |= l.name.rfind('h', 0) == 0 && l.kind == "veth";
      if (left) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

 private:
  std::string node_, prefix_;
  std::set<std::string> made_;
};

// An ebpfnet sandbox node for the control-plane runs, destroyed with everything in it.
class EbNode {
 public:
  // tc_mode: how its endpoint veths attach (nullopt: ebpfnet's default).
  EbNode(const CpConfig& cfg, const std::string& suffix, const std::string& cidr, std::optional<TcMode> tc_mode)
      : name_(cfg.prefix + suffix) {
    env_.state_root = cfg.state_dir / (suffix + "-state");
    Node::create(env_, name_, *Ipv4Cidr::parse(cidr));
    try {
      Node(env_, name_).attach({.tc_mode = tc_mode});
    } catch (...) {
      Node::destroy(env_, name_);
      throw;
    }
  }
  ~EbNode() {
    try {
      Node::destroy(env_, name_);
    } catch (...) {
    }
  }
  Node node() const { return Node(env_, name_); }
  const Env& env() const { return env_; }
  const std::string& name() const { return name_; }
  std::string ep(int i) const { return name_ + "-" + std::to_string(i); }

 private:
  Env env_;
  std::string name_;
};

// The least an attached program can be: two instructions, TC_ACT_OK.
UniqueFd trivial_tc_program() {
  const bpf_insn insns[] = {{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = TC_ACT_OK},
                            {.code = BPF_JMP | BPF_EXIT}};
  UniqueFd fd(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "cp_floor", "GPL", insns, 2, nullptr));
  if (!fd.valid()) throw std::runtime_error(std::string("loading the floor's TC program: ") + std::strerror(errno));
  return fd;
}

// A row of endpoints added in one call (`endpoint add A B C ...`: one lock
// and one state write, as ip -batch is one process), then deleted in one:
// both times and, per endpoint, the time of each step of the add, as
// datapath dp. between runs after the add.
void time_row(Node node, const std::vector<std::string>& names, const std::string& dp,
              const std::function<void(const CpSample&)>& emit, const std::function<void()>& between) {
  // The facade calls the checkpoint before each step with that step's
  // name, so the time up to the next call is the step's.
  std::map<std::string, double> step_ms;
  std::string step = "prepare";
  Clock::time_point mark;
  auto cp = [&](std::string_view next_step) {
    auto now = Clock::now();
    step_ms[step] += std::chrono::duration<double, std::milli>(now - mark).count();
    step = next_step;
    mark = now;
  };
  std::vector<EndpointRequest> row;
  for (const auto& name : names) row.push_back({.name = name});
  throw_if_interrupted();
  auto t0 = Clock::now();
  mark = t0;
  node.add_endpoints(row, cp);
  cp("");
  emit({"cp_add_batch_ms", dp, ms_since(t0)});
  for (const auto& [name, ms] : step_ms)
    emit({"cp_step_" + std::regex_replace(name, std::regex("-"), "_") + "_ms", dp, ms / names.size()});
  between();
  throw_if_interrupted();
  t0 = Clock::now();
  node.del_endpoints(names);
  emit({"cp_del_batch_ms", dp, ms_since(t0)});
}

}  // namespace

double kernel_mem_kib() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double v = 0, sum = 0;
  std::string unit;
  while (f >> key >> v) {
    std::getline(f, unit);
    if (key == "Slab:" || key == "Percpu:") sum += v;
  }
  return sum;
}

double bpf_map_mem_kib(const fs::path& maps_dir) {
  double sum = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(maps_dir, ec)) {
    int fd = bpf_obj_get(e.path().c_str());
    if (fd < 0) continue;
    std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("memlock:", 0) == 0) sum += std::stod(line.substr(8)) / 1024.0;
    close(fd);
  }
  return sum;
}

void run_controlplane(const CpConfig& cfg, const std::function<void(const CpSample&)>& emit,
                      const std::function<void(const std::string&)>& progress) {
  EbNode eb(cfg, "cp", "10.205.0.0/16", std::nullopt);
  IpNode ipn(cfg.prefix);
  std::vector<double> add_lib, del_lib, add_cli, del_cli, add_ip, del_ip;
  int next = 0;

  progress("control plane: single endpoints, " + std::to_string(cfg.singles) + " each");
  for (int k = 0; k < cfg.singles; ++k) {
    throw_if_interrupted();
    // ebpfnet, in-process (the library every binary links)
    {
      Node node = eb.node();
      auto t0 = Clock::now();
      node.add_endpoint(EndpointRequest{.name = eb.ep(next)});
      add_lib.push_back(ms_since(t0));
      t0 = Clock::now();
      node.del_endpoint(eb.ep(next));
      del_lib.push_back(ms_since(t0));
      ++next;
    }
    // ebpfnet, the command line (one process each, as a user or script runs it)
    {
      std::vector<std::string> base = {cfg.ebpfnet_bin.string(), "--state-dir",
                                       eb.env().state_root.string(), "--node", eb.name(),
                                       "endpoint"};
      auto a = base, d = base;
      a.insert(a.end(), {"add", eb.ep(next)});
      d.insert(d.end(), {"del", eb.ep(next)});
      auto t0 = Clock::now();
      run_ok(Spawn{a});
      add_cli.push_back(ms_since(t0));
      t0 = Clock::now();
      run_ok(Spawn{d});
      del_cli.push_back(ms_since(t0));
      ++next;
    }
    {
      auto t0 = Clock::now();
      ipn.add(next);
      add_ip.push_back(ms_since(t0));
      t0 = Clock::now();
      ipn.del(next);
      del_ip.push_back(ms_since(t0));
      ++next;
    }
  }
  emit({"cp_add1_ms", "ebpfnet", summarize(add_lib).median});
  emit({"cp_del1_ms", "ebpfnet", summarize(del_lib).median});
  emit({"cp_add1_ms", "ebpfnet-cli", summarize(add_cli).median});
  emit({"cp_del1_ms", "ebpfnet-cli", summarize(del_cli).median});
  emit({"cp_add1_ms", "ip", summarize(add_ip).median});
  emit({"cp_del1_ms", "ip", summarize(del_ip).median});

  const int n = cfg.batch;
  progress("control plane: " + std::to_string(n) + " endpoints in a row: ebpfnet");
  {
    Node node = eb.node();
    fs::path maps = node.pin_dir() / "maps";
    double k0 = kernel_mem_kib(), b0 = bpf_map_mem_kib(maps);
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) names.push_back(eb.ep(next + i));
    next += n;
    time_row(node, names, "ebpfnet", emit, [&] {
      double k1 = kernel_mem_kib(), b1 = bpf_map_mem_kib(maps);
      emit({"cp_kmem_per_ep_kib", "ebpfnet", (k1 - k0) / n});
      emit({"cp_bpfmem_per_ep_kib", "ebpfnet", (b1 - b0) / n});
      emit({"cp_bpfmem_total_kib", "ebpfnet", b1});
    });
  }
  progress("control plane: " + std::to_string(n) + " endpoints in a row: ebpfnet with TCX links");
  {
    // A node attached with `--tc-mode tcx`: what the choice of clsact saves.
    EbNode tcx(cfg, "cpx", "10.208.0.0/16", TcMode::tcx);
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) names.push_back(tcx.ep(i));
    time_row(tcx.node(), names, "ebpfnet-tcx", emit, [] {});
  }
  progress("control plane: " + std::to_string(n) + " endpoints in a row: ip commands");
  {
    int first = next;
    double k0 = kernel_mem_kib();
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) ipn.add(first + i);
    emit({"cp_add_batch_ms", "ip", ms_since(t0)});
    emit({"cp_kmem_per_ep_kib", "ip", (kernel_mem_kib() - k0) / n});
    t0 = Clock::now();
    for (int i = 0; i < n; ++i) ipn.del(first + i);
    emit({"cp_del_batch_ms", "ip", ms_since(t0)});
    next += n;
  }
  progress("control plane: " + std::to_string(n) + " endpoints in a row: ip -batch (kernel floor), with a "
           "clsact filter or a TCX link on each veth");
  {
    UniqueFd prog = trivial_tc_program();
    struct Way {
      std::string name;
      TcMode mode;
      int threads;
    };
    // A row of its own for each way to attach; the first also gives the
    // floor of the namespaces and veths alone.
    const Way ways[] = {{"ip-batch+attach", TcMode::clsact, 1},
                        {"ip-batch+tcx", TcMode::tcx, 1},
                        {"ip-batch+tcx-threads", TcMode::tcx, kTcxThreads}};
    for (const Way& w : ways) {
      throw_if_interrupted();
      const int first = next;
      next += n;
      std::vector<UniqueFd> links;
      auto t0 = Clock::now();
      ipn.add_batch(first, first + n);
      const double made = ms_since(t0);
      if (w.mode == TcMode::clsact) emit({"cp_add_batch_ms", "ip-batch", made});
      t0 = Clock::now();
      ipn.attach_batch(first, first + n, prog.get(), w.mode, w.threads, links);
      const double attached = ms_since(t0);
      emit({"cp_add_batch_ms", w.name, made + attached});
      // The attach alone: the rows' own noise (namespaces, veths) is larger than its cost.
      emit({"cp_attach_per_ep_ms", w.name, attached / n});
      t0 = Clock::now();
      ipn.del_batch(first, first + n);
      // A clsact filter goes with its qdisc: that row's delete is the floor's.
      emit({"cp_del_batch_ms", w.mode == TcMode::clsact ? "ip-batch" : w.name, ms_since(t0)});
    }
  }
}

}  // namespace ebpfnet::bench
