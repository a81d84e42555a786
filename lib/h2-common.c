/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2-common.h"
#include "macro.h"

int h2_error_code_to_errno(uint32_t code) {
        switch (code) {
        case NGHTTP2_NO_ERROR:
                return 0;
        case NGHTTP2_REFUSED_STREAM:
                return -ECONNREFUSED;
        case NGHTTP2_CANCEL:
                return -ECANCELED;
        default:
                return -ECONNRESET;
        }
}

int h2_json_error_body(int code, const char *description, char **ret) {
        const char *d = description ?: "";
        size_t n = strlen(d);
        _cleanup_free_ char *esc = malloc(n * 6 + 1);
        char *p;
        int k;

        if (!esc)
                return -ENOMEM;
        p = esc;
        for (const unsigned char *c = (const unsigned char *) d; *c; c++) {
                if (*c == '"' || *c == '\\') {
                        *p++ = '\\';
                        *p++ = (char) *c;
                } else if (*c < 0x20) {
                        p += sprintf(p, "\\u%04x", *c);
                } else
                        *p++ = (char) *c;
        }
        *p = '\0';

        k = asprintf(ret, "{\"code\":%d,\"description\":\"%s\"}", code, esc);
        return k < 0 ? -ENOMEM : k;
}

static bool is_lower_token(const char *s) {
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if ((*s >= 'A' && *s <= 'Z') || *s == ' ' || *s == ':' || (unsigned char) *s < 0x21)
                        return false;
        return true;
}

char *h2_format_u64(uint64_t v, char buf[static 21]) {
        char tmp[21];
        size_t n = 0, i = 0;

        do {
                tmp[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        while (n > 0)
                buf[i++] = tmp[--n];
        buf[i] = '\0';
        return buf;
}

int h2_build_nva(const H2Header *pseudo, size_t n_pseudo, const H2Header *headers, size_t n_headers,
                 nghttp2_nv *buf, size_t n_buf, nghttp2_nv **ret, size_t *ret_n) {
        nghttp2_nv *nva = buf;
        size_t k = 0;

        if (n_pseudo + n_headers > n_buf || !buf) {
                nva = malloc(sizeof(nghttp2_nv) * (n_pseudo + n_headers + 1));
                if (!nva)
                        return -ENOMEM;
        }

        for (size_t i = 0; i < n_pseudo; i++)
                nva[k++] = (nghttp2_nv) {
                        .name = (uint8_t *) pseudo[i].name,
                        .value = (uint8_t *) pseudo[i].value,
                        .namelen = strlen(pseudo[i].name),
                        .valuelen = strlen(pseudo[i].value),
                        .flags = NGHTTP2_NV_FLAG_NONE,
                };
        for (size_t i = 0; i < n_headers; i++) {
                if (!is_lower_token(headers[i].name) || !headers[i].value) {
                        if (nva != buf)
                                free(nva);
                        return -EINVAL;
                }
                nva[k++] = (nghttp2_nv) {
                        .name = (uint8_t *) headers[i].name,
                        .value = (uint8_t *) headers[i].value,
                        .namelen = strlen(headers[i].name),
                        .valuelen = strlen(headers[i].value),
                        .flags = NGHTTP2_NV_FLAG_NONE,
                };
        }
        *ret = nva;
        *ret_n = k;
        return 0;
}
