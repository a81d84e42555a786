/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds arbitrary bytes, after the client connection preface, to a server
 * connection over a socketpair and runs the loop until the server has
 * dealt with them: nghttp2's frame parser is well fuzzed upstream; what is
 * exercised here is our side (header storage, limits, body handling,
 * stream and connection teardown). */

#include <sys/socket.h>

#include "h2-server.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Refills a streaming response a few times, then ends it. */
static void drain(H2Request *req, void *userdata) {
        static const char line[] = "{\"n\":1}\n";
        uintptr_t left = (uintptr_t) h2_request_get_userdata(req);

        if (left == 0) {
                (void) h2_request_end(req);
                return;
        }
        h2_request_set_userdata(req, (void *) (left - 1));
        (void) h2_request_write(req, line, sizeof(line) - 1);
}

static int handler(H2Request *req, void *userdata) {
        const char *path = h2_request_get_path(req);
        size_t n;
        const uint8_t *body = h2_request_get_body(req, &n);

        (void) h2_request_get_header(req, "content-type");
        (void) h2_request_get_query(req);
        if (path && streq(path, "/stream")) {
                int r = h2_request_start_response(req, 200, NULL, 0);
                if (r >= 0) {
                        h2_request_set_userdata(req, (void *) (uintptr_t) 4);
                        (void) h2_request_set_drain_handler(req, 0, drain, NULL);
                        (void) h2_request_write(req, body, n);
                        (void) h2_request_write(req, "x", 1);
                }
                return r;
        }
        return h2_request_respond(req, 200, (const H2Header[]) { { "x-fuzz", "1" } }, 1, body, n);
}

static int body_chunk(H2Request *req, const uint8_t *data, size_t size, void *userdata) {
        return 0;
}

static int headers_handler(H2Request *req, void *userdata) {
        const char *path = h2_request_get_path(req);

        if (path && streq(path, "/upload"))
                return h2_request_stream_body(req, body_chunk, NULL, NULL);
        if (path && streq(path, "/early"))
                return h2_request_respond_error(req, 403, "early \"answer\"\n");
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        H2ServerConfig cfg;
        sd_event *e = NULL;
        H2Server *s = NULL;
        int sv[2];
        uint8_t sink[65536];

        if (size > 65536)
                return 0;
        if (sd_event_new(&e) < 0)
                return 0;
        h2_server_config_init(&cfg);
        cfg.max_header_list_size = 1024;
        cfg.max_request_body = 4096;
        cfg.max_concurrent_streams = 8;
        cfg.request_timeout_usec = 0;
        cfg.idle_timeout_usec = 0;
        cfg.max_queued_bytes = 1024;
        if (h2_server_new(e, &cfg, NULL, &s) < 0)
                goto out;
        h2_server_set_request_handler(s, handler, NULL);
        h2_server_set_headers_handler(s, headers_handler, NULL);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                goto out;
        if (h2_server_adopt_connection(s, sv[0]) < 0) {
                close(sv[1]);
                goto out;
        }

        (void) !write(sv[1], preface, sizeof(preface) - 1);
        (void) !write(sv[1], data, size);
        (void) shutdown(sv[1], SHUT_WR);

        /* Bounded: enough for the server to read, answer and close. */
        for (int i = 0; i < 64 && h2_server_get_n_connections(s) > 0; i++) {
                (void) sd_event_run(e, 0);
                while (read(sv[1], sink, sizeof(sink)) > 0)
                        ;
        }
        close(sv[1]);
out:
        h2_server_free(s);
        sd_event_unref(e);
        return 0;
}
