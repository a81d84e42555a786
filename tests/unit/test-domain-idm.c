/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The IdM driven over real HTTP/2 (our client) against a real server,
 * router and IdM in this process: JWKS, admin and device tokens, every
 * refusal of the token endpoint, and idm_check_bearer() against forged,
 * expired, misaddressed and under-scoped tokens. */

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include "auth.h"
#include "encoding.h"
#include "fileio.h"
#include "h2-test-util.h"
#include "idm.h"
#include "oauth-form.h"
#include "router.h"
#include "tests.h"

#define DOMAIN "example.org"
#define ADMIN_SECRET "idm-test-admin-secret-0123456789"

typedef struct TestDevice {
        const char *endpoint;
        bool claimed, pem;
        token_key *key;
} TestDevice;

static TestDevice devices[] = {
        { "sensor-1", true, false, NULL },
        { "sensor-2", true, true, NULL }, /* key registered as PEM */
        { "sensor-new", false, false, NULL },
};

static struct {
        char dir[64];
        sd_event *event;
        auth *auth;
        router *router;
        H2Server *server;
        idm *idm;
        H2Client *client;
        H2TestConn conn;
        unsigned lookups;
} t;

static int lookup(const char *endpoint, char **ret_public_key, bool *ret_claimed, void *userdata) {
        t.lookups++;
        /* What device management stores today: an Ed25519 key, base64url. */
        if (streq(endpoint, "sensor-ed25519")) {
                *ret_public_key = strdup("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
                *ret_claimed = true;
                return *ret_public_key ? 0 : -ENOMEM;
        }
        for (size_t i = 0; i < ELEMENTSOF(devices); i++)
                if (streq(devices[i].endpoint, endpoint)) {
                        int r = devices[i].pem ? token_key_get_public_pem(devices[i].key, ret_public_key)
                                               : token_key_to_jwk(devices[i].key, ret_public_key);
                        if (r < 0)
                                return r;
                        *ret_claimed = devices[i].claimed;
                        return 0;
                }
        return -ENOENT;
}

/* A route that runs idm_check_bearer() with the scope in the query and
 * answers with the subject, so the contract is tested over HTTP/2. */
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

static int start_idm(void) {
        int r;

        r = idm_new(t.dir, DOMAIN, &t.idm);
        if (r < 0)
                return r;
        idm_set_device_lookup(t.idm, lookup, NULL);
        return idm_set_admin_credential(t.idm, ADMIN_SECRET);
}

static int setup(void) {
        int r;

        snprintf(t.dir, sizeof(t.dir), "/tmp/idm-test-XXXXXX");
        if (!mkdtemp(t.dir))
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(devices); i++)
                if (token_key_generate(&devices[i].key) < 0)
                        return -1;
        if (sd_event_new(&t.event) < 0 || auth_new(&t.auth) < 0 || router_new(t.auth, &t.router) < 0)
                return -1;
        if (start_idm() < 0)
                return -1;
        r = idm_add_routes(t.idm, t.router);
        if (r >= 0)
                r = router_add(t.router, check_routes, ELEMENTSOF(check_routes), NULL);
        if (r >= 0)
                r = h2_server_new(t.event, NULL, NULL, &t.server);
        if (r < 0)
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
        for (size_t i = 0; i < ELEMENTSOF(devices); i++)
                devices[i].key = token_key_free(devices[i].key);
        (void) nftw(t.dir, h2_test_rm, 8, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static void request(H2TestFetch *f, const char *method, const char *path, const H2Header *headers, size_t n,
                    const char *body) {
        memset(f, 0, sizeof(*f));
        CU_ASSERT_EQUAL_FATAL(h2_client_request(t.client, method, path, headers, n, body, body ? strlen(body) : 0, 0,
                                                h2_test_fetch_callbacks(false), f, &f->req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(t.event, &f->done, 30));
        CU_ASSERT_EQUAL(f->error, 0);
}

static void post_form(H2TestFetch *f, const char *body) {
        static const H2Header h[] = { { "content-type", "application/x-www-form-urlencoded" } };
        request(f, "POST", "/idm/token", h, 1, body);
}

static json_t *body_json(const H2TestFetch *f) {
        return f->body ? json_loadb((const char *) f->body, f->size, 0, NULL) : NULL;
}

/* An OAuth error with the project's code/description beside it. */
static bool is_oauth_error(const H2TestFetch *f, int status, const char *error, const char *part) {
        json_t *j = body_json(f);
        bool ok = f->status == status && j && streq_ptr(json_string_value(json_object_get(j, "error")), error) &&
                  json_integer_value(json_object_get(j, "code")) == status &&
                  json_is_string(json_object_get(j, "error_description")) &&
                  streq_ptr(json_string_value(json_object_get(j, "error_description")),
                            json_string_value(json_object_get(j, "description"))) &&
                  (!part || strstr(json_string_value(json_object_get(j, "description")), part)) &&
                  streq(f->content_type, "application/json");

        if (!ok)
                fprintf(stderr, "expected %d %s \"%s\", got %d: %.*s\n", status, error, strna(part), f->status,
                        (int) f->size, f->body ? (char *) f->body : "");
        json_decref(j);
        return ok;
}

static bool is_error(const H2TestFetch *f, int status, const char *part) {
        json_t *j = body_json(f);
        bool ok = f->status == status && j && json_integer_value(json_object_get(j, "code")) == status &&
                  json_is_string(json_object_get(j, "description")) &&
                  (!part || strstr(json_string_value(json_object_get(j, "description")), part));

        if (!ok)
                fprintf(stderr, "expected %d \"%s\", got %d: %.*s\n", status, strna(part), f->status, (int) f->size,
                        f->body ? (char *) f->body : "");
        json_decref(j);
        return ok;
}

/* The access token of a successful answer, verified against the JWKS the
 * IdM serves (as a peer would), with its claims. */
static char *fetch_jwks_and_verify(const H2TestFetch *f, const char *scope, token_claims **ret) {
        _cleanup_token_keyset_ token_keyset *ks = NULL;
        H2TestFetch jf;
        json_t *j = body_json(f);
        char *token;

        CU_ASSERT_EQUAL_FATAL(f->status, 200);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "token_type")), "Bearer");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "expires_in")), 3600);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(j, "scope"))), scope);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f->req, "cache-control")), "no-store");
        token = strdup(json_string_value(json_object_get(j, "access_token")));
        json_decref(j);
        CU_ASSERT_PTR_NOT_NULL_FATAL(token);

        request(&jf, "GET", "/idm/jwks", NULL, 0, NULL);
        CU_ASSERT_EQUAL_FATAL(jf.status, 200);
        CU_ASSERT_EQUAL_FATAL(token_keyset_from_jwks((const char *) jf.body, jf.size, &ks, NULL), 0);
        h2_test_fetch_done(&jf);
        CU_ASSERT_EQUAL_FATAL(token_verify(ks, token, &(token_verify_params) { .issuer = DOMAIN, .audience = DOMAIN, .scope = scope },
                                           ret, NULL),
                              0);
        return token;
}

