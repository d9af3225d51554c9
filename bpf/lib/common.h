/* Includes and small definitions every program needs. */
#ifndef EBPFNET_BPF_COMMON_H
#define EBPFNET_BPF_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <ebpfnet/abi.h>

/* From linux/if_arp.h, which drags in libc headers a BPF build cannot use. */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

#endif
