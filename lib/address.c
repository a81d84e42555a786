/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "log.h"

#define HOST_NAME_MAX_LEN 253
#define HOST_LABEL_MAX_LEN 63
#define UUID_LEN 36

struct rt_address {
        rt_address_scheme scheme;
        const char *authority;
        const char *path;
        /* The address, then the authority, each NUL-terminated. */
        char buf[];
};

/* Where the pieces of a valid address lie in the input. */
typedef struct address_parts {
        rt_address_scheme scheme;
        size_t len;
        size_t authority_start, authority_len;
        size_t path_start; /* first byte after the authority's "/", or len */
} address_parts;

static const char *const scheme_names[_RT_ADDRESS_SCHEME_MAX] = {
        [RT_ADDRESS_RUNTIME] = "runtime",
        [RT_ADDRESS_HYPERTY] = "hyperty",
        [RT_ADDRESS_USER] = "user",
        [RT_ADDRESS_CTXT] = "ctxt",
        [RT_ADDRESS_DOMAIN] = "domain",
};

const char *rt_address_scheme_to_string(rt_address_scheme scheme) {
        if (scheme < 0 || scheme >= _RT_ADDRESS_SCHEME_MAX)
                return NULL;
        return scheme_names[scheme];
}

rt_address_scheme rt_address_scheme_from_string(const char *s) {
        if (!s)
                return _RT_ADDRESS_SCHEME_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(scheme_names); i++)
                if (streq(s, scheme_names[i]))
                        return (rt_address_scheme) i;
        return _RT_ADDRESS_SCHEME_INVALID;
}

/* Formats the reason only when the caller wants one, so that
 * rt_address_is_valid() stays allocation-free. */
_printf_(3, 4) static int fail(char **ret_reason, int error, const char *format, ...) {
        char *reason = NULL;
        va_list ap;

        if (!ret_reason)
                return -abs(error);

        va_start(ap, format);
        if (vasprintf(&reason, format, ap) < 0)
                reason = NULL;
        va_end(ap);

        log_debug_errno(error, "Invalid address: %s", strna(reason));
        *ret_reason = reason;
        return -abs(error);
}

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_upper_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static bool is_unreserved(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c != '\0' && strchr("-._~", c));
}

