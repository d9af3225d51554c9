// What a node remembers between invocations: its configuration in one JSON
// file per node, written atomically under a file lock, and its endpoints and
// services in the node's database (node_db.hpp) beside it.
// The file carries a schema version; older versions are migrated on load,
// and what is loaded is validated like user input before anything acts on it.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/fd.hpp"
#include "ebpfnet/ipv4.hpp"
#include "ebpfnet/ipv6.hpp"
#include "ebpfnet/policy.hpp"
#include "ebpfnet/xdp_attach.hpp"

namespace ebpfnet {

// How a program is attached to a veth.
enum class TcMode { tcx, clsact };
std::string to_string(TcMode m);
std::optional<TcMode> parse_tc_mode(std::string_view s);

// Where an endpoint's compiled rule sets live in the maps, by direction
// (EBPFNET_INGRESS, EBPFNET_EGRESS). Set id 0: no rules, only the default.
struct PolicyIds {
  std::array<uint32_t, 2> set{};
  std::array<uint32_t, 2> first_class{};
};

// Node-wide counters that hand out rule-set and class ids; never reused, so
// an old and a new rule set cannot share a key.
struct PolicyIdCounters {
  uint32_t next_set = 1;
  uint32_t next_class = 1;
};

struct EndpointRecord {
  std::string name;
  std::string netns;        // the name, path or pid:N it was given by
  std::string netns_path;   // what to open to enter it again
  bool netns_owned = false; // ebpfnet created it, so ebpfnet deletes it
  std::string ifname = "eth0";
  Ipv4 ip;
  std::optional<Ipv6> ip6;  // on a dual-stack node; absent in files written before IPv6
  Mac mac{};
  std::string host_ifname;
  int host_ifindex = 0;
  Mac host_mac{};
  uint64_t netns_cookie = 0;  // SO_NETNS_COOKIE of its namespace; 0: not known yet
  TcMode tc_mode = TcMode::tcx;
  // Set when a CNI runtime added it: DEL, CHECK and GC find the endpoint by
  // (container_id, ifname) and GC only touches its own network's.
  std::string container_id;
  std::string cni_network;
  std::optional<Policy> policy;  // none: everything allowed
  PolicyIds policy_ids;
};

// The node's way out: masquerade and published ports use its address.
struct UplinkRecord {
  std::string ifname;   // in the node's namespace
  std::string outside;  // sandbox: the namespace playing the internet; "" in production
  TcMode tc_mode = TcMode::tcx;
  bool outside_owned = true;  // false: joined another node's outside, which is not ours to delete
  std::optional<XdpMode> xdp;  // the prefilter's attachment; none while the deny list is empty
};

// A destination reached by routing through the uplink, never masqueraded.
struct RouteRecord {
  Ipv4Cidr dst;
  Ipv4 via;
};

// Another node's pool reached through the overlay: the underlay address of
// the node that owns it.
struct TunnelPeerRecord {
  Ipv4Cidr pool;
  Ipv4 via;
};

// The node's VXLAN overlay: one collect_md vxlan device in the node's
// namespace (made with the first peer, removed with the last), the program
// on its ingress, and the peers.
struct OverlayRecord {
  std::string ifname = "vx0";
  uint32_t vni = 1;
  uint16_t port = 4789;  // UDP, sent to and listened on
  // The device's: an underlay MTU of 1500 less VXLAN's 50 bytes (outer
  // IPv4, UDP, VXLAN, inner Ethernet). Larger packets with DF get
  // "fragmentation needed" from the node with this MTU.
  uint32_t mtu = 1450;
  TcMode tc_mode = TcMode::tcx;
  std::vector<TunnelPeerRecord> peers;
};

// A published port: uplink address:port -> endpoint:target_port.
struct PublishRecord {
  std::string endpoint;
  std::string proto;  // "tcp" or "udp"
  uint16_t target_port = 0;
  uint16_t port = 0;
};

// Backend weights: relative shares of a service's Maglev table.
inline constexpr uint32_t kMaxBackendWeight = 100;

// A backend of a service: an endpoint of the node and the port it serves.
struct BackendRecord {
  uint32_t id = 0;  // key of the backends map and its counters
  std::string endpoint;
  uint16_t port = 0;
  uint32_t weight = 1;    // its share of new connections, relative to the others'
  bool draining = false;  // keeps its connections, takes no new one
};

// A service: a virtual IP (vip:port), a node port on the uplink's address,
// or both, balanced over its backends.
struct ServiceRecord {
  std::string name;
  uint32_t id = 0;           // key of its Maglev table and its affinity entries
  std::string proto;         // "tcp" or "udp"
  std::optional<Ipv4> vip;
  uint16_t port = 0;         // of the vip
  uint16_t node_port = 0;    // 0: none
  uint32_t affinity_s = 0;   // session affinity by client address: its timeout; 0: none
  std::vector<BackendRecord> backends;
};

// Ids for services and backends; never reused, so a new backend never
// inherits an old one's counters, affinity entries or flows.
struct ServiceIdCounters {
  uint32_t next_service = 1;
  uint32_t next_backend = 1;
};

// Seconds a conntrack entry lives after its last packet, by state.
struct CtTimeouts {
  uint32_t syn = 60;          // TCP before the handshake completes
  uint32_t tcp = 21600;       // established TCP
  uint32_t closing = 10;      // TCP after FIN or RST
  uint32_t udp = 60;
  uint32_t icmp = 30;
};

// Sets one timeout from "NAME=SECONDS" (syn, tcp, closing, udp, icmp);
// throws Errc::usage for anything else.
void set_ct_timeout(CtTimeouts& t, std::string_view spec);

struct NodeState {
  std::string name;
  bool sandbox = true;    // a netns playing the host; false: the root namespace
  Ipv4Cidr cidr;
  // The IPv6 pool of a dual-stack node (node create --cidr6); its first
  // address is the IPv6 gateway. Absent: IPv4 only, as every older file.
  std::optional<Ipv6Cidr> cidr6;
  Ipv4 last_allocated;
  bool attached = false;
  std::optional<TcMode> tc_mode;  // chosen at attach: detected or forced
  std::optional<UplinkRecord> uplink;
  std::vector<PublishRecord> published;
  std::vector<RouteRecord> routes;
  CtTimeouts ct_timeouts;
  uint32_t ct_size = 262144;  // conntrack entries (two per flow); attach --ct-size changes it
  bool socket_lb = true;      // connect-time balancing where the kernel has it; attach --socket-lb
  PolicyIdCounters policy_counters;
  // Sources the uplink's XDP prefilter drops: prefixes, and addresses as /32;
  // none overlaps another.
  std::vector<Ipv4Cidr> prefilter;
  std::optional<OverlayRecord> overlay;  // none: no overlay device
  // Native routing (cluster --mode native): the cluster CIDR, holding the
  // node's pool, reached through the routes BIRD installs; never
  // masqueraded, and delivered to endpoints when it arrives on the uplink.
  std::optional<Ipv4Cidr> native_cidr;
  // The services live in their own table (ServiceTable) since schema 7;
  // a file of schema 6 or older held them here, and the transaction that
  // loads it moves them into the table. Never saved.
  struct LegacyServices {
    std::vector<ServiceRecord> services;
    ServiceIdCounters counters;
  };
  std::optional<LegacyServices> legacy_services;
  // The endpoints live in their own table (EndpointTable) since schema 8;
  // a file of schema 7 or older held them here, and the transaction that
  // loads it moves them into the table. Never saved.
  std::optional<std::vector<EndpointRecord>> legacy_endpoints;

