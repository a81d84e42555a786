/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The domain's router on a real HTTP/2 server with our client: pattern
 * matching and captures, 404/405/401/403/413/500 answers, buffered and
 * streamed bodies, query parsing, and request state released when the
 * stream goes, also when the client resets it. */

#include "auth.h"
#include "h2-test-util.h"
#include "idm.h"
#include "router.h"
#include "tests.h"

typedef struct Recorder {
        unsigned calls, begins, chunks, ends, states_freed;
        size_t streamed;
        char params[ROUTE_PARAMS_MAX][64];
        char query[4][128];
        int query_r[4];
        int allowed_r;
} Recorder;

static Recorder rec;

static int echo_handler(route_request *rr, void *userdata) {
        size_t n;
        static const char *const allowed[] = { "a", "b", "s", NULL };

        (void) route_request_get_body(rr, &n);

        rec.calls++;
        for (size_t i = 0; i < ROUTE_PARAMS_MAX; i++)
                snprintf(rec.params[i], sizeof(rec.params[i]), "%s", strna(route_request_get_param(rr, i)));
        for (size_t i = 0; i < 3; i++) {
                _cleanup_free_ char *v = NULL;
                rec.query_r[i] = route_query_get(rr, (const char *[]) { "a", "b", "s" }[i], &v);
                snprintf(rec.query[i], sizeof(rec.query[i]), "%s", strna(v));
        }
        rec.allowed_r = route_query_check_allowed(rr, allowed);
        return route_respond_empty(rr, n > 0 ? 200 : 204, NULL, 0);
}

static int body_handler(route_request *rr, void *userdata) {
        size_t n;
        const uint8_t *b = route_request_get_body(rr, &n);

        rec.calls++;
        return h2_request_respond(route_request_get_request(rr), 200, NULL, 0, b, n);
}

static int failing_handler(route_request *rr, void *userdata) {
        rec.calls++;
        return -EIO;
}

static void state_free(void *p) {
        rec.states_freed++;
        free(p);
}

static int stream_begin(route_request *rr, void *userdata) {
        rec.begins++;
        route_request_set_state(rr, malloc(1), state_free);
        if (h2_request_get_header(route_request_get_request(rr), "x-refuse"))
                return route_respond_error(rr, 422, "refused early");
        return 0;
}

static int stream_chunk(route_request *rr, const uint8_t *data, size_t size, void *userdata) {
        rec.chunks++;
        rec.streamed += size;
        return 0;
}

static int stream_end(route_request *rr, void *userdata) {
        char body[32];

        rec.ends++;
        snprintf(body, sizeof(body), "%zu", rec.streamed);
        return h2_request_respond(route_request_get_request(rr), 200, NULL, 0, body, strlen(body));
}

static int hang_handler(route_request *rr, void *userdata) {
        rec.calls++;
        route_request_set_state(rr, malloc(1), state_free);
        return 0; /* never answered */
}

static const route routes[] = {
        { .method = "GET", .pattern = "/x/*/y/*", .handler = echo_handler },
        { .method = "GET", .pattern = "/list/", .handler = echo_handler },
        { .method = "GET", .pattern = "/q", .handler = echo_handler },
        { .method = "POST", .pattern = "/body", .max_body = 100, .handler = body_handler },
        { .method = "PUT", .pattern = "/body", .max_body = 100, .handler = body_handler },
        { .method = "GET", .pattern = "/admin/thing", .flags = ROUTE_ADMIN, .handler = echo_handler },
        { .method = "GET", .pattern = "/fail", .handler = failing_handler },
        { .method = "PUT", .pattern = "/stream", .begin = stream_begin, .chunk = stream_chunk, .handler = stream_end },
        { .method = "GET", .pattern = "/hang", .handler = hang_handler },
};

typedef struct Fixture {
        char dir[64];
        sd_event *event;
        idm *idm;
        auth *auth;
        router *router;
        H2Server *server;
        H2Client *client;
        H2TestConn conn;
} Fixture;

