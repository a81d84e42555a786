/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's copy of the domain's key set: fetched over real HTTP/2 (TLS
 * with a CA, and h2c) from a server on loopback that plays the domain's
 * GET /idm/jwks, so the test can make it rotate keys, fail and serve
 * garbage. Waiting, rate limits, refresh, failures keeping the keys. */

#include <jansson.h>

#include "h2-server.h"
#include "h2-test-util.h"
#include "jwks-cache.h"
#include "tests.h"
#include "tls.h"
#include "token.h"

#define DOM "jwks.test"

typedef struct JwksTest {
        sd_event *event;
        H2TestCerts certs;
        H2Server *server;
        int port;
        char *body; /* what GET /idm/jwks answers; NULL: 500 */
        unsigned fetches;
        token_key *key;
        jwks_cache *cache;
        unsigned ready_calls;
} JwksTest;

static JwksTest T;

static int on_request(H2Request *req, void *userdata) {
        if (!streq(h2_request_get_path(req), "/idm/jwks"))
                return h2_request_respond_error(req, 404, "no");
        T.fetches++;
        if (!T.body)
                return h2_request_respond_error(req, 500, "broken");
        return h2_request_respond(req, 200, (const H2Header[]) { { "content-type", "application/jwk-set+json" } }, 1,
                                  T.body, strlen(T.body));
}

static void serve_keys(const token_key *a, const token_key *b) {
        _cleanup_token_keyset_ token_keyset *s = NULL;

        free(T.body);
        T.body = NULL;
        CU_ASSERT_EQUAL_FATAL(token_keyset_new(&s), 0);
        if (a)
                CU_ASSERT_EQUAL_FATAL(token_keyset_add(s, a), 0);
        if (b)
                CU_ASSERT_EQUAL_FATAL(token_keyset_add(s, b), 0);
        CU_ASSERT_EQUAL_FATAL(token_keyset_to_jwks(s, &T.body), 0);
}

static void start(bool tls, const char *ca, usec_t refresh, usec_t min_refetch) {
        _cleanup_ssl_ctx_ SSL_CTX *ctx = NULL;
        char url[64];

        memset(&T, 0, sizeof(T));
        CU_ASSERT_EQUAL_FATAL(sd_event_new(&T.event), 0);
        CU_ASSERT_EQUAL_FATAL(h2_test_certs_make(&T.certs), 0);
        if (tls)
                CU_ASSERT_EQUAL_FATAL(tls_server_ctx_new(T.certs.cert, T.certs.key, &ctx), 0);
        CU_ASSERT_EQUAL_FATAL(h2_server_new(T.event, NULL, ctx, &T.server), 0);
        h2_server_set_request_handler(T.server, on_request, NULL);
        CU_ASSERT_EQUAL_FATAL(h2_server_listen(T.server, "127.0.0.1", 0), 0);
        T.port = h2_server_get_port(T.server);
        CU_ASSERT_EQUAL_FATAL(token_key_generate(&T.key), 0);
        serve_keys(T.key, NULL);
        snprintf(url, sizeof(url), "%s://127.0.0.1:%d", tls ? "https" : "http", T.port);
        CU_ASSERT_EQUAL_FATAL(jwks_cache_new(T.event,
                                             &(jwks_cache_options) { .url = url,
                                                                     .ca_file = ca ? ca : T.certs.ca,
                                                                     .domain = DOM,
                                                                     .refresh_usec = refresh,
                                                                     .min_refetch_usec = min_refetch },
                                             &T.cache),
                              0);
}

static void stop(void) {
        T.cache = jwks_cache_free(T.cache);
        T.server = h2_server_free(T.server);
        T.key = token_key_free(T.key);
        free(T.body);
        T.event = sd_event_unref(T.event);
        h2_test_certs_remove(&T.certs);
}

