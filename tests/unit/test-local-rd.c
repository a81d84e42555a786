/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Local M2M Resource Directory over real HTTP/2 with TLS: a real
 * rethink-domain in this process issues the tokens (its own IdM key) and
 * serves the real JWKS, the agent's jwks-cache fetches it, and our TLS
 * client plays the peer. Read, list, subscribe, actuation, every refusal,
 * key rotation and a slow subscriber. */

#include <jansson.h>

#include "jwks-cache.h"
#include "local-rd.h"
#include "rd-acl.h"
#include "test-domain-util.h"
#include "tls.h"
#include "token.h"

#define DOM "localhost"
#define HY "hyperty://" DOM "/7d1e9f60-52a8-4b1c-8e0d-3c4b5a697801"
#define HY_U "7d1e9f60-52a8-4b1c-8e0d-3c4b5a697801"
#define TEMP "ctxt://" DOM "/" HY_U "/temperature"
#define DOOR "ctxt://" DOM "/" HY_U "/door"
#define SECRET "ctxt://" DOM "/" HY_U "/secret"
#define PEER_FROM "hyperty://" DOM "/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a02"
#define SENML_21 "[{\"n\":\"temperature\",\"u\":\"Cel\",\"v\":21.5}]"
#define SENML_22 "[{\"n\":\"temperature\",\"u\":\"Cel\",\"v\":22}]"
#define SENML_OPEN "[{\"n\":\"door\",\"vb\":true}]"

typedef struct LrdTest {
        DomainTest dt;
        H2TestCerts certs;
        jwks_cache *jwks;
        local_rd *rd;
        SSL_CTX *tls;
        H2Client *peer;
        H2TestConn peer_conn;
        token_key *key;
        /* actuation */
        unsigned actuations;
        char act_resource[256], act_reporter[256], act_from[256];
        json_t *act_value;
        int act_return;
} LrdTest;

static LrdTest T;

