// SPDX-License-Identifier: GPL-2.0
/* tc ingress of the node's collect_md vxlan device: what other nodes send
 * through the overlay, decapsulated, with the tunnel key the device read. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/tunnel.h"

SEC("tc")
int from_tunnel(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0))
		return drop(skb, NULL, EBPFNET_DROP_TUNNEL_PEER);
	return from_tunnel_deliver(skb, bpf_htonl(key.remote_ipv4));
}

char LICENSE[] SEC("license") = "GPL";
