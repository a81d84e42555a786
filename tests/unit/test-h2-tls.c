/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TLS for HTTP/2: certificate and host name verification, ALPN h2 on both
 * sides, handshake timeout. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>

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
        H2TestState state;
        int port;
} Fixture;

static void fixture_setup(Fixture *f, SSL_CTX *tls) {
        memset(f, 0, sizeof(*f));
        CU_ASSERT_FATAL(sd_event_new(&f->event) >= 0);
        f->state.event = f->event;
        CU_ASSERT_FATAL(h2_server_new(f->event, NULL, tls, &f->server) >= 0);
        h2_server_set_request_handler(f->server, h2_test_request_handler, &f->state);
        CU_ASSERT_FATAL(h2_server_listen(f->server, "127.0.0.1", 0) >= 0);
        f->port = h2_server_get_port(f->server);
}

static void fixture_teardown(Fixture *f) {
        f->server = h2_server_free(f->server);
        h2_test_run_for(f->event, 1000);
        f->event = sd_event_unref(f->event);
}

/* Connects a client, sends GET /hello and waits for the outcome. */
static void fetch(Fixture *f, const char *host, SSL_CTX *tls, const char *server_name, H2TestConn *conn,
                  H2TestFetch *h) {
        H2Client *c = NULL;

        memset(conn, 0, sizeof(*conn));
        CU_ASSERT_FATAL(h2_client_new(f->event, host, (uint16_t) f->port, tls, server_name, NULL,
                                      h2_test_conn_callbacks(), conn, &c) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c, h, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(f->event, &h->done, 10));
        h2_client_unref(c);
}

static void test_verified(void) {
        H2TestConn conn;
        H2TestFetch h;
        Fixture f;

        fixture_setup(&f, server_tls);
        fetch(&f, "127.0.0.1", client_tls, "localhost", &conn, &h);
        CU_ASSERT_EQUAL(h.error, 0);
        CU_ASSERT_EQUAL(h.status, 200);
        h2_test_fetch_done(&h);

        /* The certificate names the IP address too. */
        fetch(&f, "127.0.0.1", client_tls, NULL, &conn, &h);
        CU_ASSERT_EQUAL(h.error, 0);
        CU_ASSERT_EQUAL(h.status, 200);
        h2_test_fetch_done(&h);

        fetch(&f, "localhost", client_tls, NULL, &conn, &h);
        CU_ASSERT_EQUAL(h.status, 200);
        h2_test_fetch_done(&h);
        fixture_teardown(&f);
}

static void test_wrong_ca(void) {
        SSL_CTX *other = NULL;
        H2TestConn conn;
        H2TestFetch h;
        Fixture f;

        CU_ASSERT_FATAL(tls_client_ctx_new(certs.other_ca, &other) >= 0);
        fixture_setup(&f, server_tls);
        fetch(&f, "127.0.0.1", other, "localhost", &conn, &h);
        CU_ASSERT_EQUAL(h.error, -ECONNABORTED);
        CU_ASSERT_TRUE(conn.closed);
        CU_ASSERT_EQUAL(conn.close_error, -EPERM);
        CU_ASSERT_PTR_NOT_NULL(strstr(conn.close_reason, "certificate"));
        CU_ASSERT_EQUAL(f.state.requests, 0);
        h2_test_fetch_done(&h);
        SSL_CTX_free(other);
        fixture_teardown(&f);
}

static void test_wrong_host(void) {
        H2TestConn conn;
        H2TestFetch h;
        Fixture f;

        fixture_setup(&f, server_tls);
        fetch(&f, "127.0.0.1", client_tls, "rethink.example", &conn, &h);
        CU_ASSERT_EQUAL(h.error, -ECONNABORTED);
        CU_ASSERT_EQUAL(conn.close_error, -EPERM);
        CU_ASSERT_PTR_NOT_NULL(strstr(conn.close_reason, "mismatch"));
        h2_test_fetch_done(&h);

        fetch(&f, "127.0.0.1", client_tls, "10.1.2.3", &conn, &h);
        CU_ASSERT_EQUAL(conn.close_error, -EPERM);
        h2_test_fetch_done(&h);
        CU_ASSERT_EQUAL(f.state.requests, 0);
        fixture_teardown(&f);
}

/* A server context that does not speak h2: no ALPN at all. */
static void test_server_without_h2(void) {
        SSL_CTX *plain = SSL_CTX_new(TLS_server_method());
        H2TestConn conn;
        H2TestFetch h;
        Fixture f;

        CU_ASSERT_FATAL(plain != NULL);
        CU_ASSERT_FATAL(SSL_CTX_use_certificate_chain_file(plain, certs.cert) == 1);
        CU_ASSERT_FATAL(SSL_CTX_use_PrivateKey_file(plain, certs.key, SSL_FILETYPE_PEM) == 1);
        fixture_setup(&f, plain);
        fetch(&f, "127.0.0.1", client_tls, "localhost", &conn, &h);
        CU_ASSERT_EQUAL(h.error, -ECONNABORTED);
        CU_ASSERT_EQUAL(conn.close_error, -EPROTO);
        CU_ASSERT_STRING_EQUAL(conn.close_reason, "server did not select ALPN h2");
        h2_test_fetch_done(&h);
        SSL_CTX_free(plain);
        fixture_teardown(&f);
}

/* A raw OpenSSL client with the given ALPN list (NULL: none); returns the
 * handshake result (1 ok) and whether the server then closed. */