static json_t *J(const char *s) {
        json_t *j = json_loads(s, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        return j;
}

static int on_actuation(local_rd *rd, const char *resource, const char *reporter, const char *from, json_t *senml,
                        void *userdata) {
        T.actuations++;
        snprintf(T.act_resource, sizeof(T.act_resource), "%s", resource);
        snprintf(T.act_reporter, sizeof(T.act_reporter), "%s", reporter);
        snprintf(T.act_from, sizeof(T.act_from), "%s", from);
        json_decref(T.act_value);
        T.act_value = json_incref(senml);
        return T.act_return;
}

static void load_domain_key(void) {
        _cleanup_free_ char *path = NULL;

        T.key = token_key_free(T.key);
        CU_ASSERT_FATAL(asprintf(&path, "%s/idm-key.pem", T.dt.state) > 0);
        CU_ASSERT_EQUAL_FATAL(token_key_load_private_pem(path, &T.key), 0);
}

static int connect_peer(H2Client **ret, H2TestConn *conn) {
        return h2_client_new(T.dt.event, "127.0.0.1", (uint16_t) local_rd_get_port(T.rd), T.tls, "localhost", NULL,
                             h2_test_conn_callbacks(), conn, ret);
}

/* start_jwks: fetch the key set now (else the first request does). */
static void setup_with(bool start_jwks) {
        _cleanup_free_ char *url = NULL, *acl_temp = NULL;
        _cleanup_(json_decrefp) json_t *a1 = NULL, *a2 = NULL, *a3 = NULL;

        memset(&T, 0, sizeof(T));
        CU_ASSERT_EQUAL_FATAL(dt_setup(&T.dt, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(h2_test_certs_make(&T.certs), 0);
        load_domain_key();
        CU_ASSERT_FATAL(asprintf(&url, "http://127.0.0.1:%d", domain_get_port(T.dt.domain)) > 0);
        CU_ASSERT_EQUAL_FATAL(jwks_cache_new(T.dt.event,
                                             &(jwks_cache_options) { .url = url,
                                                                     .domain = DOM,
                                                                     .min_refetch_usec = 300 * USEC_PER_MSEC },
                                             &T.jwks),
                              0);
        if (start_jwks) {
                CU_ASSERT_EQUAL_FATAL(jwks_cache_start(T.jwks), 0);
                for (unsigned i = 0; i < 300 && !jwks_cache_is_ready(T.jwks); i++)
                        (void) sd_event_run(T.dt.event, 100000);
                CU_ASSERT_TRUE_FATAL(jwks_cache_is_ready(T.jwks));
        }
        CU_ASSERT_EQUAL_FATAL(local_rd_new(T.dt.event,
                                           &(local_rd_options) { .address = "127.0.0.1",
                                                                 .port = 0,
                                                                 .certificate = T.certs.cert,
                                                                 .key = T.certs.key,
                                                                 .domain = DOM,
                                                                 .jwks = T.jwks },
                                           &T.rd),
                              0);
        local_rd_set_actuation_handler(T.rd, on_actuation, NULL);
        a1 = J("{\"*\":\"r\"}");
        a2 = J("{\"gw-1\":\"rw\",\"*\":\"r\"}");
        a3 = J("{\"owner\":\"r\"}");
        CU_ASSERT_EQUAL_FATAL(local_rd_add_resource(T.rd, TEMP, HY, false, a1), 0);
        CU_ASSERT_EQUAL_FATAL(local_rd_add_resource(T.rd, DOOR, HY, true, a2), 0);
        CU_ASSERT_EQUAL_FATAL(local_rd_add_resource(T.rd, SECRET, HY, false, a3), 0);
        CU_ASSERT_EQUAL_FATAL(tls_client_ctx_new(T.certs.ca, &T.tls), 0);
        CU_ASSERT_EQUAL_FATAL(connect_peer(&T.peer, &T.peer_conn), 0);
}

static void setup_test(void) {
        setup_with(true);
}

static void teardown_test(void) {
        T.peer = h2_client_unref(T.peer);
        T.rd = local_rd_free(T.rd);
        T.jwks = jwks_cache_free(T.jwks);
        if (T.tls)
                SSL_CTX_free(T.tls);
        T.key = token_key_free(T.key);
        json_decref(T.act_value);
        dt_teardown(&T.dt);
        h2_test_certs_remove(&T.certs);
}

static char *issue_with(const token_key *k, const char *sub, const char *scope, const char *iss, const char *aud,
                        usec_t when) {
        char *s = NULL;

        CU_ASSERT_EQUAL_FATAL(token_issue(k,
                                          &(token_issue_params) { .issuer = iss,
                                                                  .subject = sub,
                                                                  .audience = aud,
                                                                  .scope = scope,
                                                                  .lifetime = USEC_PER_HOUR,
                                                                  .now = when },
                                          &s),
                              0);
        return s;
}

static char *issue(const char *sub) {
        return issue_with(T.key, sub, "peer", DOM, DOM, 0);
}

/* One request on client c; token and from may be NULL (header left out). */
static void request_on(H2Client *c, H2TestFetch *f, const char *method, const char *path, const char *token,
                       const char *from, const char *body, bool stream) {
        _cleanup_free_ char *auth = NULL;
        H2Header h[2];
        size_t n = 0;

        memset(f, 0, sizeof(*f));
        f->stream = stream;
        if (token) {
                CU_ASSERT_FATAL(asprintf(&auth, "Bearer %s", token) > 0);
                h[n++] = (H2Header) { "authorization", auth };
        }
        if (from)
                h[n++] = (H2Header) { "rethink-from", from };
        CU_ASSERT_EQUAL_FATAL(h2_client_request(c, method, path, h, n, body, body ? strlen(body) : 0, 0,
                                                h2_test_fetch_callbacks(stream), f, &f->req),
                              0);
        if (!stream) {
                CU_ASSERT_TRUE_FATAL(h2_test_run_until(T.dt.event, &f->done, 30));
                CU_ASSERT_EQUAL(f->error, 0);
        }
}

static void request(H2TestFetch *f, const char *method, const char *path, const char *token, const char *from,
                    const char *body) {
        request_on(T.peer, f, method, path, token, from, body, false);
}

static void expect(const char *method, const char *path, const char *token, const char *from, const char *body,
                   int status, const char *part) {
        H2TestFetch f;

        request(&f, method, path, token, from, body);
        CU_ASSERT_TRUE(dt_is_error(&f, status, part));
        if (status == 401) {
                const char *w = h2_client_request_get_header(f.req, "www-authenticate");
                CU_ASSERT_PTR_NOT_NULL(w);
                CU_ASSERT_TRUE(w && strncmp(w, "Bearer realm=\"rethink-agent\"", 28) == 0);
        }
        h2_test_fetch_done(&f);
}

#define P(res) "/rd/resources/" HY_U "/" res

/* --- tests ------------------------------------------------------------------------- */

static void test_read_and_list(void) {
        _cleanup_free_ char *tok = NULL, *tok_owner = NULL;
        _cleanup_(json_decrefp) json_t *v = NULL, *list = NULL;
        H2TestFetch f;
        const char *reason = NULL;

        setup_test();
        tok = issue("gw-1");
        tok_owner = issue("owner");

        expect("GET", P("temperature"), tok, PEER_FROM, NULL, 404, "no value yet");
        v = J(SENML_21);
        CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v, &reason), 0);

        request(&f, "GET", P("temperature"), tok, PEER_FROM, NULL);
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_STRING_EQUAL(f.content_type, "application/senml+json");
        {
                _cleanup_(json_decrefp) json_t *got = dt_json(&f);
                CU_ASSERT_TRUE(json_equal(got, v));
        }
        h2_test_fetch_done(&f);

        /* The list shows what the subject may read, with its access. */
        request(&f, "GET", "/rd/resources", tok, PEER_FROM, NULL);
        CU_ASSERT_EQUAL(f.status, 200);
        list = dt_json(&f);
        h2_test_fetch_done(&f);
        json_t *a = json_object_get(list, "resources");
        CU_ASSERT_EQUAL(json_array_size(a), 2);
        size_t i;
        json_t *e;
        bool seen_temp = false, seen_door = false;
        json_array_foreach(a, i, e) {
                const char *res = dt_json_str(e, "resource");
                CU_ASSERT_STRING_EQUAL(dt_json_str(e, "reporter"), HY);
                if (streq(res, TEMP)) {
                        seen_temp = true;
                        CU_ASSERT_STRING_EQUAL(dt_json_str(e, "access"), "r");
                        CU_ASSERT_TRUE(json_is_false(json_object_get(e, "actuator")));
                        CU_ASSERT_TRUE(json_equal(json_object_get(e, "value"), v));
                } else if (streq(res, DOOR)) {
                        seen_door = true;
                        CU_ASSERT_STRING_EQUAL(dt_json_str(e, "access"), "rw");
                        CU_ASSERT_TRUE(json_is_true(json_object_get(e, "actuator")));
                } else
                        CU_FAIL("a resource the subject may not read is listed");
        }
        CU_ASSERT_TRUE(seen_temp && seen_door);

        /* The owner sees only its own resource (its entry wins over "*"? it
         * has none for TEMP: "*" applies). */
        request(&f, "GET", "/rd/resources", tok_owner, PEER_FROM, NULL);
        CU_ASSERT_EQUAL(f.status, 200);
        {
                _cleanup_(json_decrefp) json_t *l2 = dt_json(&f);
                CU_ASSERT_EQUAL(json_array_size(json_object_get(l2, "resources")), 3);
        }
        h2_test_fetch_done(&f);

        /* ACL, unknown resources, bad paths and methods. */
        expect("GET", P("secret"), tok, PEER_FROM, NULL, 403, "ACL");
        expect("GET", P("nothing"), tok, PEER_FROM, NULL, 404, "no such resource");
        expect("GET", "/rd/resources/" HY_U "/%zz", tok, PEER_FROM, NULL, 400, "path");
        expect("GET", "/elsewhere", tok, PEER_FROM, NULL, 404, "route");
        expect("DELETE", P("temperature"), tok, PEER_FROM, NULL, 405, "method");
        expect("POST", "/rd/resources", tok, PEER_FROM, NULL, 405, "method");
        expect("GET", P("temperature") "?x=1", tok, PEER_FROM, NULL, 400, "query");

        /* rethink-from is required and must be an address. */
        expect("GET", P("temperature"), tok, NULL, NULL, 400, "rethink-from");
        expect("GET", P("temperature"), tok, "not an address", NULL, 400, "rethink-from");

        /* Publishing checks SenML and the resource. */
        {
                _cleanup_(json_decrefp) json_t *bad = J("[{\"n\":\"x\"}]");
                CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, bad, &reason), -EINVAL);
                CU_ASSERT_EQUAL(local_rd_publish(T.rd, "ctxt://" DOM "/none", v, &reason), -ENOENT);
        }
        /* The stored value did not change. */
        request(&f, "GET", P("temperature"), tok, PEER_FROM, NULL);
        {
                _cleanup_(json_decrefp) json_t *got = dt_json(&f);
                CU_ASSERT_TRUE(json_equal(got, v));
        }
        h2_test_fetch_done(&f);

        /* Resources of another domain or with a bad ACL are refused. */
        {
                _cleanup_(json_decrefp) json_t *bad_acl = J("{\"x\":\"w\"}");
                CU_ASSERT_EQUAL(local_rd_add_resource(T.rd, "ctxt://other.org/x", HY, false, NULL), -EINVAL);
                CU_ASSERT_EQUAL(local_rd_add_resource(T.rd, "ctxt://" DOM "/x", HY, false, bad_acl), -EINVAL);
                CU_ASSERT_EQUAL(local_rd_get_n_resources(T.rd), 3);
        }
        {
                char want[64];
                snprintf(want, sizeof(want), "https://127.0.0.1:%d", local_rd_get_port(T.rd));
                CU_ASSERT_STRING_EQUAL(local_rd_get_endpoint(T.rd), want);
        }
        teardown_test();
}

