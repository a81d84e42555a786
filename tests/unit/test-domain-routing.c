/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Services working together inside one real rethink-domain: a message to a
 * hyperty reaches the runtime the Global Registry says hosts it, with real
 * IdM tokens, over HTTP/2. */

#include "idm.h"
#include "message.h"
#include "test-domain-util.h"
#include "token.h"

#define DOMAIN "localhost"

static DomainTest t;

typedef struct Device {
        char auth[1024];
        char runtime[128];
        char session[64];
        H2TestFetch stream;
} Device;

static void device_init(Device *d, const char *subject) {
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_free_ char *path = NULL, *tok = NULL;
        char uuid[ID_UUID_STRING_MAX];

        memset(d, 0, sizeof(*d));
        /* Tokens signed with the domain's own IdM key, as /idm/token would
         * issue them. */
        CU_ASSERT_FATAL(asprintf(&path, "%s/%s", t.state, IDM_KEY_FILE_NAME) > 0);
        CU_ASSERT_EQUAL_FATAL(token_key_load_private_pem(path, &k), 0);
        CU_ASSERT_EQUAL_FATAL(token_issue(k,
                                          &(token_issue_params) { .issuer = DOMAIN,
                                                                  .subject = subject,
                                                                  .audience = DOMAIN,
                                                                  .scope = "runtime",
                                                                  .lifetime = USEC_PER_HOUR },
                                          &tok),
                              0);
        snprintf(d->auth, sizeof(d->auth), "Bearer %s", tok);
        CU_ASSERT_EQUAL_FATAL(id_uuid_new(uuid), 0);
        snprintf(d->runtime, sizeof(d->runtime), "runtime://" DOMAIN "/%s", uuid);
}

static int device_request(Device *d, const char *method, const char *path, const char *body, json_t **ret) {
        H2Header h[] = { { "authorization", d->auth } };
        H2TestFetch f;
        int status;

        dt_request(&t, &f, method, path, h, ELEMENTSOF(h), body, body ? strlen(body) : 0);
        status = f.status;
        if (ret)
                *ret = dt_json(&f);
        h2_test_fetch_done(&f);
        return status;
}

static void device_open_session(Device *d, bool stream) {
        H2Header h[] = { { "authorization", d->auth } };
        _cleanup_free_ char *body = NULL;
        char path[128];
        json_t *j = NULL;

        CU_ASSERT_FATAL(asprintf(&body, "{\"runtime\":\"%s\"}", d->runtime) > 0);
        CU_ASSERT_EQUAL_FATAL(device_request(d, "POST", "/msg/sessions", body, &j), 201);
        snprintf(d->session, sizeof(d->session), "%s", strna(dt_json_str(j, "session")));
        json_decref(j);
        if (!stream)
                return;

        d->stream.stream = true;
        snprintf(path, sizeof(path), "/msg/sessions/%s/stream", d->session);
        CU_ASSERT_EQUAL_FATAL(h2_client_request(t.client, "GET", path, h, ELEMENTSOF(h), NULL, 0, 0,
                                                h2_test_fetch_callbacks(true), &d->stream, &d->stream.req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(t.event, &d->stream.got_response, 30));
        CU_ASSERT_EQUAL_FATAL(d->stream.status, 200);
}

static void device_close(Device *d) {
        if (d->stream.req && !d->stream.done)
                (void) h2_client_request_cancel(d->stream.req);
        h2_test_fetch_done(&d->stream);
}

/* The first message on the stream, waiting a while for it; NULL if none. */
static rt_message *first_message(Device *d) {
        uint64_t deadline = h2_test_now_usec() + 10 * 1000000ULL;
        _cleanup_free_ char *reason = NULL;
        const uint8_t *nl = NULL;
        rt_message *m = NULL;

        while (h2_test_now_usec() < deadline && !d->stream.done &&
               !(d->stream.body && (nl = memchr(d->stream.body, '\n', d->stream.size))))
                (void) sd_event_run(t.event, 100000);
        if (!nl)
                return NULL;
        (void) rt_message_parse(d->stream.body, (size_t) (nl - d->stream.body) + 1, NULL, &m, &reason);
        return m;
}

static void test_message_to_registered_hyperty(void) {
        _cleanup_(rt_message_freep) rt_message *m = NULL;
        _cleanup_free_ char *path = NULL, *body = NULL, *hyperty = NULL;
        char uuid[ID_UUID_STRING_MAX];
        Device a, b;

        device_init(&a, "dev-a");
        device_init(&b, "dev-b");
        device_open_session(&b, true);

        /* B registers a hyperty on its runtime but has never sent a message
         * from it: only the registry knows where it lives. */
        CU_ASSERT_EQUAL_FATAL(id_uuid_new(uuid), 0);
        CU_ASSERT_FATAL(asprintf(&hyperty, "hyperty://" DOMAIN "/%s", uuid) > 0);
        CU_ASSERT_FATAL(asprintf(&path, "/registry/hyperties/%s", uuid) > 0);
        CU_ASSERT_FATAL(asprintf(&body,
                                 "{\"runtime\":\"%s\",\"descriptor\":\"https://" DOMAIN
                                 "/.well-known/hyperty/context-producer\",\"location\":{\"type\":\"messaging\"}}",
                                 b.runtime) > 0);
        CU_ASSERT_EQUAL_FATAL(device_request(&b, "PUT", path, body, NULL), 201);

        device_open_session(&a, false);
        free(path);
        free(body);
        CU_ASSERT_FATAL(asprintf(&path, "/msg/sessions/%s/messages", a.session) > 0);
        CU_ASSERT_FATAL(asprintf(&body, "{\"id\":7,\"type\":\"read\",\"from\":\"%s\",\"to\":\"%s\",\"body\":{}}",
                                 a.runtime, hyperty) > 0);
        CU_ASSERT_EQUAL(device_request(&a, "POST", path, body, NULL), 202);

        m = first_message(&b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_id(m), 7);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), a.runtime);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), hyperty);

        device_close(&a);
        device_close(&b);
}

static int setup(void) {
        return dt_setup(&t, "[Domain]\nName=" DOMAIN "\n") < 0 ? -1 : 0;
}

static int teardown(void) {
        dt_teardown(&t);
        return 0;
}

static CU_TestInfo tests[] = {
        { "message to a hyperty found in the registry", test_message_to_registered_hyperty },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-routing", tests, setup, teardown)
