/* Network policy: the verdict of an endpoint's rule set for a new
 * connection, in at most four LPM lookups whatever the number of rules. The
 * controller compiles rules so that the longest match of each lookup is the
 * answer: peer address -> class (the longest rule prefix holding the peer),
 * then class, protocol and destination port -> verdict; where that class
 * decides nothing, the class of the rules with peer any is asked. */
#ifndef EBPFNET_BPF_POLICY_H
#define EBPFNET_BPF_POLICY_H

#include <linux/in.h>

#include "stats.h"
#include "nat.h"

/* On a node where no endpoint has a policy, no packet pays the lookup. */
static __always_inline const struct ebpfnet_ep_policy *policy_of(__be32 endpoint)
{
	if (!cfg(EBPFNET_CFG_POLICIES))
		return NULL;
	return bpf_map_lookup_elem(&ep_policy, &endpoint);
}

static __always_inline __u32 policy_proto_port(__u8 proto, __be16 dport)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
		return ((__u32)proto << 16) | bpf_ntohs(dport);
	if (proto == IPPROTO_ICMP)
		return (__u32)proto << 16;
	return (__u32)EBPFNET_POLICY_PROTO_OTHER << 16;
}

/* A direction's verdict: 0 when allowed, otherwise the drop reason. */
static __always_inline int policy_decided(int reason, const struct event_subject *who)
{
	TRACE(EBPFNET_TRACE_POLICY, reason, who->dir, who->endpoint, who->rule);
	return reason;
}

/* What one direction's rule set says about a connection to or from peer:
 * 0 when allowed, otherwise the drop reason. who->rule is the rule that
 * decided (0: the default). */
static __always_inline int policy_decide(const struct ebpfnet_policy_set *set, __be32 peer, __u8 proto,
					 __be16 dport, struct event_subject *who)
{
	struct ebpfnet_policy_cidr_key ck = {.prefixlen = 64, .set_id = set->id, .addr = peer};
	struct ebpfnet_policy_port_key pk = {.prefixlen = 64};
	struct ebpfnet_policy_verdict *v;
	__u32 *class_id;

	who->rule = 0;
	if (!set->id || !(class_id = bpf_map_lookup_elem(&policy_cidr, &ck)))
		goto by_default;
	pk.class_id = *class_id;
	pk.proto_port = bpf_htonl(policy_proto_port(proto, dport));
	v = bpf_map_lookup_elem(&policy_port, &pk);
	if (!v) {
		/* A lookup bounded to the set id finds only its peer-any class. */
		ck.prefixlen = 32;
		class_id = bpf_map_lookup_elem(&policy_cidr, &ck);
		if (!class_id || *class_id == pk.class_id)
			goto by_default;
		pk.class_id = *class_id;
		v = bpf_map_lookup_elem(&policy_port, &pk);
		if (!v)
			goto by_default;
	}
	who->rule = v->rule;
	return policy_decided(v->action == EBPFNET_POLICY_ALLOW ? 0 : EBPFNET_DROP_POLICY_DENY, who);
by_default:
	return policy_decided(set->default_action == EBPFNET_POLICY_ALLOW ? 0 : EBPFNET_DROP_POLICY_DEFAULT, who);
}

/* A new connection from src, addressed to addressed:addressed_port, which
 * reaches dst:dst_port (the same unless a published port translated it; dst
 * 0: not an endpoint of this node). Asks the sender's egress rules about
 * what it addressed, then the receiver's ingress rules about the sender; an
 * address without an ep_policy entry (the outside, endpoints without policy)
 * has no rules. Returns 1 when a rule set allowed it, 0 when none concerned
 * it; otherwise drops the packet, counted for the endpoint whose rule
 * refused, and returns -1.
 * who describes the decision either way (a flow event's, when allowed). */
static __always_inline int policy_admit(struct __sk_buff *skb, __be32 src, __be32 addressed,
					__be16 addressed_port, __be32 dst, __be16 dst_port, __u8 proto,
					struct event_subject *who)
{
	const struct ebpfnet_ep_policy *p = policy_of(src);
	struct ebpfnet_endpoint *ep;
	int reason, policed;

	who->endpoint = src;
	who->dir = EBPFNET_EGRESS;
	who->rule = 0;
	if (p && (reason = policy_decide(&p->dir[EBPFNET_EGRESS], addressed, proto, addressed_port, who)))
		goto denied;
	policed = !!p;
	p = dst ? policy_of(dst) : NULL;
	if (!p) {
		/* No rule set concerned: the event is about the receiver. */
		if (!policed) {
			who->endpoint = dst;
			who->dir = EBPFNET_INGRESS;
			TRACE(EBPFNET_TRACE_POLICY_NONE, 0, 0, 0, 0);
		}
		return policed;
	}
	who->endpoint = dst;
	who->dir = EBPFNET_INGRESS;
	reason = policy_decide(&p->dir[EBPFNET_INGRESS], src, proto, dst_port, who);
	if (!reason)
		return 1;
denied:
	ep = bpf_map_lookup_elem(&ep_by_ip, &who->endpoint);
	drop_for(skb, ep ? ep_stats_of(ep->ifindex) : NULL, reason, who);
	return -1;
}

/* A SYN on the tuple of a closing flow is a new connection, which policy
 * judges afresh. An untranslated flow is forgotten (*e = NULL), so the new
 * one is created the right way round; a translated one keeps its claimed
 * translation once policy allowed the SYN. Returns -1 when policy refused
 * (the packet is dropped already), else 0. */
static __always_inline int ct_reopen(struct __sk_buff *skb, struct ebpfnet_ct_entry **e, const struct flow *f)
{
	struct ebpfnet_ct_entry *old = *e;
	struct event_subject who;
	__be32 dst;

	if (!old || old->state != EBPFNET_CT_CLOSING || !is_syn(f))
		return 0;
	TRACE(EBPFNET_TRACE_CT_REOPEN, ct_untranslated(old), 0, 0, 0);
	if (ct_untranslated(old)) {
		if (!DRY_RUN) {
			bpf_map_delete_elem(&ct, &old->peer);
			bpf_map_delete_elem(&ct, &f->key);
		}
		*e = NULL;
		return 0;
	}
	dst = bpf_map_lookup_elem(&ep_by_ip, &old->xlate.daddr) ? old->xlate.daddr : 0;
	return policy_admit(skb, f->key.saddr, f->key.daddr, f->key.dport, dst, old->xlate.dport, f->key.proto,
			    &who) < 0 ? -1 : 0;
}

#endif
