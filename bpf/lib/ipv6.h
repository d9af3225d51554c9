/* IPv6 from an endpoint: the header parser with its extension-header walk,
 * and neighbour discovery, whose gateway answers the datapath gives itself
 * (there is no bridge and no proxy_ndp), as arp.h does for IPv4. */
#ifndef EBPFNET_BPF_IPV6_H
#define EBPFNET_BPF_IPV6_H

#include <linux/ipv6.h>

#include "common.h"
#include "csum.h"
#include "eth.h"
#include "maps.h"
#include "parse.h"

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define NEXTHDR_ICMPV6 58

#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129
#define ND_ROUTER_SOLICIT 133
#define ND_ROUTER_ADVERT 134
#define ND_NEIGHBOR_SOLICIT 135
#define ND_NEIGHBOR_ADVERT 136
#define ND_REDIRECT 137

#define ND_OPT_SOURCE_LL 1
#define ND_OPT_TARGET_LL 2

/* NA flags (RFC 4861 4.4), first byte of the reserved word. */
#define ND_NA_ROUTER 0x80
#define ND_NA_SOLICITED 0x40

/* Extension headers walked before the upper-layer header is known. Enough
 * for any chain a host sends; a longer one is malformed here. */
#define IPV6_MAX_EXT_HEADERS 6

/* Neighbour solicitation or advertisement: ICMPv6 header, a reserved (NS)
 * or flags (NA) word, the target. */
struct nd_msg {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__u8 flags;
	__u8 reserved[3];
	struct in6_addr target;
};

/* A link-layer address option of Ethernet (8 bytes). */
struct nd_opt_lla {
	__u8 type;
	__u8 len;  /* in units of 8 bytes: 1 */
	__u8 mac[ETH_ALEN];
};

/* What follows the IPv6 header as far as the datapath needs it. */
struct l4_info6 {
	__u8 proto;      /* the upper-layer protocol */
	__u8 direct;     /* 1: no extension header came before it */
	__u8 fragment;   /* 1: a non-first fragment, so the upper header is not here */
	__u32 offset;    /* of the upper-layer header, from the start of the frame */
};

static __always_inline struct ipv6hdr *parse_ipv6(struct cursor *c, __u32 frame_len)
{
	struct ipv6hdr *ip6 = c->pos;

	if ((void *)(ip6 + 1) > c->end)
		return NULL;
	if (ip6->version != 6)
		return NULL;
	/* The payload may not claim more than the frame holds (GSO frames
	 * carry their true length here too). The frame's length, not the
	 * linear part's end: a socket's data usually sits in pages beyond it. */
	if (ETH_HLEN + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > frame_len)
		return NULL;
	c->pos = ip6 + 1;
	return ip6;
}

/* Walks the extension headers after ip6 (bounded), so that what an
 * endpoint hides behind them (a router advertisement behind a destination
 * options or fragment header, RFC 7113) is found. Returns -1 when the
 * chain cannot be followed: truncated, or longer than the walk. */
static __always_inline int ipv6_l4(struct __sk_buff *skb, const struct ipv6hdr *ip6, struct l4_info6 *l4)
{
	__u32 off = ETH_HLEN + sizeof(struct ipv6hdr);
	__u8 next = ip6->nexthdr;
	__u8 hdr[2];
	__be16 frag_off;
	int i;

	l4->direct = 1;
	l4->fragment = 0;
#pragma unroll
	for (i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		switch (next) {
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
			if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)))
				return -1;
			next = hdr[0];
			off += (hdr[1] + 1) * 8;
			break;
		case NEXTHDR_AUTH:
			if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)))
				return -1;
			next = hdr[0];
			off += (hdr[1] + 2) * 4;
			break;
		case NEXTHDR_FRAGMENT:
			if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) ||
			    bpf_skb_load_bytes(skb, off + 2, &frag_off, sizeof(frag_off)))
				return -1;
			next = hdr[0];
			off += 8;
			if (frag_off & bpf_htons(0xfff8))
				l4->fragment = 1;
			break;
		default:
			l4->proto = next;
			l4->offset = off;
			return 0;
		}
		l4->direct = 0;
		if (l4->fragment) {
			l4->proto = next;
			l4->offset = off;
			return 0;
		}
	}
	return -1;
}

static __always_inline int in6_equal(const struct in6_addr *a, const struct in6_addr *b)
{
	return ((a->in6_u.u6_addr32[0] ^ b->in6_u.u6_addr32[0]) | (a->in6_u.u6_addr32[1] ^ b->in6_u.u6_addr32[1]) |
		(a->in6_u.u6_addr32[2] ^ b->in6_u.u6_addr32[2]) | (a->in6_u.u6_addr32[3] ^ b->in6_u.u6_addr32[3])) == 0;
}

