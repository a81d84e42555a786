/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "encoding.h"
#include "id.h"
#include "macro.h"

#define ID_TOKEN_MIN_BYTES 16
#define ID_TOKEN_MAX_BYTES 4096

int id_random_bytes(void *p, size_t n) {
        uint8_t *x = p;

        if (!p && n > 0)
                return -EINVAL;
        /* RAND_bytes takes an int. */
        while (n > 0) {
                size_t m = MIN(n, (size_t) INT_MAX);

                if (RAND_bytes(x, (int) m) != 1)
                        return -EIO;
                x += m;
                n -= m;
        }
        return 0;
}

int id_random_u64(uint64_t *ret) {
        uint64_t v;
        int r;

        r = id_random_bytes(&v, sizeof(v));
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

char *id_uuid_to_string(sd_id128_t id, char buf[static ID_UUID_STRING_MAX]) {
        /* sd-id128 writes lowercase hex, which is our canonical form. */
        return sd_id128_to_uuid_string(id, buf);
}

int id_uuid_new(char buf[static ID_UUID_STRING_MAX]) {
        sd_id128_t id;
        int r;

        /* Gives a v4 UUID: version and variant bits are set. */
        r = sd_id128_randomize(&id);
        if (r < 0)
                return r;
        id_uuid_to_string(id, buf);
        return 0;
}

bool id_uuid_is_valid(const char *s) {
        if (!s || strlen(s) != ID_UUID_STRING_MAX - 1)
                return false;
        for (size_t i = 0; i < ID_UUID_STRING_MAX - 1; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

int id_uuid_from_string(const char *s, sd_id128_t *ret) {
        sd_id128_t id;
        int r;

        /* sd_id128_from_string() is more lenient (no dashes, uppercase). */
        if (!id_uuid_is_valid(s))
                return -EINVAL;
        r = sd_id128_from_string(s, &id);
        if (r < 0)
                return r;
        *ret = id;
        return 0;
}

int id_token_new(size_t n_bytes, char **ret) {
        uint8_t buf[ID_TOKEN_MAX_BYTES];
        int r;

        if (!ret || n_bytes < ID_TOKEN_MIN_BYTES || n_bytes > ID_TOKEN_MAX_BYTES)
                return -EINVAL;

        r = id_random_bytes(buf, n_bytes);
        if (r >= 0)
                r = base64url_encode(buf, n_bytes, ret);
        OPENSSL_cleanse(buf, n_bytes);
        return r;
}

bool id_token_equal(const char *a, const char *b) {
        size_t n;

        if (!a || !b)
                return false;
        n = strlen(a);
        if (n != strlen(b))
                return false;
        return CRYPTO_memcmp(a, b, n) == 0;
}
