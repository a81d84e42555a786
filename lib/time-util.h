/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Time in microseconds, as sd-event counts it: clocks, time spans in
 * configuration ("1min 30s"), RFC 3339 and HTTP dates, and re-armable
 * sd-event timers. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <systemd/sd-event.h>

typedef uint64_t usec_t;

#define USEC_INFINITY ((usec_t) UINT64_MAX)
#define NSEC_PER_USEC ((uint64_t) 1000ULL)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_PER_SEC ((usec_t) 1000000ULL)
#define USEC_PER_MINUTE (60ULL * USEC_PER_SEC)
#define USEC_PER_HOUR (60ULL * USEC_PER_MINUTE)
#define USEC_PER_DAY (24ULL * USEC_PER_HOUR)
#define USEC_PER_WEEK (7ULL * USEC_PER_DAY)

/* CLOCK_MONOTONIC for timeouts, CLOCK_BOOTTIME for lifetimes that keep
 * running across suspend, CLOCK_REALTIME for wall-clock stamps. */
usec_t now(clockid_t clock);

/* Parses "500ms", "2s", "1min 30s", "1h30min", "1.5s", "1d", "3w" or a plain
 * number of seconds ("90"), and "infinity". Units: us/usec, ms/msec,
 * s/sec/second(s), m/min/minute(s), h/hr/hour(s), d/day(s), w/week(s).
 * Negative values and garbage give -EINVAL, values beyond the range of
 * usec_t -ERANGE. */
int parse_timespan(const char *s, usec_t *ret);

/* Exact, largest units first: "1min 30s", "250ms", "1d 2h 3us", "0",
 * "infinity". parse_timespan() reads the result back to the same value, so
 * this is the form for configuration and logs; a rounded form for people
 * ("about 2h") is the business of the program that shows it. */
#define FORMAT_TIMESPAN_MAX 64
char *format_timespan_exact(char *buf, size_t l, usec_t t);

/* UTC, "2026-11-21T08:49:37Z"; the _usec form adds ".123456". NULL if the
 * buffer is too small or the time is not representable. */
#define FORMAT_RFC3339_MAX 32
char *format_rfc3339(char *buf, size_t l, usec_t realtime);
char *format_rfc3339_usec(char *buf, size_t l, usec_t realtime);

/* IMF-fixdate of RFC 9110, "Sun, 06 Nov 1994 08:49:37 GMT", independent of
 * the locale. The parser takes that form only (the obsolete RFC 850 and
 * asctime forms are not accepted). */
#define FORMAT_HTTP_DATE_MAX 32
char *format_http_date(char *buf, size_t l, usec_t realtime);
int parse_http_date(const char *s, usec_t *ret);

/* Arms *s to fire once, usec from now on CLOCK_MONOTONIC. An existing
 * source is re-armed in place (with the new userdata), so a timer that is
 * reset again and again stays one source; a new one is created otherwise,
 * with description (may be NULL) for debugging. The callback of an existing
 * source is not changed: use one *s per callback. USEC_INFINITY disables an
 * existing source and creates none. *s is owned by the caller (unref it). */
int event_reset_time_relative(sd_event *e, sd_event_source **s, usec_t usec,
                              sd_event_time_handler_t callback, void *userdata,
                              const char *description);
/* A new one-shot timer usec from now on CLOCK_MONOTONIC. */
int event_add_timer_relative(sd_event *e, sd_event_source **ret, usec_t usec,
                             sd_event_time_handler_t callback, void *userdata);
