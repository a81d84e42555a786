/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Global Registry driven over real HTTP/2 (our client) against a real
 * server, router, IdM and registry (its own SQLite file) in this process:
 * registration, keep-alive, unregistration, discovery with paging, expiry
 * through the event loop, status events, ownership, every refusal, and a
 * restart on the same state. */

#include <jansson.h>

#include "auth.h"
#include "h2-test-util.h"
#include "id.h"
#include "idm.h"
#include "registry.h"
#include "router.h"
#include "tests.h"

#define DOMAIN "example.org"

static struct {
        char dir[64];
        sd_event *event;
        auth *auth;
        router *router;
        H2Server *server;
        idm *idm;
        registry *registry;
        H2Client *client;
        H2TestConn conn;
        char *tok_a, *tok_b, *tok_admin, *tok_peer;
        char rt_a[80], rt_b[80];
        /* status events */
        char *ev_url[256];
        const char *ev_status[256];
        size_t n_ev;
} t;

static void on_status(const char *url, const char *status, void *userdata) {
        if (t.n_ev < ELEMENTSOF(t.ev_url)) {
                t.ev_url[t.n_ev] = strdup(url);
                t.ev_status[t.n_ev++] = status;
        }
}

static void events_clear(void) {
        for (size_t i = 0; i < t.n_ev; i++)
                free(t.ev_url[i]);
        t.n_ev = 0;
}

/* The statuses reported for url, in order, as "a,b,c". */
static char *events_for(const char *url) {
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);

        for (size_t i = 0; i < t.n_ev; i++)
                if (streq(t.ev_url[i], url))
                        fprintf(f, "%s%s", n > 0 || ftell(f) > 0 ? "," : "", t.ev_status[i]);
        fclose(f);
        return s;
}

static int start_registry(void) {
        int r;

        r = registry_new(t.event, t.dir, DOMAIN, t.idm, &t.registry);
        if (r < 0)
                return r;
        registry_set_lifetimes(t.registry,
                               &(registry_lifetimes) { .default_sec = 300, .min_sec = 1, .max_sec = 3600, .grace_sec = 1 });
        registry_set_status_handler(t.registry, on_status, NULL);
        return registry_start(t.registry);
}

static int setup(void) {
        char uuid[ID_UUID_STRING_MAX];
        int r;

        snprintf(t.dir, sizeof(t.dir), "/tmp/registry-test-XXXXXX");
        if (!mkdtemp(t.dir))
                return -1;
        if (sd_event_new(&t.event) < 0 || auth_new(&t.auth) < 0 || router_new(t.auth, &t.router) < 0)
                return -1;
        if (idm_new(t.dir, DOMAIN, &t.idm) < 0 || start_registry() < 0)
                return -1;
        r = registry_add_routes(t.registry, t.router);
        if (r >= 0)
                r = h2_server_new(t.event, NULL, NULL, &t.server);
        if (r < 0)
                return -1;
        router_attach(t.router, t.server);
        if (h2_server_listen(t.server, "127.0.0.1", 0) < 0)
                return -1;
        if (idm_issue(t.idm, "dev-a", "runtime peer", USEC_PER_HOUR, &t.tok_a) < 0 ||
            idm_issue(t.idm, "dev-b", "runtime peer", USEC_PER_HOUR, &t.tok_b) < 0 ||
            idm_issue(t.idm, "admin", "admin", USEC_PER_HOUR, &t.tok_admin) < 0 ||
            idm_issue(t.idm, "dev-c", "peer", USEC_PER_HOUR, &t.tok_peer) < 0)
                return -1;
        (void) id_uuid_new(uuid);
        snprintf(t.rt_a, sizeof(t.rt_a), "runtime://" DOMAIN "/%s", uuid);
        (void) id_uuid_new(uuid);
        snprintf(t.rt_b, sizeof(t.rt_b), "runtime://" DOMAIN "/%s", uuid);
        return h2_client_new(t.event, "127.0.0.1", (uint16_t) h2_server_get_port(t.server), NULL, NULL, NULL,
                             h2_test_conn_callbacks(), &t.conn, &t.client) < 0
                       ? -1
                       : 0;
}

