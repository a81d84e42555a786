/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "control.h"
#include "domain-orders.h"
#include "identity.h"
#include "log.h"
#include "netmon.h"
#include "qos-journal.h"
#include "qosbpf.h"
#include "jwks-cache.h"
#include "local-rd.h"
#include "registration-session.h"
#include "runtime.h"
#include "registration.h"
#include "swmgr-control.h"
#include "swmgr.h"
#include "launcher.h"
#include "time-util.h"
#include "users.h"

/* What the agent keeps per watched link besides the QoS state: the
 * previous counter readings the rates are computed from. */
typedef struct agent_link {
        int ifindex;
        bool tc;                        /* our tc filters are attached */
        bool tc_failed;                 /* attach failed once: say it once */
        bool have_prev;                 /* rx_bytes/tx_bytes hold a reading */
        bool have_tcp_prev;             /* segs_out/retrans hold a reading */
        uint64_t prev_usec;
        uint64_t rx_bytes, tx_bytes;    /* last reading */
        uint64_t segs_out, retrans;     /* TCP totals at the last poll */
        uint64_t last_journal_sample;

        /* Accumulators of one poll. */
        uint64_t acc_segs, acc_retrans, acc_rtt_sum;
        unsigned acc_rtt_n;
} agent_link;

struct agent {
        sd_event *event;
        agent_config *config;
        netmon *netmon;
        qosbpf *bpf;
        char *bpf_reason;
        control_server *control;
        swmgr *swmgr;
        launcher *launcher;
        identity *identity;
        registration *registration;
        reg_session *session;
        domain_orders *orders;
        users *users;
        jwks_cache *jwks;
        local_rd *local_rd;
        runtime *runtime;
        qos_machine *qos;
        gates *gates;

        sd_event_source *poll_timer;
        sd_event_source *sigterm, *sigint, *sighup;

        agent_link *links;
        size_t n_links;
        uint64_t last_poll_usec;

        char *status;
        bool ready;
        uint64_t start_usec;
};

/* QoS times are monotonic; the control socket speaks wall-clock. */
static uint64_t monotonic_to_realtime(uint64_t t) {
        uint64_t m = now(CLOCK_MONOTONIC), r = now(CLOCK_REALTIME);

        if (t == 0)
                return 0;
        return r - (m > t ? m - t : 0);
}

static void agent_set_status(agent *a, const char *fmt, ...) _printf_(2, 3);
static void agent_set_status(agent *a, const char *fmt, ...) {
        char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (!s || streq_ptr(s, a->status)) {
                free(s);
                return;
        }
        free(a->status);
        a->status = s;
        (void) sd_notifyf(false, "STATUS=%s", s);
}

static void agent_update_status(agent *a) {
        const qos_machine *q = a->qos;
        const char *dl_reason, *reg_reason, *name = NULL;
        int ifindex = qos_machine_get_overall_ifindex(q);
        bool dl, reg;

        if (!a->ready)
                return;
        if (ifindex > 0)
                (void) qos_link_get(q, ifindex, &name, NULL, NULL, NULL, NULL, NULL, NULL);
        dl = gates_is_open(a->gates, GATE_DOWNLOADS, &dl_reason);
        reg = gates_is_open(a->gates, GATE_REGISTRATION, &reg_reason);
        agent_set_status(a, "%s%s%s (%s); downloads %s, registration %s; %s",
                         qos_state_to_string(qos_machine_get_state(q)), name ? " via " : "", name ?: "",
                         strna(qos_machine_get_overall_reason(q)), dl ? "open" : "closed",
                         reg ? "open" : "closed", a->bpf ? "netlink+eBPF" : "netlink only");
}

static agent_link *agent_link_find(agent *a, int ifindex) {
        for (size_t i = 0; i < a->n_links; i++)
                if (a->links[i].ifindex == ifindex)
                        return &a->links[i];
        return NULL;
}

static agent_link *agent_link_add(agent *a, int ifindex) {
        agent_link *l = agent_link_find(a, ifindex), *n;

        if (l)
                return l;
        n = reallocarray(a->links, a->n_links + 1, sizeof(*n));
        if (!n)
                return NULL;
        a->links = n;
        l = &a->links[a->n_links++];
        *l = (agent_link) { .ifindex = ifindex };
        return l;
}

static void agent_link_drop(agent *a, int ifindex) {
        agent_link *l = agent_link_find(a, ifindex);

        if (!l)
                return;
        if (l->tc && a->bpf)
                (void) qosbpf_detach_tc(a->bpf, ifindex);
        *l = a->links[--a->n_links];
}

static void agent_update_gates(agent *a) {
        gates_update(a->gates, qos_machine_get_state(a->qos), qos_machine_get_overall_metered(a->qos),
                     config_get_downloads_on_metered(a->config));
        runtime_set_connectivity(a->runtime, qos_state_to_string(qos_machine_get_state(a->qos)));
        agent_update_status(a);
}

static void agent_forget_link(agent *a, int ifindex) {
        qos_link_remove(a->qos, ifindex, now(CLOCK_MONOTONIC));
        agent_link_drop(a, ifindex);
}

/* Re-reads what netlink knows about one link and hands it to the state
 * machine; attaches our tc filters to watched links. */
