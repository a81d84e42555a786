/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "fileio.h"
#include "log.h"
#include "pem.h"
#include "sign.h"

struct sign_key {
        EVP_PKEY *pkey;
        bool has_private;
};

static int sign_key_wrap(EVP_PKEY **pkey, bool has_private, sign_key **ret) {
        sign_key *k;

        if (EVP_PKEY_get_base_id(*pkey) != EVP_PKEY_ED25519)
                return -EKEYREJECTED;

        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->pkey = TAKE_PTR(*pkey);
        k->has_private = has_private;
        *ret = k;
        return 0;
}

sign_key *sign_key_free(sign_key *k) {
        if (!k)
                return NULL;
        /* EVP_PKEY_free() cleanses the key material. */
        EVP_PKEY_free(k->pkey);
        free(k);
        return NULL;
}

int sign_key_generate(sign_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;

        if (!ret)
                return -EINVAL;
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        if (!pkey)
                return openssl_error(-EIO, "Ed25519 key generation");
        return sign_key_wrap(&pkey, true, ret);
}

int sign_key_from_seed(const uint8_t seed[static SIGN_SEED_SIZE], sign_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;

        if (!seed || !ret)
                return -EINVAL;
        pkey = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, seed, SIGN_SEED_SIZE);
        if (!pkey)
                return openssl_error(-EINVAL, "Ed25519 private key import");
        return sign_key_wrap(&pkey, true, ret);
}

bool sign_key_has_private(const sign_key *k) {
        return k && k->has_private;
}

EVP_PKEY *sign_key_get_pkey(const sign_key *k) {
        return k ? k->pkey : NULL;
}

int sign_key_from_private_pem(const char *pem, size_t len, sign_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = pem_read_private_key(pem, len, &pkey);
        if (r < 0)
                return r;
        return sign_key_wrap(&pkey, true, ret);
}

int sign_key_load_private_pem(const char *path, sign_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = pem_load_private_key(path, &pkey);
        if (r < 0)
                return r;
        return sign_key_wrap(&pkey, true, ret);
}

int sign_key_save_private_pem(const sign_key *k, const char *path) {
        if (!k || !path)
                return -EINVAL;
        if (!k->has_private)
                return -ENOKEY;
        return pem_save_private_key(k->pkey, path);
}

int sign_key_get_public_raw(const sign_key *k, uint8_t ret[static SIGN_PUBLIC_KEY_SIZE]) {
        uint8_t buf[SIGN_PUBLIC_KEY_SIZE];
        size_t n = sizeof(buf);

        if (!k || !ret)
                return -EINVAL;
        if (EVP_PKEY_get_raw_public_key(k->pkey, buf, &n) != 1 || n != sizeof(buf))
                return openssl_error(-EIO, "Exporting Ed25519 public key");
        memcpy(ret, buf, sizeof(buf));
        return 0;
}

int sign_key_from_public_raw(const void *p, size_t n, sign_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;

        if (!p || !ret || n != SIGN_PUBLIC_KEY_SIZE)
                return -EINVAL;
        pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, p, n);
        if (!pkey)
                return openssl_error(-EINVAL, "Ed25519 public key import");
        return sign_key_wrap(&pkey, false, ret);
}

int sign_key_get_public_base64url(const sign_key *k, char **ret) {
        uint8_t raw[SIGN_PUBLIC_KEY_SIZE];
        int r;

        if (!ret)
                return -EINVAL;
        r = sign_key_get_public_raw(k, raw);
        if (r < 0)
                return r;
        return base64url_encode(raw, sizeof(raw), ret);
}

int sign_key_from_public_base64url(const char *s, sign_key **ret) {
        uint8_t raw[SIGN_PUBLIC_KEY_SIZE];
        int r;

        if (!s || !ret)
                return -EINVAL;
        r = base64url_decode_exact(s, SIZE_MAX, raw, sizeof(raw));
        if (r < 0)
                return r;
        return sign_key_from_public_raw(raw, sizeof(raw), ret);
}

int sign_key_get_public_pem(const sign_key *k, char **ret) {
        if (!k)
                return -EINVAL;
        return pem_write_public_key(k->pkey, ret);
}

int sign_key_from_public_pem(const char *pem, size_t len, sign_key **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = pem_read_public_key(pem, len, &pkey);
        if (r < 0)
                return r;
        return sign_key_wrap(&pkey, false, ret);
}

bool sign_key_public_equal(const sign_key *a, const sign_key *b) {
        if (!a || !b)
                return false;
        return EVP_PKEY_eq(a->pkey, b->pkey) == 1;
}

int sign_buffer(const sign_key *k, const void *p, size_t n, uint8_t ret[static SIGN_SIGNATURE_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        uint8_t sig[SIGN_SIGNATURE_SIZE];
        size_t siglen = sizeof(sig);

        if (!k || !ret || (!p && n > 0))
                return -EINVAL;
        if (!k->has_private)
                return -ENOKEY;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        /* Ed25519 takes no digest: it hashes internally, in one shot. */
        if (EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, k->pkey, NULL) != 1)
                return openssl_error(-EIO, "Ed25519 sign init");
        if (EVP_DigestSign(ctx, sig, &siglen, p ?: (const void *) "", n) != 1 ||
            siglen != sizeof(sig))
                return openssl_error(-EIO, "Ed25519 sign");
        memcpy(ret, sig, sizeof(sig));
        return 0;
}

int verify_buffer(const sign_key *k, const void *p, size_t n, const void *sig, size_t sig_len) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;

        if (!k || !sig || (!p && n > 0))
                return -EINVAL;
        if (sig_len != SIGN_SIGNATURE_SIZE)
                return -EINVAL;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, k->pkey, NULL) != 1)
                return openssl_error(-EIO, "Ed25519 verify init");
        /* Both 0 (mismatch) and <0 (e.g. a non-canonical S) mean the
         * signature is not valid for this message and key. */
        if (EVP_DigestVerify(ctx, sig, sig_len, p ?: (const void *) "", n) != 1)
                return openssl_error(-EBADMSG, "Ed25519 verify");
        return 0;
}

int sign_digest(const sign_key *k, const uint8_t digest[static SHA256_DIGEST_SIZE],
                uint8_t ret[static SIGN_SIGNATURE_SIZE]) {
        if (!digest)
                return -EINVAL;
        return sign_buffer(k, digest, SHA256_DIGEST_SIZE, ret);
}

int verify_digest(const sign_key *k, const uint8_t digest[static SHA256_DIGEST_SIZE], const void *sig,
                  size_t sig_len) {
        if (!digest)
                return -EINVAL;
        return verify_buffer(k, digest, SHA256_DIGEST_SIZE, sig, sig_len);
}

int sign_fd(const sign_key *k, int fd, uint8_t ret[static SIGN_SIGNATURE_SIZE]) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        int64_t r;

        if (!k || !ret)
                return -EINVAL;
        if (!k->has_private)
                return -ENOKEY;
        r = sha256_fd(fd, digest);
        if (r < 0)
                return (int) r;
        return sign_digest(k, digest, ret);
}

int verify_fd(const sign_key *k, int fd, const void *sig, size_t sig_len) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        int64_t r;

        if (!k || !sig || sig_len != SIGN_SIGNATURE_SIZE)
                return -EINVAL;
        r = sha256_fd(fd, digest);
        if (r < 0)
                return (int) r;
        return verify_digest(k, digest, sig, sig_len);
}
