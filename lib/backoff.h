/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Jittered exponential backoff for retries (registration, reconnects,
 * downloads).
 *
 * "Equal jitter": the n-th delay is drawn uniformly from [E/2, E], where
 * E = min(max, initial * multiplier^n). Half of it is fixed, so a retry is
 * never immediate and delays really grow; half is random, so a fleet of
 * devices that lost their domain at the same moment does not come back in
 * lockstep. Full jitter ([0, E]) spreads a little better but can draw
 * (near) zero again and again, which is a hot loop by another name. On top,
 * no delay is ever below the floor.
 *
 * A server's Retry-After makes the next delay at least that long (plus up
 * to 1/8 of it as jitter, for the same lockstep reason), bounded by a
 * separate hard cap so a bogus value cannot park the device for a year. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "time-util.h"

typedef struct backoff_config {
        usec_t initial;          /* E for the first delay; > 0 */
        usec_t max;              /* cap of E; >= initial, finite */
        usec_t floor;            /* minimum delay; 0 means max(initial / 2, 1us) */
        double multiplier;       /* growth of E per attempt; 0 means 2; else in (1, 16] */
        unsigned max_attempts;   /* delays handed out before giving up; 0 is unlimited */
        usec_t retry_after_max;  /* hard cap for Retry-After; 0 means max */
} backoff_config;

/* Returns a uniformly distributed 64-bit value. Tests inject their own to
 * make the draws deterministic; the default is OpenSSL's DRBG. */
typedef uint64_t (*backoff_random_t)(void *userdata);

typedef struct backoff backoff;

int backoff_new(const backoff_config *config, backoff **ret);
backoff *backoff_free(backoff *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(backoff *, backoff_free);
#define _cleanup_backoff_ _cleanup_(backoff_freep)

void backoff_set_random(backoff *b, backoff_random_t random, void *userdata);

/* The delay before the next attempt; counts the attempt. -ETIMEDOUT once
 * max_attempts delays have been handed out (ret is left untouched). */
int backoff_next_delay(backoff *b, usec_t *ret);
/* After a success: start again from initial, forget any Retry-After. */
void backoff_reset(backoff *b);
unsigned backoff_attempts(const backoff *b);
bool backoff_exhausted(const backoff *b);
/* Applies to the next delay only. 0 clears it. */
void backoff_set_retry_after(backoff *b, usec_t usec);
