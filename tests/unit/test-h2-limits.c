/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every server limit produces its documented error, and the connection
 * keeps serving where HTTP/2 allows it. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "h2-client.h"
#include "h2-server.h"
#include "h2-test-util.h"
#include "tests.h"

typedef struct Fixture {
        sd_event *event;
        H2Server *server;
        H2Client *client;
        H2TestState state;
        H2TestConn conn;
        int port;
} Fixture;

static void fixture_setup(Fixture *f, const H2ServerConfig *config) {
        memset(f, 0, sizeof(*f));
        CU_ASSERT_FATAL(sd_event_new(&f->event) >= 0);
        f->state.event = f->event;
        f->state.stream_interval_usec = 10000;
        CU_ASSERT_FATAL(h2_server_new(f->event, config, NULL, &f->server) >= 0);
        h2_server_set_request_handler(f->server, h2_test_request_handler, &f->state);
        h2_server_set_headers_handler(f->server, h2_test_headers_handler, &f->state);
        CU_ASSERT_FATAL(h2_server_listen(f->server, "127.0.0.1", 0) >= 0);
        f->port = h2_server_get_port(f->server);
        CU_ASSERT_FATAL(h2_client_new(f->event, "127.0.0.1", (uint16_t) f->port, NULL, NULL, NULL,
                                      h2_test_conn_callbacks(), &f->conn, &f->client) >= 0);
}

static void fixture_teardown(Fixture *f) {
        f->client = h2_client_unref(f->client);
        f->server = h2_server_free(f->server);
        h2_test_run_for(f->event, 1000);
        f->event = sd_event_unref(f->event);
}

/* The connection still answers a plain request. */
static void assert_still_serving(Fixture *f) {
        H2TestFetch h;

        CU_ASSERT_EQUAL(h2_test_fetch_start(f->client, &h, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f->event, &h.done, 10));
        CU_ASSERT_EQUAL(h.error, 0);
        CU_ASSERT_EQUAL(h.status, 200);
        CU_ASSERT_STRING_EQUAL((char *) h.body, "hello\n");
        CU_ASSERT_FALSE(f->conn.closed);
        h2_test_fetch_done(&h);
}

static void test_max_concurrent_streams(void) {
        H2ServerConfig cfg;
        H2TestFetch r[5], q[4];
        unsigned ok = 0, refused = 0;
        Fixture f;

        h2_server_config_init(&cfg);
        cfg.max_concurrent_streams = 2;
        fixture_setup(&f, &cfg);

        /* Submitted before the server's SETTINGS can arrive: they all go out
         * in the first flight, and the server refuses the excess. */
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &r[i], "GET", "/stream?n=3", NULL, 0, 0), 0);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                CU_ASSERT_TRUE(h2_test_run_until(f.event, &r[i].done, 10));
                if (r[i].error == 0 && r[i].status == 200)
                        ok++;
                else if (r[i].error == -ECONNREFUSED &&
                         h2_client_request_get_h2_error(r[i].req) == NGHTTP2_REFUSED_STREAM)
                        refused++;
        }
        CU_ASSERT_EQUAL(ok, 2);
        CU_ASSERT_EQUAL(refused, 3);

        /* Now the client knows the limit and queues instead: all succeed. */
        for (size_t i = 0; i < ELEMENTSOF(q); i++)
                CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &q[i], "GET", "/stream?n=3", NULL, 0, 0), 0);
        for (size_t i = 0; i < ELEMENTSOF(q); i++) {
                CU_ASSERT_TRUE(h2_test_run_until(f.event, &q[i].done, 10));
                CU_ASSERT_EQUAL(q[i].error, 0);
                CU_ASSERT_EQUAL(q[i].status, 200);
        }
        assert_still_serving(&f);

        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                h2_test_fetch_done(&r[i]);
        for (size_t i = 0; i < ELEMENTSOF(q); i++)
                h2_test_fetch_done(&q[i]);
        fixture_teardown(&f);
}

