/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "backoff.h"
#include "id.h"

/* Keeps the double arithmetic on E far from the edge of usec_t. */
#define BACKOFF_MAX_LIMIT (UINT64_C(1) << 62)

struct backoff {
        backoff_config config;
        usec_t exp;          /* E of the next delay */
        usec_t retry_after;  /* 0: none pending */
        unsigned attempts;
        backoff_random_t random;
        void *random_userdata;
};

static uint64_t default_random(void *userdata) {
        uint64_t v;

        if (id_random_u64(&v) >= 0)
                return v;
        /* Only if the DRBG cannot be seeded: some spread beats none. */
        return now(CLOCK_MONOTONIC) * UINT64_C(0x9e3779b97f4a7c15);
}

int backoff_new(const backoff_config *config, backoff **ret) {
        backoff_config c;
        backoff *b;

        if (!config || !ret)
                return -EINVAL;
        c = *config;
        if (c.multiplier == 0)
                c.multiplier = 2.0;
        if (c.floor == 0)
                c.floor = MAX(c.initial / 2, (usec_t) 1);
        if (c.retry_after_max == 0)
                c.retry_after_max = c.max;

        if (c.initial == 0 || c.max < c.initial || c.max > BACKOFF_MAX_LIMIT || c.floor > c.max ||
            c.retry_after_max > BACKOFF_MAX_LIMIT)
                return -EINVAL;
        /* Written so that NaN fails too. */
        if (!(c.multiplier > 1.0 && c.multiplier <= 16.0))
                return -EINVAL;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->config = c;
        b->exp = c.initial;
        b->random = default_random;
        *ret = b;
        return 0;
}

backoff *backoff_free(backoff *b) {
        free(b);
        return NULL;
}

void backoff_set_random(backoff *b, backoff_random_t random, void *userdata) {
        if (!b)
                return;
        b->random = random ?: default_random;
        b->random_userdata = random ? userdata : NULL;
}

/* Uniform in [0, n], by scaling rather than modulo: no bias worth the name,
 * and the extreme random values map to the extremes of the range, which
 * keeps injected test sources easy to reason about. */
static usec_t draw(backoff *b, usec_t n) {
        uint64_t r = b->random(b->random_userdata);
        return (usec_t) (((unsigned __int128) r * ((unsigned __int128) n + 1)) >> 64);
}

int backoff_next_delay(backoff *b, usec_t *ret) {
        usec_t d, half;

        if (!b || !ret)
                return -EINVAL;
        if (backoff_exhausted(b))
                return -ETIMEDOUT;

        half = b->exp / 2;
        d = half + draw(b, b->exp - half);
        d = MAX(d, b->config.floor);

        if (b->retry_after > 0) {
                usec_t ra = MIN(b->retry_after, b->config.retry_after_max);
                usec_t t = MIN(ra + draw(b, ra / 8), b->config.retry_after_max);

                d = MAX(d, t);
                b->retry_after = 0;
        }

        if ((double) b->exp * b->config.multiplier >= (double) b->config.max)
                b->exp = b->config.max;
        else
                b->exp = (usec_t) ((double) b->exp * b->config.multiplier);

        b->attempts++;
        *ret = d;
        return 0;
}

void backoff_reset(backoff *b) {
        if (!b)
                return;
        b->exp = b->config.initial;
        b->attempts = 0;
        b->retry_after = 0;
}

unsigned backoff_attempts(const backoff *b) {
        return b ? b->attempts : 0;
}

bool backoff_exhausted(const backoff *b) {
        return b && b->config.max_attempts > 0 && b->attempts >= b->config.max_attempts;
}

void backoff_set_retry_after(backoff *b, usec_t usec) {
        if (!b)
                return;
        b->retry_after = usec;
}
