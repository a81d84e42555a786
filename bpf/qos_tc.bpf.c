// SPDX-License-Identifier: LGPL-2.1-or-later OR BSD-2-Clause
/* Per-interface traffic counters for tc clsact ingress and egress.
 *
 * One object serves every watched interface: the loader creates the
 * interface's entry when it attaches, so an interface we were not asked to
 * watch never grows the map, and the programs only look up. */

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "qosbpf-abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, QOSBPF_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct qosbpf_tc_value);
} qos_tc_counters SEC(".maps");

static __always_inline __u64 skb_segments(const struct __sk_buff *skb)
{
	return skb->gso_segs > 1 ? skb->gso_segs : 1;
}

/* Plain adds on the per-CPU value: tc runs with bottom halves disabled, so
 * no other update of this CPU's copy can interleave.
 *
 * TC_ACT_UNSPEC, not TC_ACT_OK: in direct-action mode UNSPEC means "no
 * verdict", so the filters after ours still run and the packet takes the
 * path it would have taken without us. TC_ACT_OK would end classification. */

SEC("tc")
int qos_tc_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct qosbpf_tc_value *v;

	v = bpf_map_lookup_elem(&qos_tc_counters, &ifindex);
	if (v) {
		v->rx_packets += skb_segments(skb);
		v->rx_bytes += skb->len;
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int qos_tc_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct qosbpf_tc_value *v;

	v = bpf_map_lookup_elem(&qos_tc_counters, &ifindex);
	if (v) {
		v->tx_packets += skb_segments(skb);
		v->tx_bytes += skb->len;
	}
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
