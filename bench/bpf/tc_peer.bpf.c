// SPDX-License-Identifier: GPL-2.0
/* The floor of ebpfnet's technique for `ebpfnet bench`: the least a TC
 * program on a node-side veth can do to hand a frame to another namespace.
 * No lookup, no conntrack, NAT, policy or counters: the two veths are
 * constants, the frames already carry the right MACs (static neighbours). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 ifindex_a = 0;
const volatile __u32 ifindex_b = 0;

SEC("tc")
int tc_peer(struct __sk_buff *skb)
{
	return bpf_redirect_peer(skb->ifindex == ifindex_a ? ifindex_b : ifindex_a, 0);
}

char LICENSE[] SEC("license") = "GPL";