static char *assertion_for(const TestDevice *d, const token_key *k, const char *aud, usec_t when) {
        char *a = NULL;

        CU_ASSERT_EQUAL_FATAL(token_assertion_new(k ?: d->key, d->endpoint, aud ?: "https://" DOMAIN "/idm/token",
                                                  2 * USEC_PER_MINUTE, when, &a),
                              0);
        return a;
}

static char *device_form(const char *assertion, const char *extra) {
        char *s;

        CU_ASSERT_FATAL(asprintf(&s,
                                 "grant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
                                 "client-assertion-type%%3Ajwt-bearer&client_assertion=%s%s",
                                 assertion, extra ?: "") > 0);
        return s;
}

static void test_jwks(void) {
        _cleanup_token_keyset_ token_keyset *ks = NULL;
        H2TestFetch f;

        request(&f, "GET", "/idm/jwks", NULL, 0, NULL);
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_STRING_EQUAL(f.content_type, "application/jwk-set+json");
        CU_ASSERT_EQUAL_FATAL(token_keyset_from_jwks((const char *) f.body, f.size, &ks, NULL), 0);
        CU_ASSERT_EQUAL(token_keyset_size(ks), 1);
        {
                json_t *j = body_json(&f);
                const char *kid = json_string_value(json_object_get(json_array_get(json_object_get(j, "keys"), 0), "kid"));

                CU_ASSERT_PTR_NOT_NULL(token_keyset_find(idm_get_keyset(t.idm), strna(kid)));
                json_decref(j);
        }
        h2_test_fetch_done(&f);

        /* The served key is the IdM's key; no private part in it. */
        request(&f, "GET", "/idm/jwks", NULL, 0, NULL);
        CU_ASSERT_PTR_NULL(strstr((const char *) f.body, "\"d\""));
        h2_test_fetch_done(&f);
        request(&f, "POST", "/idm/jwks", NULL, 0, "x");
        CU_ASSERT_TRUE(is_error(&f, 405, NULL));
        h2_test_fetch_done(&f);
}

