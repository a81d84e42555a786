/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry-record.h"

#define DOMAIN "example.org"
#define UUID "0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60"

static void check(bool condition) {
        if (!condition)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* The first byte picks the kind, the rest is the body. */
        registry_kind kind = size > 0 && (data[0] & 1) ? REGISTRY_DATAOBJECT : REGISTRY_HYPERTY;
        _cleanup_registry_record_ registry_record *r = NULL, *again = NULL;
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        const char *reason = NULL;
        int k;

        if (size > 0) {
                data++;
                size--;
        }
        k = registry_record_parse(kind, DOMAIN, UUID, (const char *) data, size, &r, &reason);
        if (k < 0) {
                check(!r && (k == -ENOMEM || reason));
                return 0;
        }

        /* Accepted records round-trip through their canonical form. */
        check(registry_record_get_descriptor(r) && registry_record_get_runtime(r));
        for (registry_list l = 0; l < _REGISTRY_LIST_MAX; l++)
                for (char *const *v = registry_record_get_list(r, l); *v; v++)
                        check(registry_value_is_valid(*v));
        check(registry_record_to_json(r, &json) == 0);
        check(registry_record_parse(kind, DOMAIN, UUID, json, strlen(json), &again, &reason) == 0);
        check(registry_record_to_json(again, &json2) == 0);
        check(streq(json, json2));
        return 0;
}
