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
	__uint(max_entries, EBPFNET_DROP_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drop_stats SEC(".maps");

#endif
