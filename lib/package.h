/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the device's software manager parses about a package besides its
 * descriptor: where it comes from (the URL), what an HTTP server says
 * about a partial transfer (Content-Range), and what kind of file it is.
 * See docs/software-management.md. Pure functions, no I/O. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum package_type {
        PACKAGE_ELF,            /* an ELF executable */
        PACKAGE_SCRIPT,         /* "#!" interpreter script */
        PACKAGE_UNSUPPORTED,
} package_type;

/* Splits "http://host[:port]/path" (cleartext h2) or
 * "https://host[:port]/path". host is a numeric IPv4 address, a bracketed
 * IPv6 address or "localhost" (the h2 client resolves nothing). No user
 * info, query, fragment or whitespace. -EINVAL for anything else. */
int package_url_parse(const char *url, bool *ret_tls, char **ret_host, uint16_t *ret_port, char **ret_path);

/* Content-Range of a byte-range response, RFC 9110 14.4:
 * "bytes <first>-<last>/<size>" or "bytes star/<size>" (then *ret_first is
 * UINT64_MAX). last >= first and last < size are checked; -EINVAL else. */
int package_content_range_parse(const char *value, uint64_t *ret_first, uint64_t *ret_size);

/* From the first bytes of the file (n may be less than 4). */
package_type package_type_detect(const void *head, size_t n);
