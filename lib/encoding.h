/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Hex and base64url (RFC 4648 §5, without padding) codecs.
 *
 * Encoders produce the one canonical form: lowercase hex, base64url without
 * '='. The base64url decoder is strict, so each byte string has exactly one
 * accepted spelling and encode(decode(s)) == s for every accepted s: it
 * rejects '=', the standard alphabet's '+' and '/', whitespace, a length of
 * 1 mod 4, and non-zero unused bits in the last character (RFC 4648 §3.5).
 * Signatures, keys and tokens travel in this form and are compared as
 * strings, so a second spelling of the same bytes would be a bug magnet.
 *
 * The hex decoder accepts both cases (digests are often pasted from tools
 * that print uppercase) but rejects odd lengths and anything not a hex digit.
 *
 * Lengths: pass SIZE_MAX as the input length to use strlen(). Decoded
 * buffers are NUL-terminated for convenience (the NUL is not counted). */

#include <stddef.h>
#include <stdint.h>

/* Size of the encoded text, without the trailing NUL. */
static inline size_t hex_encoded_size(size_t n) {
        return n * 2;
}
static inline size_t base64url_encoded_size(size_t n) {
        return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/* Writes 2n lowercase hex digits and a NUL to buf; returns buf. */
char *hex_encode_buf(const void *p, size_t n, char *buf);
int hex_encode(const void *p, size_t n, char **ret);
int hex_decode(const char *s, size_t len, void **ret, size_t *ret_size);
/* Decodes into a caller buffer that must be exactly the decoded size:
 * -EINVAL if the text is invalid or decodes to another length. */
int hex_decode_exact(const char *s, size_t len, void *buf, size_t size);

int base64url_encode(const void *p, size_t n, char **ret);
int base64url_decode(const char *s, size_t len, void **ret, size_t *ret_size);
int base64url_decode_exact(const char *s, size_t len, void *buf, size_t size);
