/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "package.h"

static bool host_ok(const char *h) {
        struct in6_addr a6;
        struct in_addr a4;

        return streq(h, "localhost") || inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1;
}

int package_url_parse(const char *url, bool *ret_tls, char **ret_host, uint16_t *ret_port, char **ret_path) {
        _cleanup_free_ char *host = NULL, *path = NULL;
        const char *p, *hend, *slash;
        unsigned long port;
        bool tls;

        if (!url || !ret_tls || !ret_host || !ret_port || !ret_path)
                return -EINVAL;
        if (strncmp(url, "https://", 8) == 0) {
                tls = true;
                p = url + 8;
                port = 443;
        } else if (strncmp(url, "http://", 7) == 0) {
                tls = false;
                p = url + 7;
                port = 80;
        } else
                return -EINVAL;
        for (const char *c = url; *c; c++)
                if ((unsigned char) *c <= ' ' || (unsigned char) *c >= 0x7f || strchr("?#@\\", *c))
                        return -EINVAL;

        slash = strchr(p, '/');
        if (!slash)
                return -EINVAL;
        if (*p == '[') {
                hend = memchr(p, ']', slash - p);
                if (!hend)
                        return -EINVAL;
                host = strndup(p + 1, hend - p - 1);
                hend++;
                if (host && !strchr(host, ':'))
                        return -EINVAL; /* brackets are for IPv6 only */
        } else {
                hend = memchr(p, ':', slash - p) ?: slash;
                host = strndup(p, hend - p);
                if (host && strchr(host, ':'))
                        return -EINVAL;
        }
        if (!host)
                return -ENOMEM;
        if (!*host || !host_ok(host))
                return -EINVAL;
        if (*hend == ':') {
                const char *d = hend + 1;

                if (d == slash || *d == '0' || slash - d > 5)
                        return -EINVAL;
                port = 0;
                for (; d < slash; d++) {
                        if (*d < '0' || *d > '9')
                                return -EINVAL;
                        port = port * 10 + (unsigned long) (*d - '0');
                }
                if (port == 0 || port > 65535)
                        return -EINVAL;
        } else if (hend != slash)
                return -EINVAL;
        path = strdup(slash);
        if (!path)
                return -ENOMEM;

        *ret_tls = tls;
        *ret_host = TAKE_PTR(host);
        *ret_port = (uint16_t) port;
        *ret_path = TAKE_PTR(path);
        return 0;
}

/* Decimal digits only, no sign, no overflow; advances *p. */
static int parse_u64(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -EINVAL;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *p = s;
        *ret = v;
        return 0;
}

int package_content_range_parse(const char *value, uint64_t *ret_first, uint64_t *ret_size) {
        uint64_t first = UINT64_MAX, last = 0, size;
        const char *p = value;

        if (!value || !ret_first || !ret_size || strncmp(p, "bytes ", 6) != 0)
                return -EINVAL;
        p += 6;
        if (*p == '*')
                p++;
        else if (parse_u64(&p, &first) < 0 || *p++ != '-' || parse_u64(&p, &last) < 0 || last < first)
                return -EINVAL;
        if (*p++ != '/' || parse_u64(&p, &size) < 0 || *p != '\0')
                return -EINVAL;
        if (first != UINT64_MAX && last >= size)
                return -EINVAL;
        *ret_first = first;
        *ret_size = size;
        return 0;
}

package_type package_type_detect(const void *head, size_t n) {
        const uint8_t *h = head;

        if (h && n >= 4 && memcmp(h, "\177ELF", 4) == 0)
                return PACKAGE_ELF;
        if (h && n >= 2 && h[0] == '#' && h[1] == '!')
                return PACKAGE_SCRIPT;
        return PACKAGE_UNSUPPORTED;
}