static Fixture fx;

static int setup(void) {
        snprintf(fx.dir, sizeof(fx.dir), "/tmp/router-test-XXXXXX");
        if (!mkdtemp(fx.dir) || idm_new(fx.dir, "example.org", &fx.idm) < 0 ||
            idm_set_admin_credential(fx.idm, "router-test-credential-123") < 0)
                return -1;
        if (sd_event_new(&fx.event) < 0 || auth_new(&fx.auth) < 0 || router_new(fx.auth, &fx.router) < 0 ||
            router_add(fx.router, routes, ELEMENTSOF(routes), NULL) < 0 ||
            auth_set_admin_token(fx.auth, "router-test-credential-123") < 0 ||
            h2_server_new(fx.event, NULL, NULL, &fx.server) < 0)
                return -1;
        auth_set_idm(fx.auth, fx.idm);
        router_attach(fx.router, fx.server);
        if (h2_server_listen(fx.server, "127.0.0.1", 0) < 0)
                return -1;
        return h2_client_new(fx.event, "127.0.0.1", (uint16_t) h2_server_get_port(fx.server), NULL, NULL, NULL,
                             h2_test_conn_callbacks(), &fx.conn, &fx.client) < 0
                       ? -1
                       : 0;
}

static int cleanup(void) {
        h2_client_unref(fx.client);
        h2_server_free(fx.server);
        h2_test_run_for(fx.event, 1000);
        router_free(fx.router);
        auth_free(fx.auth);
        idm_free(fx.idm);
        sd_event_unref(fx.event);
        (void) nftw(fx.dir, h2_test_rm, 8, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static void request(H2TestFetch *f, const char *method, const char *path, const H2Header *h, size_t n,
                    const void *body, size_t size) {
        memset(f, 0, sizeof(*f));
        CU_ASSERT_EQUAL_FATAL(h2_client_request(fx.client, method, path, h, n, body, size, 0,
                                                h2_test_fetch_callbacks(false), f, &f->req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(fx.event, &f->done, 30));
}

static bool is_error(H2TestFetch *f, int status, const char *part) {
        char code[32];

        snprintf(code, sizeof(code), "{\"code\":%d,", status);
        return f->status == status && f->body && strncmp((char *) f->body, code, strlen(code)) == 0 &&
               (!part || strstr((char *) f->body, part)) && streq(f->content_type, "application/json");
}

static void test_patterns(void) {
        H2TestFetch f;

        memset(&rec, 0, sizeof(rec));
        request(&f, "GET", "/x/one/y/two", NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 204);
        CU_ASSERT_STRING_EQUAL(rec.params[0], "one");
        CU_ASSERT_STRING_EQUAL(rec.params[1], "two");
        CU_ASSERT_STRING_EQUAL(rec.params[2], "n/a");
        h2_test_fetch_done(&f);

        /* "*" never matches an empty segment, and segment counts must agree. */
        request(&f, "GET", "/x//y/two", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 404, "not found"));
        h2_test_fetch_done(&f);
        request(&f, "GET", "/x/one/y/two/three", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 404, NULL));
        h2_test_fetch_done(&f);
        request(&f, "GET", "/x/one/y", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 404, NULL));
        h2_test_fetch_done(&f);

        /* A trailing slash is part of the pattern. */
        request(&f, "GET", "/list/", NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 204);
        h2_test_fetch_done(&f);
        request(&f, "GET", "/list", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 404, NULL));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rec.calls, 2);
}

static void test_methods(void) {
        H2TestFetch f;

        memset(&rec, 0, sizeof(rec));
        request(&f, "DELETE", "/body", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 405, "method not allowed"));
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "allow")), "POST, PUT");
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rec.calls, 0);
}

