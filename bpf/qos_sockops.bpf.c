// SPDX-License-Identifier: LGPL-2.1-or-later OR BSD-2-Clause
/* TCP round-trip time, retransmissions and RTO events per remote address,
 * from a sock_ops program on a cgroup v2: only sockets created by processes
 * in that cgroup (or below) are seen. */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "qosbpf-abi.h"

#define CB_FLAGS (BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG)

/* Set by the loader before load; 0 disables RTT events. */
const volatile __u64 rtt_event_interval_ns = 0;

/* Ring buffer records lost because user space did not keep up. */
__u64 events_dropped = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, QOSBPF_MAX_REMOTES);
	__type(key, struct qosbpf_tcp_key);
	__type(value, struct qosbpf_tcp_value);
} qos_tcp_stats SEC(".maps");

/* tp->segs_out is cumulative per socket; remembering what we already added
 * lets several sockets to one remote sum up without double counting. */
struct sock_state {
	__u32 segs_out;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_state);
} qos_sock_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} qos_tcp_events SEC(".maps");

static __always_inline void make_key(const struct bpf_sock_ops *skops, struct qosbpf_tcp_key *key)
{
	if (skops->family == QOSBPF_AF_INET) {
		key->family = QOSBPF_AF_INET;
		key->addr[0] = skops->remote_ip4;
		return;
	}

	key->family = QOSBPF_AF_INET6;
	key->addr[0] = skops->remote_ip6[0];
	key->addr[1] = skops->remote_ip6[1];
	key->addr[2] = skops->remote_ip6[2];
	key->addr[3] = skops->remote_ip6[3];

	/* A dual-stack socket talking IPv4 reports ::ffff:a.b.c.d; keying it
	 * as IPv4 gives one entry per peer whatever socket type reached it. */
	if (key->addr[0] == 0 && key->addr[1] == 0 && key->addr[2] == bpf_htonl(0xffff)) {
		key->family = QOSBPF_AF_INET;
		key->addr[0] = key->addr[3];
		key->addr[2] = 0;
		key->addr[3] = 0;
	}
}

static __always_inline struct qosbpf_tcp_value *get_value(const struct qosbpf_tcp_key *key)
{
	struct qosbpf_tcp_value *v, zero = {};

	v = bpf_map_lookup_elem(&qos_tcp_stats, key);
	if (v)
		return v;
	/* NOEXIST: another CPU may have created it meanwhile; then we use
	 * theirs instead of resetting it. */
	(void) bpf_map_update_elem(&qos_tcp_stats, key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&qos_tcp_stats, key);
}

static __always_inline void account_segs_out(struct bpf_sock_ops *skops, struct qosbpf_tcp_value *v)
{
	struct bpf_sock *sk = skops->sk;
	struct sock_state *st;
	__u32 segs;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&qos_sock_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	segs = skops->segs_out;
	/* Unsigned difference: correct across the 32-bit wrap. */
	__sync_fetch_and_add(&v->segs_out, (__u32) (segs - st->segs_out));
	st->segs_out = segs;
}

static __always_inline void emit(const struct bpf_sock_ops *skops, const struct qosbpf_tcp_key *key,
				 __u32 type, __u32 value, __u64 now)
{
	struct qosbpf_tcp_event *e;

	e = bpf_ringbuf_reserve(&qos_tcp_events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&events_dropped, 1);
		return;
	}
	e->timestamp_ns = now;
	e->type = type;
	e->family = key->family;
	e->addr[0] = key->addr[0];
	e->addr[1] = key->addr[1];
	e->addr[2] = key->addr[2];
	e->addr[3] = key->addr[3];
	/* The port is the high half of a network-order word here. */
	e->remote_port = (__u16) bpf_ntohl(skops->remote_port);
	e->local_port = skops->local_port;
	e->srtt_x8 = skops->srtt_us;
	e->value = value;
	e->_pad = 0;
	bpf_ringbuf_submit(e, 0);
}

SEC("sockops")
int qos_sockops(struct bpf_sock_ops *skops)
{
	struct qosbpf_tcp_key key = {};
	struct qosbpf_tcp_value *v;
	__u32 op = skops->op;
	__u64 now;

	switch (op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | CB_FLAGS);
		break;
	case BPF_SOCK_OPS_RTT_CB:
	case BPF_SOCK_OPS_RETRANS_CB:
	case BPF_SOCK_OPS_RTO_CB:
		break;
	default:
		return 1;
	}

	if (skops->family != QOSBPF_AF_INET && skops->family != QOSBPF_AF_INET6)
		return 1;

	make_key(skops, &key);
	v = get_value(&key);
	if (!v)
		return 1;

	now = bpf_ktime_get_ns();
	v->last_update_ns = now;

	switch (op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		/* Only to start the socket's segs_out baseline: the handshake
		 * segments count as sent. */
		account_segs_out(skops, v);
		break;

	case BPF_SOCK_OPS_RTT_CB:
		v->srtt_x8 = skops->srtt_us;
		__sync_fetch_and_add(&v->rtt_samples, 1);
		account_segs_out(skops, v);
		if (rtt_event_interval_ns > 0 && now - v->last_rtt_event_ns >= rtt_event_interval_ns) {
			/* Racy between CPUs by design: an extra sample now and
			 * then is cheaper than a lock. */
			v->last_rtt_event_ns = now;
			emit(skops, &key, QOSBPF_EVENT_RTT, 0, now);
		}
		break;

	case BPF_SOCK_OPS_RETRANS_CB:
		/* args[2] is tcp_transmit_skb()'s result: a failed attempt
		 * sent nothing, so it is no retransmission on the wire. */
		if (skops->args[2] != 0)
			break;
		__sync_fetch_and_add(&v->retrans, skops->args[1]);
		emit(skops, &key, QOSBPF_EVENT_RETRANS, skops->args[1], now);
		break;

	case BPF_SOCK_OPS_RTO_CB:
		__sync_fetch_and_add(&v->rto, 1);
		emit(skops, &key, QOSBPF_EVENT_RTO, skops->args[0], now);
		break;
	}

	return 1;
}

/* The kernel's name for a GPL-compatible licence; the source is dual
 * licensed as above. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
