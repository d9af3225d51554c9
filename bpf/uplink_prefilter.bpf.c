// SPDX-License-Identifier: GPL-2.0
/* XDP on the node's uplink: frames from denied sources (prefilter add) are
 * dropped before the kernel builds an skb for them. Everything else passes
 * untouched to tc ingress (from_uplink) and the node's stack: frames that
 * are not IPv4, and ones too short to hold an Ethernet and an IPv4 header
 * (the stack judges those as it would without the prefilter). Attached only
 * while the deny list is not empty. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/prefilter.h"

SEC("xdp")
int uplink_prefilter(struct xdp_md *ctx)
{
	struct cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
	};
	struct ethhdr *eth;
	struct iphdr *ip;

	eth = parse_eth(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = parse_ipv4(&c);
	if (!ip)
		return XDP_PASS;
	if (prefilter_denied(ip->saddr, c.end - (void *)eth))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
