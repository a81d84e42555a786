/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fileio.h"
#include "log.h"

struct db_stmt_entry {
        char *sql;
        sqlite3_stmt *stmt;
};

struct db {
        sqlite3 *handle;
        char *path;
        char *error;
        struct db_stmt_entry *stmts;
        size_t n_stmts, allocated_stmts;
        unsigned savepoint_depth;
};

int db_errno_from_sqlite(int rc) {
        switch (rc) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_CONSTRAINT_FOREIGNKEY:
                return -ENOLINK;
        case SQLITE_CONSTRAINT_NOTNULL:
        case SQLITE_CONSTRAINT_CHECK:
        case SQLITE_CONSTRAINT_DATATYPE:
                return -EINVAL;
        }

        switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_NOLFS:
                return -EFBIG;
        case SQLITE_INTERRUPT:
        case SQLITE_ABORT:
                return -ECANCELED;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
        case SQLITE_MISUSE:
        case SQLITE_ERROR:
                return -EINVAL;
        default:
                return -EIO;
        }
}

static void db_set_error(db *d, const char *format, ...) _printf_(2, 3);
static void db_set_error(db *d, const char *format, ...) {
        va_list ap;
        char *s;

        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        free(d->error);
        d->error = s;
}

/* Records SQLite's message for rc and maps rc. For I/O failures the OS
 * errno says more than SQLITE_IOERR does (ENOSPC, EROFS, EACCES...). */
static int db_fail(db *d, int rc, const char *what) {
        int r = db_errno_from_sqlite(rc), sys;

        if (r == 0)
                r = -EIO;
        sys = sqlite3_system_errno(d->handle);
        if (sys > 0 && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN))
                r = -sys;

        db_set_error(d, "%s", sqlite3_errmsg(d->handle));
        log_debug("%s: %s failed: %s (%s)", d->path, what, strna(d->error), sqlite3_errstr(rc));
        return r;
}

db *db_close(db *d) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_stmts; i++) {
                sqlite3_finalize(d->stmts[i].stmt);
                free(d->stmts[i].sql);
        }
        free(d->stmts);
        /* _v2 would defer the close while statements are alive; all of ours
         * are finalized above, so a failure here is a leak in the caller's
         * own statements, and _v2 still frees everything once they go. */
        sqlite3_close_v2(d->handle);
        free(d->path);
        free(d->error);
        free(d);
        return NULL;
}

sqlite3 *db_get_handle(db *d) {
        return d ? d->handle : NULL;
}

const char *db_get_path(const db *d) {
        return d ? d->path : NULL;
}

const char *db_last_error(const db *d) {
        return d && d->error ? d->error : "";
}

/* Runs one statement and hands back the first column of its first row as
 * text, for PRAGMAs that report what they did. */
static int db_query_text(db *d, const char *sql, char **ret) {
        sqlite3_stmt *s = NULL;
        const unsigned char *t;
        char *copy = NULL;
        int rc, r;

        rc = sqlite3_prepare_v2(d->handle, sql, -1, &s, NULL);
        if (rc != SQLITE_OK)
                return db_fail(d, rc, sql);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                t = sqlite3_column_text(s, 0);
                copy = strdup(t ? (const char *) t : "");
                r = copy ? 0 : -ENOMEM;
        } else if (rc == SQLITE_DONE) {
                r = -ENODATA;
                db_set_error(d, "%s returned no row", sql);
        } else
                r = db_fail(d, rc, sql);
        sqlite3_finalize(s);
        if (r < 0)
                return r;
        *ret = copy;
        return 0;
}

