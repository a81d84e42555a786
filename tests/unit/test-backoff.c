/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "backoff.h"
#include "macro.h"
#include "tests.h"

static uint64_t random_min(void *userdata) {
        return 0;
}

static uint64_t random_max(void *userdata) {
        return UINT64_MAX;
}

/* xorshift64*: deterministic, well spread. */
static uint64_t random_seeded(void *userdata) {
        uint64_t *s = userdata;

        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * UINT64_C(2685821657736338717);
}

static const backoff_config standard = {
        .initial = USEC_PER_SEC,
        .max = 60 * USEC_PER_SEC,
};

static void test_growth_bounds(void) {
        _cleanup_backoff_ backoff *lo = NULL, *hi = NULL;
        /* E = 1, 2, 4, ..., 32, then capped at 60 seconds. */
        static const usec_t e[] = { 1, 2, 4, 8, 16, 32, 60, 60, 60 };
        usec_t d;

        CU_ASSERT_EQUAL_FATAL(backoff_new(&standard, &lo), 0);
        CU_ASSERT_EQUAL_FATAL(backoff_new(&standard, &hi), 0);
        backoff_set_random(lo, random_min, NULL);
        backoff_set_random(hi, random_max, NULL);

        for (size_t i = 0; i < ELEMENTSOF(e); i++) {
                /* The smallest draw is E/2, the largest E. */
                CU_ASSERT_EQUAL_FATAL(backoff_next_delay(lo, &d), 0);
                CU_ASSERT_EQUAL(d, e[i] * USEC_PER_SEC / 2);
                CU_ASSERT_EQUAL_FATAL(backoff_next_delay(hi, &d), 0);
                CU_ASSERT_EQUAL(d, e[i] * USEC_PER_SEC);
                CU_ASSERT_EQUAL(backoff_attempts(lo), i + 1);
        }
        CU_ASSERT_FALSE(backoff_exhausted(lo));
}

static void test_random_draws_within_bounds(void) {
        _cleanup_backoff_ backoff *b = NULL, *s = NULL;
        uint64_t seed = 0x0123456789abcdefULL;
        usec_t d, sum_first = 0;
        unsigned low = 0;
        unsigned distinct = 0;
        usec_t last = 0;

        CU_ASSERT_EQUAL_FATAL(backoff_new(&standard, &b), 0);
        CU_ASSERT_EQUAL_FATAL(backoff_new(&standard, &s), 0);
        backoff_set_random(s, random_seeded, &seed);

        for (int i = 0; i < 1000; i++) {
                CU_ASSERT_EQUAL_FATAL(backoff_next_delay(b, &d), 0);
                CU_ASSERT(d >= USEC_PER_SEC / 2);
                CU_ASSERT(d <= 60 * USEC_PER_SEC);
                CU_ASSERT_EQUAL_FATAL(backoff_next_delay(s, &d), 0);
                CU_ASSERT(d >= USEC_PER_SEC / 2);
                CU_ASSERT(d <= 60 * USEC_PER_SEC);
                /* Once capped, every delay is within [30s, 60s]. */
                if (i >= 6)
                        CU_ASSERT(d >= 30 * USEC_PER_SEC);
                if (d != last)
                        distinct++;
                last = d;
        }
        /* The jitter is real: draws differ. */
        CU_ASSERT(distinct > 900);

        /* The first delay of a fleet is spread over [0.5s, 1s]. */
        for (int i = 0; i < 1000; i++) {
                backoff_reset(s);
                CU_ASSERT_EQUAL_FATAL(backoff_next_delay(s, &d), 0);
                CU_ASSERT(d >= USEC_PER_SEC / 2 && d <= USEC_PER_SEC);
                sum_first += d;
                if (d < USEC_PER_SEC * 6 / 10)
                        low++;
        }
        /* Mean near 0.75 s, and some draws in the lowest fifth. */
        CU_ASSERT(sum_first / 1000 > USEC_PER_SEC * 7 / 10);
        CU_ASSERT(sum_first / 1000 < USEC_PER_SEC * 8 / 10);
        CU_ASSERT(low > 100);
}

