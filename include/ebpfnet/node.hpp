// The node facade: every user-visible operation on a node, each one
// transactional (a failure undoes what that operation did) and done under
// the node's lock. Each is a NodeTxn (node_txn.hpp) handed to the part that
// owns its piece of the node (controller/node/).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/datapath.hpp"
#include "ebpfnet/netlink.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/services.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet {

struct TraceRequest;  // ebpfnet/trace.hpp
struct TraceResult;

// The node that is the machine's root namespace (no --node).
inline constexpr const char* kRootNode = "root";

struct Env {
  std::filesystem::path state_root = "/var/lib/ebpfnet";
  std::filesystem::path pin_root = "/sys/fs/bpf/ebpfnet";
};

// Called between the steps of an operation with the next step's name; a
// test throws from it to prove every step is undone.
using Checkpoint = std::function<void(std::string_view step)>;

// The sandbox uplink: a /24 transfer net between the node and the namespace
// playing the internet, which also holds a "server" address behind it.
inline constexpr const char* kSandboxUplinkIp = "198.18.0.2";
inline constexpr const char* kSandboxOutsideIp = "198.18.0.1";
inline constexpr const char* kSandboxServerIp = "203.0.113.1";
// A dual-stack sandbox's IPv6 beside those: the transfer net fd18:0:N::/64
// (N as in 198.18.N.0/24; the outside is ::1, the uplink ::2) and the server
// 2001:db8:ffff::1 (documentation space) on the outside's loopback.
inline constexpr const char* kSandboxUplinkIp6 = "fd18::2";
inline constexpr const char* kSandboxOutsideIp6 = "fd18::1";
inline constexpr const char* kSandboxServerIp6 = "2001:db8:ffff::1";
// Masquerade source ports: above Linux's default ephemeral range
// (32768-60999), so they never meet the node's own connections.
inline constexpr uint16_t kNatPortMin = 61000, kNatPortMax = 65535;

struct AttachOptions {
  std::optional<Ipv4Cidr> cidr;      // needed the first time for the root node
  std::optional<TcMode> tc_mode;     // default: TCX where the kernel has it
  std::optional<std::string> uplink; // the node's way out (production: its eth0)
  std::vector<std::string> ct_timeouts;  // NAME=SECONDS; the others keep their values
  std::optional<uint32_t> ct_size;       // conntrack entries; a change migrates the flows
  std::optional<bool> socket_lb;         // connect-time service balancing (default on)
  bool dry_run = false;                  // say what would change, change nothing
};

// Builds a policy with endpoint names resolved against the node's state
// (it runs under the node's lock).
using PolicySource = std::function<Policy(const PeerResolver&)>;

// Entries a policy takes in the datapath maps.
struct PolicySize {
  size_t cidr_entries = 0;
  size_t port_entries = 0;
};

struct EndpointPolicyView {
  std::string endpoint;
  Ipv4 ip;
  Policy policy;
  PolicySize size;
};

// One event of the datapath, with the names that go with it.
struct MonitorEvent {
  ebpfnet_event raw;
  std::string endpoint;  // the endpoint's name; "" when none or unknown
  std::string rule;      // policy verdicts: the rule or default that decided
  std::string service;   // the service it addressed (a virtual IP, or a node port refused); "" when none
};

struct MonitorOptions {
  bool drops = true;
  bool flows = false;  // also every new connection the datapath tracks
};

// A program of the node replaced by this binary's.
struct ProgramSwap {
  std::string program;
  std::string from_tag;  // "" when none was pinned
  std::string to_tag;    // "" in a dry run (not loaded)
  int attachments = 0;   // switched to it (endpoints, uplink)
};

// A pinned map that could not be reused as it was.
struct MapMigration {
  std::string name;
  std::string from, to;  // layouts; from "" when none was pinned
  std::string how;       // "copied", "rebuilt from state", "reset", "started empty", "created"
  size_t entries = 0;    // entries copied or rewritten
};

struct AttachResult {
  bool loaded = false;     // false: the pinned datapath was already this binary's
  bool dry_run = false;
  uint32_t from_abi = 0;   // the pinned datapath's ABI version, 0: none was pinned
  uint32_t to_abi = EBPFNET_ABI_VERSION;
  std::vector<ProgramSwap> programs;
  std::vector<MapMigration> maps;
  int links_repaired = 0;  // attachments that had to be made again (lost link, stale program)
};

