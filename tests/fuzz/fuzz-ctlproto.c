/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whatever the parsers accept must serialise to one line that parses back
 * to the same thing, so what the server answers a client is always what the
 * client (and the fuzzer) accepts. Framing must never step past the input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_ctl_request_ ctl_request *req = NULL, *req2 = NULL;
        _cleanup_ctl_reply_ ctl_reply *rep = NULL, *rep2 = NULL;
        _cleanup_free_ char *line = NULL;
        size_t len, consumed, off = 0;
        ctlproto_error e;

        while (ctlproto_next_line(data + off, size - off, 64, &len, &consumed) == 1) {
                if (len >= consumed || off + consumed > size || data[off + len] != '\n')
                        abort();
                off += consumed;
        }

        if (ctl_request_parse(data, size, &req, &e) >= 0) {
                if (ctl_request_format(req, &line) < 0 || strchr(line, '\n') != line + strlen(line) - 1)
                        abort();
                if (ctl_request_parse(line, strlen(line) - 1, &req2, NULL) < 0)
                        abort();
                if (ctl_request_get_id(req) != ctl_request_get_id(req2) ||
                    !streq(ctl_request_get_command(req), ctl_request_get_command(req2)) ||
                    !json_equal(ctl_request_get_args(req), ctl_request_get_args(req2)))
                        abort();
                free(line);
                line = NULL;
        } else {
                /* A rejected request always has a reason and a 4xx/5xx code,
                 * which must make a valid error reply. */
                if (e.code < 400 || e.code > 599 || e.description[0] == '\0')
                        abort();
                if (ctl_reply_new_error(e.has_id ? e.id : -1, e.code, e.description, &rep) < 0 ||
                    ctl_reply_format(rep, &line) < 0 ||
                    ctl_reply_parse(line, strlen(line) - 1, &rep2, NULL) < 0)
                        abort();
                rep = ctl_reply_free(rep);
                rep2 = ctl_reply_free(rep2);
                free(line);
                line = NULL;
        }

        if (ctl_reply_parse(data, size, &rep, NULL) >= 0) {
                if (ctl_reply_format(rep, &line) < 0 || ctl_reply_parse(line, strlen(line) - 1, &rep2, NULL) < 0)
                        abort();
                if (ctl_reply_get_id(rep) != ctl_reply_get_id(rep2) ||
                    ctl_reply_is_ok(rep) != ctl_reply_is_ok(rep2) ||
                    ctl_reply_get_error_code(rep) != ctl_reply_get_error_code(rep2) ||
                    !streq_ptr(ctl_reply_get_error_description(rep), ctl_reply_get_error_description(rep2)))
                        abort();
                if (ctl_reply_is_ok(rep) && !json_equal(ctl_reply_get_result(rep), ctl_reply_get_result(rep2)))
                        abort();
        }
        return 0;
}
