/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Global Registry: hyperty instances and data objects that runtimes
 * register, keep alive and unregister, and that anyone with a token
 * discovers by user, url, resource type, data scheme, tag and status.
 *
 *   PUT    /registry/hyperties/<uuid>            register or update (runtime)
 *   POST   /registry/hyperties/<uuid>/keepalive  keep alive (runtime)
 *   DELETE /registry/hyperties/<uuid>            unregister (runtime, admin)
 *   GET    /registry/hyperties/<uuid>            one entry (runtime, admin)
 *   GET    /registry/hyperties?user=&url=&resource=&scheme=&tag=&status=&limit=&cursor=
 *                                                discovery, keyset paging
 *   ... and the same under /registry/dataobjects.
 *
 * A device acts on its own entries only: the token's subject owns the
 * runtime it registers (the first device to use a runtime URL keeps it)
 * and the entries it registered.
 *
 * An entry not kept alive goes from "live" to "disconnected" when it
 * expires and is removed a grace period later. One timer is armed for the
 * next of these deadlines only. Every status change ("live",
 * "disconnected", "deleted") is handed to the status handler, which the
 * Messaging Service uses to publish it.
 *
 * State lives in its own SQLite file, <state_dir>/registry.db, with side
 * tables indexing each discovery key. docs/protocol.md has the details. */

#include <systemd/sd-event.h>

#include "idm.h"
#include "macro.h"
#include "registry-record.h"
#include "router.h"

#define REGISTRY_FILE_NAME "registry.db"
#define REGISTRY_BODY_MAX (16U * 1024U)
#define REGISTRY_PAGE_DEFAULT 20U
#define REGISTRY_PAGE_MAX 100U

#define REGISTRY_STATUS_LIVE "live"
#define REGISTRY_STATUS_DISCONNECTED "disconnected"
#define REGISTRY_STATUS_DELETED "deleted"

typedef struct registry registry;

typedef struct registry_lifetimes {
        unsigned default_sec, min_sec, max_sec;
        /* How long a disconnected entry stays before it is removed. */
        unsigned grace_sec;
} registry_lifetimes;

#define REGISTRY_LIFETIMES_DEFAULT \
        ((registry_lifetimes) { .default_sec = 300, .min_sec = 10, .max_sec = 86400, .grace_sec = 300 })

/* Called after the change is committed; url is the entry's url. */
typedef void (*registry_status_handler_t)(const char *url, const char *status, void *userdata);

/* domain: this domain's name (addresses must be of it). i checks the
 * bearer tokens; it must outlive the registry. */
int registry_new(sd_event *e, const char *state_dir, const char *domain, idm *i, registry **ret);
registry *registry_free(registry *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(registry *, registry_free);
#define _cleanup_registry_ _cleanup_(registry_freep)

void registry_set_lifetimes(registry *r, const registry_lifetimes *l);
void registry_set_status_handler(registry *r, registry_status_handler_t handler, void *userdata);
/* Applies what expired while we were down and arms the timer. */
int registry_start(registry *r);
int registry_add_routes(registry *r, router *rt);

/* Which runtime hosts the entry with that url (live or disconnected): 1
 * with *ret_runtime (to be freed), 0 when there is no such entry, negative
 * errno on failure. For the Messaging Service's routing. */
int registry_get_runtime(registry *r, const char *url, char **ret_runtime);

/* Entries of that kind in any status (tests, metrics). */
int registry_count(registry *r, registry_kind kind, uint64_t *ret);
