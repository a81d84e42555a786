/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Our HTTP/2 client against our server, in one process and one sd-event
 * loop, over cleartext h2 (prior knowledge) and TLS with ALPN h2. */

#include <errno.h>

#include "h2-client.h"
#include "h2-server.h"
#include "h2-test-util.h"
#include "tests.h"
#include "tls.h"

static H2TestCerts certs;
static SSL_CTX *server_tls, *client_tls;

typedef struct Fixture {
        sd_event *event;
        H2Server *server;
        H2Client *client;
        H2TestState state;
        H2TestConn conn;
        int port;
} Fixture;

static void fixture_setup(Fixture *f, bool tls, const H2ServerConfig *config) {
        int r;

        memset(f, 0, sizeof(*f));
        CU_ASSERT_FATAL(sd_event_new(&f->event) >= 0);
        f->state.event = f->event;
        f->state.stream_interval_usec = 10000;
        CU_ASSERT_FATAL(h2_server_new(f->event, config, tls ? server_tls : NULL, &f->server) >= 0);
        h2_server_set_request_handler(f->server, h2_test_request_handler, &f->state);
        h2_server_set_headers_handler(f->server, h2_test_headers_handler, &f->state);
        CU_ASSERT_FATAL(h2_server_listen(f->server, "127.0.0.1", 0) >= 0);
        f->port = h2_server_get_port(f->server);
        CU_ASSERT_FATAL(f->port > 0);
        r = h2_client_new(f->event, "127.0.0.1", (uint16_t) f->port, tls ? client_tls : NULL,
                          tls ? "localhost" : NULL, NULL, h2_test_conn_callbacks(), &f->conn, &f->client);
        CU_ASSERT_FATAL(r >= 0);
}

static void fixture_teardown(Fixture *f) {
        f->client = h2_client_unref(f->client);
        f->server = h2_server_free(f->server);
        /* Let deferred closes run before the loop goes. */
        h2_test_run_for(f->event, 1000);
        f->event = sd_event_unref(f->event);
}

static void do_round_trip(bool tls) {
        H2TestFetch get, post, missing;
        Fixture f;

        fixture_setup(&f, tls, NULL);
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/hello?a=1&b=2",
                                          (const H2Header[]) { { "x-test", "yes" } }, 1, NULL, 0, 0,
                                          h2_test_fetch_callbacks(false), &get, &get.req),
                        0);
        memset(&get, 0, sizeof(get) - sizeof(get.req));
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &post, "POST", "/echo", "ping pong", 9, 0), 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &missing, "GET", "/nope", NULL, 0, 0), 0);

        CU_ASSERT_TRUE(h2_test_run_until(f.event, &missing.done, 10));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &post.done, 10));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &get.done, 10));
        CU_ASSERT_TRUE(h2_client_is_connected(f.client));

        CU_ASSERT_EQUAL(get.error, 0);
        CU_ASSERT_EQUAL(get.status, 200);
        CU_ASSERT_EQUAL(get.size, 6);
        CU_ASSERT_STRING_EQUAL((char *) get.body, "hello\n");
        CU_ASSERT_STRING_EQUAL(get.content_type, "text/plain");
        CU_ASSERT_STRING_EQUAL(h2_client_request_get_header(get.req, "Content-Type"), "text/plain");

        CU_ASSERT_EQUAL(post.error, 0);
        CU_ASSERT_EQUAL(post.status, 200);
        CU_ASSERT_STRING_EQUAL((char *) post.body, "ping pong");

        CU_ASSERT_EQUAL(missing.error, 0);
        CU_ASSERT_EQUAL(missing.status, 404);
        CU_ASSERT_STRING_EQUAL(missing.content_type, "application/json");
        CU_ASSERT_STRING_EQUAL((char *) missing.body, "{\"code\":404,\"description\":\"not found\"}");

        /* What the server saw of the GET (the last request is not
         * necessarily the GET, so ask again alone). */
        h2_test_fetch_done(&get);
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/hello?a=1&b=2",
                                          (const H2Header[]) { { "x-test", "yes" } }, 1, NULL, 0, 0,
                                          h2_test_fetch_callbacks(false), &get, &get.req),
                        0);
        memset(&get, 0, sizeof(get) - sizeof(get.req));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &get.done, 10));
        CU_ASSERT_STRING_EQUAL(f.state.last_path, "/hello");
        CU_ASSERT_STRING_EQUAL(f.state.last_query, "a=1&b=2");
        CU_ASSERT_STRING_EQUAL(f.state.last_x_test, "yes");
        CU_ASSERT_STRING_EQUAL(f.state.last_scheme, tls ? "https" : "http");
        CU_ASSERT_PTR_NOT_NULL(strstr(f.state.last_authority, tls ? "localhost:" : "127.0.0.1:"));
        CU_ASSERT_EQUAL(f.state.requests, 4);
        CU_ASSERT_EQUAL(h2_server_get_n_connections(f.server), 1);

        h2_test_fetch_done(&get);
        h2_test_fetch_done(&post);
        h2_test_fetch_done(&missing);
        fixture_teardown(&f);
}

