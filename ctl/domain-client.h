/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A blocking client for a domain's HTTP/2 API, for rethinkctl: one
 * connection (TLS verified against a CA file and the URL's host, or h2c for
 * http:// URLs), requests one at a time, each bounded by a timeout. Built on
 * the event-loop client of lib/h2-client; the loop runs only inside a call.
 *
 * URLs: http://HOST[:PORT] or https://HOST[:PORT] (default 443), HOST a
 * numeric IPv4 address, [IPv6] or "localhost" (no name resolution), with
 * no path but "/". */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct domain_client domain_client;

typedef struct domain_response {
        int status;
        char *body; /* NUL-terminated */
        size_t size;
        char *content_type;
} domain_response;

domain_response *domain_response_free(domain_response *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(domain_response *, domain_response_free);
#define _cleanup_domain_response_ _cleanup_(domain_response_freep)

/* -EINVAL for a URL that is not one of the above, -EPROTONOSUPPORT for
 * another scheme, -ENOENT/-EACCES/-EBADMSG for an unreadable CA file.
 * admin_token (may be NULL) is the admin credential: before the first
 * request that is not for /idm/ the client exchanges it for an IdM access
 * token with scope "admin" (POST /idm/token, client_credentials), and
 * sends that as the bearer token from then on. If the IdM refuses, that
 * answer (401 ...) is what the call returns. */
int domain_client_new(const char *url, const char *ca_file, const char *admin_token, uint64_t timeout_usec,
                      domain_client **ret);
domain_client *domain_client_free(domain_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(domain_client *, domain_client_free);
#define _cleanup_domain_client_ _cleanup_(domain_client_freep)

/* One request; any HTTP status is a success here. Fails with the
 * connection's errno (-ECONNREFUSED nobody listening, -EPERM certificate
 * rejected, -EPROTO no h2, -ETIMEDOUT ...): domain_client_error() then
 * says why in words. */
int domain_client_call(domain_client *c, const char *method, const char *path, const char *content_type,
                       const void *body, size_t size, domain_response **ret);

/* A GET whose body is a stream: on_line() gets each line (without its
 * newline) as it arrives, until the server ends the stream, on_line()
 * returns non-zero (returned then), or SIGINT/SIGTERM arrive (0) if the
 * caller blocked them. No timeout once the answer has begun. A non-2xx answer is given back in *ret_error
 * (may be NULL) with its body. */
int domain_client_follow(domain_client *c, const char *path, int (*on_line)(const char *line, void *userdata),
                         void *userdata, domain_response **ret_error);

const char *domain_client_error(domain_client *c);
const char *domain_client_url(domain_client *c);

/* The "description" of a JSON error body, else NULL. */
const char *domain_response_description(domain_response *r);
