/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Messaging Service over real HTTP/2: our client against the real
 * server, router and msg/rd modules in this process, state in a real
 * SQLite file. Sessions, streams, routing, errors, publish/subscribe,
 * actuation, queues while away, and a restart on the same state. */

#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>

#include "auth.h"
#include "h2-test-util.h"
#include "msg.h"
#include "router.h"
#include "tests.h"
#include "time-util.h"

#define DOMAIN "example.org"
#define SM "domain://msg-node." DOMAIN "/sm"
#define RT_A "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a01"
#define RT_B "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a02"
#define RT_C "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a03"
#define RT_D "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a04"
/* Runtimes no other test uses: ownership is persistent. */
#define RT_STUB "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a0e"
#define RT_STUB2 "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a0f"
#define HY_A "hyperty://" DOMAIN "/7d1e9f60-52a8-4b1c-8e0d-3c4b5a697801"
#define HY_B "hyperty://" DOMAIN "/7d1e9f60-52a8-4b1c-8e0d-3c4b5a697802"
#define TEMP "ctxt://" DOMAIN "/house/kitchen/temp"
#define LAMP "ctxt://" DOMAIN "/office/lamp"
#define SENML_21 "[{\"n\":\"temp\",\"u\":\"Cel\",\"v\":21.5}]"
#define SENML_22 "[{\"n\":\"temp\",\"u\":\"Cel\",\"v\":22}]"

/* --- fixture: server, router, msg on one loop ------------------------------------- */

typedef struct Fixture {
        char dir[64];
        sd_event *event;
        auth *auth;
        router *router;
        msg *msg;
        H2Server *server;
        int port;
} Fixture;

static Fixture F;

/* Stands in for the IdM: "Bearer test:<subject>" is a valid token with
 * the runtime scope, "Bearer noscope:<subject>" a valid one without. */
static unsigned auth_calls;

static int fake_auth(H2Request *req, const char *scope, char **ret_subject, uint64_t *ret_expiry,
                     const char **ret_reason, void *userdata) {
        const char *h = h2_request_get_header(req, "authorization");

        if (!h) {
                *ret_reason = "missing bearer token";
                return -EACCES;
        }
        if (strncmp(h, "Bearer noscope:", 15) == 0) {
                *ret_reason = "scope not granted";
                return -EPERM;
        }
        if (strncmp(h, "Bearer test:", 12) != 0 || !h[12]) {
                *ret_reason = "invalid token";
                return -EACCES;
        }
        auth_calls++;
        *ret_expiry = now(CLOCK_REALTIME) + USEC_PER_HOUR;
        *ret_subject = strdup(h + 12);
        return *ret_subject ? 0 : -ENOMEM;
}

static int server_start(void) {
        int r;

        r = msg_new(F.event, DOMAIN, F.dir, &F.msg);
        if (r < 0)
                return r;
        msg_set_auth_expiry(F.msg, fake_auth, NULL);
        r = auth_new(&F.auth);
        if (r >= 0)
                r = router_new(F.auth, &F.router);
        if (r >= 0)
                r = msg_add_routes(F.msg, F.router);
        if (r >= 0)
                r = h2_server_new(F.event, NULL, NULL, &F.server);
        if (r < 0)
                return r;
        router_attach(F.router, F.server);
        r = h2_server_listen(F.server, "127.0.0.1", (uint16_t) F.port);
        if (r < 0)
                return r;
        F.port = h2_server_get_port(F.server);
        return 0;
}

static void server_stop(void) {
        /* The server first: stream close handlers point into msg. */
        F.server = h2_server_free(F.server);
        F.msg = msg_free(F.msg);
        F.router = router_free(F.router);
        F.auth = auth_free(F.auth);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static int setup(void) {
        snprintf(F.dir, sizeof(F.dir), "/tmp/msg-test-XXXXXX");
        if (!mkdtemp(F.dir))
                return -1;
        if (sd_event_new(&F.event) < 0)
                return -1;
        return server_start() < 0 ? -1 : 0;
}

static int cleanup(void) {
        server_stop();
        h2_test_run_for(F.event, 100000);
        F.event = sd_event_unref(F.event);
        (void) nftw(F.dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
        return 0;
}

/* --- a runtime: its own connection, session and stream ---------------------------- */

typedef struct Runtime {
        const char *runtime;
        char auth[128];
        H2Client *client;
        H2TestConn conn;
        char session[64];
        H2TestFetch stream;
        size_t consumed; /* bytes of stream.body already taken as lines */
} Runtime;

static void rt_request(Runtime *rt, H2TestFetch *f, const char *method, const char *path, const char *body) {
        H2Header h[] = { { "authorization", rt->auth } };
        int r;

        memset(f, 0, sizeof(*f));
        r = h2_client_request(rt->client, method, path, h, ELEMENTSOF(h), body, body ? strlen(body) : 0, 0,
                              h2_test_fetch_callbacks(false), f, &f->req);
        CU_ASSERT_EQUAL_FATAL(r, 0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(F.event, &f->done, 30));
        CU_ASSERT_EQUAL(f->error, 0);
}

static bool is_error(const H2TestFetch *f, int status, const char *part) {
        json_t *j = f->body ? json_loadb((const char *) f->body, f->size, 0, NULL) : NULL;
        const char *d = json_string_value(json_object_get(j, "description"));
        bool ok = f->status == status && json_integer_value(json_object_get(j, "code")) == status && d &&
                  (!part || strstr(d, part)) && streq(f->content_type, "application/json");

        if (!ok)
                fprintf(stderr, "expected %d \"%s\", got %d: %.*s\n", status, strna(part), f->status, (int) f->size,
                        f->body ? (char *) f->body : "");
        json_decref(j);
        return ok;
}

static void rt_stream_open(Runtime *rt) {
        char path[128];
        H2Header h[] = { { "authorization", rt->auth } };
        int r;

        h2_test_fetch_done(&rt->stream);
        memset(&rt->stream, 0, sizeof(rt->stream));
        rt->stream.stream = true;
        rt->consumed = 0;
        snprintf(path, sizeof(path), "/msg/sessions/%s/stream", rt->session);
        r = h2_client_request(rt->client, "GET", path, h, ELEMENTSOF(h), NULL, 0, 0, h2_test_fetch_callbacks(true),
                              &rt->stream, &rt->stream.req);
        CU_ASSERT_EQUAL_FATAL(r, 0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(F.event, &rt->stream.got_response, 30));
        CU_ASSERT_EQUAL_FATAL(rt->stream.status, 200);
        CU_ASSERT_STRING_EQUAL(rt->stream.content_type, "application/x-ndjson");
}

static void rt_open(Runtime *rt, const char *runtime, const char *subject, bool stream) {
        char body[256];
        H2TestFetch f;
        json_t *j;

        memset(rt, 0, sizeof(*rt));
        rt->runtime = runtime;
        snprintf(rt->auth, sizeof(rt->auth), "Bearer test:%s", subject);
        CU_ASSERT_EQUAL_FATAL(h2_client_new(F.event, "127.0.0.1", (uint16_t) F.port, NULL, NULL, NULL,
                                            h2_test_conn_callbacks(), &rt->conn, &rt->client),
                              0);
        snprintf(body, sizeof(body), "{\"runtime\":\"%s\"}", runtime);
        rt_request(rt, &f, "POST", "/msg/sessions", body);
        CU_ASSERT_TRUE_FATAL(f.status == 201 || f.status == 200);
        j = json_loadb((const char *) f.body, f.size, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "runtime")), runtime);
        snprintf(rt->session, sizeof(rt->session), "%s", json_string_value(json_object_get(j, "session")));
        json_decref(j);
        h2_test_fetch_done(&f);
        if (stream)
                rt_stream_open(rt);
}