static void test_admin(void) {
        _cleanup_free_ char *admin = NULL, *runtime = NULL, *h_admin = NULL, *h_runtime = NULL;
        H2TestFetch f;

        CU_ASSERT_EQUAL_FATAL(idm_issue(fx.idm, IDM_ADMIN_SUBJECT, "admin", USEC_PER_HOUR, &admin), 0);
        CU_ASSERT_EQUAL_FATAL(idm_issue(fx.idm, "sensor-1", "runtime", USEC_PER_HOUR, &runtime), 0);
        CU_ASSERT_FATAL(asprintf(&h_admin, "bearer %s", admin) > 0);
        CU_ASSERT_FATAL(asprintf(&h_runtime, "Bearer %s", runtime) > 0);

        memset(&rec, 0, sizeof(rec));
        request(&f, "GET", "/admin/thing", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 401, "missing bearer token"));
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "www-authenticate")),
                               "Bearer realm=\"rethink-domain\"");
        h2_test_fetch_done(&f);
        request(&f, "GET", "/admin/thing", (const H2Header[]) { { "authorization", "Bearer router-test-credential-12" } },
                1, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 401, "malformed token"));
        h2_test_fetch_done(&f);
        /* The credential itself: refused, with where to get a token. */
        request(&f, "GET", "/admin/thing", (const H2Header[]) { { "authorization", "Bearer router-test-credential-123" } },
                1, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 401, "POST /idm/token"));
        h2_test_fetch_done(&f);
        /* A valid token without the scope: 403. */
        request(&f, "GET", "/admin/thing", (const H2Header[]) { { "authorization", h_runtime } }, 1, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 403, "scope"));
        CU_ASSERT_PTR_NOT_NULL(strstr(strna(h2_client_request_get_header(f.req, "www-authenticate")),
                                      "insufficient_scope"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rec.calls, 0);
        request(&f, "GET", "/admin/thing", (const H2Header[]) { { "authorization", h_admin } }, 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 204);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rec.calls, 1);

        /* No credential configured: nobody gets in, not even with a token. */
        CU_ASSERT_EQUAL(auth_set_admin_token(fx.auth, NULL), 0);
        request(&f, "GET", "/admin/thing", (const H2Header[]) { { "authorization", h_admin } }, 1, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 401, "admin API off"));
        h2_test_fetch_done(&f);
        /* A new credential: tokens got before it are refused. */
        sleep(1);
        CU_ASSERT_EQUAL(auth_set_admin_token(fx.auth, "router-test-credential-456"), 0);
        request(&f, "GET", "/admin/thing", (const H2Header[]) { { "authorization", h_admin } }, 1, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 401, "credential changed"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rec.calls, 1);
        CU_ASSERT_EQUAL(auth_set_admin_token(fx.auth, "router-test-credential-123"), 0);
}

