/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl-output.h"

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MINUTE (UINT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR (UINT64_C(60) * USEC_PER_MINUTE)
#define USEC_PER_DAY (UINT64_C(24) * USEC_PER_HOUR)

char *format_timespan(char *buf, size_t size, uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d", USEC_PER_DAY },
                { "h", USEC_PER_HOUR },
                { "min", USEC_PER_MINUTE },
                { "s", USEC_PER_SEC },
        };
        size_t n = 0;
        int shown = 0;

        if (usec == 0) {
                snprintf(buf, size, "0");
                return buf;
        }
        /* Below a minute a single unit with decimals reads better. */
        if (usec < USEC_PER_MSEC) {
                snprintf(buf, size, "%" PRIu64 "us", usec);
                return buf;
        }
        if (usec < USEC_PER_SEC) {
                if (usec % USEC_PER_MSEC == 0 || usec >= 10 * USEC_PER_MSEC)
                        snprintf(buf, size, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
                else
                        snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "ms", usec / USEC_PER_MSEC,
                                 usec % USEC_PER_MSEC / 100);
                return buf;
        }
        if (usec < USEC_PER_MINUTE) {
                if (usec % USEC_PER_SEC == 0)
                        snprintf(buf, size, "%" PRIu64 "s", usec / USEC_PER_SEC);
                else
                        snprintf(buf, size, "%" PRIu64 ".%03" PRIu64 "s", usec / USEC_PER_SEC,
                                 usec % USEC_PER_SEC / USEC_PER_MSEC);
                return buf;
        }

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(units) && shown < 2; i++) {
                uint64_t k = usec / units[i].usec;

                if (k == 0) {
                        /* Units are shown adjacent: "1h 5s" would hide
                         * the minutes in between. */
                        if (shown > 0)
                                break;
                        continue;
                }
                usec -= k * units[i].usec;
                if (n < size)
                        n += (size_t) snprintf(buf + n, size - n, "%s%" PRIu64 "%s", shown ? " " : "", k,
                                               units[i].suffix);
                shown++;
        }
        return buf;
}

char *format_relative(char *buf, size_t size, uint64_t then_usec, uint64_t now_usec) {
        char t[FORMAT_TIMESPAN_MAX];

        if (then_usec == 0)
                snprintf(buf, size, "n/a");
        else if (then_usec > now_usec)
                snprintf(buf, size, "in %s", format_timespan(t, sizeof(t), then_usec - now_usec));
        else if (now_usec - then_usec < USEC_PER_SEC)
                snprintf(buf, size, "just now");
        else
                /* Seconds are enough precision for "how long ago". */
                snprintf(buf, size, "%s ago",
                         format_timespan(t, sizeof(t), (now_usec - then_usec) / USEC_PER_SEC * USEC_PER_SEC));
        return buf;
}

char *format_timestamp(char *buf, size_t size, uint64_t realtime_usec) {
        time_t sec = (time_t) (realtime_usec / USEC_PER_SEC);
        struct tm tm;

        if (realtime_usec == 0 || !localtime_r(&sec, &tm) ||
            strftime(buf, size, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "n/a");
        return buf;
}

/* value/div with one decimal, rounded. */
static void one_decimal(char *buf, size_t size, uint64_t value, uint64_t div, const char *unit) {
        uint64_t tenths = (value * 10 + div / 2) / div;
        snprintf(buf, size, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10, tenths % 10, unit);
}

char *format_rate(char *buf, size_t size, uint64_t bytes_per_sec) {
        static const char *const units[] = { "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s" };
        uint64_t bits, div = 1000;

        if (bytes_per_sec > UINT64_MAX / 80) {
                snprintf(buf, size, "huge");
                return buf;
        }
        bits = bytes_per_sec * 8;
        if (bits < 1000) {
                snprintf(buf, size, "%" PRIu64 " bit/s", bits);
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++, div *= 1000)
                /* Move up when rounding to one decimal would show 1000.0. */
                if (i == ELEMENTSOF(units) - 1 || (bits * 10 + div / 2) / div < 10000) {
                        one_decimal(buf, size, bits, div, units[i]);
                        break;
                }
        return buf;
}

char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
        uint64_t div = 1024;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 " B", bytes);
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++, div *= 1024)
                if (i == ELEMENTSOF(units) - 1 || bytes / div < 1024) {
                        /* Avoid overflow in one_decimal() for the largest values. */
                        if (bytes > UINT64_MAX / 10)
                                snprintf(buf, size, "%" PRIu64 " %s", bytes / div, units[i]);
                        else
                                one_decimal(buf, size, bytes, div, units[i]);
                        break;
                }
        return buf;
}

