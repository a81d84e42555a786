/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Catalogue driven over real HTTP/2 (our client) against a real
 * rethink-domain in this process: uploads, publishing, descriptors and
 * package downloads with Range and ETag, and every error answer. */

#include "test-domain-util.h"
#include "tests.h"

static DomainTest t;

static void fill(uint8_t *p, size_t n, unsigned seed) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) ((i * 31 + seed * 7 + (i >> 8)) & 0xff);
}

static void hex_of(const void *p, size_t n, char hex[static SHA256_HEX_SIZE]) {
        uint8_t d[SHA256_DIGEST_SIZE];

        CU_ASSERT_EQUAL_FATAL(sha256_buffer(p, n, d), 0);
        sha256_to_hex(d, hex);
}

static int upload(const void *p, size_t n, const char *sha, H2TestFetch *f) {
        char path[128];

        snprintf(path, sizeof(path), "/admin/catalogue/packages/%s", sha);
        dt_request(&t, f, "PUT", path, dt_admin(), 1, p, n);
        return f->status;
}

/* A descriptor for package bytes p signed by key (NULL: the trusted one). */
static char *make_descriptor(const char *kind, const char *name, const char *version, const void *p, size_t n,
                             sign_key *key, const char *extra) {
        uint8_t d[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];
        _cleanup_free_ char *sig64 = NULL, *pub = NULL;
        char hex[SHA256_HEX_SIZE], *s;

        CU_ASSERT_EQUAL_FATAL(sha256_buffer(p, n, d), 0);
        CU_ASSERT_EQUAL_FATAL(sign_digest(key ?: t.publisher, d, sig), 0);
        CU_ASSERT_EQUAL_FATAL(base64url_encode(sig, sizeof(sig), &sig64), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(key ?: t.publisher, &pub), 0);
        CU_ASSERT_FATAL(asprintf(&s,
                                 "{\"type\":\"%s\",\"objectName\":\"%s\",\"version\":\"%s\",%s"
                                 "\"sha256\":\"%s\",\"signature\":\"%s\",\"publisher\":\"%s\"%s}",
                                 kind, name, version, streq(kind, "hyperty") ? "\"hypertyType\":[\"context\"]," : "",
                                 sha256_to_hex(d, hex), sig64, pub, extra ?: "") > 0);
        return s;
}

static int publish(const char *json, H2TestFetch *f) {
        dt_request(&t, f, "POST", "/admin/catalogue/descriptors", dt_admin(), 1, json, strlen(json));
        return f->status;
}

static int get(const char *path, const H2Header *h, size_t n, H2TestFetch *f) {
        dt_request(&t, f, "GET", path, h, n, NULL, 0);
        return f->status;
}

static int setup(void) {
        return dt_setup(&t, "MaxPackageSize=4000000\n") < 0 ? -1 : 0;
}

static int cleanup(void) {
        dt_teardown(&t);
        return 0;
}