static void test_key_persists(void) {
        _cleanup_free_ char *path = NULL, *token = NULL;
        _cleanup_token_claims_ token_claims *claims = NULL;
        const char *reason = NULL;
        struct stat st;

        CU_ASSERT_FATAL(asprintf(&path, "%s/%s", t.dir, IDM_KEY_FILE_NAME) > 0);
        CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);

        CU_ASSERT_EQUAL_FATAL(idm_issue(t.idm, "sensor-1", "runtime", USEC_PER_HOUR, &token), 0);

        /* A restart on the same state directory: same key, old tokens valid. */
        {
                _cleanup_idm_ idm *again = NULL;

                CU_ASSERT_EQUAL_FATAL(idm_new(t.dir, DOMAIN, &again), 0);
                CU_ASSERT_EQUAL(token_keyset_size(idm_get_keyset(again)), 1);
                CU_ASSERT_EQUAL(token_verify(idm_get_keyset(again), token,
                                             &(token_verify_params) { .issuer = DOMAIN, .audience = DOMAIN, .scope = "runtime" },
                                             &claims, &reason),
                                0);
                CU_ASSERT_STRING_EQUAL(token_claims_get_subject(claims), "sensor-1");
        }

        /* A corrupt key file is an error, never silently a new key. */
        {
                _cleanup_idm_ idm *bad = NULL;
                char other[80];

                snprintf(other, sizeof(other), "%s/corrupt", t.dir);
                CU_ASSERT_EQUAL_FATAL(mkdir(other, 0700), 0);
                strcat(other, "/" IDM_KEY_FILE_NAME);
                CU_ASSERT_EQUAL_FATAL(write_file_atomic(other, "garbage\n", 8, 0600), 0);
                *strrchr(other, '/') = '\0';
                CU_ASSERT_TRUE(idm_new(other, DOMAIN, &bad) < 0);
                CU_ASSERT_PTR_NULL(bad);
        }
}

