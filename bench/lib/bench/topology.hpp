// The datapaths under test, each built in its own namespaces (named
// <prefix><short>-...), with addresses of its own, no route into the root
// namespace, and removed by the destructor, also when building failed midway.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace ebpfnet::bench {

// The ports the bench traffic uses (and the allow rules let through).
inline constexpr uint16_t kTputPort = 5201, kRrPort = 5202, kCrrPort = 5203, kUdpPort = 5301;
// The server's kTputPort published on the node (docker -p), on both NAT datapaths.
inline constexpr uint16_t kPublishedPort = 15201;

struct TopologyConfig {
  std::string prefix;                 // unique per run, e.g. "eb-1234-"
  std::filesystem::path ebpfnet_bin;  // the CLI, for `policy set`
  std::filesystem::path state_dir;    // private: ebpfnet node state, generated rule files
};

class Topology {
 public:
  virtual ~Topology() = default;
  virtual std::string name() const = 0;
  // What it is made of, for the report.
  virtual std::string description() const = 0;
  const std::string& client_ns() const { return client_ns_; }
  const std::string& server_ns() const { return server_ns_; }
  const std::string& client_ip() const { return client_ip_; }
  const std::string& server_ip() const { return server_ip_; }
  // Every namespace it made (all removed by the destructor).
  virtual std::vector<std::string> namespaces() const = 0;
  // Installs n filter rules that never match the bench traffic, then the
  // allow rules it needs; n = 0 still installs the allow rules. Returns ""
  // when done, else why it cannot (the datapath has no rules, or the
  // feature is unavailable).
  virtual std::string set_rules(int n) {
    (void)n;
    return name() + " has no filter rules";
  }

 protected:
  std::string client_ns_, server_ns_, client_ip_, server_ip_;
};

// "direct", "tc-peer", "bridge", "bridge-iptables", "ebpfnet".
const std::vector<std::string>& known_datapaths();
std::unique_ptr<Topology> make_topology(const std::string& datapath, const TopologyConfig& cfg);

// The distinct /32 peer of the i-th never-matching rule (172.16.0.0/12, i < 2^20).
std::string nonmatching_peer(int i);

// The YAML policy document `ebpfnet policy set` takes: n deny rules for
// nonmatching peers, then the allow rules for the bench traffic from client_ip.
std::string policy_yaml(int n, const std::string& client_ip);
// The iptables-restore input of bridge-iptables with n rules.
std::string iptables_rules(int n, const std::string& client_ip, const std::string& server_ip,
                           const std::string& subnet);

}  // namespace ebpfnet::bench
