// SPDX-License-Identifier: GPL-2.0
/* tc ingress of every node-side veth: everything an endpoint sends starts here. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/eth.h"
#include "lib/parse.h"
#include "lib/stats.h"
#include "lib/arp.h"
#include "lib/fwd.h"
#include "lib/nat.h"
#include "lib/icmp_err.h"
#include "lib/policy.h"
#include "lib/lb.h"
#include "lib/reject.h"
#include "lib/tunnel.h"
#include "lib/ipv6.h"

/* Set by the controller before load. */
const volatile __be32 gateway_ip = 0;

static __always_inline int handle_arp(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
				      const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	struct arp_packet *arp = parse_arp(c);

	if (!arp)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	if (!mac_equal(arp->body.sha, ep->mac))
		return drop(skb, st, EBPFNET_DROP_SPOOFED_MAC);
	/* 0.0.0.0 is an address probe (RFC 5227), not a claim. */
	if (arp->body.spa != ep->ip && arp->body.spa != 0)
		return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);

	TRACE(EBPFNET_TRACE_ANTISPOOF, 0, 0, 0, 0);
	count_tx(st, skb);
	if (arp->hdr.ar_op == bpf_htons(ARPOP_REQUEST) && arp->body.tpa == gateway_ip) {
		arp_make_reply(eth, arp, ep->node_mac, gateway_ip);
		count_rx(ep->ifindex, skb);
		TRACE(EBPFNET_TRACE_ARP_REPLY, 0, ep->ifindex, 0, 0);
		return bpf_redirect(ep->ifindex, 0);
	}
	return pass(EBPFNET_PASS_ARP);
}

/* Sends on a packet of a tracked flow, translated to x first when x differs
 * from the packet: to an endpoint (dst), else out of the route found. */
static __always_inline int fwd_flow(struct __sk_buff *skb, struct ebpfnet_ep_stats *st, struct ethhdr *eth,
				    struct iphdr *ip, const struct flow *f, const struct ebpfnet_ct_key *x,
				    struct ebpfnet_endpoint *dst, const struct bpf_fib_lookup *route, int rc)
{
	if (!ct_key_equal(&f->key, x)) {
		if (nat_apply(skb, f, x) || reparse_ipv4(skb, &eth, &ip))
			return drop(skb, st, EBPFNET_DROP_MALFORMED);
	}
	if (dst) {
		count_rx(dst->ifindex, skb);
		return fwd_to_endpoint(eth, ip, dst);
	}
	return fwd_routed(eth, ip, route, rc);
}

/* Too big for the way out: with DF the node's stack sends the endpoint
 * "fragmentation needed" (the packet is still untranslated); without DF it
 * would fragment and forward untranslated, so it is dropped. */
static __always_inline int too_big(struct __sk_buff *skb, struct iphdr *ip, struct ebpfnet_ep_stats *st)
{
	if (ip->frag_off & bpf_htons(0x4000))
		return pass(EBPFNET_PASS_TOO_BIG);
	return drop(skb, st, EBPFNET_DROP_NAT_UNSUPPORTED);
}

/* What conntrack cannot follow: ICMP errors (passed when they concern a
 * tracked flow, translated when it was), fragments, other protocols. Policy
 * decides each packet; nothing untranslatable leaves with the endpoint's
 * address. */
static __always_inline int untracked_from_endpoint(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
						   struct iphdr *ip, const struct ebpfnet_endpoint *ep,
						   struct ebpfnet_endpoint *dst, struct ebpfnet_ep_stats *st)
{
	__u32 uplink = cfg(EBPFNET_CFG_UPLINK_IFINDEX);
	struct bpf_fib_lookup route;
	struct event_subject who;
	struct icmp_err err;
	__be32 daddr;
	int rc;

