/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Types and helpers shared by h2-server and h2-client. */

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct H2Header {
        const char *name;  /* lower case, as HTTP/2 requires */
        const char *value;
} H2Header;

/* Maps an HTTP/2 error code (RST_STREAM, GOAWAY) to negative errno:
 * NO_ERROR 0, REFUSED_STREAM -ECONNREFUSED (safe to retry), CANCEL
 * -ECANCELED, others -ECONNRESET. */
int h2_error_code_to_errno(uint32_t code);

/* Builds {"code":N,"description":"..."} (with JSON escaping) into a new
 * string; returns its length or -ENOMEM. */
int h2_json_error_body(int code, const char *description, char **ret);

/* Builds an nghttp2 header vector for a response or request: the given
 * pseudo-headers first, then the headers. Names must be lower case;
 * -EINVAL otherwise. *ret is buf when it fits (n_buf entries), else an
 * allocation the caller frees (free it when *ret != buf). */
int h2_build_nva(const H2Header *pseudo, size_t n_pseudo, const H2Header *headers, size_t n_headers,
                 nghttp2_nv *buf, size_t n_buf, nghttp2_nv **ret, size_t *ret_n);

/* Decimal digits of v into buf (at least 21 bytes), NUL-terminated; no
 * printf on the per-request path. */
char *h2_format_u64(uint64_t v, char buf[static 21]);
