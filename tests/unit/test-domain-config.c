/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethink-domain's configuration: keys, flags, errors that name the key,
 * the rules that tie keys together, and a domain served over TLS. */

#include "test-domain-util.h"
#include "tests.h"
#include "tls.h"

static int load(const char *text, domain_config **ret, char **ret_error) {
        _cleanup_domain_config_ domain_config *args = NULL;

        CU_ASSERT_EQUAL_FATAL(domain_config_new(&args), 0);
        return domain_config_load_string(args, "domain.conf", text, ret, ret_error);
}

static void expect_error(const char *text, const char *want) {
        _cleanup_domain_config_ domain_config *c = NULL;
        _cleanup_free_ char *error = NULL;

        CU_ASSERT_EQUAL(load(text, &c, &error), -EINVAL);
        CU_ASSERT_PTR_NULL(c);
        if (!error || !strstr(error, want))
                fprintf(stderr, "error \"%s\" lacks \"%s\"\n", strna(error), want);
        CU_ASSERT_PTR_NOT_NULL(error && strstr(error, want));
}

static void test_defaults(void) {
        _cleanup_domain_config_ domain_config *c = NULL;
        _cleanup_free_ char *error = NULL;

        /* The default listen address is every address, which needs TLS. */
        CU_ASSERT_EQUAL(load("", &c, &error), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(error && strstr(error, "[HTTP] Listen: ::: cleartext h2c is only allowed on a loopback"));
        free(error);
        error = NULL;

        CU_ASSERT_EQUAL_FATAL(load("[HTTP]\nListen=::1\n", &c, &error), 0);
        CU_ASSERT_STRING_EQUAL(domain_config_get_state_directory(c), "/var/lib/rethink-domain");
        CU_ASSERT_STRING_EQUAL(domain_config_get_listen(c), "::1");
        CU_ASSERT_EQUAL(domain_config_get_port(c), 8443);
        CU_ASSERT_PTR_NULL(domain_config_get_certificate(c));
        CU_ASSERT_PTR_NULL(domain_config_get_admin_token(c));
        CU_ASSERT_PTR_NULL(domain_config_get_trusted_publishers(c)[0]);
        CU_ASSERT_EQUAL(domain_config_get_max_package_size(c), 268435456);
        CU_ASSERT_EQUAL(domain_config_get_default_lifetime_sec(c), 86400);
        CU_ASSERT_EQUAL(domain_config_get_min_lifetime_sec(c), 60);
        CU_ASSERT_EQUAL(domain_config_get_max_lifetime_sec(c), 2592000);
        CU_ASSERT_EQUAL(domain_config_get_shutdown_grace_usec(c), 5000000);
        CU_ASSERT_EQUAL(domain_config_get_request_timeout_usec(c), 300000000);
}

static void test_errors(void) {
        expect_error("[HTTP]\nListen=127.0.0.1\nPort=http\n", "domain.conf:3: [HTTP] Port=http: not a number");
        expect_error("[HTTP]\nListen=127.0.0.1\nPort=70000\n", "[HTTP] Port=70000: out of range (0-65535)");
        expect_error("[HTTP]\nListen=localhost\n", "[HTTP] Listen=localhost: not a numeric IPv4 or IPv6 address");
        expect_error("[HTTP]\nListen=127.0.0.1\nColour=blue\n", "[HTTP] Colour=blue: unknown key");
        expect_error("[Nope]\nX=1\n", "[Nope] X=1: unknown key");
        expect_error("[Domain]\nStateDirectory=relative\n", "[Domain] StateDirectory=relative: not an absolute path");
        expect_error("[Domain]\nLogLevel=loud\n", "[Domain] LogLevel=loud: not a log level");
        expect_error("[HTTP]\nListen=10.1.2.3\n", "[HTTP] Listen: 10.1.2.3: cleartext h2c is only allowed on a loopback");
        expect_error("[HTTP]\nListen=127.0.0.1\nCertificate=/x.pem\n", "[HTTP] PrivateKey: Certificate= and PrivateKey= go together");
        expect_error("[HTTP]\nListen=127.0.0.1\n[Catalogue]\nTrustedPublishers=abc\n",
                     "[Catalogue] TrustedPublishers=abc: entry 1 is not a base64url Ed25519 public key");
        expect_error("[HTTP]\nListen=127.0.0.1\n[Catalogue]\nMaxPackageSize=0\n", "[Catalogue] MaxPackageSize=0: out of range");
        expect_error("[HTTP]\nListen=127.0.0.1\n[DeviceManagement]\nMinLifetimeSec=100\nMaxLifetimeSec=50\n",
                     "[DeviceManagement] MinLifetimeSec: 100 is above MaxLifetimeSec=50");
        expect_error("[HTTP]\nListen=127.0.0.1\n[DeviceManagement]\nDefaultLifetimeSec=10\n",
                     "[DeviceManagement] DefaultLifetimeSec: 10 is outside");
        expect_error("[HTTP]\nListen=127.0.0.1\n[Admin]\nTokenFile=/nonexistent/token\n",
                     "[Admin] TokenFile: /nonexistent/token: No such file or directory");
        expect_error("Port=1\n", "domain.conf:1:");
}

static void test_loopback(void) {
        CU_ASSERT_TRUE(domain_address_is_loopback("127.0.0.1"));
        CU_ASSERT_TRUE(domain_address_is_loopback("127.8.9.10"));
        CU_ASSERT_TRUE(domain_address_is_loopback("::1"));
        CU_ASSERT_TRUE(domain_address_is_loopback("::ffff:127.0.0.1"));
        CU_ASSERT_FALSE(domain_address_is_loopback("::"));
        CU_ASSERT_FALSE(domain_address_is_loopback("0.0.0.0"));
        CU_ASSERT_FALSE(domain_address_is_loopback("128.0.0.1"));
        CU_ASSERT_FALSE(domain_address_is_loopback("::2"));
        CU_ASSERT_FALSE(domain_address_is_loopback("localhost"));
        CU_ASSERT_FALSE(domain_address_is_loopback(NULL));
}

static void test_token_file(void) {
        char dir[] = "/tmp/domain-config-XXXXXX", path[128], *text = NULL;
        _cleanup_domain_config_ domain_config *c = NULL;
        _cleanup_free_ char *error = NULL;

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/token", dir);

        CU_ASSERT_EQUAL(write_file_atomic(path, "short\n", 6, 0600), 0);
        CU_ASSERT_FATAL(asprintf(&text, "[HTTP]\nListen=127.0.0.1\n[Admin]\nTokenFile=%s\n", path) > 0);
        CU_ASSERT_EQUAL(load(text, &c, &error), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(error && strstr(error, "shorter than 16"));
        free(error);
        error = NULL;

        CU_ASSERT_EQUAL(write_file_atomic(path, "with space in it 12345\n", 23, 0600), 0);
        CU_ASSERT_EQUAL(load(text, &c, &error), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(error && strstr(error, "one line of printable ASCII"));
        free(error);
        error = NULL;

        CU_ASSERT_EQUAL(write_file_atomic(path, "0123456789abcdef0123\n", 21, 0600), 0);
        CU_ASSERT_EQUAL_FATAL(load(text, &c, &error), 0);
        CU_ASSERT_STRING_EQUAL(domain_config_get_admin_token(c), "0123456789abcdef0123");

        unlink(path);
        rmdir(dir);
        free(text);
}

static void test_argv(void) {
        _cleanup_domain_config_ domain_config *args = NULL, *c = NULL;
        _cleanup_free_ char *error = NULL;
        char *argv[] = { (char *) "rethink-domain", (char *) "--listen=::1", (char *) "--port", (char *) "9000",
                         (char *) "--min-lifetime-sec=5", NULL };
        char *bad[] = { (char *) "rethink-domain", (char *) "--port=x", NULL };
        char *unknown[] = { (char *) "rethink-domain", (char *) "--frobnicate", NULL };

        CU_ASSERT_EQUAL_FATAL(domain_config_new(&args), 0);
        CU_ASSERT_EQUAL(domain_config_parse_argv(args, 5, argv, &error), 0);
        /* Flags win over the file. */
        CU_ASSERT_EQUAL_FATAL(domain_config_load_string(args, "domain.conf", "[HTTP]\nPort=1234\nListen=10.0.0.1\n", &c,
                                                        &error),
                              0);
        CU_ASSERT_EQUAL(domain_config_get_port(c), 9000);
        CU_ASSERT_STRING_EQUAL(domain_config_get_listen(c), "::1");
        CU_ASSERT_EQUAL(domain_config_get_min_lifetime_sec(c), 5);

        CU_ASSERT_EQUAL(domain_config_parse_argv(args, 2, bad, &error), -EINVAL);
        CU_ASSERT_STRING_EQUAL(strna(error), "--port=x: not a number ([HTTP] Port)");
        free(error);
        error = NULL;
        CU_ASSERT_EQUAL(domain_config_parse_argv(args, 2, unknown, &error), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(error && strstr(error, "unknown option"));
}

/* A reload that drops the publisher: what it signs is refused from then on. */
static void test_reload(void) {
        _cleanup_domain_config_ domain_config *n = NULL;
        _cleanup_free_ char *error = NULL, *text = NULL;
        DomainTest t;
        H2TestFetch f;

        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, NULL), 0);
        CU_ASSERT_FATAL(asprintf(&text, "[Domain]\nStateDirectory=%s\n[HTTP]\nListen=127.0.0.1\nPort=0\n", t.state) > 0);
        CU_ASSERT_EQUAL_FATAL(load(text, &n, &error), 0);
        CU_ASSERT_EQUAL(domain_apply_config(t.domain, TAKE_PTR(n)), 0);

        /* No admin credential configured any more: the admin API is closed. */
        dt_request(&t, &f, "GET", "/admin/devices", dt_admin(), 1, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 401, "admin API off"));
        h2_test_fetch_done(&f);
        dt_teardown(&t);
}

static void test_tls(void) {
        _cleanup_ssl_ctx_ SSL_CTX *client_tls = NULL;
        _cleanup_free_ char *extra = NULL;
        H2TestCerts certs;
        DomainTest t;
        H2Client *c = NULL;
        H2TestConn conn = {};
        H2TestFetch f;

        CU_ASSERT_EQUAL_FATAL(h2_test_certs_make(&certs), 0);
        CU_ASSERT_FATAL(asprintf(&extra, "[HTTP]\nCertificate=%s\nPrivateKey=%s\n", certs.cert, certs.key) > 0);
        CU_ASSERT_EQUAL_FATAL(dt_setup(&t, extra), 0);
        CU_ASSERT_EQUAL_FATAL(tls_client_ctx_new(certs.ca, &client_tls), 0);
        CU_ASSERT_EQUAL_FATAL(h2_client_new(t.event, "127.0.0.1", (uint16_t) domain_get_port(t.domain), client_tls,
                                            "localhost", NULL, h2_test_conn_callbacks(), &conn, &c),
                              0);
        memset(&f, 0, sizeof(f));
        CU_ASSERT_EQUAL(h2_client_request(c, "GET", "/.well-known/hyperty/", NULL, 0, NULL, 0, 0,
                                          h2_test_fetch_callbacks(false), &f, &f.req),
                        0);
        CU_ASSERT_TRUE(h2_test_run_until(t.event, &f.done, 30));
        CU_ASSERT_EQUAL(f.error, 0);
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_STRING_EQUAL(f.body ? (char *) f.body : "", "[]");
        h2_test_fetch_done(&f);

        /* The cleartext client of the fixture gets nowhere on a TLS port. */
        CU_ASSERT_TRUE(h2_test_run_until(t.event, &t.conn.closed, 30));
        CU_ASSERT_NOT_EQUAL(t.conn.close_error, 0);
        CU_ASSERT_FALSE(h2_client_is_usable(t.client));

        h2_client_unref(c);
        dt_teardown(&t);
        h2_test_certs_remove(&certs);
}

static CU_TestInfo tests[] = {
        { "defaults", test_defaults },
        { "errors name the key", test_errors },
        { "loopback addresses", test_loopback },
        { "admin token file", test_token_file },
        { "flags override the file", test_argv },
        { "reload applies", test_reload },
        { "TLS listener", test_tls },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("domain-config", tests)
