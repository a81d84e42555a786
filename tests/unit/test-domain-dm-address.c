/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device management records where a device registers and updates from:
 * the source IP of the HTTP/2 connection, as "address" (and when it last
 * changed, "addressUpdated") in the admin view. Two real sources on
 * loopback: our client (127.0.0.1) and curl bound to 127.0.0.2, a client
 * that is not ours; the address getter over IPv6; then a restart on the
 * same state. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "test-domain-util.h"
#include "tests.h"

static DomainTest t;

static int setup(void) {
        return dt_setup(&t, "[DeviceManagement]\nMinLifetimeSec=1\n") < 0 ? -1 : 0;
}

static int cleanup(void) {
        dt_teardown(&t);
        return 0;
}

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

/* POST with curl from source address src, the domain's loop running
 * meanwhile; the HTTP status curl saw, or -1. */
static int curl_post(const char *src, const char *path, const char *body) {
        char url[256], out[64] = "", status_file[128];
        pid_t pid;
        int status = -1, fd;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", domain_get_port(t.domain), path);
        snprintf(status_file, sizeof(status_file), "%s/curl-status", t.dir);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                fd = open(status_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
                        _exit(127);
                execlp("curl", "curl", "-sS", "--http2-prior-knowledge", "--interface", src, "--max-time", "30", "-X",
                       "POST", "-H", "content-type: application/json", "--data-binary", body ?: "", "-o", "/dev/null",
                       "-w", "%{http_code}", url, (char *) NULL);
                _exit(127);
        }
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);

                if (w == pid)
                        break;
                if (w < 0)
                        return -1;
                (void) sd_event_run(t.event, 10000);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -1;
        fd = open(status_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        if (read(fd, out, sizeof(out) - 1) < 0)
                out[0] = '\0';
        close(fd);
        return atoi(out);
}

static bool have_curl(void) {
        return system("curl --version 2>/dev/null | grep -qw HTTP2") == 0;
}

static void test_address(void) {
        _cleanup_sign_key_ sign_key *k = NULL, *k2 = NULL;
        _cleanup_free_ char *key = NULL, *key2 = NULL, *body = NULL, *body2 = NULL, *location = NULL, *first_change = NULL, *second_change = NULL;
        H2TestFetch f;
        json_t *j;

        if (!have_curl()) {
                fprintf(stderr, "curl with HTTP/2 is missing: the second source is not tested\n");
                CU_FAIL("curl with HTTP/2 missing");
                return;
        }
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(k, &key), 0);
        CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\"}", key) > 0);

        /* Registered from 127.0.0.1 (our client). */
        dt_request(&t, &f, "POST", "/dm/rd?ep=mover-1&lt=3600", NULL, 0, body, strlen(body));
        CU_ASSERT_EQUAL_FATAL(f.status, 201);
        location = strdup(strna(h2_client_request_get_header(f.req, "location")));
        j = dt_json(&f);
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.1");
        CU_ASSERT_PTR_NOT_NULL(dt_json_str(j, "addressUpdated"));
        json_decref(j);
        h2_test_fetch_done(&f);
        j = device("mover-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.1");
        first_change = strdup(strna(dt_json_str(j, "addressUpdated")));
        json_decref(j);

        /* The device moves: its update comes from 127.0.0.2. The times are
         * whole seconds; a second apart they tell the events apart. */
        sleep(1);
        CU_ASSERT_EQUAL(curl_post("127.0.0.2", location, NULL), 204);
        j = device("mover-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.2");
        second_change = strdup(strna(dt_json_str(j, "addressUpdated")));
        CU_ASSERT_STRING_NOT_EQUAL(second_change, first_change);
        CU_ASSERT_STRING_EQUAL(second_change, strna(dt_json_str(j, "updatedAt")));
        json_decref(j);

        /* Another update from the same place: updated, not moved. */
        sleep(1);
        CU_ASSERT_EQUAL(curl_post("127.0.0.2", location, NULL), 204);
        j = device("mover-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.2");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "addressUpdated")), second_change);
        CU_ASSERT_STRING_NOT_EQUAL(strna(dt_json_str(j, "updatedAt")), second_change);
        json_decref(j);

        /* A refused update records nothing. */
        CU_ASSERT_EQUAL(curl_post("127.0.0.3", location, "{\"publicKey\":\"x\"}"), 400);
        j = device("mover-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.2");
        json_decref(j);

        /* Registering again (a known endpoint), from 127.0.0.1. */
        dt_request(&t, &f, "POST", "/dm/rd?ep=mover-1&lt=3600", NULL, 0, body, strlen(body));
        CU_ASSERT_EQUAL(f.status, 200);
        h2_test_fetch_done(&f);
        j = device("mover-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.1");
        json_decref(j);

        /* Another key for the endpoint, from 127.0.0.3: 409, nothing recorded. */
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&k2), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(k2, &key2), 0);
        CU_ASSERT_FATAL(asprintf(&body2, "{\"publicKey\":\"%s\"}", key2) > 0);
        CU_ASSERT_EQUAL(curl_post("127.0.0.3", "/dm/rd?ep=mover-1&lt=3600", body2), 409);
        j = device("mover-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.1");
        json_decref(j);

        /* A first registration from 127.0.0.2 (curl). */
        CU_ASSERT_EQUAL(curl_post("127.0.0.2", "/dm/rd?ep=mover-2&lt=3600", body2), 201);
        j = device("mover-2");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.2");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "addressUpdated")), strna(dt_json_str(j, "registeredAt")));
        json_decref(j);
}

