/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ACL JSON parser lives in daemon/ (the fuzz build compiles lib/ only),
 * so it is compiled into this target directly. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../daemon/acl.c"

/* The input is JSON: tried as a whole ACL and as an order's entries. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *why = NULL;
        acl *a = NULL, *b = NULL;
        json_t *j, *back = NULL;

        j = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                return 0;
        if (acl_from_json(j, &a, &why) == 0) {
                /* What was accepted serialises and reads back the same. */
                if (acl_to_json(a, &back) < 0 || acl_from_json(back, &b, &why) < 0)
                        abort();
                if (acl_get_n_entries(a) != acl_get_n_entries(b))
                        abort();
                json_decref(back);
                acl_free(b);
        } else if (!why)
                abort();
        acl_free(a);
        if (acl_new("local:uid=0", &a) == 0) {
                size_t before = acl_get_n_entries(a);

                /* All or nothing. */
                if (acl_apply_entries(a, j, &why) < 0 && acl_get_n_entries(a) != before)
                        abort();
                acl_free(a);
        }
        json_decref(j);
        return 0;
}