	if (!icmp_err_parse(skb, c, ip, &err)) {
		if (!icmp_err_xlate(skb, &err, ip->saddr, ip->daddr, ct_now(), &daddr)) {
			if (reparse_ipv4(skb, &eth, &ip))
				return drop(skb, st, EBPFNET_DROP_MALFORMED);
			dst = bpf_map_lookup_elem(&ep_by_ip, &daddr);
			if (dst) {
				count_rx(dst->ifindex, skb);
				return fwd_to_endpoint(eth, ip, dst);
			}
			rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
			if (!route_found(rc))
				return drop(skb, st, EBPFNET_DROP_NO_ROUTE);
			return fwd_routed(eth, ip, &route, rc);
		}
		if (reparse_ipv4(skb, &eth, &ip))
			return drop(skb, st, EBPFNET_DROP_MALFORMED);
	}
	if (policy_admit(skb, ep->ip, ip->daddr, 0, dst ? dst->ip : 0, 0, ip->protocol, &who) < 0)
		return TC_ACT_SHOT;
	if (dst) {
		count_rx(dst->ifindex, skb);
		return fwd_to_endpoint(eth, ip, dst);
	}
	rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
	if (uplink && route_found(rc) && route.ifindex == uplink && !is_routed(ip->daddr))
		return drop(skb, st, EBPFNET_DROP_NAT_UNSUPPORTED);
	return pass(EBPFNET_PASS_NOT_OURS);
}

/* Traffic that conntrack, NAT or policy concerns: replies of published
 * ports, hairpin connections to a published port, anything leaving through
 * the uplink (masqueraded unless routed), and connections of endpoints with
 * a policy. A connection's first packet passes policy and creates its flow;
 * the rest of it follows the flow. */
static __always_inline int tracked_from_endpoint(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
						 struct iphdr *ip, const struct ebpfnet_endpoint *ep,
						 struct ebpfnet_endpoint *dst, struct ebpfnet_ep_stats *st)
{
	__u32 uplink = cfg(EBPFNET_CFG_UPLINK_IFINDEX);
	const struct ebpfnet_pub_target *pub = NULL;
	struct ebpfnet_pub_target target;
	struct bpf_fib_lookup route;
	struct event_subject who;
	struct ebpfnet_ct_entry *e;
	struct ebpfnet_ct_key x;
	struct flow f;
	__u64 now = ct_now();
	int rc = 0, policed, nat_rc, svc_rc = 0;
	__u32 backend = 0;

	if (flow_of(skb, c, ip, &f) < 0)
		return untracked_from_endpoint(skb, c, eth, ip, ep, dst, st);

	e = ct_lookup_flow(&f, now);
	if (ct_reopen(skb, &e, &f))
		return TC_ACT_SHOT;
	if (e) {
		ct_update(e, &f, skb->len, now);
		x = e->xlate;
		/* dst is already the destination unless it was translated. */
		if (x.daddr != f.key.daddr)
			dst = bpf_map_lookup_elem(&ep_by_ip, &x.daddr);
		if (!dst) {
			rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
			if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
				return too_big(skb, ip, st);
			if (!route_found(rc))
				return drop(skb, st, EBPFNET_DROP_NO_ROUTE);
		}
		return fwd_flow(skb, st, eth, ip, &f, &x, dst, &route, rc);
	}

