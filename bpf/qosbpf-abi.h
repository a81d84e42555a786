/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Map layouts shared by the eBPF programs and their loader. Only fixed-width
 * UAPI types: this header is compiled for -target bpf as well as for the
 * host, and both sides must agree byte for byte. */

#include <linux/types.h>

/* Interfaces that can be watched at the same time; sizes the counter map. */
#define QOSBPF_MAX_IFACES 256

/* Remote addresses whose TCP statistics are kept; the least recently
 * updated one is evicted when the map is full. */
#define QOSBPF_MAX_REMOTES 4096

/* Address families as in <sys/socket.h>, which a BPF object cannot include. */
#define QOSBPF_AF_INET 2
#define QOSBPF_AF_INET6 10

/* Per-CPU value of the counter map, keyed by ifindex (__u32). Packets count
 * the segments of a GSO/GRO super-packet (gso_segs), bytes are skb->len as
 * tc sees it: the L2 frame without FCS, headers of a super-packet once. */
struct qosbpf_tc_value {
        __u64 rx_packets;
        __u64 rx_bytes;
        __u64 tx_packets;
        __u64 tx_bytes;
};

/* Key of the TCP statistics map. IPv4 (also v4-mapped IPv6) is stored as
 * family QOSBPF_AF_INET with the address in addr[0]; the rest is zero, so a
 * key can be built and compared with memcmp(). Network byte order. */
struct qosbpf_tcp_key {
        __u32 family;
        __u32 addr[4];
};

struct qosbpf_tcp_value {
        __u64 last_update_ns;     /* bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC */
        __u64 last_rtt_event_ns;  /* rate limit of RTT events */
        __u64 rtt_samples;
        __u64 segs_out;           /* sum over sockets of deltas of tp->segs_out */
        __u64 retrans;            /* retransmitted segments */
        __u64 rto;                /* retransmission timeouts */
        __u32 srtt_x8;            /* last tp->srtt_us: microseconds << 3 */
        __u32 _pad;
};

enum {
        QOSBPF_EVENT_RETRANS = 1,
        QOSBPF_EVENT_RTO = 2,
        QOSBPF_EVENT_RTT = 3,
};

/* Ring buffer record. */
struct qosbpf_tcp_event {
        __u64 timestamp_ns;       /* CLOCK_MONOTONIC */
        __u32 type;               /* QOSBPF_EVENT_* */
        __u32 family;
        __u32 addr[4];            /* as in struct qosbpf_tcp_key */
        __u16 remote_port;        /* host byte order */
        __u16 local_port;         /* host byte order */
        __u32 srtt_x8;
        __u32 value;              /* RETRANS: segments; RTO: icsk_retransmits */
        __u32 _pad;
};