static int cleanup(void) {
        t.client = h2_client_unref(t.client);
        t.server = h2_server_free(t.server);
        t.registry = registry_free(t.registry);
        t.idm = idm_free(t.idm);
        t.router = router_free(t.router);
        t.auth = auth_free(t.auth);
        t.event = sd_event_unref(t.event);
        free(t.tok_a);
        free(t.tok_b);
        free(t.tok_admin);
        free(t.tok_peer);
        events_clear();
        (void) nftw(t.dir, h2_test_rm, 8, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static void request(H2TestFetch *f, const char *method, const char *path, const char *token, const char *body,
                    size_t size) {
        _cleanup_free_ char *authz = NULL;
        H2Header h[2];
        size_t n = 0;

        memset(f, 0, sizeof(*f));
        if (token) {
                CU_ASSERT_FATAL(asprintf(&authz, "Bearer %s", token) > 0);
                h[n++] = (H2Header) { "authorization", authz };
        }
        if (body)
                h[n++] = (H2Header) { "content-type", "application/json" };
        CU_ASSERT_EQUAL_FATAL(h2_client_request(t.client, method, path, h, n, body, body ? size : 0, 0,
                                                h2_test_fetch_callbacks(false), f, &f->req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(t.event, &f->done, 30));
        CU_ASSERT_EQUAL(f->error, 0);
}

static int req(const char *method, const char *path, const char *token, const char *body, json_t **ret) {
        H2TestFetch f;
        int status;

        request(&f, method, path, token, body, body ? strlen(body) : 0);
        status = f.status;
        if (ret)
                *ret = f.body && f.size > 0 ? json_loadb((const char *) f.body, f.size, 0, NULL) : NULL;
        h2_test_fetch_done(&f);
        return status;
}

static bool is_error(const H2TestFetch *f, int status, const char *part) {
        json_t *j = f->body ? json_loadb((const char *) f->body, f->size, 0, NULL) : NULL;
        bool ok = f->status == status && j && json_integer_value(json_object_get(j, "code")) == status &&
                  json_is_string(json_object_get(j, "description")) &&
                  (!part || strstr(json_string_value(json_object_get(j, "description")), part)) &&
                  streq(f->content_type, "application/json");

        if (!ok)
                fprintf(stderr, "expected %d \"%s\", got %d: %.*s\n", status, strna(part), f->status, (int) f->size,
                        f->body ? (char *) f->body : "");
        json_decref(j);
        return ok;
}

static const char *jstr(json_t *j, const char *key) {
        return json_string_value(json_object_get(j, key));
}

static uint64_t count(registry_kind k) {
        uint64_t n = UINT64_MAX;

        CU_ASSERT_EQUAL(registry_count(t.registry, k, &n), 0);
        return n;
}

typedef struct Entry {
        char uuid[ID_UUID_STRING_MAX];
        char path[128];
        char url[128];
} Entry;

static void entry_new(Entry *e, const char *collection) {
        CU_ASSERT_EQUAL_FATAL(id_uuid_new(e->uuid), 0);
        snprintf(e->path, sizeof(e->path), "/registry/%s/%s", collection, e->uuid);
        snprintf(e->url, sizeof(e->url), "%s://" DOMAIN "/%s", streq(collection, "hyperties") ? "hyperty" : "ctxt",
                 e->uuid);
}

static char *hyperty_body(const char *runtime, const char *extra) {
        char *s;

        CU_ASSERT_FATAL(asprintf(&s,
                                 "{\"descriptor\":\"https://catalogue." DOMAIN "/.well-known/hyperty/Sensor\","
                                 "\"runtime\":\"%s\",\"location\":{\"type\":\"messaging\"}%s}",
                                 runtime, extra ?: "") > 0);
        return s;
}

/* Registers a hyperty for dev-a; extra is more JSON members. */
static void put_hyperty(Entry *e, const char *extra, int expect) {
        _cleanup_free_ char *body = hyperty_body(t.rt_a, extra);

        entry_new(e, "hyperties");
        CU_ASSERT_EQUAL(req("PUT", e->path, t.tok_a, body, NULL), expect);
}

static void test_register(void) {
        _cleanup_free_ char *body = NULL, *ev = NULL;
        Entry e;
        H2TestFetch f;
        json_t *j;

        events_clear();
        entry_new(&e, "hyperties");
        CU_ASSERT_FATAL(asprintf(&body,
                                 "{\"url\":\"%s\",\"descriptor\":\"https://catalogue." DOMAIN "/.well-known/hyperty/Sensor\","
                                 "\"user\":\"user://idp.example/alice\",\"runtime\":\"%s\",\"resources\":[\"temperature\",\"humidity\"],"
                                 "\"dataSchemes\":[\"ctxt\"],\"tags\":[\"kitchen\"],"
                                 "\"location\":{\"type\":\"local\",\"endpoint\":\"https://[fd00::1]:8443/rd\"},\"lifetime\":120}",
                                 e.url, t.rt_a) > 0);
        request(&f, "PUT", e.path, t.tok_a, body, strlen(body));
        CU_ASSERT_EQUAL(f.status, 201);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "location")), e.path);
        j = json_loadb((const char *) f.body, f.size, 0, NULL);
        h2_test_fetch_done(&f);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "url")), e.url);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "user")), "user://idp.example/alice");
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "runtime")), t.rt_a);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "status")), "live");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "lifetime")), 120);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "resources")), 2);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_array_get(json_object_get(j, "resources"), 1))), "humidity");
        CU_ASSERT_STRING_EQUAL(strna(jstr(json_object_get(j, "location"), "endpoint")), "https://[fd00::1]:8443/rd");
        CU_ASSERT_TRUE(json_is_string(json_object_get(j, "expires")));
        json_decref(j);

        /* Read back by dev-b (discovery of others is allowed) and admin. */
        CU_ASSERT_EQUAL(req("GET", e.path, t.tok_b, NULL, &j), 200);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "descriptor")), "https://catalogue." DOMAIN "/.well-known/hyperty/Sensor");
        json_decref(j);
        CU_ASSERT_EQUAL(req("GET", e.path, t.tok_admin, NULL, NULL), 200);

        /* Update by re-PUT: 200, the new values replace the old ones. */
        free(body);
        body = hyperty_body(t.rt_a, ",\"resources\":[\"pressure\"]");
        CU_ASSERT_EQUAL(req("PUT", e.path, t.tok_a, body, &j), 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "resources")), 1);
        CU_ASSERT_PTR_NULL(json_object_get(j, "user"));
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "lifetime")), 300);
        json_decref(j);
        CU_ASSERT_EQUAL(req("GET", "/registry/hyperties?resource=temperature", t.tok_a, NULL, &j), 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "hyperties")), 0);
        json_decref(j);

        /* The Messaging Service's lookup. */
        {
                _cleanup_free_ char *rt = NULL;

                CU_ASSERT_EQUAL(registry_get_runtime(t.registry, e.url, &rt), 1);
                CU_ASSERT_STRING_EQUAL(strna(rt), t.rt_a);
                CU_ASSERT_EQUAL(registry_get_runtime(t.registry, "hyperty://" DOMAIN "/0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60", &rt), 0);
        }

        /* One "live" event: the update changed no status. */
        ev = events_for(e.url);
        CU_ASSERT_STRING_EQUAL(ev, "live");
}

