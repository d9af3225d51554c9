/* Forwarding: to an endpoint of this node, or out of the device the node's
 * routing table picks (the uplink, for translated traffic). */
#ifndef EBPFNET_BPF_FWD_H
#define EBPFNET_BPF_FWD_H

#include "common.h"
#include "csum.h"
#include "eth.h"
#include "parse.h"
#include "maps.h"
#include "trace.h"

#define AF_INET 2

static __always_inline void ip_dec_ttl(struct iphdr *ip)
{
	__be16 old_word = *(__be16 *)&ip->ttl;

	ip->ttl--;
	csum_replace2(&ip->check, old_word, *(__be16 *)&ip->ttl);
}

/* Routes the frame as a router would (new L2 header, TTL one less) and hands
 * it straight to the destination's eth0, skipping the node's stack and the
 * node-side veth's egress. */
static __always_inline int fwd_to_endpoint(struct ethhdr *eth, struct iphdr *ip,
					   const struct ebpfnet_endpoint *dst)
{
	TRACE(EBPFNET_TRACE_TO_ENDPOINT, 0, dst->ifindex, dst->ip, 0);
	ip_dec_ttl(ip);
	mac_copy(eth->h_dest, dst->mac);
	mac_copy(eth->h_source, dst->node_mac);
	return bpf_redirect_peer(dst->ifindex, 0);
}

/* Parses Ethernet and IPv4 again after helpers changed the packet. */
static __always_inline int reparse_ipv4(struct __sk_buff *skb, struct ethhdr **eth, struct iphdr **ip)
{
	struct cursor c;

	cursor_init(&c, skb);
	*eth = parse_eth(&c);
	if (!*eth)
		return -1;
	*ip = parse_ipv4(&c);
	return *ip ? 0 : -1;
}

/* What the node's routing table said: rc, the way out in p. */
static __always_inline int route_found_by(int rc, const struct bpf_fib_lookup *p)
{
	TRACE(EBPFNET_TRACE_ROUTE, rc, p->ifindex, 0, 0);
	return rc;
}

/* Asks the node's routing table, from the view of a packet arriving on
 * ifindex (which needs forwarding on), where ip goes. */
static __always_inline int route_lookup(struct __sk_buff *skb, const struct iphdr *ip, __u32 ifindex,
					struct bpf_fib_lookup *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->family = AF_INET;
	p->tos = ip->tos;
	p->l4_protocol = ip->protocol;
	/* tot_len stays 0: the kernel then checks the skb itself against the
	 * egress MTU, which understands GSO packets far larger than one MTU. */
	p->ipv4_src = ip->saddr;
	p->ipv4_dst = ip->daddr;
	p->ifindex = ifindex;
	return route_found_by(bpf_fib_lookup(skb, p, sizeof(*p), 0), p);
}

/* Sends a routed packet out of the device route_lookup chose; a neighbour
 * not resolved yet is resolved by the kernel while the packet waits. */
static __always_inline int fwd_routed(struct ethhdr *eth, struct iphdr *ip, const struct bpf_fib_lookup *p,
				      int rc)
{
	TRACE(EBPFNET_TRACE_ROUTED, rc == BPF_FIB_LKUP_RET_NO_NEIGH, p->ifindex, 0, 0);
	ip_dec_ttl(ip);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(p->ifindex, NULL, 0, 0);
	mac_copy(eth->h_dest, p->dmac);
	mac_copy(eth->h_source, p->smac);
	return bpf_redirect(p->ifindex, 0);
}

/* Destinations reached by plain routing, never masqueraded. */
static __always_inline int is_routed(__be32 daddr)
{
	struct ebpfnet_prefix k = {.prefixlen = 32, .addr = daddr};

	return bpf_map_lookup_elem(&routed, &k) != NULL;
}

static __always_inline int route_found(int rc)
{
	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH;
}

#endif