	if (uplink && f.key.daddr == (__be32)cfg(EBPFNET_CFG_UPLINK_IP) && starts_flow(&f) &&
	    ((pub = published_target(&f)) || (svc_rc = lb_target(&f, 0, now, &target, &backend)))) {
		/* A published port or a node port, reached from this node. */
		if (svc_rc < 0)
			return refuse_no_backend(skb, st);
		if (!pub)
			pub = &target;
		dst = bpf_map_lookup_elem(&ep_by_ip, &pub->ip);
		if (!dst)
			return pass(EBPFNET_PASS_NOT_OURS);
		if (policy_admit(skb, ep->ip, f.key.daddr, f.key.dport, dst->ip, pub->port, f.key.proto, &who) < 0)
			return TC_ACT_SHOT;
		nat_rc = dnat_create(&f, pub, svc_rc ? EBPFNET_CT_F_SERVICE : 0, skb->len, now, &x);
		if (nat_rc)
			return drop(skb, st, nat_failure(nat_rc));
		if (svc_rc)
			lb_count(backend);
	} else if (!dst && (svc_rc = lb_target(&f, f.key.daddr, now, &target, &backend))) {
		/* A service's virtual IP: any packet of a flow conntrack lost
		 * hashes to the backend its first packet went to. Policy sees the
		 * backend as the destination. */
		dst = svc_rc > 0 ? bpf_map_lookup_elem(&ep_by_ip, &target.ip) : NULL;
		if (!dst)
			return refuse_no_backend(skb, st);
		if (policy_admit(skb, ep->ip, dst->ip, target.port, dst->ip, target.port, f.key.proto, &who) < 0)
			return TC_ACT_SHOT;
		nat_rc = dnat_create(&f, &target, EBPFNET_CT_F_SERVICE, skb->len, now, &x);
		if (nat_rc)
			return drop(skb, st, nat_failure(nat_rc));
		lb_count(backend);
	} else if (dst) {
		policed = policy_admit(skb, ep->ip, dst->ip, f.key.dport, dst->ip, f.key.dport, f.key.proto, &who);
		if (policed < 0)
			return TC_ACT_SHOT;
		/* Without a policy on either side nothing needs the flow. */
		if (!policed) {
			count_rx(dst->ifindex, skb);
			return fwd_to_endpoint(eth, ip, dst);
		}
		x = f.key;
		if (ct_track(&f, skb->len, now))
			return drop(skb, st, EBPFNET_DROP_CT_FULL);
	} else {
		rc = route_lookup(skb, ip, skb->ingress_ifindex, &route);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && route.ifindex == uplink)
			return too_big(skb, ip, st);
		policed = policy_admit(skb, ep->ip, f.key.daddr, f.key.dport, 0, 0, f.key.proto, &who);
		if (policed < 0)
			return TC_ACT_SHOT;
		/* The node's stack takes it: its own addresses and other routes. */
		if (!uplink || !route_found(rc) || route.ifindex != uplink)
			return pass(EBPFNET_PASS_NOT_OURS);
		x = f.key;
		if (is_routed(ip->daddr)) {
			/* Replies meet the endpoint's ingress rules unless tracked. */
			if (policed && ct_track(&f, skb->len, now))
				return drop(skb, st, EBPFNET_DROP_CT_FULL);
		} else {
			nat_rc = snat_create(&f, skb->len, now, &x);
			if (nat_rc)
				return drop(skb, st, nat_failure(nat_rc));
		}
	}
	emit_event(skb, EBPFNET_EVENT_FLOW, 0, &who);
	return fwd_flow(skb, st, eth, ip, &f, &x, dst, &route, rc);
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
				       const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	__u32 uplink = cfg(EBPFNET_CFG_UPLINK_IFINDEX);
	const struct ebpfnet_tunnel_peer *peer;
	struct ebpfnet_endpoint *dst;
	struct iphdr *ip = parse_ipv4(c);

	if (!ip)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	if (ip->saddr != ep->ip)
		return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);
	TRACE(EBPFNET_TRACE_ANTISPOOF, 0, 0, 0, 0);

	count_tx(st, skb);
	/* An expiring TTL goes to the stack, which answers with time-exceeded.
	 * The gateway is the node itself, which policy does not restrict. */
	if (ip->ttl <= 1 || ip->daddr == gateway_ip)
		return pass(ip->ttl <= 1 ? EBPFNET_PASS_TTL : EBPFNET_PASS_GATEWAY);
	dst = bpf_map_lookup_elem(&ep_by_ip, &ip->daddr);
	/* Another node's pool, through the overlay (local traffic never looks). */
	if (!dst && (peer = tunnel_peer_of(ip->daddr)))
		return to_tunnel(skb, c, ip, ep, peer, st);
	if ((uplink && (!dst || cfg(EBPFNET_CFG_PUBLISHED))) || cfg(EBPFNET_CFG_SERVICES) || policy_of(ep->ip) ||
	    (dst && policy_of(dst->ip)))
		return tracked_from_endpoint(skb, c, eth, ip, ep, dst, st);
	if (!dst)
		return pass(EBPFNET_PASS_NOT_OURS);
	count_rx(dst->ifindex, skb);
	return fwd_to_endpoint(eth, ip, dst);
}

/* IPv6 neighbour discovery from an endpoint (router advertisements and
 * redirects never get here). Only a message straight after the IPv6
 * header, with hop limit 255 (RFC 4861: it never crossed a router), is
 * neighbour discovery. A solicitation for the gateway
 * is answered here; the rest of the endpoint's own neighbour discovery goes
 * to the node's stack once it claims nothing but the endpoint's address
 * and MAC. */