/* Complete NDJSON lines received so far. */
static size_t n_lines(const H2TestFetch *f) {
        size_t n = 0;

        for (size_t i = 0; i < f->size; i++)
                n += f->body[i] == '\n';
        return n;
}

static bool wait_lines(H2TestFetch *f, size_t n) {
        for (unsigned i = 0; i < 300 && n_lines(f) < n && !f->done; i++)
                (void) sd_event_run(T.dt.event, 100000);
        return n_lines(f) >= n;
}

/* Line i (0-based) as JSON. */
static json_t *line_at(const H2TestFetch *f, size_t i) {
        const char *p = (const char *) f->body, *end;

        for (; i > 0; i--)
                p = strchr(p, '\n') + 1;
        end = strchr(p, '\n');
        return json_loadb(p, (size_t) (end - p), 0, NULL);
}

static void check_notification(json_t *m, const char *resource, const char *value_text) {
        _cleanup_(json_decrefp) json_t *value = J(value_text);
        json_t *body = json_object_get(m, "body");

        CU_ASSERT_TRUE(json_is_integer(json_object_get(m, "id")));
        CU_ASSERT_STRING_EQUAL(dt_json_str(m, "type"), "update");
        CU_ASSERT_STRING_EQUAL(dt_json_str(m, "from"), resource);
        CU_ASSERT_STRING_EQUAL(dt_json_str(m, "to"), PEER_FROM);
        CU_ASSERT_STRING_EQUAL(dt_json_str(body, "resource"), resource);
        CU_ASSERT_TRUE(json_equal(json_object_get(body, "value"), value));
}

