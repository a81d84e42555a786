/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Global M2M Resource Directory: for every ctxt:// resource its last
 * value (SenML), its reporter (the address that publishes it, and the
 * runtime that address lives in, where actuation goes), and who
 * subscribed to it.
 *
 * Everything is held in memory for fan-out and mirrored in the Messaging
 * Service's SQLite file (the caller opens it, see msg.h):
 *   - a subscription is committed before rd_subscribe() returns, so once a
 *     subscriber is told "200" a SIGKILL cannot lose it;
 *   - last values are written in group commits: rd_publish() marks the
 *     resource, and one transaction writes every marked resource when the
 *     event loop has nothing else to do (or at once past RD_DIRTY_MAX).
 *     Publications arriving back to back thus cost one fsync together
 *     rather than one each. The flush handler hears of every commit, so a
 *     caller can hold its acknowledgement until the value is on disk.
 *
 * A subscription to ctxt://d/a also receives the publications to
 * ctxt://d/a/b (whole path segments, as rt_address_has_prefix()). */

#include <jansson.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "db.h"
#include "macro.h"

#define RD_DIRTY_MAX 1024u

typedef struct rd rd;

/* Loads every resource and subscription of d, whose schema (tables
 * resources and subscriptions) msg.c migrates. */
int rd_new(sd_event *e, db *d, rd **ret);
/* Writes pending last values first. */
rd *rd_free(rd *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(rd *, rd_free);
#define _cleanup_rd_ _cleanup_(rd_freep)

/* Writes every pending last value now. */
int rd_flush(rd *r);
/* True while last values wait for their commit. */
bool rd_has_pending(rd *r);
/* Called after each group commit: 0, or the error of a commit that
 * failed (the values stay pending and are tried again). */
typedef void (*rd_flushed_fn)(int error, void *userdata);
void rd_set_flush_handler(rd *r, rd_flushed_fn fn, void *userdata);

/* 1 when new, 0 when the subscriber had one already (its runtime is
 * updated); committed on return. */
int rd_subscribe(rd *r, const char *resource, const char *subscriber, const char *runtime);
/* -ENOENT when there was no such subscription. */
int rd_unsubscribe(rd *r, const char *resource, const char *subscriber);
size_t rd_get_n_subscriptions(rd *r);

/* Calls fn for every subscription to resource or to a prefix of it; a
 * negative return of fn stops and is returned. */
typedef int (*rd_subscriber_fn)(const char *subscriber, const char *runtime, void *userdata);
int rd_foreach_subscriber(rd *r, const char *resource, rd_subscriber_fn fn, void *userdata);

/* The last value (borrowed; NULL when none was published yet) and the
 * reporter (NULL when none). -ENOENT for a resource never created. Any
 * return pointer may be NULL. */
int rd_get(rd *r, const char *resource, json_t **ret_value, const char **ret_reporter,
           const char **ret_reporter_runtime);
/* Sets the reporter (when reporter is given) and the last value (when
 * value is given: a new reference is taken). */
int rd_publish(rd *r, const char *resource, const char *reporter, const char *runtime, json_t *value);
/* Forgets the resource's value and reporter; its subscriptions stay.
 * -ENOENT when unknown. */
int rd_remove(rd *r, const char *resource);

/* Every created resource in name order, with its reporter and runtime
 * (NULL when none), last value (borrowed, NULL when none) and number of
 * subscriptions to it. fn returns 0 to go on, > 0 to stop (returned as
 * 0), < 0 to fail (returned). */
typedef int (*rd_resource_fn)(const char *resource, const char *reporter, const char *runtime, json_t *value,
                              size_t n_subscribers, void *userdata);
int rd_foreach_resource(rd *r, rd_resource_fn fn, void *userdata);
