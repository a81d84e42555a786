/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A stand-in for rethink-agent's control socket with fixed answers, so the
 * rethinkctl tests can check its output and exit codes exactly:
 *
 *   ctl-fake-agent SOCKET ok        status and qos answer fixed results
 *   ctl-fake-agent SOCKET error     both answer error 503 "Agent is starting"
 *   ctl-fake-agent SOCKET silent    listens, never answers (timeouts)
 *
 * The real control server serves it; SIGTERM stops it and removes SOCKET. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "log.h"

static int on_status(control_request *req, json_t **ret_result, void *userdata) {
        *ret_result = json_pack("{s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:I}", "version", "0.1.0", "pid", (json_int_t) 4242,
                                "uptime_usec", (json_int_t) 3725000000LL, "status_text",
                                "online via eth0 (usable)", "qos", "degraded", "bpf", "netlink-only",
                                "bpf_reason", "not permitted", "interfaces", (json_int_t) 2);
        return *ret_result ? 0 : -ENOMEM;
}

static int on_qos(control_request *req, json_t **ret_result, void *userdata) {
        struct timespec ts;
        json_int_t since;

        clock_gettime(CLOCK_REALTIME, &ts);
        /* 185.5 s ago: "3min 5s ago". */
        since = (json_int_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - 185500000;
        *ret_result = json_pack(
                "{s:{s:s,s:I,s:s},s:{s:b,s:s},s:{s:{s:b,s:s},s:{s:b,s:s}},s:{s:s,s:s},"
                "s:[{s:s,s:i,s:s,s:s,s:I,s:s,s:b,s:s,s:b,s:[s,s],s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
                "{s:s,s:i,s:s,s:s,s:I,s:s,s:b,s:s,s:b,s:[],s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}]}",
                "overall", "state", "degraded", "since_usec", since, "reason", "retransmits",
                "bpf", "enabled", 1, "reason", "",
                "gates", "downloads", "open", 0, "reason", "degraded", "registration", "open", 1, "reason", "degraded",
                "primary", "interface", "eth0", "address", "10.0.0.2/24",
                "interfaces",
                "name", "eth0", "ifindex", 2, "state", "degraded", "prev_state", "online", "since_usec", since,
                "reason", "retransmits", "metered", 0, "oper_state", "up", "carrier", 1, "addresses",
                "10.0.0.2/24", "fe80::1/64", "default_route", 1, "rtt_us", (json_int_t) 1250,
                "retrans_per_mille", (json_int_t) 15, "rto_events", (json_int_t) 0, "rx_bps",
                (json_int_t) 1500000, "tx_bps", (json_int_t) 100, "rx_bytes", (json_int_t) 1536, "tx_bytes",
                (json_int_t) 0,
                "name", "wlan0", "ifindex", 3, "state", "offline", "prev_state", "online", "since_usec", since,
                "reason", "link-down", "metered", 1, "oper_state", "down", "carrier", 0, "addresses",
                "default_route", 0, "rtt_us", (json_int_t) 0, "retrans_per_mille", (json_int_t) 0,
                "rto_events", (json_int_t) 0, "rx_bps", (json_int_t) 0, "tx_bps", (json_int_t) 0, "rx_bytes",
                (json_int_t) 0, "tx_bytes", (json_int_t) 0);
        return *ret_result ? 0 : -ENOMEM;
}

static int on_error(control_request *req, json_t **ret_result, void *userdata) {
        return control_request_set_error(req, 503, "Agent is starting");
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char **argv) {
        sd_event *e = NULL;
        control_server *s = NULL;
        sigset_t mask;
        bool error;
        int r;

        log_open();
        if (argc != 3 || !(streq(argv[2], "ok") || streq(argv[2], "error") || streq(argv[2], "silent"))) {
                fprintf(stderr, "Usage: %s SOCKET ok|error|silent\n", argv[0]);
                return 2;
        }
        error = streq(argv[2], "error");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return 1;
        r = sd_event_new(&e);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGTERM, on_term, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, on_term, NULL);
        if (r >= 0)
                r = control_server_new(e, argv[1], &s);
        if (r >= 0 && !streq(argv[2], "silent")) {
                r = control_server_add_command(s, "status", error ? on_error : on_status, NULL);
                if (r >= 0)
                        r = control_server_add_command(s, "qos", error ? on_error : on_qos, NULL);
        }
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return 1;
        }

        if (streq(argv[2], "silent")) {
                /* Accepting happens on the loop; without it connections sit
                 * in the backlog and nothing is ever answered. */
                sigset_t all;
                int sig;

                sigemptyset(&all);
                sigaddset(&all, SIGTERM);
                sigaddset(&all, SIGINT);
                (void) sigwait(&all, &sig);
        } else
                r = sd_event_loop(e);

        control_server_free(s);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}
