/* The trace build: the same programs compiled a second time with
 * -DEBPFNET_TRACE, for `ebpfnet trace`, which runs them once on a described
 * packet with the node's own maps. In that build the few places that write
 * node state (counters, conntrack, events) test DRY_RUN and write nothing,
 * and every decision is recorded as a step in the object's own .bss (never
 * pinned, never shared). In the normal build DRY_RUN is 0 and every hook
 * here is empty: the programs that forward traffic carry no instruction of
 * it. */
#ifndef EBPFNET_BPF_TRACE_H
#define EBPFNET_BPF_TRACE_H

#include "common.h"

#include <ebpfnet/trace_abi.h>

#ifdef EBPFNET_TRACE

#define DRY_RUN 1

/* The steps of the one packet this object runs: read by the controller. */
struct ebpfnet_trace trace_buf = {};

/* A function of its own, so dozens of steps cost the verifier one body. */
static __noinline void trace_step(__u32 code_result, __u32 a0, __u32 a1, __u32 a2, const struct ebpfnet_ct_key *t)
{
	__u32 n = trace_buf.count;
	struct ebpfnet_trace_step *s;

	if (n >= EBPFNET_TRACE_STEPS) {
		trace_buf.overflow++;
		return;
	}
	s = &trace_buf.steps[n];
	s->code = code_result & 0xffff;
	s->result = code_result >> 16;
	s->arg[0] = a0;
	s->arg[1] = a1;
	s->arg[2] = a2;
	if (t)
		s->tuple = *t;
	trace_buf.count = n + 1;
}

#define TRACE_TUPLE(code, result, a0, a1, a2, t) \
	trace_step((__u32)(code) | (__u32)(__u16)(result) << 16, (a0), (a1), (a2), (t))

#else

#define DRY_RUN 0
#define TRACE_TUPLE(code, result, a0, a1, a2, t) ((void)0)

#endif

#define TRACE(code, result, a0, a1, a2) TRACE_TUPLE(code, result, a0, a1, a2, (void *)0)

/* Hands the packet to the node's stack (TC_ACT_OK), saying why. */
static __always_inline int pass(__u16 why)
{
	TRACE(EBPFNET_TRACE_PASS, why, 0, 0, 0);
	return TC_ACT_OK;
}

#endif
