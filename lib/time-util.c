/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "time-util.h"

/* Timers fire at most this late. sd-event's default (250ms) coalesces
 * wake-ups for power, but request timeouts of a few hundred milliseconds
 * would then be off by their own size. */
#define EVENT_TIMER_ACCURACY_USEC (1 * USEC_PER_MSEC)

usec_t now(clockid_t clock) {
        struct timespec ts;

        /* Fails only for a clock the kernel does not know: a caller's bug. */
        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / NSEC_PER_USEC;
}

static const struct {
        const char *suffix;
        usec_t usec;
} units[] = {
        { "us", 1 },
        { "usec", 1 },
        { "ms", USEC_PER_MSEC },
        { "msec", USEC_PER_MSEC },
        { "s", USEC_PER_SEC },
        { "sec", USEC_PER_SEC },
        { "second", USEC_PER_SEC },
        { "seconds", USEC_PER_SEC },
        { "m", USEC_PER_MINUTE },
        { "min", USEC_PER_MINUTE },
        { "minute", USEC_PER_MINUTE },
        { "minutes", USEC_PER_MINUTE },
        { "h", USEC_PER_HOUR },
        { "hr", USEC_PER_HOUR },
        { "hour", USEC_PER_HOUR },
        { "hours", USEC_PER_HOUR },
        { "d", USEC_PER_DAY },
        { "day", USEC_PER_DAY },
        { "days", USEC_PER_DAY },
        { "w", USEC_PER_WEEK },
        { "week", USEC_PER_WEEK },
        { "weeks", USEC_PER_WEEK },
};

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int lookup_unit(const char *p, size_t n, usec_t *ret) {
        if (n == 0) {
                /* A bare number counts as seconds. */
                *ret = USEC_PER_SEC;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (strlen(units[i].suffix) == n && strncmp(units[i].suffix, p, n) == 0) {
                        *ret = units[i].usec;
                        return 0;
                }
        return -EINVAL;
}

int parse_timespan(const char *s, usec_t *ret) {
        const char *p;
        usec_t total = 0;
        bool any = false;

        if (!s || !ret)
                return -EINVAL;

        p = s;
        while (is_space(*p))
                p++;
        if (strncmp(p, "infinity", 8) == 0) {
                p += 8;
                while (is_space(*p))
                        p++;
                if (*p)
                        return -EINVAL;
                *ret = USEC_INFINITY;
                return 0;
        }

        for (;;) {
                usec_t whole = 0, unit, v, m;
                const char *frac = NULL, *u;
                size_t n_frac = 0;
                int r;

                while (is_space(*p))
                        p++;
                if (!*p)
                        break;
                /* No sign, no leading dot: "-1s" and ".5s" are rejected. */
                if (!is_digit(*p))
                        return -EINVAL;

                for (; is_digit(*p); p++) {
                        if (__builtin_mul_overflow(whole, 10, &whole) ||
                            __builtin_add_overflow(whole, (usec_t) (*p - '0'), &whole))
                                return -ERANGE;
                }
                if (*p == '.') {
                        frac = ++p;
                        while (is_digit(*p))
                                p++;
                        n_frac = (size_t) (p - frac);
                        if (n_frac == 0)
                                return -EINVAL;
                }

                while (is_space(*p))
                        p++;
                u = p;
                while (is_alpha(*p))
                        p++;
                r = lookup_unit(u, (size_t) (p - u), &unit);
                if (r < 0)
                        return r;

                if (__builtin_mul_overflow(whole, unit, &v))
                        return -ERANGE;
                /* Digits below the unit's resolution are dropped. */
                m = unit;
                for (size_t i = 0; i < n_frac && m > 1; i++) {
                        m /= 10;
                        if (__builtin_add_overflow(v, (usec_t) (frac[i] - '0') * m, &v))
                                return -ERANGE;
                }
                if (__builtin_add_overflow(total, v, &total))
                        return -ERANGE;
                any = true;
        }

        if (!any)
                return -EINVAL;
        /* The largest value means "infinity": only the word may say so. */
        if (total == USEC_INFINITY)
                return -ERANGE;
        *ret = total;
        return 0;
}

char *format_timespan_exact(char *buf, size_t l, usec_t t) {
        static const struct {
                const char *suffix;
                usec_t usec;
        } table[] = {
                { "d", USEC_PER_DAY }, { "h", USEC_PER_HOUR }, { "min", USEC_PER_MINUTE },
                { "s", USEC_PER_SEC }, { "ms", USEC_PER_MSEC }, { "us", 1 },
        };
        size_t k = 0;

        if (!buf || l == 0)
                return NULL;
        if (t == USEC_INFINITY)
                return snprintf(buf, l, "infinity") < (int) l ? buf : NULL;
        if (t == 0)
                return snprintf(buf, l, "0") < (int) l ? buf : NULL;

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(table) && t > 0; i++) {
                usec_t n = t / table[i].usec;
                int w;

                if (n == 0)
                        continue;
                t -= n * table[i].usec;
                w = snprintf(buf + k, l - k, "%s%llu%s", k > 0 ? " " : "", (unsigned long long) n,
                             table[i].suffix);
                if (w < 0 || (size_t) w >= l - k)
                        return NULL;
                k += (size_t) w;
        }
        return buf;
}