static int db_configure(db *d) {
        _cleanup_free_ char *mode = NULL;
        int r;

        r = db_query_text(d, "PRAGMA journal_mode = WAL", &mode);
        if (r < 0)
                return r;
        if (strcasecmp(mode, "wal") != 0) {
                db_set_error(d, "journal mode is %s, not WAL", mode);
                return -EOPNOTSUPP;
        }
        r = db_exec(d, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
        if (r < 0)
                return r;
        return 0;
}

int db_open(const char *path, db_open_flags flags, db **ret, char **ret_reason) {
        _cleanup_db_ db *d = NULL;
        _cleanup_close_ int fd = -1;
        const char *why = NULL;
        int rc, r;

        if (!path || !*path || !ret)
                return -EINVAL;

        if (flags & DB_OPEN_MKDIR) {
                r = mkdir_parents(path, 0700);
                if (r < 0) {
                        why = "cannot create the parent directory";
                        goto fail;
                }
        }

        /* SQLite would create the file with 0644 & ~umask; create it first
         * so it starts out private. An existing file keeps its mode. */
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0) {
                r = negative_errno();
                why = "cannot open the database file";
                goto fail;
        }
        fd = safe_close(fd);

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->path = strdup(path);
        if (!d->path)
                return -ENOMEM;

        rc = sqlite3_open_v2(path, &d->handle,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                     SQLITE_OPEN_EXRESCODE,
                             NULL);
        if (rc != SQLITE_OK) {
                if (!d->handle)
                        return -ENOMEM;
                r = db_fail(d, rc, "open");
                goto fail_db;
        }
        sqlite3_extended_result_codes(d->handle, 1);
        rc = sqlite3_busy_timeout(d->handle, DB_BUSY_TIMEOUT_MSEC);
        if (rc != SQLITE_OK) {
                r = db_fail(d, rc, "busy_timeout");
                goto fail_db;
        }

        r = db_configure(d);
        if (r < 0)
                goto fail_db;

        *ret = TAKE_PTR(d);
        return 0;

fail_db:
        if (ret_reason)
                *ret_reason = strdup(db_last_error(d));
        return r;
fail:
        log_debug("%s: %s: %s", path, why, strerror(-r));
        if (ret_reason)
                *ret_reason = strdup(why);
        return r;
}

int db_exec(db *d, const char *sql) {
        char *msg = NULL;
        int rc;

        if (!d || !sql)
                return -EINVAL;
        rc = sqlite3_exec(d->handle, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
                int r = db_fail(d, rc, "exec");

                /* sqlite3_exec()'s own message is the one for the failing
                 * statement; errmsg may already be reset. */
                if (msg)
                        db_set_error(d, "%s", msg);
                sqlite3_free(msg);
                return r;
        }
        return 0;
}

/* For the transaction bookkeeping that follows a failure: leaves the
 * recorded error of that failure in place. */
static int db_exec_quiet(db *d, const char *sql) {
        int rc = sqlite3_exec(d->handle, sql, NULL, NULL, NULL);

        if (rc != SQLITE_OK) {
                log_debug("%s: %s failed: %s", d->path, sql, sqlite3_errmsg(d->handle));
                return db_errno_from_sqlite(rc) ?: -EIO;
        }
        return 0;
}

bool db_in_transaction(db *d) {
        return d && !sqlite3_get_autocommit(d->handle);
}

int db_begin(db *d) {
        if (!d)
                return -EINVAL;
        return db_exec(d, "BEGIN IMMEDIATE");
}

int db_commit(db *d) {
        if (!d)
                return -EINVAL;
        return db_exec(d, "COMMIT");
}

int db_rollback(db *d) {
        if (!d)
                return -EINVAL;
        /* Some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY in a COMMIT)
         * make SQLite roll back by itself: then there is nothing left to do. */
        if (sqlite3_get_autocommit(d->handle))
                return 0;
        return db_exec_quiet(d, "ROLLBACK");
}