static void test_admin_token(void) {
        _cleanup_token_claims_ token_claims *claims = NULL;
        _cleanup_free_ char *token = NULL;
        H2TestFetch f;

        post_form(&f, "grant_type=client_credentials&client_secret=" ADMIN_SECRET);
        token = fetch_jwks_and_verify(&f, "admin", &claims);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(claims), "admin");
        h2_test_fetch_done(&f);

        post_form(&f, "client_id=admin&grant_type=client_credentials&scope=admin&client_secret=" ADMIN_SECRET);
        CU_ASSERT_EQUAL(f.status, 200);
        h2_test_fetch_done(&f);

        /* HTTP Basic, as RFC 6749 §2.3.1 wants servers to accept. */
        {
                static const struct {
                        const char *credential;
                        int status;
                        const char *part;
                } cases[] = {
                        { "admin:" ADMIN_SECRET, 200, NULL },
                        { "admin:wrong", 401, "invalid client credential" },
                        { "root:" ADMIN_SECRET, 401, "unknown client" },
                        { "admin" ADMIN_SECRET, 401, "malformed" },
                };
                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        _cleanup_free_ char *hdr = NULL;
                        unsigned char b64[256];
                        H2Header h[2] = { { "content-type", "application/x-www-form-urlencoded" } };

                        EVP_EncodeBlock(b64, (const unsigned char *) cases[i].credential, (int) strlen(cases[i].credential));
                        CU_ASSERT_FATAL(asprintf(&hdr, "Basic %s", b64) > 0);
                        h[1] = (H2Header) { "authorization", hdr };
                        request(&f, "POST", "/idm/token", h, 2, "grant_type=client_credentials");
                        if (cases[i].status == 200) {
                                CU_ASSERT_EQUAL(f.status, 200);
                        } else {
                                CU_ASSERT_TRUE(is_oauth_error(&f, cases[i].status, "invalid_client", cases[i].part));
                        }
                        h2_test_fetch_done(&f);
                }
                /* Basic and a secret in the body: one method only. */
                {
                        _cleanup_free_ char *hdr = NULL;
                        unsigned char b64[256];
                        H2Header h[2] = { { "content-type", "application/x-www-form-urlencoded" } };

                        EVP_EncodeBlock(b64, (const unsigned char *) "admin:" ADMIN_SECRET, (int) strlen("admin:" ADMIN_SECRET));
                        CU_ASSERT_FATAL(asprintf(&hdr, "Basic %s", b64) > 0);
                        h[1] = (H2Header) { "authorization", hdr };
                        request(&f, "POST", "/idm/token", h, 2, "grant_type=client_credentials&client_secret=" ADMIN_SECRET);
                        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_request", "one client authentication"));
                        h2_test_fetch_done(&f);
                        h[1] = (H2Header) { "authorization", "Bearer " ADMIN_SECRET };
                        request(&f, "POST", "/idm/token", h, 2, "grant_type=client_credentials");
                        CU_ASSERT_TRUE(is_oauth_error(&f, 401, "invalid_client", "Basic"));
                        h2_test_fetch_done(&f);
                }
        }
}