static void test_round_trip_h2c(void) {
        do_round_trip(false);
}

static void test_round_trip_tls(void) {
        do_round_trip(true);
}

static void test_bad_arguments(void) {
        H2ServerConfig cfg;
        sd_event *e = NULL;
        H2Server *s = NULL;
        H2Client *c = NULL;
        SSL_CTX *ctx = NULL;

        CU_ASSERT_FATAL(sd_event_new(&e) >= 0);
        CU_ASSERT_EQUAL(h2_server_new(NULL, NULL, NULL, &s), -EINVAL);
        h2_server_config_init(&cfg);
        cfg.max_concurrent_streams = 0;
        CU_ASSERT_EQUAL(h2_server_new(e, &cfg, NULL, &s), -EINVAL);
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_EQUAL(h2_server_new(e, NULL, NULL, &s), 0);
        /* No DNS: names are refused. */
        CU_ASSERT_EQUAL(h2_server_listen(s, "example.org", 0), -EINVAL);
        CU_ASSERT_EQUAL(h2_server_get_port(s), -EBADF);
        CU_ASSERT_EQUAL(h2_server_listen(s, "::1", 0), 0);
        CU_ASSERT_TRUE(h2_server_get_port(s) > 0);
        CU_ASSERT_EQUAL(h2_server_listen(s, "::1", 0), -EBUSY);
        s = h2_server_free(s);

        CU_ASSERT_EQUAL(h2_client_new(e, "example.org", 443, NULL, NULL, NULL, NULL, NULL, &c), -EADDRNOTAVAIL);
        CU_ASSERT_EQUAL(h2_client_new(e, "127.0.0.1", 0, NULL, NULL, NULL, NULL, NULL, &c), -EINVAL);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_EQUAL(h2_client_new(e, "127.0.0.1", 1, NULL, NULL, NULL, NULL, NULL, &c), 0);
        CU_ASSERT_EQUAL(h2_client_request(c, "GET", "no-slash", NULL, 0, NULL, 0, 0, NULL, NULL, NULL), -EINVAL);
        CU_ASSERT_EQUAL(h2_client_request(c, "GET", "/", (const H2Header[]) { { "Upper", "x" } }, 1, NULL, 0, 0,
                                          NULL, NULL, NULL),
                        -EINVAL);
        c = h2_client_unref(c);

        CU_ASSERT_EQUAL(tls_server_ctx_new("/nonexistent/cert.pem", certs.key, &ctx), -ENOENT);
        CU_ASSERT_EQUAL(tls_server_ctx_new(certs.cert, "/nonexistent/key.pem", &ctx), -ENOENT);
        /* A key that does not belong to the certificate. */
        CU_ASSERT_EQUAL(tls_server_ctx_new(certs.cert, certs.ca_key, &ctx), -EBADMSG);
        CU_ASSERT_EQUAL(tls_client_ctx_new("/nonexistent/ca.pem", &ctx), -ENOENT);
        CU_ASSERT_EQUAL(tls_client_ctx_new(certs.key, &ctx), -EBADMSG);
        CU_ASSERT_PTR_NULL(ctx);
        sd_event_unref(e);
}

static void test_connect_refused(void) {
        H2TestConn conn = {};
        H2TestFetch f;
        sd_event *e = NULL;
        H2Client *c = NULL;
        H2Server *s = NULL;
        int port;

        CU_ASSERT_FATAL(sd_event_new(&e) >= 0);
        /* A port nobody listens on: bind one, read it, close it. */
        CU_ASSERT_FATAL(h2_server_new(e, NULL, NULL, &s) >= 0);
        CU_ASSERT_FATAL(h2_server_listen(s, "127.0.0.1", 0) >= 0);
        port = h2_server_get_port(s);
        s = h2_server_free(s);

        CU_ASSERT_FATAL(h2_client_new(e, "127.0.0.1", (uint16_t) port, NULL, NULL, NULL, h2_test_conn_callbacks(),
                                      &conn, &c) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c, &f, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(e, &conn.closed, 10));
        CU_ASSERT_EQUAL(conn.close_error, -ECONNREFUSED);
        CU_ASSERT_TRUE(f.done);
        CU_ASSERT_EQUAL(f.error, -ECONNABORTED);
        CU_ASSERT_FALSE(h2_client_is_usable(c));
        CU_ASSERT_EQUAL(h2_client_request(c, "GET", "/", NULL, 0, NULL, 0, 0, NULL, NULL, NULL), -ENOTCONN);
        h2_test_fetch_done(&f);
        h2_client_unref(c);
        sd_event_unref(e);
}