static int db_savepoint(db *d, db_transaction_fn fn, void *userdata) {
        char name[32], sql[128];
        int r, q;

        snprintf(name, sizeof(name), "db_sp%u", d->savepoint_depth);
        snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
        r = db_exec(d, sql);
        if (r < 0)
                return r;

        d->savepoint_depth++;
        r = fn(d, userdata);
        d->savepoint_depth--;

        if (r < 0) {
                snprintf(sql, sizeof(sql), "ROLLBACK TO %s; RELEASE %s", name, name);
                (void) db_exec_quiet(d, sql);
                return r;
        }
        snprintf(sql, sizeof(sql), "RELEASE %s", name);
        q = db_exec(d, sql);
        return q < 0 ? q : r;
}

int db_transaction(db *d, db_transaction_fn fn, void *userdata) {
        int r, q;

        if (!d || !fn)
                return -EINVAL;
        if (db_in_transaction(d))
                return db_savepoint(d, fn, userdata);

        r = db_begin(d);
        if (r < 0)
                return r;
        r = fn(d, userdata);
        if (r < 0) {
                (void) db_rollback(d);
                return r;
        }
        q = db_commit(d);
        if (q < 0) {
                (void) db_rollback(d);
                return q;
        }
        return r;
}

int db_get_schema_version(db *d, unsigned *ret) {
        _cleanup_free_ char *s = NULL;
        char *end;
        unsigned long v;
        int r;

        if (!d || !ret)
                return -EINVAL;
        r = db_query_text(d, "PRAGMA user_version", &s);
        if (r < 0)
                return r;
        errno = 0;
        v = strtoul(s, &end, 10);
        /* user_version is a signed 32-bit field: someone else's negative
         * value is not a version of ours. */
        if (errno != 0 || *end || v > INT32_MAX || s[0] == '-') {
                db_set_error(d, "invalid schema version '%s'", s);
                return -EBADMSG;
        }
        *ret = (unsigned) v;
        return 0;
}

static int db_check_foreign_keys(db *d) {
        sqlite3_stmt *s = NULL;
        int rc, r = 0;

        rc = sqlite3_prepare_v2(d->handle, "PRAGMA foreign_key_check", -1, &s, NULL);
        if (rc != SQLITE_OK)
                return db_fail(d, rc, "foreign_key_check");
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                db_set_error(d, "foreign key violation in table %s",
                             strna((const char *) sqlite3_column_text(s, 0)));
                r = -ENOLINK;
        } else if (rc != SQLITE_DONE)
                r = db_fail(d, rc, "foreign_key_check");
        sqlite3_finalize(s);
        return r;
}

int db_migrate(db *d, const char *const *scripts, size_t n_scripts) {
        char sql[64];
        unsigned v;
        int r;

        if (!d || (!scripts && n_scripts > 0) || n_scripts > INT32_MAX)
                return -EINVAL;

        /* The version is read under the write lock, so two processes that
         * open a fresh database at once do not both run the scripts. */
        r = db_begin(d);
        if (r < 0)
                return r;
        r = db_get_schema_version(d, &v);
        if (r < 0)
                goto rollback;
        if (v > n_scripts) {
                db_set_error(d, "database schema version %u is newer than the supported version %zu",
                             v, n_scripts);
                log_debug("%s: %s", d->path, d->error);
                r = -EPROTO;
                goto rollback;
        }
        if (v == n_scripts) {
                (void) db_rollback(d);
                return 0;
        }

        for (size_t i = v; i < n_scripts; i++) {
                if (!scripts[i]) {
                        db_set_error(d, "migration %zu is missing", i + 1);
                        r = -EINVAL;
                        goto rollback;
                }
                r = db_exec(d, scripts[i]);
                if (r < 0) {
                        _cleanup_free_ char *msg = strdup(db_last_error(d));

                        db_set_error(d, "migration to version %zu failed: %s", i + 1, strna(msg));
                        log_debug("%s: %s", d->path, d->error);
                        goto rollback;
                }
        }

        r = db_check_foreign_keys(d);
        if (r < 0)
                goto rollback;

        snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", n_scripts);
        r = db_exec(d, sql);
        if (r < 0)
                goto rollback;
        r = db_commit(d);
        if (r < 0)
                goto rollback;
        log_debug("%s: schema migrated from version %u to %zu", d->path, v, n_scripts);
        return (int) (n_scripts - v);

rollback:
        (void) db_rollback(d);
        return r;
}

