/* Address and port translation with the kernel's checksum helpers, which
 * also handle CHECKSUM_PARTIAL packets from local sockets (whose L4
 * checksum field holds only the pseudo-header sum). Every function here
 * changes the packet through helpers: packet pointers are stale afterwards. */
#ifndef EBPFNET_BPF_NAT_H
#define EBPFNET_BPF_NAT_H

#include <stddef.h>

#include "ct.h"

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
/* Masquerade port search: bounded, so the verifier can see it end. */
#define NAT_PORT_TRIES 32

static __always_inline __u32 l4_csum_off(__u8 proto, __u32 l4_off)
{
	if (proto == IPPROTO_TCP)
		return l4_off + offsetof(struct tcphdr, check);
	if (proto == IPPROTO_UDP)
		return l4_off + offsetof(struct udphdr, check);
	return l4_off + offsetof(struct icmp_echo, checksum);
}

/* UDP's zero checksum means "none" and must stay so. */
static __always_inline __u64 l4_csum_flags(__u8 proto)
{
	return proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

static __always_inline int rewrite_addr(struct __sk_buff *skb, __u8 proto, __u32 l4_off, __u32 addr_off,
					__be32 from, __be32 to)
{
	/* ICMP's checksum has no pseudo-header. */
	if (proto != IPPROTO_ICMP &&
	    bpf_l4_csum_replace(skb, l4_csum_off(proto, l4_off), from, to,
				BPF_F_PSEUDO_HDR | l4_csum_flags(proto) | sizeof(to)))
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, from, to, sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, addr_off, &to, sizeof(to), 0);
}

static __always_inline int rewrite_port(struct __sk_buff *skb, __u8 proto, __u32 l4_off, __u32 port_off,
					__be16 from, __be16 to)
{
	if (bpf_l4_csum_replace(skb, l4_csum_off(proto, l4_off), from, to, l4_csum_flags(proto) | sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, port_off, &to, sizeof(to), 0);
}

/* Makes the packet described by f look like to. */
static __always_inline int nat_apply(struct __sk_buff *skb, const struct flow *f, const struct ebpfnet_ct_key *to)
{
	const struct ebpfnet_ct_key *from = &f->key;
	__u8 proto = from->proto;

	TRACE_TUPLE(EBPFNET_TRACE_NAT, 0, 0, 0, 0, to);
	if (from->saddr != to->saddr && rewrite_addr(skb, proto, f->l4_off, IP_SRC_OFF, from->saddr, to->saddr))
		return -1;
	if (from->daddr != to->daddr && rewrite_addr(skb, proto, f->l4_off, IP_DST_OFF, from->daddr, to->daddr))
		return -1;
	if (proto == IPPROTO_ICMP) {
		/* One identifier field stands for both ports. */
		if (from->sport != to->sport &&
		    rewrite_port(skb, proto, f->l4_off, f->l4_off + offsetof(struct icmp_echo, id),
				 from->sport, to->sport))
			return -1;
		return 0;
	}
	if (from->sport != to->sport &&
	    rewrite_port(skb, proto, f->l4_off, f->l4_off, from->sport, to->sport))
		return -1;
	if (from->dport != to->dport &&
	    rewrite_port(skb, proto, f->l4_off, f->l4_off + sizeof(__be16), from->dport, to->dport))
		return -1;
	return 0;
}

/* A new TCP connection, which may take over a closing flow's tuple. */
static __always_inline int is_syn(const struct flow *f)
{
	return f->key.proto == IPPROTO_TCP && (f->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
}

/* Creates a flow for f that leaves as x (filled in but for its source) from
 * the uplink address: tries random ports of the configured range (random,
 * not consecutive, so taken ports do not cluster) until the translated tuple
 * is free. Returns 0, -1 when every tried port is taken, -2 when the map
 * refused. */
static __always_inline int masquerade_create(const struct flow *f, __u32 len, __u64 now,
					     struct ebpfnet_ct_key *x, __u8 flags)
{
	__u32 port_min = cfg(EBPFNET_CFG_NAT_PORT_MIN);
	__u32 range = (__u32)cfg(EBPFNET_CFG_NAT_PORT_MAX) - port_min + 1;
	int i, rc = -1;

	x->saddr = (__be32)cfg(EBPFNET_CFG_UPLINK_IP);
	if (range == 0 || range > 65536)
		return -1;
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__be16 port = bpf_htons((__u16)(port_min + bpf_get_prandom_u32() % range));

		x->sport = port;
		if (f->key.proto == IPPROTO_ICMP)
			x->dport = port;
		rc = ct_create(&f->key, x, flags, len, now, is_syn(f));
		if (rc != -1)
			return ct_created(rc, flags, x, i + 1);
	}
	return ct_created(rc, flags, x, NAT_PORT_TRIES);
}

/* Masquerades f, leaving for the same destination. */
static __always_inline int snat_create(const struct flow *f, __u32 len, __u64 now, struct ebpfnet_ct_key *x)
{
	*x = f->key;
	return masquerade_create(f, len, now, x, EBPFNET_CT_F_SNAT);
}

/* Only a connection's first packet (TCP: a SYN) may start a flow to a
 * published port, so a node's own connection that happens to use the
 * published port locally keeps its replies. */
static __always_inline int starts_flow(const struct flow *f)
{
	return f->key.proto != IPPROTO_TCP || is_syn(f);
}

/* Creates the flow of a connection to a published port or a service: f
 * arrives for the address the client knows and leaves for the endpoint
 * behind it. flags: EBPFNET_CT_F_SERVICE or 0, besides DNAT. Returns as
 * masquerade_create. */
static __always_inline int dnat_create(const struct flow *f, const struct ebpfnet_pub_target *t, __u8 flags,
				       __u32 len, __u64 now, struct ebpfnet_ct_key *x)
{
	flags |= EBPFNET_CT_F_DNAT;
	*x = f->key;
	x->daddr = t->ip;
	x->dport = t->port;
	/* An endpoint reaching its own published port would answer itself
	 * directly; masquerading it too sends the answer back through here. */
	if (f->key.saddr == t->ip)
		return masquerade_create(f, len, now, x, flags | EBPFNET_CT_F_SNAT);
	return ct_created(ct_create(&f->key, x, flags, len, now, is_syn(f)), flags, x, 1);
}

/* Why masquerade_create or dnat_create failed, as a drop reason. */
static __always_inline enum ebpfnet_drop_reason nat_failure(int rc)
{
	return rc == -1 ? EBPFNET_DROP_NAT_NO_PORT : EBPFNET_DROP_CT_FULL;
}

static __always_inline struct ebpfnet_pub_target *published_target(const struct flow *f)
{
	struct ebpfnet_pub_key k = {.port = f->key.dport, .proto = f->key.proto};

	if (f->key.proto != IPPROTO_TCP && f->key.proto != IPPROTO_UDP)
		return NULL;
	return bpf_map_lookup_elem(&published, &k);
}

#endif
