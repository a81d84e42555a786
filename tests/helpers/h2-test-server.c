/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small HTTP/2 server on librethink for interoperability tests and
 * benchmarks:
 *
 *   GET  /hello        "hello\n"
 *   POST /echo         the request body back
 *   GET  /big?n=N      N bytes (byte i is i*7 mod 256)
 *   GET  /stream?n=N   N NDJSON lines {"n":i}, one per interval (0: forever)
 *   PUT  /upload       streamed body; answers "<bytes> <byte sum>"
 *   GET  /file         the --file contents (for benchmarks)
 *
 * Prints "PORT=<n>" on stdout once listening. SIGTERM/SIGINT: graceful
 * shutdown (GOAWAY, 1 s grace). */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "../unit/h2-test-util.h"
#include "h2-server.h"
#include "log.h"
#include "tls.h"

static char *file_data;
static size_t file_size;

static int request_handler(H2Request *req, void *userdata) {
        if (file_data && streq(h2_request_get_path(req), "/file"))
                return h2_request_respond(req, 200, NULL, 0, file_data, file_size);
        return h2_test_request_handler(req, userdata);
}

static void on_shutdown_done(H2Server *s, void *userdata) {
        (void) sd_event_exit(userdata, 0);
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        H2Server *s = userdata;

        if (h2_server_shutdown(s, 1000000, on_shutdown_done, sd_event_source_get_event(src)) == -EALREADY)
                (void) sd_event_exit(sd_event_source_get_event(src), 0);
        return 0;
}

static int read_file(const char *path) {
        FILE *f = fopen(path, "re");
        long n;

        if (!f)
                return -errno;
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -EIO;
        }
        file_data = malloc((size_t) n + 1);
        if (!file_data || fread(file_data, 1, (size_t) n, f) != (size_t) n) {
                fclose(f);
                return -EIO;
        }
        file_size = (size_t) n;
        fclose(f);
        return 0;
}

static void usage(void) {
        fprintf(stderr,
                "usage: h2-test-server [--address A] [--port N] [--cert PEM --key PEM]\n"
                "                      [--max-body BYTES] [--max-streams N] [--interval-ms N] [--file PATH]\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "address", required_argument, NULL, 'a' },
                { "port", required_argument, NULL, 'p' },
                { "cert", required_argument, NULL, 'c' },
                { "key", required_argument, NULL, 'k' },
                { "max-body", required_argument, NULL, 'b' },
                { "max-streams", required_argument, NULL, 's' },
                { "interval-ms", required_argument, NULL, 'i' },
                { "file", required_argument, NULL, 'f' },
                {},
        };
        const char *address = "127.0.0.1", *cert = NULL, *key = NULL;
        unsigned long port = 0;
        H2ServerConfig cfg;
        H2TestState state = { .stream_interval_usec = 100000 };
        _cleanup_ssl_ctx_ SSL_CTX *tls = NULL;
        sd_event *e = NULL;
        H2Server *s = NULL;
        sigset_t mask;
        int c, r;

        log_open();
        h2_server_config_init(&cfg);
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        address = optarg;
                        break;
                case 'p':
                        port = strtoul(optarg, NULL, 10);
                        break;
                case 'c':
                        cert = optarg;
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 'b':
                        cfg.max_request_body = strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        cfg.max_concurrent_streams = (uint32_t) strtoul(optarg, NULL, 10);
                        break;
                case 'i':
                        state.stream_interval_usec = strtoull(optarg, NULL, 10) * 1000ULL;
                        break;
                case 'f':
                        r = read_file(optarg);
                        if (r < 0) {
                                log_error_errno(r, "Failed to read %s: %m", optarg);
                                return 1;
                        }
                        break;
                default:
                        usage();
                        return 2;
                }
        if (port > 65535 || (!cert) != (!key)) {
                usage();
                return 2;
        }

        if (cert) {
                r = tls_server_ctx_new(cert, key, &tls);
                if (r < 0) {
                        log_error_errno(r, "Failed to set up TLS: %m");
                        return 1;
                }
        }

        if (sd_event_default(&e) < 0)
                return 1;
        state.event = e;
        r = h2_server_new(e, &cfg, tls, &s);
        if (r < 0) {
                log_error_errno(r, "Failed to create server: %m");
                return 1;
        }
        h2_server_set_request_handler(s, request_handler, &state);
        h2_server_set_headers_handler(s, h2_test_headers_handler, &state);
        r = h2_server_listen(s, address, (uint16_t) port);
        if (r < 0) {
                log_error_errno(r, "Failed to listen on %s:%lu: %m", address, port);
                return 1;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) sd_event_add_signal(e, NULL, SIGTERM, on_signal, s);
        (void) sd_event_add_signal(e, NULL, SIGINT, on_signal, s);

        printf("PORT=%d\n", h2_server_get_port(s));
        fflush(stdout);

        r = sd_event_loop(e);
        h2_server_free(s);
        sd_event_unref(e);
        free(file_data);
        return r < 0 ? 1 : 0;
}
