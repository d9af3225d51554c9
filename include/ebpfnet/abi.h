/* The map ABI shared by the BPF programs (bpf/) and the controller.
 * Every key and value layout is written here once; the C++ side
 * static_asserts the sizes so a change on one side cannot go unnoticed. */
#ifndef EBPFNET_ABI_H
#define EBPFNET_ABI_H

#include <linux/types.h>

#define EBPFNET_MAX_ENDPOINTS 16384
#define EBPFNET_MAX_PUBLISHED 4096
/* Entries of each prefilter deny map (addresses, prefixes). */
#define EBPFNET_MAX_PREFILTER 16384
/* Service keys (a virtual IP or a node port each) and backends. */
#define EBPFNET_MAX_SERVICES 65536
#define EBPFNET_MAX_BACKENDS 65536
/* Slots of a service's Maglev table: a prime (Maglev needs one), Cilium's
 * default, so a change of one backend moves few other flows. */
#define EBPFNET_MAGLEV_SIZE 16381
/* Slots for drop counters: more than there are reasons, so adding a reason
 * keeps the layout of pinned counter maps. */
#define EBPFNET_DROP_SLOTS 16

/* Why the datapath dropped a frame. Append only: the values are counter
 * indexes in pinned maps that outlive a program upgrade. */
enum ebpfnet_drop_reason {
	EBPFNET_DROP_UNKNOWN_ENDPOINT = 0, /* frame on a veth with no endpoint entry */
	EBPFNET_DROP_MALFORMED = 1,        /* truncated or invalid header */
	EBPFNET_DROP_SPOOFED_MAC = 2,      /* source MAC is not the endpoint's */
	EBPFNET_DROP_SPOOFED_IP = 3,       /* source IP (or ARP sender, or NDP target) is not the endpoint's */
	EBPFNET_DROP_UNSUPPORTED_L3 = 4,   /* neither IPv4 nor ARP (nor IPv6 on a dual-stack node) */
	EBPFNET_DROP_NAT_NO_PORT = 5,      /* every masquerade port to that destination is taken */
	EBPFNET_DROP_NAT_UNSUPPORTED = 6,  /* would leave untranslated: not TCP, UDP or ICMP echo */
	EBPFNET_DROP_CT_FULL = 7,          /* a conntrack entry could not be created */
	EBPFNET_DROP_NO_ROUTE = 8,         /* a translated packet has no way out */
	EBPFNET_DROP_TTL_EXCEEDED = 9,     /* a flow's packet from outside with no hop left */
	EBPFNET_DROP_POLICY_DENY = 10,     /* a policy rule denied the connection */
	EBPFNET_DROP_POLICY_DEFAULT = 11,  /* no policy rule matched and the direction's default is deny */
	EBPFNET_DROP_NO_BACKEND = 12,      /* a new connection to a service with no active backend */
	EBPFNET_DROP_TUNNEL_PEER = 13,     /* from the overlay: the outer source is not the node owning
					    * the inner source's pool (or no tunnel key) */
	EBPFNET_DROP_ND_ROUTER = 14,       /* a router advertisement or redirect sent by an endpoint */
	EBPFNET_DROP_IPV6_NO_WAY_OUT = 15, /* IPv6 to beyond the node: no IPv6 masquerade or routing yet */
	EBPFNET_DROP_REASON_MAX = 16,
};

/* One endpoint as the datapath sees it. Value of both ep_by_ip (key: the
 * endpoint's IPv4, network order) and ep_by_ifindex (key: ifindex). */
struct ebpfnet_endpoint {
	__u32 ifindex;     /* node-side veth, in the node's namespace */
	__be32 ip;         /* network order */
	__u8 mac[6];       /* the endpoint's eth0 */
	__u8 node_mac[6];  /* node-side veth: the gateway's MAC as the endpoint sees it */
};

/* An IPv6 address, network order. Dual-stack endpoints (ABI 6): the hash
 * ep_by_ip6 (key: the endpoint's IPv6) holds the same struct
 * ebpfnet_endpoint as ep_by_ip, and the hash ep_ip6 (key: ifindex) the
 * IPv6 that the endpoint behind that veth may send from. */
struct ebpfnet_in6 {
	__u8 addr[16];
};

