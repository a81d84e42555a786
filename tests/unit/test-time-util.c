/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "id.h"
#include "macro.h"
#include "tests.h"
#include "time-util.h"

static void test_now(void) {
        usec_t a = now(CLOCK_MONOTONIC), b = now(CLOCK_MONOTONIC);

        CU_ASSERT(a > 0);
        CU_ASSERT(b >= a);
        CU_ASSERT(now(CLOCK_BOOTTIME) > 0);
        /* After 2020-01-01: the clock is wall time in microseconds. */
        CU_ASSERT(now(CLOCK_REALTIME) > 1577836800ULL * USEC_PER_SEC);
        CU_ASSERT(now(CLOCK_REALTIME) < 4102444800ULL * USEC_PER_SEC);
}

static void test_parse_timespan(void) {
        static const struct {
                const char *s;
                usec_t v;
        } good[] = {
                { "500ms", 500 * USEC_PER_MSEC },
                { "2s", 2 * USEC_PER_SEC },
                { "1min", USEC_PER_MINUTE },
                { "1h", USEC_PER_HOUR },
                { "1d", USEC_PER_DAY },
                { "2w", 2 * USEC_PER_WEEK },
                { "90", 90 * USEC_PER_SEC },
                { "0", 0 },
                { "1min 30s", 90 * USEC_PER_SEC },
                { "1h30min", 90 * USEC_PER_MINUTE },
                { " 1 min  30 s ", 90 * USEC_PER_SEC },
                { "1.5s", 1500 * USEC_PER_MSEC },
                { "0.25h", 15 * USEC_PER_MINUTE },
                { "1.0000001s", USEC_PER_SEC },
                { "250us", 250 },
                { "3seconds", 3 * USEC_PER_SEC },
                { "1m", USEC_PER_MINUTE },
                { "infinity", USEC_INFINITY },
                { " infinity ", USEC_INFINITY },
                { "18446744073709551614us", UINT64_MAX - 1 },
        };
        static const struct {
                const char *s;
                int r;
        } bad[] = {
                { "", -EINVAL },
                { "   ", -EINVAL },
                { "-1", -EINVAL },
                { "-5s", -EINVAL },
                { "+5s", -EINVAL },
                { "s", -EINVAL },
                { "5x", -EINVAL },
                { "5 parsecs", -EINVAL },
                { "1.", -EINVAL },
                { ".5s", -EINVAL },
                { "1.5.5s", -EINVAL },
                { "1s-", -EINVAL },
                { "infinity 1s", -EINVAL },
                { "infinityx", -EINVAL },
                { "0x10", -EINVAL },
                { "18446744073709551616us", -ERANGE },
                { "18446744073709551615us", -ERANGE }, /* that is infinity */
                { "99999999999999999999", -ERANGE },
                { "300000000d", -ERANGE },
                { "200000000d 200000000d", -ERANGE },
        };
        usec_t v;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                v = 12345;
                CU_ASSERT_EQUAL(parse_timespan(good[i].s, &v), 0);
                CU_ASSERT_EQUAL(v, good[i].v);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                v = 12345;
                CU_ASSERT_EQUAL(parse_timespan(bad[i].s, &v), bad[i].r);
                CU_ASSERT_EQUAL(v, 12345);
        }
        CU_ASSERT_EQUAL(parse_timespan(NULL, &v), -EINVAL);
}

static void test_format_timespan_exact(void) {
        static const struct {
                usec_t v;
                const char *s;
        } v[] = {
                { 0, "0" },
                { 90 * USEC_PER_SEC, "1min 30s" },
                { 250 * USEC_PER_MSEC, "250ms" },
                { 1, "1us" },
                { USEC_PER_DAY + 2 * USEC_PER_HOUR + 3, "1d 2h 3us" },
                { 1500 * USEC_PER_MSEC, "1s 500ms" },
                { 8 * USEC_PER_DAY, "8d" },
                { USEC_INFINITY, "infinity" },
        };
        char buf[FORMAT_TIMESPAN_MAX];

        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                CU_ASSERT_STRING_EQUAL(format_timespan_exact(buf, sizeof(buf), v[i].v), v[i].s);

        /* Too small a buffer is an error, never a truncated value. */
        CU_ASSERT_PTR_NULL(format_timespan_exact(buf, 5, 90 * USEC_PER_SEC));
        CU_ASSERT_PTR_NOT_NULL(format_timespan_exact(buf, 9, 90 * USEC_PER_SEC));
        CU_ASSERT_PTR_NULL(format_timespan_exact(buf, 8, 90 * USEC_PER_SEC));
        CU_ASSERT_PTR_NOT_NULL(format_timespan_exact(buf, sizeof(buf), UINT64_MAX - 1));
}

