/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qos.h"

/* Enough for any RtoThreshold the configuration accepts. */
#define RTO_RING_MAX 64

enum {
        BAD_RTT = 1 << 0,
        BAD_RETRANS = 1 << 1,
        BAD_RTO = 1 << 2,
};

typedef struct qos_link {
        int ifindex;
        char *name;
        bool up, carrier, has_address, default_route, watched, metered;
        qos_state state, prev_state;
        const char *reason;
        uint64_t since;

        unsigned bad_count, good_count;
        uint64_t bad_since, good_since;

        uint64_t rto[RTO_RING_MAX];
        unsigned n_rto;

        qos_metrics metrics;
} qos_link;

struct qos_machine {
        qos_params params;
        qos_link *links;        /* sorted by ifindex */
        size_t n_links;
        int primary;

        qos_state state;
        int overall_ifindex;
        bool overall_metered;
        const char *overall_reason;
        uint64_t overall_since;

        qos_transition_handler_t handler;
        void *userdata;
};

static const char *const state_names[_QOS_STATE_MAX] = {
        [QOS_OFFLINE] = "offline",
        [QOS_DEGRADED] = "degraded",
        [QOS_ONLINE] = "online",
};

const char *qos_state_to_string(qos_state s) {
        if (s < 0 || s >= _QOS_STATE_MAX)
                return NULL;
        return state_names[s];
}

qos_state qos_state_from_string(const char *s) {
        if (!s)
                return _QOS_STATE_INVALID;
        for (int i = 0; i < _QOS_STATE_MAX; i++)
                if (streq(s, state_names[i]))
                        return i;
        return _QOS_STATE_INVALID;
}

void qos_params_default(qos_params *ret) {
        *ret = (qos_params) {
                .rtt_threshold_usec = 300 * 1000ULL,
                .retrans_threshold_per_mille = 50,
                .rto_threshold = 3,
                .rto_window_usec = 10 * 1000000ULL,
                .degrade_after_usec = 5 * 1000000ULL,
                .degrade_after_samples = 3,
                .recover_after_usec = 30 * 1000000ULL,
                .recover_after_samples = 5,
        };
}

static void sanitize_params(qos_params *p) {
        p->rto_threshold = CLAMP(p->rto_threshold, 1u, (unsigned) RTO_RING_MAX);
        p->degrade_after_samples = MAX(p->degrade_after_samples, 1u);
        p->recover_after_samples = MAX(p->recover_after_samples, 1u);
}

int qos_machine_new(const qos_params *params, qos_machine **ret) {
        qos_machine *m;

        if (!ret)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        if (params)
                m->params = *params;
        else
                qos_params_default(&m->params);
        sanitize_params(&m->params);
        m->state = QOS_OFFLINE;
        m->overall_reason = "no-interface";
        *ret = m;
        return 0;
}

qos_machine *qos_machine_free(qos_machine *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_links; i++)
                free(m->links[i].name);
        free(m->links);
        free(m);
        return NULL;
}

void qos_machine_set_handler(qos_machine *m, qos_transition_handler_t handler, void *userdata) {
        m->handler = handler;
        m->userdata = userdata;
}

static void reset_hysteresis(qos_link *l) {
        l->bad_count = l->good_count = 0;
        l->bad_since = l->good_since = 0;
}

void qos_machine_set_params(qos_machine *m, const qos_params *params) {
        m->params = *params;
        sanitize_params(&m->params);
        for (size_t i = 0; i < m->n_links; i++)
                reset_hysteresis(&m->links[i]);
}

static qos_link *find_link(const qos_machine *m, int ifindex) {
        for (size_t i = 0; i < m->n_links; i++)
                if (m->links[i].ifindex == ifindex)
                        return &m->links[i];
        return NULL;
}

static void emit(qos_machine *m, const qos_transition *t) {
        if (m->handler)
                m->handler(m, t, m->userdata);
}

static void link_transition(qos_machine *m, qos_link *l, qos_state state, const char *reason,
                            uint64_t now) {
        if (l->state == state) {
                /* OFFLINE for another reason is not a transition, but the
                 * snapshot should say why now. */
                l->reason = reason;
                return;
        }
        l->prev_state = l->state;
        l->state = state;
        l->reason = reason;
        l->since = now;
        reset_hysteresis(l);

        emit(m, &(qos_transition) {
                .ifindex = l->ifindex,
                .ifname = l->name,
                .state = state,
                .prev_state = l->prev_state,
                .reason = reason,
                .metered = l->metered,
                .metrics = l->metrics,
                .now_usec = now,
        });
}

