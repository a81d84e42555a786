/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Routes HTTP/2 requests to the domain's service handlers by method and
 * path, and does the plumbing every handler would repeat:
 *
 *  - unknown path: 404, known path with another method: 405 with Allow;
 *    routes marked ROUTE_ADMIN need an IdM access token with scope
 *    "admin" (auth.h): 401 with WWW-Authenticate without a valid one, 403
 *    for a valid token without the scope. All before any body is read.
 *  - request bodies: buffered up to the route's limit (413 past it, from
 *    Content-Length at once or while it arrives), or streamed to the
 *    route's begin/chunk callbacks (uploads).
 *  - per-request state for handlers that outlive their call (streamed
 *    uploads and downloads), freed when the stream is gone.
 *
 * Patterns are paths whose segments are literal or "*", which matches one
 * non-empty segment and is captured (route_request_get_param()). A pattern
 * ending in "/" matches only paths with that trailing slash. Paths are
 * compared as they arrive; handlers validate what they capture.
 *
 * Every error answer is JSON: {"code": N, "description": "..."}. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "h2-server.h"
#include "macro.h"

#define ROUTE_BODY_DEFAULT_MAX (64U * 1024U)
#define ROUTE_PARAMS_MAX 4

typedef struct router router;
typedef struct route_request route_request;

/* Handlers return 0 or negative errno; a failure before any answer
 * becomes 500. */
typedef int (*route_handler_t)(route_request *rr, void *userdata);
typedef int (*route_chunk_t)(route_request *rr, const uint8_t *data, size_t size, void *userdata);

enum {
        ROUTE_ADMIN = 1 << 0,
};

typedef struct route {
        const char *method;
        const char *pattern;
        unsigned flags;
        /* Buffered body limit; 0: ROUTE_BODY_DEFAULT_MAX. */
        size_t max_body;
        /* Buffered routes: called with the complete request. Streamed
         * routes: called when the body has ended. */
        route_handler_t handler;
        /* Set both for a streamed body: begin runs after the headers (it
         * may answer at once; chunks are not delivered after an answer). */
        route_handler_t begin;
        route_chunk_t chunk;
} route;

int router_new(auth *a, router **ret);
router *router_free(router *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(router *, router_free);
#define _cleanup_router_ _cleanup_(router_freep)

/* routes must stay valid as long as the router (static tables). */
int router_add(router *r, const route *routes, size_t n_routes, void *userdata);
/* Makes r the server's request dispatcher. */
void router_attach(router *r, H2Server *s);

H2Request *route_request_get_request(route_request *rr);
/* The i-th "*" of the pattern, or NULL. */
const char *route_request_get_param(route_request *rr, size_t i);
const uint8_t *route_request_get_body(route_request *rr, size_t *ret_size);
/* State that lives as long as the stream; free_state runs when it is gone
 * (or when replaced). Use this instead of h2_request_set_close_handler(),
 * which the router owns. */
void route_request_set_state(route_request *rr, void *state, void (*free_state)(void *));
void *route_request_get_state(route_request *rr);
/* True once an answer went out through the functions below. */
bool route_request_is_answered(route_request *rr);

/* Complete answers. body is borrowed; compact JSON, content-type
 * application/json. */
int route_respond_json(route_request *rr, int status, json_t *body, const H2Header *headers, size_t n_headers);
int route_respond_empty(route_request *rr, int status, const H2Header *headers, size_t n_headers);
int route_respond_error(route_request *rr, int status, const char *format, ...) _printf_(3, 4);
/* Marks a response started by other means (e.g. a streaming download). */
void route_request_mark_answered(route_request *rr);

/* The value of query parameter name, percent-decoded ('+' is a space), in
 * *ret (to be freed). -ENOENT when absent, -EINVAL when malformed or given
 * more than once. */
int route_query_get(route_request *rr, const char *name, char **ret);
/* 0 when the query holds no parameters but the allowed ones
 * (NULL-terminated list), -EINVAL otherwise. */
int route_query_check_allowed(route_request *rr, const char *const *allowed);
