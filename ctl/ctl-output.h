/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Human output of rethinkctl: time spans, rates and sizes in the style of
 * systemd's tools, state colours (only on a terminal), and a table whose
 * columns are as wide as their widest cell. Formatters write into a caller
 * buffer and return it, so they can be used inline in printf(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

#define FORMAT_TIMESPAN_MAX 64
#define FORMAT_RATE_MAX 32
#define FORMAT_BYTES_MAX 32
#define FORMAT_TIMESTAMP_MAX 64

/* "1h 2min", "3min 5s", "1.250s", "12ms", "850us", "0": the two largest
 * units, like systemd's "ago" texts. */
char *format_timespan(char *buf, size_t size, uint64_t usec);
/* "3min 5s ago" (or "in 3min 5s" for a time after now); "n/a" for 0. */
char *format_relative(char *buf, size_t size, uint64_t then_usec, uint64_t now_usec);
/* "Sat 2026-11-21 23:35:23 UTC" in local time; "n/a" for 0. */
char *format_timestamp(char *buf, size_t size, uint64_t realtime_usec);
/* A rate in bytes per second, shown in bits: "0 bit/s", "800 bit/s",
 * "1.5 kbit/s", "12.0 Mbit/s", "1.0 Gbit/s". */
char *format_rate(char *buf, size_t size, uint64_t bytes_per_sec);
/* "512 B", "1.5 KiB", "3.2 MiB", ... */
char *format_bytes(char *buf, size_t size, uint64_t bytes);
/* A per-mille value as a percentage: 15 -> "1.5%". */
char *format_per_mille(char *buf, size_t size, uint64_t per_mille);

/* Colours are used when stdout is a terminal, $TERM is not "dumb" and
 * $NO_COLOR is unset; tests and pipes get plain text. */
bool colors_enabled(void);
void colors_force(int enabled); /* < 0: back to detection */
/* The escape sequence for a QoS state ("online" green, "degraded" yellow,
 * "offline" red), or "" when colours are off or the state is unknown. */
const char *state_color(const char *state);
/* A colour for an on/off value: green when good is true, red otherwise. */
const char *good_color(bool good);
const char *color_reset(void);

/* A copy of s ("-" for NULL) in which control characters are blanks, so
 * text from the agent or the domain cannot drive the terminal. To be
 * freed; NULL without memory. */
char *sanitized(const char *s);

typedef struct table table;

table *table_new(size_t n_columns);
/* A table whose first row is headers[0..n_columns). NULL without memory. */
table *table_new_with_header(const char *const *headers, size_t n_columns);
table *table_free(table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(table *, table_free);
#define _cleanup_table_ _cleanup_(table_freep)

/* Adds the next cell, row by row; color (may be NULL) wraps it when shown.
 * The first row added is the header. */
int table_add_cell(table *t, const char *text, const char *color);
/* Prints with two spaces between columns and no trailing blanks; the last
 * column is not padded. */
int table_print(const table *t, FILE *f);
