/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

static void check(bool condition) {
        if (!condition)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_rt_address_ rt_address *a = NULL, *parent = NULL;
        _cleanup_free_ char *s = NULL, *reason = NULL, *rebuilt = NULL;
        const char *path, *slash;
        int r;

        /* Addresses are C strings: stop at the first NUL like any caller. */
        s = strndup((const char *) data, size);
        if (!s)
                return 0;

        r = rt_address_parse(s, &a, &reason);
        check(rt_address_is_valid(s) == (r == 0));
        if (r < 0) {
                check(!a && (reason || r == -ENOMEM));
                return 0;
        }
        check(!reason);

        /* The parts put back together give the one spelling we accepted. */
        path = rt_address_get_path(a);
        check(asprintf(&rebuilt, "%s://%s%s%s", rt_address_scheme_to_string(rt_address_get_scheme(a)),
                       rt_address_get_authority(a), *path ? "/" : "", path) >= 0);
        check(streq(rebuilt, s));
        check(rt_address_has_prefix(a, a));
        check(rt_address_string_has_prefix(s, s) == 1);

        /* Cutting off the last segment gives a parent, when that parent is
         * itself a valid address; it must then cover the address. */
        slash = strrchr(s, '/');
        if (slash && slash > s + strlen(rt_address_scheme_to_string(rt_address_get_scheme(a))) + 2) {
                _cleanup_free_ char *up = strndup(s, slash - s);
                if (up && rt_address_parse(up, &parent, NULL) == 0) {
                        check(rt_address_has_prefix(a, parent));
                        check(!rt_address_has_prefix(parent, a));
                }
        }

        return 0;
}