static __always_inline int in6_is_unspecified(const struct in6_addr *a)
{
	return (a->in6_u.u6_addr32[0] | a->in6_u.u6_addr32[1] | a->in6_u.u6_addr32[2] | a->in6_u.u6_addr32[3]) == 0;
}

/* fe80::/10 */
static __always_inline int in6_is_link_local(const struct in6_addr *a)
{
	return a->in6_u.u6_addr8[0] == 0xfe && (a->in6_u.u6_addr8[1] & 0xc0) == 0x80;
}

static __always_inline int in6_is_multicast(const struct in6_addr *a)
{
	return a->in6_u.u6_addr8[0] == 0xff;
}

/* The gateway's link-local address on every node-side veth: fe80::1. */
static __always_inline int in6_is_gateway_ll(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == bpf_htonl(0xfe800000) && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == 0 && a->in6_u.u6_addr32[3] == bpf_htonl(1);
}

/* The node's IPv6 gateway (config slots), unspecified on an IPv4 node. */
static __always_inline void gateway6(struct in6_addr *gw)
{
	__u64 hi = cfg(EBPFNET_CFG_GATEWAY6_HI), lo = cfg(EBPFNET_CFG_GATEWAY6_LO);

	__builtin_memcpy(&gw->in6_u.u6_addr8[0], &hi, 8);
	__builtin_memcpy(&gw->in6_u.u6_addr8[8], &lo, 8);
}

/* One of the gateway's addresses: what the datapath answers for. */
static __always_inline int in6_is_gateway(const struct in6_addr *a, const struct in6_addr *gw)
{
	return in6_equal(a, gw) || in6_is_gateway_ll(a);
}

/* The ICMPv6 part of the gateway's neighbour advertisement. */
struct na_msg {
	struct nd_msg na;
	struct nd_opt_lla tlla;
};

/* The ICMPv6 checksum (RFC 8200 8.1) of msg from saddr to daddr, with its
 * pseudo-header. */
static __always_inline __sum16 na_checksum(const struct in6_addr *saddr, const struct in6_addr *daddr,
					   struct na_msg *msg)
{
	struct {
		struct in6_addr saddr;
		struct in6_addr daddr;
		__be32 len;
		__u8 zero[3];
		__u8 next;
	} ph = {};
	__s64 sum;

	ph.saddr = *saddr;
	ph.daddr = *daddr;
	ph.len = bpf_htonl(sizeof(*msg));
	ph.next = NEXTHDR_ICMPV6;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)msg, sizeof(*msg), (__u32)sum);
	return ~csum_fold32((__u32)sum);
}

/* Turns the solicitation in skb into the gateway's advertisement for target,
 * from node_mac to the soliciting endpoint (mac, address to): router and
 * solicited flags set, override clear (RFC 4861 7.2.4; Cilium does the
 * same), its link-layer address in a target option. The frame is written
 * whole (resized to fit), so nothing of the solicitation remains. Returns
 * 0, or -1 when the frame cannot be resized or written. */
static __always_inline int nd_make_advert(struct __sk_buff *skb, const struct in6_addr *target,
					  const struct in6_addr *to, const __u8 *mac, const __u8 *node_mac)
{
	struct ethhdr eth = {};
	struct ipv6hdr ip6 = {};
	struct na_msg msg = {};

	mac_copy(eth.h_dest, mac);
	mac_copy(eth.h_source, node_mac);
	eth.h_proto = bpf_htons(ETH_P_IPV6);
	ip6.version = 6;
	ip6.payload_len = bpf_htons(sizeof(msg));
	ip6.nexthdr = NEXTHDR_ICMPV6;
	ip6.hop_limit = 255;
	ip6.saddr = *target;
	ip6.daddr = *to;
	msg.na.type = ND_NEIGHBOR_ADVERT;
	msg.na.flags = ND_NA_ROUTER | ND_NA_SOLICITED;
	msg.na.target = *target;
	msg.tlla.type = ND_OPT_TARGET_LL;
	msg.tlla.len = 1;
	mac_copy(msg.tlla.mac, node_mac);
	msg.na.checksum = na_checksum(target, to, &msg);
	if (bpf_skb_change_tail(skb, sizeof(eth) + sizeof(ip6) + sizeof(msg), 0))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) ||
	    bpf_skb_store_bytes(skb, sizeof(eth), &ip6, sizeof(ip6), 0) ||
	    bpf_skb_store_bytes(skb, sizeof(eth) + sizeof(ip6), &msg, sizeof(msg), 0))
		return -1;
	return 0;
}

#endif
