/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd-acl.h"

/* Invariants: a rejected input yields a reason and no ACL; an accepted ACL
 * dumps and parses again to the same object; lookups only grant write
 * together with read. */
static void check(bool condition) {
        if (!condition)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *reason = NULL, *key;
        json_t *acl = NULL, *again = NULL, *v;
        char *text;
        unsigned a;
        int r;

        r = rd_acl_parse(data, size, &acl, &reason);
        if (r < 0) {
                check(!acl);
                check(reason != NULL);
                check(r == -EINVAL || r == -EBADMSG || r == -EMSGSIZE);
                return 0;
        }
        text = json_dumps(acl, JSON_COMPACT);
        check(text != NULL);
        check(rd_acl_parse(text, strlen(text), &again, &reason) == 0);
        check(json_equal(acl, again));
        json_object_foreach(acl, key, v) {
                a = rd_acl_lookup(acl, key);
                check(!(a & RD_ACCESS_WRITE) || (a & RD_ACCESS_READ));
        }
        a = rd_acl_lookup(acl, NULL);
        check(!(a & RD_ACCESS_WRITE) || (a & RD_ACCESS_READ));
        free(text);
        json_decref(again);
        json_decref(acl);
        return 0;
}