static char *issue(const token_key *k, const char *scope) {
        char *s = NULL;

        CU_ASSERT_EQUAL_FATAL(token_issue(k,
                                          &(token_issue_params) { .issuer = DOM,
                                                                  .subject = "gw-1",
                                                                  .audience = DOM,
                                                                  .scope = scope,
                                                                  .lifetime = USEC_PER_HOUR },
                                          &s),
                              0);
        return s;
}

static void on_ready(jwks_cache *c, void *userdata) {
        bool *flag = userdata;

        T.ready_calls++;
        if (flag)
                *flag = true;
}

/* Verifies, waiting for fetches while the cache asks for them (on a slow
 * machine a fetch may outlast the short rate limits used here, so an
 * unknown kid can ask more than once). */
static int verify_waiting(const char *token, const char *scope, const token_claims **ret, const char **reason) {
        int r;

        for (unsigned i = 0; i < 20; i++) {
                bool ready = false;

                r = jwks_cache_verify(T.cache, token, scope, ret, reason);
                if (r != -EBUSY)
                        return r;
                CU_ASSERT_EQUAL_FATAL(jwks_cache_wait(T.cache, on_ready, &ready, NULL), 0);
                CU_ASSERT_TRUE_FATAL(h2_test_run_until(T.event, &ready, 30));
        }
        return r;
}

static void test_first_fetch_on_demand(void) {
        _cleanup_free_ char *tok = NULL, *other = NULL;
        const token_claims *claims = NULL;
        const char *reason = NULL;

        start(true, NULL, 0, 0);
        tok = issue(T.key, "peer");
        CU_ASSERT_FALSE(jwks_cache_is_ready(T.cache));
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, NULL, &claims, &reason), -EBUSY);
        CU_ASSERT_EQUAL(verify_waiting(tok, "peer", &claims, &reason), 0);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(claims), "gw-1");
        CU_ASSERT_EQUAL(T.fetches, 1);
        CU_ASSERT_EQUAL(jwks_cache_get_n_fetches(T.cache), 1);
        CU_ASSERT_EQUAL(jwks_cache_get_n_keys(T.cache), 1);

        /* Scope, as token_verify() checks it; nothing is fetched for it. */
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, "admin", NULL, &reason), -EPERM);
        /* Tokens of another key: the set was fetched a moment ago, so with
         * the default rate limit (30 s) -ENOKEY at once, no new fetch. */
        {
                _cleanup_token_key_ token_key *k2 = NULL;
                CU_ASSERT_EQUAL_FATAL(token_key_generate(&k2), 0);
                other = issue(k2, "peer");
        }
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, other, NULL, NULL, &reason), -ENOKEY);
        CU_ASSERT_STRING_EQUAL(reason, "unknown kid");
        h2_test_run_for(T.event, 100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(T.fetches, 1);
        stop();
}

static void test_rotation_and_refresh(void) {
        _cleanup_token_key_ token_key *k2 = NULL;
        _cleanup_free_ char *old = NULL, *fresh = NULL;
        const char *reason = NULL;

        start(false, NULL, 500 * USEC_PER_MSEC, 100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(jwks_cache_start(T.cache), 0);
        old = issue(T.key, NULL);
        CU_ASSERT_EQUAL(verify_waiting(old, NULL, NULL, &reason), 0);

        /* The domain adds a key: a token naming it makes the cache fetch. */
        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k2), 0);
        serve_keys(T.key, k2);
        fresh = issue(k2, NULL);
        h2_test_run_for(T.event, 150 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(verify_waiting(fresh, NULL, NULL, &reason), 0);
        CU_ASSERT_EQUAL(jwks_cache_get_n_keys(T.cache), 2);

        /* The domain drops the old key: the periodic refresh notices
         * without any request. */
        serve_keys(k2, NULL);
        unsigned before = T.fetches;
        for (unsigned i = 0; i < 100 && jwks_cache_get_n_keys(T.cache) != 1; i++)
                (void) sd_event_run(T.event, 100000);
        CU_ASSERT_TRUE(T.fetches >= before + 1);
        CU_ASSERT_EQUAL(jwks_cache_get_n_keys(T.cache), 1);
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, fresh, NULL, NULL, &reason), 0);
        /* The old token was verified (and remembered) before: a key set
         * without its key forgets it. */
        CU_ASSERT_EQUAL(verify_waiting(old, NULL, NULL, &reason), -ENOKEY);
        stop();
}

