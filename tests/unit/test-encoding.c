/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"
#include "tests.h"

static void check_b64url(const char *in, const char *expected) {
        _cleanup_free_ char *s = NULL;
        _cleanup_free_ void *d = NULL;
        size_t n = 0;

        CU_ASSERT_EQUAL_FATAL(base64url_encode(in, strlen(in), &s), 0);
        CU_ASSERT_STRING_EQUAL(s, expected);
        CU_ASSERT_EQUAL(strlen(s), base64url_encoded_size(strlen(in)));
        CU_ASSERT_EQUAL_FATAL(base64url_decode(expected, SIZE_MAX, &d, &n), 0);
        CU_ASSERT_EQUAL(n, strlen(in));
        CU_ASSERT_EQUAL(memcmp(d, in, n), 0);
        /* Decoded buffers are NUL-terminated. */
        CU_ASSERT_EQUAL(((char *) d)[n], 0);
}

/* RFC 4648 §10, with the padding dropped as base64url here is unpadded. */
static void test_base64url_rfc4648(void) {
        check_b64url("", "");
        check_b64url("f", "Zg");
        check_b64url("fo", "Zm8");
        check_b64url("foo", "Zm9v");
        check_b64url("foob", "Zm9vYg");
        check_b64url("fooba", "Zm9vYmE");
        check_b64url("foobar", "Zm9vYmFy");
}

static void test_base64url_alphabet(void) {
        static const uint8_t x[] = { 0xfb, 0xff, 0xbf, 0xfe };
        _cleanup_free_ char *s = NULL;
        _cleanup_free_ void *d = NULL;
        size_t n;

        /* Bytes that hit '+' and '/' in the standard alphabet. */
        CU_ASSERT_EQUAL_FATAL(base64url_encode(x, sizeof(x), &s), 0);
        CU_ASSERT_STRING_EQUAL(s, "-_-__g");
        CU_ASSERT_EQUAL_FATAL(base64url_decode(s, SIZE_MAX, &d, &n), 0);
        CU_ASSERT_EQUAL(n, sizeof(x));
        CU_ASSERT_EQUAL(memcmp(d, x, n), 0);
}

static void test_base64url_bad(void) {
        static const char *bad[] = {
                "Zg==",   /* padding is not accepted */
                "Zm9v=",  /* trailing padding */
                "Zm=v",   /* embedded padding */
                "Zm9v+g", /* standard alphabet */
                "Zm9v/g",
                "Z",      /* 1 mod 4 cannot be produced by any input */
                "Zm9vY",
                "Zh",     /* non-zero unused bits: only "Zg" means "f" */
                "Zm9",    /* only "Zm8" means "fo" */
                " Zm9v",  /* whitespace */
                "Zm9v\n",
                "Zm 9v",
                "Zm9v!",
        };
        void *d = (void *) 0x1;
        size_t n = 7;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                CU_ASSERT_EQUAL(base64url_decode(bad[i], SIZE_MAX, &d, &n), -EINVAL);
                /* Output parameters stay untouched on failure. */
                CU_ASSERT_PTR_EQUAL(d, (void *) 0x1);
                CU_ASSERT_EQUAL(n, 7);
        }
        /* An embedded NUL within the given length is invalid. */
        CU_ASSERT_EQUAL(base64url_decode("Zm\0v", 4, &d, &n), -EINVAL);
        CU_ASSERT_EQUAL(base64url_decode(NULL, 0, &d, &n), -EINVAL);
}

static void test_base64url_exact(void) {
        uint8_t buf[3] = { 1, 2, 3 };

        CU_ASSERT_EQUAL(base64url_decode_exact("Zm9v", SIZE_MAX, buf, 3), 0);
        CU_ASSERT_EQUAL(memcmp(buf, "foo", 3), 0);
        memset(buf, 0xaa, sizeof(buf));
        CU_ASSERT_EQUAL(base64url_decode_exact("Zm8", SIZE_MAX, buf, 3), -EINVAL);
        CU_ASSERT_EQUAL(base64url_decode_exact("Zm9vYg", SIZE_MAX, buf, 3), -EINVAL);
        CU_ASSERT_EQUAL(base64url_decode_exact("Zm9=", SIZE_MAX, buf, 3), -EINVAL);
        CU_ASSERT_EQUAL(buf[0], 0xaa);
        CU_ASSERT_EQUAL(base64url_decode_exact("Zm8", 3, buf, 2), 0);
        CU_ASSERT_EQUAL(memcmp(buf, "fo", 2), 0);
}