static void test_token_errors(void) {
        static const struct {
                const char *body;
                int status;
                const char *error, *part;
        } cases[] = {
                { "", 400, "invalid_request", "'grant_type': missing" },
                { "client_secret=" ADMIN_SECRET, 400, "invalid_request", "'grant_type': missing" },
                { "grant_type=implicit&client_secret=" ADMIN_SECRET, 400, "unsupported_grant_type", NULL },
                /* The password grant is for users through a device (test-domain-users). */
                { "grant_type=password&client_secret=" ADMIN_SECRET, 400, "invalid_request", "bearer token" },
                { "grant_type=client_credentials&grant_type=client_credentials&client_secret=" ADMIN_SECRET, 400,
                  "invalid_request", "more than once" },
                { "grant_type=client_credentials&client_secret=%zz", 400, "invalid_request", "percent-encoding" },
                { "grant_type=client_credentials&client_secret=a%00b", 400, "invalid_request", "percent-encoding" },
                { "grant_type=client_credentials", 401, "invalid_client", "missing client authentication" },
                { "grant_type=client_credentials&client_secret=wrong", 401, "invalid_client", "invalid client credential" },
                { "grant_type=client_credentials&client_secret=" ADMIN_SECRET "x", 401, "invalid_client", NULL },
                { "grant_type=client_credentials&client_id=root&client_secret=" ADMIN_SECRET, 401, "invalid_client",
                  "unknown client" },
                { "grant_type=client_credentials&scope=runtime&client_secret=" ADMIN_SECRET, 400, "invalid_scope", NULL },
                { "grant_type=client_credentials&scope=admin%20&client_secret=" ADMIN_SECRET, 400, "invalid_scope", NULL },
                { "grant_type=client_credentials&client_assertion_type=x&client_assertion=y", 400, "invalid_request",
                  "client_assertion_type" },
                { "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
                  400, "invalid_request", "'client_assertion': missing" },
                { "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=abc",
                  401, "invalid_client", "malformed" },
        };
        static const H2Header json_ct[] = { { "content-type", "application/json" } };
        H2TestFetch f;
        char big[OAUTH_FORM_MAX_SIZE + 100];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                post_form(&f, cases[i].body);
                if (!is_oauth_error(&f, cases[i].status, cases[i].error, cases[i].part))
                        fprintf(stderr, "case %zu: %s\n", i, cases[i].body);
                CU_ASSERT_TRUE(f.status == cases[i].status);
                h2_test_fetch_done(&f);
        }

        /* The form content type is required. */
        request(&f, "POST", "/idm/token", json_ct, 1, "{\"grant_type\":\"client_credentials\"}");
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_request", "content-type"));
        h2_test_fetch_done(&f);
        request(&f, "POST", "/idm/token", NULL, 0, "grant_type=client_credentials&client_secret=" ADMIN_SECRET);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_request", "content-type"));
        h2_test_fetch_done(&f);

        /* Oversize body: 413 from the router, and the server keeps serving. */
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        post_form(&f, big);
        CU_ASSERT_TRUE(is_error(&f, 413, NULL));
        h2_test_fetch_done(&f);
        request(&f, "GET", "/idm/token", NULL, 0, NULL);
        CU_ASSERT_TRUE(is_error(&f, 405, NULL));
        h2_test_fetch_done(&f);
        post_form(&f, "grant_type=client_credentials&client_secret=" ADMIN_SECRET);
        CU_ASSERT_EQUAL(f.status, 200);
        h2_test_fetch_done(&f);
}

static void test_device_token(void) {
        _cleanup_token_claims_ token_claims *claims = NULL, *claims2 = NULL;
        _cleanup_free_ char *a = assertion_for(&devices[0], NULL, NULL, 0), *body = device_form(a, NULL),
                            *token = NULL, *a2 = assertion_for(&devices[1], NULL, NULL, 0),
                            *body2 = device_form(a2, "&scope=peer&client_id=sensor-2"), *token2 = NULL;
        H2TestFetch f;

        post_form(&f, body);
        token = fetch_jwks_and_verify(&f, "runtime peer", &claims);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(claims), "sensor-1");
        h2_test_fetch_done(&f);

        /* The same assertion again: a replay. */
        post_form(&f, body);
        CU_ASSERT_TRUE(is_oauth_error(&f, 401, "invalid_client", "replayed"));
        h2_test_fetch_done(&f);

        /* Key registered as PEM, narrower scope, matching client_id. */
        post_form(&f, body2);
        token2 = fetch_jwks_and_verify(&f, "peer", &claims2);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(claims2), "sensor-2");
        h2_test_fetch_done(&f);
}

