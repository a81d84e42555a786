/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the h2 unit suites: test certificates made at test time with
 * the openssl command line, and a helper that drives the event loop until
 * a condition holds. */

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <time.h>

typedef struct H2TestCerts {
        char dir[256];
        char ca[320], ca_key[320], other_ca[320], cert[320], key[320];
} H2TestCerts;

static inline int h2_test_rm(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static inline void h2_test_certs_remove(H2TestCerts *c) {
        if (c->dir[0])
                (void) nftw(c->dir, h2_test_rm, 8, FTW_DEPTH | FTW_PHYS);
        c->dir[0] = '\0';
}

/* A CA, a server certificate for localhost/127.0.0.1/::1 signed by it, and
 * an unrelated second CA. 0 on success. */
static inline int h2_test_certs_make(H2TestCerts *c) {
        char cmd[4096];

        const char *tmp = getenv("TMPDIR");

        snprintf(c->dir, sizeof(c->dir), "%s/h2-test-certs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(c->dir))
                return -1;
        snprintf(c->ca, sizeof(c->ca), "%s/ca.pem", c->dir);
        snprintf(c->ca_key, sizeof(c->ca_key), "%s/ca.key", c->dir);
        snprintf(c->other_ca, sizeof(c->other_ca), "%s/other-ca.pem", c->dir);
        snprintf(c->cert, sizeof(c->cert), "%s/server.pem", c->dir);
        snprintf(c->key, sizeof(c->key), "%s/server.key", c->dir);

        snprintf(cmd, sizeof(cmd),
                 "set -e; cd %s; "
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "  -keyout ca.key -out ca.pem -days 2 -subj /CN=rethink-test-ca 2>/dev/null; "
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "  -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=rethink-other-ca 2>/dev/null; "
                 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "  -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null; "
                 "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\n"
                 "basicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf; "
                 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "  -out server.pem -days 2 -extfile ext.cnf 2>/dev/null",
                 c->dir);
        if (system(cmd) != 0) {
                h2_test_certs_remove(c);
                return -1;
        }
        return 0;
}

static inline uint64_t h2_test_now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/* Runs the loop until *flag or a generous safety limit (a hang guard, not
 * a speed assertion). Returns *flag. */
static inline bool h2_test_run_until(sd_event *e, const bool *flag, unsigned limit_sec) {
        uint64_t deadline = h2_test_now_usec() + (uint64_t) limit_sec * 1000000ULL;

        while (!*flag && h2_test_now_usec() < deadline)
                if (sd_event_run(e, 100000) < 0)
                        break;
        return *flag;
}

/* Runs the loop for a while regardless of conditions. */
static inline void h2_test_run_for(sd_event *e, uint64_t usec) {
        uint64_t deadline = h2_test_now_usec() + usec;

        while (h2_test_now_usec() < deadline)
                (void) sd_event_run(e, deadline - h2_test_now_usec());
}

/* --- a test server's routes ------------------------------------------------------ */

#include "h2-server.h"

typedef struct H2TestState {
        sd_event *event;
        /* /stream */
        unsigned streams_started, streams_closed;
        int stream_close_error;
        uint64_t stream_interval_usec;
        /* /upload */
        size_t upload_bytes, upload_chunks;
        uint32_t upload_sum;
        bool upload_done;
        /* any request */
        unsigned requests;
        char last_path[256], last_query[256], last_authority[256], last_scheme[16], last_x_test[64];
} H2TestState;

typedef struct H2TestStream {
        H2TestState *state;
        H2Request *req;
        sd_event_source *timer;
        unsigned sent, limit;
} H2TestStream;

static inline void h2_test_stream_free(H2TestStream *st) {
        st->timer = sd_event_source_disable_unref(st->timer);
        h2_request_unref(st->req);
        free(st);
}

static inline void h2_test_stream_closed(H2Request *req, int error, void *userdata) {
        H2TestStream *st = userdata;

        st->state->streams_closed++;
        st->state->stream_close_error = error;
        h2_test_stream_free(st);
}

static inline int h2_test_stream_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        H2TestStream *st = userdata;
        char line[64];
        int n, r;

        n = snprintf(line, sizeof(line), "{\"n\":%u}\n", st->sent);
        r = h2_request_write(st->req, line, (size_t) n);
        if (r < 0)
                return 0;
        st->sent++;
        if (st->limit > 0 && st->sent >= st->limit) {
                (void) h2_request_end(st->req);
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        (void) sd_event_source_set_time_relative(s, st->state->stream_interval_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static inline unsigned h2_test_query_n(H2Request *req, unsigned dflt) {
        const char *q = h2_request_get_query(req);
        return q && strncmp(q, "n=", 2) == 0 ? (unsigned) strtoul(q + 2, NULL, 10) : dflt;
}

static inline int h2_test_upload_chunk(H2Request *req, const uint8_t *data, size_t size, void *userdata) {
        H2TestState *state = userdata;

        state->upload_bytes += size;
        state->upload_chunks++;
        for (size_t i = 0; i < size; i++)
                state->upload_sum += data[i];
        return 0;
}

static inline int h2_test_upload_end(H2Request *req, void *userdata) {
        H2TestState *state = userdata;
        char body[64];
        int n = snprintf(body, sizeof(body), "%zu %u", state->upload_bytes, state->upload_sum);

        state->upload_done = true;
        return h2_request_respond(req, 200, NULL, 0, body, (size_t) n);
}

static inline int h2_test_headers_handler(H2Request *req, void *userdata) {
        if (streq(h2_request_get_path(req), "/upload"))
                return h2_request_stream_body(req, h2_test_upload_chunk, h2_test_upload_end, userdata);
        return 0;
}

static inline int h2_test_request_handler(H2Request *req, void *userdata) {
        H2TestState *state = userdata;
        const char *path = h2_request_get_path(req);
        const char *x;

        state->requests++;
        snprintf(state->last_path, sizeof(state->last_path), "%s", strna(path));
        snprintf(state->last_query, sizeof(state->last_query), "%s", strna(h2_request_get_query(req)));
        snprintf(state->last_authority, sizeof(state->last_authority), "%s",
                 strna(h2_request_get_authority(req)));
        snprintf(state->last_scheme, sizeof(state->last_scheme), "%s", strna(h2_request_get_scheme(req)));
        x = h2_request_get_header(req, "X-Test");
        snprintf(state->last_x_test, sizeof(state->last_x_test), "%s", strna(x));

        if (streq(path, "/hello"))
                return h2_request_respond(req, 200,
                                          (const H2Header[]) { { "content-type", "text/plain" } }, 1,
                                          "hello\n", 6);
        if (streq(path, "/echo")) {
                size_t n;
                const uint8_t *b = h2_request_get_body(req, &n);
                return h2_request_respond(req, 200, NULL, 0, b, n);
        }
        if (streq(path, "/big")) {
                unsigned n = h2_test_query_n(req, 1024 * 1024);
                uint8_t *b = malloc(n ?: 1);
                int r;

                if (!b)
                        return -ENOMEM;
                for (unsigned i = 0; i < n; i++)
                        b[i] = (uint8_t) (i * 7);
                r = h2_request_respond(req, 200, NULL, 0, b, n);
                free(b);
                return r;
        }
        if (streq(path, "/stream")) {
                H2TestStream *st = calloc(1, sizeof(*st));
                int r;

                if (!st)
                        return -ENOMEM;
                st->state = state;
                st->req = h2_request_ref(req);
                st->limit = h2_test_query_n(req, 0);
                r = h2_request_start_response(req, 200,
                                              (const H2Header[]) { { "content-type", "application/x-ndjson" } },
                                              1);
                if (r >= 0)
                        r = sd_event_add_time_relative(state->event, &st->timer, CLOCK_MONOTONIC,
                                                       state->stream_interval_usec, 0,
                                                       h2_test_stream_tick, st);
                if (r >= 0)
                        r = h2_request_set_close_handler(req, h2_test_stream_closed, st);
                if (r < 0) {
                        h2_test_stream_free(st);
                        return r;
                }
                state->streams_started++;
                return 0;
        }
        if (streq(path, "/hang"))
                return 0; /* never answered: the client's timeout or reset ends it */
        if (streq(path, "/fail"))
                return -EIO;
        return h2_request_respond_error(req, 404, "not found");
}

/* --- client side ------------------------------------------------------------------ */

#include "h2-client.h"

typedef struct H2TestFetch {
        bool done, got_response;
        int error, status;
        uint8_t *body;
        size_t size, chunks;
        char content_type[64];
        bool stream; /* take chunks with on_data */
        H2ClientRequest *req;
} H2TestFetch;

static inline int h2_test_fetch_response(H2ClientRequest *req, int status, void *userdata) {
        H2TestFetch *f = userdata;
        f->got_response = true;
        f->status = status;
        snprintf(f->content_type, sizeof(f->content_type), "%s",
                 strna(h2_client_request_get_header(req, "content-type")));
        return 0;
}

static inline int h2_test_fetch_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        H2TestFetch *f = userdata;
        uint8_t *p = realloc(f->body, f->size + size + 1);

        if (!p)
                return -ENOMEM;
        memcpy(p + f->size, data, size);
        f->body = p;
        f->size += size;
        f->body[f->size] = 0;
        f->chunks++;
        return 0;
}

static inline void h2_test_fetch_complete(H2ClientRequest *req, int error, void *userdata) {
        H2TestFetch *f = userdata;

        f->done = true;
        f->error = error;
        f->status = h2_client_request_get_status(req);
        if (!f->stream) {
                size_t n;
                const uint8_t *b = h2_client_request_get_body(req, &n);
                free(f->body);
                f->body = malloc(n + 1);
                if (f->body) {
                        memcpy(f->body, b, n);
                        f->body[n] = 0;
                        f->size = n;
                }
        }
}

static inline const H2ClientRequestCallbacks *h2_test_fetch_callbacks(bool stream) {
        static const H2ClientRequestCallbacks buffered = {
                .on_response = h2_test_fetch_response,
                .on_complete = h2_test_fetch_complete,
        };
        static const H2ClientRequestCallbacks streaming = {
                .on_response = h2_test_fetch_response,
                .on_data = h2_test_fetch_data,
                .on_complete = h2_test_fetch_complete,
        };
        return stream ? &streaming : &buffered;
}

static inline int h2_test_fetch_start(H2Client *c, H2TestFetch *f, const char *method, const char *path,
                                      const void *body, size_t size, unsigned flags) {
        memset(f, 0, sizeof(*f));
        return h2_client_request(c, method, path, NULL, 0, body, size, flags, h2_test_fetch_callbacks(false),
                                 f, &f->req);
}

static inline void h2_test_fetch_done(H2TestFetch *f) {
        free(f->body);
        f->body = NULL;
        f->req = h2_client_request_unref(f->req);
}

typedef struct H2TestConn {
        bool goaway, closed;
        uint32_t goaway_code;
        char goaway_debug[128];
        int close_error;
        char close_reason[256];
} H2TestConn;

static inline void h2_test_conn_goaway(H2Client *c, uint32_t code, const char *debug, void *userdata) {
        H2TestConn *t = userdata;
        t->goaway = true;
        t->goaway_code = code;
        snprintf(t->goaway_debug, sizeof(t->goaway_debug), "%s", debug);
}

static inline void h2_test_conn_close(H2Client *c, int error, const char *reason, void *userdata) {
        H2TestConn *t = userdata;
        t->closed = true;
        t->close_error = error;
        snprintf(t->close_reason, sizeof(t->close_reason), "%s", strna(reason));
}

static inline const H2ClientCallbacks *h2_test_conn_callbacks(void) {
        static const H2ClientCallbacks cb = {
                .on_goaway = h2_test_conn_goaway,
                .on_close = h2_test_conn_close,
        };
        return &cb;
}
