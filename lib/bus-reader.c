/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bus-reader.h"
#include "ctlproto.h"
#include "macro.h"
#include "message.h"

struct bus_reader {
        size_t max_line;
        rt_message_limits limits;

        /* buf[start..size) is pending; buf holds max_line + 1 bytes. */
        char *buf;
        size_t start, size;

        /* The line next() rejected last: buf[bad_start..bad_start+bad_len)
         * stays untouched until the next feed, recv or next. */
        bool has_bad;
        size_t bad_start, bad_len;
        char *bad_reason;
};

int bus_reader_new(size_t max_line, bus_reader **ret) {
        bus_reader *r;

        if (!ret)
                return -EINVAL;
        if (max_line == 0)
                max_line = BUS_LINE_MAX;
        if (max_line >= SIZE_MAX / 2)
                return -EINVAL;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->max_line = max_line;
        r->limits = (rt_message_limits) { .max_size = max_line };
        r->buf = malloc(max_line + 1);
        if (!r->buf) {
                free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

bus_reader *bus_reader_free(bus_reader *r) {
        if (!r)
                return NULL;
        free(r->buf);
        free(r->bad_reason);
        free(r);
        return NULL;
}

static void forget_bad(bus_reader *r) {
        r->has_bad = false;
        free(r->bad_reason);
        r->bad_reason = NULL;
}

/* Moves the pending bytes to the front, so the free space is in one piece
 * at the end. Only when nobody still looks at a rejected line. */
static void compact(bus_reader *r) {
        if (r->start == 0)
                return;
        memmove(r->buf, r->buf + r->start, r->size - r->start);
        r->size -= r->start;
        r->start = 0;
}

size_t bus_reader_pending(const bus_reader *r) {
        return r ? r->size - r->start : 0;
}

size_t bus_reader_feed(bus_reader *r, const void *data, size_t size) {
        size_t n;

        if (!r || (!data && size > 0))
                return 0;

        forget_bad(r);
        compact(r);
        n = MIN(size, r->max_line + 1 - r->size);
        if (n > 0)
                memcpy(r->buf + r->size, data, n);
        r->size += n;
        return n;
}

int bus_reader_recv(bus_reader *r, int fd) {
        ssize_t n;

        if (!r || fd < 0)
                return -EINVAL;

        forget_bad(r);
        compact(r);
        if (r->size >= r->max_line + 1)
                return -ENOBUFS;

        n = recv(fd, r->buf + r->size, r->max_line + 1 - r->size, MSG_DONTWAIT);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : negative_errno();
        r->size += (size_t) n;
        return (int) n;
}

static bool is_blank(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!strchr(" \t\r", p[i]))
                        return false;
        return true;
}

/* Recovers what an answer needs from a line that is JSON but not a valid
 * message. Only for -EINVAL and -ERANGE: those passed the size, depth and
 * syntax checks, so loading them again is safe and bounded. */
static void describe_invalid(const char *line, size_t len, bus_reader_error *e) {
        json_t *root, *id, *type;

        if (e->error != -EINVAL && e->error != -ERANGE)
                return;
        root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
        if (!json_is_object(root)) {
                json_decref(root);
                return;
        }
        id = json_object_get(root, "id");
        if (json_is_integer(id) && json_integer_value(id) >= 0 &&
            (uint64_t) json_integer_value(id) <= RT_MESSAGE_ID_MAX) {
                e->has_id = true;
                e->id = (uint64_t) json_integer_value(id);
        }
        type = json_object_get(root, "type");
        e->is_response = json_is_string(type) && streq(json_string_value(type), "response");
        json_decref(root);
}

int bus_reader_next(bus_reader *r, rt_message **ret_message, bus_reader_error *ret_error) {
        if (!r || !ret_message)
                return -EINVAL;

        forget_bad(r);

        for (;;) {
                _cleanup_free_ char *reason = NULL;
                const char *line = r->buf + r->start;
                size_t len, consumed;
                rt_message *m = NULL;
                int k;

                k = ctlproto_next_line(line, r->size - r->start, r->max_line, &len, &consumed);
                if (k <= 0) {
                        /* Keep the free space at the end large enough for the
                         * rest of a partial line. */
                        if (k == 0)
                                compact(r);
                        return k;
                }
                r->start += consumed;
                if (r->start == r->size)
                        r->start = r->size = 0;

                if (is_blank(line, len))
                        continue;

                k = rt_message_parse(line, len, &r->limits, &m, &reason);
                if (k >= 0) {
                        *ret_message = m;
                        return 1;
                }
                if (k == -ENOMEM)
                        return k;

                /* The bytes stay where they are until the next call: either
                 * they were before r->start, or the buffer was emptied
                 * without being overwritten. */
                r->has_bad = true;
                r->bad_start = (size_t) (line - r->buf);
                r->bad_len = len;
                r->bad_reason = TAKE_PTR(reason);
                if (ret_error) {
                        *ret_error = (bus_reader_error) {
                                .error = k,
                                .code = rt_message_status_for_error(k),
                                .reason = r->bad_reason,
                        };
                        describe_invalid(line, len, ret_error);
                }
                return k;
        }
}

int bus_reader_answer_invalid(bus_reader *r, const char *fallback_responder, rt_message **ret) {
        const char *line;
        const char *description;
        int code = 400, k;

        if (!r || !ret)
                return -EINVAL;
        if (!r->has_bad)
                return -ENODATA;

        line = r->buf + r->bad_start;
        description = r->bad_reason ?: "invalid message";
        k = rt_message_new_error_for_invalid(line, r->bad_len, &r->limits, NULL, code, description, ret);
        if (k == -EBADMSG && fallback_responder)
                /* The first "to" was not a valid address: whoever rejects
                 * the line answers for it. */
                k = rt_message_new_error_for_invalid(line, r->bad_len, &r->limits, fallback_responder, code,
                                                     description, ret);
        return k;
}

int bus_message_to_line(const rt_message *m, char **ret, size_t *ret_size) {
        _cleanup_free_ char *json = NULL;
        size_t n;
        char *line;
        int k;

        if (!m || !ret)
                return -EINVAL;

        k = rt_message_to_json(m, &json);
        if (k < 0)
                return k;
        n = strlen(json);
        if (n > BUS_LINE_MAX)
                return -EMSGSIZE;

        line = realloc(json, n + 2);
        if (!line)
                return -ENOMEM;
        json = NULL;
        line[n] = '\n';
        line[n + 1] = '\0';
        *ret = line;
        if (ret_size)
                *ret_size = n + 1;
        return 0;
}