static void test_publish_and_fetch(void) {
        static uint8_t pkg[300000];
        _cleanup_free_ char *desc = NULL;
        char hex[SHA256_HEX_SIZE], path[128];
        H2TestFetch f;
        json_t *j;

        fill(pkg, sizeof(pkg), 1);
        hex_of(pkg, sizeof(pkg), hex);

        CU_ASSERT_EQUAL(upload(pkg, sizeof(pkg), hex, &f), 201);
        snprintf(path, sizeof(path), "/catalogue/packages/%s", hex);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "location")), path);
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "sha256")), hex);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "size")), (json_int_t) sizeof(pkg));
        json_decref(j);
        h2_test_fetch_done(&f);

        /* Stored but not yet published: not served. */
        CU_ASSERT_TRUE(get(path, NULL, 0, &f) == 404 && dt_is_error(&f, 404, "no such package"));
        h2_test_fetch_done(&f);

        /* Same bytes again: already there. */
        CU_ASSERT_EQUAL(upload(pkg, sizeof(pkg), hex, &f), 200);
        h2_test_fetch_done(&f);

        desc = make_descriptor("hyperty", "temp-producer", "1.0.0", pkg, sizeof(pkg), NULL,
                               ",\"constraints\":{\"arch\":[\"x86_64\"],\"diskBytes\":300000}");
        CU_ASSERT_EQUAL(publish(desc, &f), 201);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "location")),
                               "/.well-known/hyperty/temp-producer");
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "sourcePackageURL")), path);
        json_decref(j);
        h2_test_fetch_done(&f);

        /* Publishing the very same again is a no-op. */
        CU_ASSERT_EQUAL(publish(desc, &f), 200);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(get("/.well-known/hyperty/temp-producer", NULL, 0, &f), 200);
        CU_ASSERT_STRING_EQUAL(f.content_type, "application/json");
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "objectName")), "temp-producer");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "version")), "1.0.0");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "sha256")), hex);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "publisher")), t.publisher_b64);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(j, "constraints"), "diskBytes")), 300000);
        json_decref(j);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(get("/.well-known/hyperty/", NULL, 0, &f), 200);
        CU_ASSERT_STRING_EQUAL((char *) f.body, "[\"temp-producer\"]");
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(get("/.well-known/hyperty", NULL, 0, &f), 200);
        CU_ASSERT_STRING_EQUAL((char *) f.body, "[\"temp-producer\"]");
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(get("/.well-known/runtime/", NULL, 0, &f), 200);
        CU_ASSERT_STRING_EQUAL((char *) f.body, "[]");
        h2_test_fetch_done(&f);

        /* The whole package, streamed from disk. */
        CU_ASSERT_EQUAL(get(path, NULL, 0, &f), 200);
        CU_ASSERT_EQUAL(f.size, sizeof(pkg));
        CU_ASSERT_TRUE(f.size == sizeof(pkg) && memcmp(f.body, pkg, sizeof(pkg)) == 0);
        CU_ASSERT_STRING_EQUAL(f.content_type, "application/octet-stream");
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "accept-ranges")), "bytes");
        {
                char etag[80];
                snprintf(etag, sizeof(etag), "\"%s\"", hex);
                CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "etag")), etag);
        }
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "content-length")), "300000");
        h2_test_fetch_done(&f);
}

static void test_versions(void) {
        static uint8_t a[1000], b[2000];
        _cleanup_free_ char *d1 = NULL, *d2 = NULL, *d1b = NULL;
        char ha[SHA256_HEX_SIZE], hb[SHA256_HEX_SIZE];
        H2TestFetch f;
        json_t *j;

        fill(a, sizeof(a), 2);
        fill(b, sizeof(b), 3);
        hex_of(a, sizeof(a), ha);
        hex_of(b, sizeof(b), hb);
        CU_ASSERT_EQUAL(upload(a, sizeof(a), ha, &f), 201);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(upload(b, sizeof(b), hb, &f), 201);
        h2_test_fetch_done(&f);

        d1 = make_descriptor("protocolstub", "msg-stub", "1", a, sizeof(a), NULL, NULL);
        d2 = make_descriptor("protocolstub", "msg-stub", "2", b, sizeof(b), NULL, NULL);
        CU_ASSERT_EQUAL(publish(d1, &f), 201);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(publish(d2, &f), 201);
        h2_test_fetch_done(&f);

        /* The latest publication wins; older versions stay reachable. */
        CU_ASSERT_EQUAL(get("/.well-known/protocolstub/msg-stub", NULL, 0, &f), 200);
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "version")), "2");
        json_decref(j);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(get("/.well-known/protocolstub/msg-stub?version=1", NULL, 0, &f), 200);
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "sha256")), ha);
        json_decref(j);
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/.well-known/protocolstub/msg-stub?version=3", NULL, 0, &f) == 404 &&
                       dt_is_error(&f, 404, "version"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/.well-known/protocolstub/msg-stub?v=3", NULL, 0, &f) == 400 &&
                       dt_is_error(&f, 400, "allowed: version"));
        h2_test_fetch_done(&f);

        /* Version 1 again, with other bytes: a conflict, and nothing changes. */
        d1b = make_descriptor("protocolstub", "msg-stub", "1", b, sizeof(b), NULL, NULL);
        CU_ASSERT_TRUE(publish(d1b, &f) == 409 && dt_is_error(&f, 409, "already published"));
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(get("/.well-known/protocolstub/msg-stub?version=1", NULL, 0, &f), 200);
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "sha256")), ha);
        json_decref(j);
        h2_test_fetch_done(&f);
}

