/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The domain's end users: the people who log in on devices, as opposed to
 * the devices themselves. The admin manages them over the admin API; the
 * IdM's password grant (POST /idm/token, grant_type=password, from a
 * claimed device) asks userdb_authenticate() whether a name and password
 * are right. docs/users.md has the details.
 *
 *   POST   /admin/users          {"name", "password"}  201 / 400 / 409
 *   GET    /admin/users          {"users": [{"name", "address", "created_usec",
 *                                            "last_login_usec"}]}
 *   DELETE /admin/users/<name>   204 / 404
 *
 * The users live in their own SQLite file, <state_dir>/users.db, with
 * its own schema versions. Passwords are kept only as scrypt hash strings
 * (lib/password-hash.h). A check runs scrypt on the event loop (about
 * 0.1 s at the default cost); the failure limit below bounds how often a
 * stranger can make the domain do that per name.
 *
 * Failed attempts are counted per user name in memory: after
 * USERDB_FAILURES_MAX failures within USERDB_FAILURE_WINDOW_USEC further
 * attempts are refused (-EBUSY) without checking the password until the
 * window ends. */

#include <jansson.h>
#include <stdbool.h>

#include "macro.h"
#include "router.h"
#include "time-util.h"

#define USERDB_FILE_NAME "users.db"
#define USERDB_NAME_MAX 64
#define USERDB_PASSWORD_MIN 8
#define USERDB_PASSWORD_MAX 1024
#define USERDB_FAILURES_MAX 5
#define USERDB_FAILURE_WINDOW_USEC (1 * USEC_PER_MINUTE)
/* Names whose failures are remembered at once; see userdb_authenticate(). */
#define USERDB_FAILURE_TABLE_MAX 4096

typedef struct userdb userdb;

/* User names: 1-64 of [a-z0-9._-], the first a letter or a digit, so that
 * user://<domain>/<name> is an address in its one canonical spelling. */
bool userdb_name_is_valid(const char *name);

/* domain: for the user addresses, user://<domain>/<name>. */
int userdb_new(const char *state_dir, const char *domain, userdb **ret);
userdb *userdb_free(userdb *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(userdb *, userdb_free);
#define _cleanup_userdb_ _cleanup_(userdb_freep)

/* For tests: the cost of hashes made from now on. */
void userdb_set_kdf_cost(userdb *u, unsigned log2_n);

/* -EINVAL with a static *ret_reason for a bad name or password, -EEXIST
 * when the name is taken. */
int userdb_add(userdb *u, const char *name, const char *password, const char **ret_reason);
/* -ENOENT for an unknown name. */
int userdb_remove(userdb *u, const char *name);
/* {"users": [...]} as GET /admin/users answers. */
int userdb_list_json(userdb *u, json_t **ret);

/* The password grant's check. 0 when name and password are right (and the
 * failure count of name is reset); -EACCES when the name is unknown or the
 * password wrong, which callers must not tell apart (an unknown name costs
 * the same scrypt run); -EBUSY when name had USERDB_FAILURES_MAX failures
 * in the current window, with *ret_retry_after_sec until it ends. now:
 * CLOCK_MONOTONIC, 0 for the current time. */
int userdb_authenticate(userdb *u, const char *name, const char *password, usec_t now,
                       unsigned *ret_retry_after_sec);

/* user://<domain>/<name> */
int userdb_address(const userdb *u, const char *name, char **ret);

int userdb_add_routes(userdb *u, router *r);