static void test_register_errors(void) {
        static const struct {
                const char *body, *part;
        } cases[] = {
                { "", "expected a JSON object" },
                { "{", "invalid JSON" },
                { "[]", "expected a JSON object" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"descriptor\":\"https://c/y\"}", "invalid JSON" },
                { "{\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"}}", "'descriptor': missing" },
                { "{\"descriptor\":\"https://c/x\",\"location\":{\"type\":\"messaging\"}}", "'runtime': missing" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\"}", "'location': missing" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"extra\":1}", "unknown field" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"reporter\":\"hyperty://" DOMAIN "/0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60\"}", "unknown field" },
                { "{\"descriptor\":5,\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"}}", "'descriptor'" },
                { "{\"descriptor\":\"not a url\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"}}", "'descriptor'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"runtime://other.example/0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60\",\"location\":{\"type\":\"messaging\"}}", "'runtime'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"hyperty://" DOMAIN "/0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60\",\"location\":{\"type\":\"messaging\"}}", "'runtime'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"runtime://" DOMAIN "/0B8F2C7E-4C1A-4F57-9A7E-1D2C3B4A5F60\",\"location\":{\"type\":\"messaging\"}}", "'runtime'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"url\":\"hyperty://" DOMAIN "/0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60\"}", "'url'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"user\":\"alice\"}", "'user'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"user\":\"runtime://" DOMAIN "/0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60\"}", "'user'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"resources\":\"temperature\"}", "'resources'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"resources\":[\"a\",\"a\"]}", "'resources'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"resources\":[\"a b\"]}", "'resources'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"dataSchemes\":[1]}", "'dataSchemes'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"tags\":[\"\"]}", "'tags'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"tags\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\",\"18\",\"19\",\"20\",\"21\",\"22\",\"23\",\"24\",\"25\",\"26\",\"27\",\"28\",\"29\",\"30\",\"31\",\"32\",\"33\"]}", "'tags'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"pigeon\"}}", "'location.type'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":\"messaging\"}", "'location'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\",\"endpoint\":\"https://x\"}}", "'location.endpoint'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"local\"}}", "'location.endpoint'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"local\",\"endpoint\":\"http://x\"}}", "'location.endpoint'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"local\",\"endpoint\":\"https://x\",\"port\":1}}", "'location'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"lifetime\":0}", "'lifetime'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"lifetime\":\"60\"}", "'lifetime'" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"lifetime\":3601}", "between 1 and 3600" },
                { "{\"descriptor\":\"https://c/x\",\"runtime\":\"RT\",\"location\":{\"type\":\"messaging\"},\"lifetime\":1.5}", "'lifetime'" },
        };
        uint64_t before = count(REGISTRY_HYPERTY);
        H2TestFetch f;
        Entry e;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *body = NULL;
                const char *p = strstr(cases[i].body, "\"RT\"");

                /* RT stands for dev-a's runtime. */
                if (p)
                        CU_ASSERT_FATAL(asprintf(&body, "%.*s\"%s\"%s", (int) (p - cases[i].body), cases[i].body, t.rt_a,
                                                 p + 4) > 0);
                entry_new(&e, "hyperties");
                request(&f, "PUT", e.path, t.tok_a, body ?: cases[i].body, strlen(body ?: cases[i].body));
                if (!is_error(&f, 400, cases[i].part))
                        fprintf(stderr, "case %zu\n", i);
                h2_test_fetch_done(&f);
                CU_ASSERT_EQUAL(req("GET", e.path, t.tok_a, NULL, NULL), 404);
        }

        /* Path and query. */
        {
                _cleanup_free_ char *body = hyperty_body(t.rt_a, NULL);
                char *big;

                request(&f, "PUT", "/registry/hyperties/0B8F2C7E-4C1A-4F57-9A7E-1D2C3B4A5F60", t.tok_a, body, strlen(body));
                CU_ASSERT_TRUE(is_error(&f, 400, "UUID"));
                h2_test_fetch_done(&f);
                request(&f, "PUT", "/registry/hyperties/not-a-uuid", t.tok_a, body, strlen(body));
                CU_ASSERT_TRUE(is_error(&f, 400, "UUID"));
                h2_test_fetch_done(&f);
                entry_new(&e, "hyperties");
                strcat(e.path, "?x=1");
                request(&f, "PUT", e.path, t.tok_a, body, strlen(body));
                CU_ASSERT_TRUE(is_error(&f, 400, "query"));
                h2_test_fetch_done(&f);

                /* Oversize: 413, and the server keeps serving. */
                big = malloc(REGISTRY_BODY_MAX + 2);
                CU_ASSERT_PTR_NOT_NULL_FATAL(big);
                memset(big, ' ', REGISTRY_BODY_MAX + 1);
                big[REGISTRY_BODY_MAX + 1] = '\0';
                entry_new(&e, "hyperties");
                request(&f, "PUT", e.path, t.tok_a, big, REGISTRY_BODY_MAX + 1);
                CU_ASSERT_TRUE(is_error(&f, 413, NULL));
                h2_test_fetch_done(&f);
                free(big);
                CU_ASSERT_EQUAL(req("PUT", e.path, t.tok_a, body, NULL), 201);
                CU_ASSERT_EQUAL(req("DELETE", e.path, t.tok_a, NULL, NULL), 204);
        }
        CU_ASSERT_EQUAL(count(REGISTRY_HYPERTY), before);
}