static bool realtime_to_tm(usec_t t, struct tm *tm) {
        time_t sec;

        if (t == USEC_INFINITY || t / USEC_PER_SEC > (usec_t) INT64_MAX)
                return false;
        sec = (time_t) (t / USEC_PER_SEC);
        if (!gmtime_r(&sec, tm))
                return false;
        /* Both formats have four-digit years. */
        return tm->tm_year + 1900 <= 9999;
}

static char *format_rfc3339_internal(char *buf, size_t l, usec_t t, bool with_usec) {
        struct tm tm;
        int w;

        if (!buf || !realtime_to_tm(t, &tm))
                return NULL;
        if (with_usec)
                w = snprintf(buf, l, "%04d-%02d-%02dT%02d:%02d:%02d.%06lluZ", tm.tm_year + 1900,
                             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                             (unsigned long long) (t % USEC_PER_SEC));
        else
                w = snprintf(buf, l, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (w < 0 || (size_t) w >= l)
                return NULL;
        return buf;
}

char *format_rfc3339(char *buf, size_t l, usec_t realtime) {
        return format_rfc3339_internal(buf, l, realtime, false);
}

char *format_rfc3339_usec(char *buf, size_t l, usec_t realtime) {
        return format_rfc3339_internal(buf, l, realtime, true);
}

/* Fixed English names: HTTP dates must not follow the locale. */
static const char weekdays[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

char *format_http_date(char *buf, size_t l, usec_t realtime) {
        struct tm tm;
        int w;

        if (!buf || !realtime_to_tm(realtime, &tm))
                return NULL;
        w = snprintf(buf, l, "%s, %02d %s %04d %02d:%02d:%02d GMT", weekdays[tm.tm_wday], tm.tm_mday,
                     months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (w < 0 || (size_t) w >= l)
                return NULL;
        return buf;
}

static int parse_digits(const char *p, size_t n, int *ret) {
        int v = 0;

        for (size_t i = 0; i < n; i++) {
                if (!is_digit(p[i]))
                        return -EINVAL;
                v = v * 10 + (p[i] - '0');
        }
        *ret = v;
        return 0;
}

int parse_http_date(const char *s, usec_t *ret) {
        /* "Sun, 06 Nov 1994 08:49:37 GMT" */
        struct tm tm = {}, check;
        int day, year, hour, min, sec, mon = -1;
        bool wday_ok = false;
        time_t t;

        if (!s || !ret || strlen(s) != 29)
                return -EINVAL;
        if (memcmp(s + 3, ", ", 2) != 0 || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4) != 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(weekdays); i++)
                if (memcmp(s, weekdays[i], 3) == 0)
                        wday_ok = true;
        for (size_t i = 0; i < ELEMENTSOF(months); i++)
                if (memcmp(s + 8, months[i], 3) == 0)
                        mon = (int) i;
        if (!wday_ok || mon < 0)
                return -EINVAL;
        if (parse_digits(s + 5, 2, &day) < 0 || parse_digits(s + 12, 4, &year) < 0 ||
            parse_digits(s + 17, 2, &hour) < 0 || parse_digits(s + 20, 2, &min) < 0 ||
            parse_digits(s + 23, 2, &sec) < 0)
                return -EINVAL;
        /* 60 is a leap second, which time_t cannot represent either. */
        if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
                return -EINVAL;

        tm = (struct tm) { .tm_year = year - 1900, .tm_mon = mon, .tm_mday = day,
                           .tm_hour = hour, .tm_min = min, .tm_sec = MIN(sec, 59) };
        t = timegm(&tm);
        if (t == (time_t) -1)
                return -EINVAL;
        /* timegm() normalises "31 Feb" into March: reject instead. */
        if (!gmtime_r(&t, &check) || check.tm_mday != day || check.tm_mon != mon)
                return -EINVAL;
        if (t < 0)
                return -ERANGE;

        *ret = (usec_t) t * USEC_PER_SEC;
        return 0;
}

int event_add_timer_relative(sd_event *e, sd_event_source **ret, usec_t usec,
                             sd_event_time_handler_t callback, void *userdata) {
        if (!e || !ret || !callback || usec == USEC_INFINITY)
                return -EINVAL;
        return sd_event_add_time_relative(e, ret, CLOCK_MONOTONIC, usec, EVENT_TIMER_ACCURACY_USEC,
                                          callback, userdata);
}

int event_reset_time_relative(sd_event *e, sd_event_source **s, usec_t usec,
                              sd_event_time_handler_t callback, void *userdata,
                              const char *description) {
        sd_event_source *source = NULL;
        clockid_t clock;
        int r;

        if (!e || !s || !callback)
                return -EINVAL;

        if (*s) {
                if (sd_event_source_get_event(*s) != e)
                        return -EINVAL;
                r = sd_event_source_get_time_clock(*s, &clock);
                if (r < 0)
                        return r;
                if (clock != CLOCK_MONOTONIC)
                        return -EINVAL;

                if (usec == USEC_INFINITY)
                        return sd_event_source_set_enabled(*s, SD_EVENT_OFF);

                r = sd_event_source_set_time_relative(*s, usec);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_userdata(*s, userdata);
                /* Also revives a one-shot source that fired and went off. */
                return sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
        }

        if (usec == USEC_INFINITY)
                return 0;

        r = event_add_timer_relative(e, &source, usec, callback, userdata);
        if (r < 0)
                return r;
        if (description)
                (void) sd_event_source_set_description(source, description);
        *s = source;
        return 0;
}
