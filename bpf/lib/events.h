/* Events for `monitor`: drops and new flows, sent through the ring buffer
 * only while a listener keeps its deadline in the map "monitor" ahead of
 * now. Without a listener an event costs one array lookup, and only on the
 * paths that drop or start a flow. */
#ifndef EBPFNET_BPF_EVENTS_H
#define EBPFNET_BPF_EVENTS_H

#include <linux/in.h>

#include "maps.h"
#include "trace.h"

/* Who an event is about: the endpoint and, for policy, the direction and
 * rule that decided. endpoint 0: the one whose veth the packet came from. */
struct event_subject {
	__be32 endpoint;
	__u32 rule;
	__u8 dir;
};

static __always_inline int listening(__u8 type)
{
	__u32 zero = 0;
	struct ebpfnet_monitor *m = bpf_map_lookup_elem(&monitor, &zero);
	__u64 until;

	if (!m)
		return 0;
	until = type == EBPFNET_EVENT_DROP ? m->drops_until_ns : m->flows_until_ns;
	return until && until >= bpf_ktime_get_ns();
}

/* Reads the tuple from the packet as it is now (helpers only, so it works
 * after the packet was changed and whatever its length). */
static __noinline void event_tuple(struct __sk_buff *skb, struct ebpfnet_ct_key *t)
{
	struct iphdr ip;
	__be16 ports[3];
	__u32 l4;

	if (skb->protocol != bpf_htons(ETH_P_IP) || bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return;
	t->saddr = ip.saddr;
	t->daddr = ip.daddr;
	t->proto = ip.protocol;
	if (ip.frag_off & bpf_htons(0x1fff))
		return;
	l4 = ETH_HLEN + ip.ihl * 4;
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
		return;
	if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
		t->sport = ports[0];
		t->dport = ports[1];
	} else if (ip.protocol == IPPROTO_ICMP) {
		/* type and code, then the echo identifier */
		t->sport = ports[0];
		t->dport = ports[2];
	}
}

static __noinline void emit_event(struct __sk_buff *skb, __u8 type, __u8 reason, const struct event_subject *who)
{
	struct ebpfnet_event ev = {};
	__u32 ifindex = skb->ingress_ifindex;
	struct ebpfnet_endpoint *ep;

	if (DRY_RUN || !listening(type))
		return;
	ev.ts_ns = bpf_ktime_get_ns();
	ev.ifindex = ifindex;
	ev.type = type;
	ev.reason = reason;
	ev.len = skb->len > 0xffff ? 0xffff : skb->len;
	if (who) {
		ev.endpoint = who->endpoint;
		ev.rule = who->rule;
		ev.dir = who->dir;
	}
	if (!ev.endpoint) {
		ep = bpf_map_lookup_elem(&ep_by_ifindex, &ifindex);
		if (ep)
			ev.endpoint = ep->ip;
	}
	event_tuple(skb, &ev.tuple);
	bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
}

#endif