static void do_large_bodies(bool tls) {
        const size_t n = 5 * 1024 * 1024 + 123;
        H2ServerConfig cfg;
        H2TestFetch up, down;
        uint8_t *data;
        Fixture f;
        char path[64];
        bool ok = true;

        h2_server_config_init(&cfg);
        cfg.max_request_body = 8 * 1024 * 1024;
        fixture_setup(&f, tls, &cfg);

        data = malloc(n);
        CU_ASSERT_FATAL(data != NULL);
        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t) (i * 31 + (i >> 12));

        /* Far beyond the 64 KiB default windows: both directions need
         * WINDOW_UPDATEs and deferred data to get through. */
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &up, "POST", "/echo", data, n, 0), 0);
        snprintf(path, sizeof(path), "/big?n=%zu", n);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &down, "GET", path, NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &up.done, 60));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &down.done, 60));

        CU_ASSERT_EQUAL(up.error, 0);
        CU_ASSERT_EQUAL(up.status, 200);
        CU_ASSERT_EQUAL(up.size, n);
        CU_ASSERT(up.size == n && memcmp(up.body, data, n) == 0);

        CU_ASSERT_EQUAL(down.error, 0);
        CU_ASSERT_EQUAL(down.status, 200);
        CU_ASSERT_EQUAL(down.size, n);
        for (size_t i = 0; i < down.size && ok; i++)
                ok = down.body[i] == (uint8_t) (i * 7);
        CU_ASSERT_TRUE(ok);

        free(data);
        h2_test_fetch_done(&up);
        h2_test_fetch_done(&down);
        fixture_teardown(&f);
}

static void test_large_bodies_h2c(void) {
        do_large_bodies(false);
}

static void test_large_bodies_tls(void) {
        do_large_bodies(true);
}

typedef struct Uploader {
        H2ClientRequest *req;
        unsigned left;
        uint32_t sum;
        size_t bytes;
} Uploader;

static int upload_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Uploader *u = userdata;
        uint8_t chunk[3000];

        for (size_t i = 0; i < sizeof(chunk); i++) {
                chunk[i] = (uint8_t) (i + u->left);
                u->sum += chunk[i];
        }
        u->bytes += sizeof(chunk);
        CU_ASSERT_EQUAL(h2_client_request_write(u->req, chunk, sizeof(chunk)), 0);
        CU_ASSERT_TRUE(h2_client_request_get_queued(u->req) >= sizeof(chunk));
        if (--u->left == 0) {
                CU_ASSERT_EQUAL(h2_client_request_end(u->req), 0);
                CU_ASSERT_EQUAL(h2_client_request_write(u->req, "x", 1), -EPIPE);
                return 0;
        }
        (void) sd_event_source_set_time_relative(s, 2000);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void test_streaming_request_body(void) {
        sd_event_source *timer = NULL;
        Uploader u = { .left = 40 };
        H2TestFetch up;
        char expect[64];
        Fixture f;

        fixture_setup(&f, false, NULL);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &up, "PUT", "/upload", "", 0, H2_CLIENT_REQUEST_STREAM_BODY),
                        0);
        u.req = up.req;
        CU_ASSERT_FATAL(sd_event_add_time_relative(f.event, &timer, CLOCK_MONOTONIC, 2000, 0, upload_tick, &u) >= 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &up.done, 30));
        CU_ASSERT_EQUAL(up.error, 0);
        CU_ASSERT_EQUAL(up.status, 200);
        CU_ASSERT_TRUE(f.state.upload_done);
        /* The handler saw the body in pieces, not at once. */
        CU_ASSERT_TRUE(f.state.upload_chunks > 1);
        CU_ASSERT_EQUAL(f.state.upload_bytes, u.bytes);
        snprintf(expect, sizeof(expect), "%zu %u", u.bytes, u.sum);
        CU_ASSERT_STRING_EQUAL((char *) up.body, expect);

        sd_event_source_disable_unref(timer);
        h2_test_fetch_done(&up);
        fixture_teardown(&f);
}