static void test_never_zero_and_floor(void) {
        _cleanup_backoff_ backoff *tiny = NULL, *floored = NULL;
        backoff_config c = { .initial = 1, .max = 3 };
        usec_t d;

        CU_ASSERT_EQUAL_FATAL(backoff_new(&c, &tiny), 0);
        backoff_set_random(tiny, random_min, NULL);
        for (int i = 0; i < 100; i++) {
                CU_ASSERT_EQUAL_FATAL(backoff_next_delay(tiny, &d), 0);
                CU_ASSERT(d >= 1);
                CU_ASSERT(d <= 3);
        }

        c = (backoff_config) { .initial = 100 * USEC_PER_MSEC, .max = 10 * USEC_PER_SEC,
                               .floor = 2 * USEC_PER_SEC, .multiplier = 1.5 };
        CU_ASSERT_EQUAL_FATAL(backoff_new(&c, &floored), 0);
        backoff_set_random(floored, random_min, NULL);
        for (int i = 0; i < 100; i++) {
                CU_ASSERT_EQUAL_FATAL(backoff_next_delay(floored, &d), 0);
                CU_ASSERT(d >= 2 * USEC_PER_SEC);
                CU_ASSERT(d <= 10 * USEC_PER_SEC);
        }
}

static void test_reset(void) {
        _cleanup_backoff_ backoff *b = NULL;
        usec_t d;

        CU_ASSERT_EQUAL_FATAL(backoff_new(&standard, &b), 0);
        backoff_set_random(b, random_max, NULL);
        for (int i = 0; i < 10; i++)
                CU_ASSERT_EQUAL(backoff_next_delay(b, &d), 0);
        CU_ASSERT_EQUAL(d, 60 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(backoff_attempts(b), 10);

        backoff_set_retry_after(b, 30 * USEC_PER_SEC);
        backoff_reset(b);
        CU_ASSERT_EQUAL(backoff_attempts(b), 0);
        /* Back to the first delay; the pending Retry-After is gone too. */
        CU_ASSERT_EQUAL_FATAL(backoff_next_delay(b, &d), 0);
        CU_ASSERT_EQUAL(d, USEC_PER_SEC);
}

static void test_retry_after(void) {
        _cleanup_backoff_ backoff *b = NULL, *capped = NULL;
        backoff_config c = standard;
        uint64_t seed = 42;
        usec_t d;

        CU_ASSERT_EQUAL_FATAL(backoff_new(&standard, &b), 0);
        backoff_set_random(b, random_seeded, &seed);

        /* Longer than the backoff: honoured, with at most 1/8 on top. */
        backoff_set_retry_after(b, 40 * USEC_PER_SEC);
        CU_ASSERT_EQUAL_FATAL(backoff_next_delay(b, &d), 0);
        CU_ASSERT(d >= 40 * USEC_PER_SEC);
        CU_ASSERT(d <= 45 * USEC_PER_SEC);
        /* Applies once. */
        CU_ASSERT_EQUAL_FATAL(backoff_next_delay(b, &d), 0);
        CU_ASSERT(d <= 2 * USEC_PER_SEC);

        /* Shorter than the backoff: the backoff wins. */
        backoff_set_random(b, random_min, NULL);
        backoff_set_retry_after(b, 1);
        CU_ASSERT_EQUAL_FATAL(backoff_next_delay(b, &d), 0);
        CU_ASSERT_EQUAL(d, 2 * USEC_PER_SEC);

        /* Beyond the exponential cap but within the hard cap: honoured. */
        c.retry_after_max = 10 * 60 * USEC_PER_SEC;
        CU_ASSERT_EQUAL_FATAL(backoff_new(&c, &capped), 0);
        backoff_set_random(capped, random_max, NULL);
        backoff_set_retry_after(capped, 5 * 60 * USEC_PER_SEC);
        CU_ASSERT_EQUAL_FATAL(backoff_next_delay(capped, &d), 0);
        CU_ASSERT(d >= 5 * 60 * USEC_PER_SEC);
        CU_ASSERT(d <= 10 * 60 * USEC_PER_SEC);

        /* A year is cut to the hard cap. */
        backoff_set_retry_after(capped, 365 * USEC_PER_DAY);
        CU_ASSERT_EQUAL_FATAL(backoff_next_delay(capped, &d), 0);
        CU_ASSERT_EQUAL(d, 10 * 60 * USEC_PER_SEC);

        /* 0 clears a pending value. */
        backoff_set_random(capped, random_min, NULL);
        backoff_set_retry_after(capped, 5 * 60 * USEC_PER_SEC);
        backoff_set_retry_after(capped, 0);
        CU_ASSERT_EQUAL_FATAL(backoff_next_delay(capped, &d), 0);
        CU_ASSERT(d < 5 * 60 * USEC_PER_SEC);
}

static void test_max_attempts(void) {
        _cleanup_backoff_ backoff *b = NULL;
        backoff_config c = standard;
        usec_t d = 0;

        c.max_attempts = 3;
        CU_ASSERT_EQUAL_FATAL(backoff_new(&c, &b), 0);
        for (int i = 0; i < 3; i++) {
                CU_ASSERT_FALSE(backoff_exhausted(b));
                CU_ASSERT_EQUAL(backoff_next_delay(b, &d), 0);
        }
        CU_ASSERT(backoff_exhausted(b));
        d = 12345;
        CU_ASSERT_EQUAL(backoff_next_delay(b, &d), -ETIMEDOUT);
        CU_ASSERT_EQUAL(d, 12345);
        CU_ASSERT_EQUAL(backoff_attempts(b), 3);

        backoff_reset(b);
        CU_ASSERT_FALSE(backoff_exhausted(b));
        CU_ASSERT_EQUAL(backoff_next_delay(b, &d), 0);
}

static void test_bad_config(void) {
        backoff *b = (backoff *) 0x1;
        backoff_config c;

        c = (backoff_config) { .initial = 0, .max = USEC_PER_SEC };
        CU_ASSERT_EQUAL(backoff_new(&c, &b), -EINVAL);
        c = (backoff_config) { .initial = 2 * USEC_PER_SEC, .max = USEC_PER_SEC };
        CU_ASSERT_EQUAL(backoff_new(&c, &b), -EINVAL);
        c = (backoff_config) { .initial = 1, .max = USEC_INFINITY };
        CU_ASSERT_EQUAL(backoff_new(&c, &b), -EINVAL);
        c = (backoff_config) { .initial = 1, .max = 10, .multiplier = 0.5 };
        CU_ASSERT_EQUAL(backoff_new(&c, &b), -EINVAL);
        c = (backoff_config) { .initial = 1, .max = 10, .multiplier = 1.0 };
        CU_ASSERT_EQUAL(backoff_new(&c, &b), -EINVAL);
        c = (backoff_config) { .initial = 1, .max = 10, .floor = 11 };
        CU_ASSERT_EQUAL(backoff_new(&c, &b), -EINVAL);
        CU_ASSERT_EQUAL(backoff_new(NULL, &b), -EINVAL);
        CU_ASSERT_PTR_EQUAL(b, (backoff *) 0x1);
        CU_ASSERT_PTR_NULL(backoff_free(NULL));
}

static CU_TestInfo tests[] = {
        { "delays grow and are capped", test_growth_bounds },
        { "1000 random draws within bounds", test_random_draws_within_bounds },
        { "never zero, never below floor", test_never_zero_and_floor },
        { "reset", test_reset },
        { "Retry-After honoured and capped", test_retry_after },
        { "max attempts", test_max_attempts },
        { "bad configuration", test_bad_config },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("backoff", tests)