static void agent_refresh_link(agent *a, int ifindex) {
        netmon_link_info link;
        qos_link_info info;
        const char *why = NULL;
        agent_link *al;
        int r;

        r = netmon_get_link(a->netmon, ifindex, &link);
        if (r < 0) {
                agent_forget_link(a, ifindex);
                return;
        }
        if (!config_interface_watched(a->config, link.name, link.flags & IFF_LOOPBACK)) {
                agent_forget_link(a, ifindex);
                return;
        }

        al = agent_link_add(a, ifindex);
        if (!al) {
                log_oom();
                return;
        }

        info = (qos_link_info) {
                .name = link.name,
                .up = true,
                .carrier = true,
                .has_address = true,
                .default_route = true,
                .watched = true,
                .metered = config_interface_metered(a->config, link.name),
        };
        /* netmon judges usability in the same order as qos: the first
         * missing thing is the reason, what comes after does not matter. */
        r = netmon_link_is_usable(a->netmon, ifindex, &why);
        if (r == 0 && why) {
                if (streq(why, "link down"))
                        info.up = false;
                else if (streq(why, "no carrier") || streq(why, "link dormant"))
                        info.carrier = false;
                else if (streq(why, "no usable address"))
                        info.has_address = false;
                else
                        info.default_route = false;
        } else if (r < 0) {
                info.up = false;
        }

        r = qos_link_update(a->qos, ifindex, &info, now(CLOCK_MONOTONIC));
        if (r < 0)
                log_warning_errno(r, "Failed to track interface %s: %m", link.name);

        if (a->bpf && !al->tc && !al->tc_failed) {
                r = qosbpf_attach_tc(a->bpf, ifindex);
                if (r < 0) {
                        al->tc_failed = true;
                        log_warning_errno(r, "Failed to attach tc programs on %s, using netlink counters: %m",
                                          link.name);
                } else {
                        al->tc = true;
                        al->have_prev = false;
                        log_debug("Attached tc programs on %s.", link.name);
                }
        }
}

static void agent_refresh_all(agent *a) {
        netmon_link_info link;
        int i;

        /* Links that are gone or no longer watched. */
        for (i = qos_machine_next_link(a->qos, 0); i > 0;) {
                int next = qos_machine_next_link(a->qos, i);
                if (netmon_get_link(a->netmon, i, &link) < 0 ||
                    !config_interface_watched(a->config, link.name, link.flags & IFF_LOOPBACK))
                        agent_forget_link(a, i);
                i = next;
        }
        for (i = 0; netmon_next_link(a->netmon, i, &link) >= 0; i = link.ifindex)
                agent_refresh_link(a, link.ifindex);
        agent_update_gates(a);
}

static void on_primary_changed(agent *a, const netmon_event *ev) {
        const netmon_primary *o = ev->old_primary, *n = ev->new_primary;
        gate_mobility m = {
                .old_ifname = o && o->ifindex > 0 ? o->ifname : NULL,
                .old_address = o && o->ifindex > 0 && o->address.family != AF_UNSPEC ? o->address.str : NULL,
                .new_ifname = n && n->ifindex > 0 ? n->ifname : NULL,
                .new_address = n && n->ifindex > 0 && n->address.family != AF_UNSPEC ? n->address.str : NULL,
        };

        qos_machine_set_primary(a->qos, n ? n->ifindex : 0, now(CLOCK_MONOTONIC));
        gates_mobility(a->gates, &m);
}

static void on_netmon_event(netmon *m, const netmon_event *ev, void *userdata) {
        agent *a = userdata;

        switch (ev->type) {
        case NETMON_EVENT_PRIMARY_CHANGED:
                on_primary_changed(a, ev);
                break;
        case NETMON_EVENT_LINK_DEL:
                agent_forget_link(a, ev->ifindex);
                break;
        default:
                if (ev->ifindex > 0)
                        agent_refresh_link(a, ev->ifindex);
                break;
        }
        agent_update_gates(a);
}

/* --- periodic rates and TCP statistics ------------------------------------- */

static bool prefix_match(const netmon_address *ad, const qosbpf_addr *remote) {
        const uint8_t *x, *y;
        unsigned bits = ad->prefixlen, bytes;

        if (ad->family != remote->family)
                return false;
        x = (const uint8_t *) &ad->addr;
        y = ad->family == AF_INET ? (const uint8_t *) &remote->in : (const uint8_t *) &remote->in6;
        if (bits > (ad->family == AF_INET ? 32u : 128u))
                return false;
        bytes = bits / 8;
        if (memcmp(x, y, bytes) != 0)
                return false;
        if (bits % 8 == 0)
                return true;
        return ((x[bytes] ^ y[bytes]) & (uint8_t) (0xff << (8 - bits % 8))) == 0;
}

/* Which interface a remote address is reached through. sock_ops keys its
 * statistics by remote address only, so this is an approximation of the
 * kernel's route lookup: a watched interface with an address whose prefix
 * contains the remote (on-link), else the primary interface (the preferred
 * default route). Policy routing and more specific non-default routes are
 * not considered. */
static int agent_remote_ifindex(agent *a, const qosbpf_addr *remote) {
        netmon_primary p;

        for (size_t i = 0; i < a->n_links; i++) {
                netmon_address ad;

                for (size_t k = 0; netmon_get_address(a->netmon, a->links[i].ifindex, k, &ad) >= 0; k++)
                        if (ad.scope == 0 /* RT_SCOPE_UNIVERSE */ && prefix_match(&ad, remote))
                                return a->links[i].ifindex;
        }
        if (netmon_get_primary(a->netmon, &p) > 0)
                return p.ifindex;
        return 0;
}

