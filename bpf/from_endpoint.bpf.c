// SPDX-License-Identifier: GPL-2.0
/* tc ingress of every node-side veth: everything an endpoint sends starts here. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/eth.h"
#include "lib/parse.h"
#include "lib/stats.h"
#include "lib/arp.h"
#include "lib/fwd.h"
#include "lib/nat.h"
#include "lib/icmp_err.h"
#include "lib/policy.h"
#include "lib/lb.h"
#include "lib/reject.h"
#include "lib/tunnel.h"

/* Set by the controller before load. */
const volatile __be32 gateway_ip = 0;

static __always_inline int handle_arp(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
				      const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	struct arp_packet *arp = parse_arp(c);

	if (!arp)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	if (!mac_equal(arp->body.sha, ep->mac))
		return drop(skb, st, EBPFNET_DROP_SPOOFED_MAC);
	/* 0.0.0.0 is an address probe (RFC 5227), not a claim. */
	if (arp->body.spa != ep->ip && arp->body.spa != 0)
		return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);

	TRACE(EBPFNET_TRACE_ANTISPOOF, 0, 0, 0, 0);
	count_tx(st, skb);
	if (arp->hdr.ar_op == bpf_htons(ARPOP_REQUEST) && arp->body.tpa == gateway_ip) {
		arp_make_reply(eth, arp, ep->node_mac, gateway_ip);
		count_rx(ep->ifindex, skb);
		TRACE(EBPFNET_TRACE_ARP_REPLY, 0, ep->ifindex, 0, 0);
		return bpf_redirect(ep->ifindex, 0);
	}
	return pass(EBPFNET_PASS_ARP);
}

/* Sends on a packet of a tracked flow, translated to x first when x differs
 * from the packet: to an endpoint (dst), else out of the route found. */
static __always_inline int fwd_flow(struct __sk_buff *skb, struct ebpfnet_ep_stats *st, struct ethhdr *eth,
				    struct iphdr *ip, const struct flow *f, const struct ebpfnet_ct_key *x,
				    struct ebpfnet_endpoint *dst, const struct bpf_fib_lookup *route, int rc)
{
	if (!ct_key_equal(&f->key, x)) {
		if (nat_apply(skb, f, x) || reparse_ipv4(skb, &eth, &ip))
			return drop(skb, st, EBPFNET_DROP_MALFORMED);
	}
	if (dst) {
		count_rx(dst->ifindex, skb);
		return fwd_to_endpoint(eth, ip, dst);
	}
	return fwd_routed(eth, ip, route, rc);
}

/* Too big for the way out: with DF the node's stack sends the endpoint
 * "fragmentation needed" (the packet is still untranslated); without DF it
 * would fragment and forward untranslated, so it is dropped. */
static __always_inline int too_big(struct __sk_buff *skb, struct iphdr *ip, struct ebpfnet_ep_stats *st)
{
	if (ip->frag_off & bpf_htons(0x4000))
		return pass(EBPFNET_PASS_TOO_BIG);
	return drop(skb, st, EBPFNET_DROP_NAT_UNSUPPORTED);
}

/* What conntrack cannot follow: ICMP errors (passed when they concern a
 * tracked flow, translated when it was), fragments, other protocols. Policy
 * decides each packet; nothing untranslatable leaves with the endpoint's
 * address. */
static __always_inline int untracked_from_endpoint(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
						   struct iphdr *ip, const struct ebpfnet_endpoint *ep,
						   struct ebpfnet_endpoint *dst, struct ebpfnet_ep_stats *st)
{
	__u32 uplink = cfg(EBPFNET_CFG_UPLINK_IFINDEX);
	struct bpf_fib_lookup route;
	struct event_subject who;
	struct icmp_err err;
	__be32 daddr;
	int rc;