static void test_authorization(void) {
        _cleanup_token_key_ token_key *forger = NULL;
        _cleanup_free_ char *body_a = hyperty_body(t.rt_a, NULL), *body_b = hyperty_body(t.rt_b, NULL), *forged = NULL,
                            *wrong_aud = NULL, *expired = NULL, *key_path = NULL;
        _cleanup_token_key_ token_key *idm_key = NULL;
        uint64_t before;
        H2TestFetch f;
        Entry a, b, other;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&forger), 0);
        CU_ASSERT_EQUAL_FATAL(token_issue(forger, &(token_issue_params) { .issuer = DOMAIN, .subject = "dev-a", .audience = DOMAIN,
                                                                           .scope = "runtime", .lifetime = USEC_PER_HOUR },
                                          &forged),
                              0);
        CU_ASSERT_FATAL(asprintf(&key_path, "%s/%s", t.dir, IDM_KEY_FILE_NAME) > 0);
        CU_ASSERT_EQUAL_FATAL(token_key_load_private_pem(key_path, &idm_key), 0);
        CU_ASSERT_EQUAL_FATAL(token_issue(idm_key, &(token_issue_params) { .issuer = DOMAIN, .subject = "dev-a", .audience = "other.example",
                                                                            .scope = "runtime", .lifetime = USEC_PER_HOUR },
                                          &wrong_aud),
                              0);
        CU_ASSERT_EQUAL_FATAL(token_issue(idm_key, &(token_issue_params) { .issuer = DOMAIN, .subject = "dev-a", .audience = DOMAIN,
                                                                            .scope = "runtime", .lifetime = USEC_PER_MINUTE,
                                                                            .now = now(CLOCK_REALTIME) - USEC_PER_HOUR },
                                          &expired),
                              0);

        put_hyperty(&a, NULL, 201);
        before = count(REGISTRY_HYPERTY);
        entry_new(&b, "hyperties");

        /* 401: no token, forged, wrong audience, expired; with WWW-Authenticate. */
        request(&f, "PUT", b.path, NULL, body_a, strlen(body_a));
        CU_ASSERT_TRUE(is_error(&f, 401, "missing bearer token"));
        CU_ASSERT_PTR_NOT_NULL(h2_client_request_get_header(f.req, "www-authenticate"));
        h2_test_fetch_done(&f);
        request(&f, "PUT", b.path, forged, body_a, strlen(body_a));
        CU_ASSERT_TRUE(is_error(&f, 401, "kid"));
        h2_test_fetch_done(&f);
        request(&f, "PUT", b.path, wrong_aud, body_a, strlen(body_a));
        CU_ASSERT_TRUE(is_error(&f, 401, "audience"));
        h2_test_fetch_done(&f);
        request(&f, "PUT", b.path, expired, body_a, strlen(body_a));
        CU_ASSERT_TRUE(is_error(&f, 401, "expired"));
        h2_test_fetch_done(&f);
        request(&f, "GET", "/registry/hyperties", NULL, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 401, NULL));
        h2_test_fetch_done(&f);

        /* 403: valid tokens without the right scope or ownership. */
        request(&f, "PUT", b.path, t.tok_admin, body_a, strlen(body_a));
        CU_ASSERT_TRUE(is_error(&f, 403, "scope"));
        h2_test_fetch_done(&f);
        request(&f, "PUT", b.path, t.tok_peer, body_a, strlen(body_a));
        CU_ASSERT_TRUE(is_error(&f, 403, "scope"));
        h2_test_fetch_done(&f);
        request(&f, "GET", "/registry/hyperties", t.tok_peer, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 403, "scope"));
        h2_test_fetch_done(&f);
        /* dev-b with dev-a's runtime, dev-b over dev-a's entry. */
        request(&f, "PUT", b.path, t.tok_b, body_a, strlen(body_a));
        CU_ASSERT_TRUE(is_error(&f, 403, "runtime belongs to another device"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(req("PUT", b.path, t.tok_b, body_b, NULL), 201); /* its own runtime: fine */
        before++;
        request(&f, "PUT", a.path, t.tok_b, body_b, strlen(body_b));
        CU_ASSERT_TRUE(is_error(&f, 403, "another device"));
        h2_test_fetch_done(&f);
        CU_ASSERT_FATAL(strlen(a.path) + 11 <= sizeof(other.path));
        memcpy(other.path, a.path, strlen(a.path));
        strcpy(other.path + strlen(a.path), "/keepalive");
        request(&f, "POST", other.path, t.tok_b, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 403, "another device"));
        h2_test_fetch_done(&f);
        request(&f, "DELETE", a.path, t.tok_b, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 403, "another device"));
        h2_test_fetch_done(&f);
        request(&f, "POST", other.path, t.tok_admin, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 403, "scope"));
        h2_test_fetch_done(&f);

        /* Nothing changed: a still dev-a's with its runtime. */
        {
                json_t *j;

                CU_ASSERT_EQUAL(req("GET", a.path, t.tok_a, NULL, &j), 200);
                CU_ASSERT_STRING_EQUAL(strna(jstr(j, "runtime")), t.rt_a);
                json_decref(j);
        }
        CU_ASSERT_EQUAL(count(REGISTRY_HYPERTY), before);

        /* The admin may remove anything. */
        CU_ASSERT_EQUAL(req("DELETE", b.path, t.tok_admin, NULL, NULL), 204);
        CU_ASSERT_EQUAL(req("DELETE", a.path, t.tok_a, NULL, NULL), 204);
        CU_ASSERT_EQUAL(count(REGISTRY_HYPERTY), before - 2);
}

