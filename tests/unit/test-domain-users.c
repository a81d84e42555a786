/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The domain's end users: the scrypt hash strings, the user store and its
 * failure counting on their own, then the admin API and the IdM's
 * password grant over real HTTP/2 against a real rethink-domain in this
 * process, with a device registered, claimed and holding its own token. */

#include <sys/stat.h>

#include "test-domain-util.h"
#include "tests.h"
#include "password-hash.h"
#include "token.h"
#include "userdb.h"

#define EP "users-dev-1"
#define EP_UNCLAIMED "users-dev-2"

static DomainTest t;
static char device_authorization[4096];

static json_t *post_json(const char *path, const H2Header *h, size_t n, const char *body, H2TestFetch *f) {
        H2Header hh[2] = { { "content-type", "application/json" } };

        if (n > 0)
                hh[1] = h[0];
        dt_request(&t, f, "POST", path, hh, 1 + n, body, body ? strlen(body) : 0);
        return dt_json(f);
}

/* Registers ep with a fresh P-256 key; *ret_key to sign assertions. */
static void register_device(const char *ep, token_key **ret_key) {
        _cleanup_sign_key_ sign_key *id = NULL;
        _cleanup_free_ char *b64 = NULL, *pem = NULL, *escaped = NULL, *body = NULL, *path = NULL;
        H2TestFetch f;
        json_t *s;

        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&id), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(id, &b64), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_generate(ret_key), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(*ret_key, &pem), 0);
        s = json_string(pem);
        escaped = json_dumps(s, JSON_ENCODE_ANY);
        json_decref(s);
        CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\",\"tokenKey\":%s}", b64, escaped) > 0);
        CU_ASSERT_FATAL(asprintf(&path, "/dm/rd?ep=%s", ep) > 0);
        dt_request(&t, &f, "POST", path, NULL, 0, body, strlen(body));
        CU_ASSERT_EQUAL_FATAL(f.status, 201);
        h2_test_fetch_done(&f);
}

static int token_request(const char *form, const char *authorization, H2TestFetch *f) {
        H2Header h[2] = { { "content-type", "application/x-www-form-urlencoded" } };
        size_t n = 1;

        if (authorization)
                h[n++] = (H2Header) { "authorization", authorization };
        dt_request(&t, f, "POST", "/idm/token", h, n, form, strlen(form));
        return f->status;
}

static char *device_token(const char *ep, const token_key *k, int *ret_status) {
        _cleanup_free_ char *assertion = NULL, *form = NULL;
        H2TestFetch f;
        json_t *j;
        char *token = NULL;

        CU_ASSERT_EQUAL_FATAL(token_assertion_new(k, ep, "https://localhost/idm/token", 2 * USEC_PER_MINUTE, 0,
                                                  &assertion),
                              0);
        CU_ASSERT_FATAL(asprintf(&form,
                                 "grant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
                                 "client-assertion-type%%3Ajwt-bearer&client_assertion=%s",
                                 assertion) > 0);
        *ret_status = token_request(form, NULL, &f);
        j = dt_json(&f);
        if (json_is_string(json_object_get(j, "access_token")))
                token = strdup(json_string_value(json_object_get(j, "access_token")));
        json_decref(j);
        h2_test_fetch_done(&f);
        return token;
}

static int setup(void) {
        return dt_setup(&t, NULL) < 0 ? -1 : 0;
}

static int cleanup(void) {
        dt_teardown(&t);
        return 0;
}

/* --- on their own ------------------------------------------------------------------------- */

