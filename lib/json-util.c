/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>

#include "json-util.h"

int json_scan_raw(const char *data, size_t size, unsigned max_depth, size_t *ret_offset) {
        bool in_string = false, escaped = false;
        unsigned depth = 0;

        for (size_t i = 0; i < size; i++) {
                char c = data[i];

                if (c == '\0') {
                        *ret_offset = i;
                        return -EBADMSG;
                }
                if (in_string) {
                        if (escaped)
                                escaped = false;
                        else if (c == '\\')
                                escaped = true;
                        else if (c == '"')
                                in_string = false;
                        continue;
                }
                if (c == '"')
                        in_string = true;
                else if (c == '{' || c == '[') {
                        if (++depth > max_depth) {
                                *ret_offset = i;
                                return -E2BIG;
                        }
                } else if ((c == '}' || c == ']') && depth > 0)
                        depth--;
        }
        return 0;
}

const char *json_error_reason(const json_error_t *e) {
        switch (json_error_code(e)) {
        case json_error_out_of_memory:
                return "out of memory";
        case json_error_stack_overflow:
                return "nested too deeply";
        case json_error_invalid_utf8:
                return "invalid UTF-8";
        case json_error_premature_end_of_input:
                return "unexpected end of input";
        case json_error_end_of_input_expected:
                return "trailing data after the JSON value";
        case json_error_null_character:
        case json_error_null_byte_in_key:
                return "\\u0000 in a string";
        case json_error_duplicate_key:
                return "duplicate object key";
        case json_error_numeric_overflow:
                return "number too big";
        default:
                return "syntax error";
        }
}