static json_t *list(const char *query, const char *token, int expect) {
        char path[512];
        json_t *j = NULL;

        snprintf(path, sizeof(path), "/registry/hyperties%s", query);
        CU_ASSERT_EQUAL(req("GET", path, token ?: t.tok_b, NULL, &j), expect);
        return j;
}

static size_t list_size(const char *query) {
        json_t *j = list(query, NULL, 200);
        size_t n = json_array_size(json_object_get(j, "hyperties"));

        json_decref(j);
        return n;
}

static void test_discovery(void) {
        Entry e[6];
        char q[256];
        H2TestFetch f;
        json_t *j;

        put_hyperty(&e[0], ",\"user\":\"user://idp.example/bob\",\"resources\":[\"co2\"],\"dataSchemes\":[\"ctxt\"],\"tags\":[\"lab\"]", 201);
        put_hyperty(&e[1], ",\"user\":\"user://idp.example/bob\",\"resources\":[\"co2\",\"noise\"],\"tags\":[\"office\"]", 201);
        put_hyperty(&e[2], ",\"user\":\"user://idp.example/carol\",\"resources\":[\"noise\"],\"dataSchemes\":[\"ctxt\",\"comm\"],\"tags\":[\"lab\"]", 201);
        put_hyperty(&e[3], ",\"resources\":[\"light\"],\"tags\":[\"lab\",\"office\"]", 201);

        CU_ASSERT_EQUAL(list_size("?resource=co2"), 2);
        CU_ASSERT_EQUAL(list_size("?resource=noise"), 2);
        CU_ASSERT_EQUAL(list_size("?resource=nothing"), 0);
        CU_ASSERT_EQUAL(list_size("?scheme=ctxt"), 2);
        CU_ASSERT_EQUAL(list_size("?scheme=comm"), 1);
        CU_ASSERT_EQUAL(list_size("?tag=lab"), 3);
        CU_ASSERT_EQUAL(list_size("?user=user://idp.example/bob"), 2);
        CU_ASSERT_EQUAL(list_size("?user=user%3A%2F%2Fidp.example%2Fcarol"), 1);
        CU_ASSERT_EQUAL(list_size("?resource=co2&tag=lab"), 1);
        CU_ASSERT_EQUAL(list_size("?resource=noise&scheme=ctxt&tag=lab"), 1);
        CU_ASSERT_EQUAL(list_size("?tag=office&user=user://idp.example/bob"), 1);
        CU_ASSERT_EQUAL(list_size("?tag=lab&status=live"), 3);
        CU_ASSERT_EQUAL(list_size("?tag=lab&status=disconnected"), 0);
        snprintf(q, sizeof(q), "?url=%s", e[2].url);
        j = list(q, t.tok_admin, 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "hyperties")), 1);
        CU_ASSERT_STRING_EQUAL(strna(jstr(json_array_get(json_object_get(j, "hyperties"), 0), "url")), e[2].url);
        CU_ASSERT_PTR_NULL(json_object_get(j, "next"));
        json_decref(j);
        snprintf(q, sizeof(q), "?url=%s&resource=co2", e[2].url);
        CU_ASSERT_EQUAL(list_size(q), 0);

        /* Results come in url order. */
        j = list("?tag=lab", NULL, 200);
        for (size_t i = 1; i < json_array_size(json_object_get(j, "hyperties")); i++)
                CU_ASSERT_TRUE(strcmp(jstr(json_array_get(json_object_get(j, "hyperties"), i - 1), "url"),
                                      jstr(json_array_get(json_object_get(j, "hyperties"), i), "url")) < 0);
        json_decref(j);

        /* Bad parameters. */
        static const struct {
                const char *query, *part;
        } bad[] = {
                { "?resource=a%20b", "'resource'" }, { "?resource=", "'resource'" }, { "?scheme=%zz", "'scheme'" },
                { "?tag=a&tag=b", "'tag'" },          { "?user=bob", "'user'" },      { "?user=hyperty://" DOMAIN "/x", "'user'" },
                { "?url=nope", "'url'" },              { "?status=dead", "'status'" }, { "?limit=0", "'limit'" },
                { "?limit=101", "'limit'" },           { "?limit=abc", "'limit'" },    { "?limit=-1", "'limit'" },
                { "?limit=01", "'limit'" },            { "?cursor=x", "'cursor'" },    { "?owner=dev-a", "unknown query parameter" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char path[256];

                snprintf(path, sizeof(path), "/registry/hyperties%s", bad[i].query);
                request(&f, "GET", path, t.tok_a, NULL, 0);
                if (!is_error(&f, 400, bad[i].part))
                        fprintf(stderr, "query %s\n", bad[i].query);
                h2_test_fetch_done(&f);
        }
        request(&f, "GET", "/registry/hyperties/", t.tok_a, NULL, 0);
        CU_ASSERT_TRUE(is_error(&f, 404, NULL));
        h2_test_fetch_done(&f);
        request(&f, "POST", "/registry/hyperties", t.tok_a, "{}", 2);
        CU_ASSERT_TRUE(is_error(&f, 405, NULL));
        h2_test_fetch_done(&f);

        for (size_t i = 0; i < 4; i++)
                CU_ASSERT_EQUAL(req("DELETE", e[i].path, t.tok_a, NULL, NULL), 204);
}

