/* ARP responder for the gateway address. There is no bridge and no device
 * owning the gateway on the endpoint's link, so the datapath answers in its
 * place with the node-side veth's MAC. */
#ifndef EBPFNET_BPF_ARP_H
#define EBPFNET_BPF_ARP_H

#include "common.h"
#include "eth.h"
#include "parse.h"

/* Turns a request into its reply in place: the answer comes from
 * (node_mac, gateway), addressed to the requester. */
static __always_inline void arp_make_reply(struct ethhdr *eth, struct arp_packet *arp,
					   const __u8 *node_mac, __be32 gateway)
{
	mac_copy(eth->h_dest, arp->body.sha);
	mac_copy(eth->h_source, node_mac);
	arp->hdr.ar_op = bpf_htons(ARPOP_REPLY);
	mac_copy(arp->body.tha, arp->body.sha);
	arp->body.tpa = arp->body.spa;
	mac_copy(arp->body.sha, node_mac);
	arp->body.spa = gateway;
}

#endif