static int on_tcp_stats(const qosbpf_tcp_stats *s, void *userdata) {
        agent *a = userdata;
        agent_link *l = agent_link_find(a, agent_remote_ifindex(a, &s->remote));

        if (!l)
                return 0;
        l->acc_segs += s->segs_out;
        l->acc_retrans += s->retrans;
        if (s->last_update_usec > a->last_poll_usec && s->srtt_us > 0) {
                l->acc_rtt_sum += s->srtt_us;
                l->acc_rtt_n++;
        }
        return 0;
}

static void agent_poll(agent *a) {
        usec_t t = now(CLOCK_MONOTONIC);
        uint64_t sample_interval = config_get_sample_interval_usec(a->config);

        for (size_t i = 0; i < a->n_links; i++) {
                agent_link *l = &a->links[i];
                l->acc_segs = l->acc_retrans = l->acc_rtt_sum = 0;
                l->acc_rtt_n = 0;
        }
        if (a->bpf) {
                int r = qosbpf_tcp_stats_foreach(a->bpf, on_tcp_stats, a);
                if (r < 0)
                        log_debug_errno(r, "Failed to read TCP statistics: %m");
        }

        for (size_t i = 0; i < a->n_links; i++) {
                agent_link *l = &a->links[i];
                uint64_t rx = 0, tx = 0, dt = t - l->prev_usec;
                qos_sample s = {};
                bool ok = false;
                const char *name, *reason;
                qos_state state;
                qos_metrics m;
                bool metered;

                if (l->tc) {
                        qosbpf_counters c;
                        if (qosbpf_read_counters(a->bpf, l->ifindex, &c) >= 0) {
                                rx = c.rx_bytes;
                                tx = c.tx_bytes;
                                ok = true;
                        }
                } else {
                        netmon_stats st;
                        if (netmon_get_stats(a->netmon, l->ifindex, &st) >= 0) {
                                rx = st.rx_bytes;
                                tx = st.tx_bytes;
                                ok = true;
                        }
                }
                if (ok && l->have_prev && dt > 0) {
                        s.rx_bps = rx >= l->rx_bytes ? (rx - l->rx_bytes) * 1000000ULL / dt : 0;
                        s.tx_bps = tx >= l->tx_bytes ? (tx - l->tx_bytes) * 1000000ULL / dt : 0;
                }

                /* Totals may shrink when the map evicts a remote or a remote
                 * moves to another interface: treat that as no traffic. */
                if (l->have_tcp_prev && l->acc_segs > l->segs_out) {
                        uint64_t dsegs = l->acc_segs - l->segs_out;
                        uint64_t dretrans = l->acc_retrans > l->retrans ? l->acc_retrans - l->retrans : 0;

                        s.has_tcp = true;
                        s.retrans_per_mille = (unsigned) MIN(dretrans * 1000 / dsegs, 1000ULL);
                }
                if (l->acc_rtt_n > 0) {
                        s.has_tcp = true;
                        s.rtt_us = l->acc_rtt_sum / l->acc_rtt_n;
                }
                l->segs_out = l->acc_segs;
                l->retrans = l->acc_retrans;
                l->have_tcp_prev = a->bpf != NULL;
                if (ok) {
                        l->rx_bytes = rx;
                        l->tx_bytes = tx;
                }
                l->prev_usec = t;
                l->have_prev = ok;

                (void) qos_link_sample(a->qos, l->ifindex, &s, t);

                if (qos_link_get(a->qos, l->ifindex, &name, &state, NULL, &reason, NULL, &metered, &m) >= 0 &&
                    qos_journal_sample_due(&l->last_journal_sample, sample_interval, t))
                        qos_journal_sample(name, state, reason, metered, &m);
        }
        a->last_poll_usec = t;
        agent_update_gates(a);
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* sd-event's default accuracy (250 ms) lets the kernel batch this wake-up
 * with others, which matters more on an idle device than punctuality. */
static int agent_arm_poll(agent *a) {
        return event_reset_time_relative(a->event, &a->poll_timer, config_get_poll_interval_usec(a->config),
                                         on_poll_timer, a, "qos-poll");
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        agent *a = userdata;
        int r;

        agent_poll(a);
        r = agent_arm_poll(a);
        if (r < 0)
                return log_error_errno(r, "Failed to rearm the poll timer: %m");
        return 0;
}

static int on_bpf_event(qosbpf *q, const qosbpf_event *ev, void *userdata) {
        agent *a = userdata;
        int ifindex;

        if (ev->type != QOSBPF_EVENT_RTO)
                return 0;
        ifindex = agent_remote_ifindex(a, &ev->remote);
        if (ifindex <= 0)
                return 0;
        if (qos_link_rto_event(a->qos, ifindex, now(CLOCK_MONOTONIC)) >= 0)
                agent_update_gates(a);
        return 0;
}

/* --- journal subscribers ----------------------------------------------------- */

static void on_transition(qos_machine *m, const qos_transition *t, void *userdata) {
        qos_journal_transition(t);
}

static void on_gate(gate_kind kind, bool open, const char *reason, void *userdata) {
        agent *a = userdata;
        int ifindex = qos_machine_get_overall_ifindex(a->qos);
        const char *name = NULL;
        qos_metrics m = {};

        if (ifindex > 0)
                (void) qos_link_get(a->qos, ifindex, &name, NULL, NULL, NULL, NULL, NULL, &m);
        qos_journal_gate(kind, open, reason, qos_machine_get_state(a->qos), name, &m);
}

static void on_mobility(const gate_mobility *ev, void *userdata) {
        qos_journal_mobility(ev);
}

/* --- readiness, signals, reload ---------------------------------------------- */

static void on_netmon_ready(netmon *m, void *userdata) {
        agent *a = userdata;
        int r;

        if (a->ready)
                return;
        a->ready = true;
        agent_refresh_all(a);

        r = agent_arm_poll(a);
        if (r < 0)
                log_warning_errno(r, "Failed to start the poll timer, no rates or TCP statistics: %m");

        agent_update_status(a);
        agent_journal_started(RETHINK_VERSION, a->bpf != NULL);
        (void) sd_notify(false, "READY=1");
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        agent *a = userdata;

        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: detaching eBPF programs");
        agent_journal_stopping();
        return sd_event_exit(a->event, 0);
}

static void warn_restart_only(agent *a, const agent_config *n) {
        if (!streq_ptr(config_get_control_socket(a->config), config_get_control_socket(n)))
                log_notice("[Agent] ControlSocket= changed; takes effect after a restart.");
        if (config_get_bpf(a->config) != config_get_bpf(n))
                log_notice("[BPF] Enable= changed; takes effect after a restart.");
        if (!streq_ptr(config_get_cgroup_path(a->config), config_get_cgroup_path(n)))
                log_notice("[BPF] CgroupPath= changed; takes effect after a restart.");
        if (!streq_ptr(config_get_state_directory(a->config), config_get_state_directory(n)))
                log_notice("[Agent] StateDirectory= changed; takes effect after a restart.");
        if (!streq_ptr(config_get_trusted_publishers(a->config), config_get_trusted_publishers(n)))
                log_notice("[Software] TrustedPublishers= changed; takes effect after a restart.");
        if (!streq_ptr(config_get_domain_url(a->config), config_get_domain_url(n)) ||
            !streq_ptr(config_get_domain_ca_file(a->config), config_get_domain_ca_file(n)) ||
            !streq_ptr(config_get_domain_endpoint(a->config), config_get_domain_endpoint(n)) ||
            !streq_ptr(config_get_domain_name(a->config), config_get_domain_name(n)) ||
            config_get_domain_lifetime_sec(a->config) != config_get_domain_lifetime_sec(n) ||
            config_get_domain_retry_max_usec(a->config) != config_get_domain_retry_max_usec(n))
                log_notice("[Domain] settings changed; they take effect after a restart.");
}

static void apply_log_level(const agent_config *c) {
        /* The environment is how tests and debugging sessions ask for more. */
        if (!getenv("RETHINK_LOG_LEVEL"))
                log_set_max_level(config_get_log_level(c));
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        agent *a = userdata;
        _cleanup_config_ agent_config *n = NULL;
        _cleanup_free_ char *error = NULL;
        qos_params p;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nSTATUS=Reloading configuration\nMONOTONIC_USEC=%" PRIu64,
                          now(CLOCK_MONOTONIC));
        free(a->status);
        a->status = NULL;

        r = config_load(a->config, &n, &error);
        if (r < 0) {
                agent_journal_reload_failed(error ?: strerror(-r));
        } else {
                warn_restart_only(a, n);
                config_free(a->config);
                a->config = TAKE_PTR(n);
                apply_log_level(a->config);
                config_get_qos_params(a->config, &p);
                qos_machine_set_params(a->qos, &p);
                if (a->ready) {
                        agent_refresh_all(a);
                        if (a->poll_timer && agent_arm_poll(a) < 0)
                                log_warning("Failed to rearm the poll timer.");
                }
                agent_journal_reloaded(config_get_path(a->config));
        }

        agent_update_status(a);
        (void) sd_notify(false, "READY=1");
        return 0;
}