static void test_subscribe(void) {
        _cleanup_free_ char *tok = NULL;
        _cleanup_(json_decrefp) json_t *v21 = NULL, *v22 = NULL, *m0 = NULL, *m1 = NULL, *m2 = NULL;
        H2TestFetch f, g;

        setup_test();
        tok = issue("gw-1");
        v21 = J(SENML_21);
        v22 = J(SENML_22);
        CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v21, NULL), 0);

        request_on(T.peer, &f, "GET", P("temperature") "?subscribe=1", tok, PEER_FROM, NULL, true);
        CU_ASSERT_TRUE_FATAL(wait_lines(&f, 1));
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_STRING_EQUAL(f.content_type, "application/x-ndjson");
        m0 = line_at(&f, 0);
        check_notification(m0, TEMP, SENML_21);

        /* Later publications follow, in order, with rising ids. */
        CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v22, NULL), 0);
        CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v21, NULL), 0);
        CU_ASSERT_TRUE_FATAL(wait_lines(&f, 3));
        m1 = line_at(&f, 1);
        m2 = line_at(&f, 2);
        check_notification(m1, TEMP, SENML_22);
        check_notification(m2, TEMP, SENML_21);
        CU_ASSERT_TRUE(json_integer_value(json_object_get(m1, "id")) > json_integer_value(json_object_get(m0, "id")));
        CU_ASSERT_TRUE(json_integer_value(json_object_get(m2, "id")) > json_integer_value(json_object_get(m1, "id")));

        /* A resource without a value: the stream starts empty. Another
         * resource's publication does not reach this stream. */
        {
                _cleanup_(json_decrefp) json_t *open = J(SENML_OPEN);
                request_on(T.peer, &g, "GET", P("door") "?subscribe=1", tok, PEER_FROM, NULL, true);
                CU_ASSERT_TRUE(h2_test_run_until(T.dt.event, &g.got_response, 30));
                CU_ASSERT_EQUAL(g.status, 200);
                CU_ASSERT_EQUAL(n_lines(&g), 0);
                CU_ASSERT_EQUAL(local_rd_publish(T.rd, DOOR, open, NULL), 0);
                CU_ASSERT_TRUE(wait_lines(&g, 1));
                CU_ASSERT_EQUAL(n_lines(&g), 1);
                CU_ASSERT_EQUAL(n_lines(&f), 3);
        }

        /* Subscribing needs read access too. */
        expect("GET", P("secret") "?subscribe=1", tok, PEER_FROM, NULL, 403, "ACL");

        /* The reporter goes away: its streams end cleanly. */
        CU_ASSERT_EQUAL(local_rd_remove_resources_of(T.rd, HY), 3);
        CU_ASSERT_TRUE(h2_test_run_until(T.dt.event, &f.done, 30));
        CU_ASSERT_TRUE(h2_test_run_until(T.dt.event, &g.done, 30));
        CU_ASSERT_EQUAL(f.error, 0);
        CU_ASSERT_EQUAL(g.error, 0);
        CU_ASSERT_EQUAL(local_rd_get_n_resources(T.rd), 0);
        expect("GET", P("temperature"), tok, PEER_FROM, NULL, 404, "no such resource");

        /* Offered again (the hyperty restarted): a new stream gets the new
         * values, the ended one nothing. */
        {
                _cleanup_(json_decrefp) json_t *acl = J("{\"*\":\"r\"}");
                H2TestFetch h;
                size_t before = f.size;

                CU_ASSERT_EQUAL(local_rd_add_resource(T.rd, TEMP, HY, false, acl), 0);
                request_on(T.peer, &h, "GET", P("temperature") "?subscribe=1", tok, PEER_FROM, NULL, true);
                CU_ASSERT_TRUE(h2_test_run_until(T.dt.event, &h.got_response, 30));
                CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v22, NULL), 0);
                CU_ASSERT_TRUE(wait_lines(&h, 1));
                CU_ASSERT_EQUAL(f.size, before);
                h2_client_request_cancel(h.req);
                h2_test_fetch_done(&h);
        }
        h2_test_fetch_done(&f);
        h2_test_fetch_done(&g);
        teardown_test();
}