static void test_max_header_list_size(void) {
        H2TestFetch h;
        Fixture f;
        char *big = malloc(20000 + 1);

        CU_ASSERT_FATAL(big != NULL);
        memset(big, 'a', 20000);
        big[20000] = 0;
        fixture_setup(&f, NULL);

        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/hello", (const H2Header[]) { { "x-big", big } }, 1,
                                          NULL, 0, 0, h2_test_fetch_callbacks(false), &h, &h.req),
                        0);
        memset(&h, 0, sizeof(h) - sizeof(h.req));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &h.done, 10));
        CU_ASSERT_EQUAL(h.error, 0);
        CU_ASSERT_EQUAL(h.status, 431);
        CU_ASSERT_STRING_EQUAL(h.content_type, "application/json");
        CU_ASSERT_STRING_EQUAL((char *) h.body,
                               "{\"code\":431,\"description\":\"request header fields too large\"}");
        CU_ASSERT_EQUAL(f.state.requests, 0);
        assert_still_serving(&f);

        h2_test_fetch_done(&h);
        free(big);
        fixture_teardown(&f);
}

static void test_max_request_body(void) {
        const size_t n = 2 * 1024 * 1024;
        const char *expect = "{\"code\":413,\"description\":\"request body too large\"}";
        H2TestFetch with_length, without;
        uint8_t *data = calloc(1, n);
        char len[32];
        Fixture f;

        CU_ASSERT_FATAL(data != NULL);
        fixture_setup(&f, NULL);

        /* Announced with content-length: refused before the body. */
        snprintf(len, sizeof(len), "%zu", n);
        CU_ASSERT_EQUAL(h2_client_request(f.client, "POST", "/echo", (const H2Header[]) { { "content-length", len } },
                                          1, data, n, 0, h2_test_fetch_callbacks(false), &with_length,
                                          &with_length.req),
                        0);
        memset(&with_length, 0, sizeof(with_length) - sizeof(with_length.req));
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &with_length.done, 20));
        CU_ASSERT_EQUAL(with_length.error, 0);
        CU_ASSERT_EQUAL(with_length.status, 413);
        CU_ASSERT_STRING_EQUAL(with_length.content_type, "application/json");
        CU_ASSERT_STRING_EQUAL((char *) with_length.body, expect);
        assert_still_serving(&f);

        /* Not announced: refused once the limit is crossed. */
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &without, "POST", "/echo", data, n, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &without.done, 20));
        CU_ASSERT_EQUAL(without.error, 0);
        CU_ASSERT_EQUAL(without.status, 413);
        CU_ASSERT_STRING_EQUAL((char *) without.body, expect);
        CU_ASSERT_EQUAL(f.state.requests, 1); /* only assert_still_serving's */
        assert_still_serving(&f);

        /* Just at the limit is fine. */
        h2_test_fetch_done(&without);
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &without, "POST", "/echo", data,
                                            H2_SERVER_DEFAULT_MAX_REQUEST_BODY, 0),
                        0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &without.done, 20));
        CU_ASSERT_EQUAL(without.status, 200);
        CU_ASSERT_EQUAL(without.size, H2_SERVER_DEFAULT_MAX_REQUEST_BODY);

        h2_test_fetch_done(&with_length);
        h2_test_fetch_done(&without);
        free(data);
        fixture_teardown(&f);
}

