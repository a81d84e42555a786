/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The agent's structured journal entries. Each kind of event has its own
 * MESSAGE_ID, explained for operators in units/rethink.catalog; the field
 * names are listed in docs/operations.md. QOS_STATE values are lowercase, so
 * `journalctl -u rethink-agent QOS_STATE=degraded` finds degradations.
 *
 * Every QoS entry carries INTERFACE, QOS_STATE, QOS_PREV_STATE, QOS_REASON,
 * QOS_RTT_US, QOS_RETRANS_PER_MILLE, QOS_RX_BPS, QOS_TX_BPS (bytes per
 * second), plus QOS_SCOPE ("interface" or "overall"), QOS_METERED and
 * QOS_RTO_EVENTS. Gate entries add QOS_GATE and QOS_GATE_OPEN; mobility
 * entries QOS_OLD_INTERFACE, QOS_OLD_ADDRESS, QOS_NEW_ADDRESS. QoS entries
 * also carry QOS_MONOTONIC_USEC, the CLOCK_MONOTONIC time at
 * which the agent made the decision (benchmarks compare it with the time of
 * the network change). */

#include <stdbool.h>

#include "gate.h"
#include "qos.h"

#define QOS_MESSAGE_ID_LINK_STATE       "4e80148f069a47fc9609e498c2a844ee"
#define QOS_MESSAGE_ID_OVERALL_STATE    "ebe79763aa994dfda161dc0901fb3572"
#define QOS_MESSAGE_ID_GATE             "35c7ca176a7444729af06ce0389270be"
#define QOS_MESSAGE_ID_MOBILITY         "f8de35b4b8cd42de88a41317ea61e808"
#define QOS_MESSAGE_ID_SAMPLE           "4691d80f441a4dbc84b2afae76d58378"
#define QOS_MESSAGE_ID_BPF_UNAVAILABLE  "44e45b99a3e54a8dbb8fab27c92cef07"
#define AGENT_MESSAGE_ID_STARTED        "77a2b83a1e16477a9c09a321c03db2ad"
#define AGENT_MESSAGE_ID_STOPPING       "e186383ef1db494ab24af35ad9102e84"
#define AGENT_MESSAGE_ID_RELOAD_FAILED  "2512783824ea4aab82c62c7173ec76ac"
#define AGENT_MESSAGE_ID_RELOADED       "a1825f53291e4d6f9bf43b83343e379d"

/* Interface transitions: ONLINE at info, DEGRADED and OFFLINE at warning.
 * The overall state the same, with its own MESSAGE_ID. */
void qos_journal_transition(const qos_transition *t);

/* A gate opened (info) or closed (notice); overall/ifname/metrics describe
 * the state that caused it. */
void qos_journal_gate(gate_kind kind, bool open, const char *reason, qos_state overall,
                      const char *ifname, const qos_metrics *metrics);

void qos_journal_mobility(const gate_mobility *ev);

/* A periodic sample of one interface, at info. Rate limiting is the
 * caller's business (see qos_journal_sample_due()). */
void qos_journal_sample(const char *ifname, qos_state state, const char *reason, bool metered,
                        const qos_metrics *metrics);
/* True, and *last updated, when a sample may be written now. */
bool qos_journal_sample_due(uint64_t *last_usec, uint64_t interval_usec, uint64_t now_usec);

/* Once per start: eBPF is off (error < 0 from the loader, or 0 when the
 * configuration turned it off) and the agent runs on netlink alone. */
void qos_journal_bpf_unavailable(int error, const char *reason);

void agent_journal_started(const char *version, bool bpf);
void agent_journal_stopping(void);
void agent_journal_reloaded(const char *path);
void agent_journal_reload_failed(const char *error);