static void test_failures_keep_keys(void) {
        _cleanup_free_ char *tok = NULL;
        const char *reason = NULL;
        unsigned n;

        start(false, NULL, 200 * USEC_PER_MSEC, 100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(jwks_cache_start(T.cache), 0);
        tok = issue(T.key, NULL);
        CU_ASSERT_EQUAL(verify_waiting(tok, NULL, NULL, &reason), 0);
        n = jwks_cache_get_n_fetches(T.cache);

        /* Garbage, then an error status: the known key stays usable and the
         * cache keeps trying. */
        free(T.body);
        T.body = strdup("{\"keys\":[{\"kty\":\"RSA\"}]}");
        h2_test_run_for(T.event, 700 * USEC_PER_MSEC);
        free(T.body);
        T.body = NULL;
        unsigned tried = T.fetches;
        for (unsigned i = 0; i < 100 && T.fetches <= tried; i++)
                (void) sd_event_run(T.event, 100000);
        CU_ASSERT_TRUE(T.fetches > tried);
        CU_ASSERT_EQUAL(jwks_cache_get_n_fetches(T.cache), n);
        CU_ASSERT_EQUAL(jwks_cache_get_n_keys(T.cache), 1);
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, NULL, NULL, &reason), 0);
        stop();
}

static void test_unreachable_and_wrong_ca(void) {
        _cleanup_free_ char *tok = NULL;
        const char *reason = NULL;

        /* A certificate from another CA: never a key set, -ENODATA once the
         * failed fetch is done and the next one not due. */
        start(true, NULL, 0, 0);
        stop();
        memset(&T, 0, sizeof(T));
        {
                H2TestCerts other;
                CU_ASSERT_EQUAL_FATAL(h2_test_certs_make(&other), 0);
                start(true, other.other_ca, 0, 0);
                tok = issue(T.key, NULL);
                CU_ASSERT_EQUAL(verify_waiting(tok, NULL, NULL, &reason), -ENODATA);
                CU_ASSERT_EQUAL(T.fetches, 0);
                CU_ASSERT_FALSE(jwks_cache_is_ready(T.cache));
                /* Requests do not cause fetches before the next one is due. */
                CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, NULL, NULL, &reason), -ENODATA);
                stop();
                h2_test_certs_remove(&other);
        }
}

static void test_verified_cache(void) {
        _cleanup_free_ char *tok = NULL, *short_lived = NULL;
        const token_claims *claims = NULL;
        const char *reason = NULL;
        unsigned hits;

        start(false, NULL, 0, 0);
        CU_ASSERT_EQUAL(jwks_cache_start(T.cache), 0);
        tok = issue(T.key, "peer runtime");
        CU_ASSERT_EQUAL(verify_waiting(tok, NULL, &claims, &reason), 0);
        hits = jwks_cache_get_n_cache_hits(T.cache);

        /* Again: from the cache, with the same claims and scope checks. */
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, "peer", &claims, &reason), 0);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(claims), "gw-1");
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, "runtime peer", NULL, &reason), 0);
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, "peer admin", NULL, &reason), -EPERM);
        CU_ASSERT_EQUAL(jwks_cache_get_n_cache_hits(T.cache), hits + 3);

        /* A token that changes in one byte is not the cached one. */
        tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, tok, NULL, NULL, &reason), -EBADMSG);

        /* A cached token that expires is refused as expired. exp is 27 s
         * ago: valid for three more seconds of leeway. */
        CU_ASSERT_EQUAL_FATAL(token_issue(T.key,
                                          &(token_issue_params) { .issuer = DOM,
                                                                  .subject = "gw-1",
                                                                  .audience = DOM,
                                                                  .lifetime = 2 * USEC_PER_SEC,
                                                                  .now = now(CLOCK_REALTIME) - 29 * USEC_PER_SEC },
                                          &short_lived),
                              0);
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, short_lived, NULL, NULL, &reason), 0);
        h2_test_run_for(T.event, 3500 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(jwks_cache_verify(T.cache, short_lived, NULL, NULL, &reason), -ESTALE);
        CU_ASSERT_STRING_EQUAL(reason, "token expired");

        /* Bounded: many tokens, the oldest make room. */
        for (unsigned i = 0; i < JWKS_CACHE_MAX_VERIFIED + 10; i++) {
                _cleanup_free_ char *t = issue(T.key, NULL);
                CU_ASSERT_EQUAL_FATAL(jwks_cache_verify(T.cache, t, NULL, NULL, &reason), 0);
        }
        stop();
}

