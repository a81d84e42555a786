/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <strings.h>

#include "auth.h"
#include "id.h"

struct auth {
        char *admin_token;
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

int auth_set_admin_token(auth *a, const char *token) {
        char *t = NULL;

        if (!a)
                return -EINVAL;
        if (token) {
                t = strdup(token);
                if (!t)
                        return -ENOMEM;
        }
        drop_token(a);
        a->admin_token = t;
        return 0;
}

int auth_check(auth *a, H2Request *req, auth_scope scope, const char **ret_reason) {
        const char *h, *token;

        if (!a || !req)
                return -EINVAL;
        if (scope != AUTH_SCOPE_ADMIN)
                return -EINVAL;

        h = h2_request_get_header(req, "authorization");
        if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
                if (ret_reason)
                        *ret_reason = "missing bearer credential";
                return -EACCES;
        }
        token = h + 7;
        while (*token == ' ')
                token++;
        /* id_token_equal() never matches NULL, so an unset credential
         * refuses everyone. */
        if (!id_token_equal(token, a->admin_token)) {
                if (ret_reason)
                        *ret_reason = "invalid credential";
                return -EACCES;
        }
        return 0;
}