/* --- control socket ----------------------------------------------------------- */

static unsigned agent_count_watched(agent *a) {
        unsigned n = 0;
        for (int i = qos_machine_next_link(a->qos, 0); i > 0; i = qos_machine_next_link(a->qos, i))
                n++;
        return n;
}

static int on_status(control_request *req, json_t **ret_result, void *userdata) {
        agent *a = userdata;
        json_t *o;

        o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:I}",
                      "version", RETHINK_VERSION,
                      "pid", (json_int_t) getpid(),
                      "uptime_usec", (json_int_t) (now(CLOCK_MONOTONIC) - a->start_usec),
                      "status_text", a->status ?: "",
                      "qos", qos_state_to_string(qos_machine_get_state(a->qos)),
                      "bpf", a->bpf ? "enabled" : "netlink-only",
                      "bpf_reason", a->bpf ? "" : strna(a->bpf_reason),
                      "interfaces", (json_int_t) agent_count_watched(a));
        if (!o)
                return -ENOMEM;
        if (a->registration && a->session) {
                json_t *reg = registration_status_json(a->registration);

                if (!reg || json_object_set_new(reg, "session", reg_session_status_json(a->session)) < 0 ||
                    json_object_set_new(o, "registration", reg) < 0) {
                        json_decref(o);
                        return -ENOMEM;
                }
        } else if (json_object_set_new(o, "registration",
                                a->registration ? registration_status_json(a->registration)
                                                : json_pack("{s:s, s:s}", "state", "off", "reason",
                                                            config_get_domain_url(a->config)
                                                                    ? "identity or domain set-up failed (see the journal)"
                                                                    : "no domain configured ([Domain] URL=)")) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        *ret_result = o;
        return 0;
}

static json_t *gate_json(agent *a, gate_kind k) {
        const char *reason;
        bool open = gates_is_open(a->gates, k, &reason);

        return json_pack("{s:b, s:s}", "open", open, "reason", strna(reason));
}