/* A subscription lasts as long as its token (plus the leeway tokens are
 * checked with), and a subject has a bounded number of them. */
static void test_stream_limits(void) {
        _cleanup_free_ char *old = NULL, *tok = NULL;
        _cleanup_(json_decrefp) json_t *v21 = NULL;
        H2TestFetch f, many[LOCAL_RD_MAX_STREAMS_PER_SUBJECT];

        setup_test();
        v21 = J(SENML_21);
        CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v21, NULL), 0);

        /* Ran out 29 s ago: still inside the 30 s leeway, so accepted, and
         * the stream ends about a second later. */
        old = issue_with(T.key, "gw-1", "peer", DOM, DOM, now(CLOCK_REALTIME) - USEC_PER_HOUR - 29 * USEC_PER_SEC);
        request_on(T.peer, &f, "GET", P("temperature") "?subscribe=1", old, PEER_FROM, NULL, true);
        CU_ASSERT_TRUE_FATAL(wait_lines(&f, 1));
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_TRUE(h2_test_run_until(T.dt.event, &f.done, 30));
        CU_ASSERT_EQUAL(f.error, 0);
        h2_test_fetch_done(&f);

        tok = issue("gw-2");
        for (size_t k = 0; k < LOCAL_RD_MAX_STREAMS_PER_SUBJECT; k++) {
                request_on(T.peer, &many[k], "GET", P("temperature") "?subscribe=1", tok, PEER_FROM, NULL, true);
                CU_ASSERT_TRUE(wait_lines(&many[k], 1));
        }
        expect("GET", P("temperature") "?subscribe=1", tok, PEER_FROM, NULL, 503, "too many");
        for (size_t k = 0; k < LOCAL_RD_MAX_STREAMS_PER_SUBJECT; k++) {
                h2_client_request_cancel(many[k].req);
                h2_test_fetch_done(&many[k]);
        }
        teardown_test();
}

static void test_actuation(void) {
        _cleanup_free_ char *gw1 = NULL, *gw2 = NULL;
        _cleanup_(json_decrefp) json_t *open = NULL;

        setup_test();
        gw1 = issue("gw-1");
        gw2 = issue("gw-2");
        open = J(SENML_OPEN);

        expect("PUT", P("door"), gw1, PEER_FROM, SENML_OPEN, 202, NULL);
        CU_ASSERT_EQUAL(T.actuations, 1);
        CU_ASSERT_STRING_EQUAL(T.act_resource, DOOR);
        CU_ASSERT_STRING_EQUAL(T.act_reporter, HY);
        CU_ASSERT_STRING_EQUAL(T.act_from, PEER_FROM);
        CU_ASSERT_TRUE(json_equal(T.act_value, open));

        /* Refusals never reach the handler. */
        expect("PUT", P("door"), gw2, PEER_FROM, SENML_OPEN, 403, "ACL");
        expect("PUT", P("temperature"), gw1, PEER_FROM, SENML_21, 405, "sensor");
        expect("PUT", P("door"), gw1, PEER_FROM, "[{\"n\":\"door\",\"vb\":true,\"v\":1}]", 400, "SenML");
        expect("PUT", P("door"), gw1, PEER_FROM, "not json", 400, "SenML");
        expect("PUT", P("nothing"), gw1, PEER_FROM, SENML_OPEN, 404, "no such resource");
        expect("PUT", P("door"), gw1, NULL, SENML_OPEN, 400, "rethink-from");
        CU_ASSERT_EQUAL(T.actuations, 1);

        /* A reporter that cannot be reached is 503. */
        T.act_return = -ENOTCONN;
        expect("PUT", P("door"), gw1, PEER_FROM, SENML_OPEN, 503, "not reachable");
        CU_ASSERT_EQUAL(T.actuations, 2);
        teardown_test();
}

