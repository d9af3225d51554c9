/* Forwarding between endpoints of one node. */
#ifndef EBPFNET_BPF_FWD_H
#define EBPFNET_BPF_FWD_H

#include "common.h"
#include "csum.h"
#include "eth.h"

/* Routes the frame as a router would (new L2 header, TTL one less) and hands
 * it straight to the destination's eth0, skipping the node's stack and the
 * node-side veth's egress. */
static __always_inline int fwd_to_endpoint(struct ethhdr *eth, struct iphdr *ip,
					   const struct ebpfnet_endpoint *dst)
{
	__be16 old_word = *(__be16 *)&ip->ttl;

	ip->ttl--;
	csum_replace2(&ip->check, old_word, *(__be16 *)&ip->ttl);
	mac_copy(eth->h_dest, dst->mac);
	mac_copy(eth->h_source, dst->node_mac);
	return bpf_redirect_peer(dst->ifindex, 0);
}

#endif