/* Keyset paging: every entry present before the first page is seen
 * exactly once, whatever is inserted between pages; an entry inserted
 * after the cursor shows up, one before it does not. */
static void test_paging(void) {
        enum { N = 23 };
        Entry e[N], late[6];
        char *seen[N + 6];
        size_t n_seen = 0, pages = 0;
        _cleanup_free_ char *cursor = NULL;

        for (size_t i = 0; i < N; i++)
                put_hyperty(&e[i], ",\"tags\":[\"paging\"]", 201);

        for (;;) {
                char q[256];
                json_t *j, *a;

                if (cursor)
                        snprintf(q, sizeof(q), "?tag=paging&limit=5&cursor=%s", cursor);
                else
                        snprintf(q, sizeof(q), "?tag=paging&limit=5");
                j = list(q, NULL, 200);
                CU_ASSERT_PTR_NOT_NULL_FATAL(j);
                a = json_object_get(j, "hyperties");
                CU_ASSERT_TRUE(json_array_size(a) <= 5);
                for (size_t i = 0; i < json_array_size(a) && n_seen < ELEMENTSOF(seen); i++)
                        seen[n_seen++] = strdup(jstr(json_array_get(a, i), "url"));
                free(cursor);
                cursor = json_object_get(j, "next") ? strdup(jstr(j, "next")) : NULL;
                if (cursor)
                        CU_ASSERT_STRING_EQUAL(cursor, seen[n_seen - 1]);
                json_decref(j);
                pages++;
                /* Concurrent inserts after the first and second pages. */
                if (pages <= 2)
                        for (size_t i = 0; i < 3; i++)
                                put_hyperty(&late[(pages - 1) * 3 + i], ",\"tags\":[\"paging\"]", 201);
                if (!cursor)
                        break;
                CU_ASSERT_FATAL(pages < 20);
        }

        /* Strictly increasing: no entry twice. */
        for (size_t i = 1; i < n_seen; i++)
                CU_ASSERT_TRUE(strcmp(seen[i - 1], seen[i]) < 0);
        /* Everything that was there from the start. */
        for (size_t i = 0; i < N; i++) {
                bool found = false;

                for (size_t k = 0; k < n_seen; k++)
                        found = found || streq(seen[k], e[i].url);
                CU_ASSERT_TRUE(found);
        }
        CU_ASSERT_TRUE(n_seen >= N && n_seen <= N + 6);

        for (size_t i = 0; i < n_seen; i++)
                free(seen[i]);
        for (size_t i = 0; i < N; i++)
                CU_ASSERT_EQUAL(req("DELETE", e[i].path, t.tok_a, NULL, NULL), 204);
        for (size_t i = 0; i < 6; i++)
                CU_ASSERT_EQUAL(req("DELETE", late[i].path, t.tok_a, NULL, NULL), 204);
        CU_ASSERT_EQUAL(list_size("?tag=paging"), 0);
}

