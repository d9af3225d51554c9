// SPDX-License-Identifier: GPL-2.0
/* tc ingress of the node's uplink: replies of masqueraded flows and
 * connections to published ports go straight to their endpoint; everything
 * else, the node's own traffic above all, passes untouched. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/stats.h"
#include "lib/eth.h"
#include "lib/fwd.h"
#include "lib/nat.h"
#include "lib/icmp_err.h"
#include "lib/policy.h"
#include "lib/lb.h"
#include "lib/reject.h"
#include "lib/deliver.h"

SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	__be32 uplink_ip = (__be32)cfg(EBPFNET_CFG_UPLINK_IP);
	const struct ebpfnet_pub_target *pub = NULL;
	struct ebpfnet_pub_target target;
	struct event_subject who;
	struct ebpfnet_ct_entry *e;
	struct ebpfnet_ct_key x;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct cursor c;
	struct flow f;
	int last_hop, nat_rc, svc_rc = 0;
	__u32 backend = 0;
	__u64 now;

	if (!cfg(EBPFNET_CFG_UPLINK_IFINDEX))
		return pass(EBPFNET_PASS_NOT_OURS);
	cursor_init(&c, skb);
	eth = parse_eth(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(EBPFNET_PASS_NOT_OURS);
	ip = parse_ipv4(&c);
	if (!ip)
		return pass(EBPFNET_PASS_NOT_OURS);
	if (ip->daddr != uplink_ip) {
		if (is_routed(ip->saddr) && bpf_map_lookup_elem(&ep_by_ip, &ip->daddr))
			return routed_to_endpoint(skb, &c, ip);
		return pass(EBPFNET_PASS_NOT_OURS);
	}
	/* Translated, a packet with no hop left would make the node's stack
	 * quote an endpoint's address back to the outside: it is dropped
	 * before translation, while the node's own such packets pass. */
	last_hop = ip->ttl <= 1;
	now = ct_now();
	if (flow_of(skb, &c, ip, &f) < 0) {
		struct icmp_err err;
		__be32 dst;

		if (icmp_err_parse(skb, &c, ip, &err))
			return pass(EBPFNET_PASS_NOT_OURS);
		if (last_hop)
			return drop(skb, NULL, EBPFNET_DROP_TTL_EXCEEDED);
		if (icmp_err_xlate(skb, &err, ip->saddr, ip->daddr, now, &dst))
			return pass(EBPFNET_PASS_NOT_OURS);
		return to_endpoint(skb, dst);
	}

	e = ct_lookup_flow(&f, now);
	if ((e || (starts_flow(&f) && (published_target(&f) || svc_of(0, f.key.dport, f.key.proto)))) && last_hop)
		return drop(skb, NULL, EBPFNET_DROP_TTL_EXCEEDED);
	if (ct_reopen(skb, &e, &f))
		return TC_ACT_SHOT;
	if (e) {
		ct_update(e, &f, skb->len, now);
		x = e->xlate;
	} else if (starts_flow(&f) &&
		   ((pub = published_target(&f)) || (svc_rc = lb_target(&f, 0, now, &target, &backend)))) {
		/* A published port, or a node port balanced among its backends. */
		if (svc_rc < 0)
			return refuse_no_backend(skb, NULL);
		if (!pub)
			pub = &target;
		if (policy_admit(skb, f.key.saddr, f.key.daddr, f.key.dport, pub->ip, pub->port, f.key.proto, &who) < 0)
			return TC_ACT_SHOT;
		nat_rc = dnat_create(&f, pub, svc_rc ? EBPFNET_CT_F_SERVICE : 0, skb->len, now, &x);
		if (nat_rc)
			return drop(skb, NULL, nat_failure(nat_rc));
		if (svc_rc)
			lb_count(backend);
		emit_event(skb, EBPFNET_EVENT_FLOW, 0, &who);
	} else {
		return pass(EBPFNET_PASS_NOT_OURS);
	}
	if (nat_apply(skb, &f, &x))
		return drop(skb, NULL, EBPFNET_DROP_MALFORMED);
	return to_endpoint(skb, x.daddr);
}

char LICENSE[] SEC("license") = "GPL";
