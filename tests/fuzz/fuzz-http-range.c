/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-range.h"

/* Input: 8 bytes of representation size, then the header value; the same
 * value is also tried as If-None-Match and If-Range. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t length = 0;
        http_range r;
        char *value;

        if (size < sizeof(length))
                return 0;
        memcpy(&length, data, sizeof(length));
        value = strndup((const char *) data + sizeof(length), size - sizeof(length));
        if (!value)
                return 0;
        if (http_range_parse(value, length, &r) == HTTP_RANGE_SATISFIABLE)
                if (r.first > r.last || r.last >= length)
                        abort();
        (void) http_if_none_match(value, "\"0123\"");
        (void) http_if_range_match(value, "\"0123\"");
        free(value);
        return 0;
}
