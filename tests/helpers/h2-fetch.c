/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A tiny HTTP/2 fetcher on librethink's client, for interoperability
 * tests: prints "status N" and then the body on stdout.
 *
 *   h2-fetch [--ca PEM] [--server-name NAME] [--method M] [--data STRING]
 *            [--data-file PATH] [--header 'name: value']... [--timeout SEC]
 *            [--max-bytes N] [--body-only] URL
 *
 * URL is http://HOST:PORT/path (h2c, prior knowledge) or https://...
 * (TLS, verified against --ca); HOST numeric or localhost. With
 * --max-bytes, the request is cancelled after that many body bytes (for
 * endless streams) and that counts as success. Exit 0 when a response
 * arrived, 1 on any error (reason on stderr). */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "h2-client.h"
#include "log.h"
#include "tls.h"

typedef struct Fetch {
        sd_event *event;
        bool body_only, printed_status;
        size_t max_bytes, got;
        int error;
        H2ClientRequest *req;
} Fetch;

static int on_response(H2ClientRequest *req, int status, void *userdata) {
        Fetch *f = userdata;

        if (!f->body_only)
                printf("status %d\n", status);
        f->printed_status = true;
        return 0;
}

static int on_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        Fetch *f = userdata;

        if (f->max_bytes > 0 && f->got + size > f->max_bytes)
                size = f->max_bytes - f->got;
        fwrite(data, 1, size, stdout);
        fflush(stdout);
        f->got += size;
        if (f->max_bytes > 0 && f->got >= f->max_bytes) {
                (void) h2_client_request_cancel(req);
                f->error = 0;
                (void) sd_event_exit(f->event, 0);
        }
        return 0;
}

static void on_complete(H2ClientRequest *req, int error, void *userdata) {
        Fetch *f = userdata;

        f->error = error;
        if (error < 0)
                fprintf(stderr, "h2-fetch: request failed: %s\n", strerror(-error));
        (void) sd_event_exit(f->event, 0);
}

static void on_close(H2Client *c, int error, const char *reason, void *userdata) {
        Fetch *f = userdata;

        if (error < 0) {
                fprintf(stderr, "h2-fetch: connection closed: %s (%s)\n", strerror(-error), strna(reason));
                if (f->error == 0 && !f->printed_status)
                        f->error = error;
                (void) sd_event_exit(f->event, 0);
        }
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Fetch *f = userdata;

        fprintf(stderr, "h2-fetch: timeout\n");
        f->error = -ETIMEDOUT;
        (void) sd_event_exit(f->event, 0);
        return 0;
}

static int parse_url(const char *url, bool *ret_tls, char **ret_host, uint16_t *ret_port, const char **ret_path) {
        const char *p, *hostend, *slash;
        unsigned long port;

        if (strncmp(url, "http://", 7) == 0) {
                *ret_tls = false;
                p = url + 7;
        } else if (strncmp(url, "https://", 8) == 0) {
                *ret_tls = true;
                p = url + 8;
        } else
                return -EINVAL;

        slash = strchr(p, '/');
        *ret_path = slash ?: "/";
        if (!slash)
                slash = p + strlen(p);
        if (*p == '[') {
                hostend = memchr(p, ']', (size_t) (slash - p));
                if (!hostend)
                        return -EINVAL;
                hostend++;
        } else
                hostend = memchr(p, ':', (size_t) (slash - p)) ?: slash;
        if (*hostend == ':') {
                port = strtoul(hostend + 1, NULL, 10);
                if (port == 0 || port > 65535)
                        return -EINVAL;
        } else
                port = *ret_tls ? 443 : 80;
        *ret_host = strndup(p, (size_t) (hostend - p));
        if (!*ret_host)
                return -ENOMEM;
        *ret_port = (uint16_t) port;
        return 0;
}