static void test_unauthorized(void) {
        _cleanup_free_ char *good = NULL, *expired = NULL, *forged = NULL, *other = NULL, *wrong_aud = NULL,
                            *runtime_only = NULL;
        _cleanup_token_key_ token_key *stranger = NULL;
        DomainTest dt2;
        char *dot;

        setup_test();
        good = issue("gw-1");
        expired = issue_with(T.key, "gw-1", "peer", DOM, DOM, now(CLOCK_REALTIME) - 2 * USEC_PER_HOUR);
        wrong_aud = issue_with(T.key, "gw-1", "peer", DOM, "other.org", 0);
        runtime_only = issue_with(T.key, "gw-1", "runtime", DOM, DOM, 0);

        /* A forgery: the payload changed under the domain's signature. */
        forged = strdup(good);
        dot = strchr(forged, '.');
        CU_ASSERT_PTR_NOT_NULL_FATAL(dot);
        dot[1] = dot[1] == 'e' ? 'f' : 'e';

        /* Another domain's key (a real second domain), same issuer name. */
        CU_ASSERT_EQUAL_FATAL(dt_setup(&dt2, NULL), 0);
        {
                _cleanup_free_ char *path = NULL;
                CU_ASSERT_FATAL(asprintf(&path, "%s/idm-key.pem", dt2.state) > 0);
                CU_ASSERT_EQUAL_FATAL(token_key_load_private_pem(path, &stranger), 0);
        }
        dt_teardown(&dt2);
        other = issue_with(stranger, "gw-1", "peer", DOM, DOM, 0);

        expect("GET", P("temperature"), NULL, PEER_FROM, NULL, 401, "bearer token is required");
        expect("GET", "/rd/resources", NULL, PEER_FROM, NULL, 401, "bearer token");
        /* Another scheme (the peer's header is otherwise well-formed). */
        {
                H2TestFetch f;
                static const H2Header h[] = { { "authorization", "Basic Z3ctMTp4" }, { "rethink-from", PEER_FROM } };

                memset(&f, 0, sizeof(f));
                CU_ASSERT_EQUAL_FATAL(h2_client_request(T.peer, "GET", P("temperature"), h, 2, NULL, 0, 0,
                                                        h2_test_fetch_callbacks(false), &f, &f.req),
                                      0);
                CU_ASSERT_TRUE_FATAL(h2_test_run_until(T.dt.event, &f.done, 30));
                CU_ASSERT_TRUE(dt_is_error(&f, 401, "bearer token is required"));
                h2_test_fetch_done(&f);
        }
        expect("GET", P("temperature"), expired, PEER_FROM, NULL, 401, "expired");
        expect("GET", P("temperature"), forged, PEER_FROM, NULL, 401, NULL);
        expect("GET", P("temperature"), wrong_aud, PEER_FROM, NULL, 401, "audience");
        expect("GET", P("temperature"), "garbage", PEER_FROM, NULL, 401, NULL);
        /* An unknown kid makes the cache fetch again first, then refuse. */
        unsigned before = jwks_cache_get_n_fetches(T.jwks);
        h2_test_run_for(T.dt.event, 400 * USEC_PER_MSEC);
        expect("GET", P("temperature"), other, PEER_FROM, NULL, 401, "kid");
        CU_ASSERT_EQUAL(jwks_cache_get_n_fetches(T.jwks), before + 1);
        /* At once again: no new fetch (rate limit), still refused. */
        expect("GET", P("temperature"), other, PEER_FROM, NULL, 401, "kid");
        CU_ASSERT_EQUAL(jwks_cache_get_n_fetches(T.jwks), before + 1);
        /* A valid token without the peer scope. */
        expect("GET", P("temperature"), runtime_only, PEER_FROM, NULL, 403, "scope");
        expect("PUT", P("door"), other, PEER_FROM, SENML_OPEN, 401, NULL);
        CU_ASSERT_EQUAL(T.actuations, 0);
        teardown_test();
}

/* Restarts the domain on the same port with a new IdM key. */
static void rotate_domain_key(void) {
        _cleanup_domain_config_ domain_config *args = NULL, *config = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL, *path = NULL;
        _cleanup_token_key_ token_key *k = NULL;
        int port = domain_get_port(T.dt.domain);

        dt_stop_domain(&T.dt);
        CU_ASSERT_FATAL(asprintf(&path, "%s/idm-key.pem", T.dt.state) > 0);
        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_save_private_pem(k, path), 0);
        CU_ASSERT_FATAL(asprintf(&text,
                                 "[Domain]\nStateDirectory=%s\n[HTTP]\nListen=127.0.0.1\nPort=%d\n"
                                 "[Admin]\nTokenFile=%s/admin-token\n[Catalogue]\nTrustedPublishers=%s\n",
                                 T.dt.state, port, T.dt.dir, T.dt.publisher_b64) > 0);
        CU_ASSERT_EQUAL_FATAL(domain_config_new(&args), 0);
        CU_ASSERT_EQUAL_FATAL(domain_config_load_string(args, "test.conf", text, &config, &error), 0);
        CU_ASSERT_EQUAL_FATAL(domain_new(T.dt.event, config, &T.dt.domain), 0);
        config = NULL;
        CU_ASSERT_EQUAL_FATAL(domain_start(T.dt.domain), 0);
        CU_ASSERT_EQUAL_FATAL(domain_get_port(T.dt.domain), port);
        load_domain_key();
        CU_ASSERT_STRING_EQUAL(token_key_get_kid(T.key), token_key_get_kid(k));
}

