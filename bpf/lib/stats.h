/* Counters, and the one way a program drops a frame: with a reason that is
 * counted for the endpoint (or node-wide when no endpoint is known) and sent
 * to a listening monitor. */
#ifndef EBPFNET_BPF_STATS_H
#define EBPFNET_BPF_STATS_H

#include "maps.h"
#include "events.h"
#include "trace.h"

static __always_inline struct ebpfnet_ep_stats *ep_stats_of(__u32 ifindex)
{
	return bpf_map_lookup_elem(&ep_stats, &ifindex);
}

static __always_inline void count_tx(struct ebpfnet_ep_stats *st, struct __sk_buff *skb)
{
	if (st && !DRY_RUN) {
		st->tx_packets++;
		st->tx_bytes += skb->len;
	}
}

static __always_inline void count_rx(__u32 ifindex, struct __sk_buff *skb)
{
	struct ebpfnet_ep_stats *st = ep_stats_of(ifindex);

	if (st && !DRY_RUN) {
		st->rx_packets++;
		st->rx_bytes += skb->len;
	}
}

/* Drops for who (NULL: the endpoint whose veth the frame came from). */
static __always_inline int drop_for(struct __sk_buff *skb, struct ebpfnet_ep_stats *st,
				    enum ebpfnet_drop_reason reason, const struct event_subject *who)
{
	__u32 key = reason;
	__u64 *node_count;

	if (reason >= EBPFNET_DROP_REASON_MAX)
		return TC_ACT_SHOT;
	TRACE(EBPFNET_TRACE_DROP, reason, who ? who->endpoint : 0, st != 0, 0);
	if (DRY_RUN)
		return TC_ACT_SHOT;
	if (st) {
		st->drops[key]++;
	} else {
		node_count = bpf_map_lookup_elem(&drop_stats, &key);
		if (node_count)
			(*node_count)++;
	}
	emit_event(skb, EBPFNET_EVENT_DROP, reason, who);
	return TC_ACT_SHOT;
}

static __always_inline int drop(struct __sk_buff *skb, struct ebpfnet_ep_stats *st,
				enum ebpfnet_drop_reason reason)
{
	return drop_for(skb, st, reason, NULL);
}

#endif