static void test_device_refusals(void) {
        _cleanup_token_key_ token_key *other = NULL;
        TestDevice unknown = { "sensor-unknown", true, false, NULL }, ed = { "sensor-ed25519", true, false, NULL },
                   bad_name = { "bad/name", true, false, NULL };
        unsigned lookups;
        struct {
                char *assertion;
                const char *extra;
                int status;
                const char *error, *part;
        } cases[] = {
                /* unclaimed: valid assertion, refused */
                { assertion_for(&devices[2], NULL, NULL, 0), NULL, 403, "unauthorized_client", "device not claimed" },
                { NULL, NULL, 401, "invalid_client", "unknown client" },
                { NULL, NULL, 401, "invalid_client", NULL },                             /* other key */
                { assertion_for(&devices[0], NULL, "https://other.example/idm/token", 0), NULL, 401, "invalid_client",
                  "audience" },
                { assertion_for(&devices[0], NULL, NULL, now(CLOCK_REALTIME) - USEC_PER_HOUR), NULL, 401,
                  "invalid_client", "expired" },
                { assertion_for(&devices[0], NULL, NULL, 0), "&client_id=sensor-2", 401, "invalid_client", "client_id" },
                { assertion_for(&devices[0], NULL, NULL, 0), "&scope=admin", 400, "invalid_scope", NULL },
                { assertion_for(&devices[0], NULL, NULL, 0), "&client_secret=" ADMIN_SECRET, 400, "invalid_request", NULL },
                { NULL, NULL, 401, "invalid_client", "no P-256 key" },
                { NULL, NULL, 401, "invalid_client", "unknown client" }, /* not an endpoint name */
        };
        H2TestFetch f;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&other), 0);
        unknown.key = other;
        cases[1].assertion = assertion_for(&unknown, NULL, NULL, 0);
        cases[2].assertion = assertion_for(&devices[0], other, NULL, 0);
        ed.key = other;
        cases[8].assertion = assertion_for(&ed, NULL, NULL, 0);
        bad_name.key = other;
        cases[9].assertion = assertion_for(&bad_name, NULL, NULL, 0);
        lookups = t.lookups;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *body = device_form(cases[i].assertion, cases[i].extra);

                post_form(&f, body);
                if (!is_oauth_error(&f, cases[i].status, cases[i].error, cases[i].part))
                        fprintf(stderr, "case %zu\n", i);
                CU_ASSERT_EQUAL(f.status, cases[i].status);
                h2_test_fetch_done(&f);
                free(cases[i].assertion);
        }
        /* The name that is no endpoint never reached the lookup. */
        CU_ASSERT_EQUAL(t.lookups, lookups + 7); /* all but the client_id, client_secret and bad name cases */
}

/* --- idm_check_bearer ---------------------------------------------------------------- */

static void check(const char *token, const char *scope, int status, const char *part) {
        _cleanup_free_ char *authorization = NULL, *path = NULL;
        H2Header h[1];
        H2TestFetch f;

        CU_ASSERT_FATAL(asprintf(&path, "/test/check%s%s", scope ? "?scope=" : "", scope ?: "") > 0);
        if (token) {
                CU_ASSERT_FATAL(asprintf(&authorization, "Bearer %s", token) > 0);
                h[0] = (H2Header) { "authorization", authorization };
        }
        request(&f, "GET", path, h, token ? 1 : 0, NULL);
        if (status == 200) {
                CU_ASSERT_EQUAL(f.status, 200);
        } else {
                CU_ASSERT_TRUE(is_error(&f, status, part));
        }
        h2_test_fetch_done(&f);
}

static token_key *idm_private_key(void) {
        _cleanup_free_ char *path = NULL;
        token_key *k = NULL;

        CU_ASSERT_FATAL(asprintf(&path, "%s/%s", t.dir, IDM_KEY_FILE_NAME) > 0);
        CU_ASSERT_EQUAL_FATAL(token_key_load_private_pem(path, &k), 0);
        return k;
}

static char *issue(const token_key *k, const char *iss, const char *aud, const char *scope, usec_t when) {
        char *s = NULL;

        CU_ASSERT_EQUAL_FATAL(token_issue(k, &(token_issue_params) { .issuer = iss, .subject = "sensor-1", .audience = aud,
                                                                      .scope = scope, .lifetime = USEC_PER_HOUR, .now = when },
                                          &s),
                              0);
        return s;
}

/* header.payload.signature with the header replaced. */
static char *with_header(const char *token, const char *header, const char *signature) {
        _cleanup_free_ char *h = NULL;
        const char *dot = strchr(token, '.'), *last = strrchr(token, '.');
        char *s;

        CU_ASSERT_EQUAL_FATAL(base64url_encode(header, strlen(header), &h), 0);
        CU_ASSERT_FATAL(asprintf(&s, "%s%.*s%s", h, (int) (last - dot + 1), dot, signature ?: last + 1) > 0);
        return s;
}

