/* Header parsers that carry their own bounds checks: each takes the cursor,
 * checks that the whole header lies inside the packet, advances past it and
 * returns a pointer to it (or NULL when the packet is too short). */
#ifndef EBPFNET_BPF_PARSE_H
#define EBPFNET_BPF_PARSE_H

#include "common.h"

struct cursor {
	void *pos;
	void *end;
};

static __always_inline void cursor_init(struct cursor *c, struct __sk_buff *skb)
{
	c->pos = (void *)(long)skb->data;
	c->end = (void *)(long)skb->data_end;
}

static __always_inline struct ethhdr *parse_eth(struct cursor *c)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > c->end)
		return NULL;
	c->pos = eth + 1;
	return eth;
}

/* ARP for Ethernet/IPv4: the fixed header and its body. */
struct arp_packet {
	struct {
		__be16 ar_hrd;
		__be16 ar_pro;
		__u8 ar_hln;
		__u8 ar_pln;
		__be16 ar_op;
	} hdr;
	struct {
		__u8 sha[ETH_ALEN];
		__be32 spa;
		__u8 tha[ETH_ALEN];
		__be32 tpa;
	} __attribute__((packed)) body;
} __attribute__((packed));

/* Only Ethernet/IPv4 ARP is accepted; anything else is malformed here. */
static __always_inline struct arp_packet *parse_arp(struct cursor *c)
{
	struct arp_packet *arp = c->pos;

	if ((void *)(arp + 1) > c->end)
		return NULL;
	if (arp->hdr.ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->hdr.ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->hdr.ar_hln != ETH_ALEN || arp->hdr.ar_pln != 4)
		return NULL;
	c->pos = arp + 1;
	return arp;
}

/* ICMP echo request and reply (linux/icmp.h drags in libc headers). */
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

struct icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 seq;
};

static __always_inline struct iphdr *parse_ipv4(struct cursor *c)
{
	struct iphdr *ip = c->pos;
	__u32 hdr_len;

	if ((void *)(ip + 1) > c->end)
		return NULL;
	if (ip->version != 4 || ip->ihl < 5)
		return NULL;
	hdr_len = ip->ihl * 4;
	if (c->pos + hdr_len > c->end)
		return NULL;
	c->pos += hdr_len;
	return ip;
}

#endif
