/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* SHA-256 on OpenSSL's EVP interface: streaming, one-shot and over a file
 * descriptor. Package digests, ETags and the package signature scheme (see
 * sign.h) are built on it. */

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

#define SHA256_DIGEST_SIZE 32
/* Lowercase hex digest plus NUL. */
#define SHA256_HEX_SIZE (2 * SHA256_DIGEST_SIZE + 1)

typedef struct sha256_ctx sha256_ctx;

int sha256_ctx_new(sha256_ctx **ret);
sha256_ctx *sha256_ctx_free(sha256_ctx *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(sha256_ctx *, sha256_ctx_free);
#define _cleanup_sha256_ctx_ _cleanup_(sha256_ctx_freep)

int sha256_ctx_update(sha256_ctx *c, const void *p, size_t n);
/* Writes the digest and starts the context over, so one context can hash
 * one message after another. */
int sha256_ctx_final(sha256_ctx *c, uint8_t ret[static SHA256_DIGEST_SIZE]);

int sha256_buffer(const void *p, size_t n, uint8_t ret[static SHA256_DIGEST_SIZE]);

/* Hashes from the current offset of fd to end of file in chunks; returns
 * the number of bytes hashed (int64_t, as files outgrow int) or negative
 * errno: -EBADF for a bad descriptor, -EISDIR for a directory. */
int64_t sha256_fd(int fd, uint8_t ret[static SHA256_DIGEST_SIZE]);
int64_t sha256_file(const char *path, uint8_t ret[static SHA256_DIGEST_SIZE]);

/* Writes the lowercase hex form to buf; returns buf. */
char *sha256_to_hex(const uint8_t digest[static SHA256_DIGEST_SIZE], char buf[static SHA256_HEX_SIZE]);
/* Parses 64 hex digits (either case); -EINVAL otherwise. */
int sha256_from_hex(const char *s, uint8_t ret[static SHA256_DIGEST_SIZE]);
