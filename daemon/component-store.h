/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Persistent state of the software manager: one row per component in its
 * own SQLite file (<state directory>/components.db), written through
 * lib/db (WAL, synchronous=FULL), so a put that returned is on disk.
 *
 * The store knows nothing about the state machine: it keeps records.
 * Every put replaces the whole row in one transaction; a record is
 * either the old one or the new one after a crash. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef struct component_store component_store;

/* One component as persisted. Strings are owned by the record (see
 * component_record_done()). */
typedef struct component_record {
        char *name;             /* objectName, the key */
        char *version;
        char *descriptor;       /* the descriptor JSON as received */
        char *state;            /* state machine name, e.g. "DELIVERED" */
        int result;             /* LWM2M Object 9 result code */
        char *reason;           /* for people; may be NULL */
        bool active;            /* activation wanted (INSTALLED only) */
        uint64_t bytes;         /* bytes downloaded so far (progress) */
        uint64_t total;         /* package size once known, else 0 */
        char *etag;             /* of the partial download, for If-Range; may be NULL */
        char *acl;              /* ACL JSON (daemon/acl.h) */
        uint64_t created_usec;  /* CLOCK_REALTIME */
        uint64_t updated_usec;
} component_record;

void component_record_done(component_record *r);
/* Deep copy; dst is overwritten. */
int component_record_copy(component_record *dst, const component_record *src);
void component_records_free(component_record *r, size_t n);

/* Opens (creating and migrating) the database at path; parents are
 * created. *ret_reason as db_open(). */
int component_store_open(const char *path, component_store **ret, char **ret_reason);
component_store *component_store_free(component_store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(component_store *, component_store_free);
#define _cleanup_component_store_ _cleanup_(component_store_freep)

/* Inserts or replaces the row of rec->name; updated_usec is set to now
 * (and created_usec when it is 0). */
int component_store_put(component_store *s, component_record *rec);
/* -ENOENT when there is no such component. */
int component_store_get(component_store *s, const char *name, component_record *ret);
/* Returns 1 when a row was deleted, 0 when there was none. */
int component_store_delete(component_store *s, const char *name);
/* Every component, ordered by name. */
int component_store_list(component_store *s, component_record **ret, size_t *ret_n);
