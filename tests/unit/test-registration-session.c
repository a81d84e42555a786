/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The messaging session against the domain's real IdM and Messaging
 * Service in this process (router + HTTP/2 server on one loop; the
 * domain daemon does not serve them yet): a device token by client
 * assertion, the session, the NDJSON stream delivering rt_messages, a
 * device that is not claimed yet, a domain restart and the gate. */
#include <ftw.h>

#include "auth.h"
#include "gate.h"
#include "h2-test-util.h"
#include "identity.h"
#include "idm.h"
#include "msg.h"
#include "registration-session.h"
#include "router.h"
#include "tests.h"

#define DOMAIN "example.org"

typedef struct Fixture {
        char dir[64], state[128], agent[128];
        sd_event *event;
        auth *auth;
        router *router;
        idm *idm;
        msg *msg;
        H2Server *server;
        int port;
        bool claimed;

        identity *id;
        gates *gates;
        reg_session *s;
        unsigned n_messages;
        rt_message *last;
        unsigned states[_REG_SESSION_STATE_MAX];
        int last_status;
} Fixture;

static Fixture F;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

/* What the domain's device records would answer: the device's P-256 key. */
static int lookup(const char *endpoint, char **ret_public_key, bool *ret_claimed, void *userdata) {
        if (!F.id || !streq(endpoint, identity_get_endpoint(F.id)))
                return -ENOENT;
        *ret_claimed = F.claimed;
        return token_key_to_jwk(identity_get_token_key(F.id), ret_public_key);
}

static int bearer(H2Request *req, const char *scope, char **ret_subject, const char **ret_reason, void *userdata) {
        _cleanup_token_claims_ token_claims *c = NULL;
        int r;

        r = idm_check_bearer(F.idm, req, scope, &c, ret_reason);
        if (r < 0)
                return r;
        *ret_subject = strdup(token_claims_get_subject(c));
        return *ret_subject ? 0 : -ENOMEM;
}

static int server_start(void) {
        int r;

        r = idm_new(F.state, DOMAIN, &F.idm);
        if (r < 0)
                return r;
        idm_set_device_lookup(F.idm, lookup, NULL);
        r = msg_new(F.event, DOMAIN, F.state, &F.msg);
        if (r < 0)
                return r;
        msg_set_auth(F.msg, bearer, NULL);
        r = auth_new(&F.auth);
        if (r >= 0)
                r = router_new(F.auth, &F.router);
        if (r >= 0)
                r = idm_add_routes(F.idm, F.router);
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
        F.server = h2_server_free(F.server);
        F.msg = msg_free(F.msg);
        F.router = router_free(F.router);
        F.auth = auth_free(F.auth);
        F.idm = idm_free(F.idm);
}

static void on_message(const rt_message *m, void *userdata) {
        F.n_messages++;
        F.last = rt_message_free(F.last);
        {
                _cleanup_free_ char *j = NULL;
                if (rt_message_to_json(m, &j) >= 0)
                        (void) rt_message_parse(j, strlen(j), NULL, &F.last, NULL);
        }
}

static void on_state(reg_session_state state, int status, void *userdata) {
        F.states[state]++;
        F.last_status = status;
}

static uint64_t fixed_random(void *userdata) {
        return UINT64_MAX / 2;
}