static void do_long_lived_stream(bool tls) {
        H2TestFetch stream, small[5];
        Fixture f;
        const H2ClientRequestCallbacks *cb = h2_test_fetch_callbacks(true);

        fixture_setup(&f, tls, NULL);
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/stream", NULL, 0, NULL, 0, 0, cb, &stream, &stream.req),
                        0);
        /* Wait until the stream carries data, then run other requests
         * next to it on the same connection. */
        while (stream.chunks < 3 && !stream.done)
                if (sd_event_run(f.event, 100000) < 0)
                        break;
        CU_ASSERT_TRUE(stream.got_response);
        CU_ASSERT_STRING_EQUAL(stream.content_type, "application/x-ndjson");
        CU_ASSERT_FALSE(stream.done);

        for (size_t i = 0; i < ELEMENTSOF(small); i++)
                CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &small[i], "GET", "/hello", NULL, 0, 0), 0);
        for (size_t i = 0; i < ELEMENTSOF(small); i++) {
                CU_ASSERT_TRUE(h2_test_run_until(f.event, &small[i].done, 10));
                CU_ASSERT_EQUAL(small[i].status, 200);
                CU_ASSERT_EQUAL(small[i].error, 0);
        }
        CU_ASSERT_FALSE(stream.done);
        CU_ASSERT_EQUAL(f.state.streams_started, 1);
        CU_ASSERT_EQUAL(f.state.streams_closed, 0);

        /* More chunks keep coming after the others are done. */
        size_t before = stream.size;
        while (stream.size < before + 20 && !stream.done)
                if (sd_event_run(f.event, 100000) < 0)
                        break;
        CU_ASSERT_TRUE(stream.size >= before + 20);
        CU_ASSERT_EQUAL(strncmp((char *) stream.body, "{\"n\":0}\n{\"n\":1}\n", 16), 0);

        /* The client goes away from the stream: the server's handler hears
         * of it and drops its references (ASan checks the rest). */
        CU_ASSERT_EQUAL(h2_client_request_cancel(stream.req), 0);
        CU_ASSERT_EQUAL(h2_client_request_cancel(stream.req), -EALREADY);
        bool closed = false;
        uint64_t deadline = h2_test_now_usec() + 10000000;
        while (!(closed = f.state.streams_closed == 1) && h2_test_now_usec() < deadline)
                (void) sd_event_run(f.event, 100000);
        CU_ASSERT_TRUE(closed);
        CU_ASSERT_EQUAL(f.state.stream_close_error, -ECANCELED);
        CU_ASSERT_FALSE(stream.done); /* no callback after cancel */

        /* The connection still serves. */
        h2_test_fetch_done(&small[0]);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &small[0], "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &small[0].done, 10));
        CU_ASSERT_EQUAL(small[0].status, 200);

        for (size_t i = 0; i < ELEMENTSOF(small); i++)
                h2_test_fetch_done(&small[i]);
        h2_test_fetch_done(&stream);
        fixture_teardown(&f);
}

static void test_long_lived_stream_h2c(void) {
        do_long_lived_stream(false);
}

static void test_long_lived_stream_tls(void) {
        do_long_lived_stream(true);
}

static void test_finite_stream(void) {
        H2TestFetch stream;
        Fixture f;

        fixture_setup(&f, false, NULL);
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/stream?n=5", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(true), &stream, &stream.req),
                        0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &stream.done, 10));
        CU_ASSERT_EQUAL(stream.error, 0);
        CU_ASSERT_STRING_EQUAL((char *) stream.body, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n");
        h2_test_run_for(f.event, 10000);
        CU_ASSERT_EQUAL(f.state.streams_closed, 1);
        CU_ASSERT_EQUAL(f.state.stream_close_error, 0);
        h2_test_fetch_done(&stream);
        fixture_teardown(&f);
}

/* Streaming writes beyond max_queued_bytes are refused with -ENOBUFS
 * until nghttp2 has taken the queued data. */
static H2Request *held;

static int hold_handler(H2Request *req, void *userdata) {
        held = h2_request_ref(req);
        return h2_request_start_response(req, 200, NULL, 0);
}

static void test_backpressure(void) {
        static uint8_t chunk[16 * 1024];
        H2ServerConfig cfg;
        H2TestFetch stream;
        Fixture f;
        int r = 0;
        size_t written = 0;

        h2_server_config_init(&cfg);
        cfg.max_queued_bytes = 64 * 1024;
        fixture_setup(&f, false, &cfg);
        h2_server_set_request_handler(f.server, hold_handler, NULL);
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/held", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(true), &stream, &stream.req),
                        0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &stream.got_response, 10));
        CU_ASSERT_FATAL(held != NULL);

        for (int i = 0; i < 10 && r == 0; i++) {
                r = h2_request_write(held, chunk, sizeof(chunk));
                if (r == 0)
                        written += sizeof(chunk);
        }
        CU_ASSERT_EQUAL(r, -ENOBUFS);
        CU_ASSERT_EQUAL(written, 64 * 1024);
        CU_ASSERT_EQUAL(h2_request_get_queued(held), 64 * 1024);

        /* Once the loop ran, the queue drained towards the peer. */
        while (stream.size < written && !stream.done)
                if (sd_event_run(f.event, 100000) < 0)
                        break;
        CU_ASSERT_EQUAL(stream.size, written);
        CU_ASSERT_EQUAL(h2_request_get_queued(held), 0);
        CU_ASSERT_EQUAL(h2_request_write(held, chunk, sizeof(chunk)), 0);
        CU_ASSERT_EQUAL(h2_request_end(held), 0);
        CU_ASSERT_EQUAL(h2_request_write(held, chunk, 1), -EPIPE);
        CU_ASSERT_EQUAL(h2_request_respond(held, 200, NULL, 0, NULL, 0), -EALREADY);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &stream.done, 10));
        CU_ASSERT_EQUAL(stream.error, 0);
        CU_ASSERT_EQUAL(stream.size, written + sizeof(chunk));
        CU_ASSERT_TRUE(h2_request_is_closed(held));
        CU_ASSERT_EQUAL(h2_request_write(held, chunk, 1), -ENOTCONN);
        held = h2_request_unref(held);

        h2_test_fetch_done(&stream);
        fixture_teardown(&f);
}

