/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oauth-form.h"

static void check(bool condition) {
        if (!condition)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_oauth_form_ oauth_form *f = NULL;
        const char *reason = NULL;
        int k;

        {
                _cleanup_free_ char *header = strndup((const char *) data, size), *id = NULL, *secret = NULL;

                if (header && oauth_basic_parse(header, &id, &secret, &reason) == 0)
                        check(id && secret && strlen(id) + strlen(secret) < size);
        }
        k = oauth_form_parse((const char *) data, size, &f, &reason);
        if (k < 0) {
                check(!f && (k == -ENOMEM || reason));
                return 0;
        }
        /* Decoding only shrinks, and never lets a NUL through. */
        for (oauth_form_param p = 0; p < _OAUTH_FORM_PARAM_MAX; p++) {
                const char *v = oauth_form_get(f, p);

                check(!v || strlen(v) <= size);
        }
        return 0;
}