static void test_address_survives_restart(void) {
        json_t *j;

        dt_stop_domain(&t);
        CU_ASSERT_EQUAL_FATAL(dt_start_domain(&t), 0);
        j = device("mover-1");
        CU_ASSERT_STRING_EQUAL(strna(dt_json_str(j, "address")), "127.0.0.1");
        CU_ASSERT_PTR_NOT_NULL(dt_json_str(j, "addressUpdated"));
        json_decref(j);
}

/* The getter itself over IPv6 loopback: a server on ::1 answers with the
 * address it sees. */
static int echo_peer(H2Request *req, void *userdata) {
        char a[INET6_ADDRSTRLEN] = "";
        int r = h2_request_get_peer_address(req, a, sizeof(a));

        if (r < 0)
                snprintf(a, sizeof(a), "error %d", r);
        return h2_request_respond(req, 200, NULL, 0, a, strlen(a));
}

static void test_peer_address_ipv6(void) {
        _cleanup_h2_server_ H2Server *s = NULL;
        _cleanup_h2_client_ H2Client *c = NULL;
        H2TestConn conn = {};
        H2TestFetch f = {};

        CU_ASSERT_EQUAL_FATAL(h2_server_new(t.event, NULL, NULL, &s), 0);
        h2_server_set_request_handler(s, echo_peer, NULL);
        CU_ASSERT_EQUAL_FATAL(h2_server_listen(s, "::1", 0), 0);
        CU_ASSERT_EQUAL_FATAL(h2_client_new(t.event, "::1", (uint16_t) h2_server_get_port(s), NULL, NULL, NULL,
                                            h2_test_conn_callbacks(), &conn, &c),
                              0);
        CU_ASSERT_EQUAL_FATAL(h2_client_request(c, "GET", "/", NULL, 0, NULL, 0, 0, h2_test_fetch_callbacks(false), &f,
                                                &f.req),
                              0);
        CU_ASSERT_TRUE_FATAL(h2_test_run_until(t.event, &f.done, 30));
        CU_ASSERT_EQUAL(f.status, 200);
        CU_ASSERT_EQUAL(f.size, 3u);
        CU_ASSERT(f.body && memcmp(f.body, "::1", 3) == 0);
        h2_test_fetch_done(&f);
}

CU_TestInfo tests[] = {
        { "source address", test_address },
        { "peer address over IPv6", test_peer_address_ipv6 },
        { "address survives a restart", test_address_survives_restart },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-dm-address", tests, setup, cleanup)
