/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "component-store.h"
#include "db.h"
#include "time-util.h"

struct component_store {
        db *db;
};

static const char *const migrations[] = {
        "CREATE TABLE components ("
        "  name TEXT PRIMARY KEY NOT NULL,"
        "  version TEXT NOT NULL,"
        "  descriptor TEXT NOT NULL,"
        "  state TEXT NOT NULL,"
        "  result INTEGER NOT NULL,"
        "  reason TEXT,"
        "  active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),"
        "  bytes INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),"
        "  total INTEGER NOT NULL DEFAULT 0 CHECK (total >= 0),"
        "  etag TEXT,"
        "  acl TEXT NOT NULL,"
        "  created_usec INTEGER NOT NULL,"
        "  updated_usec INTEGER NOT NULL"
        ");",
};

void component_record_done(component_record *r) {
        if (!r)
                return;
        free(r->name);
        free(r->version);
        free(r->descriptor);
        free(r->state);
        free(r->reason);
        free(r->etag);
        free(r->acl);
        *r = (component_record) {};
}

void component_records_free(component_record *r, size_t n) {
        for (size_t i = 0; r && i < n; i++)
                component_record_done(&r[i]);
        free(r);
}

static int dup_str(char **dst, const char *src) {
        *dst = NULL;
        if (!src)
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

int component_record_copy(component_record *dst, const component_record *src) {
        component_record c = {
                .result = src->result,
                .active = src->active,
                .bytes = src->bytes,
                .total = src->total,
                .created_usec = src->created_usec,
                .updated_usec = src->updated_usec,
        };

        if (dup_str(&c.name, src->name) < 0 || dup_str(&c.version, src->version) < 0 ||
            dup_str(&c.descriptor, src->descriptor) < 0 || dup_str(&c.state, src->state) < 0 ||
            dup_str(&c.reason, src->reason) < 0 || dup_str(&c.etag, src->etag) < 0 ||
            dup_str(&c.acl, src->acl) < 0) {
                component_record_done(&c);
                return -ENOMEM;
        }
        *dst = c;
        return 0;
}

int component_store_open(const char *path, component_store **ret, char **ret_reason) {
        _cleanup_db_ db *d = NULL;
        component_store *s;
        int r;

        if (!path || !ret)
                return -EINVAL;
        r = db_open(path, DB_OPEN_MKDIR, &d, ret_reason);
        if (r < 0)
                return r;
        r = db_migrate(d, migrations, ELEMENTSOF(migrations));
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->db = TAKE_PTR(d);
        *ret = s;
        return 0;
}

component_store *component_store_free(component_store *s) {
        if (!s)
                return NULL;
        db_close(s->db);
        free(s);
        return NULL;
}

int component_store_put(component_store *s, component_record *rec) {
        sqlite3_stmt *st;
        uint64_t t = now(CLOCK_REALTIME);
        int r;

        if (!s || !rec || !rec->name || !rec->version || !rec->descriptor || !rec->state || !rec->acl)
                return -EINVAL;
        r = db_prepare(s->db,
                       "INSERT OR REPLACE INTO components (name, version, descriptor, state, result, reason,"
                       " active, bytes, total, etag, acl, created_usec, updated_usec)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                       &st);
        if (r < 0)
                return r;
        if ((r = db_bind_text(s->db, st, 1, rec->name)) < 0 ||
            (r = db_bind_text(s->db, st, 2, rec->version)) < 0 ||
            (r = db_bind_text(s->db, st, 3, rec->descriptor)) < 0 ||
            (r = db_bind_text(s->db, st, 4, rec->state)) < 0 ||
            (r = db_bind_int64(s->db, st, 5, rec->result)) < 0 ||
            (r = db_bind_text(s->db, st, 6, rec->reason)) < 0 ||
            (r = db_bind_int64(s->db, st, 7, rec->active)) < 0 ||
            (r = db_bind_int64(s->db, st, 8, (int64_t) rec->bytes)) < 0 ||
            (r = db_bind_int64(s->db, st, 9, (int64_t) rec->total)) < 0 ||
            (r = db_bind_text(s->db, st, 10, rec->etag)) < 0 ||
            (r = db_bind_text(s->db, st, 11, rec->acl)) < 0 ||
            (r = db_bind_int64(s->db, st, 12, (int64_t) (rec->created_usec ?: t))) < 0 ||
            (r = db_bind_int64(s->db, st, 13, (int64_t) t)) < 0) {
                db_reset(st);
                return r;
        }
        r = db_step_done(s->db, st);
        if (r < 0)
                return r;
        if (!rec->created_usec)
                rec->created_usec = t;
        rec->updated_usec = t;
        return 0;
}

static int col_str(sqlite3_stmt *st, int i, char **ret) {
        const unsigned char *v = sqlite3_column_text(st, i);

        return dup_str(ret, (const char *) v);
}

static int read_row(sqlite3_stmt *st, component_record *ret) {
        component_record c = {
                .result = sqlite3_column_int(st, 4),
                .active = sqlite3_column_int(st, 6) != 0,
                .bytes = (uint64_t) sqlite3_column_int64(st, 7),
                .total = (uint64_t) sqlite3_column_int64(st, 8),
                .created_usec = (uint64_t) sqlite3_column_int64(st, 11),
                .updated_usec = (uint64_t) sqlite3_column_int64(st, 12),
        };

        if (col_str(st, 0, &c.name) < 0 || col_str(st, 1, &c.version) < 0 || col_str(st, 2, &c.descriptor) < 0 ||
            col_str(st, 3, &c.state) < 0 || col_str(st, 5, &c.reason) < 0 || col_str(st, 9, &c.etag) < 0 ||
            col_str(st, 10, &c.acl) < 0) {
                component_record_done(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

#define COLUMNS                                                                                        \
        "name, version, descriptor, state, result, reason, active, bytes, total, etag, acl, created_usec," \
        " updated_usec"

int component_store_get(component_store *s, const char *name, component_record *ret) {
        sqlite3_stmt *st;
        int r;

        if (!s || !name || !ret)
                return -EINVAL;
        r = db_prepare(s->db, "SELECT " COLUMNS " FROM components WHERE name = ?1", &st);
        if (r < 0)
                return r;
        r = db_bind_text(s->db, st, 1, name);
        if (r < 0)
                return r;
        r = db_step(s->db, st);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        r = read_row(st, ret);
        db_reset(st);
        return r;
}

int component_store_delete(component_store *s, const char *name) {
        sqlite3_stmt *st;
        int r;

        if (!s || !name)
                return -EINVAL;
        r = db_prepare(s->db, "DELETE FROM components WHERE name = ?1", &st);
        if (r < 0)
                return r;
        r = db_bind_text(s->db, st, 1, name);
        if (r < 0)
                return r;
        r = db_step_done(s->db, st);
        if (r < 0)
                return r;
        return r > 0;
}

int component_store_list(component_store *s, component_record **ret, size_t *ret_n) {
        component_record *l = NULL;
        size_t n = 0;
        sqlite3_stmt *st;
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        r = db_prepare(s->db, "SELECT " COLUMNS " FROM components ORDER BY name", &st);
        if (r < 0)
                return r;
        for (;;) {
                component_record *a;

                r = db_step(s->db, st);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                a = reallocarray(l, n + 1, sizeof(*a));
                if (!a) {
                        r = -ENOMEM;
                        goto fail_reset;
                }
                l = a;
                r = read_row(st, &l[n]);
                if (r < 0)
                        goto fail_reset;
                n++;
        }
        *ret = l;
        *ret_n = n;
        return 0;
fail_reset:
        db_reset(st);
fail:
        component_records_free(l, n);
        return r;
}
