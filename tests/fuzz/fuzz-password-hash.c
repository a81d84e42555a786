/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hash string parser of lib/password-hash.h: whatever it accepts must
 * be within the cost bounds and print back to the same string. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"
#include "password-hash.h"

static void check(bool condition) {
        if (!condition)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = strndup((const char *) data, size), *salt64 = NULL, *hash64 = NULL, *again = NULL;
        uint8_t salt[PASSWORD_HASH_SALT_SIZE], hash[PASSWORD_HASH_SIZE];
        password_hash_params p = {};

        if (!s || password_hash_parse(s, &p, salt, hash) < 0)
                return 0;
        check(p.log2_n >= PASSWORD_HASH_LOG2_N_MIN && p.log2_n <= PASSWORD_HASH_LOG2_N_MAX);
        check(p.r >= 1 && p.r <= PASSWORD_HASH_R_MAX && p.p >= 1 && p.p <= PASSWORD_HASH_P_MAX);
        check(128 * (uint64_t) p.r * (UINT64_C(1) << p.log2_n) <= PASSWORD_HASH_MEMORY_MAX);
        /* One spelling only. */
        check(base64url_encode(salt, sizeof(salt), &salt64) >= 0 && base64url_encode(hash, sizeof(hash), &hash64) >= 0);
        check(asprintf(&again, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", p.log2_n, p.r, p.p, salt64, hash64) > 0);
        check(strcmp(again, s) == 0);
        return 0;
}