/* Per-endpoint counters (value of the per-CPU map ep_stats, key: ifindex).
 * tx: frames the endpoint sent that the datapath accepted;
 * rx: frames the datapath delivered to the endpoint. */
struct ebpfnet_ep_stats {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 drops[EBPFNET_DROP_SLOTS];
};

/* The version of the pinned datapath's map ABI: raised whenever a map's
 * layout or meaning changes, so `attach` knows to migrate, and a binary older
 * than the pinned datapath refuses to touch it. 1: the layout before slots.
 * 3: the prefilter maps. 4: the service maps. 5: the overlay's map "tunnel".
 * 6: the IPv6 endpoint maps ep_by_ip6 and ep_ip6. */
#define EBPFNET_ABI_VERSION 6

/* The node's runtime configuration: the array map "config" of u64 slots,
 * written by attach. Append only: a new setting is a new slot, so the pinned
 * map's layout never changes. A slot never written reads 0. */
enum ebpfnet_cfg_slot {
	EBPFNET_CFG_ABI_VERSION = 0,     /* EBPFNET_ABI_VERSION of the pinned datapath */
	EBPFNET_CFG_BUILD = 1,           /* hash of the programs' objects: which build runs */
	EBPFNET_CFG_UPLINK_IFINDEX = 2,  /* 0: no uplink, so no NAT */
	EBPFNET_CFG_UPLINK_IP = 3,       /* __be32: the masquerade and published-ports address */
	EBPFNET_CFG_NAT_PORT_MIN = 4,    /* masquerade source ports, host order */
	EBPFNET_CFG_NAT_PORT_MAX = 5,
	EBPFNET_CFG_PUBLISHED = 6,       /* published ports; 0 lets same-node traffic skip conntrack */
	EBPFNET_CFG_CT_TIMEOUT_SYN = 7,  /* seconds: TCP before the handshake completes */
	EBPFNET_CFG_CT_TIMEOUT_TCP = 8,  /* established TCP */
	EBPFNET_CFG_CT_TIMEOUT_CLOSING = 9,  /* TCP after FIN or RST */
	EBPFNET_CFG_CT_TIMEOUT_UDP = 10,
	EBPFNET_CFG_CT_TIMEOUT_ICMP = 11,
	EBPFNET_CFG_POLICIES = 12,       /* endpoints with a policy; 0 skips the ep_policy lookups */
	EBPFNET_CFG_SERVICES = 13,       /* service keys; 0 skips the svc lookups and lets same-node
					  * traffic skip conntrack (no reply needs a reverse NAT) */
	EBPFNET_CFG_TUNNEL_IFINDEX = 14, /* the node's collect_md vxlan device; 0: no overlay, so
					  * no packet pays the tunnel lookup */
	EBPFNET_CFG_TUNNEL_VNI = 15,     /* the VXLAN network identifier of the overlay */
	/* The IPv6 gateway of a dual-stack node, as the 16 bytes of the address
	 * in network order: bytes 0-7 in GATEWAY6_HI, 8-15 in GATEWAY6_LO, each
	 * copied as they lie in memory. Both 0: the node has no IPv6. */
	EBPFNET_CFG_GATEWAY6_HI = 16,
	EBPFNET_CFG_GATEWAY6_LO = 17,
	EBPFNET_CFG_SLOT_COUNT = 18,
};
/* Room to grow without a new layout. */
#define EBPFNET_CFG_SLOTS 64

/* A flow in one direction as it appears on the wire. ICMP echo: both ports
 * hold the identifier, so a request and its reply are each other's reverse. */
struct ebpfnet_ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

enum ebpfnet_ct_state {
	EBPFNET_CT_NEW = 0,          /* UDP/ICMP: no reply yet; TCP: SYN seen */
	EBPFNET_CT_ESTABLISHED = 1,  /* a reply was seen (TCP: SYN-ACK) */
	EBPFNET_CT_CLOSING = 2,      /* TCP: FIN or RST seen */
};

