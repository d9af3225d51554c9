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

/* Set by the controller before load. */
const volatile __be32 gateway_ip = 0;

static __always_inline int handle_arp(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
				      const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	struct arp_packet *arp = parse_arp(c);

	if (!arp)
		return drop(st, EBPFNET_DROP_MALFORMED);
	if (!mac_equal(arp->body.sha, ep->mac))
		return drop(st, EBPFNET_DROP_SPOOFED_MAC);
	/* 0.0.0.0 is an address probe (RFC 5227), not a claim. */
	if (arp->body.spa != ep->ip && arp->body.spa != 0)
		return drop(st, EBPFNET_DROP_SPOOFED_IP);

	count_tx(st, skb);
	if (arp->hdr.ar_op == bpf_htons(ARPOP_REQUEST) && arp->body.tpa == gateway_ip) {
		arp_make_reply(eth, arp, ep->node_mac, gateway_ip);
		count_rx(ep->ifindex, skb);
		return bpf_redirect(ep->ifindex, 0);
	}
	return TC_ACT_OK;
}

/* Delivers a packet whose addresses were just translated to an endpoint:
 * hairpin connections and replies to one. */
static __always_inline int fwd_translated_local(struct __sk_buff *skb, struct ebpfnet_ep_stats *st,
						struct ebpfnet_endpoint *dst)
{
	struct ethhdr *eth;
	struct iphdr *ip;

	if (reparse_ipv4(skb, &eth, &ip))
		return drop(st, EBPFNET_DROP_MALFORMED);
	count_rx(dst->ifindex, skb);
	return fwd_to_endpoint(eth, ip, dst);
}

/* Sends a translated packet out of the route found for it beforehand: the
 * destination is unchanged by the translation, so one lookup serves. */
static __always_inline int fwd_translated_routed(struct __sk_buff *skb, struct ebpfnet_ep_stats *st,
						 const struct bpf_fib_lookup *route, int rc)
{
	struct ethhdr *eth;
	struct iphdr *ip;

	if (reparse_ipv4(skb, &eth, &ip))
		return drop(st, EBPFNET_DROP_MALFORMED);
	return fwd_routed(eth, ip, route, rc);
}

/* Too big for the way out: with DF the node's stack sends the endpoint
 * "fragmentation needed" (the packet is still untranslated); without DF it
 * would fragment and forward untranslated, so it is dropped. */
static __always_inline int too_big(struct iphdr *ip, struct ebpfnet_ep_stats *st)
{
	if (ip->frag_off & bpf_htons(0x4000))
		return TC_ACT_OK;
	return drop(st, EBPFNET_DROP_NAT_UNSUPPORTED);
}

/* Traffic that conntrack or NAT may concern: replies of published ports,
 * hairpin connections to a published port, and anything leaving through the
 * uplink, which is masqueraded. */