static void test_request_timeout(void) {
        H2ServerConfig cfg;
        H2TestFetch slow, stream;
        Fixture f;

        h2_server_config_init(&cfg);
        cfg.request_timeout_usec = 200000;
        fixture_setup(&f, &cfg);

        /* A long-lived response is exempt once it has started. */
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/stream", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(true), &stream, &stream.req),
                        0);
        /* A body that never ends. */
        CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &slow, "POST", "/echo", "par", 3, H2_CLIENT_REQUEST_STREAM_BODY),
                        0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &slow.done, 10));
        CU_ASSERT_EQUAL(slow.error, 0);
        CU_ASSERT_EQUAL(slow.status, 408);
        CU_ASSERT_STRING_EQUAL(slow.content_type, "application/json");
        CU_ASSERT_STRING_EQUAL((char *) slow.body, "{\"code\":408,\"description\":\"request timeout\"}");
        CU_ASSERT_EQUAL(h2_client_request_write(slow.req, "x", 1), -ENOTCONN);

        /* Twice the timeout later the stream still flows. */
        h2_test_run_for(f.event, 400000);
        CU_ASSERT_FALSE(stream.done);
        size_t before = stream.size;
        while (stream.size == before && !stream.done)
                (void) sd_event_run(f.event, 100000);
        CU_ASSERT_TRUE(stream.size > before);
        assert_still_serving(&f);

        h2_test_fetch_done(&slow);
        h2_test_fetch_done(&stream);
        fixture_teardown(&f);
}

static void test_idle_timeout(void) {
        H2ServerConfig cfg;
        H2TestFetch stream;
        Fixture f;

        h2_server_config_init(&cfg);
        cfg.idle_timeout_usec = 200000;
        fixture_setup(&f, &cfg);
        assert_still_serving(&f);

        /* An open stream is not idle. */
        memset(&stream, 0, sizeof(stream));
        stream.stream = true;
        CU_ASSERT_EQUAL(h2_client_request(f.client, "GET", "/stream", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(true), &stream, &stream.req),
                        0);
        h2_test_run_for(f.event, 500000);
        CU_ASSERT_FALSE(f.conn.goaway);
        CU_ASSERT_FALSE(stream.done);
        CU_ASSERT_EQUAL(h2_client_request_cancel(stream.req), 0);

        CU_ASSERT_TRUE(h2_test_run_until(f.event, &f.conn.goaway, 10));
        CU_ASSERT_EQUAL(f.conn.goaway_code, NGHTTP2_NO_ERROR);
        CU_ASSERT_STRING_EQUAL(f.conn.goaway_debug, "idle timeout");
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &f.conn.closed, 10));
        CU_ASSERT_EQUAL(f.conn.close_error, 0);
        CU_ASSERT_STRING_EQUAL(f.conn.close_reason, "idle timeout");
        CU_ASSERT_FALSE(h2_client_is_usable(f.client));

        h2_test_fetch_done(&stream);
        fixture_teardown(&f);
}

static void test_max_connections(void) {
        H2ServerConfig cfg;
        H2TestConn conn2 = {}, conn3 = {};
        H2Client *c2 = NULL, *c3 = NULL;
        H2TestFetch h2, h3;
        Fixture f;

        h2_server_config_init(&cfg);
        cfg.max_connections = 1;
        fixture_setup(&f, &cfg);
        assert_still_serving(&f);
        CU_ASSERT_EQUAL(h2_server_get_n_connections(f.server), 1);

        CU_ASSERT_FATAL(h2_client_new(f.event, "127.0.0.1", (uint16_t) f.port, NULL, NULL, NULL,
                                      h2_test_conn_callbacks(), &conn2, &c2) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c2, &h2, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &h2.done, 10));
        CU_ASSERT_EQUAL(h2.error, -ECONNREFUSED);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &conn2.closed, 10));
        CU_ASSERT_TRUE(conn2.goaway);
        CU_ASSERT_EQUAL(conn2.goaway_code, NGHTTP2_REFUSED_STREAM);
        CU_ASSERT_STRING_EQUAL(conn2.goaway_debug, "too many connections");
        CU_ASSERT_EQUAL(conn2.close_error, -ECONNREFUSED);

        /* The first connection is unaffected. */
        assert_still_serving(&f);

        /* Once it goes, there is room again. */
        f.client = h2_client_unref(f.client);
        while (h2_server_get_n_connections(f.server) > 0)
                if (sd_event_run(f.event, 100000) < 0)
                        break;
        CU_ASSERT_FATAL(h2_client_new(f.event, "127.0.0.1", (uint16_t) f.port, NULL, NULL, NULL,
                                      h2_test_conn_callbacks(), &conn3, &c3) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c3, &h3, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &h3.done, 10));
        CU_ASSERT_EQUAL(h3.error, 0);
        CU_ASSERT_EQUAL(h3.status, 200);

        h2_test_fetch_done(&h2);
        h2_test_fetch_done(&h3);
        h2_client_unref(c2);
        h2_client_unref(c3);
        fixture_teardown(&f);
}