/* Ends the session too, so that no test sees another's queue. */
static void rt_close(Runtime *rt) {
        if (rt->session[0] && h2_client_is_usable(rt->client)) {
                char path[128];
                H2TestFetch f;

                snprintf(path, sizeof(path), "/msg/sessions/%s", rt->session);
                rt_request(rt, &f, "DELETE", path, NULL);
                h2_test_fetch_done(&f);
        }
        if (rt->stream.req && !rt->stream.done)
                (void) h2_client_request_cancel(rt->stream.req);
        h2_test_fetch_done(&rt->stream);
        rt->client = h2_client_unref(rt->client);
}

/* POSTs body to the session; returns the HTTP status (f kept for the
 * caller when given). */
static int rt_post(Runtime *rt, const char *body, H2TestFetch *out) {
        char path[128];
        H2TestFetch f;
        int status;

        snprintf(path, sizeof(path), "/msg/sessions/%s/messages", rt->session);
        rt_request(rt, &f, "POST", path, body);
        status = f.status;
        if (out)
                *out = f;
        else
                h2_test_fetch_done(&f);
        return status;
}

static bool stream_has_line(Runtime *rt) {
        return rt->stream.body && memchr(rt->stream.body + rt->consumed, '\n', rt->stream.size - rt->consumed);
}

/* The next NDJSON line of the stream as a message, waiting for it; NULL
 * when none came (the loop runs for a while first). */
static rt_message *rt_next(Runtime *rt) {
        uint64_t deadline = h2_test_now_usec() + 10 * 1000000ULL;
        rt_message *m = NULL;
        _cleanup_free_ char *reason = NULL;
        const uint8_t *start, *nl;

        while (!stream_has_line(rt) && h2_test_now_usec() < deadline && !rt->stream.done)
                (void) sd_event_run(F.event, 100000);
        if (!stream_has_line(rt))
                return NULL;
        start = rt->stream.body + rt->consumed;
        nl = memchr(start, '\n', rt->stream.size - rt->consumed);
        if (rt_message_parse(start, (size_t) (nl - start) + 1, NULL, &m, &reason) < 0)
                fprintf(stderr, "stream line does not parse: %s\n", strna(reason));
        rt->consumed += (size_t) (nl - start) + 1;
        return m;
}

/* Nothing more on the stream after a round trip through the server. */
static bool rt_quiet(Runtime *rt) {
        h2_test_run_for(F.event, 100000);
        return !stream_has_line(rt);
}

static char *message(uint64_t id, const char *type, const char *from, const char *to, const char *body) {
        char *s;

        CU_ASSERT_FATAL(asprintf(&s, "{\"id\":%llu,\"type\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"body\":%s}",
                                 (unsigned long long) id, type, from, to, body ?: "{}") > 0);
        return s;
}

static void post_ok(Runtime *rt, uint64_t id, const char *type, const char *from, const char *to, const char *body) {
        _cleanup_free_ char *m = message(id, type, from, to, body);
        CU_ASSERT_EQUAL(rt_post(rt, m, NULL), 202);
}

/* The next message is a response to id with code; its value (borrowed from
 * *keep) returned. */
static json_t *expect_response(Runtime *rt, uint64_t id, int code, rt_message **keep) {
        rt_message *m = rt_next(rt);

        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_type(m), RT_MESSAGE_RESPONSE);
        CU_ASSERT_EQUAL(rt_message_get_id(m), id);
        CU_ASSERT_EQUAL(rt_message_get_code(m), code);
        if (rt_message_get_code(m) != code)
                fprintf(stderr, "response %llu: code %d (%s)\n", (unsigned long long) rt_message_get_id(m),
                        rt_message_get_code(m), strna(rt_message_get_description(m)));
        *keep = m;
        return rt_message_get_value(m);
}

