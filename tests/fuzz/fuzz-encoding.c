/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Decoding arbitrary text must never crash, and whatever is accepted must
 * re-encode to its canonical spelling: exactly the input for base64url
 * (the decoder is strict), the lowercased input for hex. Encoding arbitrary
 * bytes must decode back to them. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;
        _cleanup_free_ void *d = NULL;
        _cleanup_free_ char *e = NULL;
        size_t n;

        if (base64url_decode(s, size, &d, &n) >= 0) {
                _cleanup_free_ uint8_t *x = malloc(n + 1);

                if (base64url_encode(d, n, &e) < 0 || strlen(e) != size || memcmp(e, s, size) != 0)
                        abort();
                e = mfree(e);
                /* The exact-size decoder agrees, and refuses other sizes. */
                if (!x || base64url_decode_exact(s, size, x, n) < 0 || memcmp(x, d, n) != 0 ||
                    base64url_decode_exact(s, size, x, n + 1) >= 0)
                        abort();
        } else if (base64url_decode_exact(s, size, (uint8_t[64]) {}, MIN(size * 3 / 4, (size_t) 64)) >= 0)
                abort();
        d = mfree(d);

        if (hex_decode(s, size, &d, &n) >= 0) {
                if (n * 2 != size || hex_encode(d, n, &e) < 0)
                        abort();
                for (size_t i = 0; i < size; i++)
                        if (e[i] != tolower((unsigned char) s[i]))
                                abort();
                e = mfree(e);
        }
        d = mfree(d);

        if (base64url_encode(data, size, &e) < 0 || base64url_decode(e, SIZE_MAX, &d, &n) < 0 ||
            n != size || memcmp(d, data, size) != 0)
                abort();
        e = mfree(e);
        d = mfree(d);

        if (hex_encode(data, size, &e) < 0 || hex_decode(e, SIZE_MAX, &d, &n) < 0 || n != size ||
            memcmp(d, data, size) != 0)
                abort();

        return 0;
}