static void update_overall(qos_machine *m, uint64_t now) {
        qos_link *best = NULL;
        qos_state prev = m->state;

        for (size_t i = 0; i < m->n_links; i++) {
                qos_link *l = &m->links[i];

                if (!l->watched)
                        continue;
                if (!best || l->state > best->state ||
                    (l->state == best->state && l->ifindex == m->primary))
                        best = l;
        }

        m->overall_ifindex = best ? best->ifindex : 0;
        m->overall_metered = best ? best->metered : false;
        m->overall_reason = best ? best->reason : "no-interface";
        m->state = best ? best->state : QOS_OFFLINE;
        if (m->state == prev)
                return;

        m->overall_since = now;
        emit(m, &(qos_transition) {
                .overall = true,
                .ifindex = m->overall_ifindex,
                .ifname = best ? best->name : NULL,
                .state = m->state,
                .prev_state = prev,
                .reason = m->overall_reason,
                .metered = m->overall_metered,
                .metrics = best ? best->metrics : (qos_metrics) {},
                .now_usec = now,
        });
}

static const char *offline_reason(const qos_link *l) {
        if (!l->up)
                return "link-down";
        if (!l->carrier)
                return "no-carrier";
        if (!l->has_address)
                return "no-address";
        if (!l->default_route)
                return "no-default-route";
        return NULL;
}

int qos_link_update(qos_machine *m, int ifindex, const qos_link_info *info, uint64_t now_usec) {
        const char *why;
        qos_link *l;

        if (!m || ifindex <= 0 || !info || !info->name)
                return -EINVAL;

        l = find_link(m, ifindex);
        if (!l) {
                qos_link *a;
                size_t k = 0;
                char *name = strdup(info->name);

                if (!name)
                        return -ENOMEM;
                a = reallocarray(m->links, m->n_links + 1, sizeof(*a));
                if (!a) {
                        free(name);
                        return -ENOMEM;
                }
                m->links = a;
                while (k < m->n_links && m->links[k].ifindex < ifindex)
                        k++;
                memmove(&m->links[k + 1], &m->links[k], (m->n_links - k) * sizeof(*a));
                m->n_links++;
                l = &m->links[k];
                *l = (qos_link) {
                        .ifindex = ifindex,
                        .name = name,
                        .state = QOS_OFFLINE,
                        .prev_state = QOS_OFFLINE,
                        .since = now_usec,
                };
        } else if (!streq(l->name, info->name)) {
                char *name = strdup(info->name);

                if (!name)
                        return -ENOMEM;
                free(l->name);
                l->name = name;
        }

        l->up = info->up;
        l->carrier = info->carrier;
        l->has_address = info->has_address;
        l->default_route = info->default_route;
        l->watched = info->watched;
        l->metered = info->metered;

        why = offline_reason(l);
        if (why)
                link_transition(m, l, QOS_OFFLINE, why, now_usec);
        else if (l->state == QOS_OFFLINE) {
                /* Old RTO events happened on a path that no longer exists. */
                l->n_rto = 0;
                l->metrics.rto_events = 0;
                link_transition(m, l, QOS_ONLINE, "usable", now_usec);
        }

        update_overall(m, now_usec);
        return 0;
}

void qos_link_remove(qos_machine *m, int ifindex, uint64_t now_usec) {
        qos_link *l = find_link(m, ifindex);
        size_t k;

        if (!l)
                return;
        link_transition(m, l, QOS_OFFLINE, "removed", now_usec);
        k = l - m->links;
        free(l->name);
        memmove(&m->links[k], &m->links[k + 1], (m->n_links - k - 1) * sizeof(*l));
        m->n_links--;
        if (m->primary == ifindex)
                m->primary = 0;
        update_overall(m, now_usec);
}

/* Drops RTO events older than the window; returns how many remain. */
static unsigned rto_in_window(const qos_machine *m, qos_link *l, uint64_t now) {
        unsigned k = 0;

        for (unsigned i = 0; i < l->n_rto; i++)
                if (now < l->rto[i] + m->params.rto_window_usec)
                        l->rto[k++] = l->rto[i];
        l->n_rto = k;
        l->metrics.rto_events = k;
        return k;
}

static const char *bad_reason(unsigned bad) {
        static const char *const reasons[] = {
                [BAD_RTT] = "rtt",
                [BAD_RETRANS] = "retransmits",
                [BAD_RTT | BAD_RETRANS] = "rtt,retransmits",
                [BAD_RTO] = "rto",
                [BAD_RTO | BAD_RTT] = "rtt,rto",
                [BAD_RTO | BAD_RETRANS] = "retransmits,rto",
                [BAD_RTO | BAD_RTT | BAD_RETRANS] = "rtt,retransmits,rto",
        };
        return bad < ELEMENTSOF(reasons) ? reasons[bad] : NULL;
}