static void test_kdf(void) {
        _cleanup_free_ char *a = NULL, *b = NULL, *bad = NULL;
        static const char *const malformed[] = {
                "",
                "$scrypt$",
                "$pbkdf2$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                /* cost out of bounds: 2^30 would take 128 GiB */
                "$scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "$scrypt$ln=9,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "$scrypt$ln=10,r=0,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "$scrypt$ln=10,r=8,p=9$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                /* salt too short, hash too short, trailing bytes, padding */
                "$scrypt$ln=10,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
                "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$",
                "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        };

        CU_ASSERT_EQUAL(password_hash_new("correct horse", 10, &a), 0);
        CU_ASSERT_EQUAL(password_hash_new("correct horse", 10, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_TRUE(strncmp(a, "$scrypt$ln=10,r=8,p=1$", 22) == 0);
        /* Fresh salt every time. */
        CU_ASSERT_STRING_NOT_EQUAL(a, b);
        CU_ASSERT_PTR_NULL(strstr(a, "horse"));
        CU_ASSERT_EQUAL(password_hash_verify("correct horse", a), 0);
        CU_ASSERT_EQUAL(password_hash_verify("correct horse", b), 0);
        CU_ASSERT_EQUAL(password_hash_verify("correct hors", a), -EACCES);
        CU_ASSERT_EQUAL(password_hash_verify("correct horse ", a), -EACCES);
        CU_ASSERT_EQUAL(password_hash_verify("", a), -EACCES);

        /* One changed byte of the hash. */
        bad = strdup(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
        bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
        CU_ASSERT_EQUAL(password_hash_verify("correct horse", bad), -EACCES);

        for (size_t i = 0; i < ELEMENTSOF(malformed); i++)
                CU_ASSERT_EQUAL(password_hash_verify("x", malformed[i]), -EINVAL);

        /* The parse, and its bounds: 128·r·N at most 256 MiB. */
        {
                password_hash_params p = {};
                uint8_t salt[PASSWORD_HASH_SALT_SIZE], hash[PASSWORD_HASH_SIZE];

                CU_ASSERT_EQUAL(password_hash_parse(a, &p, salt, hash), 0);
                CU_ASSERT_TRUE(p.log2_n == 10 && p.r == 8 && p.p == 1);
                CU_ASSERT_EQUAL(password_hash_parse("$scrypt$ln=18,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
                                                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                                    &p, salt, hash),
                                0);
                CU_ASSERT_EQUAL(password_hash_parse("$scrypt$ln=18,r=9,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
                                                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                                    &p, salt, hash),
                                -EINVAL);
                CU_ASSERT_EQUAL(password_hash_parse("$scrypt$ln=010,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
                                                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                                    &p, salt, hash),
                                -EINVAL);
                CU_ASSERT_EQUAL(password_hash_parse("$scrypt$ln=+10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
                                                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                                    &p, salt, hash),
                                -EINVAL);
                CU_ASSERT_EQUAL(password_hash_parse(NULL, &p, salt, hash), -EINVAL);
        }
        CU_ASSERT_EQUAL(password_hash_new("x", 9, &bad), -EINVAL);
        CU_ASSERT_EQUAL(password_hash_new("x", 21, &bad), -EINVAL);
}

static void test_names(void) {
        CU_ASSERT_TRUE(userdb_name_is_valid("alice"));
        CU_ASSERT_TRUE(userdb_name_is_valid("0bob.smith_2-x"));
        CU_ASSERT_TRUE(userdb_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        CU_ASSERT_FALSE(userdb_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        CU_ASSERT_FALSE(userdb_name_is_valid(""));
        CU_ASSERT_FALSE(userdb_name_is_valid(NULL));
        CU_ASSERT_FALSE(userdb_name_is_valid("Alice"));
        CU_ASSERT_FALSE(userdb_name_is_valid("-alice"));
        CU_ASSERT_FALSE(userdb_name_is_valid(".alice"));
        CU_ASSERT_FALSE(userdb_name_is_valid("al/ice"));
        CU_ASSERT_FALSE(userdb_name_is_valid("al ice"));
        CU_ASSERT_FALSE(userdb_name_is_valid("al%20ice"));
        CU_ASSERT_FALSE(userdb_name_is_valid("al@ice"));
}

static void test_store(void) {
        char dir[] = "/tmp/userdb-test-XXXXXX", path[128];
        _cleanup_userdb_ userdb *u = NULL;
        _cleanup_free_ char *address = NULL, *text = NULL;
        json_t *list;
        const char *reason = NULL;
        unsigned retry = 0;
        struct stat st;
        size_t size;

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        CU_ASSERT_EQUAL_FATAL(userdb_new(dir, "example.org", &u), 0);
        userdb_set_kdf_cost(u, 10);

        CU_ASSERT_EQUAL(userdb_add(u, "alice", "alice-secret-1", &reason), 0);
        CU_ASSERT_EQUAL(userdb_add(u, "bob", "bob-secret-22", &reason), 0);
        CU_ASSERT_EQUAL(userdb_add(u, "alice", "another-secret", &reason), -EEXIST);
        CU_ASSERT_EQUAL(userdb_add(u, "Carol", "carol-secret", &reason), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(strna(reason), "invalid name"));
        CU_ASSERT_EQUAL(userdb_add(u, "carol", "short", &reason), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(strna(reason), "too short"));
        CU_ASSERT_EQUAL(userdb_add(u, "carol", NULL, &reason), -EINVAL);

        CU_ASSERT_EQUAL(userdb_address(u, "alice", &address), 0);
        CU_ASSERT_STRING_EQUAL(address, "user://example.org/alice");

        CU_ASSERT_EQUAL_FATAL(userdb_list_json(u, &list), 0);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(list, "users")), 2);
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_array_get(json_object_get(list, "users"), 0),
                                                                        "address"))),
                               "user://example.org/alice");
        CU_ASSERT_TRUE(json_is_null(json_object_get(json_array_get(json_object_get(list, "users"), 0), "last_login_usec")));
        json_decref(list);

        CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "alice-secret-1", 0, &retry), 0);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "bob-secret-22", 0, &retry), -EACCES);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "nobody", "alice-secret-1", 0, &retry), -EACCES);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "No/Body", "alice-secret-1", 0, &retry), -EACCES);

        CU_ASSERT_EQUAL_FATAL(userdb_list_json(u, &list), 0);
        CU_ASSERT_TRUE(json_is_integer(json_object_get(json_array_get(json_object_get(list, "users"), 0), "last_login_usec")));
        json_decref(list);

        /* On disk: 0600, and no password in it. */
        snprintf(path, sizeof(path), "%s/" USERDB_FILE_NAME, dir);
        CU_ASSERT_EQUAL(stat(path, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
        CU_ASSERT_EQUAL(read_full_file(path, 1 << 20, &text, &size), 0);
        CU_ASSERT_PTR_NULL(memmem(text, size, "alice-secret-1", 14));

        /* Survives a restart. */
        u = userdb_free(u);
        CU_ASSERT_EQUAL_FATAL(userdb_new(dir, "example.org", &u), 0);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "bob", "bob-secret-22", 0, &retry), 0);
        CU_ASSERT_EQUAL(userdb_remove(u, "bob"), 0);
        CU_ASSERT_EQUAL(userdb_remove(u, "bob"), -ENOENT);
        CU_ASSERT_EQUAL(userdb_remove(u, "B/ob"), -ENOENT);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "bob", "bob-secret-22", 0, &retry), -EACCES);

        u = userdb_free(u);
        (void) nftw(dir, dt_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* USERDB_FAILURES_MAX failures in a window lock the name out (the right
 * password too) until the window ends; others are not affected; a
 * success resets the count. */
static void test_rate_limit(void) {
        char dir[] = "/tmp/userdb-test-XXXXXX";
        _cleanup_userdb_ userdb *u = NULL;
        usec_t t0 = 1000 * USEC_PER_SEC;
        unsigned retry = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        CU_ASSERT_EQUAL_FATAL(userdb_new(dir, "example.org", &u), 0);
        userdb_set_kdf_cost(u, 10);
        CU_ASSERT_EQUAL_FATAL(userdb_add(u, "alice", "alice-secret-1", NULL), 0);
        CU_ASSERT_EQUAL_FATAL(userdb_add(u, "bob", "bob-secret-22", NULL), 0);

        /* Four failures, a success: the count starts again. */
        for (unsigned i = 0; i < USERDB_FAILURES_MAX - 1; i++)
                CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "wrong-password", t0 + i, &retry), -EACCES);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "alice-secret-1", t0 + 10, &retry), 0);
        for (unsigned i = 0; i < USERDB_FAILURES_MAX; i++)
                CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "wrong-password", t0 + 20 + i, &retry), -EACCES);
        retry = 0;
        CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "alice-secret-1", t0 + 30 * USEC_PER_SEC, &retry), -EBUSY);
        CU_ASSERT_TRUE(retry >= 29 && retry <= 31);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "wrong-password", t0 + 31 * USEC_PER_SEC, &retry), -EBUSY);
        /* Bob is not locked out, nor are unknown names by alice's failures. */
        CU_ASSERT_EQUAL(userdb_authenticate(u, "bob", "bob-secret-22", t0 + 30 * USEC_PER_SEC, &retry), 0);
        /* Unknown names are counted too. */
        for (unsigned i = 0; i < USERDB_FAILURES_MAX; i++)
                CU_ASSERT_EQUAL(userdb_authenticate(u, "mallory", "x-password", t0 + i, &retry), -EACCES);
        CU_ASSERT_EQUAL(userdb_authenticate(u, "mallory", "x-password", t0 + 10, &retry), -EBUSY);
        /* The window is over. */
        CU_ASSERT_EQUAL(userdb_authenticate(u, "alice", "alice-secret-1", t0 + 20 + USERDB_FAILURE_WINDOW_USEC, &retry),
                        0);

        u = userdb_free(u);
        (void) nftw(dir, dt_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* --- the admin API ----------------------------------------------------------------------- */

static void test_admin_api(void) {
        H2TestFetch f;
        json_t *j;
        static const struct {
                const char *body, *part;
        } bad[] = {
                { "", "JSON object" },
                { "[]", "JSON object" },
                { "{\"name\":\"x\",\"name\":\"y\",\"password\":\"abcdefgh\"}", "JSON object" },
                { "{\"password\":\"abcdefgh\"}", "'name': missing" },
                { "{\"name\":\"carol\"}", "missing password" },
                { "{\"name\":\"carol\",\"password\":\"short\"}", "too short" },
                { "{\"name\":\"carol\",\"password\":12345678}", "'password'" },
                { "{\"name\":\"carol\",\"password\":\"abc\\u0000defgh\"}", "JSON object" }, /* jansson refuses NUL */
                { "{\"name\":\"Carol\",\"password\":\"abcdefghij\"}", "invalid name" },
                { "{\"name\":\"carol\",\"password\":\"abcdefghij\",\"admin\":true}", "unknown member 'admin'" },
        };

        /* Without the admin: refused, nothing added. */
        j = post_json("/admin/users", NULL, 0, "{\"name\":\"alice\",\"password\":\"alice-secret-1\"}", &f);
        CU_ASSERT_EQUAL(f.status, 401);
        json_decref(j);
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "GET", "/admin/users", NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 401);
        h2_test_fetch_done(&f);

        j = post_json("/admin/users", dt_admin(), 1, "{\"name\":\"alice\",\"password\":\"alice-secret-1\"}", &f);
        CU_ASSERT_EQUAL(f.status, 201);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "user://localhost/alice");
        json_decref(j);
        h2_test_fetch_done(&f);
        j = post_json("/admin/users", dt_admin(), 1, "{\"name\":\"bob\",\"password\":\"bob-secret-22\"}", &f);
        CU_ASSERT_EQUAL(f.status, 201);
        json_decref(j);
        h2_test_fetch_done(&f);
        j = post_json("/admin/users", dt_admin(), 1, "{\"name\":\"alice\",\"password\":\"other-secret\"}", &f);
        CU_ASSERT_TRUE(dt_is_error(&f, 409, "exists"));
        json_decref(j);
        h2_test_fetch_done(&f);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = post_json("/admin/users", dt_admin(), 1, bad[i].body, &f);
                CU_ASSERT_TRUE(dt_is_error(&f, 400, bad[i].part));
                json_decref(j);
                h2_test_fetch_done(&f);
        }

        dt_request(&t, &f, "GET", "/admin/users", dt_admin(), 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 200);
        j = dt_json(&f);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "users")), 2);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(json_array_get(json_object_get(j, "users"), 1), "name")), "bob");
        CU_ASSERT_PTR_NULL(strstr((const char *) f.body, "secret"));
        CU_ASSERT_PTR_NULL(strstr((const char *) f.body, "scrypt"));
        json_decref(j);
        h2_test_fetch_done(&f);

        dt_request(&t, &f, "DELETE", "/admin/users/nobody", dt_admin(), 1, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 404, "no such user"));
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "DELETE", "/admin/users/bob", NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 401);
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "DELETE", "/admin/users/bob", dt_admin(), 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 204);
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "DELETE", "/admin/users/bob", dt_admin(), 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 404);
        h2_test_fetch_done(&f);
}