static void test_waiters(void) {
        jwks_waiter *w = NULL;
        bool a = false, b = false;

        start(false, NULL, 0, 0);
        /* No fetch under way: called at once (from the loop). */
        CU_ASSERT_EQUAL(jwks_cache_wait(T.cache, on_ready, &a, NULL), 0);
        CU_ASSERT_FALSE(a);
        CU_ASSERT_TRUE(h2_test_run_until(T.event, &a, 10));

        /* A cancelled waiter is never called; the others are, once. */
        a = false;
        CU_ASSERT_EQUAL(jwks_cache_start(T.cache), 0);
        CU_ASSERT_EQUAL(jwks_cache_wait(T.cache, on_ready, &a, &w), 0);
        CU_ASSERT_EQUAL(jwks_cache_wait(T.cache, on_ready, &b, NULL), 0);
        CU_ASSERT_PTR_NULL(jwks_waiter_cancel(w));
        CU_ASSERT_TRUE(h2_test_run_until(T.event, &b, 10));
        h2_test_run_for(T.event, 100 * USEC_PER_MSEC);
        CU_ASSERT_FALSE(a);
        CU_ASSERT_EQUAL(T.ready_calls, 2);

        /* Bounded. */
        CU_ASSERT_EQUAL(jwks_cache_wait(T.cache, on_ready, NULL, NULL), 0);
        for (unsigned i = 1; i < JWKS_CACHE_MAX_WAITERS; i++)
                CU_ASSERT_EQUAL_FATAL(jwks_cache_wait(T.cache, on_ready, NULL, NULL), 0);
        CU_ASSERT_EQUAL(jwks_cache_wait(T.cache, on_ready, NULL, NULL), -EBUSY);
        /* Freeing with waiters left calls none of them. */
        stop();
}

static void test_bad_options(void) {
        sd_event *e = NULL;
        jwks_cache *c = NULL;

        CU_ASSERT_EQUAL_FATAL(sd_event_new(&e), 0);
        CU_ASSERT_EQUAL(jwks_cache_new(e, &(jwks_cache_options) { .url = "ftp://x", .domain = DOM }, &c), -EINVAL);
        CU_ASSERT_EQUAL(jwks_cache_new(e, &(jwks_cache_options) { .url = "https://127.0.0.1:1", .domain = DOM }, &c),
                        -EINVAL);
        CU_ASSERT_EQUAL(jwks_cache_new(e, &(jwks_cache_options) { .url = "http://127.0.0.1:1" }, &c), -EINVAL);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_PTR_NULL(jwks_cache_free(NULL));
        sd_event_unref(e);
}

static CU_TestInfo tests[] = {
        { "first fetch on demand (TLS), scope, unknown kid rate-limited", test_first_fetch_on_demand },
        { "rotation: fetch on a new kid, periodic refresh drops old keys", test_rotation_and_refresh },
        { "failed or invalid fetches keep the known keys", test_failures_keep_keys },
        { "a server with another CA's certificate: no keys, -ENODATA", test_unreachable_and_wrong_ca },
        { "verified-token cache: hits, scopes, expiry, bounded", test_verified_cache },
        { "waiters: called once, cancel, bounded", test_waiters },
        { "bad options", test_bad_options },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("jwks-cache", tests)
