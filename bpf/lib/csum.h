/* Incremental Internet checksum updates (RFC 1624) on direct packet access. */
#ifndef EBPFNET_BPF_CSUM_H
#define EBPFNET_BPF_CSUM_H

#include "common.h"

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* *check covers a 16-bit word that changes from old to new (both network order). */
static __always_inline void csum_replace2(__sum16 *check, __be16 old, __be16 new)
{
	__u32 sum = (__u16)~*check;

	sum += (__u16)~old;
	sum += new;
	*check = ~csum_fold32(sum);
}

#endif
