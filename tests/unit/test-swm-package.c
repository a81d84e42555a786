/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "macro.h"
#include "package.h"
#include "tests.h"

static int url(const char *u, bool *tls, char **host, uint16_t *port, char **path) {
        return package_url_parse(u, tls, host, port, path);
}

static void test_url(void) {
        _cleanup_free_ char *host = NULL, *path = NULL;
        uint16_t port = 0;
        bool tls = false;

        CU_ASSERT_EQUAL_FATAL(url("https://10.0.0.1:8443/catalogue/packages/ab", &tls, &host, &port, &path), 0);
        CU_ASSERT_TRUE(tls);
        CU_ASSERT_STRING_EQUAL(host, "10.0.0.1");
        CU_ASSERT_EQUAL(port, 8443);
        CU_ASSERT_STRING_EQUAL(path, "/catalogue/packages/ab");
        free(host);
        free(path);
        CU_ASSERT_EQUAL_FATAL(url("http://[::1]/p", &tls, &host, &port, &path), 0);
        CU_ASSERT_FALSE(tls);
        CU_ASSERT_STRING_EQUAL(host, "::1");
        CU_ASSERT_EQUAL(port, 80);
        free(host);
        free(path);
        CU_ASSERT_EQUAL_FATAL(url("https://localhost/p", &tls, &host, &port, &path), 0);
        CU_ASSERT_EQUAL(port, 443);
        free(host);
        free(path);
        host = path = NULL;

        static const char *const bad[] = {
                "ftp://10.0.0.1/p", "https://10.0.0.1", "https://example.com/p", "https://10.0.0.1:0/p",
                "https://10.0.0.1:65536/p", "https://10.0.0.1:/p", "https://10.0.0.1:08/p", "https://10.0.0.1:+8/p",
                "https://u@10.0.0.1/p", "https://10.0.0.1/p?q", "https://10.0.0.1/p#f", "https://10.0.0.1/a b",
                "https://[10.0.0.1]/p", "https://::1/p", "https:///p", "", "https://10.0.0.1:99999999999999999999/p",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                CU_ASSERT_EQUAL(url(bad[i], &tls, &host, &port, &path), -EINVAL);
                CU_ASSERT_PTR_NULL(host);
        }
}

static void test_content_range(void) {
        uint64_t first = 1, size = 1;

        CU_ASSERT_EQUAL(package_content_range_parse("bytes 100-199/1000", &first, &size), 0);
        CU_ASSERT_EQUAL(first, 100);
        CU_ASSERT_EQUAL(size, 1000);
        CU_ASSERT_EQUAL(package_content_range_parse("bytes */1000", &first, &size), 0);
        CU_ASSERT_EQUAL(first, UINT64_MAX);
        CU_ASSERT_EQUAL(size, 1000);

        static const char *const bad[] = {
                "bytes 100-99/1000", "bytes 0-1000/1000", "bytes 1-2/", "bytes 1-2", "bytes -1-2/3",
                "items 1-2/3", "bytes 1-2/3x", "bytes  1-2/3", "bytes */", "bytes 99999999999999999999-1/2",
                "bytes 1-2/*", "",
        };
        first = size = 7;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                CU_ASSERT_EQUAL(package_content_range_parse(bad[i], &first, &size), -EINVAL);
        CU_ASSERT_EQUAL(first, 7);
        CU_ASSERT_EQUAL(size, 7);
}

static void test_type(void) {
        CU_ASSERT_EQUAL(package_type_detect("\177ELF\002", 5), PACKAGE_ELF);
        CU_ASSERT_EQUAL(package_type_detect("#!/bin/sh", 9), PACKAGE_SCRIPT);
        CU_ASSERT_EQUAL(package_type_detect("#!", 2), PACKAGE_SCRIPT);
        CU_ASSERT_EQUAL(package_type_detect("\177EL", 3), PACKAGE_UNSUPPORTED);
        CU_ASSERT_EQUAL(package_type_detect("PK\003\004", 4), PACKAGE_UNSUPPORTED);
        CU_ASSERT_EQUAL(package_type_detect(NULL, 0), PACKAGE_UNSUPPORTED);
}

static CU_TestInfo tests[] = {
        { "package URLs", test_url },
        { "Content-Range", test_content_range },
        { "package type", test_type },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("swm-package", tests)
