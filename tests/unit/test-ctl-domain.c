/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl's domain side without a domain: the set-up domain init makes
 * (files, modes, certificates that verify, refusal to overwrite) and the
 * URLs the domain client takes. */
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "domain-client.h"
#include "h2-server.h"
#include "h2-test-util.h"
#include "domain-init.h"
#include "encoding.h"
#include "fileio.h"
#include "sign.h"
#include "tests.h"

static void test_name_is_valid(void) {
        CU_ASSERT_TRUE(domain_init_name_is_valid("localhost"));
        CU_ASSERT_TRUE(domain_init_name_is_valid("domain.example"));
        CU_ASSERT_TRUE(domain_init_name_is_valid("a-b.c0.example"));
        CU_ASSERT_FALSE(domain_init_name_is_valid(""));
        CU_ASSERT_FALSE(domain_init_name_is_valid(NULL));
        CU_ASSERT_FALSE(domain_init_name_is_valid("bad name"));
        CU_ASSERT_FALSE(domain_init_name_is_valid(".example"));
        CU_ASSERT_FALSE(domain_init_name_is_valid("a..example"));
        CU_ASSERT_FALSE(domain_init_name_is_valid("a-.example"));
        CU_ASSERT_FALSE(domain_init_name_is_valid("-a.example"));
        CU_ASSERT_FALSE(domain_init_name_is_valid("example."));
        CU_ASSERT_FALSE(domain_init_name_is_valid("*.example"));
        {
                char label[70];

                memset(label, 'a', 64);
                label[64] = '\0';
                CU_ASSERT_FALSE(domain_init_name_is_valid(label));
                label[63] = '\0';
                CU_ASSERT_TRUE(domain_init_name_is_valid(label));
        }
}

static X509 *load_cert(const char *path) {
        FILE *f = fopen(path, "re");
        X509 *x;

        if (!f)
                return NULL;
        x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        return x;
}

static mode_t mode_of(const char *dir, const char *name) {
        char p[512];
        struct stat st;

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        return stat(p, &st) < 0 ? (mode_t) -1 : st.st_mode & 07777;
}

