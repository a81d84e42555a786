/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* SQLite for state that must survive SIGKILL and power loss: device
 * registrations, software-manager install state, domain registries.
 *
 * Every connection is opened the same way: WAL journal, synchronous=FULL,
 * foreign_keys=ON, a busy timeout, extended result codes. FULL rather than
 * NORMAL because in WAL mode NORMAL does not fsync the WAL on commit: after
 * a power loss the last transactions may be gone although COMMIT returned.
 * Callers act on a commit (acknowledge a registration, report "installed"
 * to the domain), so a commit that returned must be on disk. The price is
 * one fsync per transaction; batch writes into one transaction where many
 * rows belong together.
 *
 * A new database file is created with mode 0600 (the WAL and shm files
 * inherit it): state holds tokens and endpoint identities.
 *
 * Errors are negative errno values mapped from SQLite's result codes (see
 * db_errno_from_sqlite()); the SQLite message of the last failure stays
 * available from db_last_error() until the next failure, so it survives the
 * ROLLBACK that usually follows. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "macro.h"

/* Waits this long for another connection's write lock before -EBUSY. */
#define DB_BUSY_TIMEOUT_MSEC 5000

typedef struct db db;

typedef enum db_open_flags {
        /* Creates the missing parent directories (mode 0700). */
        DB_OPEN_MKDIR = 1 << 0,
} db_open_flags;

/* Opens (creating if missing) the database file at path. On failure
 * *ret_reason, if given, gets a malloc()ed message; a file that is not a
 * database gives -EBADMSG ("file is not a database"). */
int db_open(const char *path, db_open_flags flags, db **ret, char **ret_reason);
/* Finalizes the cached statements and closes the connection. An open
 * transaction is rolled back by SQLite. */
db *db_close(db *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(db *, db_close);
#define _cleanup_db_ _cleanup_(db_closep)

/* The connection, for what these helpers do not cover; still owned by d. */
sqlite3 *db_get_handle(db *d);
const char *db_get_path(const db *d);
/* The message of the last failure on d, or "" if there was none. */
const char *db_last_error(const db *d);

/* SQLite result code (primary or extended) to negative errno:
 *   CONSTRAINT_UNIQUE, _PRIMARYKEY, _ROWID and other constraints -> -EEXIST
 *   CONSTRAINT_FOREIGNKEY                                        -> -ENOLINK
 *   CONSTRAINT_NOTNULL, _CHECK, _DATATYPE, MISMATCH, RANGE       -> -EINVAL
 *   FULL -> -ENOSPC, BUSY/LOCKED -> -EBUSY, CORRUPT/NOTADB -> -EBADMSG,
 *   NOMEM -> -ENOMEM, READONLY -> -EROFS, PERM/AUTH -> -EACCES,
 *   TOOBIG -> -E2BIG, NOLFS -> -EFBIG, INTERRUPT/ABORT -> -ECANCELED,
 *   CANTOPEN -> -ENOENT, IOERR -> -EIO, everything else -> -EIO.
 * SQLITE_OK, SQLITE_ROW and SQLITE_DONE give 0. */
int db_errno_from_sqlite(int rc);

/* Runs one or more SQL statements without parameters. */
int db_exec(db *d, const char *sql);

/* Schema migrations: scripts[i] takes the schema from version i to i+1,
 * tracked in PRAGMA user_version. The pending scripts run in one
 * transaction, followed by a foreign key check: the database is either left
 * at its old version, untouched, or brought to n_scripts. Returns the
 * number of scripts applied (0 if up to date). A database whose version is
 * above n_scripts was written by newer code and is refused with -EPROTO.
 * Scripts must not contain BEGIN/COMMIT, and PRAGMA foreign_keys is a no-op
 * inside them (use PRAGMA defer_foreign_keys for table rebuilds). */
int db_migrate(db *d, const char *const *scripts, size_t n_scripts);
int db_get_schema_version(db *d, unsigned *ret);

/* BEGIN IMMEDIATE takes the write lock up front, so a transaction that
 * reads and then writes cannot fail half-way with -EBUSY. */
int db_begin(db *d);
int db_commit(db *d);
int db_rollback(db *d);
bool db_in_transaction(db *d);

/* Runs fn inside a transaction: commits if fn returns >= 0, rolls back
 * otherwise, and returns fn's result (or the commit's error). Nested calls
 * (fn calling db_transaction() again) use a SAVEPOINT, so an inner failure
 * undoes only the inner work and the outer fn decides what to do. */
typedef int (*db_transaction_fn)(db *d, void *userdata);
int db_transaction(db *d, db_transaction_fn fn, void *userdata);

/* Prepared statements, cached per connection by SQL text: pass constant
 * SQL (the cache is never pruned) and never finalize the result. The
 * statement comes back reset with its bindings cleared; preparing the same
 * SQL again resets it, so do not nest two uses of the same text. */
int db_prepare(db *d, const char *sql, sqlite3_stmt **ret);

/* Parameters are 1-based as in SQLite. A NULL text or blob binds NULL;
 * text and blobs are copied. */
int db_bind_text(db *d, sqlite3_stmt *s, int idx, const char *v);
int db_bind_int64(db *d, sqlite3_stmt *s, int idx, int64_t v);
int db_bind_blob(db *d, sqlite3_stmt *s, int idx, const void *p, size_t n);
int db_bind_null(db *d, sqlite3_stmt *s, int idx);

/* 1 if a row is available (read it with sqlite3_column_*()), 0 when done,
 * negative errno on failure. On done and on failure the statement is reset,
 * so its locks are released without another call. */
int db_step(db *d, sqlite3_stmt *s);
/* Resets s after a partial iteration. */
void db_reset(sqlite3_stmt *s);
/* Runs a statement that returns no rows (INSERT/UPDATE/DELETE); returns
 * the number of rows changed. A row where none is expected is -EINVAL. */
int db_step_done(db *d, sqlite3_stmt *s);
