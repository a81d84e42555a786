/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "pem.h"

int openssl_error(int r, const char *what) {
        unsigned long e = ERR_peek_last_error();
        char buf[256];

        ERR_error_string_n(e, buf, sizeof(buf));
        log_debug("%s failed: %s", what, e ? buf : "no OpenSSL error");
        ERR_clear_error();
        return r;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        return -1;
}

static int pem_bio(const char *pem, size_t len, BIO **ret) {
        BIO *bio;

        if (!pem || !ret)
                return -EINVAL;
        if (len == SIZE_MAX)
                len = strlen(pem);
        if (len > PEM_KEY_MAX_SIZE)
                return -EBADMSG;
        bio = BIO_new_mem_buf(pem, (int) len);
        if (!bio)
                return -ENOMEM;
        *ret = bio;
        return 0;
}

int pem_read_private_key(const char *pem, size_t len, EVP_PKEY **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        EVP_PKEY *pkey;
        int r;

        r = pem_bio(pem, len, &bio);
        if (r < 0)
                return r;
        pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
        if (!pkey)
                return openssl_error(-EBADMSG, "Reading PEM private key");
        *ret = pkey;
        return 0;
}

int pem_load_private_key(const char *path, EVP_PKEY **ret) {
        _cleanup_free_ char *pem = NULL;
        size_t n = 0;
        int r;

        if (!path || !ret)
                return -EINVAL;
        r = read_full_file_secure(path, PEM_KEY_MAX_SIZE, &pem, &n);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        r = pem_read_private_key(pem, n, ret);
        explicit_bzero_safe(pem, n);
        return r;
}

int pem_write_private_key(EVP_PKEY *pkey, BIO **ret_bio, char **ret_data, size_t *ret_size) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        char *data;
        long n;

        if (!pkey || !ret_bio || !ret_data || !ret_size)
                return -EINVAL;
        bio = BIO_new(BIO_s_secmem());
        if (!bio)
                return -ENOMEM;
        /* Without a cipher this writes unencrypted PKCS#8 ("PRIVATE KEY"). */
        if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1)
                return openssl_error(-EIO, "Writing PEM private key");
        n = BIO_get_mem_data(bio, &data);
        if (n <= 0)
                return openssl_error(-EIO, "Writing PEM private key");
        *ret_data = data;
        *ret_size = (size_t) n;
        *ret_bio = TAKE_PTR(bio);
        return 0;
}

int pem_save_private_key(EVP_PKEY *pkey, const char *path) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        char *data;
        size_t n;
        int r;

        if (!path)
                return -EINVAL;
        r = pem_write_private_key(pkey, &bio, &data, &n);
        if (r < 0)
                return r;
        return write_file_atomic(path, data, n, 0600);
}

int pem_read_public_key(const char *pem, size_t len, EVP_PKEY **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        EVP_PKEY *pkey;
        int r;

        r = pem_bio(pem, len, &bio);
        if (r < 0)
                return r;
        pkey = PEM_read_bio_PUBKEY_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
        if (!pkey)
                return openssl_error(-EBADMSG, "Reading PEM public key");
        *ret = pkey;
        return 0;
}

int pem_write_public_key(EVP_PKEY *pkey, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        char *data, *s;
        long n;

        if (!pkey || !ret)
                return -EINVAL;
        bio = BIO_new(BIO_s_mem());
        if (!bio)
                return -ENOMEM;
        if (PEM_write_bio_PUBKEY(bio, pkey) != 1)
                return openssl_error(-EIO, "Writing PEM public key");
        n = BIO_get_mem_data(bio, &data);
        if (n <= 0)
                return openssl_error(-EIO, "Writing PEM public key");
        s = strndup(data, (size_t) n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
