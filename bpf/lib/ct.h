/* Connection tracking: one LRU entry per direction of a flow, keyed by the
 * tuple as it arrives and holding the tuple it leaves as. Entries expire
 * lazily: a lookup treats an entry past its deadline as absent, and creating
 * a flow over an expired entry replaces it, so timeouts hold even when the
 * LRU is far from full. */
#ifndef EBPFNET_BPF_CT_H
#define EBPFNET_BPF_CT_H

#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "maps.h"
#include "parse.h"
#include "trace.h"

#define NSEC_PER_SEC 1000000000ULL
/* An entry's deadline is rewritten at most this often, so a busy flow does
 * not write its cache line on every packet. */
#define CT_REFRESH_NS NSEC_PER_SEC
/* How long a peer that closed first keeps the tuple in TIME_WAIT (Linux's
 * TCP_TIMEWAIT_LEN): the masquerade port stays taken for that long after the
 * flow's entry expires. */
#define CT_PEER_TIME_WAIT_NS (60 * NSEC_PER_SEC)

/* Conntrack's clock (CLOCK_MONOTONIC_COARSE): timeouts are seconds, and a
 * tick-resolution read costs a fraction of a precise one, which in a VM is a
 * kvm-clock read on every packet. */
static __always_inline __u64 ct_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

/* What the tracker needs from a packet besides its tuple. */
struct flow {
	struct ebpfnet_ct_key key;
	__u32 l4_off;   /* from the start of the frame */
	__u8 tcp_flags; /* TCP: the flags byte (FIN 0x01 SYN 0x02 RST 0x04 ACK 0x10) */
	__u8 icmp_type; /* ICMP: echo request or reply */
};

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* Fills f from the IPv4 packet at ip (the cursor just past its header).
 * Returns 0, or -1 for what cannot be tracked: fragments, protocols other
 * than TCP, UDP and ICMP echo, truncated L4 headers. */
static __always_inline int flow_of(struct __sk_buff *skb, struct cursor *c, struct iphdr *ip,
				   struct flow *f)
{
	f->key.saddr = ip->saddr;
	f->key.daddr = ip->daddr;
	f->key.proto = ip->protocol;
	f->key.pad[0] = f->key.pad[1] = f->key.pad[2] = 0;
	f->l4_off = (__u32)(c->pos - (void *)(long)skb->data);
	f->tcp_flags = 0;
	f->icmp_type = 0;
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF or an offset */
		return -1;

	switch (ip->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *th = c->pos;

		if ((void *)(th + 1) > c->end)
			return -1;
		f->key.sport = th->source;
		f->key.dport = th->dest;
		f->tcp_flags = ((__u8 *)th)[13];
		return 0;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = c->pos;

		if ((void *)(uh + 1) > c->end)
			return -1;
		f->key.sport = uh->source;
		f->key.dport = uh->dest;
		return 0;
	}
	case IPPROTO_ICMP: {
		struct icmp_echo *ih = c->pos;

		if ((void *)(ih + 1) > c->end)
			return -1;
		if (ih->type != ICMP_ECHO && ih->type != ICMP_ECHOREPLY)
			return -1;
		f->key.sport = ih->id;
		f->key.dport = ih->id;
		f->icmp_type = ih->type;
		return 0;
	}
	default:
		return -1;
	}
}

static __always_inline void ct_reverse(const struct ebpfnet_ct_key *k, struct ebpfnet_ct_key *r)
{
	r->saddr = k->daddr;
	r->daddr = k->saddr;
	r->sport = k->dport;
	r->dport = k->sport;
	r->proto = k->proto;
	r->pad[0] = r->pad[1] = r->pad[2] = 0;
}

static __always_inline __u64 ct_timeout_ns(__u8 proto, __u8 state)
{
	__u32 s;

	if (proto == IPPROTO_TCP)
		s = cfg(state == EBPFNET_CT_ESTABLISHED ? EBPFNET_CFG_CT_TIMEOUT_TCP
			: state == EBPFNET_CT_CLOSING   ? EBPFNET_CFG_CT_TIMEOUT_CLOSING
							: EBPFNET_CFG_CT_TIMEOUT_SYN);
	else if (proto == IPPROTO_UDP)
		s = cfg(EBPFNET_CFG_CT_TIMEOUT_UDP);
	else
		s = cfg(EBPFNET_CFG_CT_TIMEOUT_ICMP);
	return (__u64)s * NSEC_PER_SEC;
}