static bool shutdown_done;

static void on_shutdown_done(H2Server *s, void *userdata) {
        shutdown_done = true;
}

static void test_server_shutdown(void) {
        H2TestFetch stream, hello, late;
        Fixture f;

        fixture_setup(&f, false, NULL);
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/stream", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(true), &stream, &stream.req),
                        0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &hello, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &hello.done, 10));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &stream.got_response, 10));

        /* GOAWAY first; the long-lived stream keeps the connection until the
         * grace period ends, then its handler hears -ECONNABORTED. */
        shutdown_done = false;
        CU_ASSERT_EQUAL(h2_server_shutdown(f.server, 300000, on_shutdown_done, NULL), 0);
        CU_ASSERT_EQUAL(h2_server_shutdown(f.server, 300000, on_shutdown_done, NULL), -EALREADY);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &f.conn.goaway, 10));
        CU_ASSERT_EQUAL(f.conn.goaway_code, NGHTTP2_NO_ERROR);
        CU_ASSERT_STRING_EQUAL(f.conn.goaway_debug, "shutdown");
        CU_ASSERT_FALSE(h2_client_is_usable(f.client));
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &late, "GET", "/hello", NULL, 0, 0), -ENOTCONN);
        CU_ASSERT_FALSE(stream.done);

        CU_ASSERT_TRUE(h2_test_run_until(f.event, &shutdown_done, 10));
        CU_ASSERT_EQUAL(f.state.streams_closed, 1);
        CU_ASSERT_EQUAL(f.state.stream_close_error, -ECONNABORTED);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &stream.done, 10));
        CU_ASSERT_EQUAL(stream.error, -ECONNABORTED);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &f.conn.closed, 10));

        h2_test_fetch_done(&stream);
        h2_test_fetch_done(&hello);
        fixture_teardown(&f);
}

static void test_client_shutdown(void) {
        H2TestFetch hello;
        Fixture f;

        fixture_setup(&f, true, NULL);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &hello, "GET", "/stream?n=3", NULL, 0, 0), 0);
        /* In-flight requests finish, then the connection closes cleanly. */
        CU_ASSERT_EQUAL(h2_client_shutdown(f.client), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &hello.done, 10));
        CU_ASSERT_EQUAL(hello.error, 0);
        CU_ASSERT_EQUAL(hello.status, 200);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &f.conn.closed, 10));
        CU_ASSERT_EQUAL(f.conn.close_error, 0);
        h2_test_fetch_done(&hello);
        fixture_teardown(&f);
}

static void test_server_free_with_open_stream(void) {
        H2TestFetch stream;
        Fixture f;

        fixture_setup(&f, false, NULL);
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/stream", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(true), &stream, &stream.req),
                        0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &stream.got_response, 10));
        f.server = h2_server_free(f.server);
        CU_ASSERT_EQUAL(f.state.streams_closed, 1);
        CU_ASSERT_EQUAL(f.state.stream_close_error, -ECONNABORTED);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &stream.done, 10));
        CU_ASSERT_EQUAL(stream.error, -ECONNABORTED);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &f.conn.closed, 10));
        CU_ASSERT_EQUAL(f.conn.close_error, -ECONNRESET);
        h2_test_fetch_done(&stream);
        fixture_teardown(&f);
}

static void test_handler_failure(void) {
        H2TestFetch fail;
        Fixture f;

        fixture_setup(&f, false, NULL);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &fail, "GET", "/fail", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &fail.done, 10));
        CU_ASSERT_EQUAL(fail.status, 500);
        CU_ASSERT_STRING_EQUAL((char *) fail.body, "{\"code\":500,\"description\":\"internal error\"}");
        h2_test_fetch_done(&fail);
        fixture_teardown(&f);
}

static void test_client_request_timeout(void) {
        H2TestFetch hang;
        Fixture f;

        fixture_setup(&f, false, NULL);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &hang, "GET", "/hang", NULL, 0, 0), 0);
        CU_ASSERT_EQUAL(h2_client_request_set_timeout(hang.req, 200000), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &hang.done, 10));
        CU_ASSERT_EQUAL(hang.error, -ETIMEDOUT);
        CU_ASSERT_EQUAL(h2_client_request_cancel(hang.req), -EALREADY);
        h2_test_fetch_done(&hang);
        fixture_teardown(&f);
}

