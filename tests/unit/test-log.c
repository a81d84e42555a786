/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "log.h"
#include "tests.h"

static char captured[64][256];
static size_t n_captured;
static int captured_level;

static void sink(int level, char **fields, void *userdata) {
        captured_level = level;
        n_captured = 0;
        for (char **f = fields; *f && n_captured < ELEMENTSOF(captured); f++)
                snprintf(captured[n_captured++], sizeof(captured[0]), "%s", *f);
}

static const char *find(const char *key) {
        size_t n = strlen(key);
        for (size_t i = 0; i < n_captured; i++)
                if (strncmp(captured[i], key, n) == 0 && captured[i][n] == '=')
                        return captured[i] + n + 1;
        return NULL;
}

static void test_errno_return_and_percent_m(void) {
        int r;

        log_set_sink(sink, NULL);
        log_set_max_level(LOG_DEBUG);
        errno = EPERM;
        r = log_error_errno(ENOENT, "Failed to open %s: %m", "foo");
        CU_ASSERT_EQUAL(r, -ENOENT);
        /* errno is not clobbered by logging. */
        CU_ASSERT_EQUAL(errno, EPERM);
        CU_ASSERT_EQUAL(captured_level, LOG_ERR);
        CU_ASSERT_STRING_EQUAL(find("MESSAGE"), "Failed to open foo: No such file or directory");
        CU_ASSERT_STRING_EQUAL(find("ERRNO"), "2");
        CU_ASSERT_PTR_NOT_NULL(find("CODE_FILE"));
        CU_ASSERT_PTR_NOT_NULL(find("CODE_FUNC"));

        /* A negative error is the same as a positive one. */
        r = log_warning_errno(-EIO, "x");
        CU_ASSERT_EQUAL(r, -EIO);
        CU_ASSERT_STRING_EQUAL(find("ERRNO"), "5");
        log_set_sink(NULL, NULL);
}

static void test_level_filter(void) {
        log_set_sink(sink, NULL);
        log_set_max_level(LOG_INFO);
        n_captured = 0;
        log_debug("hidden");
        CU_ASSERT_EQUAL(n_captured, 0);
        CU_ASSERT_EQUAL(log_debug_errno(EINVAL, "hidden"), -EINVAL);
        CU_ASSERT_EQUAL(n_captured, 0);
        log_info("shown %d", 1);
        CU_ASSERT_STRING_EQUAL(find("MESSAGE"), "shown 1");
        CU_ASSERT_PTR_NULL(find("ERRNO"));
        log_set_sink(NULL, NULL);
}

static void test_struct_fields(void) {
        log_set_sink(sink, NULL);
        log_set_max_level(LOG_INFO);
        log_struct(LOG_WARNING,
                   LOG_MESSAGE("Interface %s degraded", "veth0"),
                   LOG_MESSAGE_ID("0123456789abcdef0123456789abcdef"),
                   LOG_FIELD("INTERFACE", "%s", "veth0"),
                   LOG_FIELD("QOS_RTT_US", "%u", 1234u));
        CU_ASSERT_EQUAL(captured_level, LOG_WARNING);
        CU_ASSERT_STRING_EQUAL(find("MESSAGE"), "Interface veth0 degraded");
        CU_ASSERT_STRING_EQUAL(find("MESSAGE_ID"), "0123456789abcdef0123456789abcdef");
        CU_ASSERT_STRING_EQUAL(find("INTERFACE"), "veth0");
        CU_ASSERT_STRING_EQUAL(find("QOS_RTT_US"), "1234");

        /* Filtered structured entries free their fields (ASan checks). */
        n_captured = 0;
        log_struct(LOG_DEBUG, LOG_MESSAGE("hidden"), LOG_FIELD("A", "%d", 1));
        CU_ASSERT_EQUAL(n_captured, 0);
        log_set_sink(NULL, NULL);
}

static void test_level_names(void) {
        CU_ASSERT_EQUAL(log_level_from_string("debug"), LOG_DEBUG);
        CU_ASSERT_EQUAL(log_level_from_string("warning"), LOG_WARNING);
        CU_ASSERT_EQUAL(log_level_from_string("error"), LOG_ERR);
        CU_ASSERT_EQUAL(log_level_from_string("3"), LOG_ERR);
        CU_ASSERT_EQUAL(log_level_from_string("8"), -EINVAL);
        CU_ASSERT_EQUAL(log_level_from_string("loud"), -EINVAL);
        CU_ASSERT_EQUAL(log_level_from_string(""), -EINVAL);
        CU_ASSERT_STRING_EQUAL(log_level_to_string(LOG_NOTICE), "notice");
        CU_ASSERT_PTR_NULL(log_level_to_string(9));
}

static void test_target_from_env(void) {
        setenv("RETHINK_LOG_TARGET", "json", 1);
        setenv("RETHINK_LOG_LEVEL", "notice", 1);
        log_open();
        CU_ASSERT_EQUAL(log_get_target(), LOG_TARGET_JSON);
        CU_ASSERT_EQUAL(log_get_max_level(), LOG_NOTICE);
        unsetenv("RETHINK_LOG_TARGET");
        unsetenv("JOURNAL_STREAM");
        unsetenv("INVOCATION_ID");
        log_open();
        CU_ASSERT_EQUAL(log_get_target(), LOG_TARGET_CONSOLE);
        setenv("INVOCATION_ID", "abc", 1);
        log_open();
        CU_ASSERT_EQUAL(log_get_target(), LOG_TARGET_JOURNAL);
        unsetenv("INVOCATION_ID");
        /* JOURNAL_STREAM naming another stream than our stderr: console. */
        setenv("JOURNAL_STREAM", "1:1", 1);
        log_open();
        CU_ASSERT_EQUAL(log_get_target(), LOG_TARGET_CONSOLE);
        unsetenv("JOURNAL_STREAM");
        unsetenv("RETHINK_LOG_LEVEL");
}

static CU_TestInfo tests[] = {
        { "errno return and %m", test_errno_return_and_percent_m },
        { "level filter", test_level_filter },
        { "structured fields", test_struct_fields },
        { "level names", test_level_names },
        { "target from environment", test_target_from_env },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("log", tests)