static void test_timespan_round_trip(void) {
        char buf[FORMAT_TIMESPAN_MAX];

        for (int i = 0; i < 2000; i++) {
                uint64_t x;
                usec_t v, back = 0;

                CU_ASSERT_EQUAL_FATAL(id_random_u64(&x), 0);
                /* Spread over all magnitudes. */
                v = x >> (x % 64);
                if (v == USEC_INFINITY)
                        v--;
                CU_ASSERT_PTR_NOT_NULL_FATAL(format_timespan_exact(buf, sizeof(buf), v));
                CU_ASSERT_EQUAL(parse_timespan(buf, &back), 0);
                CU_ASSERT_EQUAL(back, v);
        }
}

static void test_dates(void) {
        /* RFC 9110's example date: 784111777 s. */
        usec_t t = 784111777ULL * USEC_PER_SEC, back = 0;
        char buf[FORMAT_HTTP_DATE_MAX];

        CU_ASSERT_STRING_EQUAL(format_http_date(buf, sizeof(buf), t), "Sun, 06 Nov 1994 08:49:37 GMT");
        CU_ASSERT_EQUAL(parse_http_date(buf, &back), 0);
        CU_ASSERT_EQUAL(back, t);
        CU_ASSERT_STRING_EQUAL(format_rfc3339(buf, sizeof(buf), t + 123456), "1994-11-06T08:49:37Z");
        CU_ASSERT_STRING_EQUAL(format_rfc3339_usec(buf, sizeof(buf), t + 1234),
                               "1994-11-06T08:49:37.001234Z");
        CU_ASSERT_STRING_EQUAL(format_rfc3339(buf, sizeof(buf), 0), "1970-01-01T00:00:00Z");
        CU_ASSERT_STRING_EQUAL(format_http_date(buf, sizeof(buf), 951782400ULL * USEC_PER_SEC),
                               "Tue, 29 Feb 2000 00:00:00 GMT");
        CU_ASSERT_EQUAL(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT", &back), 0);
        CU_ASSERT_EQUAL(back, 951782400ULL * USEC_PER_SEC);

        CU_ASSERT_PTR_NULL(format_rfc3339(buf, sizeof(buf), USEC_INFINITY));
        CU_ASSERT_PTR_NULL(format_http_date(buf, 10, t));
        CU_ASSERT_PTR_NULL(format_rfc3339(buf, 20, t));

        back = 7;
        CU_ASSERT_EQUAL(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &back), -EINVAL);
        CU_ASSERT_EQUAL(parse_http_date("Sun Nov  6 08:49:37 1994", &back), -EINVAL);
        CU_ASSERT_EQUAL(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC", &back), -EINVAL);
        CU_ASSERT_EQUAL(parse_http_date("Sun, 06 Nom 1994 08:49:37 GMT", &back), -EINVAL);
        CU_ASSERT_EQUAL(parse_http_date("Sun, 31 Feb 1994 08:49:37 GMT", &back), -EINVAL);
        CU_ASSERT_EQUAL(parse_http_date("Sun, 06 Nov 1994 24:49:37 GMT", &back), -EINVAL);
        CU_ASSERT_EQUAL(parse_http_date("Sun, 06 Nov 1994 08:49:3x GMT", &back), -EINVAL);
        CU_ASSERT_EQUAL(parse_http_date("Sun, 06 Nov 1969 08:49:37 GMT", &back), -ERANGE);
        CU_ASSERT_EQUAL(parse_http_date("120", &back), -EINVAL);
        CU_ASSERT_EQUAL(back, 7);
}

struct timer_log {
        char order[16];
        size_t n;
        unsigned fired_a, fired_b, fired_stop;
};

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct timer_log *log = userdata;
        const char *name = NULL;

        CU_ASSERT(sd_event_source_get_description(s, &name) >= 0);
        if (log->n < sizeof(log->order) - 1)
                log->order[log->n++] = name ? name[0] : '?';
        if (name && name[0] == 'a')
                log->fired_a++;
        else
                log->fired_b++;
        return 0;
}

static int on_stop_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct timer_log *log = userdata;

        log->fired_stop++;
        return 0;
}

/* Runs the loop until *counter reaches target. The bound on iterations and
 * the long per-iteration timeout only keep a broken timer from hanging the
 * suite; nothing here depends on how fast the machine is. */
