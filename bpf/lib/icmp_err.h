/* ICMP errors (unreachable, time exceeded, parameter problem) about a
 * translated flow: the packet they quote left with translated addresses, so
 * the quote, and the error's own address, are translated back before the
 * error is delivered. Path-MTU discovery and traceroute depend on it. The
 * quoted L4 checksum is left alone: receivers do not check it. */
#ifndef EBPFNET_BPF_ICMP_ERR_H
#define EBPFNET_BPF_ICMP_ERR_H

#include "nat.h"

#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

struct icmp_err {
	__u32 icmp_off;               /* the error's ICMP header */
	__u32 quote_off;              /* the quoted IPv4 header (20 bytes, no options) */
	struct ebpfnet_ct_key quoted; /* the quoted packet's tuple */
};

/* 0 when the packet (cursor past its IPv4 header) is an ICMP error quoting
 * a TCP, UDP or ICMP echo packet; -1 otherwise. */
static __always_inline int icmp_err_parse(struct __sk_buff *skb, struct cursor *c, struct iphdr *ip,
					  struct icmp_err *e)
{
	struct icmp_echo *ih = c->pos;
	struct iphdr *q;
	__u8 *l4;

	if (ip->protocol != IPPROTO_ICMP || (void *)(ih + 1) > c->end)
		return -1;
	if (ih->type != ICMP_DEST_UNREACH && ih->type != ICMP_TIME_EXCEEDED && ih->type != ICMP_PARAMETERPROB)
		return -1;
	q = (void *)(ih + 1);
	if ((void *)(q + 1) > c->end || q->version != 4 || q->ihl != 5)
		return -1;
	l4 = (void *)(q + 1);
	if ((void *)(l4 + 8) > c->end)
		return -1;

	e->icmp_off = (__u32)((void *)ih - (void *)(long)skb->data);
	e->quote_off = (__u32)((void *)q - (void *)(long)skb->data);
	e->quoted.saddr = q->saddr;
	e->quoted.daddr = q->daddr;
	e->quoted.proto = q->protocol;
	e->quoted.pad[0] = e->quoted.pad[1] = e->quoted.pad[2] = 0;
	if (q->protocol == IPPROTO_TCP || q->protocol == IPPROTO_UDP) {
		e->quoted.sport = *(__be16 *)l4;
		e->quoted.dport = *(__be16 *)(l4 + 2);
		return 0;
	}
	if (q->protocol == IPPROTO_ICMP && (l4[0] == ICMP_ECHO || l4[0] == ICMP_ECHOREPLY)) {
		e->quoted.sport = *(__be16 *)(l4 + 4);
		e->quoted.dport = e->quoted.sport;
		return 0;
	}
	return -1;
}

/* A quoted address: the quote's header checksum follows it, and the error's
 * checksum covers both. */
static __always_inline int rewrite_quoted_addr(struct __sk_buff *skb, const struct icmp_err *e, __u32 field,
					       __be32 from, __be32 to)
{
	__u32 check_off = e->quote_off + offsetof(struct iphdr, check);
	__sum16 old_check, new_check;

	if (bpf_skb_load_bytes(skb, check_off, &old_check, sizeof(old_check)) ||
	    bpf_l3_csum_replace(skb, check_off, from, to, sizeof(to)) ||
	    bpf_skb_load_bytes(skb, check_off, &new_check, sizeof(new_check)) ||
	    bpf_skb_store_bytes(skb, e->quote_off + field, &to, sizeof(to), 0) ||
	    bpf_l4_csum_replace(skb, e->icmp_off + 2, from, to, sizeof(to)))
		return -1;
	return bpf_l4_csum_replace(skb, e->icmp_off + 2, old_check, new_check, sizeof(new_check));
}

static __always_inline int rewrite_quoted_port(struct __sk_buff *skb, const struct icmp_err *e, __u32 off,
					       __be16 from, __be16 to)
{
	if (from == to)
		return 0;
	if (bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0))
		return -1;
	return bpf_l4_csum_replace(skb, e->icmp_off + 2, from, to, sizeof(to));
}

static __always_inline int rewrite_outer_addr(struct __sk_buff *skb, __u32 off, __be32 from, __be32 to)
{
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, from, to, sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
}

/* Finds the flow the quote belongs to and rewrites the quote as its sender
 * saw it. The error travels back to that sender: when the quote's source
 * changes, so does the error's destination (an error arriving from outside);
 * when the quote's destination changes, so does the error's source (an error
 * an endpoint sends about a published port). outer is the error's own
 * address pair before; *dst_out its destination after. Returns 0 or -1 when
 * no flow matches or the packet could not be changed. */
static __always_inline int icmp_err_xlate(struct __sk_buff *skb, const struct icmp_err *e, __be32 outer_saddr,
					  __be32 outer_daddr, __u64 now, __be32 *dst_out)
{
	struct ebpfnet_ct_key rev, orig;
	struct ebpfnet_ct_entry *flow;
	__u32 ports = e->quote_off + sizeof(struct iphdr);
	__u32 sport_off = ports, dport_off = ports + 2;

	ct_reverse(&e->quoted, &rev);
	flow = ct_lookup(&rev, now);
	if (!flow)
		return -1;
	ct_reverse(&flow->xlate, &orig);
	if (e->quoted.proto == IPPROTO_ICMP)
		sport_off = dport_off = ports + offsetof(struct icmp_echo, id);

	*dst_out = outer_daddr;
	if (e->quoted.saddr != orig.saddr) {
		if (rewrite_quoted_addr(skb, e, offsetof(struct iphdr, saddr), e->quoted.saddr, orig.saddr) ||
		    rewrite_quoted_port(skb, e, sport_off, e->quoted.sport, orig.sport) ||
		    rewrite_outer_addr(skb, IP_DST_OFF, outer_daddr, orig.saddr))
			return -1;
		*dst_out = orig.saddr;
	}
	if (e->quoted.daddr != orig.daddr) {
		if (rewrite_quoted_addr(skb, e, offsetof(struct iphdr, daddr), e->quoted.daddr, orig.daddr) ||
		    (e->quoted.proto != IPPROTO_ICMP &&
		     rewrite_quoted_port(skb, e, dport_off, e->quoted.dport, orig.dport)) ||
		    rewrite_outer_addr(skb, IP_SRC_OFF, outer_saddr, orig.daddr))
			return -1;
	}
	return 0;
}

#endif
