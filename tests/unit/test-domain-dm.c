/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device management driven over real HTTP/2 (our client) against a real
 * rethink-domain in this process: registration, update, de-registration,
 * expiry, claims, every error answer, and a restart on the same state. */

#include "test-domain-util.h"
#include "tests.h"
#include "token.h"

static DomainTest t;

static int setup(void) {
        return dt_setup(&t, "[DeviceManagement]\nMinLifetimeSec=1\nDefaultLifetimeSec=3600\nMaxLifetimeSec=86400\n") < 0
                       ? -1
                       : 0;
}

static int cleanup(void) {
        dt_teardown(&t);
        return 0;
}

static char *new_key(void) {
        _cleanup_sign_key_ sign_key *k = NULL;
        char *s = NULL;

        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(k, &s), 0);
        return s;
}

static char *reg_body(const char *key, const char *extra) {
        char *s;

        CU_ASSERT_FATAL(asprintf(&s, "{\"publicKey\":\"%s\"%s}", key, extra ?: "") > 0);
        return s;
}

static int post(const char *path, const char *body, H2TestFetch *f) {
        dt_request(&t, f, "POST", path, NULL, 0, body, body ? strlen(body) : 0);
        return f->status;
}

/* The admin view of one device (to be decref'd), NULL when unknown. */
static json_t *device(const char *ep) {
        char path[160];
        H2TestFetch f;
        json_t *j = NULL;

        snprintf(path, sizeof(path), "/admin/devices/%s", ep);
        dt_request(&t, &f, "GET", path, dt_admin(), 1, NULL, 0);
        if (f.status == 200)
                j = dt_json(&f);
        h2_test_fetch_done(&f);
        return j;
}

static bool device_in_state(const char *ep, const char *state) {
        json_t *j = device(ep);
        bool ok = j && streq_ptr(dt_json_str(j, "state"), state);

        json_decref(j);
        return ok;
}

static void test_register(void) {
        _cleanup_free_ char *key = new_key(), *other = new_key(), *body = NULL, *body2 = NULL, *location = NULL;
        H2TestFetch f;
        json_t *j;

        body = reg_body(key, ",\"runtimeVersion\":\"0.1.0\",\"arch\":\"x86_64\",\"freeBytes\":123456");
        CU_ASSERT_EQUAL(post("/dm/rd?ep=dev-1&lt=120", body, &f), 201);
        location = strdup(strna(h2_client_request_get_header(f.req, "location")));
        CU_ASSERT_EQUAL(strncmp(location, "/dm/rd/", 7), 0);
        CU_ASSERT_TRUE(id_uuid_is_valid(location + 7));
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "endpoint")), "dev-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "id")), location + 7);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "state")), "registered");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "publicKey")), key);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "arch")), "x86_64");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "lifetime")), 120);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "freeBytes")), 123456);
        CU_ASSERT_TRUE(json_is_false(json_object_get(j, "claimed")));
        json_decref(j);
        h2_test_fetch_done(&f);

        /* The same endpoint and key again: the same registration, updated. */
        CU_ASSERT_EQUAL(post("/dm/rd?ep=dev-1", body, &f), 200);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "location")), location);
        j = dt_json(&f);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "lifetime")), 3600); /* the default */
        json_decref(j);
        h2_test_fetch_done(&f);

        /* Another key for it: refused, and the device keeps its key. */
        body2 = reg_body(other, NULL);
        CU_ASSERT_TRUE(post("/dm/rd?ep=dev-1", body2, &f) == 409 && dt_is_error(&f, 409, "another public key"));
        h2_test_fetch_done(&f);
        j = device("dev-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "publicKey")), key);
        json_decref(j);
}

/* The P-256 key the IdM checks client assertions with is stored beside the
 * Ed25519 identity, in one spelling; a bad one is refused and stores
 * nothing; it cannot be changed by an update nor by a re-registration. */
