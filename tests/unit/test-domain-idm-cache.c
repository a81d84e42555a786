/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cache of verified access tokens: the module itself (hits, deadline,
 * eviction) and idm_check_bearer() over real HTTP/2 with it, where a token
 * that was cached and then expired, and an altered cached token, must be
 * refused like any other. */

#include <jansson.h>

#include "auth.h"
#include "h2-test-util.h"
#include "idm.h"
#include "router.h"
#include "tests.h"
#include "token-cache.h"

#define DOMAIN "example.org"

static struct {
        char dir[64];
        sd_event *event;
        auth *auth;
        router *router;
        H2Server *server;
        idm *idm;
        H2Client *client;
        H2TestConn conn;
} t;

static int on_check(route_request *rr, void *userdata) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        _cleanup_free_ char *scope = NULL;
        const char *reason = NULL;
        json_t *o;
        int r;

        (void) route_query_get(rr, "scope", &scope);
        r = idm_check_bearer(t.idm, route_request_get_request(rr), scope, &claims, &reason);
        if (r == -EPERM)
                return route_respond_error(rr, 403, "%s", strna(reason));
        if (r == -EACCES)
                return route_respond_error(rr, 401, "%s", strna(reason));
        if (r < 0)
                return r;
        o = json_pack("{s:s, s:s}", "sub", token_claims_get_subject(claims), "scope", token_claims_get_scope(claims));
        r = route_respond_json(rr, 200, o, NULL, 0);
        json_decref(o);
        return r;
}

static const route check_routes[] = {
        { .method = "GET", .pattern = "/test/check", .handler = on_check },
};

static int setup(void) {
        snprintf(t.dir, sizeof(t.dir), "/tmp/idm-cache-test-XXXXXX");
        if (!mkdtemp(t.dir))
                return -1;
        if (sd_event_new(&t.event) < 0 || auth_new(&t.auth) < 0 || router_new(t.auth, &t.router) < 0 ||
            idm_new(t.dir, DOMAIN, &t.idm) < 0 || idm_add_routes(t.idm, t.router) < 0 ||
            router_add(t.router, check_routes, ELEMENTSOF(check_routes), NULL) < 0 ||
            h2_server_new(t.event, NULL, NULL, &t.server) < 0)
                return -1;
        router_attach(t.router, t.server);
        if (h2_server_listen(t.server, "127.0.0.1", 0) < 0)
                return -1;
        return h2_client_new(t.event, "127.0.0.1", (uint16_t) h2_server_get_port(t.server), NULL, NULL, NULL,
                             h2_test_conn_callbacks(), &t.conn, &t.client) < 0
                       ? -1
                       : 0;
}

