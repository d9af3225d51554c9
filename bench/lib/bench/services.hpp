// `ebpfnet bench --only services`: connection rate and connect latency to
// one service while N services exist (N = 1, 1,000, 10,000 by default), on
// ebpfnet (per-packet Maglev at tc, services loaded in one transaction) and
// on a kube-proxy-like baseline (a bridge, br_netfilter, and the nat table
// kube-proxy's iptables mode writes: KUBE-SERVICES with one rule per service,
// a KUBE-SVC chain picking a KUBE-SEP chain at random, DNAT); and how long
// adding one more service takes at each N on both.
//
// Each datapath is a sandbox of its own (names from the run's prefix): a
// node namespace, a client and two backends running tcp_crr servers. The
// virtual IPs are 10.96.0.0/16 addresses that exist only inside the
// sandboxes; nothing routes there from the root namespace.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/load.hpp"

namespace ebpfnet::bench {

inline constexpr uint16_t kSvcPort = 80;          // every service's port (tcp)
inline constexpr uint16_t kSvcBackendPort = 5204;  // where both backends serve it

struct ServicesConfig {
  std::string prefix;                 // unique per run
  std::filesystem::path ebpfnet_bin;  // the CLI, for the timed `service add`
  std::filesystem::path state_dir;    // private: node state, rule files
};

// The i-th service (from 0): its name and virtual IP (10.96.x.y, y in 1-250).
std::string service_name(int i);
std::string service_vip(int i);

class ServiceDatapath {
 public:
  virtual ~ServiceDatapath() = default;
  virtual std::string name() const = 0;  // "ebpfnet", "iptables" or "ebpfnet-1"
  virtual std::string description() const = 0;
  virtual std::vector<std::string> namespaces() const = 0;
  const std::string& client_ns() const { return client_ns_; }
  const std::vector<std::string>& backend_ns() const { return backend_ns_; }
  // Services present; the client's target is the last of them.
  int services() const { return count_; }
  // Adds services until n exist (n >= services()), the way the datapath
  // loads many at once (ebpfnet: one transaction; iptables: iptables-restore
  // of the whole table, as kube-proxy syncs). Returns the seconds it took.
  virtual double grow_to(int n) = 0;
  // Adds one more service and removes it again, reps times, timing each
  // add: way ("ebpfnet-cli", "iptables-noflush", ...) -> milliseconds.
  virtual std::map<std::string, std::vector<double>> time_add(int reps) = 0;

 protected:
  std::string client_ns_;
  std::vector<std::string> backend_ns_;
  int count_ = 0;
};

// "ebpfnet", "iptables", and "ebpfnet-1": a second ebpfnet sandbox the
// suite keeps at one service and measures in the same rounds as the others
// at every N, so "itself at 1" is taken under the same load of the machine
// as "at N". Built when made, removed by the destructor (also when
// building fails midway).
const std::vector<std::string>& service_datapaths();
std::unique_ptr<ServiceDatapath> make_service_datapath(const std::string& name, const ServicesConfig& cfg);

// tcp_crr from the client to the last service's virtual IP, both backends
// serving: svc_crr_cps, svc_connect_p50_us, svc_connect_p99_us; raw has the
// transactions each backend served.
Measurement measure_service_crr(const ServiceDatapath& d, const Tools& tools, Placement p, int seconds);

// The iptables-restore input kube-proxy's iptables mode would write for
// services [0, n) (filter and nat tables); subnet: the pods' (cluster) CIDR.
std::string kube_proxy_rules(int n, const std::vector<std::string>& backends, const std::string& subnet);

}  // namespace ebpfnet::bench