static void test_dataobjects(void) {
        _cleanup_free_ char *body = NULL, *hbody = hyperty_body(t.rt_a, NULL);
        Entry h, d;
        json_t *j;

        put_hyperty(&h, NULL, 201);
        entry_new(&d, "dataobjects");
        CU_ASSERT_FATAL(asprintf(&body,
                                 "{\"url\":\"%s\",\"descriptor\":\"https://catalogue." DOMAIN "/.well-known/dataschema/Context\","
                                 "\"reporter\":\"%s\",\"runtime\":\"%s\",\"resources\":[\"temperature\"],\"dataSchemes\":[\"ctxt\"],"
                                 "\"location\":{\"type\":\"messaging\"}}",
                                 d.url, h.url, t.rt_a) > 0);
        CU_ASSERT_EQUAL(req("PUT", d.path, t.tok_a, body, &j), 201);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "reporter")), h.url);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "url")), d.url);
        json_decref(j);
        CU_ASSERT_EQUAL(req("GET", "/registry/dataobjects?resource=temperature", t.tok_b, NULL, &j), 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "dataObjects")), 1);
        json_decref(j);
        /* Kinds are apart: the hyperty index does not see it. */
        CU_ASSERT_EQUAL(list_size("?resource=temperature"), 0);
        /* A hyperty url in a data object's place is refused. */
        CU_ASSERT_EQUAL(req("PUT", h.path, t.tok_a, hbody, NULL), 200);
        free(body);
        CU_ASSERT_FATAL(asprintf(&body, "{\"url\":\"%s\",\"descriptor\":\"https://c/x\",\"runtime\":\"%s\",\"location\":{\"type\":\"messaging\"}}",
                                 h.url, t.rt_a) > 0);
        snprintf(d.path, sizeof(d.path), "/registry/dataobjects/%s", h.uuid);
        CU_ASSERT_EQUAL(req("PUT", d.path, t.tok_a, body, NULL), 400);
        CU_ASSERT_EQUAL(count(REGISTRY_DATAOBJECT), 1);
        CU_ASSERT_EQUAL(req("DELETE", h.path, t.tok_a, NULL, NULL), 204);
}

static bool wait_for_event(const char *url, const char *status) {
        uint64_t deadline = h2_test_now_usec() + 30 * USEC_PER_SEC;

        while (h2_test_now_usec() < deadline) {
                for (size_t i = 0; i < t.n_ev; i++)
                        if (streq(t.ev_url[i], url) && streq(t.ev_status[i], status))
                                return true;
                (void) sd_event_run(t.event, 100000);
        }
        return false;
}

