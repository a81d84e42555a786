/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "ini.h"
#include "log.h"
#include "macro.h"

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r';
}

static bool is_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
}

static bool valid_name(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!is_name_char(*s))
                        return false;
        return true;
}

/* Strips blanks at both ends in place; returns the new start. */
static char *strip(char *s) {
        char *e;

        while (is_blank(*s))
                s++;
        e = s + strlen(s);
        while (e > s && is_blank(e[-1]))
                *--e = '\0';
        return s;
}

static int fail(unsigned line, const char *reason, unsigned *ret_line, const char **ret_reason) {
        log_debug("ini: line %u: %s", line, reason);
        if (ret_line)
                *ret_line = line;
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

int ini_parse(const char *data, size_t size, ini_handler_t handler, void *userdata,
              unsigned *ret_line, const char **ret_reason) {
        char section[INI_LINE_MAX + 1] = "";
        char buf[INI_LINE_MAX + 1];
        bool have_section = false;
        unsigned line = 0;
        size_t pos = 0;
        int r;

        if (!data && size > 0)
                return -EINVAL;
        if (!handler)
                return -EINVAL;

        while (pos < size) {
                const char *nl = memchr(data + pos, '\n', size - pos);
                size_t len = (nl ? (size_t) (nl - data) : size) - pos;
                char *s, *eq;

                line++;
                if (len > INI_LINE_MAX)
                        return fail(line, "line too long", ret_line, ret_reason);
                if (memchr(data + pos, '\0', len))
                        return fail(line, "NUL byte in line", ret_line, ret_reason);
                memcpy(buf, data + pos, len);
                buf[len] = '\0';
                pos += len + (nl ? 1 : 0);

                s = strip(buf);
                if (*s == '\0' || *s == '#' || *s == ';')
                        continue;

                if (*s == '[') {
                        size_t n = strlen(s);

                        if (s[n - 1] != ']')
                                return fail(line, "section header without closing ']'", ret_line,
                                            ret_reason);
                        s[n - 1] = '\0';
                        s = strip(s + 1);
                        if (!valid_name(s))
                                return fail(line, "invalid section name", ret_line, ret_reason);
                        strcpy(section, s);
                        have_section = true;
                        continue;
                }

                eq = strchr(s, '=');
                if (!eq)
                        return fail(line, "expected Key=Value", ret_line, ret_reason);
                if (!have_section)
                        return fail(line, "assignment outside of any [Section]", ret_line,
                                    ret_reason);
                *eq = '\0';
                s = strip(s);
                if (!valid_name(s))
                        return fail(line, *s ? "invalid key name" : "empty key", ret_line,
                                    ret_reason);

                r = handler(section, s, strip(eq + 1), line, userdata);
                if (r < 0) {
                        if (ret_line)
                                *ret_line = line;
                        if (ret_reason)
                                *ret_reason = NULL;
                        return r;
                }
        }

        return 0;
}