static void test_token_key(void) {
        _cleanup_free_ char *key = new_key(), *pem = NULL, *body = NULL, *escaped = NULL, *location = NULL;
        _cleanup_token_key_ token_key *tk = NULL;
        H2TestFetch f;
        json_t *j, *s;

        CU_ASSERT_EQUAL_FATAL(token_key_generate(&tk), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(tk, &pem), 0);
        s = json_string(pem);
        escaped = json_dumps(s, JSON_ENCODE_ANY);
        json_decref(s);
        CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\",\"tokenKey\":%s}", key, escaped) > 0);

        CU_ASSERT_TRUE(post("/dm/rd?ep=tk-bad", "{\"publicKey\":\"x\",\"tokenKey\":\"-----BEGIN\"}", &f) == 400);
        h2_test_fetch_done(&f);
        free(body);
        CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\",\"tokenKey\":\"not a key\"}", key) > 0);
        CU_ASSERT_TRUE(post("/dm/rd?ep=tk-1", body, &f) == 400 && dt_is_error(&f, 400, "'tokenKey'"));
        h2_test_fetch_done(&f);
        j = device("tk-1");
        CU_ASSERT_PTR_NULL(j);
        json_decref(j);

        free(body);
        CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\",\"tokenKey\":%s}", key, escaped) > 0);
        CU_ASSERT_EQUAL(post("/dm/rd?ep=tk-1", body, &f), 201);
        location = strdup(strna(h2_client_request_get_header(f.req, "location")));
        h2_test_fetch_done(&f);
        j = device("tk-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "tokenKey")), pem);
        json_decref(j);

        free(body);
        CU_ASSERT_FATAL(asprintf(&body, "{\"tokenKey\":%s}", escaped) > 0);
        CU_ASSERT_TRUE(post(location, body, &f) == 400 && dt_is_error(&f, 400, "'tokenKey'"));
        h2_test_fetch_done(&f);

        /* Re-registering without it keeps the stored one. */
        free(body);
        body = reg_body(key, NULL);
        CU_ASSERT_EQUAL(post("/dm/rd?ep=tk-1", body, &f), 200);
        h2_test_fetch_done(&f);
        j = device("tk-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "tokenKey")), pem);
        json_decref(j);

        /* Whoever knows the (public) Ed25519 key may re-register, but not
         * swap the token key: that would get them the device's tokens. */
        {
                _cleanup_token_key_ token_key *other = NULL;
                _cleanup_free_ char *other_pem = NULL, *other_escaped = NULL;

                CU_ASSERT_EQUAL_FATAL(token_key_generate(&other), 0);
                CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(other, &other_pem), 0);
                s = json_string(other_pem);
                other_escaped = json_dumps(s, JSON_ENCODE_ANY);
                json_decref(s);
                free(body);
                CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\",\"tokenKey\":%s}", key, other_escaped) > 0);
                CU_ASSERT_TRUE(post("/dm/rd?ep=tk-1", body, &f) == 409 && dt_is_error(&f, 409, "another token key"));
                CU_ASSERT_PTR_NULL(h2_client_request_get_header(f.req, "location"));
                h2_test_fetch_done(&f);
                j = device("tk-1");
                CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "tokenKey")), pem);
                json_decref(j);
        }
        /* The same token key again is a plain re-registration. */
        free(body);
        CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\",\"tokenKey\":%s}", key, escaped) > 0);
        CU_ASSERT_EQUAL(post("/dm/rd?ep=tk-1", body, &f), 200);
        h2_test_fetch_done(&f);
}