  Ipv4 gateway() const { return cidr.first_host(); }
  std::optional<Ipv6> gateway6() const { return cidr6 ? std::optional(cidr6->gateway()) : std::nullopt; }
};

// An operation in progress: written before the operation changes anything
// beyond the node's state, removed once its state is saved (or its undo has
// run). Found by a later command, under the node's lock, it means the
// operation was killed, and recovery takes back or finishes what it was doing.
struct Journal {
  std::string op;                           // "endpoint add", for the log
  int pid = 0;                              // of the process that wrote it
  std::vector<EndpointRecord> adding;       // planned; made in part, maybe: taken back unless saved
  std::vector<std::string> removing;        // endpoints whose removal recovery finishes
  std::vector<PublishRecord> unpublishing;  // published ports whose flows recovery forgets
  std::vector<std::string> netns;           // namespaces being made: removed unless the node's state has them
};

// Throws Errc::failed naming the first field (as "endpoints[2].ip") that
// ebpfnet itself would never have written: a bad name or path, an address
// outside the pool, a duplicate, a port or timeout of 0. State is read from
// a file others may have edited, so it is checked like user input.
void validate_state(const NodeState& s, std::string_view node);
// One endpoint as a row of the endpoint table is checked: its names and
// paths, an address ebpfnet hands out in pool, an interface index. The
// table's constraints keep what must be unique across endpoints.
void validate_endpoint(const EndpointRecord& e, const Ipv4Cidr& pool, const std::optional<Ipv6Cidr>& pool6,
                       const std::string& at);
// Why pool via VIA cannot be a peer of the node's overlay (it overlaps the
// node's pool, a route or another peer's pool (but peers[skip]), or via is
// no unicast address outside the pools), or "".
std::string tunnel_peer_problem(const NodeState& s, const Ipv4Cidr& pool, Ipv4 via, size_t skip = SIZE_MAX);
// Why c cannot be a node's IPv6 pool (its size, or a special-purpose
// prefix), or "".
std::string ipv6_pool_problem(const Ipv6Cidr& c);
// The same for a journal: every name recovery would act on is checked.
void validate_journal(const Journal& j);

// The files of one node under <root>/<node>/: lock, state.json, and the
// node's database of endpoints and services (services.db, see node_db.hpp). The node's
// directory is opened without following a symlink, every file in it is
// reached relative to that directory (never by path), and the directory and
// its files must be the effective user's and writable by nobody else: a
// local user who can write into the state root cannot redirect a write or
// plant a state. Directories are made 0700, files 0600.
class StateStore {
 public:
  StateStore(std::filesystem::path root, std::string node);