struct EndpointRequest {
  std::string name;
  std::optional<Ipv4> ip;            // default: the next free address of the pool
  std::optional<std::string> netns;  // an existing namespace: name, path or pid:N
  std::string ifname = "eth0";
  std::string container_id;  // CNI: the runtime's container, recorded for DEL/CHECK/GC
  std::string cni_network;   // CNI: the network (conflist name) adding it
  std::optional<Ipv6> ip6;           // dual-stack node: default the IPv4 address's offset in the IPv6 pool
};

// A CNI runtime's key for one attachment: container id and interface name.
struct ContainerRef {
  std::string id;
  std::string ifname;
  bool operator==(const ContainerRef&) const = default;
};

struct EndpointView {
  EndpointRecord rec;
  std::optional<EndpointStats> stats;
  uint32_t prog_id = 0;  // the program attached at its veth, 0 if none
};

struct MapInfo {
  std::string name;
  std::string type;
  uint32_t id = 0;
  uint32_t max_entries = 0;
  size_t entries = 0;  // hash maps only
};

// One place a program of the node is attached.
struct AttachmentView {
  std::string owner;   // an endpoint's name, or "uplink"
  std::string ifname;  // in the node
  TcMode tc_mode = TcMode::tcx;
  ProgInfo prog;       // id 0: nothing attached
  bool stale = false;  // not the program this binary would attach
  std::optional<XdpMode> xdp;  // set: an XDP attachment (the uplink prefilter), not tc
};

struct NodeStatus {
  NodeState state;
  size_t endpoint_count = 0;
  std::filesystem::path pin_dir;
  uint32_t abi = 0;           // of the pinned datapath; 0: none
  uint64_t build = 0;         // of the pinned programs
  uint64_t binary_build = 0;  // of this binary's programs
  std::vector<AttachmentView> attachments;  // endpoints' first, then the uplink's, the overlay's
  std::optional<ProgInfo> prog;
  std::optional<ProgInfo> uplink_prog;  // attached at the uplink, if there is one
  std::optional<ProgInfo> prefilter_prog;  // pinned for the uplink's XDP hook (ABI 3+)
  std::optional<ProgInfo> tunnel_prog;     // pinned for the overlay device, when there is one (ABI 5+)
  std::optional<Ipv4> uplink_ip;
  std::vector<MapInfo> maps;
  DropCounts node_drops{};
  std::vector<EndpointView> endpoints;  // empty when they were streamed (Node::status with a sink)
  std::vector<std::string> bridges;  // bridge devices in the node (there should be none)
  std::string socket_lb;  // connect-time balancing: attached, idle, off, unavailable: WHY
  size_t services = 0;
};

// Takes endpoints one at a time, for outputs that stream them: a node of
// 10,000 holds none of them in memory at once.
using EndpointSink = std::function<void(const EndpointView&, const AttachmentView&)>;

// A prefilter entry as users write it: "203.0.113.0/24", or an address
// "198.51.100.7" (its /32). Errc::usage saying what is wrong (host bits set
// name the prefix that was meant); and back, a /32 as its address.
Ipv4Cidr parse_prefilter_entry(std::string_view s);
std::string prefilter_entry_str(const Ipv4Cidr& c);

class Node {
 public:
  Node(Env env, std::string name);

  // A sandbox node: a named namespace playing the host, with its pool.
  // uplink_sandbox: also a namespace "<name>-out" playing the internet,
  // wired to the node's eth0 (the node's uplink). outside: instead join that
  // existing namespace (another node's outside), which then routes between
  // the nodes: the lan1 - router - lan2 picture. cidr6: a dual-stack node,
  // whose endpoints get an address of each pool.
  static void create(const Env& env, const std::string& name, Ipv4Cidr cidr,
                     const Checkpoint& cp = {}, bool uplink_sandbox = false,
                     const std::string& outside = "", std::optional<Ipv6Cidr> cidr6 = std::nullopt);
  // Removes every endpoint, the datapath, the namespace (sandbox) and the state.
  static void destroy(const Env& env, const std::string& name);
  static std::vector<std::string> list(const Env& env);

  // Loads and pins the datapath, or upgrades a pinned one in place: maps
  // whose layout changed are migrated, and every attachment switches to the
  // new programs atomically; a failure leaves the old datapath as it was.
  AttachResult attach(const AttachOptions& opts = {}, const Checkpoint& cp = {});
  EndpointRecord add_endpoint(const EndpointRequest& req, const Checkpoint& cp = {});
  // Several at once, all or none: one lock, one state write.
  std::vector<EndpointRecord> add_endpoints(const std::vector<EndpointRequest>& reqs,
                                            const Checkpoint& cp = {});
  void del_endpoint(const std::string& name);
  // Several at once, all or none: their namespaces go together, and the
  // kernel unregisters their veths in one batch.
  void del_endpoints(const std::vector<std::string>& names);
  std::vector<EndpointView> endpoints();
  // The same, one at a time (each must not call into the node).
  void each_endpoint(const std::function<void(const EndpointView&)>& each);
  NodeStatus status();
  // head gets everything but the endpoints (attachments: only those not of
  // an endpoint), then each gets the endpoints with their attachments.
  void status(const std::function<void(const NodeStatus&)>& head, const EndpointSink& each);

