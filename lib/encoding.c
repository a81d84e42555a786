/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"

/* EVP_{En,De}codeBlock take int lengths; work in blocks well below that. A
 * multiple of 3 (encode) and of 4 (decode) keeps the blocks independent. */
#define ENCODE_CHUNK (3 * 4096)
#define DECODE_CHUNK (4 * 4096)

static const char hexchars[] = "0123456789abcdef";

static int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

static size_t input_length(const char *s, size_t len) {
        return len == SIZE_MAX ? strlen(s) : len;
}

char *hex_encode_buf(const void *p, size_t n, char *buf) {
        const uint8_t *x = p;

        for (size_t i = 0; i < n; i++) {
                buf[2 * i] = hexchars[x[i] >> 4];
                buf[2 * i + 1] = hexchars[x[i] & 15];
        }
        buf[2 * n] = '\0';
        return buf;
}

int hex_encode(const void *p, size_t n, char **ret) {
        char *s;

        if (!p && n > 0)
                return -EINVAL;
        if (n > (SIZE_MAX - 1) / 2)
                return -ERANGE;

        s = malloc(n * 2 + 1);
        if (!s)
                return -ENOMEM;
        *ret = hex_encode_buf(p, n, s);
        return 0;
}

static int hex_decode_into(const char *s, size_t len, uint8_t *out) {
        for (size_t i = 0; i < len / 2; i++) {
                int a = unhexchar(s[2 * i]), b = unhexchar(s[2 * i + 1]);

                if (a < 0 || b < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (a << 4 | b);
        }
        return 0;
}

int hex_decode(const char *s, size_t len, void **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        int r;

        if (!s)
                return -EINVAL;
        len = input_length(s, len);
        if (len % 2 != 0)
                return -EINVAL;

        buf = malloc(len / 2 + 1);
        if (!buf)
                return -ENOMEM;
        r = hex_decode_into(s, len, buf);
        if (r < 0)
                return r;
        buf[len / 2] = 0;

        if (ret_size)
                *ret_size = len / 2;
        *ret = TAKE_PTR(buf);
        return 0;
}

int hex_decode_exact(const char *s, size_t len, void *buf, size_t size) {
        _cleanup_free_ uint8_t *tmp = NULL;
        int r;

        if (!s || !buf)
                return -EINVAL;
        len = input_length(s, len);
        if (len % 2 != 0 || len / 2 != size)
                return -EINVAL;

        /* Decode aside first: on failure the caller's buffer stays as it was. */
        tmp = malloc(size + 1);
        if (!tmp)
                return -ENOMEM;
        r = hex_decode_into(s, len, tmp);
        if (r >= 0)
                memcpy(buf, tmp, size);
        OPENSSL_cleanse(tmp, size);
        return r;
}

/* Index in the base64url alphabet, or -1. */
static int b64url_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

int base64url_encode(const void *p, size_t n, char **ret) {
        const uint8_t *x = p;
        _cleanup_free_ char *s = NULL;
        size_t k = 0;

        if (!p && n > 0)
                return -EINVAL;
        if (n > (SIZE_MAX - 8) / 4 * 3)
                return -ERANGE;

        /* EVP_EncodeBlock writes padded blocks plus a NUL. */
        s = malloc((n + 2) / 3 * 4 + 1);
        if (!s)
                return -ENOMEM;

        for (size_t off = 0; off < n; off += ENCODE_CHUNK) {
                size_t m = MIN((size_t) ENCODE_CHUNK, n - off);
                int w = EVP_EncodeBlock((unsigned char *) s + k, x + off, (int) m);

                if (w < 0)
                        return -EIO;
                k += (size_t) w;
        }

        /* Only the last block can carry padding. */
        while (k > 0 && s[k - 1] == '=')
                k--;
        s[k] = '\0';
        for (size_t i = 0; i < k; i++)
                if (s[i] == '+')
                        s[i] = '-';
                else if (s[i] == '/')
                        s[i] = '_';

        *ret = TAKE_PTR(s);
        return 0;
}

/* Decodes validated base64url text of a valid length into out, which has
 * room for len / 4 * 3 + 3 bytes; returns the decoded size. */
static int b64url_decode_into(const char *s, size_t len, uint8_t *out, size_t *ret_size) {
        char block[DECODE_CHUNK];
        size_t k = 0;
        int r = 0;

        for (size_t off = 0; off < len; off += DECODE_CHUNK) {
                size_t m = MIN((size_t) DECODE_CHUNK, len - off), padded = m;
                int w;

                /* Back to the standard alphabet for OpenSSL. */
                for (size_t i = 0; i < m; i++) {
                        char c = s[off + i];
                        block[i] = c == '-' ? '+' : c == '_' ? '/' : c;
                }
                /* 'A' is zero bits: completing the last group with it lets
                 * EVP_DecodeBlock decode it, and the surplus bytes (all zero)
                 * are cut below. Unlike '=', it cannot be mistaken for
                 * anything but data by the decoder. */
                while (padded % 4 != 0)
                        block[padded++] = 'A';

                w = EVP_DecodeBlock(out + k, (const unsigned char *) block, (int) padded);
                if (w < 0 || (size_t) w != padded / 4 * 3) {
                        r = -EINVAL;
                        break;
                }
                k += m / 4 * 3 + (m % 4 == 0 ? 0 : m % 4 - 1);
        }

        OPENSSL_cleanse(block, sizeof(block));
        if (r < 0)
                return r;
        *ret_size = k;
        return 0;
}

static int b64url_validate(const char *s, size_t len) {
        int last;

        if (len % 4 == 1)
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if (b64url_value(s[i]) < 0)
                        return -EINVAL;
        if (len == 0)
                return 0;

        /* Bits of the last character that fall outside the data must be
         * zero, or two spellings would decode to the same bytes. */
        last = b64url_value(s[len - 1]);
        if (len % 4 == 2 && (last & 0x0f) != 0)
                return -EINVAL;
        if (len % 4 == 3 && (last & 0x03) != 0)
                return -EINVAL;
        return 0;
}

int base64url_decode(const char *s, size_t len, void **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n;
        int r;

        if (!s)
                return -EINVAL;
        len = input_length(s, len);
        r = b64url_validate(s, len);
        if (r < 0)
                return r;

        buf = malloc(len / 4 * 3 + 3 + 1);
        if (!buf)
                return -ENOMEM;
        r = b64url_decode_into(s, len, buf, &n);
        if (r < 0)
                return r;
        buf[n] = 0;

        if (ret_size)
                *ret_size = n;
        *ret = TAKE_PTR(buf);
        return 0;
}

int base64url_decode_exact(const char *s, size_t len, void *buf, size_t size) {
        _cleanup_free_ uint8_t *tmp = NULL;
        size_t n;
        int r;

        if (!s || !buf)
                return -EINVAL;
        len = input_length(s, len);
        r = b64url_validate(s, len);
        if (r < 0)
                return r;
        if (base64url_encoded_size(size) != len)
                return -EINVAL;

        tmp = malloc(len / 4 * 3 + 3);
        if (!tmp)
                return -ENOMEM;
        r = b64url_decode_into(s, len, tmp, &n);
        if (r >= 0 && n != size)
                r = -EINVAL;
        if (r >= 0)
                memcpy(buf, tmp, size);
        OPENSSL_cleanse(tmp, len / 4 * 3 + 3);
        return r;
}
