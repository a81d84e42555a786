/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who may call what on the domain's HTTP API.
 *
 * Admin routes take an IdM access token with scope "admin" (ES256, issued
 * at POST /idm/token to the holder of the configured admin credential):
 * callers ask auth_check() for a scope and do not care how the request
 * proves it. The credential itself is no longer accepted on admin routes;
 * auth only recognises it, to tell a client that sends it what to do. */

#include "h2-server.h"
#include "macro.h"

typedef enum auth_scope {
        AUTH_SCOPE_ADMIN,
} auth_scope;

typedef struct auth auth;
typedef struct idm idm;

int auth_new(auth **ret);
auth *auth_free(auth *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(auth *, auth_free);
#define _cleanup_auth_ _cleanup_(auth_freep)

/* The IdM that checks tokens (not owned). Without one every request is
 * refused. */
void auth_set_idm(auth *a, idm *i);
/* The configured admin credential, copied. NULL closes the admin API.
 * When it changes (also when first set, at start), admin tokens issued
 * before that second are refused from then on. Otherwise only used to
 * recognise the credential when a client sends it instead of a token. */
int auth_set_admin_token(auth *a, const char *token);

/* 0 when req may act with scope. -EACCES (answer 401) when the token is
 * missing, invalid or expired, -EPERM (answer 403) when it is valid but
 * lacks the scope, each with *ret_reason, a static string that never says
 * more than the class of failure; -ENOMEM. */
int auth_check(auth *a, H2Request *req, auth_scope scope, const char **ret_reason);
