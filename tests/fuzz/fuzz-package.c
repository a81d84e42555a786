/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "package.h"

/* The input is tried as a package URL, as a Content-Range value and as the
 * head of a package file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = strndup((const char *) data, size), *host = NULL, *path = NULL;
        uint64_t first, total;
        uint16_t port;
        bool tls;

        if (!s)
                return 0;
        if (package_url_parse(s, &tls, &host, &port, &path) == 0) {
                if (!host || !path || path[0] != '/' || port == 0)
                        abort();
                free(host);
                free(path);
        }
        if (package_content_range_parse(s, &first, &total) == 0)
                if (first != UINT64_MAX && first >= total)
                        abort();
        (void) package_type_detect(data, size);
        free(s);
        return 0;
}
