/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

/* Invariants, not just "no crash": a rejected input yields an error and no
 * message; an accepted one serialises to one line that parses back equal,
 * and a tighter depth limit never accepts what the default refuses. */
static void check(bool condition) {
        if (!condition)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const rt_message_limits tight = { .max_depth = 4, .max_size = 4096 };
        _cleanup_rt_message_ rt_message *m = NULL, *again = NULL, *reply = NULL, *m_tight = NULL;
        _cleanup_free_ char *reason = NULL, *json = NULL;
        int r, r_tight;

        r = rt_message_parse(data, size, NULL, &m, &reason);
        r_tight = rt_message_parse(data, size, &tight, &m_tight, NULL);
        check(r_tight < 0 || r == 0);

        if (r < 0) {
                check(!m);
                check(r == -EINVAL || r == -EBADMSG || r == -E2BIG || r == -EMSGSIZE || r == -ERANGE ||
                      r == -ENOMEM);
                check(reason || r == -ENOMEM);
                r = rt_message_new_error_for_invalid(data, size, NULL, NULL, 400, reason, &reply);
                check(r == 0 || r == -EBADMSG || r == -EINVAL || r == -ENOMEM);
                check((r == 0) == !!reply);
                if (reply) {
                        check(rt_message_get_type(reply) == RT_MESSAGE_RESPONSE);
                        check(rt_message_get_code(reply) == 400);
                        check(rt_message_to_json(reply, &json) == 0);
                }
                return 0;
        }

        check(m && !reason);
        check(rt_message_get_n_to(m) >= 1);
        check(rt_message_get_id(m) <= RT_MESSAGE_ID_MAX);

        check(rt_message_to_json(m, &json) == 0);
        check(!strchr(json, '\n'));
        check(rt_message_parse(json, strlen(json), NULL, &again, NULL) == 0);
        check(rt_message_equal(m, again));

        if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE) {
                int code = rt_message_get_code(m);
                check(code >= RT_MESSAGE_CODE_MIN && code <= RT_MESSAGE_CODE_MAX);
                check(rt_message_new_response(m, NULL, 200, NULL, NULL, &reply) == -EINVAL);
        } else {
                check(rt_message_new_response(m, NULL, 200, "OK", rt_message_get_value(m), &reply) == 0);
                check(rt_message_get_id(reply) == rt_message_get_id(m));
                check(streq(rt_message_get_to(reply, 0), rt_message_get_from(m)));
        }

        return 0;
}
