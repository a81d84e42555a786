/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* reTHINK addresses: the URLs that name runtimes, hyperties, users, context
 * resources and domain services in the "from" and "to" of every message.
 *
 *   runtime://<host>/<uuid>        hyperty://<host>/<uuid>
 *   user://<idp-host>/<id>         ctxt://<host>/<segment>[/<segment>...]
 *   domain://<host>[/<segment>...]  e.g. domain://msg-node.<domain>/sm,
 *                                        domain://registry.<domain>
 *
 * Validation is strict so that every address has exactly one spelling:
 * lowercase scheme and host, lowercase canonical UUIDs, canonical IPv6
 * literals, upper-case percent-encoding only where needed. Routing tables can
 * therefore compare addresses as plain strings. docs/protocol.md has the
 * grammar. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Longest address accepted, in bytes, without the terminating NUL. */
#define RT_ADDRESS_MAX_LEN 1024

typedef enum rt_address_scheme {
        RT_ADDRESS_RUNTIME,
        RT_ADDRESS_HYPERTY,
        RT_ADDRESS_USER,
        RT_ADDRESS_CTXT,
        RT_ADDRESS_DOMAIN,
        _RT_ADDRESS_SCHEME_MAX,
        _RT_ADDRESS_SCHEME_INVALID = -EINVAL,
} rt_address_scheme;

typedef struct rt_address rt_address;

/* Returns "runtime", "hyperty", ... or NULL for a value out of range. */
const char *rt_address_scheme_to_string(rt_address_scheme scheme);
/* Takes the bare scheme name ("ctxt", not "ctxt://"); returns -EINVAL for
 * anything else. */
rt_address_scheme rt_address_scheme_from_string(const char *s);

/* Parses and validates s. On failure returns -EINVAL (-ENAMETOOLONG for an
 * address over RT_ADDRESS_MAX_LEN, -ENOMEM) and, if ret_reason is not NULL,
 * stores a human-readable reason in *ret_reason (to be freed; NULL if even
 * that allocation failed). The reason never quotes the input, so it is safe
 * to log or send back. *ret and, on success, *ret_reason are untouched. */
int rt_address_parse(const char *s, rt_address **ret, char **ret_reason);

/* Same validation as rt_address_parse(), without allocating. */
bool rt_address_is_valid(const char *s);

rt_address *rt_address_free(rt_address *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(rt_address *, rt_address_free);
#define _cleanup_rt_address_ _cleanup_(rt_address_freep)

rt_address_scheme rt_address_get_scheme(const rt_address *a);
/* The host: a DNS name, a dotted IPv4 address or a bracketed IPv6 literal. */
const char *rt_address_get_authority(const rt_address *a);
/* Everything after the authority's "/", e.g. "a/b" for ctxt://d/a/b; the
 * UUID for runtime:// and hyperty://, the id for user://; "" if none. */
const char *rt_address_get_path(const rt_address *a);
/* The whole address as parsed (which is its only valid spelling). */
const char *rt_address_to_string(const rt_address *a);

bool rt_address_equal(const rt_address *a, const rt_address *b);

/* True if a is prefix itself or lies below it, on whole path segments:
 * ctxt://d/a/b is under ctxt://d/a, ctxt://d/ab is not; domain://x/sm is
 * under domain://x. Scheme and authority must be equal. For routing and
 * subscriptions. */
bool rt_address_has_prefix(const rt_address *a, const rt_address *prefix);

/* String form of rt_address_has_prefix(): 1 or 0, or -EINVAL if either
 * string is not a valid address. */
int rt_address_string_has_prefix(const char *address, const char *prefix);