  // Published ports and conntrack.
  void expose(const PublishRecord& p);
  // port: which published port, needed when target_port is published on several.
  void unexpose(const std::string& endpoint, const std::string& proto, uint16_t target_port,
                std::optional<uint16_t> port = std::nullopt);
  std::vector<PublishRecord> published();
  std::vector<CtFlow> conntrack();
  size_t conntrack_flush();
  // Routes through the uplink to destinations reached without masquerade.
  void route_add(const RouteRecord& r);
  void route_del(const Ipv4Cidr& dst);
  std::vector<RouteRecord> routes();
  // Native routing: cidr (holding the node's pool) is reached through the
  // node's routing table, never masqueraded; nullopt: none.
  void set_native(const std::optional<Ipv4Cidr>& cidr);
  // The VXLAN overlay: another node's pool through the node's vxlan device
  // to that node's underlay address (the device is made with the first
  // peer and goes with the last).
  void tunnel_add(const TunnelPeerRecord& peer);
  void tunnel_del(const Ipv4Cidr& pool);
  std::optional<OverlayRecord> overlay();
  // The uplink prefilter: sources (prefixes, addresses as /32) dropped by
  // XDP on the uplink before anything else sees them. Each call is all or
  // none; the XDP program is attached only while the list is not empty.
  void prefilter_add(const std::vector<Ipv4Cidr>& entries);
  void prefilter_del(const std::vector<Ipv4Cidr>& entries);
  // Makes the list exactly entries (apply); checked as prefilter_add checks.
  void prefilter_set(const std::vector<Ipv4Cidr>& entries);
  std::vector<PrefilterCount> prefilter();

  // Services (include/ebpfnet/services.hpp): virtual IPs and node ports
  // balanced over endpoints of the node. Each call is all or none.
  void service_add(const ServiceSpec& spec);
  void service_del(const std::vector<std::string>& names);
  void service_backend(const std::string& service, const BackendSpec& backend);
  void service_drain(const std::string& service, const BackendRef& backend);
  void service_backend_del(const std::string& service, const BackendRef& backend);
  std::vector<ServiceView> services();

  // Network policy. set_policy replaces the endpoint's policy atomically:
  // new rule sets beside the old, one switch.
  PolicySize set_policy(const std::string& endpoint, const PolicySource& source);
  bool delete_policy(const std::string& endpoint);  // false: it had none
  std::vector<EndpointPolicyView> policies();
  // Streams events until on_event returns false or keep_going (asked every
  // 100 ms) does. Needs no lock: it only reads.
  void monitor(const MonitorOptions& opts, const std::function<bool(const MonitorEvent&)>& on_event,
               const std::function<bool()>& keep_going);
  // Runs a described packet through the node's programs on its maps and
  // tells every decision; changes nothing on the node (ebpfnet/trace.hpp).
  TraceResult trace(const TraceRequest& req) const;

  // For CNI runtimes, each under the node's lock. A node that does not
  // exist has no state and no endpoints.
  std::optional<NodeState> load_state();
  // The endpoints' records alone (no counters, no programs looked up).
  std::vector<EndpointRecord> endpoint_records();
  std::optional<EndpointRecord> find_container_endpoint(const ContainerRef& c);
  // Returns what was removed; nullopt: nothing was there.
  std::optional<EndpointRecord> del_container_endpoint(const ContainerRef& c);
  // Removes what `network` added for containers not in keep; returns them.
  std::vector<EndpointRecord> gc_container_endpoints(const std::string& network,
                                                     const std::vector<ContainerRef>& keep);

  // Adds many services in one transaction (one state write), all or none,
  // each checked as service_add checks it: for bulk loaders and the bench.
  void service_add_many(const std::vector<ServiceSpec>& specs);

  const std::string& name() const { return name_; }
  const Env& env() const { return env_; }
  bool is_root() const { return name_ == kRootNode; }
  Netns netns() const;
  std::filesystem::path pin_dir() const { return env_.pin_root / name_; }

 private:
  friend class NodeTxn;  // the node's lock and state are taken only by a transaction

  Env env_;
  std::string name_;
  StateStore store_;
};

}  // namespace ebpfnet
