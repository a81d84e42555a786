/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ini.h"

static int handler(const char *section, const char *key, const char *value, unsigned line,
                   void *userdata) {
        size_t *total = userdata;

        /* Touch every byte handed out, so ASan sees out-of-bounds strings. */
        *total += strlen(section) + strlen(key) + strlen(value) + line;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t total = 0;
        unsigned line;
        const char *reason;

        (void) ini_parse((const char *) data, size, handler, &total, &line, &reason);
        return 0;
}
