/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The rethink-agent object: ties the configuration, the netlink monitor,
 * the eBPF loader, the QoS state machine, the gates, the journal entries
 * and the control socket together on one sd-event loop.
 *
 * Lifecycle and service manager protocol (that of Type=notify-reload; with
 * systemd 252 the unit says Type=notify and ExecReload= sends SIGHUP):
 *   agent_start()  STATUS= lines while it sets up; READY=1 once the first
 *                  netlink dump is done and the eBPF programs are attached.
 *   SIGHUP         RELOADING=1, re-read the configuration (a bad one is
 *                  logged naming the key and the old one stays), READY=1.
 *   SIGTERM/INT    STOPPING=1, leave the loop; agent_free() detaches every
 *                  eBPF program, so nothing of ours stays in the kernel.
 *   WATCHDOG_USEC  watchdog pings from the loop (sd_event_set_watchdog). */

#include "config.h"
#include "gate.h"
#include "macro.h"
#include "qos.h"
#include "swmgr.h"

typedef struct agent agent;
typedef struct sd_event sd_event;

/* Takes ownership of config on success. */
int agent_new(agent_config *config, agent **ret);
agent *agent_free(agent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(agent *, agent_free);
#define _cleanup_agent_ _cleanup_(agent_freep)

/* Sets up signals, eBPF (or netlink-only), the control socket and the
 * netlink monitor. Logs its own errors; returns negative errno. */
int agent_start(agent *a);
/* Runs the loop until SIGTERM/SIGINT; returns 0 or negative errno. */
int agent_run(agent *a);

sd_event *agent_get_event(agent *a);
gates *agent_get_gates(agent *a);
/* NULL when software management could not be set up (logged). */
swmgr *agent_get_swmgr(agent *a);
/* NULL when software management is off. */
struct launcher *agent_get_launcher(agent *a);
const qos_machine *agent_get_qos(agent *a);