static void test_init(void) {
        char dir[] = "/tmp/rtcl-unit-XXXXXX", p[512];
        char *addresses[] = { (char *) "127.0.0.1", (char *) "::1", (char *) "192.0.2.7", NULL };
        domain_init_options o = {
                .dir = dir, .name = "domain.example", .addresses = addresses, .listen = "::", .port = 9443,
        };
        _cleanup_free_ char *pub = NULL, *pub2 = NULL, *conf = NULL, *token = NULL, *token2 = NULL;
        _cleanup_sign_key_ sign_key *k = NULL;
        X509 *ca, *server;
        EVP_PKEY *ca_pub;
        size_t n;

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        CU_ASSERT_EQUAL_FATAL(domain_init(&o, &pub), 0);

        CU_ASSERT_EQUAL(mode_of(dir, "ca.key"), 0600);
        CU_ASSERT_EQUAL(mode_of(dir, "server.key"), 0600);
        CU_ASSERT_EQUAL(mode_of(dir, "admin-token"), 0600);
        CU_ASSERT_EQUAL(mode_of(dir, "publisher.key"), 0600);
        CU_ASSERT_EQUAL(mode_of(dir, "state"), 0750);

        /* The server certificate verifies against the CA, for the name and
         * the addresses, and is no CA itself. */
        snprintf(p, sizeof(p), "%s/ca.pem", dir);
        ca = load_cert(p);
        snprintf(p, sizeof(p), "%s/server.pem", dir);
        server = load_cert(p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
        CU_ASSERT_PTR_NOT_NULL_FATAL(server);
        ca_pub = X509_get0_pubkey(ca);
        CU_ASSERT_EQUAL(X509_verify(server, ca_pub), 1);
        CU_ASSERT_EQUAL(X509_verify(ca, ca_pub), 1);
        CU_ASSERT_EQUAL(X509_check_ca(ca), 1);
        CU_ASSERT_EQUAL(X509_check_ca(server), 0);
        CU_ASSERT_EQUAL(EVP_PKEY_get_id(ca_pub), EVP_PKEY_EC);
        CU_ASSERT_EQUAL(X509_check_host(server, "domain.example", 0, 0, NULL), 1);
        CU_ASSERT_EQUAL(X509_check_host(server, "localhost", 0, 0, NULL), 1);
        CU_ASSERT_EQUAL(X509_check_host(server, "other.example", 0, 0, NULL), 0);
        CU_ASSERT_EQUAL(X509_check_ip_asc(server, "192.0.2.7", 0), 1);
        CU_ASSERT_EQUAL(X509_check_ip_asc(server, "::1", 0), 1);
        CU_ASSERT_EQUAL(X509_check_ip_asc(server, "192.0.2.8", 0), 0);
        /* Ten years for the CA, give or take leap days. */
        CU_ASSERT_TRUE(X509_cmp_time(X509_get0_notAfter(ca), &(time_t) { time(NULL) + 3649L * 86400 }) > 0);
        CU_ASSERT_TRUE(X509_cmp_time(X509_get0_notAfter(ca), &(time_t) { time(NULL) + 3651L * 86400 }) < 0);
        X509_free(ca);
        X509_free(server);

        /* The publisher key is the one the config trusts. */
        snprintf(p, sizeof(p), "%s/publisher.key", dir);
        CU_ASSERT_EQUAL_FATAL(sign_key_load_private_pem(p, &k), 0);
        CU_ASSERT_EQUAL(sign_key_get_public_base64url(k, &pub2), 0);
        CU_ASSERT_STRING_EQUAL(pub, pub2);
        snprintf(p, sizeof(p), "%s/domain.conf", dir);
        CU_ASSERT_EQUAL_FATAL(read_full_file(p, 65536, &conf, &n), 0);
        snprintf(p, sizeof(p), "TrustedPublishers=%s\n", pub);
        CU_ASSERT_PTR_NOT_NULL(strstr(conf, p));
        snprintf(p, sizeof(p), "TokenFile=%s/admin-token\n", dir);
        CU_ASSERT_PTR_NOT_NULL(strstr(conf, p));
        CU_ASSERT_PTR_NOT_NULL(strstr(conf, "Port=9443\n"));

        /* A second run refuses and changes nothing; --force replaces. */
        snprintf(p, sizeof(p), "%s/admin-token", dir);
        CU_ASSERT_EQUAL(read_full_file(p, 4096, &token, &n), 0);
        CU_ASSERT_EQUAL(domain_init(&o, NULL), -EEXIST);
        CU_ASSERT_EQUAL(read_full_file(p, 4096, &token2, &n), 0);
        CU_ASSERT_STRING_EQUAL(token, token2);
        free(token2);
        token2 = NULL;
        o.force = true;
        CU_ASSERT_EQUAL(domain_init(&o, NULL), 0);
        CU_ASSERT_EQUAL(read_full_file(p, 4096, &token2, &n), 0);
        CU_ASSERT_STRING_NOT_EQUAL(token, token2);

        /* Bad input writes nothing. */
        o.name = "bad name";
        CU_ASSERT_EQUAL(domain_init(&o, NULL), -EINVAL);
        o.name = "domain.example";
        addresses[2] = (char *) "host.example";
        CU_ASSERT_EQUAL(domain_init(&o, NULL), -EINVAL);

        snprintf(p, sizeof(p), "rm -rf '%s'", dir);
        CU_ASSERT_EQUAL(system(p), 0);
}

static int url_result(const char *url) {
        domain_client *c = NULL;
        int r = domain_client_new(url, NULL, "token-0123456789abcdef", 1000000, &c);

        domain_client_free(c);
        return r;
}

static void test_urls(void) {
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1:8080"), 0);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1:8080/"), 0);
        CU_ASSERT_EQUAL(url_result("http://[::1]:8080"), 0);
        CU_ASSERT_EQUAL(url_result("http://localhost"), 0);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1"), 0);
        CU_ASSERT_EQUAL(url_result("ftp://127.0.0.1"), -EPROTONOSUPPORT);
        CU_ASSERT_EQUAL(url_result("127.0.0.1:8080"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://domain.example"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1:0"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1:65536"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1:"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1:+80"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1/admin"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://127.0.0.1?x=1"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://[::1"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://[127.0.0.1]:80"), -EINVAL);
        CU_ASSERT_EQUAL(url_result("http://"), -EINVAL);
}

/* A real HTTP/2 server (the test server of the h2 suites) in a child
 * process: the client under test blocks in its own loop. */
static pid_t server_pid;
static uint16_t server_port;

static void start_server(void) {
        int fds[2];

        CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
        server_pid = fork();
        CU_ASSERT_FATAL(server_pid >= 0);
        if (server_pid == 0) {
                H2TestState state = { .stream_interval_usec = 1000 };
                H2ServerConfig cfg;
                H2Server *srv = NULL;
                uint16_t port;

                close(fds[0]);
                /* Never outlive the test, whatever happens to it. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
                        _exit(1);
                if (sd_event_new(&state.event) < 0)
                        _exit(1);
                h2_server_config_init(&cfg);
                if (h2_server_new(state.event, &cfg, NULL, &srv) < 0)
                        _exit(1);
                h2_server_set_request_handler(srv, h2_test_request_handler, &state);
                h2_server_set_headers_handler(srv, h2_test_headers_handler, &state);
                if (h2_server_listen(srv, "127.0.0.1", 0) < 0)
                        _exit(1);
                port = (uint16_t) h2_server_get_port(srv);
                if (write(fds[1], &port, sizeof(port)) != sizeof(port))
                        _exit(1);
                close(fds[1]);
                (void) sd_event_loop(state.event);
                _exit(0);
        }
        close(fds[1]);
        CU_ASSERT_EQUAL_FATAL(read(fds[0], &server_port, sizeof(server_port)), (ssize_t) sizeof(server_port));
        close(fds[0]);
}

static void stop_server(void) {
        (void) kill(server_pid, SIGKILL);
        (void) waitpid(server_pid, NULL, 0);
}

typedef struct lines {
        unsigned n, stop_after;
        char last[64];
} lines;

static int on_line(const char *line, void *userdata) {
        lines *l = userdata;

        snprintf(l->last, sizeof(l->last), "%s", line);
        l->n++;
        return l->stop_after > 0 && l->n >= l->stop_after ? 7 : 0;
}

static void test_client(void) {
        _cleanup_domain_client_ domain_client *c = NULL;
        domain_response *resp = NULL, *err = NULL;
        char url[64];
        lines l = {};

        start_server();
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", server_port);
        /* This server has no IdM: a client with an admin credential gets
         * the token endpoint's refusal for its first request. */
        CU_ASSERT_EQUAL_FATAL(domain_client_new(url, NULL, "token-0123456789abcdef", 2000000, &c), 0);
        CU_ASSERT_EQUAL_FATAL(domain_client_call(c, "GET", "/hello", NULL, NULL, 0, &resp), 0);
        CU_ASSERT_EQUAL(resp->status, 404);
        resp = domain_response_free(resp);
        c = domain_client_free(c);
        CU_ASSERT_EQUAL_FATAL(domain_client_new(url, NULL, NULL, 2000000, &c), 0);

        CU_ASSERT_EQUAL_FATAL(domain_client_call(c, "GET", "/hello", NULL, NULL, 0, &resp), 0);
        CU_ASSERT_EQUAL(resp->status, 200);
        CU_ASSERT_STRING_EQUAL(resp->body, "hello\n");
        CU_ASSERT_STRING_EQUAL(resp->content_type, "text/plain");
        resp = domain_response_free(resp);

        /* The same connection carries the next request, with a body. */
        CU_ASSERT_EQUAL_FATAL(domain_client_call(c, "POST", "/echo", "application/json", "{\"a\":1}", 7, &resp), 0);
        CU_ASSERT_EQUAL(resp->status, 200);
        CU_ASSERT_EQUAL(resp->size, 7);
        CU_ASSERT_STRING_EQUAL(resp->body, "{\"a\":1}");
        resp = domain_response_free(resp);

        /* Any status is an answer; the JSON error's description is there. */
        CU_ASSERT_EQUAL_FATAL(domain_client_call(c, "GET", "/nope", NULL, NULL, 0, &resp), 0);
        CU_ASSERT_EQUAL(resp->status, 404);
        CU_ASSERT_STRING_EQUAL(domain_response_description(resp), "not found");
        resp = domain_response_free(resp);

        /* A stream: every line, until the server ends it. */
        CU_ASSERT_EQUAL(domain_client_follow(c, "/stream?n=5", on_line, &l, NULL), 0);
        CU_ASSERT_EQUAL(l.n, 5);
        CU_ASSERT_STRING_EQUAL(l.last, "{\"n\":4}");
        /* Until the callback says stop, which comes back; the client stays usable. */
        l = (lines) { .stop_after = 3 };
        CU_ASSERT_EQUAL(domain_client_follow(c, "/stream?n=0", on_line, &l, NULL), 7);
        CU_ASSERT_EQUAL(l.n, 3);
        CU_ASSERT_EQUAL(domain_client_call(c, "GET", "/hello", NULL, NULL, 0, &resp), 0);
        resp = domain_response_free(resp);
        /* A refusal instead of a stream. */
        CU_ASSERT_EQUAL(domain_client_follow(c, "/nope", on_line, &l, &err), -EBADE);
        CU_ASSERT_PTR_NOT_NULL(err);
        CU_ASSERT_EQUAL(err ? err->status : 0, 404);
        err = domain_response_free(err);

        /* A server that never answers: the call's timeout ends it. */
        c = domain_client_free(c);
        CU_ASSERT_EQUAL_FATAL(domain_client_new(url, NULL, NULL, 200000, &c), 0);
        CU_ASSERT_EQUAL(domain_client_call(c, "GET", "/hang", NULL, NULL, 0, &resp), -ETIMEDOUT);
        CU_ASSERT_PTR_NULL(resp);
        CU_ASSERT_STRING_EQUAL(domain_client_error(c), "no answer within the timeout");

        /* Nobody listening. */
        stop_server();
        c = domain_client_free(c);
        CU_ASSERT_EQUAL_FATAL(domain_client_new(url, NULL, NULL, 2000000, &c), 0);
        CU_ASSERT_EQUAL(domain_client_call(c, "GET", "/hello", NULL, NULL, 0, &resp), -ECONNREFUSED);
        CU_ASSERT_PTR_NOT_NULL(strstr(domain_client_error(c), "Connection refused"));
}

static CU_TestInfo tests[] = {
        { "name_is_valid", test_name_is_valid },
        { "init", test_init },
        { "urls", test_urls },
        { "client", test_client },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("ctl-domain", tests)