static __always_inline int nat_from_endpoint(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
					     struct iphdr *ip, struct ebpfnet_endpoint *dst,
					     const struct ebpfnet_config *cfg, struct ebpfnet_ep_stats *st)
{
	struct bpf_fib_lookup route;
	struct ebpfnet_pub_target *pub;
	struct ebpfnet_ct_entry *e;
	struct ebpfnet_ct_key x;
	struct flow f;
	__u64 now = bpf_ktime_get_ns();
	int rc, nat_rc;

	if (flow_of(skb, c, ip, &f) < 0) {
		struct icmp_err err;
		__be32 daddr;

		/* An endpoint's error about a connection to its published port. */
		if (!icmp_err_parse(skb, c, ip, &err)) {
			if (!icmp_err_xlate(skb, &err, ip->saddr, ip->daddr, now, &daddr)) {
				dst = bpf_map_lookup_elem(&ep_by_ip, &daddr);
				if (dst)
					return fwd_translated_local(skb, st, dst);
				if (reparse_ipv4(skb, &eth, &ip))
					return drop(st, EBPFNET_DROP_MALFORMED);
				rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
				if (!route_found(rc))
					return drop(st, EBPFNET_DROP_NO_ROUTE);
				return fwd_routed(eth, ip, &route, rc);
			}
			if (reparse_ipv4(skb, &eth, &ip))
				return drop(st, EBPFNET_DROP_MALFORMED);
		}
		if (dst) {
			count_rx(dst->ifindex, skb);
			return fwd_to_endpoint(eth, ip, dst);
		}
		/* Untranslatable traffic must not leave with the endpoint's address. */
		rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
		if (route_found(rc) && route.ifindex == cfg->uplink_ifindex)
			return drop(st, EBPFNET_DROP_NAT_UNSUPPORTED);
		return TC_ACT_OK;
	}

	e = ct_lookup_flow(&f, now);
	if (e) {
		ct_update(e, cfg, &f, skb->len, now);
		x = e->xlate;
		dst = bpf_map_lookup_elem(&ep_by_ip, &x.daddr);
		if (!dst) {
			rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
			if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
				return too_big(ip, st);
			if (!route_found(rc))
				return drop(st, EBPFNET_DROP_NO_ROUTE);
		}
	} else if (f.key.daddr == cfg->uplink_ip && (pub = published_target(&f)) && starts_flow(&f)) {
		dst = bpf_map_lookup_elem(&ep_by_ip, &pub->ip);
		if (!dst)
			return TC_ACT_OK;
		nat_rc = dnat_create(&f, pub, cfg, skb->len, now, &x);
		if (nat_rc)
			return drop(st, nat_failure(nat_rc));
	} else if (dst) {
		count_rx(dst->ifindex, skb);
		return fwd_to_endpoint(eth, ip, dst);
	} else {
		rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && route.ifindex == cfg->uplink_ifindex)
			return too_big(ip, st);
		if (!route_found(rc) || route.ifindex != cfg->uplink_ifindex)
			return TC_ACT_OK;
		if (is_routed(ip->daddr))
			return fwd_routed(eth, ip, &route, rc);
		nat_rc = snat_create(&f, cfg, skb->len, now, &x);
		if (nat_rc)
			return drop(st, nat_failure(nat_rc));
	}

	if (nat_apply(skb, &f, &x))
		return drop(st, EBPFNET_DROP_MALFORMED);
	if (dst)
		return fwd_translated_local(skb, st, dst);
	return fwd_translated_routed(skb, st, &route, rc);
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
				       const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	const struct ebpfnet_config *cfg = node_config();
	struct ebpfnet_endpoint *dst;
	struct iphdr *ip = parse_ipv4(c);

	if (!ip)
		return drop(st, EBPFNET_DROP_MALFORMED);
	if (ip->saddr != ep->ip)
		return drop(st, EBPFNET_DROP_SPOOFED_IP);

	count_tx(st, skb);
	/* An expiring TTL goes to the stack, which answers with time-exceeded. */
	if (ip->ttl <= 1)
		return TC_ACT_OK;
	dst = bpf_map_lookup_elem(&ep_by_ip, &ip->daddr);
	if (cfg && cfg->uplink_ifindex && (!dst || cfg->published))
		return nat_from_endpoint(skb, c, eth, ip, dst, cfg, st);
	if (!dst)
		return TC_ACT_OK;
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
		return drop(st, EBPFNET_DROP_UNKNOWN_ENDPOINT);

	cursor_init(&c, skb);
	eth = parse_eth(&c);
	if (!eth)
		return drop(st, EBPFNET_DROP_MALFORMED);
	if (!mac_equal(eth->h_source, ep->mac))
		return drop(st, EBPFNET_DROP_SPOOFED_MAC);

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_ARP):
		return handle_arp(skb, &c, eth, ep, st);
	case bpf_htons(ETH_P_IP):
		return handle_ipv4(skb, &c, eth, ep, st);
	default:
		return drop(st, EBPFNET_DROP_UNSUPPORTED_L3);
	}
}

char LICENSE[] SEC("license") = "GPL";