static int cleanup(void) {
        t.client = h2_client_unref(t.client);
        t.server = h2_server_free(t.server);
        t.idm = idm_free(t.idm);
        t.router = router_free(t.router);
        t.auth = auth_free(t.auth);
        t.event = sd_event_unref(t.event);
        (void) nftw(t.dir, h2_test_rm, 8, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static token_key *idm_private_key(void) {
        _cleanup_free_ char *path = NULL;
        token_key *k = NULL;

        CU_ASSERT_FATAL(asprintf(&path, "%s/%s", t.dir, IDM_KEY_FILE_NAME) > 0);
        CU_ASSERT_EQUAL_FATAL(token_key_load_private_pem(path, &k), 0);
        return k;
}

static char *issue(const token_key *k, const char *subject, const char *scope, usec_t lifetime, usec_t when) {
        char *s = NULL;

        CU_ASSERT_EQUAL_FATAL(token_issue(k, &(token_issue_params) { .issuer = DOMAIN, .subject = subject, .audience = DOMAIN,
                                                                      .scope = scope, .lifetime = lifetime, .now = when },
                                          &s),
                              0);
        return s;
}

static token_claims *verified(const token_key *k, const char *token) {
        _cleanup_token_keyset_ token_keyset *ks = NULL;
        token_claims *c = NULL;

        CU_ASSERT_EQUAL_FATAL(token_keyset_new(&ks), 0);
        CU_ASSERT_EQUAL_FATAL(token_keyset_add(ks, k), 0);
        CU_ASSERT_EQUAL_FATAL(token_verify(ks, token, &(token_verify_params) { .issuer = DOMAIN, .audience = DOMAIN }, &c,
                                           NULL),
                              0);
        return c;
}

/* --- the module ----------------------------------------------------------------------- */

static void test_cache_basics(void) {
        _cleanup_token_cache_ token_cache *c = NULL;
        _cleanup_token_key_ token_key *k = idm_private_key();
        _cleanup_free_ char *a = issue(k, "sensor-a", "runtime", USEC_PER_HOUR, 0), *b = NULL;
        _cleanup_token_claims_ token_claims *ca = verified(k, a), *got = NULL;
        usec_t n = now(CLOCK_REALTIME);

        CU_ASSERT_EQUAL(token_cache_new(0, &c), -EINVAL);
        CU_ASSERT_EQUAL_FATAL(token_cache_new(4, &c), 0);
        CU_ASSERT_EQUAL(token_cache_get(c, a, n, &got), -ENOENT);
        CU_ASSERT_EQUAL(token_cache_put(c, a, ca, n + USEC_PER_MINUTE), 0);
        CU_ASSERT_EQUAL(token_cache_get(c, a, n, &got), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(got), "sensor-a");
        CU_ASSERT(token_claims_has_scope(got, "runtime"));
        /* The handle outlives the cache entry. */
        token_cache_clear(c);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(got), "sensor-a");
        CU_ASSERT_EQUAL(token_cache_get_stats(c).size, 0u);
        got = token_claims_free(got);

        /* One character more or less is another token. */
        CU_ASSERT_EQUAL(token_cache_put(c, a, ca, n + USEC_PER_MINUTE), 0);
        b = strdup(a);
        b[strlen(b) - 1] = '\0';
        CU_ASSERT_EQUAL(token_cache_get(c, b, n, &got), -ENOENT);
        CU_ASSERT_PTR_NULL(got);

        /* Past the deadline: a miss, and the entry is gone. */
        CU_ASSERT_EQUAL(token_cache_get(c, a, n + USEC_PER_MINUTE, &got), 0);
        got = token_claims_free(got);
        CU_ASSERT_EQUAL(token_cache_get(c, a, n + USEC_PER_MINUTE + 1, &got), -ENOENT);
        CU_ASSERT_PTR_NULL(got);
        CU_ASSERT_EQUAL(token_cache_get_stats(c).size, 0u);
        CU_ASSERT_EQUAL(token_cache_get_stats(c).hits, 2u);
}

static void test_cache_eviction(void) {
        _cleanup_token_cache_ token_cache *c = NULL;
        _cleanup_token_key_ token_key *k = idm_private_key();
        char *tokens[9] = {};
        token_claims *claims[9] = {};
        usec_t deadline = now(CLOCK_REALTIME) + USEC_PER_HOUR;
        size_t present = 0;

        CU_ASSERT_EQUAL_FATAL(token_cache_new(4, &c), 0);
        for (size_t i = 0; i < ELEMENTSOF(tokens); i++) {
                char sub[16];

                snprintf(sub, sizeof(sub), "dev-%zu", i);
                tokens[i] = issue(k, sub, "runtime", USEC_PER_HOUR, 0);
                claims[i] = verified(k, tokens[i]);
        }
        for (size_t i = 0; i < 4; i++)
                CU_ASSERT_EQUAL(token_cache_put(c, tokens[i], claims[i], deadline), 0);
        /* Replacing an entry does not grow the cache. */
        CU_ASSERT_EQUAL(token_cache_put(c, tokens[0], claims[0], deadline), 0);
        CU_ASSERT_EQUAL(token_cache_get_stats(c).size, 4u);
        CU_ASSERT_EQUAL(token_cache_get_stats(c).evictions, 0u);

        for (size_t i = 4; i < ELEMENTSOF(tokens); i++) {
                token_claims *got = NULL;

                /* dev-0 is used before every insertion: the clock keeps it. */
                CU_ASSERT_EQUAL(token_cache_get(c, tokens[0], 0, &got), 0);
                token_claims_free(got);
                CU_ASSERT_EQUAL(token_cache_put(c, tokens[i], claims[i], deadline), 0);
                CU_ASSERT_EQUAL(token_cache_get_stats(c).size, 4u);
        }
        CU_ASSERT_EQUAL(token_cache_get_stats(c).evictions, 5u);
        for (size_t i = 0; i < ELEMENTSOF(tokens); i++) {
                token_claims *got = NULL;

                if (token_cache_get(c, tokens[i], 0, &got) == 0) {
                        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(got), token_claims_get_subject(claims[i]));
                        present++;
                }
                token_claims_free(got);
        }
        CU_ASSERT_EQUAL(present, 4u);
        /* The one in constant use and the newest are among them. */
        for (size_t i = 0; i < ELEMENTSOF(tokens); i += ELEMENTSOF(tokens) - 1) {
                token_claims *got = NULL;

                CU_ASSERT_EQUAL(token_cache_get(c, tokens[i], 0, &got), 0);
                token_claims_free(got);
        }

        for (size_t i = 0; i < ELEMENTSOF(tokens); i++) {
                free(tokens[i]);
                token_claims_free(claims[i]);
        }
}

