/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* HTTP range requests and entity-tag conditions (RFC 9110 13 and 14) for
 * serving files: Range, If-None-Match and If-Range.
 *
 * Only a single byte range is served. RFC 9110 14.2 lets a server ignore a
 * Range header it does not want to serve, so everything that is not one
 * well-formed byte range (another unit, several ranges, bad syntax, a range
 * whose last position is before its first) is answered as if there were
 * no Range at all: 200 with the whole representation. Parsing never
 * allocates and never reads past the terminating NUL. */

#include <stdbool.h>
#include <stdint.h>

typedef enum http_range_result {
        HTTP_RANGE_NONE,          /* absent or ignored: 200, whole body */
        HTTP_RANGE_SATISFIABLE,   /* 206 with the range */
        HTTP_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes 0-0 and star/size */
} http_range_result;

typedef struct http_range {
        uint64_t first; /* inclusive */
        uint64_t last;  /* inclusive, < size */
} http_range;

/* Resolves a Range header value (NULL: none) against a representation of
 * size bytes: bytes=a-b (b clamped to size-1), bytes=a- and bytes=-n (the
 * last n bytes, all of them when n >= size). A first position at or past
 * the end, a suffix of 0 bytes, or any range of an empty representation is
 * unsatisfiable. *ret is written only for HTTP_RANGE_SATISFIABLE. */
http_range_result http_range_parse(const char *value, uint64_t size, http_range *ret);

/* If-None-Match (value NULL: absent) against our entity-tag etag, given
 * in its quoted form ("\"abc\""): true when the list is "*" or names etag,
 * weak comparison (W/ prefixes are ignored). A malformed list matches
 * nothing, so the full response is sent. */
bool http_if_none_match(const char *value, const char *etag);

/* If-Range: true when the Range header is to be honoured, i.e. the header
 * is absent or is a strong entity-tag equal to etag. A weak tag, a date
 * (we send no Last-Modified, so no date can validate) or garbage mean the
 * representation may have changed: ignore Range and send it all. */
bool http_if_range_match(const char *value, const char *etag);
