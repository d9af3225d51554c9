// SPDX-License-Identifier: GPL-2.0
/* For `ebpfnet bench --only prefilter`: the uplink prefilter's lookup and
 * drop (bpf/lib/prefilter.h, the very code the XDP program runs) one hook
 * later, at tc ingress, after the kernel has built an skb. It shares the
 * XDP program's maps, so both judge the same deny list and count on the
 * same entries. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/prefilter.h"

SEC("tc")
int tc_prefilter(struct __sk_buff *skb)
{
	struct ethhdr *eth;
	struct iphdr *ip;
	struct cursor c;

	cursor_init(&c, skb);
	eth = parse_eth(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = parse_ipv4(&c);
	if (!ip)
		return TC_ACT_OK;
	if (prefilter_denied(ip->saddr, skb->len))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
