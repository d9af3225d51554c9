/* MAC address helpers. Spelled out because clang may turn __builtin_memcmp
 * into a call to memcmp, which BPF does not have. */
#ifndef EBPFNET_BPF_ETH_H
#define EBPFNET_BPF_ETH_H

#include "common.h"

static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		(a[5] ^ b[5])) == 0;
}

#endif
