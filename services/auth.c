/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <strings.h>

#include "auth.h"
#include "id.h"
#include "idm.h"

struct auth {
        idm *idm;
        char *admin_token;
        /* Admin tokens issued (iat, seconds) before this are refused: the
         * credential that got them changed. */
        usec_t not_before_sec;
};

int auth_new(auth **ret) {
        auth *a;

        if (!ret)
                return -EINVAL;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        *ret = a;
        return 0;
}

static void drop_token(auth *a) {
        if (a->admin_token) {
                explicit_bzero_safe(a->admin_token, strlen(a->admin_token));
                free(a->admin_token);
                a->admin_token = NULL;
        }
}

auth *auth_free(auth *a) {
        if (!a)
                return NULL;
        drop_token(a);
        free(a);
        return NULL;
}

void auth_set_idm(auth *a, idm *i) {
        a->idm = i;
}

int auth_set_admin_token(auth *a, const char *token) {
        char *t = NULL;

        if (!a)
                return -EINVAL;
        if (token) {
                t = strdup(token);
                if (!t)
                        return -ENOMEM;
        }
        if (!streq_ptr(t, a->admin_token))
                a->not_before_sec = now(CLOCK_REALTIME) / USEC_PER_SEC;
        drop_token(a);
        a->admin_token = t;
        return 0;
}

static const char *idm_scope(auth_scope scope) {
        switch (scope) {
        case AUTH_SCOPE_ADMIN:
                return IDM_SCOPE_ADMIN;
        }
        return NULL;
}

int auth_check(auth *a, H2Request *req, auth_scope scope, const char **ret_reason) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        const char *h, *s = idm_scope(scope), *reason = NULL;
        int r;

        if (!a || !req || !s)
                return -EINVAL;
        if (!a->idm || !a->admin_token) {
                if (ret_reason)
                        *ret_reason = "admin API off: no admin credential configured";
                return -EACCES;
        }

        r = idm_check_bearer(a->idm, req, s, &claims, &reason);
        if (r == 0 && token_claims_get_issued_at(claims) / USEC_PER_SEC < a->not_before_sec) {
                if (ret_reason)
                        *ret_reason = "token issued before the admin credential changed: get a new one";
                return -EACCES;
        }
        if (r != -EACCES) {
                if (r == -EPERM && ret_reason)
                        *ret_reason = "token lacks scope 'admin'";
                return r;
        }

        /* The admin's own credential, as admin routes took it before IdM
         * tokens: say what to do instead. Compared in constant time like
         * any secret; id_token_equal() never matches NULL. */
        h = h2_request_get_header(req, "authorization");
        if (h && strncasecmp(h, "Bearer ", 7) == 0) {
                h += 7;
                while (*h == ' ')
                        h++;
                if (id_token_equal(h, a->admin_token))
                        reason = "the admin credential is not an access token: get one at POST /idm/token "
                                 "(grant_type=client_credentials, client_id=admin, client_secret=<credential>) "
                                 "and send it as the Bearer token";
        }
        if (ret_reason)
                *ret_reason = reason ?: "invalid token";
        return -EACCES;
}