static void setup(void) {
        memset(&F, 0, sizeof(F));
        snprintf(F.dir, sizeof(F.dir), "/tmp/reg-session-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(F.dir));
        snprintf(F.state, sizeof(F.state), "%s/domain", F.dir);
        snprintf(F.agent, sizeof(F.agent), "%s/agent", F.dir);
        CU_ASSERT_EQUAL_FATAL(sd_event_new(&F.event), 0);
        CU_ASSERT_EQUAL_FATAL(identity_load(F.agent, NULL, &F.id), 0);
        CU_ASSERT_EQUAL_FATAL(server_start(), 0);
        CU_ASSERT_EQUAL_FATAL(gates_new(&F.gates), 0);
}

static void start_session(void) {
        char url[64];

        snprintf(url, sizeof(url), "http://127.0.0.1:%d", F.port);
        CU_ASSERT_EQUAL_FATAL(reg_session_new(F.event, F.id, F.gates,
                                              &(reg_session_options) {
                                                      .url = url,
                                                      .domain_name = DOMAIN,
                                                      .state_dir = F.agent,
                                                      .retry_initial_usec = 50 * USEC_PER_MSEC,
                                                      .retry_max_usec = 200 * USEC_PER_MSEC,
                                                      .random = fixed_random,
                                              },
                                              &F.s),
                              0);
        reg_session_set_message_handler(F.s, on_message, NULL);
        reg_session_set_state_handler(F.s, on_state, NULL);
        CU_ASSERT_EQUAL_FATAL(reg_session_start(F.s), 0);
}

static void teardown(void) {
        F.s = reg_session_free(F.s);
        server_stop();
        h2_test_run_for(F.event, 100000);
        F.gates = gates_free(F.gates);
        F.id = identity_free(F.id);
        F.last = rt_message_free(F.last);
        F.event = sd_event_unref(F.event);
        (void) nftw(F.dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static bool streaming(void) {
        return reg_session_get_state(F.s) == REG_SESSION_STREAMING && msg_get_n_sessions(F.msg) > 0;
}

static bool run_until(bool (*cond)(void), unsigned limit_sec) {
        uint64_t deadline = h2_test_now_usec() + (uint64_t) limit_sec * 1000000ULL;

        while (!cond() && h2_test_now_usec() < deadline)
                if (sd_event_run(F.event, 100000) < 0)
                        break;
        return cond();
}

static unsigned want_messages;
static bool got_messages(void) {
        return F.n_messages >= want_messages;
}

static void send_to_runtime(uint64_t id) {
        _cleanup_rt_message_ rt_message *m = NULL;

        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_EXECUTE, id, "domain://catalogue." DOMAIN "/dm",
                                             reg_session_get_runtime(F.s), NULL, &m),
                              0);
        CU_ASSERT_EQUAL(msg_send(F.msg, m), 0);
}

static void test_stream_delivers_messages(void) {
        setup();
        F.claimed = true;
        gates_update(F.gates, QOS_ONLINE, false, false);
        start_session();
        CU_ASSERT_EQUAL(strncmp(reg_session_get_runtime(F.s), "runtime://" DOMAIN "/", strlen("runtime://" DOMAIN "/")), 0);
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        CU_ASSERT_EQUAL(F.states[REG_SESSION_TOKEN], 1u);
        CU_ASSERT_EQUAL(F.states[REG_SESSION_OPENING], 1u);
        CU_ASSERT_EQUAL(F.states[REG_SESSION_RETRY_WAIT], 0u);
        CU_ASSERT_PTR_NOT_NULL(reg_session_get_token(F.s));

        send_to_runtime(41);
        send_to_runtime(42);
        want_messages = 2;
        CU_ASSERT_TRUE_FATAL(run_until(got_messages, 30));
        CU_ASSERT_PTR_NOT_NULL_FATAL(F.last);
        CU_ASSERT_EQUAL(rt_message_get_id(F.last), 42u);
        CU_ASSERT_EQUAL(rt_message_get_type(F.last), RT_MESSAGE_EXECUTE);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(F.last, 0), reg_session_get_runtime(F.s));
        CU_ASSERT_EQUAL(reg_session_get_messages(F.s), 2u);
        teardown();
}

static bool refused(void) {
        return F.states[REG_SESSION_RETRY_WAIT] >= 2;
}

static void test_unclaimed_device_retries(void) {
        setup();
        F.claimed = false;
        gates_update(F.gates, QOS_ONLINE, false, false);
        start_session();
        CU_ASSERT_TRUE_FATAL(run_until(refused, 30));
        CU_ASSERT_EQUAL(F.last_status, 403);
        CU_ASSERT_PTR_NULL(reg_session_get_token(F.s));
        CU_ASSERT_EQUAL(msg_get_n_sessions(F.msg), 0u);
        {
                json_t *j = reg_session_status_json(F.s);
                CU_ASSERT_PTR_NOT_NULL(strstr(strna(json_string_value(json_object_get(j, "last_error"))), "not claimed"));
                json_decref(j);
        }
        /* Claimed by the admin: the next retry gets through. */
        F.claimed = true;
        CU_ASSERT_TRUE(run_until(streaming, 30));
        teardown();
}

