/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "senml.h"

/* Invariants: a rejected input yields a reason and no pack; an accepted
 * pack is an array that, dumped and parsed again, is accepted again. */
static void check(bool condition) {
        if (!condition)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *reason = NULL;
        json_t *pack = NULL, *again = NULL;
        char *text;
        int r;

        r = senml_parse(data, size, &pack, &reason);
        if (r < 0) {
                check(!pack);
                check(reason != NULL);
                check(r == -EINVAL || r == -EBADMSG || r == -EMSGSIZE);
                return 0;
        }
        check(json_is_array(pack) && json_array_size(pack) >= 1 && json_array_size(pack) <= SENML_MAX_RECORDS);
        text = json_dumps(pack, JSON_COMPACT);
        check(text != NULL);
        check(senml_parse(text, strlen(text), &again, &reason) == 0);
        check(json_equal(pack, again));
        free(text);
        json_decref(again);
        json_decref(pack);
        return 0;
}
