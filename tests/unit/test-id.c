/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "id.h"
#include "macro.h"
#include "tests.h"

#define N_UNIQUE 10000

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void test_uuid_format(void) {
        char s[ID_UUID_STRING_MAX];

        for (int i = 0; i < 100; i++) {
                CU_ASSERT_EQUAL_FATAL(id_uuid_new(s), 0);
                CU_ASSERT_EQUAL(strlen(s), 36);
                CU_ASSERT(id_uuid_is_valid(s));
                /* Version 4, RFC 4122 variant. */
                CU_ASSERT_EQUAL(s[14], '4');
                CU_ASSERT_PTR_NOT_NULL(strchr("89ab", s[19]));
        }
}

static void test_uuid_unique(void) {
        static char buf[N_UNIQUE][ID_UUID_STRING_MAX];
        static char *p[N_UNIQUE];

        for (size_t i = 0; i < N_UNIQUE; i++) {
                CU_ASSERT_EQUAL_FATAL(id_uuid_new(buf[i]), 0);
                p[i] = buf[i];
        }
        qsort(p, N_UNIQUE, sizeof(p[0]), cmp_str);
        for (size_t i = 1; i < N_UNIQUE; i++)
                CU_ASSERT_NOT_EQUAL(strcmp(p[i - 1], p[i]), 0);
}

static void test_uuid_validation(void) {
        static const char *good[] = {
                "123e4567-e89b-12d3-a456-426614174000", /* v1 */
                "00000000-0000-0000-0000-000000000000",
                "0190163d-8694-739b-aea5-966c26f8ad91", /* v7 */
                "f81d4fae-7dec-41d0-a765-00a0c91e6bf6",
        };
        static const char *bad[] = {
                "",
                "F81D4FAE-7DEC-41D0-A765-00A0C91E6BF6", /* uppercase */
                "f81d4fae7dec41d0a76500a0c91e6bf6",     /* no dashes */
                "f81d4fae-7dec-41d0-a765-00a0c91e6bf",  /* short */
                "f81d4fae-7dec-41d0-a765-00a0c91e6bf60",
                "f81d4fae-7dec-41d0-a765_00a0c91e6bf6",
                "f81d4fae-7dec-41d0-a7650-0a0c91e6bf6", /* dash misplaced */
                "g81d4fae-7dec-41d0-a765-00a0c91e6bf6",
                "{f81d4fae-7dec-41d0-a765-00a0c91e6bf6}",
                " f81d4fae-7dec-41d0-a765-00a0c91e6bf6",
        };
        sd_id128_t id, untouched = SD_ID128_MAKE(01, 02, 03, 04, 05, 06, 07, 08, 09, 0a, 0b, 0c, 0d, 0e, 0f, 10);
        char s[ID_UUID_STRING_MAX];

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                CU_ASSERT(id_uuid_is_valid(good[i]));
                CU_ASSERT_EQUAL_FATAL(id_uuid_from_string(good[i], &id), 0);
                CU_ASSERT_STRING_EQUAL(id_uuid_to_string(id, s), good[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                id = untouched;
                CU_ASSERT_FALSE(id_uuid_is_valid(bad[i]));
                CU_ASSERT_EQUAL(id_uuid_from_string(bad[i], &id), -EINVAL);
                CU_ASSERT(sd_id128_equal(id, untouched));
        }
        CU_ASSERT_FALSE(id_uuid_is_valid(NULL));

        CU_ASSERT_EQUAL_FATAL(id_uuid_from_string("f81d4fae-7dec-41d0-a765-00a0c91e6bf6", &id), 0);
        CU_ASSERT_EQUAL(id.bytes[0], 0xf8);
        CU_ASSERT_EQUAL(id.bytes[15], 0xf6);
}

static void test_random(void) {
        uint8_t a[64] = {}, b[64] = {}, zero[64] = {};
        uint64_t x = 0, y = 0;

        CU_ASSERT_EQUAL(id_random_bytes(a, sizeof(a)), 0);
        CU_ASSERT_EQUAL(id_random_bytes(b, sizeof(b)), 0);
        /* 2^-512 chance of a false failure. */
        CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof(a)), 0);
        CU_ASSERT_NOT_EQUAL(memcmp(a, zero, sizeof(a)), 0);
        CU_ASSERT_EQUAL(id_random_bytes(NULL, 0), 0);
        CU_ASSERT_EQUAL(id_random_bytes(NULL, 1), -EINVAL);
        CU_ASSERT_EQUAL(id_random_u64(&x), 0);
        CU_ASSERT_EQUAL(id_random_u64(&y), 0);
        CU_ASSERT_NOT_EQUAL(x, y);
}

static void test_tokens(void) {
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *copy = NULL;
        _cleanup_free_ void *raw = NULL;
        char *untouched = (char *) 0x1;
        size_t n;

        CU_ASSERT_EQUAL_FATAL(id_token_new(ID_TOKEN_BYTES, &t1), 0);
        CU_ASSERT_EQUAL_FATAL(id_token_new(ID_TOKEN_BYTES, &t2), 0);
        CU_ASSERT_EQUAL(strlen(t1), base64url_encoded_size(ID_TOKEN_BYTES));
        CU_ASSERT_EQUAL_FATAL(base64url_decode(t1, SIZE_MAX, &raw, &n), 0);
        CU_ASSERT_EQUAL(n, ID_TOKEN_BYTES);
        CU_ASSERT_STRING_NOT_EQUAL(t1, t2);

        copy = strdup(t1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
        CU_ASSERT(id_token_equal(t1, copy));
        CU_ASSERT_FALSE(id_token_equal(t1, t2));
        copy[strlen(copy) - 1] ^= 1;
        CU_ASSERT_FALSE(id_token_equal(t1, copy));
        copy[strlen(copy) - 1] = '\0';
        CU_ASSERT_FALSE(id_token_equal(t1, copy));
        CU_ASSERT_FALSE(id_token_equal(t1, NULL));
        CU_ASSERT_FALSE(id_token_equal(NULL, NULL));
        CU_ASSERT_FALSE(id_token_equal(t1, ""));

        /* Too short to be a secret. */
        CU_ASSERT_EQUAL(id_token_new(8, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(id_token_new(0, &untouched), -EINVAL);
        CU_ASSERT_PTR_EQUAL(untouched, (char *) 0x1);
}

static CU_TestInfo tests[] = {
        { "UUID format is v4", test_uuid_format },
        { "10000 UUIDs are unique", test_uuid_unique },
        { "UUID validation", test_uuid_validation },
        { "random bytes", test_random },
        { "tokens", test_tokens },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("id", tests)