static bool only_space(const char *s) {
        for (; s && *s; s++)
                if (!isspace((unsigned char) *s))
                        return false;
        return true;
}

int db_prepare(db *d, const char *sql, sqlite3_stmt **ret) {
        sqlite3_stmt *s = NULL;
        const char *tail = NULL;
        char *copy;
        int rc;

        if (!d || !sql || !ret)
                return -EINVAL;

        for (size_t i = 0; i < d->n_stmts; i++)
                if (streq(d->stmts[i].sql, sql)) {
                        sqlite3_reset(d->stmts[i].stmt);
                        sqlite3_clear_bindings(d->stmts[i].stmt);
                        *ret = d->stmts[i].stmt;
                        return 0;
                }

        if (d->n_stmts == d->allocated_stmts) {
                size_t n = MAX(d->allocated_stmts * 2, (size_t) 8);
                struct db_stmt_entry *e = reallocarray(d->stmts, n, sizeof(*e));

                if (!e)
                        return -ENOMEM;
                d->stmts = e;
                d->allocated_stmts = n;
        }

        rc = sqlite3_prepare_v3(d->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, &tail);
        if (rc != SQLITE_OK)
                return db_fail(d, rc, "prepare");
        if (!s || !only_space(tail)) {
                sqlite3_finalize(s);
                db_set_error(d, "%s", s ? "more than one SQL statement" : "no SQL statement");
                return -EINVAL;
        }
        copy = strdup(sql);
        if (!copy) {
                sqlite3_finalize(s);
                return -ENOMEM;
        }
        d->stmts[d->n_stmts++] = (struct db_stmt_entry) { .sql = copy, .stmt = s };
        *ret = s;
        return 0;
}

static int db_bind_result(db *d, int rc) {
        if (rc == SQLITE_OK)
                return 0;
        return db_fail(d, rc, "bind");
}

int db_bind_text(db *d, sqlite3_stmt *s, int idx, const char *v) {
        if (!d || !s)
                return -EINVAL;
        if (!v)
                return db_bind_null(d, s, idx);
        return db_bind_result(d, sqlite3_bind_text64(s, idx, v, strlen(v), SQLITE_TRANSIENT, SQLITE_UTF8));
}

int db_bind_int64(db *d, sqlite3_stmt *s, int idx, int64_t v) {
        if (!d || !s)
                return -EINVAL;
        return db_bind_result(d, sqlite3_bind_int64(s, idx, v));
}

int db_bind_blob(db *d, sqlite3_stmt *s, int idx, const void *p, size_t n) {
        if (!d || !s)
                return -EINVAL;
        if (!p)
                return db_bind_null(d, s, idx);
        return db_bind_result(d, sqlite3_bind_blob64(s, idx, p, n, SQLITE_TRANSIENT));
}

int db_bind_null(db *d, sqlite3_stmt *s, int idx) {
        if (!d || !s)
                return -EINVAL;
        return db_bind_result(d, sqlite3_bind_null(s, idx));
}

int db_step(db *d, sqlite3_stmt *s) {
        int rc, r;

        if (!d || !s)
                return -EINVAL;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE) {
                sqlite3_reset(s);
                return 0;
        }
        r = db_fail(d, rc, "step");
        sqlite3_reset(s);
        return r;
}

void db_reset(sqlite3_stmt *s) {
        if (s)
                sqlite3_reset(s);
}

int db_step_done(db *d, sqlite3_stmt *s) {
        int r;

        r = db_step(d, s);
        if (r < 0)
                return r;
        if (r > 0) {
                sqlite3_reset(s);
                db_set_error(d, "statement returned a row where none was expected");
                return -EINVAL;
        }
        return sqlite3_changes(d->handle);
}