static void test_key_rotation(void) {
        _cleanup_free_ char *old = NULL, *fresh = NULL;
        _cleanup_(json_decrefp) json_t *v = NULL;
        unsigned n;

        setup_test();
        v = J(SENML_21);
        CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v, NULL), 0);
        old = issue("gw-1");
        {
                H2TestFetch f;
                request(&f, "GET", P("temperature"), old, PEER_FROM, NULL);
                CU_ASSERT_EQUAL(f.status, 200);
                h2_test_fetch_done(&f);
        }
        n = jwks_cache_get_n_fetches(T.jwks);
        CU_ASSERT_EQUAL(n, 1);

        rotate_domain_key();
        fresh = issue("gw-1");
        h2_test_run_for(T.dt.event, 400 * USEC_PER_MSEC);

        /* The new kid is unknown: the cache fetches the new set, then the
         * request goes through. */
        {
                H2TestFetch f;
                request(&f, "GET", P("temperature"), fresh, PEER_FROM, NULL);
                CU_ASSERT_EQUAL(f.status, 200);
                h2_test_fetch_done(&f);
        }
        CU_ASSERT_EQUAL(jwks_cache_get_n_fetches(T.jwks), n + 1);
        CU_ASSERT_EQUAL(jwks_cache_get_n_keys(T.jwks), 1);
        /* The old key is gone from the domain's set: its tokens stop working. */
        expect("GET", P("temperature"), old, PEER_FROM, NULL, 401, "kid");
        teardown_test();
}

static void test_waits_for_keys(void) {
        _cleanup_free_ char *tok = NULL;
        _cleanup_(json_decrefp) json_t *v = NULL;
        H2TestFetch f;

        /* The key set is not fetched yet: the first request waits for it. */
        setup_with(false);
        CU_ASSERT_FALSE(jwks_cache_is_ready(T.jwks));
        v = J(SENML_21);
        CU_ASSERT_EQUAL(local_rd_publish(T.rd, TEMP, v, NULL), 0);
        tok = issue("gw-1");
        request(&f, "GET", P("temperature"), tok, PEER_FROM, NULL);
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_TRUE(jwks_cache_is_ready(T.jwks));
        h2_test_fetch_done(&f);
        teardown_test();
}