	if (!icmp_err_parse(skb, c, ip, &err)) {
		if (!icmp_err_xlate(skb, &err, ip->saddr, ip->daddr, ct_now(), &daddr)) {
			if (reparse_ipv4(skb, &eth, &ip))
				return drop(skb, st, EBPFNET_DROP_MALFORMED);
			dst = bpf_map_lookup_elem(&ep_by_ip, &daddr);
			if (dst) {
				count_rx(dst->ifindex, skb);
				return fwd_to_endpoint(eth, ip, dst);
			}
			rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
			if (!route_found(rc))
				return drop(skb, st, EBPFNET_DROP_NO_ROUTE);
			return fwd_routed(eth, ip, &route, rc);
		}
		if (reparse_ipv4(skb, &eth, &ip))
			return drop(skb, st, EBPFNET_DROP_MALFORMED);
	}
	if (policy_admit(skb, ep->ip, ip->daddr, 0, dst ? dst->ip : 0, 0, ip->protocol, &who) < 0)
		return TC_ACT_SHOT;
	if (dst) {
		count_rx(dst->ifindex, skb);
		return fwd_to_endpoint(eth, ip, dst);
	}
	rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
	if (uplink && route_found(rc) && route.ifindex == uplink && !is_routed(ip->daddr))
		return drop(skb, st, EBPFNET_DROP_NAT_UNSUPPORTED);
	return pass(EBPFNET_PASS_NOT_OURS);
}

/* Traffic that conntrack, NAT or policy concerns: replies of published
 * ports, hairpin connections to a published port, anything leaving through
 * the uplink (masqueraded unless routed), and connections of endpoints with
 * a policy. A connection's first packet passes policy and creates its flow;
 * the rest of it follows the flow. */
static __always_inline int tracked_from_endpoint(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
						 struct iphdr *ip, const struct ebpfnet_endpoint *ep,
						 struct ebpfnet_endpoint *dst, struct ebpfnet_ep_stats *st)
{
	__u32 uplink = cfg(EBPFNET_CFG_UPLINK_IFINDEX);
	const struct ebpfnet_pub_target *pub = NULL;
	struct ebpfnet_pub_target target;
	struct bpf_fib_lookup route;
	struct event_subject who;
	struct ebpfnet_ct_entry *e;
	struct ebpfnet_ct_key x;
	struct flow f;
	__u64 now = ct_now();
	int rc = 0, policed, nat_rc, svc_rc = 0;
	__u32 backend = 0;

	if (flow_of(skb, c, ip, &f) < 0)
		return untracked_from_endpoint(skb, c, eth, ip, ep, dst, st);

	e = ct_lookup_flow(&f, now);
	if (ct_reopen(skb, &e, &f))
		return TC_ACT_SHOT;
	if (e) {
		ct_update(e, &f, skb->len, now);
		x = e->xlate;
		/* dst is already the destination unless it was translated. */
		if (x.daddr != f.key.daddr)
			dst = bpf_map_lookup_elem(&ep_by_ip, &x.daddr);
		if (!dst) {
			rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
			if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
				return too_big(skb, ip, st);
			if (!route_found(rc))
				return drop(skb, st, EBPFNET_DROP_NO_ROUTE);
		}
		return fwd_flow(skb, st, eth, ip, &f, &x, dst, &route, rc);
	}