static void test_base64url_large(void) {
        /* Larger than the internal block size, and not a multiple of it. */
        size_t sizes[] = { 3 * 4096 - 1, 3 * 4096, 3 * 4096 + 1, 100000 };

        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                _cleanup_free_ uint8_t *x = malloc(sizes[k]);
                _cleanup_free_ char *s = NULL;
                _cleanup_free_ void *d = NULL;
                size_t n;

                CU_ASSERT_PTR_NOT_NULL_FATAL(x);
                for (size_t i = 0; i < sizes[k]; i++)
                        x[i] = (uint8_t) (i * 131 + (i >> 8));
                CU_ASSERT_EQUAL_FATAL(base64url_encode(x, sizes[k], &s), 0);
                CU_ASSERT_EQUAL(strlen(s), base64url_encoded_size(sizes[k]));
                CU_ASSERT_PTR_NULL(strpbrk(s, "+/="));
                CU_ASSERT_EQUAL_FATAL(base64url_decode(s, SIZE_MAX, &d, &n), 0);
                CU_ASSERT_EQUAL(n, sizes[k]);
                CU_ASSERT_EQUAL(memcmp(d, x, n), 0);
        }
}

/* RFC 4648 §10 base16 vectors. */
static void test_hex(void) {
        static const struct { const char *in, *out; } v[] = {
                { "", "" }, { "f", "66" }, { "fo", "666f" }, { "foo", "666f6f" },
                { "foob", "666f6f62" }, { "fooba", "666f6f6261" }, { "foobar", "666f6f626172" },
        };

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                _cleanup_free_ char *s = NULL;
                _cleanup_free_ void *d = NULL;
                size_t n;

                CU_ASSERT_EQUAL_FATAL(hex_encode(v[i].in, strlen(v[i].in), &s), 0);
                CU_ASSERT_STRING_EQUAL(s, v[i].out);
                CU_ASSERT_EQUAL_FATAL(hex_decode(v[i].out, SIZE_MAX, &d, &n), 0);
                CU_ASSERT_EQUAL(n, strlen(v[i].in));
                CU_ASSERT_EQUAL(memcmp(d, v[i].in, n), 0);
        }
}

static void test_hex_case_and_bad(void) {
        static const uint8_t x[] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x0f };
        _cleanup_free_ void *d = NULL;
        char buf[2 * sizeof(x) + 1];
        uint8_t y[2] = { 9, 9 };
        void *p = NULL;
        size_t n;

        CU_ASSERT_STRING_EQUAL(hex_encode_buf(x, sizeof(x), buf), "deadbeef000f");
        /* Uppercase is accepted on input. */
        CU_ASSERT_EQUAL_FATAL(hex_decode("DEADbeef000F", SIZE_MAX, &d, &n), 0);
        CU_ASSERT_EQUAL(n, sizeof(x));
        CU_ASSERT_EQUAL(memcmp(d, x, n), 0);

        CU_ASSERT_EQUAL(hex_decode("abc", SIZE_MAX, &p, &n), -EINVAL);
        CU_ASSERT_EQUAL(hex_decode("zz", SIZE_MAX, &p, &n), -EINVAL);
        CU_ASSERT_EQUAL(hex_decode("0x00", SIZE_MAX, &p, &n), -EINVAL);
        CU_ASSERT_EQUAL(hex_decode(" 00", SIZE_MAX, &p, &n), -EINVAL);
        CU_ASSERT_EQUAL(hex_decode("0\0", 2, &p, &n), -EINVAL);
        CU_ASSERT_PTR_NULL(p);

        CU_ASSERT_EQUAL(hex_decode_exact("beef", SIZE_MAX, y, 2), 0);
        CU_ASSERT_EQUAL(y[0], 0xbe);
        CU_ASSERT_EQUAL(y[1], 0xef);
        CU_ASSERT_EQUAL(hex_decode_exact("beefaa", SIZE_MAX, y, 2), -EINVAL);
        CU_ASSERT_EQUAL(hex_decode_exact("be", SIZE_MAX, y, 2), -EINVAL);
        CU_ASSERT_EQUAL(hex_decode_exact("begg", SIZE_MAX, y, 2), -EINVAL);
        CU_ASSERT_EQUAL(y[0], 0xbe);
}

static CU_TestInfo tests[] = {
        { "base64url RFC 4648 vectors", test_base64url_rfc4648 },
        { "base64url URL alphabet", test_base64url_alphabet },
        { "base64url rejects bad input", test_base64url_bad },
        { "base64url decode exact", test_base64url_exact },
        { "base64url large inputs", test_base64url_large },
        { "hex RFC 4648 vectors", test_hex },
        { "hex case and bad input", test_hex_case_and_bad },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("encoding", tests)
