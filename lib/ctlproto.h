/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Wire format of the agent's control socket (docs/control.md): one JSON
 * object per line.
 *
 *   request  {"id": N, "command": "name", "args": {...}}        args optional
 *   reply    {"id": N, "ok": true, "result": {...}}
 *            {"id": N, "ok": false, "error": {"code": C, "description": "..."}}
 *
 * Parsing is strict, so that a client's mistake is reported rather than
 * guessed at: no unknown or duplicate keys, no NUL bytes, id a non-negative
 * integer, command lowercase [a-z0-9-] starting with a letter, args and
 * result objects, error code 400-599. A reply whose request could not be
 * parsed far enough to find its id carries "id": null.
 *
 * Request lines are at most CTLPROTO_LINE_MAX bytes, without the '\n'.
 * Replies may be longer (a `qos` result grows with the interfaces), up to
 * CTLPROTO_REPLY_MAX; the server bounds its per-client output to that. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define CTLPROTO_LINE_MAX (64U * 1024U)
#define CTLPROTO_REPLY_MAX (4U * 1024U * 1024U)
#define CTLPROTO_COMMAND_MAX 64U
#define CTLPROTO_DESCRIPTION_MAX 1024U
/* The largest id a client may use: JSON numbers beyond 2^53 are not exact
 * in every client language. */
#define CTLPROTO_ID_MAX ((int64_t) 9007199254740991LL)

/* Error codes used on the wire (HTTP semantics). */
enum {
        CTLPROTO_BAD_REQUEST = 400,
        CTLPROTO_FORBIDDEN = 403,
        CTLPROTO_NOT_FOUND = 404,
        CTLPROTO_INTERNAL = 500,
};

/* Framing. Looks for a complete line in buf[0..size). Returns 1 and sets
 * *ret_line_len (without the '\n') and *ret_consumed (with it) when one is
 * there, 0 when more bytes are needed, -EMSGSIZE when the line is (or is
 * bound to become) longer than max bytes. */
int ctlproto_next_line(const void *buf, size_t size, size_t max, size_t *ret_line_len,
                       size_t *ret_consumed);

bool ctlproto_command_is_valid(const char *s);

/* Why a line was not accepted. has_id tells whether id was found before the
 * problem (so the error reply can carry it). */
typedef struct ctlproto_error {
        bool has_id;
        int64_t id;
        int code;
        char description[256];
} ctlproto_error;

typedef struct ctl_request ctl_request;

/* Parses one line (without its '\n'). On failure returns -EBADMSG (bad JSON
 * or schema) or -ENOMEM and, when ret_error is not NULL, fills it in. */
int ctl_request_parse(const void *line, size_t size, ctl_request **ret, ctlproto_error *ret_error);
/* args may be NULL (no "args" key); it is copied by reference. */
int ctl_request_new(int64_t id, const char *command, json_t *args, ctl_request **ret);
ctl_request *ctl_request_free(ctl_request *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(ctl_request *, ctl_request_free);
#define _cleanup_ctl_request_ _cleanup_(ctl_request_freep)

int64_t ctl_request_get_id(const ctl_request *r);
const char *ctl_request_get_command(const ctl_request *r);
/* Never NULL: an empty object when the request had no args. Borrowed. */
json_t *ctl_request_get_args(const ctl_request *r);
/* Serialises to one compact line with its '\n'. */
int ctl_request_format(const ctl_request *r, char **ret);

typedef struct ctl_reply ctl_reply;

int ctl_reply_parse(const void *line, size_t size, ctl_reply **ret, ctlproto_error *ret_error);
/* result may be NULL for an empty object; it is copied by reference. */
int ctl_reply_new_ok(int64_t id, json_t *result, ctl_reply **ret);
/* id < 0 means unknown ("id": null). The description is cut to
 * CTLPROTO_DESCRIPTION_MAX bytes (at a UTF-8 boundary). */
int ctl_reply_new_error(int64_t id, int code, const char *description, ctl_reply **ret);
ctl_reply *ctl_reply_free(ctl_reply *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(ctl_reply *, ctl_reply_free);
#define _cleanup_ctl_reply_ _cleanup_(ctl_reply_freep)

/* -1 for "id": null. */
int64_t ctl_reply_get_id(const ctl_reply *r);
bool ctl_reply_is_ok(const ctl_reply *r);
/* Borrowed; NULL for an error reply. */
json_t *ctl_reply_get_result(const ctl_reply *r);
/* 0 and NULL for a successful reply. */
int ctl_reply_get_error_code(const ctl_reply *r);
const char *ctl_reply_get_error_description(const ctl_reply *r);
int ctl_reply_format(const ctl_reply *r, char **ret);

/* The errno a code stands for, for callers that want one: 400 -EINVAL,
 * 403 -EACCES, 404 -ENOENT, other -EIO. */
int ctlproto_code_to_errno(int code);
/* And back, for handlers that failed with an errno. */
int ctlproto_errno_to_code(int error);