static void test_upload_errors(void) {
        static uint8_t pkg[5000], big[4000001];
        char hex[SHA256_HEX_SIZE], other[SHA256_HEX_SIZE], path[128];
        H2TestFetch f;

        fill(pkg, sizeof(pkg), 4);
        hex_of(pkg, sizeof(pkg), hex);
        snprintf(path, sizeof(path), "/admin/catalogue/packages/%s", hex);

        dt_request(&t, &f, "PUT", path, NULL, 0, pkg, sizeof(pkg));
        CU_ASSERT_TRUE(dt_is_error(&f, 401, "missing"));
        CU_ASSERT_PTR_NOT_NULL(h2_client_request_get_header(f.req, "www-authenticate"));
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "PUT", path, (const H2Header[]) { { "authorization", "Bearer wrong-credential-000000000" } }, 1,
                   pkg, sizeof(pkg));
        CU_ASSERT_TRUE(dt_is_error(&f, 401, "malformed token"));
        h2_test_fetch_done(&f);
        /* The credential itself is no token; the answer says where to get one. */
        dt_request(&t, &f, "PUT", path, dt_admin_credential(), 1, pkg, sizeof(pkg));
        CU_ASSERT_TRUE(dt_is_error(&f, 401, "POST /idm/token"));
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "PUT", path, (const H2Header[]) { { "authorization", "Basic " DT_ADMIN_TOKEN } }, 1, pkg,
                   sizeof(pkg));
        CU_ASSERT_TRUE(dt_is_error(&f, 401, NULL));
        h2_test_fetch_done(&f);

        CU_ASSERT_TRUE(upload(pkg, sizeof(pkg), "abc", &f) == 400 && dt_is_error(&f, 400, "64 lowercase hex"));
        h2_test_fetch_done(&f);

        /* Bytes that hash to another digest: refused, nothing kept. */
        fill(pkg, sizeof(pkg), 5);
        hex_of(pkg, sizeof(pkg), other);
        fill(pkg, sizeof(pkg), 4);
        CU_ASSERT_TRUE(upload(pkg, sizeof(pkg), other, &f) == 422 && dt_is_error(&f, 422, "does not match"));
        h2_test_fetch_done(&f);
        {
                _cleanup_free_ char *desc = NULL;
                uint8_t wrong[5000];

                fill(wrong, sizeof(wrong), 5);
                desc = make_descriptor("runtime", "rt", "1", wrong, sizeof(wrong), NULL, NULL);
                CU_ASSERT_TRUE(publish(desc, &f) == 422 && dt_is_error(&f, 422, "no such package"));
                h2_test_fetch_done(&f);
        }

        /* Over MaxPackageSize: refused from Content-Length already. */
        hex_of(big, sizeof(big), hex);
        CU_ASSERT_TRUE(upload(big, sizeof(big), hex, &f) == 413 && dt_is_error(&f, 413, "too large"));
        h2_test_fetch_done(&f);

        /* No temporary file is left behind by any of this. */
        {
                _cleanup_free_ char *cmd = NULL;
                CU_ASSERT_FATAL(asprintf(&cmd, "test -z \"$(ls -A %s/packages | grep '^\\.upload-')\"", t.state) > 0);
                CU_ASSERT_EQUAL(system(cmd), 0);
        }
}

