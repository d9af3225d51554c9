// ebpfnet cluster create|delete|start|status: a whole cluster on one
// machine, in sandbox namespaces (docs/cluster.md, "Sandbox clusters"):
//   <name>-ul     the underlay: a router namespace every node's uplink joins
//                 (node k gets the transfer net 198.18.k-1.0/24, .2 its own)
//   <name>-etcd   etcd, listening only on 198.19.0.2 (198.19.0.0/24 to <name>-ul)
//   <name>-1..N   ordinary sandbox nodes, attached, each with a pool that
//                 etcd's registry gave it and a `cluster agent --overlay`
// The agents run the binary of the calling process: these are for the
// ebpfnet command line, not for other programs linking the library.
// Every address lies in 198.18.0.0/15 (RFC 2544), inside those namespaces
// only: nothing routes to or from the root namespace. Daemons are started
// detached and stopped by PID (checked against their start time).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "ebpfnet/cluster/bird.hpp"
#include "ebpfnet/cluster/sandbox_store.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet::cluster {

struct SandboxOptions {
  std::string name;
  int nodes = 3;
  Mode mode = Mode::vxlan;
  ClusterConfig config{*Ipv4Cidr::parse("10.244.0.0/16"), 24};
  int ttl = 5;                                  // each agent's lease
  std::chrono::seconds ready_within{30};        // every node programmed with every peer
};

inline constexpr int kMaxSandboxNodes = 64;

// All or nothing: a failure takes back everything made so far (as delete
// does) and throws what failed.
SandboxCluster create_sandbox(const Env& env, const SandboxOptions& opts);

// Stops the agents and etcd by PID and removes the nodes, namespaces and
// the cluster's directory. What is already gone is skipped, so a delete
// that failed midway can be run again. Errc::not_found: no such cluster.
void delete_sandbox(const Env& env, const std::string& name);

// Starts the agent of every node whose agent is not running (it crashed or
// was killed); returns the nodes whose agent was started.
std::vector<std::string> start_agents(const Env& env, const std::string& name);

struct SandboxNodeStatus {
  SandboxNode node;
  bool agent_alive = false;
  bool registered = false;   // its record is in etcd
  std::string lease;         // hex, as etcd shows it
  int64_t ttl_left = -1;     // seconds; -1 unknown or gone
  // Its overlay's peers (vxlan), or its table's routes to peers' pools (native).
  std::vector<TunnelPeerRecord> programmed;
  std::vector<BgpSession> bgp;  // native: its BIRD's sessions
  std::string bgp_error;        // native: BIRD did not answer
  std::string error;         // what could not be read about it
};

struct SandboxStatus {
  SandboxCluster cluster;
  bool etcd_alive = false;
  std::string etcd_error;  // etcd did not answer: why
  std::vector<SandboxNodeStatus> nodes;
};

SandboxStatus sandbox_status(const Env& env, const std::string& name);

}  // namespace ebpfnet::cluster
