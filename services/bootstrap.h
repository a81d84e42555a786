/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Bootstrap orders (the M2M device bootstrap, steps 5-16): an admin picks
 * an application and a set of hyperties and protostubs for a claimed
 * device; each becomes a component order sent to the device's runtime on
 * its messaging session, from the domain's device management server
 * (domain://catalogue.<domain>/dm, principal "dm:<domain>" on the device).
 * The device answers each order and reports every transition of its
 * software manager (LWM2M Object 9 states and results) back to that
 * address; they are recorded and streamed to admins as they arrive.
 *
 *   POST /admin/devices/<ep>/bootstrap                    orders (202)
 *   GET  /admin/devices/<ep>/components                   last reports
 *   GET  /admin/devices/<ep>/orders                       orders, newest first
 *   POST /admin/devices/<ep>/components/<name>/<action>   confirm, cancel,
 *                                                         activate,
 *                                                         deactivate,
 *                                                         uninstall (202)
 *   GET  /admin/events                                    NDJSON, live
 *
 * Orders for a device without a session wait in <state_dir>/bootstrap.db
 * ("queued") and go out when its runtime's stream attaches. docs/bootstrap.md
 * has the messages and the records. */

#include <systemd/sd-event.h>

#include "catalogue.h"
#include "dm.h"
#include "macro.h"
#include "msg.h"
#include "router.h"

#define BOOTSTRAP_DB_FILE_NAME "bootstrap.db"
/* Journal: a device reported an error result (50-59) for a component; a
 * device refused an order. Explained in units/rethink.catalog. */
#define BOOTSTRAP_MESSAGE_ID_REPORT_ERROR "9f4caf53aabe40dfb30a3c0cb048181b"
#define BOOTSTRAP_MESSAGE_ID_ORDER_REFUSED "6ab3e3075936422fa4bcf70b31f7a95f"
/* Components in one bootstrap request. */
#define BOOTSTRAP_COMPONENTS_MAX 64
/* Bytes an admin's event stream may fall behind before it is ended. */
#define BOOTSTRAP_EVENTS_MAX_QUEUED (1024u * 1024u)

typedef struct bootstrap bootstrap;

/* Takes references to nothing: c, d and m must outlive b (and b must be
 * freed before m, whose service table points at it). Opens
 * state_dir/bootstrap.db and registers the DM address with m. */
int bootstrap_new(sd_event *e, const char *domain_name, const char *state_dir, catalogue *c, dm *d, msg *m,
                  bootstrap **ret);
/* Ends the admins' event streams. */
bootstrap *bootstrap_free(bootstrap *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(bootstrap *, bootstrap_free);
#define _cleanup_bootstrap_ _cleanup_(bootstrap_freep)

int bootstrap_add_routes(bootstrap *b, router *r);

/* domain://catalogue.<domain>/dm */
const char *bootstrap_get_dm_address(const bootstrap *b);
/* Admin event streams open now. */
size_t bootstrap_get_n_watchers(const bootstrap *b);