static __always_inline int handle_nd(struct __sk_buff *skb, __u8 type, struct ipv6hdr *ip6,
				     const struct l4_info6 *l4, const struct in6_addr *own, const struct in6_addr *gw,
				     const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	struct in6_addr target;
	struct nd_opt_lla opt;

	if (type == ND_ROUTER_SOLICIT) {
		/* The node sends no advertisements: its stack ignores it. */
		count_tx(st, skb);
		return pass(EBPFNET_PASS_LINK);
	}
	if (!l4->direct || ip6->hop_limit != 255)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	if (bpf_skb_load_bytes(skb, l4->offset + offsetof(struct nd_msg, target), &target, sizeof(target)))
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	/* The one option an endpoint's kernel sends: its link-layer address. */
	if (!bpf_skb_load_bytes(skb, l4->offset + sizeof(struct nd_msg), &opt, sizeof(opt)) &&
	    (opt.type == ND_OPT_SOURCE_LL || opt.type == ND_OPT_TARGET_LL) && !mac_equal(opt.mac, ep->mac))
		return drop(skb, st, EBPFNET_DROP_SPOOFED_MAC);
	if (type == ND_NEIGHBOR_ADVERT) {
		/* An endpoint advertises its own address only (or a link-local
		 * one of its own, never the gateway's). */
		if (!in6_equal(&target, own) && (!in6_is_link_local(&target) || in6_is_gateway_ll(&target)))
			return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);
		count_tx(st, skb);
		return pass(EBPFNET_PASS_LINK);
	}
	/* Duplicate address detection (source ::) probes the endpoint's own
	 * address only: probing the gateway's is a claim on it. */
	if (in6_is_unspecified(&ip6->saddr) && !in6_equal(&target, own))
		return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);
	count_tx(st, skb);
	if (!in6_is_gateway(&target, gw) || in6_is_unspecified(&ip6->saddr))
		return pass(EBPFNET_PASS_LINK);
	/* The solicitation's source is read before the frame is rewritten. */
	if (nd_make_advert(skb, &target, &ip6->saddr, ep->mac, ep->node_mac))
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	count_rx(ep->ifindex, skb);
	TRACE(EBPFNET_TRACE_ND_REPLY, 0, ep->ifindex, 0, 0);
	return bpf_redirect(ep->ifindex, 0);
}

/* IPv6 policy is not built yet: an endpoint with a policy is not left open
 * over IPv6. Only a direction with no rules whose default is allow lets
 * IPv6 through; anything else drops it as the default would. Returns 0, or
 * -1 when it dropped the packet. */
static __always_inline int policy_admit6(struct __sk_buff *skb, const struct ebpfnet_endpoint *ep,
					 const struct ebpfnet_endpoint *dst, struct ebpfnet_ep_stats *st)
{
	const struct ebpfnet_ep_policy *p = policy_of(ep->ip);
	struct event_subject who = {.endpoint = ep->ip, .dir = EBPFNET_EGRESS};

	if (p && (p->dir[EBPFNET_EGRESS].id || p->dir[EBPFNET_EGRESS].default_action != EBPFNET_POLICY_ALLOW)) {
		drop_for(skb, st, EBPFNET_DROP_POLICY_DEFAULT, &who);
		return -1;
	}
	p = dst ? policy_of(dst->ip) : NULL;
	if (p && (p->dir[EBPFNET_INGRESS].id || p->dir[EBPFNET_INGRESS].default_action != EBPFNET_POLICY_ALLOW)) {
		who.endpoint = dst->ip;
		who.dir = EBPFNET_INGRESS;
		drop_for(skb, ep_stats_of(dst->ifindex), EBPFNET_DROP_POLICY_DEFAULT, &who);
		return -1;
	}
	return 0;
}

/* IPv6 of a dual-stack endpoint. Forwarded only between the node's own
 * endpoints, by bpf_redirect_peer as IPv4 is; the gateway and the link
 * (neighbour discovery, link-local, multicast) are the node's stack's; IPv6
 * to anywhere else is dropped and counted until IPv6 masquerade exists, so
 * nothing leaves with an endpoint's address. */
