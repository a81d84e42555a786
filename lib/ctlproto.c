/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"
#include "macro.h"

struct ctl_request {
        int64_t id;
        char *command;
        json_t *args;
};

struct ctl_reply {
        int64_t id; /* -1: null */
        bool ok;
        json_t *result;
        int code;
        char *description;
};

int ctlproto_next_line(const void *buf, size_t size, size_t max, size_t *ret_line_len,
                       size_t *ret_consumed) {
        const char *nl;
        size_t n;

        if (!buf && size > 0)
                return -EINVAL;

        /* Only the first max+1 bytes can hold the end of an acceptable line. */
        n = MIN(size, max == SIZE_MAX ? max : max + 1);
        nl = n > 0 ? memchr(buf, '\n', n) : NULL;
        if (!nl)
                return size > max ? -EMSGSIZE : 0;

        *ret_line_len = (size_t) (nl - (const char *) buf);
        *ret_consumed = *ret_line_len + 1;
        return 1;
}

bool ctlproto_command_is_valid(const char *s) {
        size_t n;

        if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
                return false;
        n = strlen(s);
        if (n > CTLPROTO_COMMAND_MAX || s[n - 1] == '-')
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

_printf_(3, 4) static int fail(ctlproto_error *e, int code, const char *format, ...) {
        va_list ap;

        if (e) {
                e->code = code;
                va_start(ap, format);
                (void) vsnprintf(e->description, sizeof(e->description), format, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static void error_init(ctlproto_error *e) {
        if (e)
                *e = (ctlproto_error) { .id = -1 };
}

/* Loads a line as a JSON object, rejecting what jansson would let through
 * but the protocol does not: NUL bytes, duplicate keys, non-objects. */
static int load_object(const void *line, size_t size, size_t max, json_t **ret, ctlproto_error *e) {
        json_error_t jerr;
        json_t *o;

        if (!line && size > 0)
                return -EINVAL;
        if (size > max)
                return fail(e, CTLPROTO_BAD_REQUEST, "Line too long (%zu bytes, at most %zu)", size, max);
        if (size > 0 && memchr(line, '\0', size))
                return fail(e, CTLPROTO_BAD_REQUEST, "NUL byte in line");

        o = json_loadb(line ?: "", size, JSON_REJECT_DUPLICATES, &jerr);
        if (!o)
                return fail(e, CTLPROTO_BAD_REQUEST, "Invalid JSON at column %d: %s", jerr.column,
                            jerr.text);
        if (!json_is_object(o)) {
                json_decref(o);
                return fail(e, CTLPROTO_BAD_REQUEST, "Expected a JSON object");
        }
        *ret = o;
        return 0;
}

static bool valid_id(json_t *v) {
        return json_is_integer(v) && json_integer_value(v) >= 0 &&
               json_integer_value(v) <= CTLPROTO_ID_MAX;
}

static int check_keys(json_t *o, const char *const *allowed, size_t n, ctlproto_error *e) {
        const char *key;
        json_t *v;

        json_object_foreach(o, key, v) {
                bool found = false;
                for (size_t i = 0; i < n && !found; i++)
                        found = streq(key, allowed[i]);
                if (!found)
                        /* The key came through jansson, so it is valid UTF-8;
                         * cut it so a long one still leaves a readable reason. */
                        return fail(e, CTLPROTO_BAD_REQUEST, "Unknown key \"%.64s\"", key);
        }
        return 0;
}

int ctl_request_parse(const void *line, size_t size, ctl_request **ret, ctlproto_error *ret_error) {
        static const char *const keys[] = { "id", "command", "args" };
        _cleanup_(json_decrefp) json_t *o = NULL;
        ctlproto_error *e = ret_error;
        json_t *id, *command, *args;
        int r;

        error_init(e);
        r = load_object(line, size, CTLPROTO_LINE_MAX, &o, e);
        if (r < 0)
                return r;

        id = json_object_get(o, "id");
        if (!id)
                return fail(e, CTLPROTO_BAD_REQUEST, "Missing \"id\"");
        if (!valid_id(id))
                return fail(e, CTLPROTO_BAD_REQUEST, "\"id\" must be an integer from 0 to %" PRId64,
                            CTLPROTO_ID_MAX);
        if (e) {
                e->has_id = true;
                e->id = json_integer_value(id);
        }

        r = check_keys(o, keys, ELEMENTSOF(keys), e);
        if (r < 0)
                return r;

        command = json_object_get(o, "command");
        if (!command)
                return fail(e, CTLPROTO_BAD_REQUEST, "Missing \"command\"");
        if (!json_is_string(command) || !ctlproto_command_is_valid(json_string_value(command)))
                return fail(e, CTLPROTO_BAD_REQUEST,
                            "\"command\" must be a string of at most %u characters a-z, 0-9 and '-'",
                            CTLPROTO_COMMAND_MAX);

        args = json_object_get(o, "args");
        if (args && !json_is_object(args))
                return fail(e, CTLPROTO_BAD_REQUEST, "\"args\" must be an object");

        r = ctl_request_new(json_integer_value(id), json_string_value(command), args, ret);
        if (r < 0)
                return fail(e, CTLPROTO_INTERNAL, "Out of memory"), r;
        return 0;
}

int ctl_request_new(int64_t id, const char *command, json_t *args, ctl_request **ret) {
        ctl_request *r;

        if (id < 0 || id > CTLPROTO_ID_MAX || !ctlproto_command_is_valid(command) ||
            (args && !json_is_object(args)) || !ret)
                return -EINVAL;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->id = id;
        r->command = strdup(command);
        r->args = args ? json_incref(args) : json_object();
        if (!r->command || !r->args)
                return ctl_request_free(r), -ENOMEM;
        *ret = r;
        return 0;
}

ctl_request *ctl_request_free(ctl_request *r) {
        if (!r)
                return NULL;
        free(r->command);
        json_decref(r->args);
        free(r);
        return NULL;
}

int64_t ctl_request_get_id(const ctl_request *r) {
        return r->id;
}

const char *ctl_request_get_command(const ctl_request *r) {
        return r->command;
}

json_t *ctl_request_get_args(const ctl_request *r) {
        return r->args;
}

/* Dumps o compactly and appends the line terminator. */
static int dump_line(json_t *o, char **ret) {
        char *s, *t;
        size_t n;

        s = json_dumps(o, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        t = realloc(s, n + 2);
        if (!t)
                return free(s), -ENOMEM;
        t[n] = '\n';
        t[n + 1] = '\0';
        *ret = t;
        return 0;
}

int ctl_request_format(const ctl_request *r, char **ret) {
        _cleanup_(json_decrefp) json_t *o = NULL;

        o = json_pack("{s:I,s:s,s:O}", "id", (json_int_t) r->id, "command", r->command, "args",
                      r->args);
        if (!o)
                return -ENOMEM;
        return dump_line(o, ret);
}

int ctl_reply_parse(const void *line, size_t size, ctl_reply **ret, ctlproto_error *ret_error) {
        static const char *const keys[] = { "id", "ok", "result", "error" };
        static const char *const error_keys[] = { "code", "description" };
        _cleanup_(json_decrefp) json_t *o = NULL;
        ctlproto_error *e = ret_error;
        json_t *id, *ok, *result, *error, *code, *description;
        int64_t idv = -1;
        int r;

        error_init(e);
        r = load_object(line, size, CTLPROTO_REPLY_MAX, &o, e);
        if (r < 0)
                return r;

        id = json_object_get(o, "id");
        if (!id)
                return fail(e, CTLPROTO_BAD_REQUEST, "Missing \"id\"");
        if (!json_is_null(id)) {
                if (!valid_id(id))
                        return fail(e, CTLPROTO_BAD_REQUEST, "\"id\" must be null or an integer from 0 to %" PRId64,
                                    CTLPROTO_ID_MAX);
                idv = json_integer_value(id);
                if (e) {
                        e->has_id = true;
                        e->id = idv;
                }
        }

        r = check_keys(o, keys, ELEMENTSOF(keys), e);
        if (r < 0)
                return r;

        ok = json_object_get(o, "ok");
        if (!json_is_boolean(ok))
                return fail(e, CTLPROTO_BAD_REQUEST, "\"ok\" must be true or false");
        result = json_object_get(o, "result");
        error = json_object_get(o, "error");

        if (json_is_true(ok)) {
                if (idv < 0)
                        return fail(e, CTLPROTO_BAD_REQUEST, "A successful reply needs an integer \"id\"");
                if (error)
                        return fail(e, CTLPROTO_BAD_REQUEST, "A successful reply has no \"error\"");
                if (!json_is_object(result))
                        return fail(e, CTLPROTO_BAD_REQUEST, "\"result\" must be an object");
                r = ctl_reply_new_ok(idv, result, ret);
        } else {
                if (result)
                        return fail(e, CTLPROTO_BAD_REQUEST, "An error reply has no \"result\"");
                if (!json_is_object(error))
                        return fail(e, CTLPROTO_BAD_REQUEST, "\"error\" must be an object");
                r = check_keys(error, error_keys, ELEMENTSOF(error_keys), e);
                if (r < 0)
                        return r;
                code = json_object_get(error, "code");
                if (!json_is_integer(code) || json_integer_value(code) < 400 ||
                    json_integer_value(code) > 599)
                        return fail(e, CTLPROTO_BAD_REQUEST, "\"error.code\" must be an integer from 400 to 599");
                description = json_object_get(error, "description");
                if (!json_is_string(description) ||
                    json_string_length(description) > CTLPROTO_DESCRIPTION_MAX)
                        return fail(e, CTLPROTO_BAD_REQUEST,
                                    "\"error.description\" must be a string of at most %u bytes",
                                    CTLPROTO_DESCRIPTION_MAX);
                r = ctl_reply_new_error(idv, (int) json_integer_value(code),
                                        json_string_value(description), ret);
        }
        if (r < 0)
                return fail(e, CTLPROTO_INTERNAL, "Out of memory"), r;
        return 0;
}

int ctl_reply_new_ok(int64_t id, json_t *result, ctl_reply **ret) {
        ctl_reply *r;

        if (id < 0 || id > CTLPROTO_ID_MAX || (result && !json_is_object(result)) || !ret)
                return -EINVAL;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        *r = (ctl_reply) {
                .id = id,
                .ok = true,
                .result = result ? json_incref(result) : json_object(),
        };
        if (!r->result)
                return ctl_reply_free(r), -ENOMEM;
        *ret = r;
        return 0;
}

/* Length of the longest prefix of s, at most max bytes, that is valid UTF-8
 * (as jansson's encoder requires), stopping early at an invalid sequence. */
static size_t utf8_valid_prefix(const char *s, size_t max) {
        const unsigned char *p = (const unsigned char *) s;
        size_t i = 0;

        while (i < max && p[i]) {
                size_t len;
                uint32_t cp;

                if (p[i] < 0x80)
                        len = 1, cp = p[i];
                else if ((p[i] & 0xe0) == 0xc0)
                        len = 2, cp = p[i] & 0x1f;
                else if ((p[i] & 0xf0) == 0xe0)
                        len = 3, cp = p[i] & 0x0f;
                else if ((p[i] & 0xf8) == 0xf0)
                        len = 4, cp = p[i] & 0x07;
                else
                        break;
                if (i + len > max)
                        break;
                for (size_t k = 1; k < len; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return i;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                /* Overlong forms, surrogates and values past U+10FFFF. */
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                    (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        break;
                i += len;
        }
        return i;
}

int ctl_reply_new_error(int64_t id, int code, const char *description, ctl_reply **ret) {
        ctl_reply *r;
        size_t n;

        if (id > CTLPROTO_ID_MAX || code < 400 || code > 599 || !ret)
                return -EINVAL;

        description = description ?: "";
        n = utf8_valid_prefix(description, CTLPROTO_DESCRIPTION_MAX);

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        *r = (ctl_reply) {
                .id = id < 0 ? -1 : id,
                .code = code,
                .description = strndup(description, n),
        };
        if (!r->description)
                return ctl_reply_free(r), -ENOMEM;
        *ret = r;
        return 0;
}

ctl_reply *ctl_reply_free(ctl_reply *r) {
        if (!r)
                return NULL;
        json_decref(r->result);
        free(r->description);
        free(r);
        return NULL;
}

int64_t ctl_reply_get_id(const ctl_reply *r) {
        return r->id;
}

bool ctl_reply_is_ok(const ctl_reply *r) {
        return r->ok;
}

json_t *ctl_reply_get_result(const ctl_reply *r) {
        return r->ok ? r->result : NULL;
}

int ctl_reply_get_error_code(const ctl_reply *r) {
        return r->ok ? 0 : r->code;
}

const char *ctl_reply_get_error_description(const ctl_reply *r) {
        return r->ok ? NULL : r->description;
}

int ctl_reply_format(const ctl_reply *r, char **ret) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        json_t *id;

        id = r->id < 0 ? json_null() : json_integer(r->id);
        if (r->ok)
                o = json_pack("{s:o,s:b,s:O}", "id", id, "ok", 1, "result", r->result);
        else
                o = json_pack("{s:o,s:b,s:{s:i,s:s}}", "id", id, "ok", 0, "error", "code", r->code,
                              "description", r->description);
        if (!o)
                return -ENOMEM;
        return dump_line(o, ret);
}

int ctlproto_code_to_errno(int code) {
        switch (code) {
        case CTLPROTO_BAD_REQUEST:
                return -EINVAL;
        case CTLPROTO_FORBIDDEN:
                return -EACCES;
        case CTLPROTO_NOT_FOUND:
                return -ENOENT;
        default:
                return -EIO;
        }
}

int ctlproto_errno_to_code(int error) {
        switch (abs(error)) {
        case EINVAL:
        case EBADMSG:
                return CTLPROTO_BAD_REQUEST;
        case EPERM:
        case EACCES:
                return CTLPROTO_FORBIDDEN;
        case ENOENT:
                return CTLPROTO_NOT_FOUND;
        default:
                return CTLPROTO_INTERNAL;
        }
}
