/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verified bearer tokens, so that a token presented again skips the ES256
 * verification (most of the cost of a registry discovery).
 *
 * Entries are keyed by the SHA-256 of the token text and hold the claims
 * verification produced, until a deadline the caller sets (the token's exp
 * plus the verifier's leeway): a lookup after it misses and drops the
 * entry, so the caller verifies in full and refuses the expired token with
 * the usual reason. Only tokens that verified are ever put; a forged or
 * altered token hashes differently and misses. When full, the clock (second
 * chance) algorithm evicts an entry not used since the hand last passed. */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "time-util.h"
#include "token.h"

#define TOKEN_CACHE_DEFAULT_SIZE 4096

typedef struct token_cache token_cache;

typedef struct token_cache_stats {
        uint64_t hits, misses, evictions;
        size_t size;
} token_cache_stats;

int token_cache_new(size_t max_entries, token_cache **ret);
token_cache *token_cache_free(token_cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(token_cache *, token_cache_free);
#define _cleanup_token_cache_ _cleanup_(token_cache_freep)

/* 0 and a new handle on the claims if token is cached and now <= its
 * deadline; -ENOENT otherwise (an entry past its deadline is dropped). */
int token_cache_get(token_cache *c, const char *token, usec_t now, token_claims **ret);
/* Remembers claims (a new handle) for token until deadline; replaces an
 * entry for the same token. */
int token_cache_put(token_cache *c, const char *token, const token_claims *claims, usec_t deadline);
/* Forgets everything, e.g. when the keys that verified the entries change. */
void token_cache_clear(token_cache *c);
token_cache_stats token_cache_get_stats(const token_cache *c);
