/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encoding.h"
#include "sha256.h"

#define SHA256_FD_CHUNK (64 * 1024)

struct sha256_ctx {
        EVP_MD_CTX *md;
};

int sha256_ctx_new(sha256_ctx **ret) {
        sha256_ctx *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->md = EVP_MD_CTX_new();
        if (!c->md) {
                free(c);
                return -ENOMEM;
        }
        if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
                sha256_ctx_free(c);
                return -EIO;
        }
        *ret = c;
        return 0;
}

sha256_ctx *sha256_ctx_free(sha256_ctx *c) {
        if (!c)
                return NULL;
        EVP_MD_CTX_free(c->md);
        free(c);
        return NULL;
}

int sha256_ctx_update(sha256_ctx *c, const void *p, size_t n) {
        if (!c || (!p && n > 0))
                return -EINVAL;
        if (n == 0)
                return 0;
        if (EVP_DigestUpdate(c->md, p, n) != 1)
                return -EIO;
        return 0;
}

int sha256_ctx_final(sha256_ctx *c, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        uint8_t d[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        if (!c)
                return -EINVAL;
        if (EVP_DigestFinal_ex(c->md, d, &n) != 1 || n != SHA256_DIGEST_SIZE)
                return -EIO;
        if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
                return -EIO;
        memcpy(ret, d, SHA256_DIGEST_SIZE);
        return 0;
}

int sha256_buffer(const void *p, size_t n, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        uint8_t d[EVP_MAX_MD_SIZE];
        unsigned k = 0;

        if (!p && n > 0)
                return -EINVAL;
        if (EVP_Digest(p ?: "", n, d, &k, EVP_sha256(), NULL) != 1 || k != SHA256_DIGEST_SIZE)
                return -EIO;
        memcpy(ret, d, SHA256_DIGEST_SIZE);
        return 0;
}

int64_t sha256_fd(int fd, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        _cleanup_sha256_ctx_ sha256_ctx *c = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        int64_t total = 0;
        int r;

        if (fd < 0)
                return -EBADF;

        r = sha256_ctx_new(&c);
        if (r < 0)
                return r;
        buf = malloc(SHA256_FD_CHUNK);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t k = read(fd, buf, SHA256_FD_CHUNK);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                r = sha256_ctx_update(c, buf, (size_t) k);
                if (r < 0)
                        return r;
                total += k;
        }

        r = sha256_ctx_final(c, ret);
        if (r < 0)
                return r;
        return total;
}

int64_t sha256_file(const char *path, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        _cleanup_close_ int fd = -1;

        if (!path)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return sha256_fd(fd, ret);
}

char *sha256_to_hex(const uint8_t digest[static SHA256_DIGEST_SIZE], char buf[static SHA256_HEX_SIZE]) {
        return hex_encode_buf(digest, SHA256_DIGEST_SIZE, buf);
}

int sha256_from_hex(const char *s, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        if (!s)
                return -EINVAL;
        return hex_decode_exact(s, SIZE_MAX, ret, SHA256_DIGEST_SIZE);
}
