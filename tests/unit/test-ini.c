/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "ini.h"
#include "macro.h"
#include "tests.h"

struct seen {
        char lines[16][256];
        size_t n;
        int fail_on_line;
};

static int collect(const char *section, const char *key, const char *value, unsigned line,
                   void *userdata) {
        struct seen *s = userdata;

        if ((int) line == s->fail_on_line)
                return -ERANGE;
        if (s->n < ELEMENTSOF(s->lines))
                snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%u:[%s]%s=%s", line, section, key,
                         value);
        return 0;
}

static int parse(const char *text, struct seen *s, unsigned *line, const char **reason) {
        memset(s->lines, 0, sizeof(s->lines));
        s->n = 0;
        return ini_parse(text, strlen(text), collect, s, line, reason);
}

static void test_good(void) {
        struct seen s = { .fail_on_line = -1 };
        unsigned line = 0;
        const char *reason = NULL;

        CU_ASSERT_EQUAL(parse("# comment\n"
                              "; other comment\n"
                              "\n"
                              "[QoS]\n"
                              "  RttThresholdMs = 250  \n"
                              "Empty=\n"
                              "\t[ Gate ]\r\n"
                              "DownloadsOnMetered=no # not a comment\r\n"
                              "Key=a=b\n"
                              "Last=x", /* no final newline */
                              &s, &line, &reason),
                        0);
        CU_ASSERT_EQUAL(s.n, 5);
        CU_ASSERT_STRING_EQUAL(s.lines[0], "5:[QoS]RttThresholdMs=250");
        CU_ASSERT_STRING_EQUAL(s.lines[1], "6:[QoS]Empty=");
        CU_ASSERT_STRING_EQUAL(s.lines[2], "8:[Gate]DownloadsOnMetered=no # not a comment");
        CU_ASSERT_STRING_EQUAL(s.lines[3], "9:[Gate]Key=a=b");
        CU_ASSERT_STRING_EQUAL(s.lines[4], "10:[Gate]Last=x");
        /* Untouched on success. */
        CU_ASSERT_EQUAL(line, 0);
        CU_ASSERT_PTR_NULL(reason);
}

static void test_duplicates_in_order(void) {
        struct seen s = { .fail_on_line = -1 };

        CU_ASSERT_EQUAL(parse("[A]\nK=1\nK=2\n[A]\nK=3\n", &s, NULL, NULL), 0);
        CU_ASSERT_EQUAL(s.n, 3);
        CU_ASSERT_STRING_EQUAL(s.lines[2], "5:[A]K=3");
}

static void test_empty(void) {
        struct seen s = { .fail_on_line = -1 };

        CU_ASSERT_EQUAL(ini_parse(NULL, 0, collect, &s, NULL, NULL), 0);
        CU_ASSERT_EQUAL(parse("\n\n# only comments\n", &s, NULL, NULL), 0);
        CU_ASSERT_EQUAL(s.n, 0);
        CU_ASSERT_EQUAL(ini_parse("x", 1, NULL, NULL, NULL, NULL), -EINVAL);
}

static void check_bad(const char *text, unsigned want_line, const char *want_reason) {
        struct seen s = { .fail_on_line = -1 };
        unsigned line = 0;
        const char *reason = NULL;

        CU_ASSERT_EQUAL(parse(text, &s, &line, &reason), -EBADMSG);
        CU_ASSERT_EQUAL(line, want_line);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
        CU_ASSERT_STRING_EQUAL(reason, want_reason);
}

static void test_bad(void) {
        check_bad("Key=1\n", 1, "assignment outside of any [Section]");
        check_bad("[A]\njunk\n", 2, "expected Key=Value");
        check_bad("[A\n", 1, "section header without closing ']'");
        check_bad("[]\n", 1, "invalid section name");
        check_bad("[a b]\n", 1, "invalid section name");
        check_bad("[A]\n=1\n", 2, "empty key");
        check_bad("[A]\nmy key=1\n", 2, "invalid key name");
}

static void test_nul_and_long_lines(void) {
        struct seen s = { .fail_on_line = -1 };
        static char big[INI_LINE_MAX + 16];
        unsigned line = 0;
        const char *reason = NULL;

        CU_ASSERT_EQUAL(ini_parse("[A]\nK=a\0b\n", 10, collect, &s, &line, &reason), -EBADMSG);
        CU_ASSERT_EQUAL(line, 2);
        CU_ASSERT_STRING_EQUAL(reason, "NUL byte in line");

        memcpy(big, "[A]\nK=", 6);
        memset(big + 6, 'x', sizeof(big) - 7);
        big[sizeof(big) - 1] = '\0';
        CU_ASSERT_EQUAL(parse(big, &s, &line, &reason), -EBADMSG);
        CU_ASSERT_EQUAL(line, 2);
        CU_ASSERT_STRING_EQUAL(reason, "line too long");
}

static void test_handler_error(void) {
        struct seen s = { .fail_on_line = 3 };
        unsigned line = 0;
        const char *reason = "unset";

        CU_ASSERT_EQUAL(ini_parse("[A]\nK=1\nK=2\nK=3\n", 16, collect, &s, &line, &reason), -ERANGE);
        CU_ASSERT_EQUAL(line, 3);
        CU_ASSERT_PTR_NULL(reason);
        /* Stopped at the failing line: nothing after it was handed out. */
        CU_ASSERT_EQUAL(s.n, 1);
}

static CU_TestInfo tests[] = {
        { "good lines, comments, whitespace", test_good },
        { "duplicate keys are passed in order", test_duplicates_in_order },
        { "empty input", test_empty },
        { "bad lines name line and reason", test_bad },
        { "NUL bytes and long lines", test_nul_and_long_lines },
        { "handler error stops the parse", test_handler_error },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("ini", tests)
