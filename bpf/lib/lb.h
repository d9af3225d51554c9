/* Service load balancing, shared by the per-packet path at tc and the
 * connect-time socket hooks: which service a destination is, and which
 * backend a new connection to it takes. */
#ifndef EBPFNET_BPF_LB_H
#define EBPFNET_BPF_LB_H

#include <linux/in.h>

#include "ct.h"

/* On a node without services no packet pays the lookup. */
static __always_inline struct ebpfnet_svc *svc_of(__be32 addr, __be16 port, __u8 proto)
{
	struct ebpfnet_svc_key k = {.addr = addr, .port = port, .proto = proto};

	if (!cfg(EBPFNET_CFG_SERVICES) || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return NULL;
	return bpf_map_lookup_elem(&svc, &k);
}

/* MurmurHash3's 32-bit mixing: no per-node seed, so every node hashes a
 * flow to the same Maglev slot. */
static __always_inline __u32 lb_mix(__u32 h, __u32 v)
{
	v *= 0xcc9e2d51;
	v = (v << 15) | (v >> 17);
	v *= 0x1b873593;
	h ^= v;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 lb_flow_hash(const struct ebpfnet_ct_key *k)
{
	__u32 h = lb_mix(0, k->saddr);

	h = lb_mix(h, k->daddr);
	h = lb_mix(h, ((__u32)k->sport << 16) | k->dport);
	h = lb_mix(h, k->proto);
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

static __always_inline struct ebpfnet_backend *lb_active(const struct ebpfnet_svc *s, __u32 id)
{
	struct ebpfnet_backend *be = bpf_map_lookup_elem(&backends, &id);

	return be && be->state == EBPFNET_BACKEND_ACTIVE && be->svc_id == s->id ? be : NULL;
}

/* The backend a new connection of client to s takes: the client's last one
 * while affinity holds and it is active, else the Maglev slot of hash. NULL
 * when the service has no active backend. *id is the backend's id. */
static __always_inline struct ebpfnet_backend *lb_pick(const struct ebpfnet_svc *s, __be32 client, __u32 hash,
						       __u64 now, __u32 *id)
{
	struct ebpfnet_affinity_key ak = {.svc_id = s->id, .client = client};
	struct ebpfnet_affinity *a, fresh = {};
	struct ebpfnet_backend *be = NULL;
	__u32 slot = hash % EBPFNET_MAGLEV_SIZE;
	__u32 *chosen;
	void *table;

	if (s->affinity_s) {
		a = bpf_map_lookup_elem(&svc_affinity, &ak);
		if (a && now - a->last_ns < (__u64)s->affinity_s * NSEC_PER_SEC) {
			*id = a->backend_id;
			be = lb_active(s, *id);
		}
	}
	if (!be) {
		table = bpf_map_lookup_elem(&maglev, &s->id);
		if (!table)
			return NULL;
		chosen = bpf_map_lookup_elem(table, &slot);
		if (!chosen)
			return NULL;
		*id = *chosen;
		be = lb_active(s, *id);
		if (!be)
			return NULL;
	}
	if (s->affinity_s && !DRY_RUN) {
		fresh.backend_id = *id;
		fresh.last_ns = now;
		bpf_map_update_elem(&svc_affinity, &ak, &fresh, BPF_ANY);
	}
	return be;
}

static __always_inline void lb_count(__u32 id)
{
	struct ebpfnet_backend_stats *st = bpf_map_lookup_elem(&backend_stats, &id);

	if (st && !DRY_RUN)
		st->connections++;
}

/* Where a new connection of f goes when it addresses a service at svc_addr
 * (0: a node port): 1 with *t the backend (*id its id), 0 when it is no
 * service, -1 when the service has no active backend. */
static __always_inline int lb_target(const struct flow *f, __be32 svc_addr, __u64 now,
				     struct ebpfnet_pub_target *t, __u32 *id)
{
	struct ebpfnet_svc *s = svc_of(svc_addr, f->key.dport, f->key.proto);
	struct ebpfnet_ct_key k = f->key;
	struct ebpfnet_backend *be;

	if (!s)
		return 0;
	/* A node port is hashed as the port, not the node's own address. */
	k.daddr = svc_addr;
	be = lb_pick(s, f->key.saddr, lb_flow_hash(&k), now, id);
	TRACE(EBPFNET_TRACE_SERVICE, be != 0, s->id, be ? *id : 0, be ? be->ip : 0);
	if (!be)
		return -1;
	t->ip = be->ip;
	t->port = be->port;
	t->pad = 0;
	return 1;
}

#endif
