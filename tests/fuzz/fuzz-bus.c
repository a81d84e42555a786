/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus-reader.h"
#include "message.h"

/* The bus's stream reader on arbitrary bytes, fed in pieces whose sizes the
 * input chooses. Invariants, not just "no crash": the reader never holds more
 * than its limit, every message it gives out serialises to one line that
 * reads back equal, every rejected line has a reason and an answer that is
 * never a reply to a response, and once a line is over the limit the reader
 * says so for good. */
#define MAX_LINE 4096

static void check(bool condition) {
        if (!condition)
                abort();
}

static void drain(bus_reader *r, bool *overlong) {
        for (;;) {
                _cleanup_rt_message_ rt_message *m = NULL, *answer = NULL, *again = NULL;
                _cleanup_free_ char *line = NULL;
                bus_reader_error e;
                size_t n;
                int k;

                k = bus_reader_next(r, &m, &e);
                if (k == 0)
                        return;
                if (k == -EMSGSIZE) {
                        *overlong = true;
                        check(bus_reader_next(r, &m, &e) == -EMSGSIZE);
                        return;
                }
                check(!*overlong);
                if (k == 1) {
                        check(m);
                        k = bus_message_to_line(m, &line, &n);
                        /* Serialising may grow a line (escapes), never past what
                         * the writer refuses. */
                        check(k == 0 || k == -EMSGSIZE);
                        if (k == 0) {
                                check(n > 0 && line[n - 1] == '\n' && strchr(line, '\n') == line + n - 1);
                                check(rt_message_parse(line, n, NULL, &again, NULL) == 0);
                                check(rt_message_equal(m, again));
                        }
                        continue;
                }
                check(!m);
                check(k == -EBADMSG || k == -EINVAL || k == -ERANGE || k == -E2BIG || k == -ENOMEM);
                if (k == -ENOMEM)
                        return;
                check(e.error == k && e.code == 400 && e.reason);
                check(!e.has_id || e.id <= RT_MESSAGE_ID_MAX);
                k = bus_reader_answer_invalid(r, "runtime://example.com/0f8fad5b-d9cb-469f-a165-70867728950e",
                                              &answer);
                check(k == 0 || k == -EBADMSG || k == -EINVAL || k == -ENOMEM);
                check((k == 0) == !!answer);
                check(k != 0 || !e.is_response);
                if (answer) {
                        check(rt_message_get_type(answer) == RT_MESSAGE_RESPONSE);
                        check(rt_message_get_code(answer) == 400);
                        check(!e.has_id || rt_message_get_id(answer) == e.id);
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_bus_reader_ bus_reader *r = NULL;
        bool overlong = false;
        size_t chunk, off = 0;

        if (size < 1)
                return 0;
        check(bus_reader_new(MAX_LINE, &r) == 0);

        /* The first byte picks the piece size: 1 to 256 bytes. */
        chunk = (size_t) data[0] + 1;
        data++;
        size--;

        while (off < size) {
                size_t n = MIN(chunk, size - off), taken;

                taken = bus_reader_feed(r, data + off, n);
                check(taken <= n);
                check(bus_reader_pending(r) <= MAX_LINE + 1);
                off += taken;
                drain(r, &overlong);
                if (overlong)
                        break;
                /* Taking lines out always makes room, unless the line is too
                 * long, which drain() reported. */
                check(taken > 0 || bus_reader_pending(r) < MAX_LINE + 1);
        }
        return 0;
}
