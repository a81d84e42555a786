/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Device management, after the LWM2M registration interface:
 *
 *   POST   /dm/rd?ep=<endpoint>&lt=<lifetime>   register (201, or 200 when
 *                                               the endpoint is known)
 *   POST   /dm/rd/<id>[?lt=<lifetime>]          update / keep-alive (204)
 *   DELETE /dm/rd/<id>                          de-register (204)
 *   GET    /admin/devices[/<endpoint>]          list (admin)
 *   POST   /admin/devices/<endpoint>/claim      claim (admin)
 *
 * A device is bound to the public key it first registered with; another
 * key for the same endpoint is refused (409). A registration whose
 * lifetime runs out becomes "expired": one timer is armed for the next
 * expiry only, so nothing wakes while nothing expires. The device record
 * (key, claim) outlives its registrations. docs/protocol.md has the
 * details. */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "db.h"
#include "macro.h"
#include "router.h"

#define DM_ENDPOINT_MAX 64

typedef struct dm dm;

typedef struct dm_lifetimes {
        unsigned default_sec, min_sec, max_sec;
} dm_lifetimes;

int dm_new(sd_event *e, db *d, dm **ret);
dm *dm_free(dm *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(dm *, dm_free);
#define _cleanup_dm_ _cleanup_(dm_freep)

void dm_set_lifetimes(dm *m, const dm_lifetimes *l);
/* Expires what ran out while we were down and arms the timer. */
int dm_start(dm *m);
int dm_add_routes(dm *m, router *r);

/* The device record as GET /admin/devices/<endpoint> shows it (endpoint,
 * state, claimed, runtimeVersion, arch, ...), in *ret (to be decref'd).
 * -ENOENT for an unknown endpoint. For other domain services. */
int dm_get_device(dm *m, const char *endpoint, json_t **ret);

/* 1-64 bytes of [A-Za-z0-9._:-], starting with a letter or digit. */
bool dm_endpoint_is_valid(const char *s);