static void test_register_errors(void) {
        _cleanup_free_ char *key = new_key(), *body = NULL, *bad = NULL;
        static const struct {
                const char *path, *body, *part;
        } cases[] = {
                { "/dm/rd", NULL, "'ep': missing" },
                { "/dm/rd?lt=60", NULL, "'ep': missing" },
                { "/dm/rd?ep=", NULL, "'ep'" },
                { "/dm/rd?ep=-dev", NULL, "'ep'" },
                { "/dm/rd?ep=dev/1", NULL, "'ep'" },
                { "/dm/rd?ep=dev%201", NULL, "'ep'" },
                { "/dm/rd?ep=dev%zz", NULL, "'ep'" },
                { "/dm/rd?ep=dev%00", NULL, "'ep'" },
                { "/dm/rd?ep=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, "'ep'" },
                { "/dm/rd?ep=a&ep=b", NULL, "'ep'" },
                { "/dm/rd?ep=bad-1&x=1", NULL, "unknown parameter" },
                { "/dm/rd?ep=bad-1&lt=abc", NULL, "'lt'" },
                { "/dm/rd?ep=bad-1&lt=0", NULL, "'lt'" },
                { "/dm/rd?ep=bad-1&lt=86401", NULL, "'lt'" },
                { "/dm/rd?ep=bad-1&lt=-5", NULL, "'lt'" },
                { "/dm/rd?ep=bad-1&lt=", NULL, "'lt'" },
                { "/dm/rd?ep=bad-1", "", "publicKey" },
                { "/dm/rd?ep=bad-1", "{", "invalid JSON" },
                { "/dm/rd?ep=bad-1", "[]", "expected a JSON object" },
                { "/dm/rd?ep=bad-1", "{}", "'publicKey': missing" },
                { "/dm/rd?ep=bad-1", "{\"publicKey\":\"abc\"}", "'publicKey'" },
                { "/dm/rd?ep=bad-1", "{\"publicKey\":5}", "'publicKey'" },
        };
        H2TestFetch f;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *b = cases[i].body;

                if (!b) {
                        free(body);
                        body = reg_body(key, NULL);
                        b = body;
                }
                post(cases[i].path, b, &f);
                if (!dt_is_error(&f, 400, cases[i].part))
                        fprintf(stderr, "case %zu: %s\n", i, cases[i].path);
                CU_ASSERT_TRUE(dt_is_error(&f, 400, cases[i].part));
                h2_test_fetch_done(&f);
        }

        static const char *const bodies[][2] = {
                { ",\"freeBytes\":-1", "'freeBytes'" },
                { ",\"freeBytes\":\"1\"", "'freeBytes'" },
                { ",\"arch\":\"x 86\"", "'arch'" },
                { ",\"runtimeVersion\":7", "'runtimeVersion'" },
                { ",\"color\":\"red\"", "unknown field" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
                free(bad);
                bad = reg_body(key, bodies[i][0]);
                post("/dm/rd?ep=bad-1", bad, &f);
                CU_ASSERT_TRUE(dt_is_error(&f, 400, bodies[i][1]));
                h2_test_fetch_done(&f);
        }

        /* A body over the limit. */
        {
                char big[5000];
                memset(big, ' ', sizeof(big));
                dt_request(&t, &f, "POST", "/dm/rd?ep=bad-1", NULL, 0, big, sizeof(big));
                CU_ASSERT_TRUE(dt_is_error(&f, 413, "too large"));
                h2_test_fetch_done(&f);
        }

        /* None of it left a trace. */
        CU_ASSERT_PTR_NULL(device("bad-1"));

        /* URN-style names are fine. */
        free(body);
        body = reg_body(key, NULL);
        CU_ASSERT_EQUAL(post("/dm/rd?ep=urn:dev:ops:32473-Sensor-1", body, &f), 201);
        h2_test_fetch_done(&f);
}

static void test_update_delete(void) {
        _cleanup_free_ char *key = new_key(), *body = NULL, *location = NULL, *path = NULL;
        H2TestFetch f;
        json_t *j;
        const char *before;
        char *saved;

        body = reg_body(key, ",\"arch\":\"aarch64\"");
        CU_ASSERT_EQUAL(post("/dm/rd?ep=dev-2&lt=100", body, &f), 201);
        location = strdup(strna(h2_client_request_get_header(f.req, "location")));
        h2_test_fetch_done(&f);
        j = device("dev-2");
        saved = strdup(strna(dt_json_str(j, "expiresAt")));
        json_decref(j);

        /* Keep-alive with a new lifetime and new free space; arch stays. */
        CU_ASSERT_FATAL(asprintf(&path, "%s?lt=7200", location) > 0);
        CU_ASSERT_EQUAL(post(path, "{\"freeBytes\":42}", &f), 204);
        CU_ASSERT_EQUAL(f.size, 0);
        h2_test_fetch_done(&f);
        j = device("dev-2");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "lifetime")), 7200);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "freeBytes")), 42);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "arch")), "aarch64");
        before = dt_json_str(j, "expiresAt");
        CU_ASSERT_TRUE(before && strcmp(before, saved) > 0);
        json_decref(j);
        free(saved);

        CU_ASSERT_EQUAL(post(location, NULL, &f), 204);
        h2_test_fetch_done(&f);

        CU_ASSERT_TRUE(post(location, "{\"publicKey\":\"x\"}", &f) == 400 && dt_is_error(&f, 400, "'publicKey'"));
        h2_test_fetch_done(&f);
        free(path);
        CU_ASSERT_FATAL(asprintf(&path, "%s?lt=nope", location) > 0);
        CU_ASSERT_TRUE(post(path, NULL, &f) == 400 && dt_is_error(&f, 400, "'lt'"));
        h2_test_fetch_done(&f);
        free(path);
        CU_ASSERT_FATAL(asprintf(&path, "%s?ep=x", location) > 0);
        CU_ASSERT_TRUE(post(path, NULL, &f) == 400 && dt_is_error(&f, 400, "allowed: lt"));
        h2_test_fetch_done(&f);

        CU_ASSERT_TRUE(post("/dm/rd/00000000-0000-4000-8000-000000000000", NULL, &f) == 404 &&
                       dt_is_error(&f, 404, "no such registration"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(post("/dm/rd/not-a-uuid", NULL, &f) == 404 && dt_is_error(&f, 404, NULL));
        h2_test_fetch_done(&f);

        dt_request(&t, &f, "DELETE", location, NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 204);
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(device_in_state("dev-2", "deregistered"));
        dt_request(&t, &f, "DELETE", location, NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 404, "register again"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(post(location, NULL, &f) == 404 && dt_is_error(&f, 404, "register again"));
        h2_test_fetch_done(&f);

        /* Registering again brings back the same registration. */
        CU_ASSERT_EQUAL(post("/dm/rd?ep=dev-2", body, &f), 200);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "location")), location);
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(device_in_state("dev-2", "registered"));

        dt_request(&t, &f, "PUT", location, NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 405, NULL));
        h2_test_fetch_done(&f);
}