static void run_until(sd_event *e, const unsigned *counter, unsigned target) {
        for (int i = 0; i < 100 && *counter < target; i++)
                CU_ASSERT_FATAL(sd_event_run(e, 30 * USEC_PER_SEC) >= 0);
        CU_ASSERT_EQUAL(*counter, target);
}

static void test_event_timers(void) {
        sd_event *e = NULL;
        sd_event_source *a = NULL, *b = NULL, *b_before, *stop = NULL, *defer = NULL, *none = NULL;
        struct timer_log log = {}, other = {};

        CU_ASSERT_EQUAL_FATAL(sd_event_new(&e), 0);

        /* The near timer fires first; the far one (an hour) does not fire
         * at all in this test unless re-armed. */
        CU_ASSERT_EQUAL_FATAL(event_reset_time_relative(e, &b, USEC_PER_HOUR, on_timer, &other, "b"), 0);
        CU_ASSERT_EQUAL_FATAL(event_reset_time_relative(e, &a, 5 * USEC_PER_MSEC, on_timer, &log, "a"), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        run_until(e, &log.fired_a, 1);
        CU_ASSERT_STRING_EQUAL(log.order, "a");
        CU_ASSERT_EQUAL(other.n, 0);

        /* Re-arming moves the existing source (and its userdata) rather
         * than adding another one. */
        b_before = b;
        CU_ASSERT_EQUAL_FATAL(event_reset_time_relative(e, &b, USEC_PER_MSEC, on_timer, &log, "ignored"), 0);
        CU_ASSERT_PTR_EQUAL(b, b_before);
        run_until(e, &log.fired_b, 1);
        CU_ASSERT_STRING_EQUAL(log.order, "ab");
        CU_ASSERT_EQUAL(other.n, 0);

        /* Many resets of one timer, also of one that already fired: it
         * fires once. Then a later timer runs, by which time a duplicate
         * source would have fired as well. */
        for (int i = 0; i < 100; i++)
                CU_ASSERT_EQUAL(event_reset_time_relative(e, &a, USEC_PER_MSEC, on_timer, &log, "a"), 0);
        run_until(e, &log.fired_a, 2);
        CU_ASSERT_EQUAL_FATAL(event_reset_time_relative(e, &stop, 50 * USEC_PER_MSEC, on_stop_timer, &log, "stop"), 0);
        run_until(e, &log.fired_stop, 1);
        CU_ASSERT_EQUAL(log.fired_a, 2);
        CU_ASSERT_STRING_EQUAL(log.order, "aba");

        /* USEC_INFINITY disables. */
        CU_ASSERT_EQUAL(event_reset_time_relative(e, &a, USEC_PER_MSEC, on_timer, &log, "a"), 0);
        CU_ASSERT_EQUAL(event_reset_time_relative(e, &a, USEC_INFINITY, on_timer, &log, "a"), 0);
        CU_ASSERT_EQUAL(event_reset_time_relative(e, &stop, 20 * USEC_PER_MSEC, on_stop_timer, &log, NULL), 0);
        run_until(e, &log.fired_stop, 2);
        CU_ASSERT_EQUAL(log.fired_a, 2);
        CU_ASSERT_EQUAL(log.fired_b, 1);

        /* No source for an infinite timer; no re-arming of a non-timer. */
        CU_ASSERT_EQUAL(event_reset_time_relative(e, &none, USEC_INFINITY, on_timer, &log, "x"), 0);
        CU_ASSERT_PTR_NULL(none);
        CU_ASSERT_EQUAL_FATAL(sd_event_add_defer(e, &defer, NULL, NULL), 0);
        CU_ASSERT(event_reset_time_relative(e, &defer, USEC_PER_MSEC, on_timer, &log, "x") < 0);
        CU_ASSERT_EQUAL(event_add_timer_relative(e, &none, USEC_INFINITY, on_timer, NULL), -EINVAL);
        CU_ASSERT_EQUAL(event_reset_time_relative(NULL, &a, 1, on_timer, NULL, NULL), -EINVAL);
        CU_ASSERT_PTR_NULL(none);

        sd_event_source_unref(a);
        sd_event_source_unref(b);
        sd_event_source_unref(stop);
        sd_event_source_unref(defer);
        sd_event_unref(e);
}

static CU_TestInfo tests[] = {
        { "now() on three clocks", test_now },
        { "parse_timespan", test_parse_timespan },
        { "format_timespan_exact", test_format_timespan_exact },
        { "timespan round trip", test_timespan_round_trip },
        { "RFC 3339 and HTTP dates", test_dates },
        { "sd-event timers fire and re-arm", test_event_timers },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("time-util", tests)
