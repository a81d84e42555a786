/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device's copy of its domain's IdM key set (GET /idm/jwks), for
 * checking the access tokens peers present to the Local M2M Resource
 * Directory without asking the domain each time.
 *
 * Fetched on the agent's event loop (lib/h2-client; https with the
 * configured CA, http = h2c for loopback tests), refreshed every
 * refresh_usec, and at once when a token names a kid that is not in the
 * set (at most once per min_refetch_usec, so forged kids cannot make us
 * hammer the domain). A failed fetch keeps the keys we have and is retried
 * after min_refetch_usec. Nothing here blocks: a verification that needs
 * a fetch first says -EBUSY, and the caller waits for jwks_cache_wait()'s
 * callback (or answers 503). docs/local-rd.md has the details. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "time-util.h"
#include "token.h"

#define JWKS_CACHE_REFRESH_USEC_DEFAULT (10 * USEC_PER_MINUTE)
#define JWKS_CACHE_MIN_REFETCH_USEC_DEFAULT (30 * USEC_PER_SEC)
#define JWKS_CACHE_FETCH_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Callers waiting at once for a fetch; more get -EBUSY from _wait(). */
#define JWKS_CACHE_MAX_WAITERS 256u
/* Tokens verified recently, remembered (by SHA-256, until they expire or
 * the key set changes) so that a peer's stream of requests costs one
 * signature check per token; the oldest makes room. */
#define JWKS_CACHE_MAX_VERIFIED 128u

typedef struct jwks_cache jwks_cache;
typedef struct jwks_waiter jwks_waiter;

typedef struct jwks_cache_options {
        const char *url;           /* the domain, https://IP[:PORT] or http:// (h2c); required */
        const char *ca_file;       /* https: required */
        const char *domain;        /* iss and aud of its tokens; required */
        usec_t refresh_usec;       /* 0: default */
        usec_t min_refetch_usec;   /* 0: default */
} jwks_cache_options;

int jwks_cache_new(sd_event *e, const jwks_cache_options *o, jwks_cache **ret);
/* Waiters are dropped without a call. */
jwks_cache *jwks_cache_free(jwks_cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(jwks_cache *, jwks_cache_free);
#define _cleanup_jwks_cache_ _cleanup_(jwks_cache_freep)

/* Starts the first fetch (and the refresh timer). */
int jwks_cache_start(jwks_cache *c);

/* True once a key set was fetched. */
bool jwks_cache_is_ready(const jwks_cache *c);
size_t jwks_cache_get_n_keys(const jwks_cache *c);
/* Fetches that completed with a key set, for tests and status. */
unsigned jwks_cache_get_n_fetches(const jwks_cache *c);

/* Verifies a bearer token: ES256 with a key of the set, iss = aud = the
 * domain, exp/nbf with TOKEN_LEEWAY_USEC, and scope (NULL: none). Returns
 * 0 and the claims (ret may be NULL; they belong to the cache and stay
 * valid until the next call into it), the errors of token_verify() with a
 * static reason, or -EBUSY when the answer needs a fetch that is under way
 * (no key set yet, or an unknown kid): wait and call again. -ENOKEY means
 * the kid is unknown even after a fresh fetch; -ENODATA that no key set
 * could be fetched yet and the next try is not due (answer 503). */
int jwks_cache_verify(jwks_cache *c, const char *token, const char *scope, const token_claims **ret,
                      const char **ret_reason);
/* Verifications answered from the verified-token cache, for tests. */
unsigned jwks_cache_get_n_cache_hits(const jwks_cache *c);

/* Calls fn once, from the event loop, when the fetch under way ends (with
 * keys or not); at once (deferred) when none is. -EBUSY past
 * JWKS_CACHE_MAX_WAITERS. */
typedef void (*jwks_cache_ready_t)(jwks_cache *c, void *userdata);
int jwks_cache_wait(jwks_cache *c, jwks_cache_ready_t fn, void *userdata, jwks_waiter **ret);
/* Cancels a waiter that has not been called. NULL is fine. */
jwks_waiter *jwks_waiter_cancel(jwks_waiter *w);