/* Raw bytes to the server; collects what comes back until EOF. */
static size_t raw_exchange(Fixture *f, const void *data, size_t size, uint8_t *buf, size_t bufsize, bool *ret_eof) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) f->port) };
        uint64_t deadline = h2_test_now_usec() + 10000000;
        size_t got = 0;
        int fd;

        *ret_eof = false;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
        while (send(fd, data, size, MSG_NOSIGNAL) < 0 && errno == EAGAIN && h2_test_now_usec() < deadline)
                (void) sd_event_run(f->event, 1000);

        while (h2_test_now_usec() < deadline) {
                ssize_t n = recv(fd, buf + got, bufsize - got, MSG_DONTWAIT);
                if (n > 0) {
                        got += (size_t) n;
                        continue;
                }
                if (n == 0 || (n < 0 && errno != EAGAIN)) {
                        *ret_eof = true;
                        break;
                }
                (void) sd_event_run(f->event, 10000);
        }
        close(fd);
        return got;
}

/* Finds a GOAWAY frame; returns its error code and debug data. */
static bool find_goaway(const uint8_t *b, size_t n, uint32_t *ret_code, char *debug, size_t debug_size) {
        size_t off = 0;

        while (off + 9 <= n) {
                size_t len = ((size_t) b[off] << 16) | ((size_t) b[off + 1] << 8) | b[off + 2];
                uint8_t type = b[off + 3];

                if (off + 9 + len > n)
                        break;
                if (type == 0x7 && len >= 8) {
                        const uint8_t *p = b + off + 9;
                        size_t dl = MIN(len - 8, debug_size - 1);

                        *ret_code = ((uint32_t) p[4] << 24) | ((uint32_t) p[5] << 16) | ((uint32_t) p[6] << 8) | p[7];
                        memcpy(debug, p + 8, dl);
                        debug[dl] = 0;
                        return true;
                }
                off += 9 + len;
        }
        return false;
}

static void test_protocol_error(void) {
        static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        uint8_t out[256], in[4096];
        char debug[256] = "";
        uint32_t code = 0;
        size_t n = 0, got;
        bool eof;
        Fixture f;

        fixture_setup(&f, NULL);
        memcpy(out, preface, sizeof(preface) - 1);
        n = sizeof(preface) - 1;
        /* Empty SETTINGS, then DATA on stream 0: a connection error. */
        memcpy(out + n, (const uint8_t[]) { 0, 0, 0, 0x4, 0, 0, 0, 0, 0 }, 9);
        n += 9;
        memcpy(out + n, (const uint8_t[]) { 0, 0, 4, 0x0, 0, 0, 0, 0, 0, 'a', 'b', 'c', 'd' }, 13);
        n += 13;

        got = raw_exchange(&f, out, n, in, sizeof(in), &eof);
        CU_ASSERT_TRUE(eof);
        CU_ASSERT_TRUE(find_goaway(in, got, &code, debug, sizeof(debug)));
        CU_ASSERT_EQUAL(code, NGHTTP2_PROTOCOL_ERROR);
        CU_ASSERT_TRUE(strlen(debug) > 0);

        /* Not HTTP/2 at all: the connection is closed. */
        got = raw_exchange(&f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, in, sizeof(in), &eof);
        CU_ASSERT_TRUE(eof);

        /* The server still serves others. */
        assert_still_serving(&f);
        fixture_teardown(&f);
}

/* Data that is dropped (rejected bodies, streams already answered) still
 * gives its connection window back: many refused uploads in a row, each
 * larger than the whole connection window, do not stall the connection. */
