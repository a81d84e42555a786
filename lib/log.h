/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Logging for daemons and tools.
 *
 * Target: the journal with structured fields when the process runs under
 * systemd (JOURNAL_STREAM names our stderr, or INVOCATION_ID is set), stderr
 * otherwise. RETHINK_LOG_TARGET=journal|console|json overrides; "json"
 * writes one JSON object per entry to stderr, with the same fields the
 * journal would get, so tests can check structured output where no journal
 * runs. RETHINK_LOG_LEVEL=debug|info|notice|warning|err sets the threshold.
 *
 * lib/ code logs at debug only; the daemons decide what is worth more. */

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

enum log_target {
        LOG_TARGET_AUTO,
        LOG_TARGET_CONSOLE,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_JSON,
};

void log_open(void);
void log_set_target(enum log_target target);
enum log_target log_get_target(void);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Parses "debug", "info", ... or a number 0-7; returns the level or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/* A test sink: when set, every entry that passes the level filter is handed
 * to it as NULL-terminated "KEY=value" strings instead of being written. */
typedef void (*log_sink_t)(int level, char **fields, void *userdata);
void log_set_sink(log_sink_t sink, void *userdata);

/* Returns -abs(error), so callers can write `return log_error_errno(r, ...)`. */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);

/* Structured entry: after the MESSAGE format, a NULL-terminated list of
 * fields made with LOG_FIELD()/LOG_MESSAGE_ID(); log_struct_internal takes
 * ownership of them. */
int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        char *message, ...) _sentinel_;
char *log_field_format(const char *key, const char *format, ...) _printf_(2, 3);

#define LOG_MESSAGE(...) log_field_format("MESSAGE", __VA_ARGS__)
#define LOG_MESSAGE_ID(id) log_field_format("MESSAGE_ID", "%s", (id))
#define LOG_FIELD(key, ...) log_field_format(key, __VA_ARGS__)

#define log_full_errno(level, error, ...)                                        \
        ({                                                                      \
                int _l_ = (level), _e_ = (error);                               \
                (log_get_max_level() >= _l_)                                    \
                        ? log_internal(_l_, _e_, __FILE__, __LINE__, __func__,  \
                                       __VA_ARGS__)                             \
                        : -abs(_e_);                                            \
        })
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

#define log_struct_errno(level, error, ...) \
        log_struct_internal(level, error, __FILE__, __LINE__, __func__, __VA_ARGS__, NULL)
#define log_struct(level, ...) log_struct_errno(level, 0, __VA_ARGS__)