#define EBPFNET_CT_F_REPLY 0x1  /* this entry is the reply direction */
#define EBPFNET_CT_F_SNAT 0x2   /* the flow is masqueraded */
#define EBPFNET_CT_F_DNAT 0x4   /* the flow reached a published port */
/* On a reply entry: the peer sent the first FIN, so it holds the tuple in
 * TIME_WAIT after the flow closes; a masquerade port is not handed to another
 * connection to it meanwhile. */
#define EBPFNET_CT_F_PEER_WAITS 0x8
/* The flow reached a service: xlate holds the backend it was balanced to. */
#define EBPFNET_CT_F_SERVICE 0x10

/* Value of the LRU map "ct": one entry per direction of a flow. */
struct ebpfnet_ct_entry {
	struct ebpfnet_ct_key xlate;  /* what a packet of this direction leaves as */
	struct ebpfnet_ct_key peer;   /* key of the other direction's entry */
	__u64 expires_ns;             /* bpf_ktime_get_ns() deadline; expired entries are ignored */
	__u64 packets;
	__u64 bytes;
	__u8 state;
	__u8 flags;
	__u8 pad[6];
};

/* Key and value of the hash "published": uplink port -> endpoint port. */
struct ebpfnet_pub_key {
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct ebpfnet_pub_target {
	__be32 ip;
	__be16 port;
	__u16 pad;
};

/* Key of the LPM trie "routed": destinations reached by routing, without
 * masquerade (other nodes' pools). */
struct ebpfnet_prefix {
	__u32 prefixlen;
	__be32 addr;
};

/* The VXLAN overlay. The LPM trie "tunnel" (key: struct ebpfnet_prefix)
 * maps each remote pool to the node that owns it: from_endpoint sends
 * traffic for it through the node's collect_md vxlan device with the peer
 * as the tunnel's remote, and from_tunnel accepts a decapsulated packet only
 * when its outer source is the peer that owns its inner source's pool. */
struct ebpfnet_tunnel_peer {
	__be32 underlay;  /* the peer node's underlay IPv4, network order */
	__u32 pad;
};

/* The uplink prefilter (XDP): sources denied before anything else sees
 * them. Exact addresses are keys of the hash prefilter_addr (key: __be32,
 * value: __u8 1), prefixes keys of the LPM trie prefilter_cidr (key: struct
 * ebpfnet_prefix, value: __u32, the prefix's length, so the program can name
 * the entry that matched). Each entry counts what it dropped in the per-CPU
 * hash prefilter_stats, keyed by the entry as a struct ebpfnet_prefix (an
 * address is its /32); the controller creates the counters with the entry. */
struct ebpfnet_prefilter_stats {
	__u64 packets;
	__u64 bytes;
};

/* Services. The hash "svc" maps what a client connects to (a virtual IP,
 * or a node port: addr 0 stands for the uplink's address) to the service.
 * Each service has a Maglev table (the hash of maps "maglev", key: service
 * id, value: an array of EBPFNET_MAGLEV_SIZE backend ids) holding only its
 * active backends, weighted; the hash "backends" (key: backend id) says
 * where each one is. A new connection takes the slot its flow hashes to
 * (per packet at tc) or a random one (at connect), so every node picks the
 * same backend for a flow and a backend change moves few others. A
 * draining backend is in "backends" but no longer in the table: its
 * connections continue, no new one reaches it. */
struct ebpfnet_svc_key {
	__be32 addr;  /* virtual IP; 0: a node port on the uplink's address */
	__be16 port;
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

struct ebpfnet_svc {
	__u32 id;          /* key of maglev and svc_affinity */
	__u32 affinity_s;  /* session affinity by client address: its timeout; 0: none */
};

enum ebpfnet_backend_state {
	EBPFNET_BACKEND_ACTIVE = 0,
	EBPFNET_BACKEND_DRAINING = 1,  /* existing connections only */
};

struct ebpfnet_backend {
	__be32 ip;    /* an endpoint of the node */
	__be16 port;
	__u8 state;   /* enum ebpfnet_backend_state */
	__u8 pad;
	__u32 svc_id;
};

/* Per-CPU hash backend_stats (key: backend id), created with the backend. */
struct ebpfnet_backend_stats {
	__u64 connections;  /* new connections balanced to it */
};

/* LRU svc_affinity: a client's backend while it keeps coming back. */
struct ebpfnet_affinity_key {
	__u32 svc_id;
	__be32 client;
};

struct ebpfnet_affinity {
	__u32 backend_id;
	__u32 pad;
	__u64 last_ns;  /* ct_now() of the last connection */
};

/* Connect-time balancing (cgroup socket hooks) acts only on sockets of the
 * node's endpoints: the hash sock_netns maps the network namespace cookie of
 * each endpoint to its IPv4. The LRU sock_revnat remembers, per socket,
 * which service address a backend stands for, so getpeername and the
 * source of UDP replies show the service. */
struct ebpfnet_sock_revnat_key {
	__u64 cookie;  /* bpf_get_socket_cookie() */
	__be32 addr;   /* the backend */
	__be16 port;
	__u16 pad;
};

struct ebpfnet_sock_revnat {
	__be32 addr;   /* the service */
	__be16 port;
	__u16 pad;
};

/* Network policy. Each endpoint with a policy has an ep_policy entry (key:
 * its IPv4) naming one rule set per direction; a packet's peer (source for
 * ingress, destination for egress) finds its class in the LPM trie
 * policy_cidr, and the class's verdict for protocol and destination port in
 * the LPM trie policy_port. The controller compiles the rules so that the
 * longest match of each lookup is the verdict (see controller/policy_compile).
 * A new rule set is written beside the old one under new ids, and one update
 * of ep_policy switches to it. */
enum ebpfnet_policy_dir {
	EBPFNET_INGRESS = 0,
	EBPFNET_EGRESS = 1,
};

enum ebpfnet_policy_action {
	EBPFNET_POLICY_ALLOW = 0,
	EBPFNET_POLICY_DENY = 1,
};

/* Protocol slot of policy_port keys for protocols other than TCP, UDP, ICMP. */
#define EBPFNET_POLICY_PROTO_OTHER 255

struct ebpfnet_policy_set {
	__u32 id;              /* 0: no rules, the default decides */
	__u8 default_action;   /* enum ebpfnet_policy_action */
	__u8 pad[3];
};

/* Value of the hash ep_policy, indexed by enum ebpfnet_policy_dir. */
struct ebpfnet_ep_policy {
	struct ebpfnet_policy_set dir[2];
};

/* Key of policy_cidr: prefixlen = 32 + the CIDR's length. Value: __u32 class. */
struct ebpfnet_policy_cidr_key {
	__u32 prefixlen;
	__u32 set_id;
	__be32 addr;
};

/* Key of policy_port: prefixlen = 48 + the port prefix's length, over
 * class, then proto_port = htonl(proto << 16 | port) (its first byte is 0). */
struct ebpfnet_policy_port_key {
	__u32 prefixlen;
	__u32 class_id;
	__be32 proto_port;
};

struct ebpfnet_policy_verdict {
	__u32 rule;    /* 1-based index of the deciding rule in its direction */
	__u8 action;   /* enum ebpfnet_policy_action */
	__u8 pad[3];
};

/* Events for `monitor`, through the ring buffer "events". The datapath emits
 * them only while a listener keeps the deadlines in the array "monitor"
 * (CLOCK_MONOTONIC ns) in the future, so no one listening costs nothing. */
struct ebpfnet_monitor {
	__u64 drops_until_ns;
	__u64 flows_until_ns;
};

enum ebpfnet_event_type {
	EBPFNET_EVENT_DROP = 1,
	EBPFNET_EVENT_FLOW = 2,  /* a new connection was allowed and tracked */
};

struct ebpfnet_event {
	__u64 ts_ns;                  /* bpf_ktime_get_ns() */
	struct ebpfnet_ct_key tuple;  /* as the packet arrived; ports 0 when none */
	__u32 ifindex;                /* the device it arrived on, in the node */
	__be32 endpoint;              /* the endpoint the verdict concerns, 0: none */
	__u32 rule;                   /* policy: the deciding rule (1-based), 0: none or the default */
	__u16 len;                    /* bytes of the frame */
	__u8 type;                    /* enum ebpfnet_event_type */
	__u8 reason;                  /* drops: enum ebpfnet_drop_reason */
	__u8 dir;                     /* policy: enum ebpfnet_policy_dir */
	__u8 pad[7];
};

#endif