static __always_inline struct ebpfnet_ct_entry *ct_lookup(const struct ebpfnet_ct_key *key, __u64 now)
{
	struct ebpfnet_ct_entry *e = bpf_map_lookup_elem(&ct, key);

	if (e && e->expires_ns < now)
		return NULL;
	return e;
}

/* The live entry of f's direction. An echo request never matches a reply
 * entry (the key has no ICMP type), or an outside peer could ping an
 * endpoint through the identifier of the endpoint's own ping. */
static __always_inline struct ebpfnet_ct_entry *ct_lookup_flow(const struct flow *f, __u64 now)
{
	struct ebpfnet_ct_entry *e = ct_lookup(&f->key, now);

	if (e && f->key.proto == IPPROTO_ICMP &&
	    !!(e->flags & EBPFNET_CT_F_REPLY) != (f->icmp_type == ICMP_ECHOREPLY))
		e = NULL;
	TRACE_TUPLE(EBPFNET_TRACE_CT_LOOKUP, e != 0, e ? e->state : 0, e ? e->flags : 0, e ? e->packets : 0, &f->key);
	return e;
}

static __always_inline void ct_set(struct ebpfnet_ct_entry *e, __u8 state, __u64 expires)
{
	e->state = state;
	e->expires_ns = expires;
}

/* Accounts a packet of e's direction: state from TCP flags and the first
 * reply, and a later deadline for both directions. A dry run only tells. */