static __always_inline int handle_ipv6(struct __sk_buff *skb, struct cursor *c, struct ethhdr *eth,
				       const struct ebpfnet_endpoint *ep, struct ebpfnet_ep_stats *st)
{
	__u32 ifindex = ep->ifindex;
	const struct ebpfnet_in6 *own6 = bpf_map_lookup_elem(&ep_ip6, &ifindex);
	const struct in6_addr *own;
	struct ebpfnet_endpoint *dst;
	struct in6_addr gw;
	struct l4_info6 l4;
	struct ipv6hdr *ip6;
	__u8 icmp6_type = 0;  /* 0: not ICMPv6, or a fragment without its header */
	int on_link;

	if (!own6)
		return drop(skb, st, EBPFNET_DROP_UNSUPPORTED_L3);
	ip6 = parse_ipv6(c, skb->len);
	if (!ip6)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	own = (const struct in6_addr *)own6->addr;
	gateway6(&gw);
	on_link = in6_is_link_local(&ip6->daddr) || in6_is_multicast(&ip6->daddr);
	/* The endpoint's address; :: only to probe it (checked in handle_nd);
	 * a link-local one of its own for traffic that stays on the link. */
	if (ipv6_l4(skb, ip6, &l4))
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	/* A non-first fragment carries no ICMPv6 header to judge. */
	if (l4.proto == NEXTHDR_ICMPV6 && !l4.fragment &&
	    bpf_skb_load_bytes(skb, l4.offset, &icmp6_type, 1))
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	/* A router's messages, from whatever source (a redirect comes from a
	 * link-local one): counted as what they are. */
	if (icmp6_type == ND_ROUTER_ADVERT || icmp6_type == ND_REDIRECT)
		return drop(skb, st, EBPFNET_DROP_ND_ROUTER);
	if (!in6_equal(&ip6->saddr, own) && !in6_is_unspecified(&ip6->saddr) &&
	    !(on_link && in6_is_link_local(&ip6->saddr) && !in6_is_gateway_ll(&ip6->saddr)))
		return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);
	if (icmp6_type >= ND_ROUTER_SOLICIT && icmp6_type <= ND_NEIGHBOR_ADVERT)
		return handle_nd(skb, icmp6_type, ip6, &l4, own, &gw, ep, st);
	/* :: sends only on the link (MLD reports of a host without a
	 * link-local address, RFC 3590). */
	if (in6_is_unspecified(&ip6->saddr) && !on_link)
		return drop(skb, st, EBPFNET_DROP_SPOOFED_IP);
	TRACE(EBPFNET_TRACE_ANTISPOOF, 0, 0, 0, 0);
	count_tx(st, skb);
	if (on_link)
		return pass(EBPFNET_PASS_LINK);
	if (in6_equal(&ip6->daddr, &gw))
		return pass(EBPFNET_PASS_GATEWAY);
	dst = bpf_map_lookup_elem(&ep_by_ip6, &ip6->daddr);
	if (!dst)
		return drop(skb, st, EBPFNET_DROP_IPV6_NO_WAY_OUT);
	if (ip6->hop_limit <= 1)
		return pass(EBPFNET_PASS_TTL);
	if (policy_admit6(skb, ep, dst, st) < 0)
		return TC_ACT_SHOT;
	count_rx(dst->ifindex, skb);
	TRACE(EBPFNET_TRACE_TO_ENDPOINT, 0, dst->ifindex, dst->ip, 0);
	ip6->hop_limit--;
	mac_copy(eth->h_dest, dst->mac);
	mac_copy(eth->h_source, dst->node_mac);
	return bpf_redirect_peer(dst->ifindex, 0);
}

SEC("tc")
int from_endpoint(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ingress_ifindex;
	struct ebpfnet_endpoint *ep = bpf_map_lookup_elem(&ep_by_ifindex, &ifindex);
	struct ebpfnet_ep_stats *st = ep_stats_of(ifindex);
	struct cursor c;
	struct ethhdr *eth;

	if (!ep)
		return drop(skb, st, EBPFNET_DROP_UNKNOWN_ENDPOINT);
	TRACE(EBPFNET_TRACE_SOURCE, 0, ifindex, ep->ip, 0);

	cursor_init(&c, skb);
	eth = parse_eth(&c);
	if (!eth)
		return drop(skb, st, EBPFNET_DROP_MALFORMED);
	if (!mac_equal(eth->h_source, ep->mac))
		return drop(skb, st, EBPFNET_DROP_SPOOFED_MAC);

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_ARP):
		return handle_arp(skb, &c, eth, ep, st);
	case bpf_htons(ETH_P_IP):
		return handle_ipv4(skb, &c, eth, ep, st);
	case bpf_htons(ETH_P_IPV6):
		return handle_ipv6(skb, &c, eth, ep, st);
	default:
		return drop(skb, st, EBPFNET_DROP_UNSUPPORTED_L3);
	}
}

char LICENSE[] SEC("license") = "GPL";