static void test_expiry(void) {
        _cleanup_free_ char *ev = NULL, *ev2 = NULL;
        char keepalive[160];
        Entry a, b;
        json_t *j;

        events_clear();
        put_hyperty(&a, ",\"lifetime\":1", 201);
        put_hyperty(&b, ",\"lifetime\":1,\"tags\":[\"expiry\"]", 201);

        /* live -> disconnected: still listed, with that status. */
        CU_ASSERT_TRUE_FATAL(wait_for_event(b.url, "disconnected"));
        CU_ASSERT_EQUAL(req("GET", b.path, t.tok_a, NULL, &j), 200);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "status")), "disconnected");
        json_decref(j);
        CU_ASSERT_EQUAL(list_size("?tag=expiry&status=disconnected"), 1);
        CU_ASSERT_EQUAL(list_size("?tag=expiry&status=live"), 0);

        /* A keep-alive brings a disconnected entry back. */
        snprintf(keepalive, sizeof(keepalive), "%s/keepalive", b.path);
        CU_ASSERT_EQUAL(req("POST", keepalive, t.tok_a, NULL, NULL), 204);
        CU_ASSERT_EQUAL(req("GET", b.path, t.tok_a, NULL, &j), 200);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "status")), "live");
        json_decref(j);
        {
                H2TestFetch f;

                request(&f, "POST", keepalive, t.tok_a, "{}", 2);
                CU_ASSERT_TRUE(is_error(&f, 400, "body"));
                h2_test_fetch_done(&f);
        }

        /* Then away, after the grace period. */
        CU_ASSERT_TRUE_FATAL(wait_for_event(a.url, "deleted"));
        CU_ASSERT_EQUAL(req("GET", a.path, t.tok_a, NULL, NULL), 404);
        CU_ASSERT_EQUAL(req("POST", "/registry/hyperties/0b8f2c7e-4c1a-4f57-9a7e-1d2c3b4a5f60/keepalive", t.tok_a, NULL, NULL), 404);
        ev = events_for(a.url);
        CU_ASSERT_STRING_EQUAL(ev, "live,disconnected,deleted");

        CU_ASSERT_EQUAL(req("DELETE", b.path, t.tok_a, NULL, NULL), 204);
        ev2 = events_for(b.url);
        CU_ASSERT_TRUE(strncmp(ev2, "live,disconnected,live", 22) == 0);
        CU_ASSERT_TRUE(strlen(ev2) >= 8 && streq(ev2 + strlen(ev2) - 7, "deleted"));
}

static void test_unregister(void) {
        _cleanup_free_ char *ev = NULL;
        Entry e;

        events_clear();
        put_hyperty(&e, NULL, 201);
        CU_ASSERT_EQUAL(req("DELETE", e.path, t.tok_a, NULL, NULL), 204);
        CU_ASSERT_EQUAL(req("GET", e.path, t.tok_a, NULL, NULL), 404);
        CU_ASSERT_EQUAL(req("DELETE", e.path, t.tok_a, NULL, NULL), 404);
        ev = events_for(e.url);
        CU_ASSERT_STRING_EQUAL(ev, "live,deleted");
}

static void test_persistence(void) {
        Entry e, gone;
        json_t *j;

        put_hyperty(&e, ",\"resources\":[\"persist\"],\"lifetime\":3600", 201);
        put_hyperty(&gone, ",\"resources\":[\"persist\"],\"lifetime\":1", 201);

        /* Restart the registry (a new connection to the same file) while
         * gone's lifetime and grace run out: start() catches up. */
        t.registry = registry_free(t.registry);
        sleep(3);
        events_clear();
        CU_ASSERT_EQUAL_FATAL(start_registry(), 0);
        /* The routes hold the old pointer: re-register on a fresh router. */
        {
                router *rt = NULL;

                CU_ASSERT_EQUAL_FATAL(router_new(t.auth, &rt), 0);
                CU_ASSERT_EQUAL_FATAL(registry_add_routes(t.registry, rt), 0);
                router_attach(rt, t.server);
                t.router = router_free(t.router);
                t.router = rt;
        }
        {
                _cleanup_free_ char *ev = events_for(gone.url);
                CU_ASSERT_STRING_EQUAL(ev, "disconnected,deleted");
        }
        CU_ASSERT_EQUAL(req("GET", e.path, t.tok_b, NULL, &j), 200);
        CU_ASSERT_STRING_EQUAL(strna(jstr(j, "status")), "live");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "lifetime")), 3600);
        json_decref(j);
        CU_ASSERT_EQUAL(list_size("?resource=persist"), 1);
        /* Ownership survives too. */
        CU_ASSERT_EQUAL(req("DELETE", e.path, t.tok_b, NULL, NULL), 403);
        CU_ASSERT_EQUAL(req("DELETE", e.path, t.tok_a, NULL, NULL), 204);
}

CU_TestInfo tests[] = {
        { "register", test_register },
        { "register errors", test_register_errors },
        { "authorization", test_authorization },
        { "discovery", test_discovery },
        { "paging with concurrent inserts", test_paging },
        { "data objects", test_dataobjects },
        { "expiry", test_expiry },
        { "unregister", test_unregister },
        { "persistence", test_persistence },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-registry", tests, setup, cleanup)