static int raw_tls_client(Fixture *f, const unsigned char *alpn, unsigned alpn_len, bool *ret_closed) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) f->port) };
        uint64_t deadline = h2_test_now_usec() + 10000000;
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL *ssl;
        int fd, r = -1;

        CU_ASSERT_FATAL(ctx != NULL);
        CU_ASSERT_FATAL(SSL_CTX_load_verify_locations(ctx, certs.ca, NULL) == 1);
        if (alpn)
                CU_ASSERT_FATAL(SSL_CTX_set_alpn_protos(ctx, alpn, alpn_len) == 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_connect_state(ssl);

        *ret_closed = false;
        while (h2_test_now_usec() < deadline) {
                r = SSL_do_handshake(ssl);
                if (r == 1)
                        break;
                int e = SSL_get_error(ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                        break;
                (void) sd_event_run(f->event, 10000);
        }
        if (r == 1) {
                char buf[256];
                while (h2_test_now_usec() < deadline) {
                        int n = SSL_read(ssl, buf, sizeof(buf));
                        if (n > 0)
                                continue;
                        int e = SSL_get_error(ssl, n);
                        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                                *ret_closed = true;
                                break;
                        }
                        (void) sd_event_run(f->event, 10000);
                }
        }
        ERR_clear_error();
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        close(fd);
        return r;
}

static void test_client_without_h2(void) {
        static const unsigned char http11[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
        bool closed;
        Fixture f;

        fixture_setup(&f, server_tls);
        /* Offers only http/1.1: the server refuses during the handshake. */
        CU_ASSERT_NOT_EQUAL(raw_tls_client(&f, http11, sizeof(http11), &closed), 1);
        /* Offers nothing: the handshake completes, then the server closes. */
        CU_ASSERT_EQUAL(raw_tls_client(&f, NULL, 0, &closed), 1);
        CU_ASSERT_TRUE(closed);
        CU_ASSERT_EQUAL(f.state.requests, 0);
        fixture_teardown(&f);
}

static void test_h2c_client_to_tls_server(void) {
        H2TestConn conn;
        H2TestFetch h;
        Fixture f;

        fixture_setup(&f, server_tls);
        fetch(&f, "127.0.0.1", NULL, NULL, &conn, &h);
        CU_ASSERT_EQUAL(h.error, -ECONNABORTED);
        CU_ASSERT_TRUE(conn.closed);
        CU_ASSERT_TRUE(conn.close_error < 0);
        h2_test_fetch_done(&h);
        fixture_teardown(&f);
}

static void test_handshake_timeout(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        H2ClientConfig cfg;
        H2TestConn conn = {};
        H2TestFetch h;
        H2Client *c = NULL;
        sd_event *e = NULL;
        int fd;

        /* Listens but never accepts: TCP connects, TLS never answers. */
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        CU_ASSERT_FATAL(listen(fd, 8) == 0);
        CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *) &sa, &len) == 0);

        CU_ASSERT_FATAL(sd_event_new(&e) >= 0);
        h2_client_config_init(&cfg);
        cfg.connect_timeout_usec = 200000;
        CU_ASSERT_FATAL(h2_client_new(e, "127.0.0.1", ntohs(sa.sin_port), client_tls, "localhost", &cfg,
                                      h2_test_conn_callbacks(), &conn, &c) >= 0);
        CU_ASSERT_EQUAL(h2_test_fetch_start(c, &h, "GET", "/hello", NULL, 0, 0), 0);
        CU_ASSERT_TRUE(h2_test_run_until(e, &conn.closed, 10));
        CU_ASSERT_EQUAL(conn.close_error, -ETIMEDOUT);
        CU_ASSERT_TRUE(h.done);
        CU_ASSERT_EQUAL(h.error, -ECONNABORTED);
        h2_test_fetch_done(&h);
        h2_client_unref(c);
        sd_event_unref(e);
        close(fd);
}

/* A peer that connects and never says a word is dropped after the idle
 * timeout, TLS handshake or not. */
static void test_silent_peer_dropped(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        H2ServerConfig cfg;
        sd_event *e = NULL;
        H2Server *s = NULL;
        uint64_t deadline;
        bool eof = false;
        char buf[64];
        int fd;

        CU_ASSERT_FATAL(sd_event_new(&e) >= 0);
        h2_server_config_init(&cfg);
        cfg.idle_timeout_usec = 200000;
        CU_ASSERT_FATAL(h2_server_new(e, &cfg, server_tls, &s) >= 0);
        CU_ASSERT_FATAL(h2_server_listen(s, "127.0.0.1", 0) >= 0);
        sa.sin_port = htons((uint16_t) h2_server_get_port(s));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 || errno == EINPROGRESS);

        deadline = h2_test_now_usec() + 10000000;
        while (!eof && h2_test_now_usec() < deadline) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        eof = true;
                else
                        (void) sd_event_run(e, 10000);
        }
        CU_ASSERT_TRUE(eof);
        CU_ASSERT_EQUAL(h2_server_get_n_connections(s), 0);
        close(fd);
        h2_server_free(s);
        sd_event_unref(e);
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
        { "verified by CA, host name and IP", test_verified },
        { "wrong CA fails verification", test_wrong_ca },
        { "wrong host name fails verification", test_wrong_host },
        { "server without ALPN h2 is refused", test_server_without_h2 },
        { "client without ALPN h2 is refused", test_client_without_h2 },
        { "h2c client against a TLS server", test_h2c_client_to_tls_server },
        { "TLS handshake timeout", test_handshake_timeout },
        { "silent peer dropped by the server", test_silent_peer_dropped },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("h2-tls", tests, suite_init, suite_cleanup)
