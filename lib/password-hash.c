/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "encoding.h"
#include "id.h"
#include "macro.h"
#include "password-hash.h"

#define PREFIX "$scrypt$ln="

static int scrypt(const char *password, const uint8_t *salt, const password_hash_params *p,
                  uint8_t out[static PASSWORD_HASH_SIZE]) {
        uint64_t n = UINT64_C(1) << p->log2_n;
        /* V takes 128·r·N bytes, B 128·r·p; the rest is headroom for
         * OpenSSL's own accounting. */
        uint64_t maxmem = 128 * (uint64_t) p->r * (n + p->p + 2) + 1024 * 1024;

        if (EVP_PBE_scrypt(password, strlen(password), salt, PASSWORD_HASH_SALT_SIZE, n, p->r, p->p, maxmem, out,
                           PASSWORD_HASH_SIZE) != 1)
                return -ENOMEM;
        return 0;
}

static bool params_valid(const password_hash_params *p) {
        return p->log2_n >= PASSWORD_HASH_LOG2_N_MIN && p->log2_n <= PASSWORD_HASH_LOG2_N_MAX && p->r >= 1 &&
               p->r <= PASSWORD_HASH_R_MAX && p->p >= 1 && p->p <= PASSWORD_HASH_P_MAX &&
               128 * (uint64_t) p->r * (UINT64_C(1) << p->log2_n) <= PASSWORD_HASH_MEMORY_MAX;
}

/* A decimal without sign or leading zero, at most 2 digits, then end. */
static int parse_small(const char **s, char end, unsigned *ret) {
        const char *p = *s;
        unsigned v = 0;
        size_t n = 0;

        while (p[n] >= '0' && p[n] <= '9') {
                if (n >= 2)
                        return -EINVAL;
                v = v * 10 + (unsigned) (p[n] - '0');
                n++;
        }
        if (n == 0 || (n > 1 && p[0] == '0') || p[n] != end)
                return -EINVAL;
        *s = p + n + 1;
        *ret = v;
        return 0;
}

int password_hash_parse(const char *encoded, password_hash_params *ret_params,
                        uint8_t ret_salt[static PASSWORD_HASH_SALT_SIZE], uint8_t ret_hash[static PASSWORD_HASH_SIZE]) {
        uint8_t salt[PASSWORD_HASH_SALT_SIZE], hash[PASSWORD_HASH_SIZE];
        password_hash_params p;
        const char *s, *dollar;

        if (!encoded || strnlen(encoded, PASSWORD_HASH_STRING_MAX + 1) > PASSWORD_HASH_STRING_MAX ||
            strncmp(encoded, PREFIX, strlen(PREFIX)) != 0)
                return -EINVAL;
        s = encoded + strlen(PREFIX);
        if (parse_small(&s, ',', &p.log2_n) < 0 || strncmp(s, "r=", 2) != 0)
                return -EINVAL;
        s += 2;
        if (parse_small(&s, ',', &p.r) < 0 || strncmp(s, "p=", 2) != 0)
                return -EINVAL;
        s += 2;
        if (parse_small(&s, '$', &p.p) < 0 || !params_valid(&p))
                return -EINVAL;
        dollar = strchr(s, '$');
        if (!dollar || base64url_decode_exact(s, (size_t) (dollar - s), salt, sizeof(salt)) < 0)
                return -EINVAL;
        s = dollar + 1;
        if (base64url_decode_exact(s, strlen(s), hash, sizeof(hash)) < 0)
                return -EINVAL;

        *ret_params = p;
        memcpy(ret_salt, salt, sizeof(salt));
        memcpy(ret_hash, hash, sizeof(hash));
        explicit_bzero_safe(hash, sizeof(hash));
        return 0;
}

int password_hash_new(const char *password, unsigned log2_n, char **ret) {
        password_hash_params p = { .log2_n = log2_n, .r = PASSWORD_HASH_R, .p = PASSWORD_HASH_P };
        uint8_t salt[PASSWORD_HASH_SALT_SIZE], hash[PASSWORD_HASH_SIZE];
        _cleanup_free_ char *salt64 = NULL, *hash64 = NULL;
        char *s;
        int r;

        if (!password || !ret || !params_valid(&p))
                return -EINVAL;
        r = id_random_bytes(salt, sizeof(salt));
        if (r < 0)
                return r;
        r = scrypt(password, salt, &p, hash);
        if (r < 0)
                return r;
        r = base64url_encode(salt, sizeof(salt), &salt64);
        if (r >= 0)
                r = base64url_encode(hash, sizeof(hash), &hash64);
        explicit_bzero_safe(hash, sizeof(hash));
        if (r < 0)
                return r;
        if (asprintf(&s, PREFIX "%u,r=%u,p=%u$%s$%s", p.log2_n, p.r, p.p, salt64, hash64) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int password_hash_verify(const char *password, const char *encoded) {
        uint8_t salt[PASSWORD_HASH_SALT_SIZE], want[PASSWORD_HASH_SIZE], got[PASSWORD_HASH_SIZE];
        password_hash_params p;
        int r;

        if (!password)
                return -EINVAL;
        r = password_hash_parse(encoded, &p, salt, want);
        if (r < 0)
                return r;
        r = scrypt(password, salt, &p, got);
        if (r >= 0)
                r = CRYPTO_memcmp(got, want, PASSWORD_HASH_SIZE) == 0 ? 0 : -EACCES;
        explicit_bzero_safe(got, sizeof(got));
        explicit_bzero_safe(want, sizeof(want));
        return r;
}
