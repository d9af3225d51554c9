// BIRD (Debian's bird2), one per node, for native routing: it announces the
// node's pool over iBGP (a blackhole route for the pool, as Calico does) to
// a full mesh of the other nodes and installs their pools in the node's
// routing table, where the datapath's bpf_fib_lookup finds them.
//
// Its files live in the node's state directory (bird.conf, bird.ctl, its
// control socket, bird.pid, bird.log). It listens only on the node's
// underlay address (strict bind) and runs in the namespace its starter is
// in: the agent of a sandbox node has entered the node's namespace.
// Graceful restart is on both ways: a BIRD that dies keeps its routes in
// the kernel (persist) and at its peers (for kGracefulRestartSeconds) until
// it is back, started with -R, and has caught up.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ebpfnet/cluster/records.hpp"

namespace ebpfnet::cluster {

inline constexpr uint32_t kClusterAsn = 64512;  // private (RFC 6996): every node in one AS, iBGP
inline constexpr int kGracefulRestartSeconds = 120;

// This node, as BIRD's configuration needs it.
struct BgpSelf {
  std::string node;
  Ipv4 underlay;   // router id, and the only address BIRD binds
  Ipv4Cidr pool;   // announced
};

// The BGP protocol BIRD names the session to peer node (a symbol: '-' is '_').
std::string bgp_protocol_name(const std::string& node);

// The whole configuration: the pool's blackhole route, the kernel table
// (BGP and the blackhole exported, nothing learnt), one iBGP session per
// peer that accepts only that peer's own pool. Peers in vxlan mode are
// left out (they route through the overlay).
std::string render_bird_config(const BgpSelf& self, const std::map<std::string, NodeRecord>& peers);

// One BGP session, as `birdc show protocols` tells it.
struct BgpSession {
  std::string protocol;  // bgp_protocol_name(peer)
  std::string state;     // up, start, down, ...
  std::string info;      // Established, Active, Connect, ...
  bool operator==(const BgpSession&) const = default;
};

// Parses `birdc show protocols` output; only BGP protocols.
std::vector<BgpSession> parse_bgp_sessions(const std::string& birdc_output);

// The BIRD of one node, through its files and control socket.
class Bird {
 public:
  explicit Bird(std::filesystem::path dir);

  // "" when bird and birdc are installed, else what to do about it.
  static std::string missing();

  std::filesystem::path config() const { return dir_ / "bird.conf"; }
  std::filesystem::path socket() const { return dir_ / "bird.ctl"; }
  std::filesystem::path pid_file() const { return dir_ / "bird.pid"; }
  std::filesystem::path log() const { return dir_ / "bird.log"; }

  // Atomically (temporary file, rename); true when the text changed.
  bool write_config(const std::string& text) const;
  // The running BIRD's PID: the one its pid file names, if that process is
  // a bird serving this directory's socket (a reused PID is not).
  std::optional<pid_t> running() const;
  // Starts bird in the foreground of a daemon of its own (detached, in this
  // namespace); recover: -R, graceful restart recovery (it ran before).
  // tag: as DaemonSpec::tag. Returns its PID once its socket answers.
  pid_t start(bool recover, const std::string& tag) const;
  // birdc configure: reloads bird.conf; throws with BIRD's words on failure.
  void reconfigure() const;
  // The BGP sessions now; throws when BIRD does not answer.
  std::vector<BgpSession> sessions() const;
  // SIGTERM, then SIGKILL after grace; true when none runs.
  bool stop(int grace_ms) const;

 private:
  std::string birdc(const std::vector<std::string>& args) const;
  std::filesystem::path dir_;
};

}  // namespace ebpfnet::cluster