/* The peer of a long-lived stream vanishes (the client process drops the
 * connection): the handler hears -ECONNABORTED and can let go. */
static void test_client_gone_under_stream(void) {
        H2TestFetch stream;
        Fixture f;

        fixture_setup(&f, true, NULL);
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/stream", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(true), &stream, &stream.req),
                        0);
        while (stream.chunks < 2 && !stream.done)
                if (sd_event_run(f.event, 100000) < 0)
                        break;
        CU_ASSERT_EQUAL(f.state.streams_started, 1);
        f.client = h2_client_unref(f.client);
        /* No callback after the caller dropped the client. */
        CU_ASSERT_FALSE(stream.done);
        CU_ASSERT_TRUE(h2_client_request_is_done(stream.req));
        CU_ASSERT_EQUAL(h2_client_request_write(stream.req, "x", 1), -ENOTCONN);

        bool closed = false;
        uint64_t deadline = h2_test_now_usec() + 10000000;
        while (!(closed = f.state.streams_closed == 1) && h2_test_now_usec() < deadline)
                (void) sd_event_run(f.event, 100000);
        CU_ASSERT_TRUE(closed);
        CU_ASSERT_EQUAL(f.state.stream_close_error, -ECONNABORTED);
        while (h2_server_get_n_connections(f.server) > 0 && h2_test_now_usec() < deadline)
                (void) sd_event_run(f.event, 100000);
        CU_ASSERT_EQUAL(h2_server_get_n_connections(f.server), 0);
        h2_test_fetch_done(&stream);
        fixture_teardown(&f);
}

static void test_ipv6(void) {
        H2TestConn conn = {};
        H2TestFetch h;
        H2TestState state = {};
        sd_event *e = NULL;
        H2Server *s = NULL;
        H2Client *c = NULL;
        int r;

        CU_ASSERT_FATAL(sd_event_new(&e) >= 0);
        state.event = e;
        CU_ASSERT_FATAL(h2_server_new(e, NULL, server_tls, &s) >= 0);
        h2_server_set_request_handler(s, h2_test_request_handler, &state);
        r = h2_server_listen(s, "::1", 0);
        if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
                /* No IPv6 loopback on this host: nothing to test. */
                h2_server_free(s);
                sd_event_unref(e);
                return;
        }
        CU_ASSERT_FATAL(r == 0);
        CU_ASSERT_FATAL(h2_client_new(e, "[::1]", (uint16_t) h2_server_get_port(s), client_tls, NULL, NULL,
                                      h2_test_conn_callbacks(), &conn, &c) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c, &h, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(e, &h.done, 10));
        CU_ASSERT_EQUAL(h.error, 0);
        CU_ASSERT_EQUAL(h.status, 200);
        CU_ASSERT_EQUAL(strncmp(state.last_authority, "[::1]:", 6), 0);
        h2_test_fetch_done(&h);
        h2_client_unref(c);
        h2_server_free(s);
        h2_test_run_for(e, 1000);
        sd_event_unref(e);
}

static void test_client_response_limit(void) {
        H2ClientConfig cfg;
        H2TestConn conn = {};
        H2TestFetch big, small;
        H2Client *c = NULL;
        Fixture f;

        fixture_setup(&f, false, NULL);
        h2_client_config_init(&cfg);
        cfg.max_response_body = 1000;
        CU_ASSERT_FATAL(h2_client_new(f.event, "127.0.0.1", (uint16_t) f.port, NULL, NULL, &cfg,
                                      h2_test_conn_callbacks(), &conn, &c) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c, &big, "GET", "/big?n=5000", NULL, 0, 0), 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c, &small, "GET", "/big?n=1000", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &big.done, 10));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &small.done, 10));
        CU_ASSERT_EQUAL(big.error, -EFBIG);
        CU_ASSERT_EQUAL(small.error, 0);
        CU_ASSERT_EQUAL(small.size, 1000);
        CU_ASSERT_FALSE(conn.closed);
        h2_test_fetch_done(&big);
        h2_test_fetch_done(&small);
        h2_client_unref(c);
        fixture_teardown(&f);
}

/* Streaming request body with flow control: a paused body stops the
 * client within one stream window; resuming lets the rest through. */
typedef struct PausedUpload {
        H2Request *req;
        size_t bytes;
        bool pause_on_first, done;
} PausedUpload;