static bool json_text_equal(json_t *j, const char *text) {
        json_t *t = json_loads(text, 0, NULL);
        bool ok = j && t && json_equal(j, t);

        json_decref(t);
        return ok;
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_session_open(void) {
        Runtime a, again, other;
        H2TestFetch f;

        rt_open(&a, RT_A, "dev-a", false);
        CU_ASSERT_EQUAL(strlen(a.session), 36);

        /* Re-opening with the same subject gives the same session. */
        rt_open(&again, RT_A, "dev-a", false);
        CU_ASSERT_STRING_EQUAL(again.session, a.session);
        again.session[0] = '\0';
        rt_close(&again);

        /* No token, a token without the scope, another subject. */
        rt_open(&other, RT_C, "dev-c", false);
        snprintf(other.auth, sizeof(other.auth), "Bearer x");
        rt_request(&other, &f, "POST", "/msg/sessions", "{\"runtime\":\"" RT_A "\"}");
        CU_ASSERT_TRUE(is_error(&f, 401, "invalid token"));
        CU_ASSERT_PTR_NOT_NULL(h2_client_request_get_header(f.req, "www-authenticate"));
        h2_test_fetch_done(&f);
        snprintf(other.auth, sizeof(other.auth), "Bearer noscope:dev-a");
        rt_request(&other, &f, "POST", "/msg/sessions", "{\"runtime\":\"" RT_A "\"}");
        CU_ASSERT_TRUE(is_error(&f, 403, "scope"));
        h2_test_fetch_done(&f);
        snprintf(other.auth, sizeof(other.auth), "Bearer test:intruder");
        rt_request(&other, &f, "POST", "/msg/sessions", "{\"runtime\":\"" RT_A "\"}");
        CU_ASSERT_TRUE(is_error(&f, 403, "another subject"));
        h2_test_fetch_done(&f);

        /* A runtime's second request with the same credential is not
         * checked again; another credential is. */
        {
                unsigned before;

                CU_ASSERT_EQUAL(rt_post(&a, "{}", NULL), 400);
                before = auth_calls;
                CU_ASSERT_EQUAL(rt_post(&a, "{}", NULL), 400);
                CU_ASSERT_EQUAL(auth_calls, before);
        }

        /* The intruder cannot read or write a's session either. */
        snprintf(other.session, sizeof(other.session), "%s", a.session);
        CU_ASSERT_EQUAL(rt_post(&other, "{}", &f), 403);
        CU_ASSERT_TRUE(is_error(&f, 403, "another subject"));
        h2_test_fetch_done(&f);

        /* Malformed bodies and a runtime of another domain. */
        snprintf(other.auth, sizeof(other.auth), "Bearer test:dev-c");
        rt_request(&other, &f, "POST", "/msg/sessions", "{\"runtime\":");
        CU_ASSERT_TRUE(is_error(&f, 400, "JSON object"));
        h2_test_fetch_done(&f);
        rt_request(&other, &f, "POST", "/msg/sessions",
                   "{\"runtime\":\"runtime://other.org/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a09\"}");
        CU_ASSERT_TRUE(is_error(&f, 400, "runtime://example.org/"));
        h2_test_fetch_done(&f);
        rt_request(&other, &f, "POST", "/msg/sessions", "{\"runtime\":\"runtime://example.org/NOT-A-UUID\"}");
        CU_ASSERT_TRUE(is_error(&f, 400, "runtime:"));
        h2_test_fetch_done(&f);
        rt_request(&other, &f, "GET", "/msg/sessions/00000000-0000-4000-8000-000000000000/stream", NULL);
        CU_ASSERT_TRUE(is_error(&f, 404, "no such session"));
        h2_test_fetch_done(&f);

        other.session[0] = '\0';
        rt_close(&other);
        rt_close(&a);
}

/* A device's protostub opens sessions for runtimes of its own; device
 * management keeps sending to the agent's. */
static void test_protostub_runtime(void) {
        _cleanup_free_ char *runtime = NULL;
        H2TestFetch f;
        Runtime a;

        rt_open(&a, RT_A, "dev-a", false);
        rt_request(&a, &f, "POST", "/msg/sessions", "{\"runtime\":\"" RT_STUB "\",\"protostub\":true}");
        CU_ASSERT_EQUAL(h2_client_request_get_status(f.req), 201);
        h2_test_fetch_done(&f);
        /* RT_B is newer, but a protostub's. */
        CU_ASSERT_EQUAL(msg_get_runtime_of(F.msg, "dev-a", &runtime), 1);
        CU_ASSERT_STRING_EQUAL(runtime, RT_A);

        rt_request(&a, &f, "POST", "/msg/sessions", "{\"runtime\":\"" RT_STUB2 "\",\"protostub\":1}");
        CU_ASSERT_TRUE(is_error(&f, 400, "protostub"));
        h2_test_fetch_done(&f);
        rt_request(&a, &f, "POST", "/msg/sessions", "{\"runtime\":\"" RT_STUB2 "\",\"protostub\":false,\"extra\":1}");
        CU_ASSERT_TRUE(is_error(&f, 400, "protostub"));
        h2_test_fetch_done(&f);
        rt_close(&a);
}

static void test_two_runtimes_exchange(void) {
        Runtime a, b;
        rt_message *m, *keep;

        rt_open(&a, RT_A, "dev-a", true);
        rt_open(&b, RT_B, "dev-b", true);

        /* runtime -> runtime */
        post_ok(&a, 1, "execute", RT_A, RT_B, "{\"attribute\":\"ping\"}");
        m = rt_next(&b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_id(m), 1);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), RT_A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_attribute(m), "ping");
        rt_message_free(m);

        /* b announces its hyperty by speaking from it; then a reaches it by
         * hyperty address and the response correlates by id. */
        post_ok(&b, 7, "execute", HY_B, RT_A, "{\"attribute\":\"hello\"}");
        m = rt_next(&a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), HY_B);
        rt_message_free(m);

        post_ok(&a, 42, "read", HY_A, HY_B, "{\"attribute\":\"state\"}");
        m = rt_next(&b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_type(m), RT_MESSAGE_READ);
        CU_ASSERT_EQUAL(rt_message_get_id(m), 42);
        rt_message_free(m);
        post_ok(&b, 42, "response", HY_B, HY_A, "{\"code\":200,\"value\":{\"on\":true}}");
        CU_ASSERT_TRUE(json_text_equal(expect_response(&a, 42, 200, &keep), "{\"on\":true}"));
        rt_message_free(keep);

        /* The hyperty now belongs to b: a cannot speak for it. */
        {
                _cleanup_free_ char *spoof = message(9, "execute", HY_B, RT_B, NULL);
                H2TestFetch f;
                CU_ASSERT_EQUAL(rt_post(&a, spoof, &f), 403);
                CU_ASSERT_TRUE(is_error(&f, 403, "'from'"));
                h2_test_fetch_done(&f);
        }
        CU_ASSERT_TRUE(rt_quiet(&b));

        rt_close(&a);
        rt_close(&b);
}