static bool stream_lost(void) {
        return reg_session_get_state(F.s) == REG_SESSION_RETRY_WAIT;
}

static void test_domain_restart_reconnects(void) {
        unsigned opened;

        setup();
        F.claimed = true;
        gates_update(F.gates, QOS_ONLINE, false, false);
        start_session();
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        opened = F.states[REG_SESSION_STREAMING];

        /* The domain goes away and comes back on the same port and state
         * (sessions are in memory: the runtime must open its own again). */
        server_stop();
        CU_ASSERT_TRUE_FATAL(run_until(stream_lost, 30));
        CU_ASSERT_EQUAL_FATAL(server_start(), 0);
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        CU_ASSERT_TRUE(F.states[REG_SESSION_STREAMING] > opened);

        send_to_runtime(7);
        want_messages = 1;
        CU_ASSERT_TRUE(run_until(got_messages, 30));
        teardown();
}

static bool idle(void) {
        return reg_session_get_state(F.s) == REG_SESSION_IDLE;
}

static bool reopened(void) {
        return F.states[REG_SESSION_OPENING] >= 3;
}

static void test_gate(void) {
        unsigned tokens;

        setup();
        F.claimed = true;
        start_session();
        /* Gate closed: nothing at all. */
        h2_test_run_for(F.event, 300000);
        CU_ASSERT_EQUAL(F.states[REG_SESSION_TOKEN], 0u);
        CU_ASSERT_EQUAL(msg_get_n_sessions(F.msg), 0u);

        gates_update(F.gates, QOS_ONLINE, false, false);
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        tokens = F.states[REG_SESSION_TOKEN];

        gates_update(F.gates, QOS_OFFLINE, false, false);
        CU_ASSERT_TRUE(idle());
        h2_test_run_for(F.event, 500000);
        CU_ASSERT_TRUE(idle());
        CU_ASSERT_EQUAL(F.states[REG_SESSION_OPENING], 1u);

        /* Back: the session again, on the token we have. */
        gates_update(F.gates, QOS_ONLINE, false, false);
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        CU_ASSERT_EQUAL(F.states[REG_SESSION_TOKEN], tokens);
        CU_ASSERT_EQUAL(F.states[REG_SESSION_OPENING], 2u);

        /* Mobility: a new stream from the new address. */
        gates_mobility(F.gates, &(gate_mobility) { .old_ifname = "eth0", .new_ifname = "wwan0" });
        CU_ASSERT_TRUE_FATAL(run_until(reopened, 30));
        CU_ASSERT_TRUE_FATAL(run_until(streaming, 30));
        CU_ASSERT_EQUAL(F.states[REG_SESSION_OPENING], 3u);
        CU_ASSERT_EQUAL(F.states[REG_SESSION_TOKEN], tokens);
        teardown();
}

static void test_runtime_id_is_kept(void) {
        _cleanup_free_ char *first = NULL;

        setup();
        start_session();
        first = strdup(reg_session_get_runtime(F.s));
        F.s = reg_session_free(F.s);
        start_session();
        CU_ASSERT_STRING_EQUAL(reg_session_get_runtime(F.s), first);
        teardown();
}

static CU_TestInfo tests[] = {
        { "token, session, stream: messages arrive parsed", test_stream_delivers_messages },
        { "device not claimed: 403, retried until claimed", test_unclaimed_device_retries },
        { "domain restart: stream re-opened", test_domain_restart_reconnects },
        { "gate closed: nothing; open: session; mobility: new stream", test_gate },
        { "runtime id kept across restarts", test_runtime_id_is_kept },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("registration-session", tests)
