#include "bench/scale.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "bench/controlplane.hpp"
#include "bench/process.hpp"
#include "bench/stats.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/probe.hpp"

namespace ebpfnet::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// The sandbox node, destroyed with everything in it whatever happens.
class ScaleNode {
 public:
  explicit ScaleNode(const ScaleConfig& cfg) : name_(cfg.prefix + "sc") {
    env_.state_root = cfg.state_dir / "scale-state";
    // A /16: room for far more endpoints than a node holds (EBPFNET_MAX_ENDPOINTS).
    Node::create(env_, name_, *Ipv4Cidr::parse("10.204.0.0/16"));
  }
  ~ScaleNode() {
    try {
      Node::destroy(env_, name_);
    } catch (...) {
    }
  }
  Node node() const { return Node(env_, name_); }
  std::vector<std::string> cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"--state-dir", env_.state_root.string(), "--node", name_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  std::string ep(int i) const { return name_ + "-" + std::to_string(i); }
  // What the node keeps on disk: its state file and its database (the
  // endpoint and service tables), with a WAL a command left unfolded.
  double state_kib() const {
    const fs::path dir = env_.state_root / name_;
    double bytes = 0;
    for (const char* f : {"state.json", "services.db", "services.db-wal"})
      if (fs::exists(dir / f)) bytes += static_cast<double>(fs::file_size(dir / f));
    return bytes / 1024;
  }

 private:
  Env env_;
  std::string name_;
};

// Bytes ebpfnet keeps per endpoint in its maps: key and value of each
// endpoint map (values of per-CPU maps once per possible CPU).
double map_entry_bytes(const fs::path& maps_dir) {
  double sum = 0;
  for (const char* m : {"ep_by_ip", "ep_by_ifindex", "ep_stats"}) {
    UniqueFd fd(bpf_obj_get((maps_dir / m).c_str()));
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (!fd.valid() || bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
      throw std::runtime_error(std::string("scale: reading map ") + m);
    const int copies = info.type == BPF_MAP_TYPE_PERCPU_HASH ? libbpf_num_possible_cpus() : 1;
    sum += info.key_size + static_cast<double>(info.value_size) * copies;
  }
  return sum;
}

}  // namespace

void run_scale(const ScaleConfig& cfg, const std::function<void(const ScaleSample&)>& emit,
               const std::function<void(const std::string&)>& progress) {
  ScaleNode sn(cfg);
  const int n = cfg.endpoints;
  long peak_rss = 0;
  auto cli = [&](const std::vector<std::string>& args, double timeout_s) {
    std::vector<std::string> argv = {cfg.ebpfnet_bin.string()};
    auto rest = sn.cli(args);
    argv.insert(argv.end(), rest.begin(), rest.end());
    Result r = run(Spawn{argv}, timeout_s);
    if (r.code != 0) throw std::runtime_error("scale: ebpfnet " + args.front() + ": " + r.err);
    peak_rss = std::max(peak_rss, r.peak_rss_kib);
    return r;
  };
  auto row_of = [&](int from, int to, const char* verb) {
    std::vector<std::string> args = {"endpoint", verb};
    for (int i = from; i < to; ++i) args.push_back(sn.ep(i));
    return args;
  };

  cli({"attach"}, 60);
  const fs::path maps = sn.node().pin_dir() / "maps";
  const double k0 = kernel_mem_kib();
  double add_ms = 0, first_row = 0, last_row = 0;
  for (int from = 0; from < n; from += cfg.row) {
    throw_if_interrupted();
    const int to = std::min(n, from + cfg.row);
    progress("scale: adding endpoints " + std::to_string(from) + ".." + std::to_string(to - 1));
    auto t0 = Clock::now();
    cli(row_of(from, to, "add"), 600);
    const double per_ep = ms_since(t0) / (to - from);
    add_ms += per_ep * (to - from);
    if (from == 0) first_row = per_ep;
    last_row = per_ep;
  }
  const double k1 = kernel_mem_kib();
  emit({"scale_add_per_ep_ms", add_ms / n});
  emit({"scale_add_first_row_per_ep_ms", first_row});
  emit({"scale_add_last_row_per_ep_ms", last_row});
  emit({"scale_kmem_per_ep_kib", (k1 - k0) / n});

  progress("scale: list and status at " + std::to_string(n) + " endpoints");
  auto t0 = Clock::now();
  Result list = cli({"endpoint", "list", "-o", "json"}, 120);
  emit({"scale_list_ms", ms_since(t0)});
  if (list.out.find(sn.ep(n - 1)) == std::string::npos)
    throw std::runtime_error("scale: endpoint list lacks " + sn.ep(n - 1));
  t0 = Clock::now();
  cli({"status", "-o", "json"}, 120);
  emit({"scale_status_ms", ms_since(t0)});

  progress("scale: ICMP between " + std::to_string(cfg.pairs) + " random pairs");
  {
    auto views = sn.node().endpoints();
    std::mt19937 rng(12345);
    std::uniform_int_distribution<size_t> pick(0, views.size() - 1);
    int ok = 0;
    for (int k = 0; k < cfg.pairs; ++k) {
      throw_if_interrupted();
      size_t a = pick(rng), b = pick(rng);
      if (a == b) b = (b + 1) % views.size();
      ok += probe_icmp(Netns::open_named(views[a].rec.netns), views[b].rec.ip).ok ? 1 : 0;
    }
    emit({"scale_pairs_ok_pct", 100.0 * ok / cfg.pairs});
  }

  const double state_kib = sn.state_kib();
  const double entry_kib = map_entry_bytes(maps) / 1024;
  emit({"scale_state_per_ep_kib", state_kib / n});
  emit({"scale_map_entries_per_ep_kib", entry_kib});
  if (k1 > k0)
    emit({"scale_own_mem_pct_of_kernel", 100.0 * (state_kib / n + entry_kib) / ((k1 - k0) / n)});

  double del_ms = 0;
  for (int from = 0; from < n; from += cfg.row) {
    throw_if_interrupted();
    const int to = std::min(n, from + cfg.row);
    progress("scale: deleting endpoints " + std::to_string(from) + ".." + std::to_string(to - 1));
    t0 = Clock::now();
    cli(row_of(from, to, "del"), 600);
    del_ms += ms_since(t0);
  }
  emit({"scale_del_per_ep_ms", del_ms / n});
  emit({"scale_cli_peak_rss_mib", peak_rss / 1024.0});
}

}  // namespace ebpfnet::bench
