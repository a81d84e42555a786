/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Ed25519 keys and signatures on OpenSSL's EVP_PKEY.
 *
 * Package signature scheme (see docs/crypto.md): the publisher signs the
 * 32-byte SHA-256 digest of the package bytes with pure Ed25519, i.e. the
 * digest itself is the signed message (sign_digest()/verify_digest()).
 * Ed25519 in OpenSSL is one-shot over the whole message, and packages are
 * streamed to disk, so signing the digest keeps verification streaming.
 *
 * Encodings: private keys are PEM (PKCS#8, unencrypted, in a 0600 file);
 * public keys are raw 32 bytes, base64url without padding of those, or PEM
 * (SubjectPublicKeyInfo); signatures are 64 raw bytes.
 *
 * Errors: -EINVAL for malformed input (wrong lengths, NULL), -EBADMSG for
 * a signature that does not verify and for text that holds no key,
 * -EKEYREJECTED for a key that is not Ed25519, -ENOKEY for signing with a
 * public-only key. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "macro.h"
#include "sha256.h"

#define SIGN_SEED_SIZE 32
#define SIGN_PUBLIC_KEY_SIZE 32
#define SIGN_SIGNATURE_SIZE 64

typedef struct sign_key sign_key;

int sign_key_generate(sign_key **ret);
/* From the 32-byte private seed of RFC 8032. */
int sign_key_from_seed(const uint8_t seed[static SIGN_SEED_SIZE], sign_key **ret);
sign_key *sign_key_free(sign_key *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(sign_key *, sign_key_free);
#define _cleanup_sign_key_ _cleanup_(sign_key_freep)

bool sign_key_has_private(const sign_key *k);
/* The key for code that needs OpenSSL directly (TLS, JWT); still owned by k. */
EVP_PKEY *sign_key_get_pkey(const sign_key *k);

/* Private key files: written atomically with mode 0600 (see fileio.h). */
int sign_key_save_private_pem(const sign_key *k, const char *path);
int sign_key_load_private_pem(const char *path, sign_key **ret);
int sign_key_from_private_pem(const char *pem, size_t len, sign_key **ret);

int sign_key_get_public_raw(const sign_key *k, uint8_t ret[static SIGN_PUBLIC_KEY_SIZE]);
int sign_key_from_public_raw(const void *p, size_t n, sign_key **ret);
int sign_key_get_public_base64url(const sign_key *k, char **ret);
int sign_key_from_public_base64url(const char *s, sign_key **ret);
int sign_key_get_public_pem(const sign_key *k, char **ret);
int sign_key_from_public_pem(const char *pem, size_t len, sign_key **ret);
/* True if both hold the same public key. */
bool sign_key_public_equal(const sign_key *a, const sign_key *b);

int sign_buffer(const sign_key *k, const void *p, size_t n, uint8_t ret[static SIGN_SIGNATURE_SIZE]);
/* 0 if sig is a valid signature of p by k. */
int verify_buffer(const sign_key *k, const void *p, size_t n, const void *sig, size_t sig_len);

/* The package signature scheme: Ed25519 over the SHA-256 digest. */
int sign_digest(const sign_key *k, const uint8_t digest[static SHA256_DIGEST_SIZE],
                uint8_t ret[static SIGN_SIGNATURE_SIZE]);
int verify_digest(const sign_key *k, const uint8_t digest[static SHA256_DIGEST_SIZE], const void *sig,
                  size_t sig_len);
/* Hash fd from its current offset to EOF, then sign or verify the digest. */
int sign_fd(const sign_key *k, int fd, uint8_t ret[static SIGN_SIGNATURE_SIZE]);
int verify_fd(const sign_key *k, int fd, const void *sig, size_t sig_len);