static json_t *link_json(agent *a, int ifindex) {
        const char *name, *reason;
        qos_state state, prev;
        uint64_t since;
        bool metered;
        qos_metrics m;
        netmon_link_info link = {};
        netmon_address ad;
        agent_link *al = agent_link_find(a, ifindex);
        json_t *o, *addrs;

        if (qos_link_get(a->qos, ifindex, &name, &state, &prev, &reason, &since, &metered, &m) < 0)
                return NULL;
        (void) netmon_get_link(a->netmon, ifindex, &link);

        addrs = json_array();
        if (!addrs)
                return NULL;
        for (size_t k = 0; netmon_get_address(a->netmon, ifindex, k, &ad) >= 0; k++)
                (void) json_array_append_new(addrs, json_string(ad.str));

        o = json_pack("{s:s, s:i, s:s, s:s, s:I, s:s, s:b, s:s, s:b, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                      "name", name,
                      "ifindex", ifindex,
                      "state", qos_state_to_string(state),
                      "prev_state", qos_state_to_string(prev),
                      "since_usec", (json_int_t) monotonic_to_realtime(since),
                      "reason", strna(reason),
                      "metered", metered,
                      "oper_state", strna(netmon_oper_state_to_string(link.operstate)),
                      "carrier", link.carrier,
                      "addresses", addrs,
                      "default_route", netmon_get_default_route(a->netmon, ifindex, AF_UNSPEC, NULL) >= 0,
                      "rtt_us", (json_int_t) m.rtt_us,
                      "retrans_per_mille", (json_int_t) m.retrans_per_mille,
                      "rto_events", (json_int_t) m.rto_events,
                      "rx_bps", (json_int_t) m.rx_bps,
                      "tx_bps", (json_int_t) m.tx_bps,
                      "rx_bytes", (json_int_t) (al ? al->rx_bytes : 0),
                      "tx_bytes", (json_int_t) (al ? al->tx_bytes : 0));
        return o;
}

static int on_qos(control_request *req, json_t **ret_result, void *userdata) {
        agent *a = userdata;
        netmon_primary p = {};
        json_t *o, *links, *primary;

        links = json_array();
        if (!links)
                return -ENOMEM;
        for (int i = qos_machine_next_link(a->qos, 0); i > 0; i = qos_machine_next_link(a->qos, i)) {
                json_t *l = link_json(a, i);
                if (!l) {
                        json_decref(links);
                        return -ENOMEM;
                }
                (void) json_array_append_new(links, l);
        }

        if (netmon_get_primary(a->netmon, &p) > 0)
                primary = json_pack("{s:s, s:o}", "interface", p.ifname, "address",
                                    p.address.family != AF_UNSPEC ? json_string(p.address.str) : json_null());
        else
                primary = json_pack("{s:n, s:n}", "interface", "address");

        o = json_pack("{s:{s:s, s:I, s:s}, s:{s:b, s:s}, s:{s:o, s:o}, s:o, s:o}",
                      "overall",
                      "state", qos_state_to_string(qos_machine_get_state(a->qos)),
                      "since_usec", (json_int_t) monotonic_to_realtime(qos_machine_get_overall_since(a->qos) ?: a->start_usec),
                      "reason", strna(qos_machine_get_overall_reason(a->qos)),
                      "bpf", "enabled", a->bpf != NULL, "reason", a->bpf ? "" : strna(a->bpf_reason),
                      "gates",
                      "downloads", gate_json(a, GATE_DOWNLOADS),
                      "registration", gate_json(a, GATE_REGISTRATION),
                      "primary", primary,
                      "interfaces", links);
        if (!o)
                return -ENOMEM;
        *ret_result = o;
        return 0;
}

/* --- setup ---------------------------------------------------------------------- */

static const char *bpf_error_reason(int r) {
        switch (-r) {
        case EPERM:
        case EACCES:
                return "not permitted";
        case ENOSYS:
                return "no bpf() system call";
        case EOPNOTSUPP:
                return "kernel lacks a needed program or map type";
        default:
                return NULL;
        }
}

static int agent_setup_bpf(agent *a) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        _cleanup_free_ char *cgroup = NULL;
        const char *what;
        int r;

        if (!config_get_bpf(a->config)) {
                a->bpf_reason = strdup("disabled in the configuration");
                qos_journal_bpf_unavailable(0, "disabled in the configuration");
                return 0;
        }

        agent_set_status(a, "Starting: loading eBPF programs");
        r = qosbpf_new(&(qosbpf_options) {}, &q);
        if (r >= 0) {
                r = config_resolve_cgroup(a->config, &cgroup);
                if (r >= 0)
                        r = qosbpf_attach_sockops(q, cgroup);
                what = "sock_ops attach failed";
        } else
                what = "load failed";
        if (r >= 0) {
                r = qosbpf_attach_event(q, a->event, on_bpf_event, a);
                what = "ring buffer attach failed";
        }
        if (r < 0) {
                const char *why = bpf_error_reason(r);
                char *reason = NULL;

                if (asprintf(&reason, "%s: %s%s%s", what, why ?: strerror(-r), cgroup ? " on " : "",
                             cgroup ?: "") < 0)
                        return log_oom();
                a->bpf_reason = reason;
                qos_journal_bpf_unavailable(r, reason);
                return 0;
        }

        log_debug("sock_ops attached to %s.", strna(qosbpf_sockops_cgroup(q)));
        a->bpf = TAKE_PTR(q);
        return 0;
}

/* Software management is a part of the agent, not a condition for it: the
 * QoS side keeps running when the state directory cannot be used. */