  // Holds the node's lock (flock on <dir>/lock) for its lifetime.
  class Lock {
   public:
    explicit Lock(UniqueFd fd) : fd_(std::move(fd)) {}

   private:
    UniqueFd fd_;
  };
  // create: make the node's directory if missing (node create, first
  // attach); otherwise a missing node is Errc::not_found and nothing is made.
  Lock lock(bool create = false) const;

  bool exists() const;
  // Throws Errc::not_found when the node has no state, Errc::failed when the
  // state is corrupt, invalid or of a newer schema than this binary knows.
  NodeState load() const;
  void save(const NodeState& s) const;  // always in the current schema
  void remove() const;

  // journal.json beside the state, read and written like it. A journal
  // guards kernel objects, which a power loss takes with it, so it is
  // written without fsync: it has to survive a killed process only.
  void save_journal(const Journal& j) const;
  std::optional<Journal> load_journal() const;
  void remove_journal() const;

  // A small file of the node's beside its state (ops.json: the operation
  // counts `metrics` exports), reached as the state is: never through a
  // symlink, ours alone. nullopt when it or the node's directory is missing.
  std::optional<std::string> read_file(std::string_view name) const;
  // Replaces it by update(what it held), through a temp file and rename,
  // under a lock of its own (<name>.lock), not the node's: it never waits
  // for an operation. Without fsync: a crash may lose the last update, never
  // leave a part. false when the node has no directory.
  bool update_file(std::string_view name,
                   const std::function<std::string(const std::optional<std::string>&)>& update) const;
  const std::filesystem::path& dir() const { return dir_; }
  // The path of a file of the node's directory for a library that opens it
  // by path (SQLite), after checking the directory and the file, if it is
  // there, as every state file is checked. Errc::not_found without the
  // node's directory.
  std::filesystem::path checked_path(std::string_view name) const;

 private:
  // Atomic replace of one file of the node's directory (temp file, rename).
  void write_file(const std::string& name, const std::string& text, bool durable) const;

  std::filesystem::path dir_;
  std::string node_;
  // state.json as this operation read or wrote it, under its lock (reset by
  // lock() and remove()): save() skips a rewrite that would change nothing.
  mutable std::optional<std::string> on_disk_;
};

}  // namespace ebpfnet
