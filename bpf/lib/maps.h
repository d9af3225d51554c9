/* The maps of a node's datapath. Every program object declares the same maps;
 * the controller pins them once and hands the pinned ones to each object it
 * loads, so all programs of a node share one set. */
#ifndef EBPFNET_BPF_MAPS_H
#define EBPFNET_BPF_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_ENDPOINTS);
	__type(key, __be32);
	__type(value, struct ebpfnet_endpoint);
} ep_by_ip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct ebpfnet_endpoint);
} ep_by_ifindex SEC(".maps");

/* Dual-stack endpoints (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_ENDPOINTS);
	__type(key, struct ebpfnet_in6);
	__type(value, struct ebpfnet_endpoint);
} ep_by_ip6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct ebpfnet_in6);
} ep_ip6 SEC(".maps");

/* Created by the controller with the endpoint: the datapath only updates. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, EBPFNET_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct ebpfnet_ep_stats);
} ep_stats SEC(".maps");

/* Drops that belong to no endpoint, by reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EBPFNET_DROP_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} drop_stats SEC(".maps");

/* Node-wide settings, one u64 per enum ebpfnet_cfg_slot (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EBPFNET_CFG_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} config SEC(".maps");

/* Sized by the controller before load (attach --ct-size). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ebpfnet_ct_key);
	__type(value, struct ebpfnet_ct_entry);
} ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_PUBLISHED);
	__type(key, struct ebpfnet_pub_key);
	__type(value, struct ebpfnet_pub_target);
} published SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ebpfnet_prefix);
	__type(value, __u8);
} routed SEC(".maps");

/* Endpoints with a policy (key: the endpoint's IPv4). One update switches
 * both directions of an endpoint to a new rule set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_ENDPOINTS);
	__type(key, __be32);
	__type(value, struct ebpfnet_ep_policy);
} ep_policy SEC(".maps");

/* Peer address -> class, per rule set. Sized for old and new sets side by
 * side while a policy is replaced. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ebpfnet_policy_cidr_key);
	__type(value, __u32);
} policy_cidr SEC(".maps");

/* Class, protocol and destination port -> verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ebpfnet_policy_port_key);
	__type(value, struct ebpfnet_policy_verdict);
} policy_port SEC(".maps");

/* Deadlines kept by listening monitors; events only flow before them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ebpfnet_monitor);
} monitor SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* The uplink prefilter's deny lists and their counters (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_PREFILTER);
	__type(key, __be32);
	__type(value, __u8);
} prefilter_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EBPFNET_MAX_PREFILTER);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ebpfnet_prefix);
	__type(value, __u32);
} prefilter_cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2 * EBPFNET_MAX_PREFILTER);
	__type(key, struct ebpfnet_prefix);
	__type(value, struct ebpfnet_prefilter_stats);
} prefilter_stats SEC(".maps");

/* Services (abi.h): what clients connect to, each service's Maglev table of
 * active backends, and where each backend is. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_SERVICES);
	__type(key, struct ebpfnet_svc_key);
	__type(value, struct ebpfnet_svc);
} svc SEC(".maps");

/* Written whole by the controller, then swapped in by one update of maglev. */
struct maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EBPFNET_MAGLEV_SIZE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, EBPFNET_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct maglev_table);
} maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ebpfnet_backend);
} backends SEC(".maps");

/* Created by the controller with the backend: the datapath only updates. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, EBPFNET_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ebpfnet_backend_stats);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ebpfnet_affinity_key);
	__type(value, struct ebpfnet_affinity);
} svc_affinity SEC(".maps");

/* Connect-time balancing: the endpoints' namespaces, and per socket the
 * service each backend it was sent to stands for. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFNET_MAX_ENDPOINTS);
	__type(key, __u64);
	__type(value, __be32);
} sock_netns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ebpfnet_sock_revnat_key);
	__type(value, struct ebpfnet_sock_revnat);
} sock_revnat SEC(".maps");

/* The overlay: remote pool -> the node owning it (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ebpfnet_prefix);
	__type(value, struct ebpfnet_tunnel_peer);
} tunnel SEC(".maps");

/* An array lookup with a constant key: the verifier inlines it into a few
 * instructions, so reading a slot per use costs next to nothing. */
static __always_inline __u64 cfg(enum ebpfnet_cfg_slot slot)
{
	__u32 key = slot;
	__u64 *v = bpf_map_lookup_elem(&config, &key);

	return v ? *v : 0;
}

#endif