/* --- the password grant ---------------------------------------------------------------------- */

static bool is_oauth_error(H2TestFetch *f, int status, const char *error, const char *part) {
        json_t *j = dt_json(f);
        bool ok = f->status == status && streq_ptr(dt_json_str(j, "error"), error) &&
                  (!part || strstr(strna(dt_json_str(j, "error_description")), part));

        if (!ok)
                fprintf(stderr, "expected %d %s \"%s\", got %d: %.*s\n", status, error, strna(part), f->status,
                        (int) f->size, f->body ? (char *) f->body : "");
        json_decref(j);
        return ok;
}

static void test_grant(void) {
        _cleanup_token_key_ token_key *k1 = NULL, *k2 = NULL;
        _cleanup_token_keyset_ token_keyset *ks = NULL;
        _cleanup_token_claims_ token_claims *claims = NULL;
        _cleanup_free_ char *dev_token = NULL, *unclaimed_token = NULL, *admin_auth = NULL;
        char path[128];
        H2TestFetch f;
        json_t *j;
        int status;

        register_device(EP, &k1);
        register_device(EP_UNCLAIMED, &k2);
        snprintf(path, sizeof(path), "/admin/devices/%s/claim", EP);
        j = post_json(path, dt_admin(), 1, "{}", &f);
        CU_ASSERT_EQUAL_FATAL(f.status, 200);
        json_decref(j);
        h2_test_fetch_done(&f);

        dev_token = device_token(EP, k1, &status);
        CU_ASSERT_EQUAL_FATAL(status, 200);
        CU_ASSERT_PTR_NOT_NULL_FATAL(dev_token);
        snprintf(device_authorization, sizeof(device_authorization), "Bearer %s", dev_token);
        /* The unclaimed device gets no token, so it cannot log users in. */
        unclaimed_token = device_token(EP_UNCLAIMED, k2, &status);
        CU_ASSERT_EQUAL(status, 403);
        CU_ASSERT_PTR_NULL(unclaimed_token);

        /* The right password through the claimed device. */
        CU_ASSERT_EQUAL(token_request("grant_type=password&username=alice&password=alice-secret-1",
                                      device_authorization, &f),
                        200);
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "token_type")), "Bearer");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "scope")), "user");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "user")), "user://localhost/alice");
        CU_ASSERT_TRUE(json_integer_value(json_object_get(j, "expires_in")) > 0);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "cache-control")), "no-store");
        h2_test_fetch_done(&f);
        {
                H2TestFetch jf;

                dt_request(&t, &jf, "GET", "/idm/jwks", NULL, 0, NULL, 0);
                CU_ASSERT_EQUAL_FATAL(token_keyset_from_jwks((const char *) jf.body, jf.size, &ks, NULL), 0);
                h2_test_fetch_done(&jf);
        }
        CU_ASSERT_EQUAL_FATAL(token_verify(ks, dt_json_str(j, "access_token"),
                                           &(token_verify_params) { .issuer = "localhost", .audience = "localhost",
                                                                    .scope = "user" },
                                           &claims, NULL),
                              0);
        CU_ASSERT_STRING_EQUAL(token_claims_get_subject(claims), "user://localhost/alice");
        CU_ASSERT_STRING_EQUAL(strna(token_claims_get_authorized_party(claims)), EP);
        CU_ASSERT_FALSE(token_claims_has_scope(claims, "runtime"));
        CU_ASSERT_FALSE(token_claims_has_scope(claims, "admin"));
        json_decref(j);

        /* Percent-encoded password with a scope asked for. */
        j = post_json("/admin/users", dt_admin(), 1, "{\"name\":\"dave\",\"password\":\"p@ss w&rd=1\"}", &f);
        CU_ASSERT_EQUAL(f.status, 201);
        json_decref(j);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(token_request("grant_type=password&username=dave&password=p%40ss+w%26rd%3D1&scope=user",
                                      device_authorization, &f),
                        200);
        h2_test_fetch_done(&f);

        /* Wrong password, unknown user: the same answer. */
        token_request("grant_type=password&username=dave&password=wrong-password", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_grant", "wrong user name or password"));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=nobody&password=wrong-password", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_grant", "wrong user name or password"));
        h2_test_fetch_done(&f);
        /* A removed user (bob, by test_admin_api). */
        token_request("grant_type=password&username=bob&password=bob-secret-22", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_grant", NULL));
        h2_test_fetch_done(&f);

        /* No device token, a bad one, an admin token, Basic, other client
         * authentication: no user token. */
        token_request("grant_type=password&username=alice&password=alice-secret-1", NULL, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 401, "invalid_client", "claimed device"));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice&password=alice-secret-1", "Bearer not.a.token", &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 401, "invalid_client", "claimed device"));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice&password=alice-secret-1", dt_admin()[0].value, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 401, "invalid_client", NULL));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice&password=alice-secret-1", "Basic YWRtaW46eA==", &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 401, "invalid_client", NULL));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice&password=alice-secret-1&client_secret=x",
                      device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_request", "bearer token"));
        h2_test_fetch_done(&f);

        /* Missing parameters, other scopes. */
        token_request("grant_type=password&password=alice-secret-1", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_request", "'username'"));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_request", "'password'"));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice&password=alice-secret-1&scope=admin", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_scope", NULL));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice&password=alice-secret-1&scope=user%20runtime",
                      device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_scope", NULL));
        h2_test_fetch_done(&f);
        token_request("grant_type=password&username=alice&username=bob&password=alice-secret-1", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_request", "'username' given more than once"));
        h2_test_fetch_done(&f);
        (void) admin_auth;
}