static int paused_chunk(H2Request *req, const uint8_t *data, size_t size, void *userdata) {
        PausedUpload *u = userdata;

        if (u->bytes == 0 && u->pause_on_first) {
                CU_ASSERT_EQUAL(h2_request_pause_body(req, true), 0);
                u->req = h2_request_ref(req);
        }
        u->bytes += size;
        return 0;
}

static int paused_end(H2Request *req, void *userdata) {
        PausedUpload *u = userdata;
        char body[32];
        int n = snprintf(body, sizeof(body), "%zu", u->bytes);

        u->done = true;
        return h2_request_respond(req, 200, NULL, 0, body, (size_t) n);
}

static int paused_headers(H2Request *req, void *userdata) {
        if (!streq(h2_request_get_path(req), "/upload"))
                return 0;
        CU_ASSERT_EQUAL(h2_request_pause_body(req, true), -EBADFD);
        return h2_request_stream_body(req, paused_chunk, paused_end, userdata);
}

static void test_paused_request_body(void) {
        const size_t n = 1024 * 1024;
        PausedUpload u = { .pause_on_first = true };
        uint8_t *data = calloc(1, n);
        H2TestFetch up, other;
        Fixture f;

        CU_ASSERT_FATAL(data != NULL);
        fixture_setup(&f, false, NULL);
        h2_server_set_headers_handler(f.server, paused_headers, &u);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &up, "POST", "/upload", data, n, 0), 0);
        while (!u.req && !up.done)
                if (sd_event_run(f.event, 100000) < 0)
                        break;
        CU_ASSERT_FATAL(u.req != NULL);

        /* Give the client every chance to send more than it may. */
        h2_test_run_for(f.event, 300000);
        CU_ASSERT_TRUE(u.bytes > 0);
        CU_ASSERT_TRUE(u.bytes <= NGHTTP2_INITIAL_WINDOW_SIZE);
        CU_ASSERT_FALSE(up.done);

        /* A paused upload does not hold up other streams. */
        h2_server_set_request_handler(f.server, h2_test_request_handler, &f.state);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &other, "POST", "/echo", data, 200000, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &other.done, 10));
        CU_ASSERT_EQUAL(other.status, 200);
        CU_ASSERT_EQUAL(other.size, 200000);

        CU_ASSERT_EQUAL(h2_request_pause_body(u.req, false), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &up.done, 30));
        CU_ASSERT_EQUAL(up.status, 200);
        CU_ASSERT_EQUAL(u.bytes, n);
        CU_ASSERT_EQUAL(strtoul((char *) up.body, NULL, 10), n);
        CU_ASSERT_EQUAL(h2_request_pause_body(u.req, false), -ENOTCONN);

        h2_request_unref(u.req);
        h2_test_fetch_done(&up);
        h2_test_fetch_done(&other);
        free(data);
        fixture_teardown(&f);
}

/* A paused response: the server stops within one stream window, other
 * streams go on, and resuming fetches the rest. */
typedef struct PausedDownload {
        size_t bytes;
        bool paused_once, done;
        int error;
} PausedDownload;

static int pd_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        PausedDownload *d = userdata;

        if (!d->paused_once) {
                CU_ASSERT_EQUAL(h2_client_request_pause(req, true), 0);
                d->paused_once = true;
        }
        d->bytes += size;
        return 0;
}

static void pd_complete(H2ClientRequest *req, int error, void *userdata) {
        PausedDownload *d = userdata;
        d->done = true;
        d->error = error;
}

static void test_paused_response(void) {
        static const H2ClientRequestCallbacks cb = { .on_data = pd_data, .on_complete = pd_complete };
        const size_t n = 1024 * 1024;
        PausedDownload d = {};
        H2ClientRequest *req = NULL;
        H2TestFetch other, buffered;
        Fixture f;

        fixture_setup(&f, true, NULL);
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/big?n=1048576", NULL, 0, NULL, 0, 0, &cb, &d, &req), 0);
        while (!d.paused_once && !d.done)
                if (sd_event_run(f.event, 100000) < 0)
                        break;
        h2_test_run_for(f.event, 300000);
        CU_ASSERT_TRUE(d.bytes > 0);
        CU_ASSERT_TRUE(d.bytes <= NGHTTP2_INITIAL_WINDOW_SIZE);
        CU_ASSERT_FALSE(d.done);

        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &other, "GET", "/big?n=300000", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &other.done, 10));
        CU_ASSERT_EQUAL(other.size, 300000);
        /* Buffered responses cannot be paused. */
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &buffered, "GET", "/hang", NULL, 0, 0), 0);
        CU_ASSERT_EQUAL(h2_client_request_pause(buffered.req, true), -EBADFD);

        CU_ASSERT_EQUAL(h2_client_request_pause(req, false), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &d.done, 30));
        CU_ASSERT_EQUAL(d.error, 0);
        CU_ASSERT_EQUAL(d.bytes, n);
        CU_ASSERT_EQUAL(h2_client_request_pause(req, false), -ENOTCONN);

        h2_client_request_unref(req);
        h2_test_fetch_done(&other);
        h2_test_fetch_done(&buffered);
        fixture_teardown(&f);
}