static void test_check_bearer(void) {
        _cleanup_token_key_ token_key *k = idm_private_key(), *forger = NULL;
        _cleanup_free_ char *good = NULL, *device = NULL, *expired = NULL, *wrong_aud = NULL, *wrong_iss = NULL,
                            *forged = NULL, *forged_kid = NULL, *none = NULL, *hs = NULL, *hs_sig = NULL, *pem = NULL,
                            *hdr = NULL, *input = NULL, *raw = NULL, *future = NULL;
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&forger), 0);
        good = issue(k, DOMAIN, DOMAIN, "admin runtime", 0);
        CU_ASSERT_EQUAL_FATAL(idm_issue(t.idm, "sensor-1", "runtime peer", USEC_PER_HOUR, &device), 0);
        expired = issue(k, DOMAIN, DOMAIN, "runtime", now(CLOCK_REALTIME) - 3 * USEC_PER_HOUR);
        future = issue(k, DOMAIN, DOMAIN, "runtime", now(CLOCK_REALTIME) + 3 * USEC_PER_HOUR);
        wrong_aud = issue(k, DOMAIN, "other.example", "runtime", 0);
        wrong_iss = issue(k, "other.example", DOMAIN, "runtime", 0);
        forged = issue(forger, DOMAIN, DOMAIN, "admin", 0);
        /* The forger names the IdM's kid: the signature must then fail. */
        CU_ASSERT_FATAL(asprintf(&hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", token_key_get_kid(k)) > 0);
        forged_kid = with_header(forged, hdr, NULL);
        free(hdr);
        CU_ASSERT_FATAL(asprintf(&hdr, "{\"alg\":\"none\",\"kid\":\"%s\",\"typ\":\"JWT\"}", token_key_get_kid(k)) > 0);
        none = with_header(good, hdr, "");
        free(hdr);
        /* HS256 keyed with the IdM's public key PEM, the classic confusion. */
        CU_ASSERT_FATAL(asprintf(&hdr, "{\"alg\":\"HS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", token_key_get_kid(k)) > 0);
        hs = with_header(good, hdr, "x");
        *strrchr(hs, '.') = '\0';
        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(k, &pem), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), pem, (int) strlen(pem), (const unsigned char *) hs, strlen(hs), mac,
                                          &mac_len));
        CU_ASSERT_EQUAL_FATAL(base64url_encode(mac, mac_len, &hs_sig), 0);
        CU_ASSERT_FATAL(asprintf(&input, "%s.%s", hs, hs_sig) > 0);

        check(good, "admin", 200, NULL);
        check(good, "runtime", 200, NULL);
        check(device, "runtime", 200, NULL);
        check(device, "peer", 200, NULL);
        check(NULL, "runtime", 401, "missing bearer token");
        check("a.b.c", "runtime", 401, NULL);
        check("not-a-token", "runtime", 401, "malformed");
        check(device, "admin", 403, "missing scope");
        check(expired, "runtime", 401, "expired");
        check(future, "runtime", 401, "not yet valid");
        check(wrong_aud, "runtime", 401, "audience");
        check(wrong_iss, "runtime", 401, "issuer");
        check(forged, "admin", 401, "unknown kid");
        check(forged_kid, "admin", 401, "bad signature");
        check(none, "admin", 401, "alg none");
        check(input, "admin", 401, "HMAC");

        /* A device's client assertion is no access token. */
        raw = assertion_for(&devices[0], NULL, NULL, 0);
        check(raw, "runtime", 401, NULL);
}

CU_TestInfo tests[] = {
        { "jwks", test_jwks },
        { "key persists", test_key_persists },
        { "admin token", test_admin_token },
        { "token endpoint errors", test_token_errors },
        { "device token", test_device_token },
        { "device refusals", test_device_refusals },
        { "check bearer", test_check_bearer },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-idm", tests, setup, cleanup)