static int agent_setup_swmgr(agent *a) {
        _cleanup_free_ char *error = NULL;
        const char *dir = config_get_state_directory(a->config);
        launcher_options lo;
        int r;

        agent_set_status(a, "Starting: software manager in %s", dir);
        config_get_launcher_options(a->config, &lo);
        r = launcher_new(a->event, &lo, &a->launcher);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the component launcher ([Components] Launcher=%s), "
                                "software management disabled: %m", launcher_mode_to_string(lo.mode));
                return 0;
        }
        /* The domain serves its catalogue's packages: relative package URLs
         * are resolved against it. */
        r = swmgr_new(a->event, a->gates,
                      &(swmgr_options) {
                              .state_dir = dir,
                              .catalogue_url = config_get_domain_url(a->config),
                              .ca_file = config_get_domain_ca_file(a->config),
                              .launcher = a->launcher,
                      },
                      &a->swmgr);
        if (r < 0) {
                log_error_errno(r, "Failed to open the software manager's state in %s, software management disabled: %m",
                                dir);
                return 0;
        }
        r = swmgr_load_trusted_publishers(a->swmgr, config_get_trusted_publishers(a->config), &error);
        if (r < 0)
                log_warning_errno(r, "Trusted publishers: %s", error ?: strerror(-r));
        else
                log_info("%d trusted package publisher(s) from %s.", r, config_get_trusted_publishers(a->config));
        return 0;
}

/* After the runtime is set up: recovery starts the active components,
 * which need their bus addresses and tokens. */
static int agent_start_swmgr(agent *a) {
        int r;

        if (!a->swmgr)
                return 0;
        r = swmgr_start(a->swmgr);
        if (r < 0) {
                log_error_errno(r, "Failed to recover the software components, software management disabled: %m");
                /* Nothing may keep using it. */
                a->orders = domain_orders_free(a->orders);
                runtime_set_swmgr(a->runtime, NULL);
                a->swmgr = swmgr_free(a->swmgr);
                return 0;
        }
        /* Only now: the commands hold the manager as their userdata. */
        r = swmgr_control_register(a->control, a->swmgr);
        if (r < 0)
                return log_error_errno(r, "Failed to register the software management commands: %m");
        return 0;
}

/* The domain's orders arrive here and go to the software manager
 * (daemon/domain-orders.h), when there is one. */
static void on_domain_message(const rt_message *m, void *userdata) {
        agent *a = userdata;

        if (a->orders) {
                domain_orders_handle_message(a->orders, m);
                return;
        }
        log_debug("Message %" PRIu64 " (%s) from %s on the messaging session; software management is off.",
                  rt_message_get_id(m), rt_message_type_to_string(rt_message_get_type(m)), rt_message_get_from(m));
}

/* The session needs the device to be known to the domain first. */
static void on_registration_event(const registration_event *ev, void *userdata) {
        agent *a = userdata;
        int r;

        if (!a->session || (ev->type != REGISTRATION_EVENT_REGISTERED && ev->type != REGISTRATION_EVENT_UPDATED))
                return;
        r = reg_session_start(a->session);
        if (r < 0)
                log_warning_errno(r, "Failed to start the messaging session: %m");
}

static int agent_setup_session(agent *a) {
        const char *name = config_get_domain_name(a->config);
        int r;

        if (!name) {
                log_info("No [Domain] Name= configured: no messaging session, registration only.");
                return 0;
        }
        r = reg_session_new(a->event, a->identity, a->gates,
                            &(reg_session_options) {
                                    .url = config_get_domain_url(a->config),
                                    .ca_file = config_get_domain_ca_file(a->config),
                                    .domain_name = name,
                                    .state_dir = config_get_state_directory(a->config),
                                    .retry_max_usec = config_get_domain_retry_max_usec(a->config),
                            },
                            &a->session);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the messaging session, no session: %m");
                return 0;
        }
        if (a->swmgr) {
                /* Gives the domain's DM server its principal and reports
                 * every software transition to the domain. */
                r = domain_orders_new(a->swmgr, a->session, name, &a->orders);
                if (r < 0)
                        log_error_errno(r, "Failed to set up the domain's software orders, none taken: %m");
        }
        reg_session_set_message_handler(a->session, on_domain_message, a);
        registration_set_event_handler(a->registration, on_registration_event, a);
        return 0;
}

/* Like software management, registration is a part of the agent, not a
 * condition for it: without it the QoS side still runs (and `status`
 * says why registration is off). */
static int agent_setup_registration(agent *a) {
        const char *url = config_get_domain_url(a->config), *dir = config_get_state_directory(a->config);
        int r;

        if (!url) {
                log_info("No domain configured ([Domain] URL=): registration is off.");
                return 0;
        }
        agent_set_status(a, "Starting: device identity in %s", dir);
        r = identity_load(dir, config_get_domain_endpoint(a->config), &a->identity);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the device identity in %s, registration disabled: %m", dir);
                return 0;
        }
        r = registration_new(a->event, a->identity, a->gates,
                             &(registration_options) {
                                     .url = url,
                                     .ca_file = config_get_domain_ca_file(a->config),
                                     .lifetime_sec = config_get_domain_lifetime_sec(a->config),
                                     .storage_path = dir,
                                     .retry_max_usec = config_get_domain_retry_max_usec(a->config),
                             },
                             &a->registration);
        if (r >= 0)
                r = registration_start(a->registration);
        if (r < 0) {
                log_error_errno(r, "Failed to set up registration with %s, registration disabled: %m", url);
                a->registration = registration_free(a->registration);
                return 0;
        }
        log_info("Device %s (%s) registers with %s.", identity_get_endpoint(a->identity),
                 identity_get_endpoint_source(a->identity), url);
        return agent_setup_session(a);
}

