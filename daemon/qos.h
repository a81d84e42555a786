/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The QoS state machine: per interface and overall OFFLINE / DEGRADED /
 * ONLINE with hysteresis, plus a metered flag per interface.
 *
 * Pure: no kernel, no clock, no event loop. The agent feeds it link facts
 * (from netlink), periodic samples (from the tc and sock_ops counters) and
 * RTO events (from the ring buffer), each with the current monotonic time,
 * and gets every transition back through one callback. Tests drive it with
 * made-up inputs and times.
 *
 * Per interface:
 *   OFFLINE   link down, no carrier, no usable address, or no default route
 *             (the first missing one is the reason: "link-down", "no-carrier",
 *             "no-address", "no-default-route"; "removed" when the link went
 *             away or is no longer watched).
 *   DEGRADED  RTT over RttThreshold, retransmits over their threshold (per
 *             mille of sent segments), or RtoThreshold RTO events within
 *             RtoWindow. A sample condition must hold for degrade_after_samples
 *             consecutive samples spanning at least degrade_after_usec; an RTO
 *             burst degrades at once (the burst is its own hysteresis).
 *   ONLINE    usable and not degraded. Leaving DEGRADED needs
 *             recover_after_samples consecutive good samples spanning at least
 *             recover_after_usec. A sample without TCP data (no traffic) is a
 *             good sample: no evidence of trouble.
 *   A link that becomes usable goes OFFLINE -> ONLINE at once with fresh
 *   hysteresis counters.
 *
 * Overall: the best state among the watched interfaces (ONLINE > DEGRADED >
 * OFFLINE). Since OFFLINE covers "no default route", only interfaces that
 * carry a default route can make it better than OFFLINE. When several
 * interfaces share the best state, the primary interface (netmon's choice:
 * the preferred default route) represents the overall state, else the one
 * with the lowest ifindex; its name and metered flag are the overall ones. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef enum qos_state {
        QOS_OFFLINE,
        QOS_DEGRADED,
        QOS_ONLINE,
        _QOS_STATE_MAX,
        _QOS_STATE_INVALID = -EINVAL,
} qos_state;

/* "offline", "degraded", "online": the QOS_STATE journal values. */
const char *qos_state_to_string(qos_state s);
qos_state qos_state_from_string(const char *s);

typedef struct qos_params {
        uint64_t rtt_threshold_usec;
        unsigned retrans_threshold_per_mille;
        unsigned rto_threshold;
        uint64_t rto_window_usec;
        uint64_t degrade_after_usec;
        unsigned degrade_after_samples;
        uint64_t recover_after_usec;
        unsigned recover_after_samples;
} qos_params;

/* The defaults documented in agent.conf. */
void qos_params_default(qos_params *ret);

/* What netlink knows about a link. */
typedef struct qos_link_info {
        const char *name;
        bool up;                /* administratively up (IFF_UP) */
        bool carrier;           /* carrier, not dormant */
        bool has_address;       /* a usable (global, non-tentative) address */
        bool default_route;     /* a default route goes out through it */
        bool watched;           /* counts for the overall state */
        bool metered;
} qos_link_info;

/* One periodic measurement for an interface. */
typedef struct qos_sample {
        bool has_tcp;                   /* TCP segments were seen this period */
        uint64_t rtt_us;                /* smoothed RTT, 0 if unknown */
        unsigned retrans_per_mille;     /* retransmitted / sent segments */
        uint64_t rx_bps, tx_bps;        /* bytes per second */
} qos_sample;

/* Metrics carried in transitions and snapshots. */
typedef struct qos_metrics {
        uint64_t rtt_us;
        unsigned retrans_per_mille;
        unsigned rto_events;            /* within the RTO window */
        uint64_t rx_bps, tx_bps;
} qos_metrics;

typedef struct qos_transition {
        bool overall;                   /* false: one interface's transition */
        int ifindex;                    /* overall: the representing interface, 0 if none */
        const char *ifname;             /* overall: its name, NULL if none */
        qos_state state, prev_state;
        const char *reason;             /* "no-carrier", "rtt", "rtt,retransmits", "recovered", ... */
        bool metered;
        qos_metrics metrics;
        uint64_t now_usec;
} qos_transition;

typedef struct qos_machine qos_machine;

/* Called for every transition, interface ones before the overall one they
 * cause. The handler may read the machine but must not feed it inputs. */
typedef void (*qos_transition_handler_t)(qos_machine *m, const qos_transition *t, void *userdata);

int qos_machine_new(const qos_params *params, qos_machine **ret);
qos_machine *qos_machine_free(qos_machine *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(qos_machine *, qos_machine_free);
#define _cleanup_qos_machine_ _cleanup_(qos_machine_freep)

void qos_machine_set_handler(qos_machine *m, qos_transition_handler_t handler, void *userdata);
/* New thresholds apply from the next input; hysteresis counters restart. */
void qos_machine_set_params(qos_machine *m, const qos_params *params);

/* Adds or updates a link (ifindex > 0). -ENOMEM, -EINVAL. */
int qos_link_update(qos_machine *m, int ifindex, const qos_link_info *info, uint64_t now_usec);
/* The link went away: it transitions to OFFLINE ("removed") and is dropped. */
void qos_link_remove(qos_machine *m, int ifindex, uint64_t now_usec);
/* -ENOENT for an unknown link. */
int qos_link_sample(qos_machine *m, int ifindex, const qos_sample *s, uint64_t now_usec);
int qos_link_rto_event(qos_machine *m, int ifindex, uint64_t now_usec);
/* ifindex 0: no primary. */
void qos_machine_set_primary(qos_machine *m, int ifindex, uint64_t now_usec);

/* Snapshots. */
qos_state qos_machine_get_state(const qos_machine *m);
/* The representing interface of the overall state: ifindex, or 0. */
int qos_machine_get_overall_ifindex(const qos_machine *m);
bool qos_machine_get_overall_metered(const qos_machine *m);
const char *qos_machine_get_overall_reason(const qos_machine *m);
uint64_t qos_machine_get_overall_since(const qos_machine *m);

/* Iterates links in ifindex order: pass 0 to start; returns the next
 * ifindex or 0 at the end. */
int qos_machine_next_link(const qos_machine *m, int after_ifindex);
/* -ENOENT for an unknown link; outputs may be NULL. */
int qos_link_get(const qos_machine *m, int ifindex, const char **ret_name, qos_state *ret_state,
                 qos_state *ret_prev_state, const char **ret_reason, uint64_t *ret_since_usec,
                 bool *ret_metered, qos_metrics *ret_metrics);