/* --- idm_check_bearer with the cache ------------------------------------------------------ */

static void check(const char *token, const char *scope, int status, const char *part) {
        _cleanup_free_ char *authorization = NULL, *path = NULL;
        H2TestFetch f = {};
        json_t *j;

        CU_ASSERT_FATAL(asprintf(&path, "/test/check?scope=%s", scope) > 0);
        CU_ASSERT_FATAL(asprintf(&authorization, "Bearer %s", token) > 0);
        CU_ASSERT_EQUAL_FATAL(h2_client_request(t.client, "GET", path, (const H2Header[]) { { "authorization", authorization } },
                                                1, NULL, 0, 0, h2_test_fetch_callbacks(false), &f, &f.req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(t.event, &f.done, 30));
        CU_ASSERT_EQUAL(f.status, status);
        j = f.body ? json_loadb((const char *) f.body, f.size, 0, NULL) : NULL;
        if (part) {
                const char *d = json_string_value(json_object_get(j, "description"));
                CU_ASSERT(d && strstr(d, part));
                if (!d || !strstr(d, part))
                        fprintf(stderr, "expected \"%s\", got %.*s\n", part, (int) f.size, f.body ? (char *) f.body : "");
        }
        json_decref(j);
        h2_test_fetch_done(&f);
}

static void test_bearer_cached(void) {
        _cleanup_token_key_ token_key *k = idm_private_key();
        _cleanup_free_ char *device = NULL, *tampered = NULL, *tampered_payload = NULL;
        token_cache_stats s0, s1;
        char *dot;

        CU_ASSERT_EQUAL_FATAL(idm_issue(t.idm, "sensor-1", "runtime", USEC_PER_HOUR, &device), 0);
        s0 = idm_get_verify_cache_stats(t.idm);
        check(device, "runtime", 200, NULL);
        check(device, "runtime", 200, NULL);
        /* The scope is checked on every use, cached or not. */
        check(device, "admin", 403, "missing scope");
        s1 = idm_get_verify_cache_stats(t.idm);
        CU_ASSERT_EQUAL(s1.misses - s0.misses, 1u);
        CU_ASSERT_EQUAL(s1.hits - s0.hits, 2u);

        /* The cached token with one character of its signature changed, and
         * one of its payload: other tokens, verified in full, refused. */
        tampered = strdup(device);
        dot = strrchr(tampered, '.');
        dot[10] = dot[10] == 'A' ? 'B' : 'A';
        check(tampered, "runtime", 401, "signature");
        tampered_payload = strdup(device);
        dot = strchr(tampered_payload, '.');
        dot[5] = dot[5] == 'A' ? 'B' : 'A';
        check(tampered_payload, "runtime", 401, NULL);
        /* Refused tokens are not remembered: the same again is a miss. */
        s0 = idm_get_verify_cache_stats(t.idm);
        check(tampered, "runtime", 401, "signature");
        s1 = idm_get_verify_cache_stats(t.idm);
        CU_ASSERT_EQUAL(s1.hits, s0.hits);
        CU_ASSERT_EQUAL(s1.misses - s0.misses, 1u);
        check(device, "runtime", 200, NULL);
}

static void test_bearer_cached_then_expired(void) {
        _cleanup_token_key_ token_key *k = idm_private_key();
        _cleanup_free_ char *old = NULL;
        token_cache_stats s0, s1;

        /* exp 25 s ago: still inside the verifier's 30 s leeway, so it
         * verifies and is cached, and leaves the leeway 5 s from now. */
        old = issue(k, "sensor-1", "runtime", USEC_PER_HOUR, now(CLOCK_REALTIME) - USEC_PER_HOUR - 25 * USEC_PER_SEC);
        s0 = idm_get_verify_cache_stats(t.idm);
        check(old, "runtime", 200, NULL);
        check(old, "runtime", 200, NULL);
        s1 = idm_get_verify_cache_stats(t.idm);
        CU_ASSERT_EQUAL(s1.hits - s0.hits, 1u);

        sleep(6);
        check(old, "runtime", 401, "expired");
        check(old, "runtime", 401, "expired");
        s0 = idm_get_verify_cache_stats(t.idm);
        CU_ASSERT_EQUAL(s0.hits, s1.hits);
}

CU_TestInfo tests[] = {
        { "cache basics", test_cache_basics },
        { "cache eviction", test_cache_eviction },
        { "bearer cached", test_bearer_cached },
        { "bearer cached then expired", test_bearer_cached_then_expired },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-idm-cache", tests, setup, cleanup)
