/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <strings.h>

#include "http-range.h"

static const char *skip_ows(const char *p) {
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

/* 1*DIGIT; saturates at UINT64_MAX, which is past the end of any file, so
 * an absurdly large number behaves like any other number past the end. */
static const char *parse_digits(const char *p, uint64_t *ret) {
        uint64_t v = 0;
        const char *start = p;

        for (; *p >= '0' && *p <= '9'; p++) {
                unsigned d = (unsigned) (*p - '0');

                if (v > (UINT64_MAX - d) / 10)
                        v = UINT64_MAX;
                else
                        v = v * 10 + d;
        }
        if (p == start)
                return NULL;
        *ret = v;
        return p;
}

http_range_result http_range_parse(const char *value, uint64_t size, http_range *ret) {
        uint64_t first = 0, last = UINT64_MAX, suffix = 0;
        bool has_first, has_last;
        const char *p;

        if (!value || strncasecmp(value, "bytes=", 6) != 0)
                return HTTP_RANGE_NONE;
        p = skip_ows(value + 6);

        has_first = *p >= '0' && *p <= '9';
        if (has_first) {
                p = parse_digits(p, &first);
                if (!p || *p != '-')
                        return HTTP_RANGE_NONE;
                p++;
                has_last = *p >= '0' && *p <= '9';
                if (has_last) {
                        p = parse_digits(p, &last);
                        if (!p)
                                return HTTP_RANGE_NONE;
                }
        } else {
                if (*p != '-')
                        return HTTP_RANGE_NONE;
                p = parse_digits(p + 1, &suffix);
                if (!p)
                        return HTTP_RANGE_NONE;
                has_last = false;
        }

        /* One range only; a list (even a valid one) is ignored as a whole. */
        p = skip_ows(p);
        if (*p != '\0')
                return HTTP_RANGE_NONE;

        if (has_first) {
                if (has_last && last < first)
                        return HTTP_RANGE_NONE;
                if (first >= size)
                        return HTTP_RANGE_UNSATISFIABLE;
                if (last >= size)
                        last = size - 1;
        } else {
                if (suffix == 0 || size == 0)
                        return HTTP_RANGE_UNSATISFIABLE;
                first = suffix >= size ? 0 : size - suffix;
                last = size - 1;
        }

        if (ret)
                *ret = (http_range) { .first = first, .last = last };
        return HTTP_RANGE_SATISFIABLE;
}

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; returns the end of the tag
 * (past the closing quote) and the opaque-tag including its quotes, or
 * NULL if p does not start with one. */
static const char *parse_etag(const char *p, bool *ret_weak, const char **ret_tag, size_t *ret_len) {
        bool weak = false;
        const char *start;

        if (p[0] == 'W' && p[1] == '/') {
                weak = true;
                p += 2;
        }
        if (*p != '"')
                return NULL;
        start = p++;
        /* etagc = %x21 / %x23-7E / obs-text */
        while (*p && *p != '"') {
                unsigned char c = (unsigned char) *p;
                if (c < 0x21 || c == 0x7f)
                        return NULL;
                p++;
        }
        if (*p != '"')
                return NULL;
        p++;
        *ret_weak = weak;
        *ret_tag = start;
        *ret_len = (size_t) (p - start);
        return p;
}

static bool tag_equal(const char *tag, size_t len, const char *etag) {
        return etag && strlen(etag) == len && memcmp(tag, etag, len) == 0;
}

bool http_if_none_match(const char *value, const char *etag) {
        const char *p;
        bool matched = false;

        if (!value || !etag)
                return false;
        p = skip_ows(value);
        if (*p == '*')
                return *skip_ows(p + 1) == '\0';

        for (;;) {
                const char *tag;
                size_t len;
                bool weak;

                p = skip_ows(p);
                if (*p == ',') { /* empty list elements are allowed (RFC 9110 5.6.1) */
                        p++;
                        continue;
                }
                if (*p == '\0')
                        break;
                p = parse_etag(p, &weak, &tag, &len);
                if (!p)
                        return false;
                if (tag_equal(tag, len, etag))
                        matched = true;
                p = skip_ows(p);
                if (*p == ',')
                        p++;
                else if (*p != '\0')
                        return false;
        }
        return matched;
}

bool http_if_range_match(const char *value, const char *etag) {
        const char *p, *tag;
        size_t len;
        bool weak;

        if (!value)
                return true;
        p = parse_etag(skip_ows(value), &weak, &tag, &len);
        if (!p || weak || *skip_ows(p) != '\0')
                return false;
        return tag_equal(tag, len, etag);
}
