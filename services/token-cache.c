/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "token-cache.h"

#define NONE UINT32_MAX

typedef struct entry {
        uint8_t digest[SHA256_DIGEST_SIZE];
        token_claims *claims; /* NULL: slot free */
        usec_t deadline;
        uint32_t next; /* bucket chain */
        bool referenced;
} entry;

struct token_cache {
        entry *entries;
        uint32_t *buckets;
        size_t max, n_buckets, hand, size;
        uint64_t hits, misses, evictions;
};

int token_cache_new(size_t max_entries, token_cache **ret) {
        _cleanup_(token_cache_freep) token_cache *c = NULL;

        if (max_entries == 0 || max_entries > (1U << 24) || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->max = max_entries;
        /* A power of two at least twice the entries keeps chains short. */
        for (c->n_buckets = 16; c->n_buckets < 2 * max_entries; c->n_buckets *= 2)
                ;
        c->entries = calloc(max_entries, sizeof(entry));
        c->buckets = malloc(c->n_buckets * sizeof(uint32_t));
        if (!c->entries || !c->buckets)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_buckets; i++)
                c->buckets[i] = NONE;
        *ret = TAKE_PTR(c);
        return 0;
}

token_cache *token_cache_free(token_cache *c) {
        if (!c)
                return NULL;
        token_cache_clear(c);
        free(c->entries);
        free(c->buckets);
        free(c);
        return NULL;
}

static size_t bucket_of(const token_cache *c, const uint8_t digest[static SHA256_DIGEST_SIZE]) {
        uint64_t h;

        /* The digest is uniformly distributed already. */
        memcpy(&h, digest, sizeof(h));
        return (size_t) (h & (c->n_buckets - 1));
}

static uint32_t find(const token_cache *c, const uint8_t digest[static SHA256_DIGEST_SIZE]) {
        for (uint32_t i = c->buckets[bucket_of(c, digest)]; i != NONE; i = c->entries[i].next)
                if (memcmp(c->entries[i].digest, digest, SHA256_DIGEST_SIZE) == 0)
                        return i;
        return NONE;
}

static void drop(token_cache *c, uint32_t i) {
        entry *e = &c->entries[i];
        uint32_t *p;

        if (!e->claims)
                return;
        for (p = &c->buckets[bucket_of(c, e->digest)]; *p != i; p = &c->entries[*p].next)
                ;
        *p = e->next;
        e->claims = token_claims_free(e->claims);
        e->next = NONE;
        e->referenced = false;
        c->size--;
}

void token_cache_clear(token_cache *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->max; i++)
                drop(c, (uint32_t) i);
}

int token_cache_get(token_cache *c, const char *token, usec_t now, token_claims **ret) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        uint32_t i;
        int r;

        if (!c || !token || !ret)
                return -EINVAL;
        r = sha256_buffer(token, strlen(token), digest);
        if (r < 0)
                return r;
        i = find(c, digest);
        if (i == NONE) {
                c->misses++;
                return -ENOENT;
        }
        if (now > c->entries[i].deadline) {
                drop(c, i);
                c->misses++;
                return -ENOENT;
        }
        r = token_claims_dup(c->entries[i].claims, ret);
        if (r < 0)
                return r;
        c->entries[i].referenced = true;
        c->hits++;
        return 0;
}

/* A free slot, else the first the clock hand finds expired or not used
 * since its last pass. */
static uint32_t victim(token_cache *c, usec_t now) {
        for (size_t n = 0;; n++) {
                uint32_t i = (uint32_t) c->hand;
                entry *e = &c->entries[i];

                c->hand = (c->hand + 1) % c->max;
                if (!e->claims)
                        return i;
                /* After two full turns every referenced bit has been
                 * cleared, so this ends. */
                if (!e->referenced || now > e->deadline || n >= 2 * c->max) {
                        drop(c, i);
                        c->evictions++;
                        return i;
                }
                e->referenced = false;
        }
}

int token_cache_put(token_cache *c, const char *token, const token_claims *claims, usec_t deadline) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        token_claims *copy = NULL;
        uint32_t i;
        size_t b;
        int r;

        if (!c || !token || !claims)
                return -EINVAL;
        r = sha256_buffer(token, strlen(token), digest);
        if (r < 0)
                return r;
        r = token_claims_dup(claims, &copy);
        if (r < 0)
                return r;
        i = find(c, digest);
        if (i != NONE)
                drop(c, i);
        i = victim(c, now(CLOCK_REALTIME));
        b = bucket_of(c, digest);
        c->entries[i] = (entry) {
                .claims = copy,
                .deadline = deadline,
                .next = c->buckets[b],
                /* Unreferenced until used again: a token seen once goes
                 * before one in steady use. */
                .referenced = false,
        };
        memcpy(c->entries[i].digest, digest, SHA256_DIGEST_SIZE);
        c->buckets[b] = i;
        c->size++;
        return 0;
}

token_cache_stats token_cache_get_stats(const token_cache *c) {
        if (!c)
                return (token_cache_stats) {};
        return (token_cache_stats) { .hits = c->hits, .misses = c->misses, .evictions = c->evictions, .size = c->size };
}