	if (uplink && f.key.daddr == (__be32)cfg(EBPFNET_CFG_UPLINK_IP) && starts_flow(&f) &&
	    ((pub = published_target(&f)) || (svc_rc = lb_target(&f, 0, now, &target, &backend)))) {
		/* A published port or a node port, reached from this node. */
		if (svc_rc < 0)
			return refuse_no_backend(skb, st);
		if (!pub)
			pub = &target;
		dst = bpf_map_lookup_elem(&ep_by_ip, &pub->ip);
		if (!dst)
			return pass(EBPFNET_PASS_NOT_OURS);
		if (policy_admit(skb, ep->ip, f.key.daddr, f.key.dport, dst->ip, pub->port, f.key.proto, &who) < 0)
			return TC_ACT_SHOT;
		nat_rc = dnat_create(&f, pub, svc_rc ? EBPFNET_CT_F_SERVICE : 0, skb->len, now, &x);
		if (nat_rc)
			return drop(skb, st, nat_failure(nat_rc));
		if (svc_rc)
			lb_count(backend);
	} else if (!dst && (svc_rc = lb_target(&f, f.key.daddr, now, &target, &backend))) {
		/* A service's virtual IP: any packet of a flow conntrack lost
		 * hashes to the backend its first packet went to. Policy sees the
		 * backend as the destination. */
		dst = svc_rc > 0 ? bpf_map_lookup_elem(&ep_by_ip, &target.ip) : NULL;
		if (!dst)
			return refuse_no_backend(skb, st);
		if (policy_admit(skb, ep->ip, dst->ip, target.port, dst->ip, target.port, f.key.proto, &who) < 0)
			return TC_ACT_SHOT;
		nat_rc = dnat_create(&f, &target, EBPFNET_CT_F_SERVICE, skb->len, now, &x);
		if (nat_rc)
			return drop(skb, st, nat_failure(nat_rc));
		lb_count(backend);
	} else if (dst) {
		policed = policy_admit(skb, ep->ip, dst->ip, f.key.dport, dst->ip, f.key.dport, f.key.proto, &who);
		if (policed < 0)
			return TC_ACT_SHOT;
		/* Without a policy on either side nothing needs the flow. */
		if (!policed) {
			count_rx(dst->ifindex, skb);
			return fwd_to_endpoint(eth, ip, dst);
		}
		x = f.key;
		if (ct_track(&f, skb->len, now))
			return drop(skb, st, EBPFNET_DROP_CT_FULL);
	} else {
		rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && route.ifindex == uplink)
			return too_big(skb, ip, st);
		policed = policy_admit(skb, ep->ip, f.key.daddr, f.key.dport, 0, 0, f.key.proto, &who);
		if (policed < 0)
			return TC_ACT_SHOT;
		/* The node's stack takes it: its own addresses and other routes. */
		if (!uplink || !route_found(rc) || route.ifindex != uplink)
			return pass(EBPFNET_PASS_NOT_OURS);
		x = f.key;
		if (is_routed(ip->daddr)) {
			/* Replies meet the endpoint's ingress rules unless tracked. */
			if (policed && ct_track(&f, skb->len, now))
				return drop(skb, st, EBPFNET_DROP_CT_FULL);
		} else {
			nat_rc = snat_create(&f, skb->len, now, &x);
			if (nat_rc)
				return drop(skb, st, nat_failure(nat_rc));
		}
	}
	emit_event(skb, EBPFNET_EVENT_FLOW, 0, &who);
	return fwd_flow(skb, st, eth, ip, &f, &x, dst, &route, rc);
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
				       const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	__u32 uplink = cfg(EBPFNET_CFG_UPLINK_IFINDEX);
	const struct ebpfnet_tunnel_peer *peer;
	struct ebpfnet_endpoint *dst;
	struct iphdr *ip = parse_ipv4(c);

	if (!ip)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	if (ip->saddr != ep->ip)
		return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);
	TRACE(EBPFNET_TRACE_ANTISPOOF, 0, 0, 0, 0);

	count_tx(st, skb);
	/* An expiring TTL goes to the stack, which answers with time-exceeded.
	 * The gateway is the node itself, which policy does not restrict. */
	if (ip->ttl <= 1 || ip->daddr == gateway_ip)
		return pass(ip->ttl <= 1 ? EBPFNET_PASS_TTL : EBPFNET_PASS_GATEWAY);
	dst = bpf_map_lookup_elem(&ep_by_ip, &ip->daddr);
	/* Another node's pool, through the overlay (local traffic never looks). */
	if (!dst && (peer = tunnel_peer_of(ip->daddr)))
		return to_tunnel(skb, c, ip, ep, peer, st);
	if ((uplink && (!dst || cfg(EBPFNET_CFG_PUBLISHED))) || cfg(EBPFNET_CFG_SERVICES) || policy_of(ep->ip) ||
	    (dst && policy_of(dst->ip)))
		return tracked_from_endpoint(skb, c, eth, ip, ep, dst, st);
	if (!dst)
		return pass(EBPFNET_PASS_NOT_OURS);
	count_rx(dst->ifindex, skb);
	return fwd_to_endpoint(eth, ip, dst);
}

SEC("tc")
int from_endpoint(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct ebpfnet_endpoint *ep = bpf_map_lookup_elem(&ep_by_ifindex, &ifindex);
	struct ebpfnet_ep_stats *st = ep_stats_of(ifindex);
	struct cursor c;
	struct ethhdr *eth;

	if (!ep)
		return drop(skb, st, EBPFNET_DROP_UNKNOWN_ENDPOINT);
	TRACE(EBPFNET_TRACE_SOURCE, 0, ifindex, ep->ip, 0);

	cursor_init(&c, skb);
	eth = parse_eth(&c);
	if (!eth)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	if (!mac_equal(eth->h_source, ep->mac))
		return drop(skb, st, EBPFNET_DROP_SPOOFED_MAC);

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_ARP):
		return handle_arp(skb, &c, eth, ep, st);
	case bpf_htons(ETH_P_IP):
		return handle_ipv4(skb, &c, eth, ep, st);
	default:
		return drop(skb, st, EBPFNET_DROP_UNSUPPORTED_L3);
	}
}

char LICENSE[] SEC("license") = "GPL";
