/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who may call what on the domain's HTTP API.
 *
 * For now one credential guards the admin API: a bearer token from the
 * configuration ([Admin] TokenFile=), compared in constant time. This is
 * the seam where IdM access tokens (ES256 JWTs with audience and scopes,
 * POST /idm/token) take over: callers ask auth_check() for a scope and do
 * not care how the request proves it. */

#include "h2-server.h"
#include "macro.h"

typedef enum auth_scope {
        AUTH_SCOPE_ADMIN,
} auth_scope;

typedef struct auth auth;

int auth_new(auth **ret);
auth *auth_free(auth *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(auth *, auth_free);
#define _cleanup_auth_ _cleanup_(auth_freep)

/* Copies token; NULL turns the admin API off (every request is refused). */
int auth_set_admin_token(auth *a, const char *token);

/* 0 when req may act with scope; -EACCES otherwise with *ret_reason (a
 * static string for the 401 answer: it never says which part was wrong
 * beyond "missing" versus "invalid"). */
int auth_check(auth *a, H2Request *req, auth_scope scope, const char **ret_reason);