static void test_domain_unreachable(void) {
        _cleanup_free_ char *tok = NULL;
        H2TestFetch f;

        /* No key set and the domain is down: 503 with Retry-After, never a
         * hang and never a pass. */
        setup_with(false);
        tok = issue("gw-1");
        dt_stop_domain(&T.dt);
        request(&f, "GET", P("temperature"), tok, PEER_FROM, NULL);
        CU_ASSERT_TRUE(dt_is_error(&f, 503, "key set"));
        CU_ASSERT_PTR_NOT_NULL(h2_client_request_get_header(f.req, "retry-after"));
        h2_test_fetch_done(&f);
        /* And at once again, before the next fetch is due. */
        request(&f, "GET", P("temperature"), tok, PEER_FROM, NULL);
        CU_ASSERT_TRUE(dt_is_error(&f, 503, "key set"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(dt_start_domain(&T.dt), 0);
        teardown_test();
}

static void test_slow_subscriber(void) {
        _cleanup_free_ char *tok = NULL, *big = NULL;
        H2Client *slow_client = NULL;
        H2TestConn slow_conn = {};
        H2TestFetch fast, slow;
        const unsigned N = 600;
        char filler[1025];

        setup_test();
        tok = issue("gw-1");
        memset(filler, 'x', sizeof(filler) - 1);
        filler[sizeof(filler) - 1] = 0;

        CU_ASSERT_EQUAL_FATAL(connect_peer(&slow_client, &slow_conn), 0);
        request_on(slow_client, &slow, "GET", P("temperature") "?subscribe=1", tok, PEER_FROM, NULL, true);
        request_on(T.peer, &fast, "GET", P("temperature") "?subscribe=1", tok, PEER_FROM, NULL, true);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(T.dt.event, &slow.got_response, 30));
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(T.dt.event, &fast.got_response, 30));
        /* The slow one stops reading: its window fills, the rest waits on
         * the server, which must drop the oldest and not hold up others. */
        CU_ASSERT_EQUAL_FATAL(h2_client_request_pause(slow.req, true), 0);

        for (unsigned i = 0; i < N; i++) {
                _cleanup_(json_decrefp) json_t *v = json_pack("[{s:s,s:s}]", "n", "temperature", "vs", filler);
                json_t *rec = json_array_get(v, 0);
                char num[32];

                snprintf(num, sizeof(num), "%u", i);
                json_object_set_new(rec, "n", json_string("temperature"));
                json_object_set_new(rec, "bn", json_string(num)); /* names stay valid: "<i>temperature" */
                CU_ASSERT_EQUAL_FATAL(local_rd_publish(T.rd, TEMP, v, NULL), 0);
                /* The fast reader keeps up (it is given the loop). */
                CU_ASSERT_TRUE_FATAL(wait_lines(&fast, i + 1));
        }
        CU_ASSERT_EQUAL(n_lines(&fast), N);
        CU_ASSERT_PTR_NULL(strstr((const char *) fast.body, "\"dropped\""));
        {
                _cleanup_(json_decrefp) json_t *last = line_at(&fast, N - 1);
                char want[32];
                snprintf(want, sizeof(want), "%u", N - 1);
                CU_ASSERT_STRING_EQUAL(
                        dt_json_str(json_array_get(json_object_get(json_object_get(last, "body"), "value"), 0), "bn"),
                        want);
        }

        /* The slow reader resumes: it gets what was kept, a notice of what
         * was dropped, and the newest value last. */
        CU_ASSERT_EQUAL(h2_client_request_pause(slow.req, false), 0);
        for (unsigned i = 0; i < 300; i++) {
                (void) sd_event_run(T.dt.event, 100000);
                if (slow.size > 0 && strstr((const char *) slow.body, "\"bn\":\"599\""))
                        break;
        }
        size_t got = n_lines(&slow);
        CU_ASSERT_TRUE(got < N);
        CU_ASSERT_PTR_NOT_NULL(strstr((const char *) slow.body, "\"attribute\":\"dropped\""));
        {
                _cleanup_(json_decrefp) json_t *last = line_at(&slow, got - 1);
                CU_ASSERT_STRING_EQUAL(
                        dt_json_str(json_array_get(json_object_get(json_object_get(last, "body"), "value"), 0), "bn"),
                        "599");
        }
        h2_test_fetch_done(&fast);
        h2_test_fetch_done(&slow);
        slow_client = h2_client_unref(slow_client);
        teardown_test();
}

static void test_acl_parser(void) {
        _cleanup_(json_decrefp) json_t *acl = NULL;
        const char *reason = NULL;
        json_t *x = NULL;

        const char *text = "{\"gw-1\":\"rw\",\"*\":\"r\",\"gw-9\":\"\"}";

        CU_ASSERT_EQUAL(rd_acl_parse(text, strlen(text), &acl, &reason), 0);
        CU_ASSERT_EQUAL(rd_acl_lookup(acl, "gw-1"), RD_ACCESS_READ | RD_ACCESS_WRITE);
        CU_ASSERT_EQUAL(rd_acl_lookup(acl, "gw-2"), RD_ACCESS_READ);
        CU_ASSERT_EQUAL(rd_acl_lookup(acl, "gw-9"), RD_ACCESS_NONE);
        CU_ASSERT_EQUAL(rd_acl_lookup(acl, NULL), RD_ACCESS_READ);
        CU_ASSERT_EQUAL(rd_acl_parse("{\"a\":\"w\"}", 9, &x, &reason), -EINVAL);
        CU_ASSERT_EQUAL(rd_acl_parse("{\"a b\":\"r\"}", 11, &x, &reason), -EINVAL);
        CU_ASSERT_EQUAL(rd_acl_parse("{\"a\":\"r\",\"a\":\"rw\"}", 18, &x, &reason), -EBADMSG);
        CU_ASSERT_EQUAL(rd_acl_parse("[]", 2, &x, &reason), -EINVAL);
        CU_ASSERT_PTR_NULL(x);
        {
                _cleanup_(json_decrefp) json_t *empty = json_object();
                CU_ASSERT_EQUAL(rd_acl_lookup(empty, "gw-1"), RD_ACCESS_NONE);
        }
}

static CU_TestInfo tests[] = {
        { "ACL parser and lookup", test_acl_parser },
        { "read, list, ACL, 404, bad paths and headers", test_read_and_list },
        { "subscribe: current value first, later ones, end with the reporter", test_subscribe },
        { "actuation reaches the handler; sensor, ACL and SenML refusals", test_actuation },
        { "a stream ends with its token; streams per subject are bounded", test_stream_limits },
        { "401 without/forged/expired/foreign tokens, 403 without scope", test_unauthorized },
        { "domain key rotation: refresh on a new kid", test_key_rotation },
        { "requests before the key set wait for it", test_waits_for_keys },
        { "domain unreachable without a key set: 503", test_domain_unreachable },
        { "a slow subscriber loses the oldest, others keep up", test_slow_subscriber },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("local-rd", tests)