static void test_unknown_destination_and_spoofing(void) {
        Runtime a, b;
        rt_message *keep;
        H2TestFetch f;

        rt_open(&a, RT_A, "dev-a", true);
        rt_open(&b, RT_B, "dev-b", true);

        post_ok(&a, 5, "execute", RT_A, "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1aff", NULL);
        expect_response(&a, 5, 404, &keep);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(keep), "runtime://" DOMAIN "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1aff");
        rt_message_free(keep);
        post_ok(&a, 6, "read", RT_A, "domain://registry." DOMAIN, NULL);
        expect_response(&a, 6, 404, &keep);
        rt_message_free(keep);
        post_ok(&a, 7, "read", RT_A, SM, NULL);
        expect_response(&a, 7, 400, &keep);
        rt_message_free(keep);

        /* Spoofed: another runtime, a user, and one bad message in a batch
         * of good ones: nothing of the batch is routed. */
        {
                _cleanup_free_ char *m1 = message(10, "execute", RT_B, RT_B, NULL);
                _cleanup_free_ char *m2 = message(11, "execute", "user://idp.example.org/alice", RT_B, NULL);
                _cleanup_free_ char *good = message(12, "execute", RT_A, RT_B, NULL);
                _cleanup_free_ char *batch = NULL;

                CU_ASSERT_EQUAL(rt_post(&a, m1, &f), 403);
                CU_ASSERT_TRUE(is_error(&f, 403, "message 1"));
                h2_test_fetch_done(&f);
                CU_ASSERT_EQUAL(rt_post(&a, m2, NULL), 403);
                CU_ASSERT_FATAL(asprintf(&batch, "%s\n%s\n", good, m1) > 0);
                CU_ASSERT_EQUAL(rt_post(&a, batch, &f), 403);
                CU_ASSERT_TRUE(is_error(&f, 403, "message 2"));
                h2_test_fetch_done(&f);
                CU_ASSERT_TRUE(rt_quiet(&b));
        }

        /* Malformed: the parser's reason, and nothing routed. */
        CU_ASSERT_EQUAL(rt_post(&a, "{\"id\":1,\"type\":\"shout\",\"from\":\"" RT_A "\",\"to\":\"" RT_B "\",\"body\":{}}",
                                &f),
                        400);
        CU_ASSERT_TRUE(is_error(&f, 400, "field 'type'"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(rt_post(&a, "not json", &f), 400);
        CU_ASSERT_TRUE(is_error(&f, 400, NULL));
        h2_test_fetch_done(&f);
        {
                _cleanup_free_ char *good = message(13, "execute", RT_A, RT_B, NULL);
                _cleanup_free_ char *batch = NULL;

                CU_ASSERT_FATAL(asprintf(&batch, "%s\n{\"id\":2}\n", good) > 0);
                CU_ASSERT_EQUAL(rt_post(&a, batch, &f), 400);
                CU_ASSERT_TRUE(is_error(&f, 400, "line 2"));
                h2_test_fetch_done(&f);
        }
        CU_ASSERT_TRUE(rt_quiet(&b));

        /* And the server still serves: an NDJSON batch of two goes through. */
        {
                _cleanup_free_ char *m1 = message(20, "execute", RT_A, RT_B, NULL);
                _cleanup_free_ char *m2 = message(21, "execute", RT_A, RT_B, NULL);
                _cleanup_free_ char *batch = NULL;
                rt_message *m;
                json_t *j;

                CU_ASSERT_FATAL(asprintf(&batch, "%s\n%s\n", m1, m2) > 0);
                CU_ASSERT_EQUAL(rt_post(&a, batch, &f), 202);
                j = json_loadb((const char *) f.body, f.size, 0, NULL);
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "accepted")), 2);
                json_decref(j);
                h2_test_fetch_done(&f);
                m = rt_next(&b);
                CU_ASSERT_TRUE(m && rt_message_get_id(m) == 20);
                rt_message_free(m);
                m = rt_next(&b);
                CU_ASSERT_TRUE(m && rt_message_get_id(m) == 21);
                rt_message_free(m);
        }

        rt_close(&a);
        rt_close(&b);
}