static void test_expiry(void) {
        _cleanup_free_ char *key = new_key(), *body = NULL, *location = NULL;
        H2TestFetch f;
        bool expired = false;

        body = reg_body(key, NULL);
        CU_ASSERT_EQUAL(post("/dm/rd?ep=dev-short&lt=1", body, &f), 201);
        location = strdup(strna(h2_client_request_get_header(f.req, "location")));
        h2_test_fetch_done(&f);

        /* The timer marks it; we only wait (with a hang guard) for that. */
        for (unsigned i = 0; i < 100 && !expired; i++) {
                h2_test_run_for(t.event, 100000);
                expired = device_in_state("dev-short", "expired");
        }
        CU_ASSERT_TRUE(expired);
        CU_ASSERT_TRUE(device_in_state("dev-1", "registered"));

        CU_ASSERT_TRUE(post(location, NULL, &f) == 404 && dt_is_error(&f, 404, "expired"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(post("/dm/rd?ep=dev-short&lt=600", body, &f), 200);
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(device_in_state("dev-short", "registered"));
}

static void test_admin(void) {
        H2TestFetch f;
        json_t *j, *list;
        char *claimed_at;

        dt_request(&t, &f, "GET", "/admin/devices", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 401, NULL));
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "POST", "/admin/devices/dev-1/claim", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 401, NULL));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(device_in_state("dev-1", "registered"));
        j = device("dev-1");
        CU_ASSERT_TRUE(json_is_false(json_object_get(j, "claimed")));
        json_decref(j);

        dt_request(&t, &f, "POST", "/admin/devices/dev-1/claim", dt_admin(), 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 200);
        j = dt_json(&f);
        CU_ASSERT_TRUE(json_is_true(json_object_get(j, "claimed")));
        claimed_at = strdup(strna(dt_json_str(j, "claimedAt")));
        json_decref(j);
        h2_test_fetch_done(&f);

        /* Claiming twice keeps the first claim. */
        h2_test_run_for(t.event, 1100000);
        dt_request(&t, &f, "POST", "/admin/devices/dev-1/claim", dt_admin(), 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 200);
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "claimedAt")), claimed_at);
        json_decref(j);
        h2_test_fetch_done(&f);
        free(claimed_at);

        dt_request(&t, &f, "POST", "/admin/devices/nobody/claim", dt_admin(), 1, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 404, "no such device"));
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "GET", "/admin/devices/nobody", dt_admin(), 1, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 404, "no such device"));
        h2_test_fetch_done(&f);

        dt_request(&t, &f, "GET", "/admin/devices", dt_admin(), 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 200);
        j = dt_json(&f);
        list = json_object_get(j, "devices");
        CU_ASSERT_TRUE(json_is_array(list));
        CU_ASSERT_EQUAL(json_array_size(list), 4); /* dev-1, dev-2, dev-short, urn:... */
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(json_array_get(list, 0), "endpoint")), "dev-1");
        CU_ASSERT_TRUE(json_is_true(json_object_get(json_array_get(list, 0), "claimed")));
        json_decref(j);
        h2_test_fetch_done(&f);
}

static void test_restart(void) {
        json_t *j;

        /* The same state directory, a new process-equivalent: all still there. */
        dt_stop_domain(&t);
        CU_ASSERT_EQUAL_FATAL(dt_start_domain(&t), 0);
        CU_ASSERT_TRUE(device_in_state("dev-1", "registered"));
        CU_ASSERT_TRUE(device_in_state("dev-2", "registered"));
        j = device("dev-1");
        CU_ASSERT_TRUE(json_is_true(json_object_get(j, "claimed")));
        json_decref(j);
}

static CU_TestInfo tests[] = {
        { "register, re-register, other key", test_register },
        { "registration errors", test_register_errors },
        { "update and de-register", test_update_delete },
        { "lifetime expiry", test_expiry },
        { "admin list, get, claim", test_admin },
        { "restart on the same state", test_restart },
        /* Last: it adds a device the listing tests do not expect. */
        { "IdM token key", test_token_key },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-dm", tests, setup, cleanup)