static char *read_file(const char *path, size_t *ret_size) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0, a = 0;

        if (!f)
                return NULL;
        for (;;) {
                if (a - n < 65536) {
                        char *p = realloc(buf, a + 65536 + 1);
                        if (!p) {
                                free(buf);
                                fclose(f);
                                return NULL;
                        }
                        buf = p;
                        a += 65536;
                }
                size_t k = fread(buf + n, 1, a - n, f);
                n += k;
                if (k == 0)
                        break;
        }
        fclose(f);
        *ret_size = n;
        return buf;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "ca", required_argument, NULL, 'C' },
                { "server-name", required_argument, NULL, 'n' },
                { "method", required_argument, NULL, 'X' },
                { "data", required_argument, NULL, 'd' },
                { "data-file", required_argument, NULL, 'D' },
                { "header", required_argument, NULL, 'H' },
                { "timeout", required_argument, NULL, 't' },
                { "max-bytes", required_argument, NULL, 'm' },
                { "body-only", no_argument, NULL, 'b' },
                {},
        };
        const char *ca = NULL, *server_name = NULL, *method = NULL, *path;
        _cleanup_free_ char *host = NULL, *data = NULL;
        H2Header headers[32];
        char *header_store[32];
        size_t n_headers = 0, data_size = 0;
        unsigned long timeout = 30;
        static const H2ClientRequestCallbacks cb = {
                .on_response = on_response,
                .on_data = on_data,
                .on_complete = on_complete,
        };
        static const H2ClientCallbacks ccb = { .on_close = on_close };
        _cleanup_ssl_ctx_ SSL_CTX *tls = NULL;
        Fetch f = {};
        H2Client *client = NULL;
        uint16_t port;
        bool use_tls;
        int c, r;

        log_open();
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'C':
                        ca = optarg;
                        break;
                case 'n':
                        server_name = optarg;
                        break;
                case 'X':
                        method = optarg;
                        break;
                case 'd':
                        free(data);
                        data = strdup(optarg);
                        data_size = strlen(optarg);
                        break;
                case 'D':
                        free(data);
                        data = read_file(optarg, &data_size);
                        if (!data) {
                                fprintf(stderr, "h2-fetch: cannot read %s\n", optarg);
                                return 1;
                        }
                        break;
                case 'H': {
                        char *colon = strchr(optarg, ':');
                        if (!colon || n_headers >= ELEMENTSOF(headers)) {
                                fprintf(stderr, "h2-fetch: bad header %s\n", optarg);
                                return 2;
                        }
                        header_store[n_headers] = strndup(optarg, (size_t) (colon - optarg));
                        headers[n_headers] = (H2Header) { header_store[n_headers], colon + 1 + strspn(colon + 1, " ") };
                        n_headers++;
                        break;
                }
                case 't':
                        timeout = strtoul(optarg, NULL, 10);
                        break;
                case 'm':
                        f.max_bytes = strtoull(optarg, NULL, 10);
                        break;
                case 'b':
                        f.body_only = true;
                        break;
                default:
                        return 2;
                }
        if (optind + 1 != argc) {
                fprintf(stderr, "usage: h2-fetch [options] URL\n");
                return 2;
        }
        if (parse_url(argv[optind], &use_tls, &host, &port, &path) < 0) {
                fprintf(stderr, "h2-fetch: bad URL %s\n", argv[optind]);
                return 2;
        }
        if (use_tls) {
                if (!ca) {
                        fprintf(stderr, "h2-fetch: https needs --ca\n");
                        return 2;
                }
                r = tls_client_ctx_new(ca, &tls);
                if (r < 0) {
                        fprintf(stderr, "h2-fetch: cannot load CA %s: %s\n", ca, strerror(-r));
                        return 1;
                }
        }

        if (sd_event_default(&f.event) < 0)
                return 1;
        r = h2_client_new(f.event, host, port, tls, server_name, NULL, &ccb, &f, &client);
        if (r < 0) {
                fprintf(stderr, "h2-fetch: %s: %s\n", host, strerror(-r));
                return 1;
        }
        r = h2_client_request(client, method ?: (data ? "POST" : "GET"), path, headers, n_headers, data,
                              data_size, 0, &cb, &f, &f.req);
        if (r < 0) {
                fprintf(stderr, "h2-fetch: request: %s\n", strerror(-r));
                return 1;
        }
        (void) sd_event_add_time_relative(f.event, NULL, CLOCK_MONOTONIC, timeout * 1000000ULL, 0, on_timeout, &f);

        (void) sd_event_loop(f.event);

        h2_client_request_unref(f.req);
        h2_client_unref(client);
        for (size_t i = 0; i < n_headers; i++)
                free(header_store[i]);
        sd_event_unref(f.event);
        return f.error < 0 ? 1 : 0;
}
