// What a sandbox cluster owns, kept so that `cluster delete` and `status`
// (later invocations) find it: the namespaces it made, etcd's address and
// process, each node with its underlay address, pool and agent process.
// One directory per cluster, <state root>/.clusters/<name>/ (a leading dot
// is never a node's name, so `node list` does not see it), holding
// cluster.json, etcd's data and the daemons' logs. Like a node's state it is
// ours alone: directories 0700 and files 0600 owned by us, never reached
// through a symbolic link, written atomically (temporary file, fsync, rename).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ebpfnet/cluster/daemon.hpp"
#include "ebpfnet/cluster/records.hpp"
#include "ebpfnet/fd.hpp"

namespace ebpfnet::cluster {

struct SandboxNode {
  std::string name;
  std::optional<Ipv4> underlay;  // set once its uplink exists
  std::optional<Ipv4Cidr> pool;  // set once etcd gave it one
  DaemonId agent;                // pid 0: not started
};

struct SandboxCluster {
  std::string name;
  Mode mode = Mode::vxlan;
  ClusterConfig config;
  int ttl = 5;
  std::string underlay_ns;  // the router every node's uplink joins
  std::string etcd_ns;
  Ipv4 etcd_ip;
  DaemonId etcd;
  std::vector<SandboxNode> nodes;
  std::string etcd_url() const { return "http://" + etcd_ip.str() + ":2379"; }
};

class SandboxStore {
 public:
  // Opens (create: makes) <state_root>/.clusters/<name>/. create refuses
  // a cluster whose directory exists (Errc::exists): two creates of one name
  // never share it. Without create, Errc::not_found when there is none.
  SandboxStore(const std::filesystem::path& state_root, const std::string& name, bool create);

  const std::filesystem::path& dir() const { return dir_; }
  // Holds the cluster's lock (flock on its directory) until the store goes:
  // create, delete and start of one cluster never run at once.
  void lock() const;
  std::optional<SandboxCluster> load() const;  // nullopt: nothing written yet
  void save(const SandboxCluster& c) const;
  // A file of the directory for a daemon's output, appended to (0600).
  UniqueFd open_log(const std::string& file) const;
  // Removes the directory and everything in it.
  void remove() const;

 private:
  std::filesystem::path dir_;
  UniqueFd fd_;
};

}  // namespace ebpfnet::cluster
