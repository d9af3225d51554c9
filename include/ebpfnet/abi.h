/* The map ABI shared by the BPF programs (bpf/) and the controller.
 * Every key and value layout is written here once; the C++ side
 * static_asserts the sizes so a change on one side cannot go unnoticed. */
#ifndef EBPFNET_ABI_H
#define EBPFNET_ABI_H

#include <linux/types.h>

#define EBPFNET_MAX_ENDPOINTS 16384

/* Why the datapath dropped a frame. Append only: the values are counter
 * indexes in pinned maps that outlive a program upgrade. */
enum ebpfnet_drop_reason {
	EBPFNET_DROP_UNKNOWN_ENDPOINT = 0, /* frame on a veth with no endpoint entry */
	EBPFNET_DROP_MALFORMED = 1,        /* truncated or invalid header */
	EBPFNET_DROP_SPOOFED_MAC = 2,      /* source MAC is not the endpoint's */
	EBPFNET_DROP_SPOOFED_IP = 3,       /* source IPv4 (or ARP sender) is not the endpoint's */
	EBPFNET_DROP_UNSUPPORTED_L3 = 4,   /* neither IPv4 nor ARP */
	EBPFNET_DROP_REASON_MAX = 5,
};

/* One endpoint as the datapath sees it. Value of both ep_by_ip (key: the
 * endpoint's IPv4, network order) and ep_by_ifindex (key: ifindex). */
struct ebpfnet_endpoint {
	__u32 ifindex;     /* node-side veth, in the node's namespace */
	__be32 ip;         /* network order */
	__u8 mac[6];       /* the endpoint's eth0 */
	__u8 node_mac[6];  /* node-side veth: the gateway's MAC as the endpoint sees it */
};

/* Per-endpoint counters (value of the per-CPU map ep_stats, key: ifindex).
 * tx: frames the endpoint sent that the datapath accepted;
 * rx: frames the datapath delivered to the endpoint. */
struct ebpfnet_ep_stats {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 drops[EBPFNET_DROP_REASON_MAX];
};

#endif
