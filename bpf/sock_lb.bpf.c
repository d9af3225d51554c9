// SPDX-License-Identifier: GPL-2.0
/* Connect-time service balancing: cgroup socket hooks that give a socket of
 * one of the node's endpoints a backend when it connects (TCP, connected
 * UDP) or sends (unconnected UDP), so no packet of the flow is translated.
 * The application keeps seeing the service address: getpeername and the
 * source of UDP replies are rewritten back. The hooks sit at the cgroup
 * root and so run for every socket on the machine; each leaves alone any
 * socket whose network namespace is not one of this node's endpoints. */
#include "lib/common.h"
#include "lib/maps.h"
/* Only listening() and the ring buffer are wanted of events.h here, not its
 * emitters for packets. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#include "lib/events.h"
#pragma clang diagnostic pop
#include "lib/lb.h"

/* From errno.h, which a BPF build cannot include. */
#define ECONNREFUSED 111

#define SOCK_ALLOW 1
#define SOCK_DENY 0

/* The endpoint's address when the socket is in an endpoint's namespace. */
static __always_inline __be32 *endpoint_of(struct bpf_sock_addr *ctx)
{
	__u64 netns = bpf_get_netns_cookie(ctx);

	return bpf_map_lookup_elem(&sock_netns, &netns);
}

/* A connect refused for want of a backend: counted for the endpoint and
 * told to a listening monitor, as a refusal per packet is. */
static __always_inline void refused(struct bpf_sock_addr *ctx, __be32 client)
{
	struct ebpfnet_endpoint *ep = bpf_map_lookup_elem(&ep_by_ip, &client);
	struct ebpfnet_ep_stats *st = ep ? bpf_map_lookup_elem(&ep_stats, &ep->ifindex) : NULL;
	struct ebpfnet_event ev = {};

	if (st)
		st->drops[EBPFNET_DROP_NO_BACKEND]++;
	if (!listening(EBPFNET_EVENT_DROP))
		return;
	ev.ts_ns = bpf_ktime_get_ns();
	ev.tuple.saddr = client;
	ev.tuple.daddr = ctx->user_ip4;
	ev.tuple.dport = (__be16)ctx->user_port;
	ev.tuple.proto = ctx->protocol;
	ev.ifindex = ep ? ep->ifindex : 0;
	ev.endpoint = client;
	ev.type = EBPFNET_EVENT_DROP;
	ev.reason = EBPFNET_DROP_NO_BACKEND;
	bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
}

/* Points a socket addressing a service at one of its backends. With no
 * active backend the call fails with ECONNREFUSED, as a closed port would. */
static __always_inline int balance(struct bpf_sock_addr *ctx)
{
	struct ebpfnet_sock_revnat_key rk = {};
	struct ebpfnet_sock_revnat rv = {}, *had;
	struct ebpfnet_backend *be;
	struct ebpfnet_svc *s;
	__be32 *client;
	__u64 cookie;
	__u32 id = 0;

	/* 0.0.0.0 is this host, never a virtual IP (node ports key on 0). */
	if (!ctx->user_ip4)
		return SOCK_ALLOW;
	s = svc_of(ctx->user_ip4, (__be16)ctx->user_port, ctx->protocol);
	if (!s)
		return SOCK_ALLOW;
	client = endpoint_of(ctx);
	if (!client)
		return SOCK_ALLOW;
	/* Hashing the socket keeps an unconnected UDP socket on one backend
	 * while the table stands; sockets spread as their cookies do. */
	cookie = bpf_get_socket_cookie(ctx);
	be = lb_pick(s, *client, lb_mix(lb_mix(0, (__u32)cookie), (__u32)(cookie >> 32)), bpf_ktime_get_ns(), &id);
	if (!be) {
		refused(ctx, *client);
		bpf_set_retval(-ECONNREFUSED);
		return SOCK_DENY;
	}
	rk.cookie = cookie;
	rk.addr = be->ip;
	rk.port = be->port;
	rv.addr = ctx->user_ip4;
	rv.port = (__be16)ctx->user_port;
	had = bpf_map_lookup_elem(&sock_revnat, &rk);
	/* A datagram after the first of a socket is no new connection. */
	if (!had || had->addr != rv.addr || had->port != rv.port) {
		bpf_map_update_elem(&sock_revnat, &rk, &rv, BPF_ANY);
		lb_count(id);
	}
	ctx->user_ip4 = be->ip;
	ctx->user_port = be->port;
	return SOCK_ALLOW;
}

/* Shows a backend a socket was sent to as the service it stands for. */
static __always_inline int reverse(struct bpf_sock_addr *ctx)
{
	struct ebpfnet_sock_revnat_key rk = {};
	struct ebpfnet_sock_revnat *rv;

	if (!cfg(EBPFNET_CFG_SERVICES) || !endpoint_of(ctx))
		return SOCK_ALLOW;
	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.addr = ctx->user_ip4;
	rk.port = (__be16)ctx->user_port;
	rv = bpf_map_lookup_elem(&sock_revnat, &rk);
	if (rv) {
		ctx->user_ip4 = rv->addr;
		ctx->user_port = rv->port;
	}
	return SOCK_ALLOW;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return balance(ctx);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return balance(ctx);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return reverse(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeer4(struct bpf_sock_addr *ctx)
{
	return reverse(ctx);
}

char LICENSE[] SEC("license") = "GPL";
