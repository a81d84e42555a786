/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The [Domain] keys of agent.conf: values, defaults and errors that name
 * the key. */
#include "config.h"
#include "tests.h"

static char *load(const char *text, agent_config **ret) {
        _cleanup_config_ agent_config *t = NULL;
        char *error = NULL;
        int r;

        CU_ASSERT_EQUAL_FATAL(config_new(&t), 0);
        r = config_load_string(t, "agent.conf", text, ret, &error);
        if (r >= 0) {
                CU_ASSERT_PTR_NULL(error);
        } else {
                CU_ASSERT_PTR_NOT_NULL(error);
        }
        return error;
}

static void test_defaults(void) {
        _cleanup_config_ agent_config *c = NULL;

        CU_ASSERT_PTR_NULL(load("", &c));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        /* No domain: registration is off. */
        CU_ASSERT_PTR_NULL(config_get_domain_url(c));
        CU_ASSERT_PTR_NULL(config_get_domain_ca_file(c));
        CU_ASSERT_PTR_NULL(config_get_domain_endpoint(c));
        CU_ASSERT_PTR_NULL(config_get_domain_name(c));
        CU_ASSERT_EQUAL(config_get_domain_lifetime_sec(c), 3600u);
        CU_ASSERT_EQUAL(config_get_domain_retry_max_usec(c), 600ULL * 1000000ULL);
}

static void test_values(void) {
        _cleanup_config_ agent_config *c = NULL, *d = NULL;

        CU_ASSERT_PTR_NULL(load("[Domain]\nURL=https://192.0.2.10:8443\nCAFile=/etc/rethink/domain-ca.pem\n"
                                "Endpoint=urn:dev:ops:sensor-7\nLifetimeSec=600\nRetryMaxSec=30\nName=example.org\n",
                                &c));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_STRING_EQUAL(config_get_domain_url(c), "https://192.0.2.10:8443");
        CU_ASSERT_STRING_EQUAL(config_get_domain_ca_file(c), "/etc/rethink/domain-ca.pem");
        CU_ASSERT_STRING_EQUAL(config_get_domain_endpoint(c), "urn:dev:ops:sensor-7");
        CU_ASSERT_STRING_EQUAL(config_get_domain_name(c), "example.org");
        CU_ASSERT_EQUAL(config_get_domain_lifetime_sec(c), 600u);
        CU_ASSERT_EQUAL(config_get_domain_retry_max_usec(c), 30ULL * 1000000ULL);

        /* An empty assignment goes back to the default (off). */
        CU_ASSERT_PTR_NULL(load("[Domain]\nURL=http://127.0.0.1:8080\nURL=\n", &d));
        CU_ASSERT_PTR_NULL(config_get_domain_url(d));
}

static void expect_error(const char *text, const char *part) {
        _cleanup_config_ agent_config *c = NULL;
        _cleanup_free_ char *e = load(text, &c);

        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        if (!strstr(e, part))
                fprintf(stderr, "error \"%s\" lacks \"%s\"\n", e, part);
        CU_ASSERT_PTR_NOT_NULL(strstr(e, part));
}

static void test_errors_name_the_key(void) {
        expect_error("[Domain]\nURL=domain.example\n", "agent.conf:2: [Domain] URL=domain.example: expected https://");
        expect_error("[Domain]\nURL=http://192.0.2.1:80\n", "[Domain] URL=http://192.0.2.1:80: cleartext http:// only to a loopback");
        expect_error("[Domain]\nURL=https://domain.example\n", "[Domain] URL=https://domain.example: host must be a numeric");
        expect_error("[Domain]\nURL=https://192.0.2.1/x\n", "[Domain] URL=");
        expect_error("[Domain]\nCAFile=ca.pem\n", "[Domain] CAFile=ca.pem: not an absolute path");
        expect_error("[Domain]\nEndpoint=a b\n", "[Domain] Endpoint=a b: expected 1-64 characters");
        expect_error("[Domain]\nLifetimeSec=0\n", "[Domain] LifetimeSec=0: out of range (1-2592000)");
        expect_error("[Domain]\nRetryMaxSec=0\n", "[Domain] RetryMaxSec=0: out of range");
        expect_error("[Domain]\nUrl=https://192.0.2.1\n", "Url");
        expect_error("[Domain]\nName=Example.org\n", "[Domain] Name=Example.org: expected a lowercase DNS name");
        expect_error("[Domain]\nName=example.org/x\n", "[Domain] Name=example.org/x: expected");
        expect_error("[Domain]\nName=example.org:8443\n", "[Domain] Name=example.org:8443: expected");
}

static void test_flags(void) {
        _cleanup_config_ agent_config *t = NULL, *c = NULL;
        _cleanup_free_ char *error = NULL;
        char *argv[] = { (char *) "rethink-agent", (char *) "--domain-url=http://[::1]:9000",
                         (char *) "--endpoint=dev-1", (char *) "--lifetime-sec=120", NULL };
        char *bad[] = { (char *) "rethink-agent", (char *) "--domain-url=https://x", NULL };

        CU_ASSERT_EQUAL_FATAL(config_new(&t), 0);
        CU_ASSERT_EQUAL_FATAL(config_parse_argv(t, 4, argv, &error), 0);
        CU_ASSERT_EQUAL_FATAL(config_load_string(t, "agent.conf", "[Domain]\nURL=https://192.0.2.1\n", &c, &error), 0);
        /* Flags win over the file. */
        CU_ASSERT_STRING_EQUAL(config_get_domain_url(c), "http://[::1]:9000");
        CU_ASSERT_STRING_EQUAL(config_get_domain_endpoint(c), "dev-1");
        CU_ASSERT_EQUAL(config_get_domain_lifetime_sec(c), 120u);

        t = config_free(t);
        CU_ASSERT_EQUAL_FATAL(config_new(&t), 0);
        CU_ASSERT_EQUAL(config_parse_argv(t, 2, bad, &error), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(strna(error), "([Domain] URL)"));
}

static CU_TestInfo tests[] = {
        { "defaults: no domain, registration off", test_defaults },
        { "[Domain] values", test_values },
        { "errors name the key", test_errors_name_the_key },
        { "flags", test_flags },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("registration-config", tests)