char *format_per_mille(char *buf, size_t size, uint64_t per_mille) {
        snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "%%", per_mille / 10, per_mille % 10);
        return buf;
}

static int colors_forced = -1;

void colors_force(int enabled) {
        colors_forced = enabled < 0 ? -1 : !!enabled;
}

bool colors_enabled(void) {
        static int cached = -1;
        const char *term;

        if (colors_forced >= 0)
                return colors_forced;
        if (cached < 0) {
                term = getenv("TERM");
                cached = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && streq(term, "dumb"));
        }
        return cached;
}

#define ANSI_GREEN "\x1B[0;1;32m"
#define ANSI_YELLOW "\x1B[0;1;33m"
#define ANSI_RED "\x1B[0;1;31m"
#define ANSI_NORMAL "\x1B[0m"

const char *state_color(const char *state) {
        if (!colors_enabled() || !state)
                return "";
        if (streq(state, "online"))
                return ANSI_GREEN;
        if (streq(state, "degraded"))
                return ANSI_YELLOW;
        if (streq(state, "offline"))
                return ANSI_RED;
        return "";
}

const char *good_color(bool good) {
        if (!colors_enabled())
                return "";
        return good ? ANSI_GREEN : ANSI_RED;
}

const char *color_reset(void) {
        return colors_enabled() ? ANSI_NORMAL : "";
}

typedef struct table_cell {
        char *text;
        const char *color;
} table_cell;

struct table {
        size_t n_columns;
        table_cell *cells;
        size_t n_cells;
};

table *table_new(size_t n_columns) {
        table *t;

        if (n_columns == 0)
                return NULL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        return t;
}

table *table_free(table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i].text);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add_cell(table *t, const char *text, const char *color) {
        table_cell *p;
        char *s;

        s = strdup(text ?: "");
        if (!s)
                return -ENOMEM;
        /* A cell must stay on its line, and text from the agent (interface
         * names may hold any byte but '/', ':' and blanks) must not drive
         * the terminal. */
        for (char *q = s; *q; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        *q = ' ';
        p = reallocarray(t->cells, t->n_cells + 1, sizeof(*p));
        if (!p)
                return free(s), -ENOMEM;
        t->cells = p;
        t->cells[t->n_cells++] = (table_cell) { .text = s, .color = color && *color ? color : NULL };
        return 0;
}

/* Display width of UTF-8 text: code points, which is right for the names,
 * numbers and addresses shown here. */
static size_t text_width(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        n++;
        return n;
}

int table_print(const table *t, FILE *f) {
        _cleanup_free_ size_t *width = calloc(t->n_columns, sizeof(size_t));

        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], text_width(t->cells[i].text));

        for (size_t i = 0; i < t->n_cells; i++) {
                size_t col = i % t->n_columns;
                bool last = col == t->n_columns - 1 || i == t->n_cells - 1;
                const table_cell *c = t->cells + i;

                fprintf(f, "%s%s%s", c->color ?: "", c->text, c->color ? color_reset() : "");
                /* Empty cells at the end of a row would only leave blanks. */
                for (size_t k = i + 1; !last && k % t->n_columns != 0 && k < t->n_cells; k++) {
                        if (t->cells[k].text[0] != '\0')
                                break;
                        if ((k + 1) % t->n_columns == 0 || k + 1 == t->n_cells) {
                                i = k;
                                last = true;
                        }
                }
                if (last)
                        fputc('\n', f);
                else
                        fprintf(f, "%*s", (int) (width[col] - text_width(c->text) + 2), "");
        }
        return ferror(f) ? -EIO : 0;
}

char *sanitized(const char *s) {
        char *t = strdup(s ?: "-");

        if (!t)
                return NULL;
        for (char *q = t; *q; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        *q = ' ';
        return t;
}

table *table_new_with_header(const char *const *headers, size_t n_columns) {
        table *t = table_new(n_columns);

        for (size_t i = 0; t && i < n_columns; i++)
                if (table_add_cell(t, headers[i], NULL) < 0)
                        t = table_free(t);
        return t;
}
