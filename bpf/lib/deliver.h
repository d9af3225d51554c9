/* Delivery to an endpoint of this node of a packet that arrived from
 * elsewhere (the uplink, a route, the overlay): the endpoint's ingress
 * policy for new connections, its flows for the rest, then bpf_redirect_peer. */
#ifndef EBPFNET_BPF_DELIVER_H
#define EBPFNET_BPF_DELIVER_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "fwd.h"
#include "ct.h"
#include "policy.h"

static __always_inline int to_endpoint(struct __sk_buff *skb, __be32 daddr)
{
	struct ebpfnet_endpoint *dst = bpf_map_lookup_elem(&ep_by_ip, &daddr);
	struct ethhdr *eth;
	struct iphdr *ip;

	if (!dst)
		return drop(skb, NULL, EBPFNET_DROP_UNKNOWN_ENDPOINT);
	if (reparse_ipv4(skb, &eth, &ip))
		return drop(skb, NULL, EBPFNET_DROP_MALFORMED);
	if (ip->ttl <= 1)
		return pass(EBPFNET_PASS_TTL);
	count_rx(dst->ifindex, skb);
	return fwd_to_endpoint(eth, ip, dst);
}

/* Routed to an endpoint without NAT, from a pool this node routes to (route
 * add): nodes that route each other's pools. An endpoint with a policy sees
 * new connections through its ingress rules, and replies to its own
 * connections through their flows. */
static __always_inline int routed_to_endpoint(struct __sk_buff *skb, struct cursor *c, struct iphdr *ip)
{
	struct event_subject who;
	struct ebpfnet_ct_entry *e;
	struct flow f;
	__u64 now;
	int policed;

	if (!policy_of(ip->daddr))
		return to_endpoint(skb, ip->daddr);
	now = ct_now();
	if (flow_of(skb, c, ip, &f) < 0) {
		if (policy_admit(skb, ip->saddr, ip->daddr, 0, ip->daddr, 0, ip->protocol, &who) < 0)
			return TC_ACT_SHOT;
		return to_endpoint(skb, ip->daddr);
	}
	e = ct_lookup_flow(&f, now);
	if (ct_reopen(skb, &e, &f))
		return TC_ACT_SHOT;
	if (e) {
		ct_update(e, &f, skb->len, now);
		return to_endpoint(skb, f.key.daddr);
	}
	policed = policy_admit(skb, f.key.saddr, f.key.daddr, f.key.dport, f.key.daddr, f.key.dport, f.key.proto,
			       &who);
	if (policed < 0)
		return TC_ACT_SHOT;
	if (ct_track(&f, skb->len, now))
		return drop(skb, NULL, EBPFNET_DROP_CT_FULL);
	emit_event(skb, EBPFNET_EVENT_FLOW, 0, &who);
	return to_endpoint(skb, f.key.daddr);
}

#endif
