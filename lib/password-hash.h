/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Password hashes for the domain's end users: scrypt (RFC 7914, OpenSSL's
 * EVP_PBE_scrypt) with a random 16-byte salt and a 32-byte result, kept
 * in a self-describing string so that the cost can be raised later
 * without invalidating the hashes made before:
 *
 *   $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>
 *
 * salt and hash in base64url without padding (the strict form of
 * lib/encoding.h). A string is only accepted in exactly this spelling,
 * with a cost within the bounds below, so a stored hash cannot make a
 * check take more than PASSWORD_HASH_MEMORY_MAX of memory. */

#include <stdint.h>

#define PASSWORD_HASH_SALT_SIZE 16
#define PASSWORD_HASH_SIZE 32
#define PASSWORD_HASH_STRING_MAX 256
#define PASSWORD_HASH_LOG2_N_MIN 10
#define PASSWORD_HASH_LOG2_N_MAX 20
#define PASSWORD_HASH_R_MAX 32
#define PASSWORD_HASH_P_MAX 4
/* 128·r·N bytes: the scrypt working set. */
#define PASSWORD_HASH_MEMORY_MAX (256U * 1024U * 1024U)
/* What new hashes use: r = 8, p = 1 are RFC 7914's; N = 2^15 takes
 * 32 MiB and about a tenth of a second. */
#define PASSWORD_HASH_LOG2_N_DEFAULT 15
#define PASSWORD_HASH_R 8
#define PASSWORD_HASH_P 1

typedef struct password_hash_params {
        unsigned log2_n, r, p;
} password_hash_params;

/* Splits a hash string. -EINVAL for anything but the form above within
 * the bounds. Outputs are untouched on failure. */
int password_hash_parse(const char *encoded, password_hash_params *ret_params,
                        uint8_t ret_salt[static PASSWORD_HASH_SALT_SIZE], uint8_t ret_hash[static PASSWORD_HASH_SIZE]);

/* A hash string of password with a fresh salt, N = 2^log2_n (within the
 * bounds), r = PASSWORD_HASH_R, p = PASSWORD_HASH_P. */
int password_hash_new(const char *password, unsigned log2_n, char **ret);

/* 0 when password matches encoded (compared in constant time), -EACCES
 * when it does not, -EINVAL when encoded does not parse, -ENOMEM. */
int password_hash_verify(const char *password, const char *encoded);
