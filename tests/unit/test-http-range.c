/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "http-range.h"
#include "tests.h"

static void expect_range(const char *h, uint64_t size, uint64_t first, uint64_t last) {
        http_range r = { 12345, 67890 };

        CU_ASSERT_EQUAL(http_range_parse(h, size, &r), HTTP_RANGE_SATISFIABLE);
        CU_ASSERT_EQUAL(r.first, first);
        CU_ASSERT_EQUAL(r.last, last);
}

static void expect_result(const char *h, uint64_t size, http_range_result want) {
        http_range r = { 12345, 67890 };

        CU_ASSERT_EQUAL(http_range_parse(h, size, &r), want);
        /* Untouched unless satisfiable. */
        CU_ASSERT_EQUAL(r.first, 12345);
        CU_ASSERT_EQUAL(r.last, 67890);
}

static void test_forms(void) {
        expect_range("bytes=0-99", 1000, 0, 99);
        expect_range("bytes=100-", 1000, 100, 999);
        expect_range("bytes=-100", 1000, 900, 999);
        expect_range("bytes=999-999", 1000, 999, 999);
        /* Unit is case-insensitive; whitespace around the range is OWS. */
        expect_range("BYTES=5-6", 1000, 5, 6);
        expect_range("bytes= 5-6 ", 1000, 5, 6);
}

static void test_clamping(void) {
        expect_range("bytes=900-5000", 1000, 900, 999);
        expect_range("bytes=0-18446744073709551615", 1000, 0, 999);
        expect_range("bytes=0-99999999999999999999999", 1000, 0, 999);
        /* A suffix longer than the file is the whole file. */
        expect_range("bytes=-5000", 1000, 0, 999);
        expect_range("bytes=-1000", 1000, 0, 999);
}

static void test_unsatisfiable(void) {
        expect_result("bytes=1000-", 1000, HTTP_RANGE_UNSATISFIABLE);
        expect_result("bytes=1000-2000", 1000, HTTP_RANGE_UNSATISFIABLE);
        expect_result("bytes=99999999999999999999999-", 1000, HTTP_RANGE_UNSATISFIABLE);
        expect_result("bytes=-0", 1000, HTTP_RANGE_UNSATISFIABLE);
        expect_result("bytes=0-", 0, HTTP_RANGE_UNSATISFIABLE);
        expect_result("bytes=-5", 0, HTTP_RANGE_UNSATISFIABLE);
}

static void test_ignored(void) {
        expect_result(NULL, 1000, HTTP_RANGE_NONE);
        expect_result("", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=-", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=a-b", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=5-4", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=1-2,5-6", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=1-2,", 1000, HTTP_RANGE_NONE);
        expect_result("items=1-2", 1000, HTTP_RANGE_NONE);
        expect_result("bytes 1-2", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=+1-2", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=1 -2", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=--1", 1000, HTTP_RANGE_NONE);
        expect_result("bytes=1-2x", 1000, HTTP_RANGE_NONE);
}

static void test_if_none_match(void) {
        const char *etag = "\"abc\"";

        CU_ASSERT_TRUE(http_if_none_match("\"abc\"", etag));
        CU_ASSERT_TRUE(http_if_none_match("*", etag));
        CU_ASSERT_TRUE(http_if_none_match(" * ", etag));
        CU_ASSERT_TRUE(http_if_none_match("W/\"abc\"", etag));
        CU_ASSERT_TRUE(http_if_none_match("\"x\", \"abc\"", etag));
        CU_ASSERT_TRUE(http_if_none_match("\"x\",W/\"abc\" ,", etag));
        CU_ASSERT_FALSE(http_if_none_match(NULL, etag));
        CU_ASSERT_FALSE(http_if_none_match("\"abcd\"", etag));
        CU_ASSERT_FALSE(http_if_none_match("abc", etag));
        CU_ASSERT_FALSE(http_if_none_match("\"abc", etag));
        /* A malformed list matches nothing, even if a good tag is in it. */
        CU_ASSERT_FALSE(http_if_none_match("\"abc\" garbage", etag));
        CU_ASSERT_FALSE(http_if_none_match("*, \"abc\"", etag));
        CU_ASSERT_FALSE(http_if_none_match("\"a b\", \"abc\"", etag));
}

static void test_if_range(void) {
        const char *etag = "\"abc\"";

        CU_ASSERT_TRUE(http_if_range_match(NULL, etag));
        CU_ASSERT_TRUE(http_if_range_match("\"abc\"", etag));
        CU_ASSERT_TRUE(http_if_range_match(" \"abc\" ", etag));
        /* Weak tags and dates never validate a range. */
        CU_ASSERT_FALSE(http_if_range_match("W/\"abc\"", etag));
        CU_ASSERT_FALSE(http_if_range_match("Sun, 06 Nov 1994 08:49:37 GMT", etag));
        CU_ASSERT_FALSE(http_if_range_match("\"other\"", etag));
        CU_ASSERT_FALSE(http_if_range_match("\"abc\", \"abc\"", etag));
        CU_ASSERT_FALSE(http_if_range_match("", etag));
}

static CU_TestInfo tests[] = {
        { "range forms", test_forms },
        { "range clamping", test_clamping },
        { "unsatisfiable ranges", test_unsatisfiable },
        { "ignored Range headers", test_ignored },
        { "If-None-Match", test_if_none_match },
        { "If-Range", test_if_range },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("http-range", tests)
