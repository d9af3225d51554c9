// SPDX-License-Identifier: GPL-2.0
/* A program the verifier must refuse (packet read without a bounds check),
 * for the test that a rejection is reported as one, with the verifier's words. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int unchecked_read(struct __sk_buff *skb)
{
	unsigned char *data = (unsigned char *)(long)skb->data;

	return data[20];
}

char LICENSE[] SEC("license") = "GPL";