static void test_pubsub_fanout(void) {
        Runtime rep, s[3];
        const char *rts[3] = { RT_B, RT_C, RT_D };
        rt_message *keep, *m;
        char body[256];

        rt_open(&rep, RT_A, "dev-a", true);
        for (size_t i = 0; i < 3; i++) {
                char subject[16];

                snprintf(subject, sizeof(subject), "dev-%c", (char) ('b' + i));
                rt_open(&s[i], rts[i], subject, true);
                /* Subscriber 0 subscribes to a prefix: it gets everything
                 * below the kitchen. */
                snprintf(body, sizeof(body), "{\"resource\":\"%s\"}", i == 0 ? "ctxt://" DOMAIN "/house/kitchen" : TEMP);
                post_ok(&s[i], 100 + i, "subscribe", rts[i], SM, body);
                CU_ASSERT_PTR_NULL(expect_response(&s[i], 100 + i, 200, &keep));
                rt_message_free(keep);
        }

        /* Not SenML: refused with the validator's reason, nothing stored. */
        post_ok(&rep, 1, "create", RT_A, TEMP, "{\"value\":[{\"n\":\"temp\",\"v\":1,\"vs\":\"x\"}]}");
        m = rt_next(&rep);
        CU_ASSERT_TRUE_FATAL(m && rt_message_get_code(m) == 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(strna(rt_message_get_description(m)), "at most one of v, vs, vb, vd"));
        rt_message_free(m);
        post_ok(&rep, 2, "create", RT_A, TEMP, "{\"value\":{\"v\":1}}");
        expect_response(&rep, 2, 400, &keep);
        rt_message_free(keep);
        for (size_t i = 0; i < 3; i++)
                CU_ASSERT_TRUE(rt_quiet(&s[i]));
        post_ok(&s[1], 3, "read", RT_C, TEMP, NULL);
        expect_response(&s[1], 3, 404, &keep);
        rt_message_free(keep);

        /* Create, then an update: both fan out to all three. */
        post_ok(&rep, 4, "create", RT_A, TEMP, "{\"value\":" SENML_21 "}");
        expect_response(&rep, 4, 200, &keep);
        rt_message_free(keep);
        post_ok(&rep, 5, "update", RT_A, TEMP, "{\"value\":" SENML_22 "}");
        for (size_t i = 0; i < 3; i++) {
                m = rt_next(&s[i]);
                CU_ASSERT_PTR_NOT_NULL_FATAL(m);
                CU_ASSERT_EQUAL(rt_message_get_type(m), RT_MESSAGE_UPDATE);
                CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), TEMP);
                CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), rts[i]);
                CU_ASSERT_STRING_EQUAL(rt_message_get_resource(m), TEMP);
                CU_ASSERT_TRUE(json_text_equal(rt_message_get_value(m), SENML_21));
                rt_message_free(m);
                m = rt_next(&s[i]);
                CU_ASSERT_TRUE_FATAL(m != NULL);
                CU_ASSERT_TRUE(json_text_equal(rt_message_get_value(m), SENML_22));
                rt_message_free(m);
        }
        /* The reporter got no answer to the update (fire and forget). */
        CU_ASSERT_TRUE(rt_quiet(&rep));

        /* Last value: on read and for a new subscriber. */
        post_ok(&s[1], 6, "read", RT_C, TEMP, NULL);
        CU_ASSERT_TRUE(json_text_equal(expect_response(&s[1], 6, 200, &keep), SENML_22));
        rt_message_free(keep);
        post_ok(&rep, 7, "subscribe", RT_A, SM, "{\"resource\":\"" TEMP "\"}");
        CU_ASSERT_TRUE(json_text_equal(expect_response(&rep, 7, 200, &keep), SENML_22));
        rt_message_free(keep);

        /* Another runtime cannot take over the resource. */
        post_ok(&s[2], 8, "create", RT_D, TEMP, "{\"value\":" SENML_21 "}");
        expect_response(&s[2], 8, 403, &keep);
        rt_message_free(keep);

        /* Unsubscribe: no more updates for s[1]; twice is 404. */
        post_ok(&s[1], 9, "unsubscribe", RT_C, SM, "{\"resource\":\"" TEMP "\"}");
        expect_response(&s[1], 9, 200, &keep);
        rt_message_free(keep);
        post_ok(&s[1], 10, "unsubscribe", RT_C, SM, "{\"resource\":\"" TEMP "\"}");
        expect_response(&s[1], 10, 404, &keep);
        rt_message_free(keep);
        post_ok(&rep, 11, "update", RT_A, TEMP, "{\"value\":" SENML_21 "}");
        m = rt_next(&s[0]);
        CU_ASSERT_TRUE(m && rt_message_get_id(m) > 0);
        rt_message_free(m);
        m = rt_next(&rep); /* its own subscription */
        CU_ASSERT_TRUE(m && rt_message_get_type(m) == RT_MESSAGE_UPDATE);
        rt_message_free(m);
        CU_ASSERT_TRUE(rt_quiet(&s[1]));
        m = rt_next(&s[2]);
        CU_ASSERT_TRUE(m && rt_message_get_type(m) == RT_MESSAGE_UPDATE);
        rt_message_free(m);

        for (size_t i = 0; i < 3; i++)
                rt_close(&s[i]);
        rt_close(&rep);
}

static void test_actuation(void) {
        Runtime lamp, user;
        rt_message *m, *keep;

        rt_open(&lamp, RT_A, "dev-a", true);
        rt_open(&user, RT_B, "dev-b", true);

        post_ok(&lamp, 1, "create", HY_A, LAMP, "{\"value\":[{\"n\":\"on\",\"vb\":false}]}");
        expect_response(&lamp, 1, 200, &keep);
        rt_message_free(keep);

        /* An update from someone else is actuation: it reaches the
         * reporter's runtime unchanged, and the reporter answers. */
        post_ok(&user, 77, "update", RT_B, LAMP, "{\"value\":[{\"n\":\"on\",\"vb\":true}]}");
        m = rt_next(&lamp);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_type(m), RT_MESSAGE_UPDATE);
        CU_ASSERT_EQUAL(rt_message_get_id(m), 77);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), RT_B);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), LAMP);
        CU_ASSERT_TRUE(json_text_equal(rt_message_get_value(m), "[{\"n\":\"on\",\"vb\":true}]"));
        rt_message_free(m);
        post_ok(&lamp, 77, "response", HY_A, RT_B, "{\"code\":200}");
        expect_response(&user, 77, 200, &keep);
        rt_message_free(keep);

        /* The stored value did not change by actuation alone. */
        post_ok(&user, 78, "read", RT_B, LAMP, NULL);
        CU_ASSERT_TRUE(json_text_equal(expect_response(&user, 78, 200, &keep), "[{\"n\":\"on\",\"vb\":false}]"));
        rt_message_free(keep);

        /* Bad SenML in an actuation is refused before it reaches anyone. */
        post_ok(&user, 79, "update", RT_B, LAMP, "{\"value\":[{\"n\":\"on\"}]}");
        expect_response(&user, 79, 400, &keep);
        rt_message_free(keep);
        CU_ASSERT_TRUE(rt_quiet(&lamp));

        /* Only the reporter deletes. */
        post_ok(&user, 80, "delete", RT_B, LAMP, NULL);
        expect_response(&user, 80, 403, &keep);
        rt_message_free(keep);

        rt_close(&lamp);
        rt_close(&user);
}

