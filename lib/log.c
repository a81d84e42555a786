/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_MAX_FIELDS 64

static enum log_target log_target = LOG_TARGET_AUTO;
static int log_max_level = LOG_INFO;
static log_sink_t log_sink;
static void *log_sink_userdata;

/* Out-of-memory marker for log_field_format(): never freed, never sent. */
static char log_field_oom[] = "";

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
        [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s || !*s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t) level >= ELEMENTSOF(level_names))
                return NULL;
        return level_names[level];
}

/* systemd sets JOURNAL_STREAM to "dev:ino" of the stream it connected our
 * stderr to; if stderr is still that stream, structured logging is worth it. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
                return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;

        return getenv("INVOCATION_ID") != NULL;
}

void log_open(void) {
        const char *e;
        int l;

        e = getenv("RETHINK_LOG_LEVEL");
        if (e && (l = log_level_from_string(e)) >= 0)
                log_max_level = l;

        e = getenv("RETHINK_LOG_TARGET");
        if (e && streq(e, "journal"))
                log_target = LOG_TARGET_JOURNAL;
        else if (e && streq(e, "console"))
                log_target = LOG_TARGET_CONSOLE;
        else if (e && streq(e, "json"))
                log_target = LOG_TARGET_JSON;
        else
                log_target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE;
}

void log_set_target(enum log_target target) {
        log_target = target;
}

enum log_target log_get_target(void) {
        if (log_target == LOG_TARGET_AUTO)
                log_open();
        return log_target;
}

void log_set_max_level(int level) {
        log_max_level = CLAMP(level, LOG_EMERG, LOG_DEBUG);
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_set_sink(log_sink_t sink, void *userdata) {
        log_sink = sink;
        log_sink_userdata = userdata;
}

char *log_field_format(const char *key, const char *format, ...) {
        _cleanup_free_ char *value = NULL;
        char *field;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&value, format, ap);
        va_end(ap);
        if (r < 0)
                return log_field_oom;

        if (asprintf(&field, "%s=%s", key, value) < 0)
                return log_field_oom;
        return field;
}

static const char *field_value(const char *field, const char *key) {
        size_t n = strlen(key);
        if (strncmp(field, key, n) == 0 && field[n] == '=')
                return field + n + 1;
        return NULL;
}

static void write_console(int level, char **fields, size_t n) {
        const char *message = NULL;

        for (size_t i = 0; i < n && !message; i++)
                message = field_value(fields[i], "MESSAGE");

        /* The "<N>" prefix lets a journal that catches plain stderr still see
         * the priority; on a terminal it is cheap and greppable. */
        fprintf(stderr, "<%d>%s: %s\n", level, program_invocation_short_name, strna(message));
}

static void write_json(int level, char **fields, size_t n) {
        json_t *o = json_object();
        char *s;

        if (!o)
                return;
        (void) json_object_set_new(o, "PRIORITY", json_sprintf("%d", level));
        (void) json_object_set_new(o, "SYSLOG_IDENTIFIER", json_string(program_invocation_short_name));
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(fields[i], '=');
                _cleanup_free_ char *key = NULL;

                if (!eq)
                        continue;
                key = strndup(fields[i], eq - fields[i]);
                if (key)
                        (void) json_object_set_new(o, key, json_string(eq + 1));
        }
        s = json_dumps(o, JSON_COMPACT);
        if (s) {
                fprintf(stderr, "%s\n", s);
                free(s);
        }
        json_decref(o);
}

static void write_journal(int level, char **fields, size_t n) {
        struct iovec iov[LOG_MAX_FIELDS + 2];
        char priority[sizeof("PRIORITY=") + 2];
        _cleanup_free_ char *ident = NULL;
        size_t k = 0;

        snprintf(priority, sizeof(priority), "PRIORITY=%d", level);
        iov[k++] = (struct iovec) { .iov_base = priority, .iov_len = strlen(priority) };
        if (asprintf(&ident, "SYSLOG_IDENTIFIER=%s", program_invocation_short_name) >= 0)
                iov[k++] = (struct iovec) { .iov_base = ident, .iov_len = strlen(ident) };
        for (size_t i = 0; i < n && k < ELEMENTSOF(iov); i++)
                iov[k++] = (struct iovec) { .iov_base = fields[i], .iov_len = strlen(fields[i]) };

        if (sd_journal_sendv(iov, (int) k) < 0)
                write_console(level, fields, n);
}

static void dispatch(int level, char **fields, size_t n) {
        fields[n] = NULL;

        if (log_sink) {
                log_sink(level, fields, log_sink_userdata);
                return;
        }

        switch (log_get_target()) {
        case LOG_TARGET_JOURNAL:
                write_journal(level, fields, n);
                break;
        case LOG_TARGET_JSON:
                write_json(level, fields, n);
                break;
        default:
                write_console(level, fields, n);
        }
}

/* Appends the fields every entry carries: code location and errno. */
static size_t add_common_fields(char **fields, size_t n, int error, const char *file, int line,
                                const char *func) {
        if (n < LOG_MAX_FIELDS)
                fields[n++] = log_field_format("CODE_FILE", "%s", file);
        if (n < LOG_MAX_FIELDS)
                fields[n++] = log_field_format("CODE_LINE", "%d", line);
        if (n < LOG_MAX_FIELDS)
                fields[n++] = log_field_format("CODE_FUNC", "%s", func);
        if (error != 0 && n < LOG_MAX_FIELDS)
                fields[n++] = log_field_format("ERRNO", "%d", abs(error));
        return n;
}

static size_t drop_oom_fields(char **fields, size_t n) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (fields[i] && fields[i] != log_field_oom)
                        fields[k++] = fields[i];
        return k;
}

static void free_fields(char **fields, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(fields[i]);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) {
        char *fields[LOG_MAX_FIELDS + 1];
        _cleanup_free_ char *message = NULL;
        int saved_errno = errno;
        size_t n = 0;
        va_list ap;

        if (level > log_max_level)
                return -abs(error);

        /* %m in the format refers to the error passed in, not to whatever
         * errno happens to hold. */
        errno = abs(error);
        va_start(ap, format);
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        va_end(ap);

        fields[n++] = log_field_format("MESSAGE", "%s", strna(message));
        n = add_common_fields(fields, n, error, file, line, func);
        n = drop_oom_fields(fields, n);
        dispatch(level, fields, n);
        free_fields(fields, n);

        errno = saved_errno;
        return -abs(error);
}

int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        char *first, ...) {
        char *fields[LOG_MAX_FIELDS + 1];
        size_t n = 0;
        va_list ap;

        va_start(ap, first);
        for (char *f = first; f; f = va_arg(ap, char *)) {
                if (n < LOG_MAX_FIELDS)
                        fields[n++] = f;
                else if (f != log_field_oom)
                        free(f);
        }
        va_end(ap);

        if (level <= log_max_level) {
                n = add_common_fields(fields, n, error, file, line, func);
                n = drop_oom_fields(fields, n);
                dispatch(level, fields, n);
        } else
                n = drop_oom_fields(fields, n);

        free_fields(fields, n);
        return -abs(error);
}