static int hex_value(char c) {
        return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* Both checks round-trip through the C library's own formatter: what it
 * prints back is the one spelling we accept. */
static bool ip_literal_is_canonical(int family, const char *s, size_t n) {
        char in[INET6_ADDRSTRLEN], out[INET6_ADDRSTRLEN];
        unsigned char addr[sizeof(struct in6_addr)];

        if (n == 0 || n >= sizeof(in))
                return false;
        memcpy(in, s, n);
        in[n] = '\0';
        if (inet_pton(family, in, addr) != 1)
                return false;
        if (!inet_ntop(family, addr, out, sizeof(out)))
                return false;
        return streq(in, out);
}

static int validate_host(const char *s, size_t start, size_t n, bool allow_ip, char **ret_reason) {
        const char *h = s + start;
        size_t label_start = 0;
        bool last_label_numeric = true;

        if (n == 0)
                return fail(ret_reason, EINVAL, "missing host after '://'");

        if (h[0] == '[') {
                if (!allow_ip)
                        return fail(ret_reason, EINVAL, "an identity provider must be named by a host name, not an IP literal");
                if (h[n - 1] != ']' || n < 3)
                        return fail(ret_reason, EINVAL, "empty or unterminated IPv6 literal in authority");
                if (!ip_literal_is_canonical(AF_INET6, h + 1, n - 2))
                        return fail(ret_reason, EINVAL, "IPv6 literal is invalid or not in canonical form (RFC 5952)");
                return 0;
        }

        if (n > HOST_NAME_MAX_LEN)
                return fail(ret_reason, EINVAL, "host name longer than %d bytes", HOST_NAME_MAX_LEN);

        for (size_t i = 0; i <= n; i++) {
                char c = i < n ? h[i] : '.';

                if (c == '.') {
                        size_t label_len = i - label_start;

                        if (label_len == 0)
                                return fail(ret_reason, EINVAL, "host name has an empty label at offset %zu", start + i);
                        if (label_len > HOST_LABEL_MAX_LEN)
                                return fail(ret_reason, EINVAL, "host name label longer than %d bytes at offset %zu",
                                            HOST_LABEL_MAX_LEN, start + label_start);
                        if (h[label_start] == '-' || h[i - 1] == '-')
                                return fail(ret_reason, EINVAL, "host name label starts or ends with '-' at offset %zu",
                                            start + label_start);
                        if (i < n) {
                                label_start = i + 1;
                                last_label_numeric = true;
                        }
                        continue;
                }

                if (c >= 'A' && c <= 'Z')
                        return fail(ret_reason, EINVAL, "host name must be lowercase (offset %zu)", start + i);
                if (c == ':')
                        return fail(ret_reason, EINVAL, "a port is not allowed in the authority (offset %zu)", start + i);
                if (c == '@')
                        return fail(ret_reason, EINVAL, "user information is not allowed in the authority (offset %zu)", start + i);
                if (!is_lower_alnum(c) && c != '-')
                        return fail(ret_reason, EINVAL, "character not allowed in host name at offset %zu", start + i);
                if (!(c >= '0' && c <= '9'))
                        last_label_numeric = false;
        }

        /* RFC 1123: a top-level label is never all digits, so such a host can
         * only be meant as an IPv4 address. */
        if (last_label_numeric) {
                if (!allow_ip)
                        return fail(ret_reason, EINVAL, "an identity provider must be named by a host name, not an IP address");
                if (!ip_literal_is_canonical(AF_INET, h, n))
                        return fail(ret_reason, EINVAL, "invalid IPv4 address in authority");
        }

        return 0;
}

static bool is_canonical_uuid(const char *s, size_t n) {
        if (n != UUID_LEN)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

/* A path segment is RFC 3986 pchar only: no whitespace, controls, '?' or
 * '#'. Percent-encoding must be upper-case and only where needed, and may not
 * hide a control character or a '/', so a segment has one spelling and
 * decodes to nothing surprising. */
static int validate_segment(const char *s, size_t start, size_t n, char **ret_reason) {
        const char *seg = s + start;

        if (n == 0)
                return fail(ret_reason, EINVAL, "empty path segment at offset %zu", start);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return fail(ret_reason, EINVAL, "path segment '.' or '..' at offset %zu", start);

        for (size_t i = 0; i < n; i++) {
                char c = seg[i];

                if (c == '%') {
                        int v;

                        if (i + 2 >= n)
                                return fail(ret_reason, EINVAL, "truncated percent-encoding at offset %zu", start + i);
                        if (!is_upper_hex(seg[i + 1]) || !is_upper_hex(seg[i + 2]))
                                return fail(ret_reason, EINVAL, "percent-encoding must be '%%' and two upper-case hex digits at offset %zu",
                                            start + i);
                        v = hex_value(seg[i + 1]) * 16 + hex_value(seg[i + 2]);
                        if (v < 0x20 || v == 0x7f)
                                return fail(ret_reason, EINVAL, "percent-encoded control character at offset %zu", start + i);
                        if (v == '/')
                                return fail(ret_reason, EINVAL, "percent-encoded '/' at offset %zu", start + i);
                        if (v < 0x80 && is_unreserved((char) v))
                                return fail(ret_reason, EINVAL, "needless percent-encoding of an unreserved character at offset %zu",
                                            start + i);
                        i += 2;
                        continue;
                }

                if (is_unreserved(c) || (c != '\0' && strchr("!$&'()*+,;=:@", c)))
                        continue;

                if ((unsigned char) c <= 0x20 || c == 0x7f)
                        return fail(ret_reason, EINVAL, "whitespace or control character in path at offset %zu", start + i);
                return fail(ret_reason, EINVAL, "character not allowed in path at offset %zu", start + i);
        }

        return 0;
}

static int address_validate(const char *s, address_parts *ret_parts, char **ret_reason) {
        address_parts p = {};
        const char *sep, *slash;
        size_t scheme_len, n_segments = 0, last_segment_start = 0, last_segment_len = 0;
        char scheme[16];
        int r;

        if (!s)
                return fail(ret_reason, EINVAL, "no address");

        p.len = strnlen(s, RT_ADDRESS_MAX_LEN + 1);
        if (p.len > RT_ADDRESS_MAX_LEN)
                return fail(ret_reason, ENAMETOOLONG, "address longer than %d bytes", RT_ADDRESS_MAX_LEN);
        if (p.len == 0)
                return fail(ret_reason, EINVAL, "empty address");

        sep = strstr(s, "://");
        if (!sep)
                return fail(ret_reason, EINVAL, "not an address: missing '://' after the scheme");
        scheme_len = sep - s;
        if (scheme_len == 0 || scheme_len >= sizeof(scheme))
                return fail(ret_reason, EINVAL, "unknown scheme (expected runtime, hyperty, user, ctxt or domain)");
        memcpy(scheme, s, scheme_len);
        scheme[scheme_len] = '\0';
        p.scheme = rt_address_scheme_from_string(scheme);
        if (p.scheme < 0)
                return fail(ret_reason, EINVAL, "unknown scheme (expected runtime, hyperty, user, ctxt or domain)");

        p.authority_start = scheme_len + 3;
        slash = strchr(s + p.authority_start, '/');
        p.authority_len = (slash ? (size_t) (slash - s) : p.len) - p.authority_start;
        p.path_start = slash ? (size_t) (slash - s) + 1 : p.len;

        r = validate_host(s, p.authority_start, p.authority_len, p.scheme != RT_ADDRESS_USER, ret_reason);
        if (r < 0)
                return r;

        if (slash) {
                size_t start = p.path_start;

                for (size_t i = p.path_start; i <= p.len; i++) {
                        if (i < p.len && s[i] != '/')
                                continue;
                        r = validate_segment(s, start, i - start, ret_reason);
                        if (r < 0)
                                return r;
                        n_segments++;
                        last_segment_start = start;
                        last_segment_len = i - start;
                        start = i + 1;
                }
        }

        switch (p.scheme) {
        case RT_ADDRESS_RUNTIME:
        case RT_ADDRESS_HYPERTY:
                if (n_segments != 1)
                        return fail(ret_reason, EINVAL, "%s:// address needs exactly one path segment, the UUID", scheme);
                if (!is_canonical_uuid(s + last_segment_start, last_segment_len))
                        return fail(ret_reason, EINVAL, "path of a %s:// address must be a canonical lowercase UUID", scheme);
                break;
        case RT_ADDRESS_USER:
                if (n_segments != 1)
                        return fail(ret_reason, EINVAL, "user:// address needs exactly one path segment, the user id");
                break;
        case RT_ADDRESS_CTXT:
                if (n_segments == 0)
                        return fail(ret_reason, EINVAL, "ctxt:// address needs a resource path");
                break;
        default:
                break;
        }

        if (ret_parts)
                *ret_parts = p;
        return 0;
}

int rt_address_parse(const char *s, rt_address **ret, char **ret_reason) {
        address_parts p;
        rt_address *a;
        char *authority;
        int r;

        if (!ret)
                return -EINVAL;

        r = address_validate(s, &p, ret_reason);
        if (r < 0)
                return r;

        a = malloc(sizeof(rt_address) + p.len + 1 + p.authority_len + 1);
        if (!a)
                return fail(ret_reason, ENOMEM, "out of memory");

        a->scheme = p.scheme;
        memcpy(a->buf, s, p.len + 1);
        authority = a->buf + p.len + 1;
        memcpy(authority, s + p.authority_start, p.authority_len);
        authority[p.authority_len] = '\0';
        a->authority = authority;
        a->path = a->buf + p.path_start;

        *ret = a;
        return 0;
}

bool rt_address_is_valid(const char *s) {
        return address_validate(s, NULL, NULL) >= 0;
}

rt_address *rt_address_free(rt_address *a) {
        free(a);
        return NULL;
}

rt_address_scheme rt_address_get_scheme(const rt_address *a) {
        return a ? a->scheme : _RT_ADDRESS_SCHEME_INVALID;
}

const char *rt_address_get_authority(const rt_address *a) {
        return a ? a->authority : NULL;
}

const char *rt_address_get_path(const rt_address *a) {
        return a ? a->path : NULL;
}

const char *rt_address_to_string(const rt_address *a) {
        return a ? a->buf : NULL;
}

bool rt_address_equal(const rt_address *a, const rt_address *b) {
        if (!a || !b)
                return a == b;
        return streq(a->buf, b->buf);
}

/* Addresses have a single spelling and an authority never holds '/', so a
 * string prefix that ends on a segment boundary is an address prefix. */
static bool string_has_prefix(const char *address, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(address, prefix, n) == 0 && (address[n] == '\0' || address[n] == '/');
}

bool rt_address_has_prefix(const rt_address *a, const rt_address *prefix) {
        if (!a || !prefix)
                return false;
        return string_has_prefix(a->buf, prefix->buf);
}

int rt_address_string_has_prefix(const char *address, const char *prefix) {
        if (!rt_address_is_valid(address) || !rt_address_is_valid(prefix))
                return -EINVAL;
        return string_has_prefix(address, prefix);
}
