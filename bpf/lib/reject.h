/* Refusing a new connection the way a closed port does: an ICMP port
 * unreachable back to the sender, built in place of its packet (as
 * Cilium answers for a service without backends). A TCP connect fails at
 * once with ECONNREFUSED (Linux treats the error as hard in SYN_SENT) and a
 * UDP sender learns it too, instead of waiting on a black hole. */
#ifndef EBPFNET_BPF_REJECT_H
#define EBPFNET_BPF_REJECT_H

#include "csum.h"
#include "icmp_err.h"
#include "stats.h"

#define ICMP_PORT_UNREACH 3

struct port_unreachable {
	struct iphdr ip;
	struct icmp_echo icmp;  /* type, code, checksum, then 4 unused bytes */
	__u8 quote[28];         /* the refused packet's IPv4 header and 8 bytes of its L4 */
};

static __always_inline __u16 csum_of(void *buf, __u32 len)
{
	return ~csum_fold32((__u32)bpf_csum_diff(NULL, 0, buf, len, 0));
}

/* Turns the IPv4 packet of skb (no IP options) into the error and sends it
 * back out of the device it came in on. TC_ACT_SHOT when it cannot. */
static __always_inline int reject_port_unreachable(struct __sk_buff *skb)
{
	struct port_unreachable r = {};
	struct iphdr *q = (struct iphdr *)r.quote;
	struct ethhdr eth;
	__u8 mac[ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) ||
	    bpf_skb_load_bytes(skb, sizeof(eth), r.quote, sizeof(r.quote)) || q->ihl != 5)
		return TC_ACT_SHOT;
	r.ip.version = 4;
	r.ip.ihl = 5;
	r.ip.tot_len = bpf_htons(sizeof(r));
	r.ip.ttl = 64;
	r.ip.protocol = IPPROTO_ICMP;
	r.ip.saddr = q->daddr;
	r.ip.daddr = q->saddr;
	r.ip.check = csum_of(&r.ip, sizeof(r.ip));
	r.icmp.type = ICMP_DEST_UNREACH;
	r.icmp.code = ICMP_PORT_UNREACH;
	r.icmp.checksum = csum_of(&r.icmp, sizeof(r) - sizeof(r.ip));

	__builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, mac, ETH_ALEN);
	if (bpf_skb_change_tail(skb, sizeof(eth) + sizeof(r), 0) ||
	    bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) ||
	    bpf_skb_store_bytes(skb, sizeof(eth), &r, sizeof(r), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* A new connection to a service without an active backend: counted (and
 * monitored) as a drop, answered as a closed port. */
static __always_inline int refuse_no_backend(struct __sk_buff *skb, struct ebpfnet_ep_stats *st)
{
	drop(skb, st, EBPFNET_DROP_NO_BACKEND);
	return DRY_RUN ? TC_ACT_SHOT : reject_port_unreachable(skb);
}

#endif