static void test_queue_while_away(void) {
        Runtime a, b;
        rt_message *m;

        rt_open(&a, RT_A, "dev-a", true);
        rt_open(&b, RT_B, "dev-b", true);

        /* b goes away (its stream is reset); three messages wait for it. */
        CU_ASSERT_EQUAL(h2_client_request_cancel(b.stream.req), 0);
        h2_test_run_for(F.event, 100000);
        for (uint64_t id = 1; id <= 3; id++)
                post_ok(&a, id, "execute", RT_A, RT_B, NULL);
        rt_stream_open(&b);
        for (uint64_t id = 1; id <= 3; id++) {
                m = rt_next(&b);
                CU_ASSERT_TRUE(m && rt_message_get_id(m) == id);
                rt_message_free(m);
        }
        CU_ASSERT_TRUE(rt_quiet(&b));

        /* Over the bound: the oldest go, and the count comes after the
         * rest, from the subscription manager. */
        msg_set_queue_max(F.msg, 5);
        CU_ASSERT_EQUAL(h2_client_request_cancel(b.stream.req), 0);
        h2_test_run_for(F.event, 100000);
        for (uint64_t id = 10; id < 18; id++)
                post_ok(&a, id, "execute", RT_A, RT_B, NULL);
        rt_stream_open(&b);
        for (uint64_t id = 13; id < 18; id++) {
                m = rt_next(&b);
                CU_ASSERT_TRUE(m && rt_message_get_id(m) == id);
                rt_message_free(m);
        }
        m = rt_next(&b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_type(m), RT_MESSAGE_EXECUTE);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), SM);
        CU_ASSERT_STRING_EQUAL(rt_message_get_attribute(m), "dropped");
        CU_ASSERT_EQUAL(json_integer_value(rt_message_get_value(m)), 3);
        rt_message_free(m);
        CU_ASSERT_TRUE(rt_quiet(&b));
        msg_set_queue_max(F.msg, MSG_QUEUE_MAX_DEFAULT);

        /* A second stream (here from a second connection of the same
         * runtime) replaces the first, which ends cleanly. */
        {
                Runtime b2;

                rt_open(&b2, RT_B, "dev-b", true);
                CU_ASSERT_STRING_EQUAL(b2.session, b.session);
                CU_ASSERT_TRUE(h2_test_run_until(F.event, &b.stream.done, 10));
                CU_ASSERT_EQUAL(b.stream.error, 0);
                post_ok(&a, 30, "execute", RT_A, RT_B, NULL);
                m = rt_next(&b2);
                CU_ASSERT_TRUE(m && rt_message_get_id(m) == 30);
                rt_message_free(m);
                b2.session[0] = '\0';
                rt_close(&b2);
        }

        rt_close(&a);
        rt_close(&b);
}

static void test_long_lived_stream_concurrent(void) {
        Runtime a;
        H2TestFetch posts[50];
        rt_message *m;
        char path[128];

        rt_open(&a, RT_A, "dev-a", true);
        snprintf(path, sizeof(path), "/msg/sessions/%s/messages", a.session);

        /* Fifty POSTs in flight at once on the stream's own connection. */
        for (size_t i = 0; i < ELEMENTSOF(posts); i++) {
                _cleanup_free_ char *body = message(1000 + i, "execute", RT_A, RT_A, NULL);
                H2Header h[] = { { "authorization", a.auth } };

                memset(&posts[i], 0, sizeof(posts[i]));
                CU_ASSERT_EQUAL_FATAL(h2_client_request(a.client, "POST", path, h, 1, body, strlen(body), 0,
                                                        h2_test_fetch_callbacks(false), &posts[i], &posts[i].req),
                                      0);
        }
        for (size_t i = 0; i < ELEMENTSOF(posts); i++) {
                CU_ASSERT_TRUE(h2_test_run_until(F.event, &posts[i].done, 30));
                CU_ASSERT_EQUAL(posts[i].status, 202);
                h2_test_fetch_done(&posts[i]);
        }
        {
                bool seen[ELEMENTSOF(posts)] = {};
                size_t n = 0;

                for (size_t i = 0; i < ELEMENTSOF(posts); i++) {
                        m = rt_next(&a);
                        if (m && rt_message_get_id(m) >= 1000 && rt_message_get_id(m) < 1000 + ELEMENTSOF(posts) &&
                            !seen[rt_message_get_id(m) - 1000]) {
                                seen[rt_message_get_id(m) - 1000] = true;
                                n++;
                        }
                        rt_message_free(m);
                }
                CU_ASSERT_EQUAL(n, ELEMENTSOF(posts));
        }
        CU_ASSERT_FALSE(a.stream.done);
        CU_ASSERT_EQUAL(h2_server_get_n_connections(F.server) >= 1, true);

        /* Closing the session ends its stream. */
        {
                H2TestFetch f;
                char p[128];

                snprintf(p, sizeof(p), "/msg/sessions/%s", a.session);
                rt_request(&a, &f, "DELETE", p, NULL);
                CU_ASSERT_EQUAL(f.status, 204);
                h2_test_fetch_done(&f);
                CU_ASSERT_TRUE(h2_test_run_until(F.event, &a.stream.done, 10));
                CU_ASSERT_EQUAL(rt_post(&a, "{}", NULL), 404);
        }
        rt_close(&a);
}

