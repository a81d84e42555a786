/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Identifiers and secrets: random bytes, UUIDs, per-instance tokens.
 *
 * UUID strings are the canonical lowercase 8-4-4-4-12 form only. They are
 * part of addresses (runtime://<domain>/<uuid>, hyperty://...) that are
 * compared as strings, so accepting uppercase would give one entity two
 * addresses. Any version and variant is accepted on input (peers may use
 * v1 or v7); what we generate is always v4. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-id128.h>

/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" plus NUL. */
#define ID_UUID_STRING_MAX 37

/* Cryptographically strong random bytes (OpenSSL's DRBG); -EIO if it
 * cannot be seeded. */
int id_random_bytes(void *p, size_t n);
int id_random_u64(uint64_t *ret);

/* A new random (v4) UUID, as a string into buf. */
int id_uuid_new(char buf[static ID_UUID_STRING_MAX]);
bool id_uuid_is_valid(const char *s);
int id_uuid_from_string(const char *s, sd_id128_t *ret);
/* Writes the canonical form of id; returns buf. */
char *id_uuid_to_string(sd_id128_t id, char buf[static ID_UUID_STRING_MAX]);

/* A token for per-instance authentication: base64url (no padding) of
 * n_bytes random bytes. 16 bytes is the minimum accepted; 32 is what the
 * agent uses. */
#define ID_TOKEN_BYTES 32
int id_token_new(size_t n_bytes, char **ret);
/* Compares two tokens in time independent of where they differ. Only the
 * length leaks, which is public anyway (fixed by ID_TOKEN_BYTES). NULL
 * never equals anything. */
bool id_token_equal(const char *a, const char *b);
