/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What every strict JSON parser of the project does before and after
 * jansson. */

#include <jansson.h>
#include <stddef.h>

/* jansson recurses once per nesting level and allows 2048 of them, so the
 * depth is measured first, on the raw bytes, without recursion. Brackets
 * inside strings do not count; a backslash escapes the next byte, which is
 * all it takes to find the end of a JSON string. Returns 0, -EBADMSG for a
 * NUL byte or -E2BIG past max_depth, with the offset in *ret_offset.
 * Unbalanced input is left for jansson to report. */
int json_scan_raw(const char *data, size_t size, unsigned max_depth, size_t *ret_offset);

/* Our own words for jansson's errors: its texts quote the input. */
const char *json_error_reason(const json_error_t *e);
