/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* PEM encoding of OpenSSL keys, shared by the key modules (sign.h for
 * Ed25519 package signatures, token.h for ES256 tokens), which wrap the
 * EVP_PKEY in their own types and check its algorithm themselves.
 *
 * Private keys are written unencrypted as PKCS#8, atomically and 0600, and
 * pass through memory that is wiped; encrypted keys are refused rather
 * than prompting for a passphrase, since a daemon has no one to ask. */

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "macro.h"

/* A PEM key is a few hundred bytes; anything much larger is not one. */
#define PEM_KEY_MAX_SIZE (64 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);

/* Logs the newest OpenSSL error at debug level, empties the thread's error
 * queue (where TLS code would later mistake the entries for its own) and
 * returns r. */
int openssl_error(int r, const char *what);

/* len SIZE_MAX: strlen(pem). -EBADMSG when it is no (unencrypted) key. */
int pem_read_private_key(const char *pem, size_t len, EVP_PKEY **ret);
int pem_load_private_key(const char *path, EVP_PKEY **ret);
/* The PEM text in a secure-memory BIO that wipes itself when freed; data
 * points into the BIO. */
int pem_write_private_key(EVP_PKEY *pkey, BIO **ret_bio, char **ret_data, size_t *ret_size);
int pem_save_private_key(EVP_PKEY *pkey, const char *path);

int pem_read_public_key(const char *pem, size_t len, EVP_PKEY **ret);
int pem_write_public_key(EVP_PKEY *pkey, char **ret);