static void test_query(void) {
        H2TestFetch f;

        memset(&rec, 0, sizeof(rec));
        request(&f, "GET", "/q?a=%41+b%2f&s", NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(rec.query_r[0], 0);
        CU_ASSERT_STRING_EQUAL(rec.query[0], "A b/");
        CU_ASSERT_EQUAL(rec.query_r[1], -ENOENT);
        CU_ASSERT_EQUAL(rec.query_r[2], 0);
        CU_ASSERT_STRING_EQUAL(rec.query[2], "");
        CU_ASSERT_EQUAL(rec.allowed_r, 0);
        h2_test_fetch_done(&f);

        request(&f, "GET", "/q?a=1&a=2&b=%zz&c=3", NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(rec.query_r[0], -EINVAL);
        CU_ASSERT_EQUAL(rec.query_r[1], -EINVAL);
        CU_ASSERT_EQUAL(rec.allowed_r, -EINVAL);
        h2_test_fetch_done(&f);

        request(&f, "GET", "/q?b=%00&a=%4", NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(rec.query_r[0], -EINVAL);
        CU_ASSERT_EQUAL(rec.query_r[1], -EINVAL);
        h2_test_fetch_done(&f);
}

static void test_bodies(void) {
        char big[101];
        H2TestFetch f;
        H2ClientRequest *r = NULL;

        memset(&rec, 0, sizeof(rec));
        memset(big, 'x', sizeof(big));
        request(&f, "POST", "/body", NULL, 0, big, 100);
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_EQUAL(f.size, 100);
        h2_test_fetch_done(&f);

        request(&f, "POST", "/body", NULL, 0, big, 101);
        CU_ASSERT_TRUE(is_error(&f, 413, "limit 100 bytes"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rec.calls, 1);

        /* Without Content-Length: refused once the limit is passed. */
        memset(&f, 0, sizeof(f));
        CU_ASSERT_EQUAL_FATAL(h2_client_request(fx.client, "PUT", "/body", NULL, 0, NULL, 0,
                                                H2_CLIENT_REQUEST_STREAM_BODY, h2_test_fetch_callbacks(false), &f, &r),
                              0);
        f.req = r;
        for (int i = 0; i < 3; i++)
                CU_ASSERT_EQUAL(h2_client_request_write(r, big, 60), 0);
        CU_ASSERT_EQUAL(h2_client_request_end(r), 0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(fx.event, &f.done, 30));
        CU_ASSERT_TRUE(is_error(&f, 413, "too large"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rec.calls, 1);
}

static void test_stream(void) {
        static char data[200000];
        H2TestFetch f;

        memset(&rec, 0, sizeof(rec));
        request(&f, "PUT", "/stream", NULL, 0, data, sizeof(data));
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_STRING_EQUAL(f.body ? (char *) f.body : "", "200000");
        CU_ASSERT_EQUAL(rec.begins, 1);
        CU_ASSERT_TRUE(rec.chunks >= 1);
        CU_ASSERT_EQUAL(rec.ends, 1);
        h2_test_fetch_done(&f);
        h2_test_run_for(fx.event, 10000);
        CU_ASSERT_EQUAL(rec.states_freed, 1);

        /* Answered from begin: no chunk and no end reach the route. */
        memset(&rec, 0, sizeof(rec));
        request(&f, "PUT", "/stream", (const H2Header[]) { { "x-refuse", "1" } }, 1, data, sizeof(data));
        CU_ASSERT_TRUE(is_error(&f, 422, "refused early"));
        CU_ASSERT_EQUAL(rec.chunks, 0);
        CU_ASSERT_EQUAL(rec.ends, 0);
        h2_test_fetch_done(&f);
        h2_test_run_for(fx.event, 10000);
        CU_ASSERT_EQUAL(rec.states_freed, 1);
}

static void test_failure_and_reset(void) {
        H2TestFetch f;

        memset(&rec, 0, sizeof(rec));
        request(&f, "GET", "/fail", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 500, "internal error"));
        h2_test_fetch_done(&f);

        /* A request nobody answers: its state goes when the client resets it. */
        memset(&f, 0, sizeof(f));
        CU_ASSERT_EQUAL_FATAL(h2_client_request(fx.client, "GET", "/hang", NULL, 0, NULL, 0, 0,
                                                h2_test_fetch_callbacks(false), &f, &f.req),
                              0);
        for (unsigned i = 0; i < 100 && rec.calls < 2; i++)
                h2_test_run_for(fx.event, 10000);
        CU_ASSERT_EQUAL(rec.calls, 2);
        CU_ASSERT_EQUAL(rec.states_freed, 0);
        CU_ASSERT_EQUAL(h2_client_request_cancel(f.req), 0);
        for (unsigned i = 0; i < 100 && rec.states_freed < 1; i++)
                h2_test_run_for(fx.event, 10000);
        CU_ASSERT_EQUAL(rec.states_freed, 1);
        h2_test_fetch_done(&f);
}

static CU_TestInfo tests[] = {
        { "patterns and captures", test_patterns },
        { "405 with Allow", test_methods },
        { "admin routes: 401", test_admin },
        { "query parameters", test_query },
        { "buffered bodies and 413", test_bodies },
        { "streamed bodies and request state", test_stream },
        { "500 and state freed on reset", test_failure_and_reset },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-router", tests, setup, cleanup)