/* A producer driven by the drain handler: it writes only while the queue
 * is short, and the whole body arrives intact. */
typedef struct Producer {
        H2Request *req;
        size_t total, sent;
        unsigned drains;
        bool ended;
} Producer;

static void producer_fill(Producer *p) {
        uint8_t chunk[8192];

        while (p->sent < p->total && h2_request_get_queued(p->req) < 32 * 1024) {
                size_t n = MIN(sizeof(chunk), p->total - p->sent);

                for (size_t i = 0; i < n; i++)
                        chunk[i] = (uint8_t) ((p->sent + i) * 13);
                CU_ASSERT_EQUAL_FATAL(h2_request_write(p->req, chunk, n), 0);
                p->sent += n;
        }
        if (p->sent == p->total && !p->ended) {
                CU_ASSERT_EQUAL(h2_request_end(p->req), 0);
                p->ended = true;
        }
}

static void producer_drain(H2Request *req, void *userdata) {
        Producer *p = userdata;

        p->drains++;
        producer_fill(p);
}

static int producer_handler(H2Request *req, void *userdata) {
        Producer *p = userdata;
        int r;

        r = h2_request_start_response(req, 200, NULL, 0);
        if (r < 0)
                return r;
        p->req = h2_request_ref(req);
        r = h2_request_set_drain_handler(req, 16 * 1024, producer_drain, p);
        if (r < 0)
                return r;
        producer_fill(p);
        return 0;
}

static void test_drain_handler(void) {
        Producer p = { .total = 3 * 1024 * 1024 + 17 };
        H2ServerConfig cfg;
        H2TestFetch down;
        Fixture f;
        bool ok = true;

        h2_server_config_init(&cfg);
        cfg.max_queued_bytes = 64 * 1024;
        fixture_setup(&f, true, &cfg);
        h2_server_set_request_handler(f.server, producer_handler, &p);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &down, "GET", "/file", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &down.done, 60));
        CU_ASSERT_EQUAL(down.error, 0);
        CU_ASSERT_EQUAL(down.size, p.total);
        for (size_t i = 0; i < down.size && ok; i++)
                ok = down.body[i] == (uint8_t) (i * 13);
        CU_ASSERT_TRUE(ok);
        CU_ASSERT_TRUE(p.ended);
        /* Many refills, each from the drain handler. */
        CU_ASSERT_TRUE(p.drains > 10);
        CU_ASSERT_TRUE(h2_request_is_closed(p.req));
        CU_ASSERT_EQUAL(h2_request_set_drain_handler(p.req, 0, NULL, NULL), -ENOTCONN);
        h2_request_unref(p.req);
        h2_test_fetch_done(&down);
        fixture_teardown(&f);
}

static int suite_init(void) {
        if (h2_test_certs_make(&certs) < 0)
                return -1;
        if (tls_server_ctx_new(certs.cert, certs.key, &server_tls) < 0)
                return -1;
        if (tls_client_ctx_new(certs.ca, &client_tls) < 0)
                return -1;
        return 0;
}

static int suite_cleanup(void) {
        SSL_CTX_free(server_tls);
        SSL_CTX_free(client_tls);
        h2_test_certs_remove(&certs);
        return 0;
}

static CU_TestInfo tests[] = {
        { "GET/POST round trip over h2c", test_round_trip_h2c },
        { "GET/POST round trip over TLS", test_round_trip_tls },
        { "bad arguments", test_bad_arguments },
        { "connect refused", test_connect_refused },
        { "large bodies both ways over h2c", test_large_bodies_h2c },
        { "large bodies both ways over TLS", test_large_bodies_tls },
        { "streaming request body", test_streaming_request_body },
        { "long-lived stream next to other requests, h2c", test_long_lived_stream_h2c },
        { "long-lived stream next to other requests, TLS", test_long_lived_stream_tls },
        { "finite streaming response", test_finite_stream },
        { "streaming backpressure", test_backpressure },
        { "server shutdown with a long-lived stream", test_server_shutdown },
        { "client shutdown", test_client_shutdown },
        { "server freed under an open stream", test_server_free_with_open_stream },
        { "handler failure is a 500", test_handler_failure },
        { "client request timeout", test_client_request_timeout },
        { "client gone under a long-lived stream", test_client_gone_under_stream },
        { "IPv6 loopback with TLS verified by IP", test_ipv6 },
        { "client response body limit", test_client_response_limit },
        { "paused streaming request body", test_paused_request_body },
        { "paused streaming response", test_paused_response },
        { "drain handler feeds a large streaming response", test_drain_handler },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("h2", tests, suite_init, suite_cleanup)