/* Runs one step of the hysteresis with a bad (non-zero) or good verdict. */
static void judge(qos_machine *m, qos_link *l, unsigned bad, uint64_t now) {
        const qos_params *p = &m->params;

        if (l->state == QOS_ONLINE) {
                if (!bad) {
                        l->bad_count = 0;
                        return;
                }
                if (l->bad_count++ == 0)
                        l->bad_since = now;
                if (l->bad_count >= p->degrade_after_samples && now - l->bad_since >= p->degrade_after_usec)
                        link_transition(m, l, QOS_DEGRADED, bad_reason(bad), now);
        } else if (l->state == QOS_DEGRADED) {
                if (bad) {
                        l->good_count = 0;
                        return;
                }
                if (l->good_count++ == 0)
                        l->good_since = now;
                if (l->good_count >= p->recover_after_samples &&
                    now - l->good_since >= p->recover_after_usec)
                        link_transition(m, l, QOS_ONLINE, "recovered", now);
        }
}

int qos_link_sample(qos_machine *m, int ifindex, const qos_sample *s, uint64_t now_usec) {
        qos_link *l = find_link(m, ifindex);
        unsigned bad = 0;

        if (!l)
                return -ENOENT;

        l->metrics.rx_bps = s->rx_bps;
        l->metrics.tx_bps = s->tx_bps;
        if (s->has_tcp) {
                l->metrics.rtt_us = s->rtt_us;
                l->metrics.retrans_per_mille = s->retrans_per_mille;
                if (s->rtt_us > m->params.rtt_threshold_usec)
                        bad |= BAD_RTT;
                if (s->retrans_per_mille > m->params.retrans_threshold_per_mille)
                        bad |= BAD_RETRANS;
        } else
                l->metrics.retrans_per_mille = 0;
        if (rto_in_window(m, l, now_usec) >= m->params.rto_threshold)
                bad |= BAD_RTO;

        judge(m, l, bad, now_usec);
        update_overall(m, now_usec);
        return 0;
}

int qos_link_rto_event(qos_machine *m, int ifindex, uint64_t now_usec) {
        qos_link *l = find_link(m, ifindex);
        unsigned n;

        if (!l)
                return -ENOENT;

        n = rto_in_window(m, l, now_usec);
        if (n >= RTO_RING_MAX) {
                memmove(l->rto, l->rto + 1, (RTO_RING_MAX - 1) * sizeof(l->rto[0]));
                n--;
        }
        l->rto[n++] = now_usec;
        l->n_rto = n;
        l->metrics.rto_events = n;

        if (n >= m->params.rto_threshold) {
                /* A burst is already many events in a short window: react
                 * now instead of waiting for the next samples. */
                if (l->state == QOS_ONLINE)
                        link_transition(m, l, QOS_DEGRADED, "rto", now_usec);
                else if (l->state == QOS_DEGRADED)
                        l->good_count = 0;
        }

        update_overall(m, now_usec);
        return 0;
}

void qos_machine_set_primary(qos_machine *m, int ifindex, uint64_t now_usec) {
        m->primary = ifindex;
        update_overall(m, now_usec);
}

qos_state qos_machine_get_state(const qos_machine *m) {
        return m->state;
}

int qos_machine_get_overall_ifindex(const qos_machine *m) {
        return m->overall_ifindex;
}

bool qos_machine_get_overall_metered(const qos_machine *m) {
        return m->overall_metered;
}

const char *qos_machine_get_overall_reason(const qos_machine *m) {
        return m->overall_reason;
}

uint64_t qos_machine_get_overall_since(const qos_machine *m) {
        return m->overall_since;
}

int qos_machine_next_link(const qos_machine *m, int after_ifindex) {
        for (size_t i = 0; i < m->n_links; i++)
                if (m->links[i].ifindex > after_ifindex)
                        return m->links[i].ifindex;
        return 0;
}

int qos_link_get(const qos_machine *m, int ifindex, const char **ret_name, qos_state *ret_state,
                 qos_state *ret_prev_state, const char **ret_reason, uint64_t *ret_since_usec,
                 bool *ret_metered, qos_metrics *ret_metrics) {
        const qos_link *l = find_link(m, ifindex);

        if (!l)
                return -ENOENT;
        if (ret_name)
                *ret_name = l->name;
        if (ret_state)
                *ret_state = l->state;
        if (ret_prev_state)
                *ret_prev_state = l->prev_state;
        if (ret_reason)
                *ret_reason = l->reason;
        if (ret_since_usec)
                *ret_since_usec = l->since;
        if (ret_metered)
                *ret_metered = l->metered;
        if (ret_metrics)
                *ret_metrics = l->metrics;
        return 0;
}