/* Five failures for one user within a minute: 429 with Retry-After, even
 * with the right password; other users still log in. */
static void test_grant_rate_limit(void) {
        H2TestFetch f;
        const char *retry;

        for (unsigned i = 0; i < USERDB_FAILURES_MAX; i++) {
                token_request("grant_type=password&username=alice&password=guess-password", device_authorization, &f);
                CU_ASSERT_TRUE(is_oauth_error(&f, 400, "invalid_grant", NULL));
                h2_test_fetch_done(&f);
        }
        token_request("grant_type=password&username=alice&password=alice-secret-1", device_authorization, &f);
        CU_ASSERT_TRUE(is_oauth_error(&f, 429, "invalid_grant", "too many failed attempts"));
        retry = h2_client_request_get_header(f.req, "retry-after");
        CU_ASSERT_PTR_NOT_NULL(retry);
        CU_ASSERT_TRUE(retry && atoi(retry) >= 1 && atoi(retry) <= 60);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(token_request("grant_type=password&username=dave&password=p%40ss+w%26rd%3D1",
                                      device_authorization, &f),
                        200);
        h2_test_fetch_done(&f);
}

/* Users and their hashes survive a restart of the domain. */
static void test_restart(void) {
        H2TestFetch f;

        dt_stop_domain(&t);
        CU_ASSERT_EQUAL_FATAL(dt_start_domain(&t), 0);
        CU_ASSERT_EQUAL(token_request("grant_type=password&username=dave&password=p%40ss+w%26rd%3D1",
                                      device_authorization, &f),
                        200);
        h2_test_fetch_done(&f);
        /* The failure count is in memory: gone with the restart. */
        CU_ASSERT_EQUAL(token_request("grant_type=password&username=alice&password=alice-secret-1",
                                      device_authorization, &f),
                        200);
        h2_test_fetch_done(&f);
}

static CU_TestInfo tests[] = {
        { "kdf", test_kdf },
        { "names", test_names },
        { "store", test_store },
        { "rate limit", test_rate_limit },
        { "admin api", test_admin_api },
        { "password grant", test_grant },
        { "password grant rate limit", test_grant_rate_limit },
        { "restart", test_restart },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-users", tests, setup, cleanup)