static __always_inline void ct_update(struct ebpfnet_ct_entry *e, const struct flow *f, __u32 len, __u64 now)
{
	__u8 state = e->state;
	struct ebpfnet_ct_entry *peer;
	__u64 expires;

	if (!DRY_RUN) {
		e->packets++;
		e->bytes += len;
	}
	/* The peer's FIN before ours: it will wait in TIME_WAIT (a RST leaves none). */
	if (!DRY_RUN && f->key.proto == IPPROTO_TCP && state != EBPFNET_CT_CLOSING && (e->flags & EBPFNET_CT_F_REPLY) &&
	    (f->tcp_flags & (TCP_FIN | TCP_RST)) == TCP_FIN)
		e->flags |= EBPFNET_CT_F_PEER_WAITS;
	if (f->key.proto == IPPROTO_TCP && (f->tcp_flags & (TCP_FIN | TCP_RST)))
		state = EBPFNET_CT_CLOSING;
	/* A new connection on the same tuple as a closed one starts over. */
	else if (state == EBPFNET_CT_CLOSING && !(e->flags & EBPFNET_CT_F_REPLY) &&
		 f->key.proto == IPPROTO_TCP && (f->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		state = EBPFNET_CT_NEW;
	else if (state == EBPFNET_CT_NEW && (e->flags & EBPFNET_CT_F_REPLY) &&
		 (f->key.proto != IPPROTO_TCP || (f->tcp_flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK)))
		state = EBPFNET_CT_ESTABLISHED;

	TRACE(EBPFNET_TRACE_CT_UPDATE, 0, e->state, state, 0);
	expires = now + ct_timeout_ns(f->key.proto, state);
	if (DRY_RUN || (state == e->state && expires < e->expires_ns + CT_REFRESH_NS))
		return;
	ct_set(e, state, expires);
	peer = bpf_map_lookup_elem(&ct, &e->peer);
	if (peer)
		ct_set(peer, state, expires);
}

static __always_inline int ct_untranslated(const struct ebpfnet_ct_entry *e)
{
	return !(e->flags & (EBPFNET_CT_F_SNAT | EBPFNET_CT_F_DNAT));
}

static __always_inline int ct_key_equal(const struct ebpfnet_ct_key *a, const struct ebpfnet_ct_key *b)
{
	return a->saddr == b->saddr && a->daddr == b->daddr && a->sport == b->sport && a->dport == b->dport;
}

/* Whether a new flow translated with flags may not take over old's tuple:
 * it is live (a SYN may take over a closing flow, an untranslated flow an
 * untranslated one), or the peer of a masqueraded flow may still hold it in
 * TIME_WAIT, where a new connection from another endpoint would stall. */
static __always_inline int ct_tuple_taken(const struct ebpfnet_ct_entry *old, __u8 flags, __u64 now, int syn)
{
	if ((flags & EBPFNET_CT_F_SNAT) && (old->flags & EBPFNET_CT_F_PEER_WAITS) &&
	    now < old->expires_ns + CT_PEER_TIME_WAIT_NS)
		return 1;
	return old->expires_ns >= now && !(syn && old->state == EBPFNET_CT_CLOSING) &&
	       !(!flags && ct_untranslated(old));
}

/* Creates both entries of a new flow: fwd arrives and leaves as fwd_x; its
 * replies arrive as reverse(fwd_x) and leave as reverse(fwd). The reply entry
 * is claimed first with BPF_NOEXIST, which makes a NAT port a lock-free
 * reservation: two CPUs can never hand out the same translated tuple.
 * A TCP SYN may also take over a reply tuple whose flow is closing, as
 * Linux conntrack lets a new connection reuse a closed one's tuple: short
 * connections would otherwise hold their ports for the closing timeout.
 * An untranslated flow (flags 0) replaces an untranslated one the same way:
 * its tuple cannot belong to anyone else, and the LRU may have evicted the
 * other direction of a live flow.
 * Returns 0, -1 when the reply tuple is live already, -2 when the map refused. */
static __always_inline int ct_create(const struct ebpfnet_ct_key *fwd, const struct ebpfnet_ct_key *fwd_x,
				     __u8 flags, __u32 len, __u64 now, int syn)
{
	struct ebpfnet_ct_entry entry = {};
	struct ebpfnet_ct_key rev;
	struct ebpfnet_ct_entry *old;

	ct_reverse(fwd_x, &rev);
	/* A dry run asks only whether the reply tuple is free. */
	if (DRY_RUN) {
		old = bpf_map_lookup_elem(&ct, &rev);
		return old && ct_tuple_taken(old, flags, now, syn) ? -1 : 0;
	}
	entry.expires_ns = now + ct_timeout_ns(fwd->proto, EBPFNET_CT_NEW);
	entry.flags = flags | EBPFNET_CT_F_REPLY;
	ct_reverse(fwd, &entry.xlate);
	entry.peer = *fwd;
	if (bpf_map_update_elem(&ct, &rev, &entry, BPF_NOEXIST) != 0) {
		old = bpf_map_lookup_elem(&ct, &rev);
		if (old && ct_tuple_taken(old, flags, now, syn))
			return -1;
		/* The closed flow's other direction must not translate into ours. */
		if (old)
			bpf_map_delete_elem(&ct, &old->peer);
		if (bpf_map_update_elem(&ct, &rev, &entry, BPF_ANY) != 0)
			return -2;
	}

	entry.flags = flags;
	entry.xlate = *fwd_x;
	entry.peer = rev;
	entry.packets = 1;
	entry.bytes = len;
	if (bpf_map_update_elem(&ct, fwd, &entry, BPF_ANY) != 0) {
		bpf_map_delete_elem(&ct, &rev);
		return -2;
	}
	return 0;
}

/* What creating a flow (leaving as x) came to, after tries tuples: rc. */
static __always_inline int ct_created(int rc, __u8 flags, const struct ebpfnet_ct_key *x, __u32 tries)
{
	TRACE_TUPLE(EBPFNET_TRACE_CT_CREATE, -rc, flags, tries, 0, x);
	return rc;
}

/* Tracks a flow that leaves as it arrives: a connection a policy allowed,
 * whose later packets and replies then pass as part of it. Returns as
 * ct_create. */
static __always_inline int ct_track(const struct flow *f, __u32 len, __u64 now)
{
	return ct_created(ct_create(&f->key, &f->key, 0, len, now, 0), 0, &f->key, 1);
}

#endif
