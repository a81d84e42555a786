/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The reTHINK message model: every message between components, agent,
 * protostubs and the domain is one JSON object
 *
 *   {"id": int, "type": T, "from": address, "to": address | [address, ...],
 *    "body": {...}}
 *
 * Parsing is strict (docs/protocol.md lists every rule): an input is either
 * turned into a complete, valid rt_message or rejected with a negative errno
 * and a reason that names the offending field. A message is immutable once
 * built. */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Largest id: the largest integer a JSON peer using IEEE doubles (every
 * JavaScript runtime) still reads exactly. */
#define RT_MESSAGE_ID_MAX UINT64_C(9007199254740991)

#define RT_MESSAGE_MAX_SIZE_DEFAULT (64u * 1024u)
#define RT_MESSAGE_MAX_DEPTH_DEFAULT 32u

#define RT_MESSAGE_CODE_MIN 100
#define RT_MESSAGE_CODE_MAX 599

typedef enum rt_message_type {
        RT_MESSAGE_CREATE,
        RT_MESSAGE_READ,
        RT_MESSAGE_UPDATE,
        RT_MESSAGE_DELETE,
        RT_MESSAGE_SUBSCRIBE,
        RT_MESSAGE_UNSUBSCRIBE,
        RT_MESSAGE_RESPONSE,
        RT_MESSAGE_FORWARD,
        RT_MESSAGE_EXECUTE,
        _RT_MESSAGE_TYPE_MAX,
        _RT_MESSAGE_TYPE_INVALID = -EINVAL,
} rt_message_type;

/* Per-call limits for rt_message_parse(); a zero field means its default. */
typedef struct rt_message_limits {
        /* Bytes of input, default RT_MESSAGE_MAX_SIZE_DEFAULT. */
        size_t max_size;
        /* Nesting of objects and arrays; the message object itself is depth
         * 1, its body 2. Default RT_MESSAGE_MAX_DEPTH_DEFAULT. */
        unsigned max_depth;
} rt_message_limits;

typedef struct rt_message rt_message;

const char *rt_message_type_to_string(rt_message_type type);
rt_message_type rt_message_type_from_string(const char *s);

/* Parses one message from data (size bytes, no terminating NUL needed; a
 * trailing newline is fine, so NDJSON lines can be passed as they are).
 *
 * Errors: -EMSGSIZE input over limits->max_size; -E2BIG nesting over
 * limits->max_depth; -EBADMSG not JSON (syntax, embedded NUL byte, invalid
 * UTF-8, duplicate key, trailing garbage); -EINVAL valid JSON that is not a
 * valid message; -ERANGE id or body.code out of range; -ENOMEM.
 * On failure, if ret_reason is not NULL, *ret_reason gets a human-readable
 * reason naming the field (to be freed; NULL if even that allocation
 * failed). Reasons never quote values from the input, so they are safe to
 * log and to send back in an error response. */
int rt_message_parse(const void *data, size_t size, const rt_message_limits *limits,
                     rt_message **ret, char **ret_reason);

/* Builds a message to one recipient. body may be NULL for {}; it is
 * borrowed: the message keeps a deep copy, so the caller still owns (and
 * must release) its reference. body must satisfy the same rules as a parsed
 * body (a response needs body.code), else -EINVAL (-ERANGE for code or id
 * out of range), with the reason logged at debug level. */
int rt_message_new(rt_message_type type, uint64_t id, const char *from, const char *to,
                   json_t *body, rt_message **ret);
/* The same for n_to >= 1 recipients; the message serialises "to" as an array
 * even when n_to is 1. */
int rt_message_new_multi(rt_message_type type, uint64_t id, const char *from,
                         const char *const *to, size_t n_to, json_t *body, rt_message **ret);

/* Answers request: same id, from and to swapped, body {"code": code,
 * "description": description, "value": value}, the last two left out when
 * NULL. value is borrowed (deep-copied). The response comes from responder;
 * NULL means the request's first "to" — pass it explicitly when the request
 * went to several recipients. A response is never answered: -EINVAL if
 * request is one. -ERANGE for code outside 100-599. */
int rt_message_new_response(const rt_message *request, const char *responder, int code,
                            const char *description, json_t *value, rt_message **ret);

/* An error response (code 400-599, else -ERANGE) with a description, e.g. the
 * reason from a failed validation. */
int rt_message_new_error(const rt_message *request, const char *responder, int code,
                         const char *description, rt_message **ret);

/* Answers an input that rt_message_parse() rejected: recovers id, from and
 * the first to from it as far as they are valid and builds an error
 * response like rt_message_new_error(). Returns -EBADMSG when the input does
 * not even say who sent it with what id (then there is no one to answer),
 * and -EINVAL when it claims to be a response itself, so two peers never
 * bounce errors at each other. responder may be NULL as above. */
int rt_message_new_error_for_invalid(const void *data, size_t size, const rt_message_limits *limits,
                                     const char *responder, int code, const char *description,
                                     rt_message **ret);

/* The status code to answer a parse error with: 413 for -EMSGSIZE, 400 for
 * the other errors of rt_message_parse() about the input, 500 otherwise. */
int rt_message_status_for_error(int error);

rt_message *rt_message_free(rt_message *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(rt_message *, rt_message_free);
#define _cleanup_rt_message_ _cleanup_(rt_message_freep)

/* Compact single-line JSON (no newline anywhere, none appended), keys in
 * the order id, type, from, to, body. *ret is to be freed. */
int rt_message_to_json(const rt_message *m, char **ret);

/* Same type, id, from, to (including its string-or-array form) and body. */
bool rt_message_equal(const rt_message *a, const rt_message *b);

uint64_t rt_message_get_id(const rt_message *m);
rt_message_type rt_message_get_type(const rt_message *m);
const char *rt_message_get_from(const rt_message *m);
size_t rt_message_get_n_to(const rt_message *m);
/* NULL if i is out of range. */
const char *rt_message_get_to(const rt_message *m, size_t i);

/* Borrowed and owned by the message: do not modify or decref. Take a
 * reference (json_incref) to keep it beyond the message's life. */
json_t *rt_message_get_body(const rt_message *m);

/* Fields of the body. Each returns NULL (or -ENODATA for the code) when the
 * field is absent; their types were checked when the message was built. */
int rt_message_get_code(const rt_message *m);
const char *rt_message_get_description(const rt_message *m);
json_t *rt_message_get_value(const rt_message *m);
const char *rt_message_get_resource(const rt_message *m);
json_t *rt_message_get_criteria(const rt_message *m);
const char *rt_message_get_attribute(const rt_message *m);
const char *rt_message_get_access_token(const rt_message *m);