static void test_persistence_across_restart(void) {
        Runtime rep, sub, intruder;
        rt_message *keep, *m;
        H2TestFetch f;

        rt_open(&rep, RT_A, "dev-a", true);
        rt_open(&sub, RT_B, "dev-b", true);
        post_ok(&sub, 1, "subscribe", HY_B, SM, "{\"resource\":\"ctxt://" DOMAIN "/garden/soil\"}");
        expect_response(&sub, 1, 200, &keep);
        rt_message_free(keep);
        post_ok(&rep, 2, "create", RT_A, "ctxt://" DOMAIN "/garden/soil", "{\"value\":[{\"n\":\"moisture\",\"v\":40}]}");
        /* The 202 came after the commit: another connection sees it. */
        {
                char path[128];
                sqlite3 *db = NULL;
                sqlite3_stmt *st = NULL;

                snprintf(path, sizeof(path), "%s/msg.db", F.dir);
                CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
                CU_ASSERT_EQUAL(sqlite3_prepare_v2(db, "SELECT value FROM resources WHERE resource = ?1", -1, &st, NULL),
                                SQLITE_OK);
                sqlite3_bind_text(st, 1, "ctxt://" DOMAIN "/garden/soil", -1, SQLITE_STATIC);
                CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_ROW);
                CU_ASSERT_STRING_EQUAL((const char *) sqlite3_column_text(st, 0), "[{\"n\":\"moisture\",\"v\":40}]");
                sqlite3_finalize(st);
                sqlite3_close(db);
        }
        expect_response(&rep, 2, 200, &keep);
        rt_message_free(keep);
        m = rt_next(&sub);
        CU_ASSERT_TRUE(m && rt_message_get_type(m) == RT_MESSAGE_UPDATE);
        rt_message_free(m);
        rt_close(&rep);
        rt_close(&sub);

        /* Restart on the same state: sessions and queues are gone,
         * subscriptions, last values and runtime owners are not. */
        server_stop();
        h2_test_run_for(F.event, 100000);
        CU_ASSERT_EQUAL_FATAL(server_start(), 0);

        rt_open(&intruder, RT_C, "dev-c", false);
        rt_request(&intruder, &f, "POST", "/msg/sessions", "{\"runtime\":\"" RT_B "\"}");
        CU_ASSERT_TRUE(is_error(&f, 403, "another subject"));
        h2_test_fetch_done(&f);
        rt_close(&intruder);

        rt_open(&rep, RT_A, "dev-a", true);
        rt_open(&sub, RT_B, "dev-b", true);
        post_ok(&sub, 3, "read", RT_B, "ctxt://" DOMAIN "/garden/soil", NULL);
        CU_ASSERT_TRUE(json_text_equal(expect_response(&sub, 3, 200, &keep), "[{\"n\":\"moisture\",\"v\":40}]"));
        rt_message_free(keep);
        post_ok(&rep, 4, "update", RT_A, "ctxt://" DOMAIN "/garden/soil", "{\"value\":[{\"n\":\"moisture\",\"v\":41}]}");
        m = rt_next(&sub);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), HY_B);
        CU_ASSERT_TRUE(json_text_equal(rt_message_get_value(m), "[{\"n\":\"moisture\",\"v\":41}]"));
        rt_message_free(m);
        rt_close(&rep);
        rt_close(&sub);
}

/* A message built by another domain service reaches a session. */
static void test_msg_send(void) {
        _cleanup_rt_message_ rt_message *cmd = NULL, *unknown = NULL;
        Runtime a;
        rt_message *m;

        rt_open(&a, RT_A, "dev-a", true);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_EXECUTE, 900, "domain://dm." DOMAIN, RT_A, NULL, &cmd), 0);
        CU_ASSERT_EQUAL(msg_send(F.msg, cmd), 0);
        m = rt_next(&a);
        CU_ASSERT_TRUE(m && rt_message_equal(m, cmd));
        rt_message_free(m);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_EXECUTE, 901, "domain://dm." DOMAIN, RT_D, NULL, &unknown), 0);
        CU_ASSERT_EQUAL(msg_send(F.msg, unknown), -ENOENT);

        /* A publication on behalf of a domain service reaches subscribers;
         * bad packs and a resource a runtime reports are refused. */
        {
                json_t *v = json_loads("[{\"n\":\"status\",\"vs\":\"live\"}]", 0, NULL), *bad = json_array();
                rt_message *keep;

                post_ok(&a, 902, "subscribe", RT_A, SM, "{\"resource\":\"ctxt://" DOMAIN "/registry/status\"}");
                expect_response(&a, 902, 200, &keep);
                rt_message_free(keep);
                CU_ASSERT_EQUAL(msg_publish(F.msg, "ctxt://" DOMAIN "/registry/status", "domain://registry." DOMAIN, v),
                                0);
                m = rt_next(&a);
                CU_ASSERT_TRUE(m && json_equal(rt_message_get_value(m), v));
                rt_message_free(m);
                CU_ASSERT_EQUAL(msg_publish(F.msg, "ctxt://" DOMAIN "/registry/status", "domain://registry." DOMAIN, bad),
                                -EINVAL);
                CU_ASSERT_EQUAL(msg_publish(F.msg, "runtime://" DOMAIN "/x", "domain://registry." DOMAIN, v), -EINVAL);
                CU_ASSERT_EQUAL(msg_publish(F.msg, TEMP, "domain://registry." DOMAIN, v), -EPERM);

                /* Registry status changes, below ctxt://<domain>/registry. */
                post_ok(&a, 903, "subscribe", RT_A, SM, "{\"resource\":\"ctxt://" DOMAIN "/registry/hyperty\"}");
                expect_response(&a, 903, 200, &keep);
                rt_message_free(keep);
                CU_ASSERT_EQUAL(msg_publish_status(F.msg, HY_B, "disconnected"), 0);
                m = rt_next(&a);
                CU_ASSERT_PTR_NOT_NULL_FATAL(m);
                CU_ASSERT_STRING_EQUAL(rt_message_get_resource(m),
                                       "ctxt://" DOMAIN "/registry/hyperty/7d1e9f60-52a8-4b1c-8e0d-3c4b5a697802");
                CU_ASSERT_TRUE(json_text_equal(rt_message_get_value(m), "[{\"n\":\"status\",\"vs\":\"disconnected\"}]"));
                rt_message_free(m);
                CU_ASSERT_EQUAL(msg_publish_status(F.msg, "not a url", "live"), -EINVAL);
                json_decref(v);
                json_decref(bad);
        }
        rt_close(&a);
}

