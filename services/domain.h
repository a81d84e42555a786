/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The rethink-domain object: ties configuration, the SQLite store, the
 * HTTP/2 listener, the router and the services together on one sd-event
 * loop.
 *
 * Lifecycle and service manager protocol (Type=notify-reload):
 *   domain_start()  opens the state directory and database, listens (or
 *                   takes over the one socket passed with LISTEN_FDS, whose
 *                   address then decides whether h2c is allowed);
 *                   domain_run() then sends READY=1.
 *   SIGHUP          RELOADING=1, re-read the configuration (a bad one is
 *                   logged naming the key and the old one stays), READY=1.
 *                   Reloaded: LogLevel, admin credential, trusted
 *                   publishers, MaxPackageSize, lifetimes. The rest needs a
 *                   restart (logged).
 *   SIGTERM/INT     STOPPING=1, stop accepting, GOAWAY, let open streams
 *                   finish for ShutdownGraceSec, then exit. A second
 *                   signal exits at once. */

#include <systemd/sd-event.h>

#include "domain-config.h"
#include "macro.h"

typedef struct domain domain;

/* e NULL: the thread's default loop. Takes ownership of config on
 * success. */
int domain_new(sd_event *e, domain_config *config, domain **ret);
domain *domain_free(domain *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(domain *, domain_free);
#define _cleanup_domain_ _cleanup_(domain_freep)

/* Logs its own errors; returns negative errno. */
int domain_start(domain *d);
/* Applies the reloadable part of config (which it takes on success). */
int domain_apply_config(domain *d, domain_config *config);
/* Signals, READY=1, the loop until SIGTERM/SIGINT. */
int domain_run(domain *d);

sd_event *domain_get_event(domain *d);
int domain_get_port(domain *d);
