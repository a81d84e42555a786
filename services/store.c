/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "log.h"
#include "store.h"

/* scripts[i] takes the schema from version i to i+1. Never edit a script
 * that has shipped: add the next one. Times are microseconds; *_usec
 * columns are CLOCK_REALTIME (they must mean the same after a restart). */
static const char *const migrations[] = {
        /* 1: catalogue and device management */
        "CREATE TABLE packages ("
        "  sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),"
        "  size INTEGER NOT NULL CHECK (size >= 0),"
        "  stored_usec INTEGER NOT NULL"
        ");"
        "CREATE TABLE descriptors ("
        "  kind TEXT NOT NULL CHECK (kind IN ('hyperty', 'protocolstub', 'runtime')),"
        "  name TEXT NOT NULL,"
        "  version TEXT NOT NULL,"
        "  sha256 TEXT NOT NULL REFERENCES packages(sha256),"
        "  json TEXT NOT NULL,"
        "  published_usec INTEGER NOT NULL,"
        "  seq INTEGER NOT NULL,"
        "  PRIMARY KEY (kind, name, version)"
        ");"
        "CREATE INDEX descriptors_latest ON descriptors (kind, name, seq);"
        "CREATE INDEX descriptors_sha256 ON descriptors (sha256);"
        "CREATE TABLE devices ("
        "  endpoint TEXT PRIMARY KEY,"
        "  id TEXT NOT NULL UNIQUE,"
        "  public_key TEXT NOT NULL,"
        "  runtime_version TEXT,"
        "  arch TEXT,"
        "  free_bytes INTEGER,"
        "  lifetime_sec INTEGER NOT NULL CHECK (lifetime_sec > 0),"
        "  state TEXT NOT NULL CHECK (state IN ('registered', 'expired', 'deregistered')),"
        "  registered_usec INTEGER NOT NULL,"
        "  updated_usec INTEGER NOT NULL,"
        "  expires_usec INTEGER NOT NULL,"
        "  claimed_usec INTEGER"
        ");"
        "CREATE INDEX devices_expiry ON devices (state, expires_usec);",
        /* 2: the device's P-256 key for IdM client assertions (ES256); the
         * Ed25519 publicKey stays its identity. */
        "ALTER TABLE devices ADD COLUMN token_key TEXT;",
        /* 3: the source address (IP) of the last registration or update,
         * and when it last changed: where the device is now. */
        "ALTER TABLE devices ADD COLUMN address TEXT;"
        "ALTER TABLE devices ADD COLUMN address_usec INTEGER;",
};

unsigned store_schema_version(void) {
        return ELEMENTSOF(migrations);
}

int store_open(const char *state_dir, db **ret, char **ret_reason) {
        _cleanup_db_ db *d = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!state_dir || !ret)
                return -EINVAL;
        if (asprintf(&path, "%s/%s", state_dir, STORE_FILE_NAME) < 0)
                return -ENOMEM;
        r = db_open(path, DB_OPEN_MKDIR, &d, ret_reason);
        if (r < 0)
                return r;
        r = db_migrate(d, migrations, ELEMENTSOF(migrations));
        if (r < 0) {
                if (ret_reason) {
                        if (r == -EPROTO) {
                                if (asprintf(ret_reason, "%s was written by a newer rethink-domain (schema above %u)",
                                             path, store_schema_version()) < 0)
                                        *ret_reason = NULL;
                        } else if (asprintf(ret_reason, "%s: migration failed: %s", path, db_last_error(d)) < 0)
                                *ret_reason = NULL;
                }
                return r;
        }
        if (r > 0)
                log_debug("%s: applied %d schema migration(s)", path, r);
        *ret = TAKE_PTR(d);
        return 0;
}
