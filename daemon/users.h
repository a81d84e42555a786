/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* End users on the device, registered separately from the device itself
 * (docs/users.md). Several users may be logged in at once; each login
 * asks the domain's IdM for a user token with the password grant (RFC 6749
 * §4.3), authenticated by the device's own access token, and keeps the
 * identity, never the password:
 *
 *   <state_dir>/users.json (0600, replaced atomically)
 *   {"version": 1, "users": [{"name", "address", "token", "expires_usec",
 *                             "login_usec"}]}
 *
 * Control commands (docs/control.md), for root and group "rethink" only:
 *   user-login  {"user", "password"}  -> {"user": {...}}, answered once the
 *                                        domain has
 *   user-list                         -> {"users": [{"name", "address",
 *                                        "expires_usec", "login_usec", "valid"}]}
 *   user-logout {"user"}              -> {"user": {...}}
 *
 * A token cannot be renewed without the password: when it expires the
 * user stays listed with "valid": false until a new login or a logout.
 * Every login, failed login and logout is a journal entry with its own
 * MESSAGE_ID (units/rethink.catalog). */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "control.h"
#include "macro.h"
#include "time-util.h"

#define USERS_FILE_NAME "users.json"
#define USERS_MAX 64
#define USERS_LOGIN_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define USERS_MESSAGE_ID_LOGIN "1183eda9152f4fdca4666fb16dbc7892"
#define USERS_MESSAGE_ID_LOGIN_FAILED "1f87a1577dd444489ce0937d76961cce"
#define USERS_MESSAGE_ID_LOGOUT "bfd98e275d3d48738d59923348352037"

typedef struct users users;

typedef struct users_options {
        const char *url;         /* the domain, as [Domain] URL=; NULL: logins are refused */
        const char *ca_file;
        const char *domain_name; /* user://<domain_name>/<name>; NULL: logins are refused */
        const char *state_dir;   /* for users.json; required */
} users_options;

/* The device's current access token (scope "runtime"), or NULL while it
 * has none (not registered, not claimed yet). */
typedef const char *(*users_device_token_t)(void *userdata);

/* Loads users.json; a file that cannot be read as ours is logged and
 * replaced at the next change. */
int users_new(sd_event *e, const users_options *o, users **ret);
/* Logins still waiting for the domain get no answer. */
users *users_free(users *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(users *, users_free);
#define _cleanup_users_ _cleanup_(users_freep)

void users_set_device_token_source(users *u, users_device_token_t get, void *userdata);
/* Registers user-login, user-list and user-logout. */
int users_register_commands(users *u, control_server *s);

/* Same rule as the domain's: 1-64 of [a-z0-9._-], first a letter or digit. */
bool users_name_is_valid(const char *name);

/* The identity of a logged-in user, borrowed until the next change:
 * -ENOENT when not logged in, -ESTALE when its token has expired. Any of
 * the outputs may be NULL. */
int users_get(users *u, const char *name, const char **ret_address, const char **ret_token, usec_t *ret_expiry);
size_t users_count(const users *u);
