/* The uplink prefilter's decision: is a source denied? Shared by the XDP
 * program on the uplink and the bench's TC program that measures the same
 * lookup-and-drop one hook later. */
#ifndef EBPFNET_BPF_PREFILTER_H
#define EBPFNET_BPF_PREFILTER_H

#include "maps.h"

static __always_inline __be32 prefilter_mask(__u32 prefixlen)
{
	if (prefixlen == 0)
		return 0;
	if (prefixlen > 32)
		prefixlen = 32;
	return bpf_htonl(0xffffffffu << (32 - prefixlen));
}

/* 1 when saddr is denied (an exact address first, then the longest prefix
 * that holds it), counted on the entry that matched; 0 otherwise. */
static __always_inline int prefilter_denied(__be32 saddr, __u64 len)
{
	struct ebpfnet_prefix key = { .prefixlen = 32, .addr = saddr };
	struct ebpfnet_prefilter_stats *st;
	__u32 *prefixlen;

	if (!bpf_map_lookup_elem(&prefilter_addr, &saddr)) {
		prefixlen = bpf_map_lookup_elem(&prefilter_cidr, &key);
		if (!prefixlen)
			return 0;
		key.prefixlen = *prefixlen;
		key.addr = saddr & prefilter_mask(key.prefixlen);
	}
	st = bpf_map_lookup_elem(&prefilter_stats, &key);
	if (st) {
		st->packets++;
		st->bytes += len;
	}
	return 1;
}

#endif