/* End users log in with the messaging session's device token. */
static const char *users_device_token(void *userdata) {
        agent *a = userdata;

        return a->session ? reg_session_get_token(a->session) : NULL;
}

/* Like registration, a part of the agent and not a condition for it;
 * without a domain, user-list and user-logout still work. */
static int agent_setup_users(agent *a) {
        int r;

        r = users_new(a->event,
                      &(users_options) {
                              .url = config_get_domain_url(a->config),
                              .ca_file = config_get_domain_ca_file(a->config),
                              .domain_name = config_get_domain_name(a->config),
                              .state_dir = config_get_state_directory(a->config),
                      },
                      &a->users);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the end users, no user logins: %m");
                return 0;
        }
        users_set_device_token_source(a->users, users_device_token, a);
        r = users_register_commands(a->users, a->control);
        if (r < 0)
                return log_error_errno(r, "Failed to register the user commands: %m");
        return 0;
}

static bool address_is_loopback(const char *address) {
        struct in6_addr a6;
        struct in_addr a4;

        if (inet_pton(AF_INET, address, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        return inet_pton(AF_INET6, address, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* The Local M2M Resource Directory (docs/local-rd.md). Like registration,
 * a part of the agent and not a condition for it: a configuration it
 * cannot work with turns it off, and the log names the key. */
static int agent_setup_local_rd(agent *a) {
        const char *listen = config_get_local_rd_listen(a->config), *url = config_get_domain_url(a->config),
                   *name = config_get_domain_name(a->config);
        bool cleartext = config_get_local_rd_cleartext(a->config);
        int r;

        if (!listen) {
                log_debug("No [LocalRD] Listen=: the Local M2M Resource Directory is off.");
                return 0;
        }
        if (!url || !name) {
                log_error("[LocalRD] Listen= needs [Domain] URL= and Name= (whose tokens peers present): "
                          "the Local M2M Resource Directory is off.");
                return 0;
        }
        if (cleartext && !address_is_loopback(listen)) {
                log_error("[LocalRD] Cleartext=yes is only allowed with a loopback Listen= address, not %s: "
                          "the Local M2M Resource Directory is off.", listen);
                return 0;
        }
        if (!cleartext && (!config_get_local_rd_certificate(a->config) || !config_get_local_rd_key(a->config))) {
                log_error("[LocalRD] Certificate= and Key= are required (or Cleartext=yes on loopback): "
                          "the Local M2M Resource Directory is off.");
                return 0;
        }
        r = jwks_cache_new(a->event,
                           &(jwks_cache_options) { .url = url, .ca_file = config_get_domain_ca_file(a->config),
                                                   .domain = name },
                           &a->jwks);
        if (r >= 0)
                r = jwks_cache_start(a->jwks);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the domain's key set from %s ([Domain] URL=, CAFile=), "
                                   "the Local M2M Resource Directory is off: %m", url);
                a->jwks = jwks_cache_free(a->jwks);
                return 0;
        }
        r = local_rd_new(a->event,
                         &(local_rd_options) { .address = listen,
                                               .port = config_get_local_rd_port(a->config),
                                               .certificate = config_get_local_rd_certificate(a->config),
                                               .key = config_get_local_rd_key(a->config),
                                               .cleartext = cleartext,
                                               .domain = name,
                                               .jwks = a->jwks },
                         &a->local_rd);
        if (r < 0) {
                log_error_errno(r, "Failed to start the Local M2M Resource Directory on %s port %u "
                                   "([LocalRD] Listen=, Port=, Certificate=, Key=), it is off: %m",
                                listen, config_get_local_rd_port(a->config));
                a->jwks = jwks_cache_free(a->jwks);
                return 0;
        }
        log_info("Local M2M Resource Directory at %s%s.", local_rd_get_endpoint(a->local_rd),
                 cleartext ? " (cleartext, loopback only)" : "");
        return 0;
}

/* The runtime (bus, component instances, Global Registry entries) needs
 * a launcher and the runtime's address, which comes with the messaging
 * session's configuration. */
static int agent_setup_runtime(agent *a) {
        int r;

        if (!a->launcher || !a->session) {
                log_info("No %s: components run without the message bus.",
                         a->launcher ? "[Domain] Name= (runtime address)" : "component launcher");
                return 0;
        }
        r = runtime_new(a->event,
                        &(runtime_options) {
                                .domain = config_get_domain_name(a->config),
                                .runtime_address = reg_session_get_runtime(a->session),
                                .bus_socket = config_get_bus_socket(a->config),
                                .domain_url = config_get_domain_url(a->config),
                                .ca_file = config_get_domain_ca_file(a->config),
                                .messaging_stub = config_get_messaging_protostub(a->config),
                                .p2p_stub = config_get_p2p_protostub(a->config),
                                .registry_lifetime_sec = config_get_registry_lifetime_sec(a->config),
                        },
                        a->launcher, a->swmgr, &a->runtime);
        if (r < 0)
                return log_error_errno(r, "Failed to open the message bus on %s ([Agent] BusSocket=): %m",
                                       config_get_bus_socket(a->config));
        runtime_set_session(a->runtime, a->session);
        runtime_set_local_rd(a->runtime, a->local_rd);
        runtime_set_connectivity(a->runtime, qos_state_to_string(qos_machine_get_state(a->qos)));
        r = runtime_control_register(a->runtime, a->control);
        if (r < 0)
                return log_error_errno(r, "Failed to register the runtime commands: %m");
        log_info("Message bus for components at %s.", config_get_bus_socket(a->config));
        return 0;
}

static bool netmon_accept_all(const netmon_link_info *link, void *userdata) {
        /* The agent decides what it watches, so a reload can change it. */
        return true;
}

int agent_new(agent_config *config, agent **ret) {
        _cleanup_agent_ agent *a = NULL;
        qos_params p;
        int r;

        if (!config || !ret)
                return -EINVAL;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->start_usec = now(CLOCK_MONOTONIC);

        config_get_qos_params(config, &p);
        r = qos_machine_new(&p, &a->qos);
        if (r < 0)
                return r;
        qos_machine_set_handler(a->qos, on_transition, a);
        r = gates_new(&a->gates);
        if (r < 0)
                return r;
        r = gates_subscribe(a->gates, _GATE_KIND_INVALID, on_gate, a, NULL);
        if (r < 0)
                return r;
        r = gates_subscribe_mobility(a->gates, on_mobility, a, NULL);
        if (r < 0)
                return r;
        r = sd_event_new(&a->event);
        if (r < 0)
                return r;

        a->config = config;
        *ret = TAKE_PTR(a);
        return 0;
}

int agent_start(agent *a) {
        sigset_t mask;
        int r;

        apply_log_level(a->config);
        agent_set_status(a, "Starting");

        /* A reader that goes away (stderr piped into a pager, a control
         * client) must cost an EPIPE, not the agent; systemd does the same
         * for services with IgnoreSIGPIPE=yes. */
        if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return log_error_errno(errno, "Failed to ignore SIGPIPE: %m");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        r = sd_event_add_signal(a->event, &a->sigterm, SIGTERM, on_stop_signal, a);
        if (r >= 0)
                r = sd_event_add_signal(a->event, &a->sigint, SIGINT, on_stop_signal, a);
        if (r >= 0)
                r = sd_event_add_signal(a->event, &a->sighup, SIGHUP, on_sighup, a);
        if (r < 0)
                return log_error_errno(r, "Failed to install signal handlers: %m");
        r = sd_event_set_watchdog(a->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        r = agent_setup_bpf(a);
        if (r < 0)
                return r;

        agent_set_status(a, "Starting: opening control socket %s", config_get_control_socket(a->config));
        r = control_server_new(a->event, config_get_control_socket(a->config), &a->control);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on control socket %s: %m",
                                       config_get_control_socket(a->config));
        r = control_server_add_command(a->control, "status", on_status, a);
        if (r >= 0)
                r = control_server_add_command(a->control, "qos", on_qos, a);
        if (r < 0)
                return log_error_errno(r, "Failed to register control commands: %m");

        r = agent_setup_swmgr(a);
        if (r < 0)
                return r;

        r = agent_setup_registration(a);
        if (r < 0)
                return r;

        r = agent_setup_users(a);
        if (r < 0)
                return r;

        r = agent_setup_local_rd(a);
        if (r < 0)
                return r;

        r = agent_setup_runtime(a);
        if (r < 0)
                return r;

        r = agent_start_swmgr(a);
        if (r < 0)
                return r;

        agent_set_status(a, "Starting: reading links, addresses and routes");
        r = netmon_new(a->event, &a->netmon);
        if (r >= 0)
                r = netmon_set_callback(a->netmon, on_netmon_event, a);
        if (r >= 0)
                r = netmon_set_ready_callback(a->netmon, on_netmon_ready, a);
        if (r >= 0)
                r = netmon_set_filter(a->netmon, netmon_accept_all, a);
        if (r >= 0)
                r = netmon_start(a->netmon);
        if (r < 0)
                return log_error_errno(r, "Failed to start the netlink monitor: %m");

        return 0;
}

int agent_run(agent *a) {
        return sd_event_loop(a->event);
}

agent *agent_free(agent *a) {
        if (!a)
                return NULL;
        a->poll_timer = sd_event_source_disable_unref(a->poll_timer);
        a->sigterm = sd_event_source_disable_unref(a->sigterm);
        a->sigint = sd_event_source_disable_unref(a->sigint);
        a->sighup = sd_event_source_disable_unref(a->sighup);
        control_server_free(a->control);
        /* Before what it borrows: the launcher, the manager, the Local RD. */
        runtime_free(a->runtime);
        /* Before the key set it borrows. */
        local_rd_free(a->local_rd);
        jwks_cache_free(a->jwks);
        /* Before the manager and the session it borrows. */
        domain_orders_free(a->orders);
        users_free(a->users);
        /* Before the gates: it holds a subscription. */
        swmgr_free(a->swmgr);
        /* After everything that starts components through it. */
        launcher_free(a->launcher);
        reg_session_free(a->session);
        registration_free(a->registration);
        identity_free(a->identity);
        netmon_free(a->netmon);
        /* Detaches every tc filter and the sock_ops link. */
        qosbpf_free(a->bpf);
        qos_machine_free(a->qos);
        gates_free(a->gates);
        config_free(a->config);
        sd_event_unref(a->event);
        free(a->links);
        free(a->bpf_reason);
        free(a->status);
        free(a);
        return NULL;
}

sd_event *agent_get_event(agent *a) {
        return a->event;
}

gates *agent_get_gates(agent *a) {
        return a->gates;
}

struct launcher *agent_get_launcher(agent *a) {
        return a->launcher;
}

swmgr *agent_get_swmgr(agent *a) {
        return a->swmgr;
}

const qos_machine *agent_get_qos(agent *a) {
        return a->qos;
}
