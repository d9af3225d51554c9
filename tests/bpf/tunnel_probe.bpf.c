// SPDX-License-Identifier: GPL-2.0
/* from_tunnel's delivery with the outer source a test chooses: test-run
 * cannot hand a program a tunnel key, so this stands in for the vxlan
 * device's bpf_skb_get_tunnel_key and runs the same code (lib/tunnel.h) on
 * the node's maps. Tests only. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/tunnel.h"

__be32 outer_src = 0;

SEC("tc")
int tunnel_probe(struct __sk_buff *skb)
{
	return from_tunnel_deliver(skb, outer_src);
}

char LICENSE[] SEC("license") = "GPL";