static bool sessions_at_most(size_t n) {
        uint64_t deadline = h2_test_now_usec() + 10 * 1000000ULL;

        while (msg_get_n_sessions(F.msg) > n && h2_test_now_usec() < deadline)
                (void) sd_event_run(F.event, 100000);
        return msg_get_n_sessions(F.msg) <= n;
}

/* A session without a stream is closed after the idle allowance; one with
 * a stream stays. */
static void test_idle_sessions(void) {
        Runtime a, b;
        size_t before = msg_get_n_sessions(F.msg);

        msg_set_session_idle(F.msg, 1000000);
        rt_open(&a, RT_A, "dev-a", true);
        rt_open(&b, RT_B, "dev-b", false);
        CU_ASSERT_EQUAL(msg_get_n_sessions(F.msg), before + 2);
        CU_ASSERT_TRUE(sessions_at_most(before + 1));
        CU_ASSERT_EQUAL(rt_post(&b, "{}", NULL), 404);
        CU_ASSERT_FALSE(a.stream.done);
        post_ok(&a, 1, "execute", RT_A, RT_A, NULL);
        {
                rt_message *m = rt_next(&a);
                CU_ASSERT_TRUE(m && rt_message_get_id(m) == 1);
                rt_message_free(m);
        }
        msg_set_session_idle(F.msg, MSG_SESSION_IDLE_USEC_DEFAULT);
        b.session[0] = '\0';
        rt_close(&b);
        rt_close(&a);
}

/* A reader slower than the messages: the server's stream buffer fills, the
 * rest waits in the session queue and follows in order once the reader
 * reads again; past the queue's bound the oldest are dropped and counted. */
static void slow_reader_round(size_t queue_max, uint64_t first_id, unsigned n) {
        Runtime a, b;
        _cleanup_free_ char *batch = NULL;
        size_t len = 0;
        uint64_t expect = first_id, dropped = 0;
        unsigned got = 0;

        msg_set_queue_max(F.msg, queue_max);
        rt_open(&a, RT_A, "dev-a", true);
        rt_open(&b, RT_B, "dev-b", true);
        CU_ASSERT_EQUAL_FATAL(h2_client_request_pause(b.stream.req, true), 0);

        for (unsigned done = 0; done < n;) {
                unsigned k = MIN(n - done, 2000u);

                free(batch);
                batch = NULL;
                len = 0;
                for (unsigned i = 0; i < k; i++) {
                        _cleanup_free_ char *m = message(first_id + done + i, "execute", RT_A, RT_B,
                                                          "{\"attribute\":\"padding-to-make-the-line-longer\"}");
                        char *p = realloc(batch, len + strlen(m) + 2);

                        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
                        batch = p;
                        memcpy(batch + len, m, strlen(m));
                        len += strlen(m);
                        batch[len++] = '\n';
                        batch[len] = '\0';
                }
                CU_ASSERT_EQUAL(rt_post(&a, batch, NULL), 202);
                done += k;
        }
        CU_ASSERT_EQUAL_FATAL(h2_client_request_pause(b.stream.req, false), 0);

        for (;;) {
                rt_message *m = rt_next(&b);

                if (!m)
                        break;
                if (rt_message_get_type(m) == RT_MESSAGE_EXECUTE && streq(rt_message_get_from(m), SM)) {
                        dropped = (uint64_t) json_integer_value(rt_message_get_value(m));
                        rt_message_free(m);
                        break;
                }
                /* In order, with a gap only where messages were dropped. */
                CU_ASSERT_TRUE(rt_message_get_id(m) >= expect);
                expect = rt_message_get_id(m) + 1;
                got++;
                rt_message_free(m);
                if (got + dropped == n && queue_max >= n)
                        break;
        }
        CU_ASSERT_EQUAL(got + dropped, n);
        CU_ASSERT_EQUAL(expect, first_id + n);
        if (queue_max >= n) {
                CU_ASSERT_EQUAL(dropped, 0);
        } else {
                CU_ASSERT_TRUE(dropped > 0);
        }
        msg_set_queue_max(F.msg, MSG_QUEUE_MAX_DEFAULT);
        rt_close(&a);
        rt_close(&b);
}

static void test_slow_reader(void) {
        slow_reader_round(20000, 1, 12000);
        slow_reader_round(100, 100000, 12000);
}

static CU_TestInfo tests[] = {
        { "session open, re-open, auth and ownership", test_session_open },
        { "a protostub's runtime is not the device's runtime", test_protostub_runtime },
        { "two runtimes exchange messages, hyperty routing, responses by id", test_two_runtimes_exchange },
        { "unknown destination, spoofed from, malformed input", test_unknown_destination_and_spoofing },
        { "subscribe, publish, fan-out to three, last value", test_pubsub_fanout },
        { "actuation goes to the reporter", test_actuation },
        { "queue while away, dropped count, stream replacement", test_queue_while_away },
        { "long-lived stream with concurrent requests", test_long_lived_stream_concurrent },
        { "subscriptions and last values survive a restart", test_persistence_across_restart },
        { "messages from other domain services", test_msg_send },
        { "sessions without a stream expire", test_idle_sessions },
        { "a slow reader: backlog in order, then dropped with a count", test_slow_reader },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-msg", tests, setup, cleanup)
