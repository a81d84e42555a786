/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Loader for the QoS eBPF programs: tc clsact traffic counters per
 * interface and a sock_ops program on a cgroup v2 for TCP RTT,
 * retransmissions and RTOs per remote address, with events through a ring
 * buffer dispatched on sd-event.
 *
 * Library-like: logs at debug level only (libbpf's own output included) and
 * returns negative errno; the daemon decides what to tell the user. Whatever
 * a qosbpf object attached, qosbpf_free() detaches. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "qosbpf-abi.h"

/* The tc filters we install carry this handle and priority on both the
 * ingress and egress hook, so a restarted agent finds the ones a crashed run
 * left behind ("rt" in ASCII). */
#define QOSBPF_TC_HANDLE 0x7274U
#define QOSBPF_TC_PRIORITY 0x7274U

/* Program names as the kernel reports them; stale cleanup removes a filter
 * at our handle and priority only when it runs one of these. */
#define QOSBPF_TC_INGRESS_PROG "qos_tc_ingress"
#define QOSBPF_TC_EGRESS_PROG "qos_tc_egress"

typedef struct qosbpf qosbpf;

typedef struct qosbpf_options {
        /* At most one RTT event per remote address per interval; 0 sends
         * none (RTT is still in the statistics). */
        uint64_t rtt_event_interval_usec;
} qosbpf_options;

typedef struct qosbpf_counters {
        uint64_t rx_packets;
        uint64_t rx_bytes;
        uint64_t tx_packets;
        uint64_t tx_bytes;
} qosbpf_counters;

/* AF_INET or AF_INET6; IPv4-mapped IPv6 addresses are reported as AF_INET
 * and may be looked up either way. */
typedef struct qosbpf_addr {
        int family;
        union {
                struct in_addr in;
                struct in6_addr in6;
        };
} qosbpf_addr;

typedef struct qosbpf_tcp_stats {
        qosbpf_addr remote;
        uint32_t srtt_us;          /* last smoothed RTT, rounded up */
        uint64_t rtt_samples;
        uint64_t segs_out;         /* segments sent, retransmissions included */
        uint64_t retrans;          /* segments retransmitted */
        uint64_t rto;              /* retransmission timeouts */
        uint64_t last_update_usec; /* CLOCK_MONOTONIC */
} qosbpf_tcp_stats;

typedef struct qosbpf_event {
        int type;                  /* QOSBPF_EVENT_RETRANS, _RTO, _RTT */
        qosbpf_addr remote;
        uint16_t remote_port;
        uint16_t local_port;
        uint32_t srtt_us;
        /* RETRANS: segments retransmitted; RTO: consecutive timeouts of the
         * socket so far; RTT: 0. */
        uint32_t value;
        uint64_t timestamp_usec;   /* CLOCK_MONOTONIC */
} qosbpf_event;

typedef int (*qosbpf_event_handler_t)(qosbpf *q, const qosbpf_event *event, void *userdata);
typedef int (*qosbpf_tcp_stats_func_t)(const qosbpf_tcp_stats *stats, void *userdata);

/* Whether this process may load and attach the programs, without leaving
 * anything behind: 0 if so, -EPERM/-EACCES when not permitted, -ENOSYS
 * without the bpf() system call, -EOPNOTSUPP when the kernel lacks a needed
 * program or map type. */
int qosbpf_probe(void);

/* Loads both objects into the kernel; attaches nothing. Same errors as
 * qosbpf_probe(), plus -ENOMEM. */
int qosbpf_new(const qosbpf_options *opts, qosbpf **ret);
qosbpf *qosbpf_free(qosbpf *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(qosbpf *, qosbpf_free);
#define _cleanup_qosbpf_ _cleanup_(qosbpf_freep)

/* Adds ingress and egress filters (creating the clsact qdisc if there is
 * none) and starts the interface's counters from zero. A stale filter of
 * ours in the way is removed first. 0 if already attached; -E2BIG beyond
 * QOSBPF_MAX_IFACES; -EEXIST when somebody else's filter holds our handle
 * and priority; -ENODEV for an unknown ifindex. */
int qosbpf_attach_tc(qosbpf *q, int ifindex);
/* Removes our filters, and the clsact qdisc if we created it and nothing
 * else uses it. -ENOENT if not attached through q. A vanished interface is
 * not an error. */
int qosbpf_detach_tc(qosbpf *q, int ifindex);
bool qosbpf_tc_is_attached(qosbpf *q, int ifindex);
/* Removes filters left by a crashed run: those at our handle and priority
 * that run one of our programs, and nothing else. Needs no loaded object.
 * Returns how many were removed; 0 also when there is no clsact qdisc.
 * Also removes the filters of another live agent: one agent per host. */
int qosbpf_cleanup_stale(int ifindex);
/* Sums the per-CPU counters since qosbpf_attach_tc(). -ENOENT if the
 * interface is not attached. */
int qosbpf_read_counters(qosbpf *q, int ifindex, qosbpf_counters *ret);

/* The cgroup v2 directory of the calling process, e.g.
 * "/sys/fs/cgroup/unified/system.slice/rethink-agent.service".
 * -ENOMEDIUM when no cgroup v2 hierarchy is mounted. */
int qosbpf_default_cgroup(char **ret);
/* Attaches the sock_ops program to a cgroup v2 directory (NULL: our own
 * cgroup) as a bpf_link. -ENOENT if missing, -EMEDIUMTYPE if not cgroup v2,
 * -EBUSY if already attached. */
int qosbpf_attach_sockops(qosbpf *q, const char *cgroup_path);
int qosbpf_detach_sockops(qosbpf *q);
const char *qosbpf_sockops_cgroup(qosbpf *q);

/* -ENOENT when nothing is known about that address. */
int qosbpf_tcp_stats_lookup(qosbpf *q, const qosbpf_addr *remote, qosbpf_tcp_stats *ret);
/* Calls f for every remote address; a negative return of f stops the walk
 * and is returned. */
int qosbpf_tcp_stats_foreach(qosbpf *q, qosbpf_tcp_stats_func_t f, void *userdata);
/* Retransmitted per thousand segments sent; 0 when none was sent. */
unsigned qosbpf_tcp_stats_retrans_per_mille(const qosbpf_tcp_stats *s);

/* Dispatches ring buffer events to handler from the event loop. A negative
 * return of the handler postpones the remaining events to the next
 * iteration of the loop; the source stays enabled. -EBUSY if already
 * attached. */
int qosbpf_attach_event(qosbpf *q, sd_event *e, qosbpf_event_handler_t handler, void *userdata);
void qosbpf_detach_event(qosbpf *q);
/* Events the programs could not queue because the ring buffer was full. */
uint64_t qosbpf_events_dropped(qosbpf *q);

/* "10.0.0.1" or "fe80::1"; buf needs INET6_ADDRSTRLEN bytes. */
const char *qosbpf_addr_to_string(const qosbpf_addr *a, char *buf, size_t size);
int qosbpf_addr_from_string(const char *s, qosbpf_addr *ret);
