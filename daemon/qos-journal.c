/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "qos-journal.h"
#include "time-util.h"

static const char *state_str(qos_state s) {
        return qos_state_to_string(s) ?: "offline";
}

static int state_priority(qos_state s) {
        return s == QOS_ONLINE ? LOG_INFO : LOG_WARNING;
}

#define QOS_FIELDS(ifname, state, prev, reason, metered, m)                                \
        LOG_FIELD("INTERFACE", "%s", (ifname) ?: ""),                                      \
        LOG_FIELD("QOS_STATE", "%s", state_str(state)),                                    \
        LOG_FIELD("QOS_PREV_STATE", "%s", state_str(prev)),                                \
        LOG_FIELD("QOS_REASON", "%s", (reason) ?: ""),                                     \
        LOG_FIELD("QOS_RTT_US", "%" PRIu64, (m)->rtt_us),                                  \
        LOG_FIELD("QOS_RETRANS_PER_MILLE", "%u", (m)->retrans_per_mille),                  \
        LOG_FIELD("QOS_RTO_EVENTS", "%u", (m)->rto_events),                                \
        LOG_FIELD("QOS_RX_BPS", "%" PRIu64, (m)->rx_bps),                                  \
        LOG_FIELD("QOS_TX_BPS", "%" PRIu64, (m)->tx_bps),                                  \
        LOG_FIELD("QOS_METERED", "%s", (metered) ? "yes" : "no")

void qos_journal_transition(const qos_transition *t) {
        const char *name = t->ifname ?: "";

        if (t->overall)
                log_struct(state_priority(t->state),
                           LOG_MESSAGE("Overall connectivity is now %s (was %s): %s%s%s.",
                                       state_str(t->state), state_str(t->prev_state), strna(t->reason),
                                       *name ? ", via " : "", name),
                           LOG_MESSAGE_ID(QOS_MESSAGE_ID_OVERALL_STATE),
                           LOG_FIELD("QOS_SCOPE", "overall"),
                           LOG_FIELD("QOS_MONOTONIC_USEC", "%" PRIu64, now(CLOCK_MONOTONIC)),
                           QOS_FIELDS(t->ifname, t->state, t->prev_state, t->reason, t->metered,
                                      &t->metrics));
        else
                log_struct(state_priority(t->state),
                           LOG_MESSAGE("Interface %s is now %s (was %s): %s.", name, state_str(t->state),
                                       state_str(t->prev_state), strna(t->reason)),
                           LOG_MESSAGE_ID(QOS_MESSAGE_ID_LINK_STATE),
                           LOG_FIELD("QOS_SCOPE", "interface"),
                           LOG_FIELD("QOS_MONOTONIC_USEC", "%" PRIu64, now(CLOCK_MONOTONIC)),
                           QOS_FIELDS(t->ifname, t->state, t->prev_state, t->reason, t->metered,
                                      &t->metrics));
}

void qos_journal_gate(gate_kind kind, bool open, const char *reason, qos_state overall,
                      const char *ifname, const qos_metrics *metrics) {
        static const qos_metrics none = {};

        if (!metrics)
                metrics = &none;
        log_struct(open ? LOG_INFO : LOG_NOTICE,
                   LOG_MESSAGE("Gate %s %s: %s.", strna(gate_kind_to_string(kind)), open ? "opened" : "closed",
                               strna(reason)),
                   LOG_MESSAGE_ID(QOS_MESSAGE_ID_GATE),
                   LOG_FIELD("QOS_GATE", "%s", strna(gate_kind_to_string(kind))),
                   LOG_FIELD("QOS_GATE_OPEN", "%s", open ? "yes" : "no"),
                   LOG_FIELD("QOS_SCOPE", "overall"),
                   LOG_FIELD("QOS_MONOTONIC_USEC", "%" PRIu64, now(CLOCK_MONOTONIC)),
                   QOS_FIELDS(ifname, overall, overall, reason, false, metrics));
}

void qos_journal_mobility(const gate_mobility *ev) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Primary interface changed from %s (%s) to %s (%s).", ev->old_ifname ?: "none",
                               ev->old_address ?: "no address", ev->new_ifname ?: "none",
                               ev->new_address ?: "no address"),
                   LOG_MESSAGE_ID(QOS_MESSAGE_ID_MOBILITY),
                   LOG_FIELD("INTERFACE", "%s", ev->new_ifname ?: ""),
                   LOG_FIELD("QOS_OLD_INTERFACE", "%s", ev->old_ifname ?: ""),
                   LOG_FIELD("QOS_OLD_ADDRESS", "%s", ev->old_address ?: ""),
                   LOG_FIELD("QOS_NEW_ADDRESS", "%s", ev->new_address ?: ""),
                   LOG_FIELD("QOS_MONOTONIC_USEC", "%" PRIu64, now(CLOCK_MONOTONIC)));
}

void qos_journal_sample(const char *ifname, qos_state state, const char *reason, bool metered,
                        const qos_metrics *metrics) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("Interface %s %s: rtt %" PRIu64 " us, retransmits %u per mille, rx %" PRIu64
                               " B/s, tx %" PRIu64 " B/s.",
                               ifname, state_str(state), metrics->rtt_us, metrics->retrans_per_mille,
                               metrics->rx_bps, metrics->tx_bps),
                   LOG_MESSAGE_ID(QOS_MESSAGE_ID_SAMPLE),
                   LOG_FIELD("QOS_SCOPE", "interface"),
                   LOG_FIELD("QOS_MONOTONIC_USEC", "%" PRIu64, now(CLOCK_MONOTONIC)),
                   QOS_FIELDS(ifname, state, state, reason, metered, metrics));
}

bool qos_journal_sample_due(uint64_t *last_usec, uint64_t interval_usec, uint64_t now_usec) {
        if (interval_usec == 0)
                return false;
        if (*last_usec != 0 && now_usec < *last_usec + interval_usec)
                return false;
        *last_usec = now_usec;
        return true;
}

void qos_journal_bpf_unavailable(int error, const char *reason) {
        log_struct_errno(LOG_WARNING, error,
                         LOG_MESSAGE("eBPF unavailable (%s), running on netlink only: no per-interface "
                                     "traffic counters from tc, no TCP RTT or retransmit statistics.",
                                     strna(reason)),
                         LOG_MESSAGE_ID(QOS_MESSAGE_ID_BPF_UNAVAILABLE),
                         LOG_FIELD("QOS_REASON", "%s", strna(reason)));
}

void agent_journal_started(const char *version, bool bpf) {
        log_struct(LOG_INFO,
                   LOG_MESSAGE("rethink-agent %s started (%s).", version, bpf ? "netlink and eBPF" : "netlink only"),
                   LOG_MESSAGE_ID(AGENT_MESSAGE_ID_STARTED));
}

void agent_journal_stopping(void) {
        log_struct(LOG_INFO, LOG_MESSAGE("rethink-agent stopping."), LOG_MESSAGE_ID(AGENT_MESSAGE_ID_STOPPING));
}

void agent_journal_reloaded(const char *path) {
        log_struct(LOG_INFO, LOG_MESSAGE("Configuration reloaded from %s.", path),
                   LOG_MESSAGE_ID(AGENT_MESSAGE_ID_RELOADED), LOG_FIELD("CONFIG_FILE", "%s", path));
}

void agent_journal_reload_failed(const char *error) {
        log_struct(LOG_ERR, LOG_MESSAGE("Configuration not reloaded, keeping the old one: %s", error),
                   LOG_MESSAGE_ID(AGENT_MESSAGE_ID_RELOAD_FAILED));
}
