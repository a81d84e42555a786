/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The software manager alone, as the agent runs it, for crash tests:
 *
 *   swm-agent --state-dir=DIR --socket=PATH --catalogue=URL --publishers=DIR
 *             [--crash-at=STATE] [--gate=open|closed]
 *
 * Serves the software management commands of the control socket plus a
 * test-only "gate" command ({"open": true|false}) that drives the
 * downloads gate. With --crash-at the process SIGKILLs itself right after
 * the transition into STATE was committed, i.e. at the worst moment for
 * recovery. */

#include <getopt.h>
#include <signal.h>

#include "control.h"
#include "gate.h"
#include "log.h"
#include "swmgr-control.h"
#include "swmgr.h"

static swm_state crash_at = _SWM_STATE_INVALID;

static void on_event(const swmgr_event *ev, void *userdata) {
        if (ev->state == crash_at && !ev->removed) {
                log_info("swm-agent: crashing in %s as asked", swm_state_to_string(ev->state));
                (void) raise(SIGKILL);
        }
}

static int on_gate(control_request *req, json_t **ret_result, void *userdata) {
        json_t *open = json_object_get(control_request_get_args(req), "open");

        if (!json_is_boolean(open))
                return control_request_set_error(req, 400, "expected {\"open\": bool}");
        gates_update(userdata, json_is_true(open) ? QOS_ONLINE : QOS_OFFLINE, false, false);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char *argv[]) {
        const char *state_dir = NULL, *sock = NULL, *catalogue = NULL, *publishers = NULL;
        _cleanup_control_server_ control_server *ctl = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_gates_ gates *g = NULL;
        swmgr *m = NULL;
        bool gate_open = true;
        sd_event *e = NULL;
        sigset_t mask;
        int opt, r;
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, 's' },
                { "socket", required_argument, NULL, 'k' },
                { "catalogue", required_argument, NULL, 'c' },
                { "publishers", required_argument, NULL, 'p' },
                { "crash-at", required_argument, NULL, 'x' },
                { "gate", required_argument, NULL, 'g' },
                {},
        };

        log_open();
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (opt) {
                case 's': state_dir = optarg; break;
                case 'k': sock = optarg; break;
                case 'c': catalogue = optarg; break;
                case 'p': publishers = optarg; break;
                case 'x':
                        crash_at = swm_state_from_string(optarg);
                        if (crash_at < 0) {
                                fprintf(stderr, "unknown state %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'g': gate_open = streq(optarg, "open"); break;
                default: return 2;
                }
        }
        if (!state_dir || !sock) {
                fprintf(stderr, "usage: %s --state-dir=DIR --socket=PATH [--catalogue=URL] [--publishers=DIR]\n",
                        argv[0]);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        if (sd_event_default(&e) < 0 || gates_new(&g) < 0)
                return 1;
        (void) sd_event_add_signal(e, NULL, SIGTERM, on_signal, NULL);
        (void) sd_event_add_signal(e, NULL, SIGINT, on_signal, NULL);
        r = control_server_new(e, sock, &ctl);
        if (r < 0)
                return log_error_errno(r, "control socket %s: %m", sock), 1;
        r = swmgr_new(e, g, &(swmgr_options) {
                                    .state_dir = state_dir,
                                    .catalogue_url = catalogue,
                                    .retry_initial = 100 * USEC_PER_MSEC,
                                    .retry_max = 500 * USEC_PER_MSEC,
                            },
                      &m);
        if (r < 0)
                return log_error_errno(r, "swmgr: %m"), 1;
        swmgr_set_event_handler(m, on_event, NULL);
        if (publishers && swmgr_load_trusted_publishers(m, publishers, &error) < 0)
                return log_error("publishers: %s", strna(error)), 1;
        if (swmgr_control_register(ctl, m) < 0 || control_server_add_command(ctl, "gate", on_gate, g) < 0)
                return 1;
        r = swmgr_start(m);
        if (r < 0)
                return log_error_errno(r, "swmgr_start: %m"), 1;
        if (gate_open)
                gates_update(g, QOS_ONLINE, false, false);
        log_info("swm-agent: ready");
        r = sd_event_loop(e);
        swmgr_free(m);
        control_server_free(TAKE_PTR(ctl));
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}
