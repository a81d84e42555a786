/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <time.h>

#include "ctl-output.h"
#include "tests.h"

#define SEC 1000000ULL

static void test_timespan(void) {
        char b[FORMAT_TIMESPAN_MAX];

        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 0), "0");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 850), "850us");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 1250), "1.2ms");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 2000), "2ms");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 12345), "12ms");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 5 * SEC), "5s");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 1250000), "1.250s");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 60 * SEC), "1min");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 185 * SEC), "3min 5s");
        /* Two units at most, and adjacent ones. */
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 3600 * SEC + 125 * SEC), "1h 2min");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 3600 * SEC + 5 * SEC), "1h");
        CU_ASSERT_STRING_EQUAL(format_timespan(b, sizeof(b), 2 * 86400 * SEC + 3 * 3600 * SEC + 7 * SEC), "2d 3h");
        /* A short buffer is cut, never overrun. */
        CU_ASSERT_STRING_EQUAL(format_timespan(b, 4, 185 * SEC), "3mi");
}

static void test_relative(void) {
        char b[FORMAT_TIMESPAN_MAX + 8];
        uint64_t now = 1700000000ULL * SEC;

        CU_ASSERT_STRING_EQUAL(format_relative(b, sizeof(b), 0, now), "n/a");
        CU_ASSERT_STRING_EQUAL(format_relative(b, sizeof(b), now - 200000, now), "just now");
        /* Sub-second parts are dropped: "how long ago" needs no more. */
        CU_ASSERT_STRING_EQUAL(format_relative(b, sizeof(b), now - 185 * SEC - 400000, now), "3min 5s ago");
        CU_ASSERT_STRING_EQUAL(format_relative(b, sizeof(b), now - 7 * SEC - 999999, now), "7s ago");
        CU_ASSERT_STRING_EQUAL(format_relative(b, sizeof(b), now + 60 * SEC, now), "in 1min");
}

static void test_timestamp(void) {
        char b[FORMAT_TIMESTAMP_MAX];

        setenv("TZ", "UTC", 1);
        tzset();
        CU_ASSERT_STRING_EQUAL(format_timestamp(b, sizeof(b), 1700000000ULL * SEC), "Tue 2023-11-14 22:13:20 UTC");
        CU_ASSERT_STRING_EQUAL(format_timestamp(b, sizeof(b), 0), "n/a");
}

static void test_rate(void) {
        char b[FORMAT_RATE_MAX];

        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), 0), "0 bit/s");
        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), 100), "800 bit/s");
        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), 125), "1.0 kbit/s");
        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), 1000000), "8.0 Mbit/s");
        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), 1500000), "12.0 Mbit/s");
        /* 999.96 kbit/s rounds to 1000.0: shown in the next unit. */
        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), 124995), "1.0 Mbit/s");
        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), 125000000), "1.0 Gbit/s");
        CU_ASSERT_STRING_EQUAL(format_rate(b, sizeof(b), UINT64_MAX), "huge");
}

static void test_bytes_and_per_mille(void) {
        char b[FORMAT_BYTES_MAX];

        CU_ASSERT_STRING_EQUAL(format_bytes(b, sizeof(b), 0), "0 B");
        CU_ASSERT_STRING_EQUAL(format_bytes(b, sizeof(b), 1023), "1023 B");
        CU_ASSERT_STRING_EQUAL(format_bytes(b, sizeof(b), 1536), "1.5 KiB");
        CU_ASSERT_STRING_EQUAL(format_bytes(b, sizeof(b), 3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        CU_ASSERT_PTR_NOT_NULL(strstr(format_bytes(b, sizeof(b), UINT64_MAX), "PiB"));

        CU_ASSERT_STRING_EQUAL(format_per_mille(b, sizeof(b), 0), "0.0%");
        CU_ASSERT_STRING_EQUAL(format_per_mille(b, sizeof(b), 15), "1.5%");
        CU_ASSERT_STRING_EQUAL(format_per_mille(b, sizeof(b), 1000), "100.0%");
}

static void test_colors(void) {
        colors_force(0);
        CU_ASSERT_STRING_EQUAL(state_color("online"), "");
        CU_ASSERT_STRING_EQUAL(color_reset(), "");
        colors_force(1);
        CU_ASSERT_PTR_NOT_NULL(strstr(state_color("online"), "32m"));
        CU_ASSERT_PTR_NOT_NULL(strstr(state_color("degraded"), "33m"));
        CU_ASSERT_PTR_NOT_NULL(strstr(state_color("offline"), "31m"));
        CU_ASSERT_STRING_EQUAL(state_color("weird"), "");
        CU_ASSERT_STRING_EQUAL(state_color(NULL), "");
        CU_ASSERT_STRING_NOT_EQUAL(color_reset(), "");
        colors_force(-1);
}

/* Prints t into a string. */
static char *render(table *t) {
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);

        if (!f)
                return NULL;
        CU_ASSERT_EQUAL(table_print(t, f), 0);
        fclose(f);
        return s;
}

static void test_table(void) {
        _cleanup_table_ table *t = table_new(3);
        _cleanup_free_ char *s = NULL, *c = NULL;

        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        colors_force(0);
        CU_ASSERT_EQUAL(table_add_cell(t, "NAME", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "STATE", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "REASON", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "rtct0", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "online", state_color("online")), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "usable", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "wlan-long-name", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "off\x1bline", NULL), 0);
        /* An empty last cell leaves no trailing blanks. */
        CU_ASSERT_EQUAL(table_add_cell(t, "", NULL), 0);
        s = render(t);
        CU_ASSERT_STRING_EQUAL(s,
                               "NAME            STATE     REASON\n"
                               "rtct0           online    usable\n"
                               "wlan-long-name  off line\n");

        /* Colours wrap the text but do not count towards the width. */
        colors_force(1);
        table_free(t);
        t = table_new(2);
        CU_ASSERT_EQUAL(table_add_cell(t, "degraded", state_color("degraded")), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "x", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "é", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "y", NULL), 0);
        c = render(t);
        CU_ASSERT_STRING_EQUAL(c, "\x1B[0;1;33mdegraded\x1B[0m  x\n"
                                  "é         y\n");
        colors_force(-1);
        CU_ASSERT_PTR_NULL(table_new(0));
        CU_ASSERT_PTR_NULL(table_free(NULL));
}

static void test_header_and_sanitized(void) {
        static const char *const headers[] = { "A", "B" };
        _cleanup_table_ table *t = table_new_with_header(headers, ELEMENTSOF(headers));
        _cleanup_free_ char *s = NULL, *clean = sanitized("x\x1b[2Jy\n"), *dash = sanitized(NULL);

        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        colors_force(0);
        CU_ASSERT_EQUAL(table_add_cell(t, "1", NULL), 0);
        CU_ASSERT_EQUAL(table_add_cell(t, "2", NULL), 0);
        s = render(t);
        CU_ASSERT_STRING_EQUAL(s, "A  B\n1  2\n");
        colors_force(-1);
        CU_ASSERT_STRING_EQUAL(clean, "x [2Jy ");
        CU_ASSERT_STRING_EQUAL(dash, "-");
        CU_ASSERT_PTR_NULL(table_new_with_header(headers, 0));
}

static CU_TestInfo tests[] = {
        { "timespan", test_timespan },
        { "relative time", test_relative },
        { "timestamp", test_timestamp },
        { "rate", test_rate },
        { "bytes and per mille", test_bytes_and_per_mille },
        { "colours", test_colors },
        { "table", test_table },
        { "table with a header, sanitized text", test_header_and_sanitized },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("ctl-output", tests)
