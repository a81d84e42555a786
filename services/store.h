/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The domain's SQLite file, <StateDirectory>/domain.db: its schema and
 * the migrations that bring an older file up to date. Each service module
 * owns its tables and its SQL; this module only opens the file (WAL,
 * synchronous=FULL, via lib/db) and knows the schema versions, so there is
 * one place that says what a given user_version means. */

#include "db.h"

#define STORE_FILE_NAME "domain.db"

/* Opens (creating if needed) state_dir/domain.db and migrates it. On
 * failure *ret_reason (may be NULL) says why (to be freed). */
int store_open(const char *state_dir, db **ret, char **ret_reason);

/* Number of schema versions this build knows. */
unsigned store_schema_version(void);
