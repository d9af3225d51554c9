/* The VXLAN overlay: traffic for another node's pool leaves through the
 * node's collect_md vxlan device with the owning node as the tunnel's
 * remote; what the device decapsulates is accepted only from the node that
 * owns the inner source's pool. One LPM lookup each way, in the map
 * "tunnel" (abi.h); a node without an overlay never looks. */
#ifndef EBPFNET_BPF_TUNNEL_H
#define EBPFNET_BPF_TUNNEL_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "fwd.h"
#include "ct.h"
#include "policy.h"
#include "deliver.h"

#ifndef BPF_F_ZERO_CSUM_TX
#define BPF_F_ZERO_CSUM_TX (1ULL << 1)
#endif

/* The peer owning the pool addr is in; NULL without an overlay or when no
 * peer does. */
static __always_inline const struct ebpfnet_tunnel_peer *tunnel_peer_of(__be32 addr)
{
	struct ebpfnet_prefix k = {.prefixlen = 32, .addr = addr};

	if (!cfg(EBPFNET_CFG_TUNNEL_IFINDEX))
		return NULL;
	return bpf_map_lookup_elem(&tunnel, &k);
}

/* A packet of endpoint ep for a remote pool: the sender's egress policy
 * (its flows when it has a policy, so the replies that come back through
 * the overlay meet them), then the tunnel key and the vxlan device. Too big
 * for the tunnel with DF set, it goes to the node's stack, whose route for
 * the pool through the device answers "fragmentation needed" with the
 * tunnel's MTU (PMTU discovery); without DF the outer packet fragments. */
static __always_inline int to_tunnel(struct __sk_buff *skb, struct cursor *c, struct iphdr *ip,
				     const struct ebpfnet_endpoint *ep, const struct ebpfnet_tunnel_peer *peer,
				     struct ebpfnet_ep_stats *st)
{
	__u32 dev = cfg(EBPFNET_CFG_TUNNEL_IFINDEX);
	struct bpf_tunnel_key key = {};
	struct event_subject who;
	struct ebpfnet_ct_entry *e;
	__be32 underlay = peer->underlay;
	struct flow f;
	__u32 mtu = 0;
	__u64 now;

	if (bpf_check_mtu(skb, dev, &mtu, 0, 0) != BPF_MTU_CHK_RET_SUCCESS && (ip->frag_off & bpf_htons(0x4000)))
		return pass(EBPFNET_PASS_TOO_BIG);
	if (policy_of(ep->ip)) {
		now = ct_now();
		if (flow_of(skb, c, ip, &f) < 0) {
			if (policy_admit(skb, ep->ip, ip->daddr, 0, 0, 0, ip->protocol, &who) < 0)
				return TC_ACT_SHOT;
		} else {
			e = ct_lookup_flow(&f, now);
			if (ct_reopen(skb, &e, &f))
				return TC_ACT_SHOT;
			if (e) {
				ct_update(e, &f, skb->len, now);
			} else {
				if (policy_admit(skb, ep->ip, f.key.daddr, f.key.dport, 0, 0, f.key.proto, &who) < 0)
					return TC_ACT_SHOT;
				if (ct_track(&f, skb->len, now))
					return drop(skb, st, EBPFNET_DROP_CT_FULL);
				emit_event(skb, EBPFNET_EVENT_FLOW, 0, &who);
			}
		}
	}
	ip_dec_ttl(ip);
	key.remote_ipv4 = bpf_ntohl(underlay);
	key.tunnel_id = (__u32)cfg(EBPFNET_CFG_TUNNEL_VNI);
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX))
		return drop(skb, st, EBPFNET_DROP_NO_ROUTE);
	TRACE(EBPFNET_TRACE_ROUTED, 2, dev, underlay, 0);
	return bpf_redirect(dev, 0);
}

/* A packet the vxlan device decapsulated, sent by the node whose underlay
 * address is outer_src: delivered to the endpoint it is for, through that
 * endpoint's ingress policy, when the sender owns the pool of its source. */
static __always_inline int from_tunnel_deliver(struct __sk_buff *skb, __be32 outer_src)
{
	const struct ebpfnet_tunnel_peer *peer;
	struct ebpfnet_prefix k = {.prefixlen = 32};
	struct ethhdr *eth;
	struct iphdr *ip;
	struct cursor c;

	cursor_init(&c, skb);
	eth = parse_eth(&c);
	if (!eth)
		return drop(skb, NULL, EBPFNET_DROP_MALFORMED);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop(skb, NULL, EBPFNET_DROP_UNSUPPORTED_L3);
	ip = parse_ipv4(&c);
	if (!ip)
		return drop(skb, NULL, EBPFNET_DROP_MALFORMED);
	k.addr = ip->saddr;
	peer = bpf_map_lookup_elem(&tunnel, &k);
	if (!peer || peer->underlay != outer_src)
		return drop(skb, NULL, EBPFNET_DROP_TUNNEL_PEER);
	if (!bpf_map_lookup_elem(&ep_by_ip, &ip->daddr))
		return drop(skb, NULL, EBPFNET_DROP_UNKNOWN_ENDPOINT);
	/* The inner frame was addressed to no MAC of this node. */
	bpf_skb_change_type(skb, 0 /* PACKET_HOST */);
	return routed_to_endpoint(skb, &c, ip);
}

#endif