static void test_rejected_bodies_release_window(void) {
        const size_t n = 3 * 1024 * 1024;
        H2ServerConfig cfg;
        uint8_t *data = calloc(1, n);
        Fixture f;

        CU_ASSERT_FATAL(data != NULL);
        h2_server_config_init(&cfg);
        cfg.max_concurrent_streams = 1; /* smallest connection window */
        fixture_setup(&f, &cfg);
        for (int i = 0; i < 3; i++) {
                H2TestFetch h;

                CU_ASSERT_EQUAL(h2_test_fetch_start(f.client, &h, "POST", "/echo", data, n, 0), 0);
                CU_ASSERT_TRUE(h2_test_run_until(f.event, &h.done, 20));
                CU_ASSERT_EQUAL(h.status, 413);
                h2_test_fetch_done(&h);
        }
        assert_still_serving(&f);
        free(data);
        fixture_teardown(&f);
}

static int noop_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return 0;
}

/* Out of file descriptors: the server stops accepting for a moment rather
 * than spinning on a listening socket that stays readable, and serves the
 * connection once descriptors are available again. */
static void test_accept_emfile(void) {
        struct rlimit old, low;
        sd_event_source *dummy = NULL;
        H2TestConn conn = {};
        H2Client *c = NULL;
        H2TestFetch h;
        unsigned iterations = 0;
        uint64_t until;
        Fixture f;
        int probe;

        fixture_setup(&f, NULL);
        /* The monotonic timerfd must exist before descriptors run out. */
        CU_ASSERT_FATAL(sd_event_add_time_relative(f.event, &dummy, CLOCK_MONOTONIC, 3600000000ULL, 0, noop_timer,
                                                   NULL) >= 0);
        assert_still_serving(&f);

        CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &old) == 0);
        probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CU_ASSERT_FATAL(probe >= 0);
        close(probe);
        /* Exactly one more descriptor: the client's socket. */
        low = old;
        low.rlim_cur = (rlim_t) probe + 1;
        CU_ASSERT_FATAL(setrlimit(RLIMIT_NOFILE, &low) == 0);

        CU_ASSERT_FATAL(h2_client_new(f.event, "127.0.0.1", (uint16_t) f.port, NULL, NULL, NULL,
                                      h2_test_conn_callbacks(), &conn, &c) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c, &h, "GET", "/hello", NULL, 0, 0), 0);
        until = h2_test_now_usec() + 300000;
        while (h2_test_now_usec() < until) {
                (void) sd_event_run(f.event, 50000);
                iterations++;
        }
        CU_ASSERT_FALSE(h.done);
        /* A spinning loop would run many thousands of times here. */
        CU_ASSERT_TRUE(iterations < 1000);

        CU_ASSERT_FATAL(setrlimit(RLIMIT_NOFILE, &old) == 0);
        CU_ASSERT_TRUE(h2_test_run_until(f.event, &h.done, 10));
        CU_ASSERT_EQUAL(h.error, 0);
        CU_ASSERT_EQUAL(h.status, 200);

        h2_test_fetch_done(&h);
        h2_client_unref(c);
        sd_event_source_disable_unref(dummy);
        fixture_teardown(&f);
}

static CU_TestInfo tests[] = {
        { "max concurrent streams: REFUSED_STREAM, then queued", test_max_concurrent_streams },
        { "max header list size: 431", test_max_header_list_size },
        { "max request body: 413", test_max_request_body },
        { "rejected bodies give the connection window back", test_rejected_bodies_release_window },
        { "request timeout: 408, not for streaming responses", test_request_timeout },
        { "idle timeout: GOAWAY \"idle timeout\"", test_idle_timeout },
        { "max connections: GOAWAY \"too many connections\"", test_max_connections },
        { "protocol error: GOAWAY with a reason", test_protocol_error },
        { "out of descriptors: accept backs off, then serves", test_accept_emfile },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("h2-limits", tests)
