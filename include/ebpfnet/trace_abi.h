/* What the trace build of the programs (bpf/lib/trace.h, compiled with
 * -DEBPFNET_TRACE) records about one packet, read by `ebpfnet trace`
 * (controller/trace.cpp). Not a pinned map: it lives in the trace object's
 * own .bss and dies with it, so this layout may change freely with the
 * binary; it is kept out of abi.h, whose layouts outlive an upgrade. */
#ifndef EBPFNET_TRACE_ABI_H
#define EBPFNET_TRACE_ABI_H

#include <linux/types.h>

#include "ebpfnet/abi.h"

/* Room for every decision of one packet; a longer trace sets overflow. */
#define EBPFNET_TRACE_STEPS 48

/* What a step records: result and arg[] mean what the comment says.
 * Addresses are network order, ports network order, as in the maps. */
enum ebpfnet_trace_code {
	EBPFNET_TRACE_SOURCE = 1,        /* the sending endpoint was found: arg0 its ifindex, arg1 its IPv4 */
	EBPFNET_TRACE_ANTISPOOF = 2,     /* source MAC and IPv4 (or ARP sender) are the endpoint's */
	EBPFNET_TRACE_PASS = 3,          /* handed to the node's stack: result enum ebpfnet_trace_pass */
	EBPFNET_TRACE_CT_LOOKUP = 4,     /* tuple: the packet's; result 1 hit (arg0 state, arg1 flags,
					  * arg2 packets so far), 0 none */
	EBPFNET_TRACE_CT_UPDATE = 5,     /* a hit's entry would move: arg0 state before, arg1 after */
	EBPFNET_TRACE_CT_REOPEN = 6,     /* a SYN on a closing flow's tuple: result 1 the flow would be forgotten */
	EBPFNET_TRACE_CT_CREATE = 7,     /* tuple: what the flow leaves as; arg0 ct flags (SNAT, DNAT);
					  * result 0 created, 1 tuple taken, 2 map full; arg1 ports tried */
	EBPFNET_TRACE_POLICY = 8,        /* arg0 direction, arg1 the endpoint's IPv4, arg2 the rule
					  * (1-based, 0: the default); result 0 allowed, else the drop reason */
	EBPFNET_TRACE_POLICY_NONE = 9,   /* no policy on either side concerned the connection */
	EBPFNET_TRACE_NAT = 10,          /* the packet is rewritten: tuple is what it becomes */
	EBPFNET_TRACE_ROUTE = 11,        /* the node's FIB: result bpf_fib_lookup's rc, arg0 the device */
	EBPFNET_TRACE_TO_ENDPOINT = 12,  /* redirect_peer: arg0 the endpoint's veth, arg1 its IPv4 */
	EBPFNET_TRACE_ROUTED = 13,       /* redirect out of arg0; result 1 when the kernel resolves the neighbour,
					  * 2 into the overlay (arg1: the peer's underlay IPv4) */
	EBPFNET_TRACE_ARP_REPLY = 14,    /* the gateway's ARP reply back to the sender (arg0 its veth) */
	EBPFNET_TRACE_DROP = 15,         /* result the drop reason; arg0 the endpoint counted for (IPv4), 0: node */
	EBPFNET_TRACE_SERVICE = 16,      /* a service was addressed: arg0 its id; result 1 a backend was
					  * picked (arg1 its id, arg2 its IPv4), 0 none is active */
	EBPFNET_TRACE_ND_REPLY = 17,     /* the gateway's neighbour advertisement back to the sender (arg0 its veth) */
};

enum ebpfnet_trace_pass {
	EBPFNET_PASS_GATEWAY = 1,     /* to the gateway, the node itself (policy does not restrict it) */
	EBPFNET_PASS_TTL = 2,         /* the last hop: the node's stack answers time-exceeded */
	EBPFNET_PASS_NOT_OURS = 3,    /* not for the datapath: the node's own traffic or plain routing */
	EBPFNET_PASS_TOO_BIG = 4,     /* too big for the way out, DF set: the stack sends frag-needed */
	EBPFNET_PASS_ARP = 5,         /* ARP that is not for the gateway */
	EBPFNET_PASS_LINK = 6,        /* IPv6 that stays on the link: neighbour discovery not for the
				       * gateway, link-local and multicast destinations (the node's stack) */
};

struct ebpfnet_trace_step {
	__u16 code;    /* enum ebpfnet_trace_code */
	__u16 result;
	__u32 arg[3];
	struct ebpfnet_ct_key tuple;
};

struct ebpfnet_trace {
	__u32 count;     /* steps written */
	__u32 overflow;  /* steps that did not fit */
	struct ebpfnet_trace_step steps[EBPFNET_TRACE_STEPS];
};

#endif