static void test_publish_errors(void) {
        static uint8_t pkg[3000];
        _cleanup_free_ char *desc = NULL, *untrusted = NULL, *badsig = NULL;
        _cleanup_sign_key_ sign_key *stranger = NULL;
        char hex[SHA256_HEX_SIZE];
        H2TestFetch f;
        char *p;

        fill(pkg, sizeof(pkg), 6);
        hex_of(pkg, sizeof(pkg), hex);
        CU_ASSERT_EQUAL(upload(pkg, sizeof(pkg), hex, &f), 201);
        h2_test_fetch_done(&f);

        CU_ASSERT_TRUE(publish("{\"type\":\"hyperty\"", &f) == 400 && dt_is_error(&f, 400, "invalid JSON"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(publish("{\"type\":\"hyperty\"}", &f) == 400 && dt_is_error(&f, 400, "field 'objectName'"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(publish("", &f) == 400);
        h2_test_fetch_done(&f);

        /* A body beyond the descriptor limit. */
        {
                size_t n = DESCRIPTOR_MAX_SIZE + 10;
                _cleanup_free_ char *huge = malloc(n);
                CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
                memset(huge, ' ', n);
                dt_request(&t, &f, "POST", "/admin/catalogue/descriptors", dt_admin(), 1, huge, n);
                CU_ASSERT_TRUE(dt_is_error(&f, 413, "too large"));
                h2_test_fetch_done(&f);
        }

        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&stranger), 0);
        untrusted = make_descriptor("hyperty", "h-untrusted", "1", pkg, sizeof(pkg), stranger, NULL);
        CU_ASSERT_TRUE(publish(untrusted, &f) == 422 && dt_is_error(&f, 422, "not a trusted publisher"));
        h2_test_fetch_done(&f);

        /* Signed by a stranger but claiming the trusted key. */
        badsig = make_descriptor("hyperty", "h-badsig", "1", pkg, sizeof(pkg), stranger, NULL);
        p = strstr(badsig, "\"publisher\":\"");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p + 13, t.publisher_b64, strlen(t.publisher_b64));
        CU_ASSERT_TRUE(publish(badsig, &f) == 422 && dt_is_error(&f, 422, "does not verify"));
        h2_test_fetch_done(&f);

        /* Nothing of the refused ones is visible. */
        CU_ASSERT_TRUE(get("/.well-known/hyperty/h-untrusted", NULL, 0, &f) == 404 && dt_is_error(&f, 404, "no such"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/.well-known/hyperty/h-badsig", NULL, 0, &f) == 404);
        h2_test_fetch_done(&f);

        desc = make_descriptor("hyperty", "h-good", "1", pkg, sizeof(pkg), NULL, NULL);
        dt_request(&t, &f, "POST", "/admin/catalogue/descriptors", NULL, 0, desc, strlen(desc));
        CU_ASSERT_TRUE(dt_is_error(&f, 401, NULL));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/.well-known/hyperty/h-good", NULL, 0, &f) == 404);
        h2_test_fetch_done(&f);
}

static void test_ranges(void) {
        static uint8_t pkg[3000000];
        _cleanup_free_ char *desc = NULL;
        char hex[SHA256_HEX_SIZE], path[128], etag[80], cr[80];
        H2TestFetch f;

        fill(pkg, sizeof(pkg), 7);
        hex_of(pkg, sizeof(pkg), hex);
        CU_ASSERT_EQUAL(upload(pkg, sizeof(pkg), hex, &f), 201);
        h2_test_fetch_done(&f);
        desc = make_descriptor("runtime", "big-runtime", "1", pkg, sizeof(pkg), NULL, NULL);
        CU_ASSERT_EQUAL(publish(desc, &f), 201);
        h2_test_fetch_done(&f);
        snprintf(path, sizeof(path), "/catalogue/packages/%s", hex);
        snprintf(etag, sizeof(etag), "\"%s\"", hex);

        /* 3 MB, more than the server queues at once: streamed. */
        CU_ASSERT_EQUAL(get(path, NULL, 0, &f), 200);
        CU_ASSERT_TRUE(f.size == sizeof(pkg) && memcmp(f.body, pkg, sizeof(pkg)) == 0);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "range", "bytes=100-199" } }, 1, &f), 206);
        CU_ASSERT_TRUE(f.size == 100 && memcmp(f.body, pkg + 100, 100) == 0);
        snprintf(cr, sizeof(cr), "bytes 100-199/%zu", sizeof(pkg));
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "content-range")), cr);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "content-length")), "100");
        h2_test_fetch_done(&f);

        /* Resume a download: open-ended, large, streamed. */
        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "range", "bytes=1000000-" } }, 1, &f), 206);
        CU_ASSERT_TRUE(f.size == sizeof(pkg) - 1000000 && memcmp(f.body, pkg + 1000000, f.size) == 0);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "range", "bytes=-10" } }, 1, &f), 206);
        CU_ASSERT_TRUE(f.size == 10 && memcmp(f.body, pkg + sizeof(pkg) - 10, 10) == 0);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "range", "bytes=3000000-" } }, 1, &f), 416);
        CU_ASSERT_TRUE(dt_is_error(&f, 416, "range"));
        snprintf(cr, sizeof(cr), "bytes */%zu", sizeof(pkg));
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "content-range")), cr);
        h2_test_fetch_done(&f);

        /* Several ranges: ignored, the whole file. */
        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "range", "bytes=0-1,5-6" } }, 1, &f), 200);
        CU_ASSERT_EQUAL(f.size, sizeof(pkg));
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "if-none-match", etag } }, 1, &f), 304);
        CU_ASSERT_EQUAL(f.size, 0);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "etag")), etag);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "if-none-match", "\"other\"" } }, 1, &f), 200);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "range", "bytes=5-9" }, { "if-range", etag } }, 2, &f), 206);
        CU_ASSERT_TRUE(f.size == 5 && memcmp(f.body, pkg + 5, 5) == 0);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(get(path, (const H2Header[]) { { "range", "bytes=5-9" }, { "if-range", "\"stale\"" } }, 2, &f),
                        200);
        CU_ASSERT_EQUAL(f.size, sizeof(pkg));
        h2_test_fetch_done(&f);

        /* HEAD: the size without the bytes. */
        dt_request(&t, &f, "HEAD", path, NULL, 0, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_EQUAL(f.size, 0);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "content-length")), "3000000");
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "etag")), etag);
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "HEAD", path, (const H2Header[]) { { "range", "bytes=10-19" } }, 1, NULL, 0);
        CU_ASSERT_EQUAL(f.status, 206);
        CU_ASSERT_EQUAL(f.size, 0);
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "content-length")), "10");
        h2_test_fetch_done(&f);

        /* Unknown and malformed digests. */
        CU_ASSERT_TRUE(get("/catalogue/packages/0000000000000000000000000000000000000000000000000000000000000000", NULL,
                           0, &f) == 404 && dt_is_error(&f, 404, "no such package"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/catalogue/packages/xyz", NULL, 0, &f) == 404);
        h2_test_fetch_done(&f);
}

static bool no_uploads_left(void) {
        _cleanup_free_ char *cmd = NULL;

        CU_ASSERT_FATAL(asprintf(&cmd, "test -z \"$(ls -A %s/packages | grep '^\\.upload-')\"", t.state) > 0);
        return system(cmd) == 0;
}

static int count_chunks(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        H2TestFetch *f = userdata;

        f->size += size;
        f->chunks++;
        return 0;
}

/* Clients that go away half-way: the server drops the download and the
 * partial upload, and keeps serving. */
static void test_cancelled(void) {
        static uint8_t pkg[3000000];
        static const H2ClientRequestCallbacks cb = {
                .on_response = h2_test_fetch_response,
                .on_data = count_chunks,
                .on_complete = h2_test_fetch_complete,
        };
        char hex[SHA256_HEX_SIZE], path[128];
        H2ClientRequest *r = NULL;
        H2TestFetch f;

        /* The package published in test_ranges. */
        fill(pkg, sizeof(pkg), 7);
        hex_of(pkg, sizeof(pkg), hex);
        snprintf(path, sizeof(path), "/catalogue/packages/%s", hex);

        memset(&f, 0, sizeof(f));
        f.stream = true;
        CU_ASSERT_EQUAL_FATAL(h2_client_request(t.client, "GET", path, NULL, 0, NULL, 0, 0, &cb, &f, &r), 0);
        for (unsigned i = 0; i < 1000 && f.size == 0; i++)
                h2_test_run_for(t.event, 1000);
        CU_ASSERT_TRUE(f.size > 0 && f.size < sizeof(pkg));
        CU_ASSERT_EQUAL(h2_client_request_cancel(r), 0);
        h2_client_request_unref(r);
        h2_test_run_for(t.event, 50000);

        /* A new upload, cut off after 100 KB. */
        fill(pkg, sizeof(pkg), 8);
        hex_of(pkg, sizeof(pkg), hex);
        snprintf(path, sizeof(path), "/admin/catalogue/packages/%s", hex);
        memset(&f, 0, sizeof(f));
        CU_ASSERT_EQUAL_FATAL(h2_client_request(t.client, "PUT", path, dt_admin(), 1, NULL, 0,
                                                H2_CLIENT_REQUEST_STREAM_BODY, h2_test_fetch_callbacks(false), &f, &r),
                              0);
        CU_ASSERT_EQUAL(h2_client_request_write(r, pkg, 100000), 0);
        for (unsigned i = 0; i < 1000 && no_uploads_left(); i++)
                h2_test_run_for(t.event, 10000);
        CU_ASSERT_FALSE(no_uploads_left()); /* it is being written */
        CU_ASSERT_EQUAL(h2_client_request_cancel(r), 0);
        h2_client_request_unref(r);
        for (unsigned i = 0; i < 100 && !no_uploads_left(); i++)
                h2_test_run_for(t.event, 10000);
        CU_ASSERT_TRUE(no_uploads_left());

        /* Still serving, and the package is not there. */
        snprintf(path, sizeof(path), "/catalogue/packages/%s", hex);
        CU_ASSERT_TRUE(get(path, NULL, 0, &f) == 404);
        h2_test_fetch_done(&f);
        CU_ASSERT_EQUAL(get("/.well-known/runtime/big-runtime", NULL, 0, &f), 200);
        h2_test_fetch_done(&f);
}

static void test_routing(void) {
        H2TestFetch f;

        CU_ASSERT_TRUE(get("/nowhere", NULL, 0, &f) == 404 && dt_is_error(&f, 404, "not found"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/.well-known/widget/x", NULL, 0, &f) == 404 && dt_is_error(&f, 404, "unknown catalogue type"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/.well-known/hyperty/no-such", NULL, 0, &f) == 404 && dt_is_error(&f, 404, "no such hyperty"));
        h2_test_fetch_done(&f);
        CU_ASSERT_TRUE(get("/.well-known/hyperty/..", NULL, 0, &f) == 404);
        h2_test_fetch_done(&f);

        dt_request(&t, &f, "DELETE", "/.well-known/hyperty/x", NULL, 0, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 405, "method not allowed"));
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "allow")), "GET");
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "GET", "/admin/catalogue/descriptors", dt_admin(), 1, NULL, 0);
        CU_ASSERT_TRUE(dt_is_error(&f, 405, NULL));
        CU_ASSERT_STRING_EQUAL(strna(h2_client_request_get_header(f.req, "allow")), "POST");
        h2_test_fetch_done(&f);
}

static CU_TestInfo tests[] = {
        { "upload, publish, descriptor, listing, download", test_publish_and_fetch },
        { "versions and conflicts", test_versions },
        { "upload errors: 401, 400, 422, 413", test_upload_errors },
        { "publish errors: 400, 413, 422, 401", test_publish_errors },
        { "Range, ETag, If-None-Match, If-Range", test_ranges },
        { "cancelled download and upload", test_cancelled },
        { "404 and 405", test_routing },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-catalogue", tests, setup, cleanup)
