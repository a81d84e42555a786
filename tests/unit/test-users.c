/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's end users (daemon/users.h) against a real rethink-domain in
 * this process: a device registered and claimed, its token handed to the
 * users module, the control commands over a real control socket on the
 * same event loop, users.json on disk, users_get() for the runtime. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "control.h"
#include "ctlproto.h"
#include "test-domain-util.h"
#include "tests.h"
#include "token.h"
#include "users.h"

#define EP "agent-users-1"

static DomainTest t;
static control_server *server;
static users *u;
static char sock_path[100], agent_dir[128], users_file[160], url[64];
static char *device_token_value;
static int64_t next_id = 1;

static const char *get_device_token(void *userdata) {
        return device_token_value;
}

static void register_and_claim(void) {
        _cleanup_sign_key_ sign_key *id = NULL;
        _cleanup_token_key_ token_key *k = NULL;
        _cleanup_free_ char *b64 = NULL, *pem = NULL, *escaped = NULL, *body = NULL, *assertion = NULL, *form = NULL;
        H2Header h[2] = { { "content-type", "application/json" } };
        H2TestFetch f;
        json_t *s, *j;

        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&id), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_get_public_base64url(id, &b64), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_generate(&k), 0);
        CU_ASSERT_EQUAL_FATAL(token_key_get_public_pem(k, &pem), 0);
        s = json_string(pem);
        escaped = json_dumps(s, JSON_ENCODE_ANY);
        json_decref(s);
        CU_ASSERT_FATAL(asprintf(&body, "{\"publicKey\":\"%s\",\"tokenKey\":%s}", b64, escaped) > 0);
        dt_request(&t, &f, "POST", "/dm/rd?ep=" EP, NULL, 0, body, strlen(body));
        CU_ASSERT_EQUAL_FATAL(f.status, 201);
        h2_test_fetch_done(&f);

        h[1] = dt_admin()[0];
        dt_request(&t, &f, "POST", "/admin/devices/" EP "/claim", h, 2, "{}", 2);
        CU_ASSERT_EQUAL_FATAL(f.status, 200);
        h2_test_fetch_done(&f);

        CU_ASSERT_EQUAL_FATAL(token_assertion_new(k, EP, "https://localhost/idm/token", 2 * USEC_PER_MINUTE, 0,
                                                  &assertion),
                              0);
        CU_ASSERT_FATAL(asprintf(&form,
                                 "grant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
                                 "client-assertion-type%%3Ajwt-bearer&client_assertion=%s",
                                 assertion) > 0);
        h[0] = (H2Header) { "content-type", "application/x-www-form-urlencoded" };
        dt_request(&t, &f, "POST", "/idm/token", h, 1, form, strlen(form));
        CU_ASSERT_EQUAL_FATAL(f.status, 200);
        j = dt_json(&f);
        device_token_value = strdup(json_string_value(json_object_get(j, "access_token")));
        json_decref(j);
        h2_test_fetch_done(&f);
        CU_ASSERT_PTR_NOT_NULL_FATAL(device_token_value);

        h[0] = (H2Header) { "content-type", "application/json" };
        dt_request(&t, &f, "POST", "/admin/users", h, 2, "{\"name\":\"alice\",\"password\":\"alice-secret-1\"}",
                   strlen("{\"name\":\"alice\",\"password\":\"alice-secret-1\"}"));
        CU_ASSERT_EQUAL_FATAL(f.status, 201);
        h2_test_fetch_done(&f);
        dt_request(&t, &f, "POST", "/admin/users", h, 2, "{\"name\":\"bob\",\"password\":\"bob-secret-22\"}",
                   strlen("{\"name\":\"bob\",\"password\":\"bob-secret-22\"}"));
        CU_ASSERT_EQUAL_FATAL(f.status, 201);
        h2_test_fetch_done(&f);
}

static int new_users(const char *the_url, const char *name) {
        int r;

        r = users_new(t.event,
                      &(users_options) { .url = the_url, .domain_name = name, .state_dir = agent_dir },
                      &u);
        if (r < 0)
                return r;
        users_set_device_token_source(u, get_device_token, NULL);
        return users_register_commands(u, server);
}

static int setup(void) {
        if (dt_setup(&t, NULL) < 0)
                return -1;
        snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", t.dir);
        snprintf(agent_dir, sizeof(agent_dir), "%s/agent", t.dir);
        snprintf(users_file, sizeof(users_file), "%s/" USERS_FILE_NAME, agent_dir);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", domain_get_port(t.domain));
        if (control_server_new(t.event, sock_path, &server) < 0)
                return -1;
        return new_users(url, "localhost") < 0 ? -1 : 0;
}

static int cleanup(void) {
        u = users_free(u);
        server = control_server_free(server);
        free(device_token_value);
        dt_teardown(&t);
        return 0;
}

/* One request over the control socket, the loop running until the reply
 * line is in. */
static ctl_reply *call(const char *command, const char *args) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        _cleanup_free_ char *line = NULL;
        char buf[16384];
        size_t size = 0;
        ctl_reply *reply = NULL;

        CU_ASSERT_FATAL(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        CU_ASSERT_FATAL(asprintf(&line, "{\"id\":%" PRId64 ",\"command\":\"%s\"%s%s}\n", next_id++, command,
                                 args ? ",\"args\":" : "", args ?: "") > 0);
        CU_ASSERT_EQUAL_FATAL(send(fd, line, strlen(line), MSG_NOSIGNAL), (ssize_t) strlen(line));
        for (unsigned i = 0; i < 3000 && !memchr(buf, '\n', size); i++) {
                ssize_t k;

                (void) sd_event_run(t.event, 10000);
                k = recv(fd, buf + size, sizeof(buf) - 1 - size, MSG_DONTWAIT);
                if (k == 0)
                        break;
                if (k > 0)
                        size += (size_t) k;
        }
        CU_ASSERT_FATAL(size > 0 && buf[size - 1] == '\n');
        CU_ASSERT_EQUAL_FATAL(ctl_reply_parse(buf, size - 1, &reply, NULL), 0);
        return reply;
}

static bool is_error(ctl_reply *r, int code, const char *part) {
        bool ok = r && !ctl_reply_is_ok(r) && ctl_reply_get_error_code(r) == code &&
                  (!part || strstr(ctl_reply_get_error_description(r), part));

        if (!ok)
                fprintf(stderr, "expected %d \"%s\", got %s %d %s\n", code, strna(part),
                        r && ctl_reply_is_ok(r) ? "ok" : "error", r ? ctl_reply_get_error_code(r) : 0,
                        r && !ctl_reply_is_ok(r) ? ctl_reply_get_error_description(r) : "");
        ctl_reply_free(r);
        return ok;
}

static char *file_text(void) {
        char *text = NULL;
        size_t size;

        if (read_full_file(users_file, 1 << 20, &text, &size) < 0)
                return NULL;
        return text;
}

static void test_refusals_before_login(void) {
        /* Not claimed yet, from the agent's view: no token. */
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":\"alice-secret-1\"}"), 503,
                                "no token from the domain"));
        CU_ASSERT_TRUE(access(users_file, F_OK) < 0);
        register_and_claim();

        CU_ASSERT_TRUE(is_error(call("user-login", NULL), 400, "\"user\""));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\"}"), 400, "\"password\""));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":\"\"}"), 400, "\"password\""));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":7}"), 400, "\"password\""));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"Alice\",\"password\":\"x\"}"), 400, "invalid user name"));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"a/b\",\"password\":\"x\"}"), 400, "invalid user name"));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":\"x\",\"admin\":true}"), 400,
                                "unknown argument \"admin\""));
        CU_ASSERT_TRUE(is_error(call("user-logout", "{\"user\":\"alice\",\"password\":\"x\"}"), 400,
                                "unknown argument \"password\""));
        CU_ASSERT_TRUE(is_error(call("user-logout", "{\"user\":\"alice\"}"), 404, "not logged in"));
        CU_ASSERT_TRUE(access(users_file, F_OK) < 0);
}

static void test_login(void) {
        _cleanup_free_ char *text = NULL;
        const char *address = NULL, *token = NULL;
        usec_t expiry = 0;
        ctl_reply *r;
        json_t *user;
        struct stat st;

        r = call("user-login", "{\"user\":\"alice\",\"password\":\"alice-secret-1\"}");
        CU_ASSERT_TRUE_FATAL(ctl_reply_is_ok(r));
        user = json_object_get(ctl_reply_get_result(r), "user");
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(user, "address"))), "user://localhost/alice");
        CU_ASSERT_TRUE(json_is_true(json_object_get(user, "valid")));
        CU_ASSERT_PTR_NULL(json_object_get(user, "token"));
        ctl_reply_free(r);

        r = call("user-login", "{\"user\":\"bob\",\"password\":\"bob-secret-22\"}");
        CU_ASSERT_TRUE(ctl_reply_is_ok(r));
        ctl_reply_free(r);
        CU_ASSERT_EQUAL(users_count(u), 2);

        CU_ASSERT_EQUAL(users_get(u, "alice", &address, &token, &expiry), 0);
        CU_ASSERT_STRING_EQUAL(strna(address), "user://localhost/alice");
        CU_ASSERT_PTR_NOT_NULL(token);
        CU_ASSERT_TRUE(expiry > now(CLOCK_REALTIME));
        CU_ASSERT_EQUAL(users_get(u, "carol", &address, NULL, NULL), -ENOENT);

        /* The token is the domain's, for alice, through this device. */
        {
                _cleanup_token_claims_ token_claims *c = NULL;
                _cleanup_token_keyset_ token_keyset *ks = NULL;
                H2TestFetch f;

                dt_request(&t, &f, "GET", "/idm/jwks", NULL, 0, NULL, 0);
                CU_ASSERT_EQUAL_FATAL(token_keyset_from_jwks((const char *) f.body, f.size, &ks, NULL), 0);
                h2_test_fetch_done(&f);
                CU_ASSERT_EQUAL(token_verify(ks, token,
                                             &(token_verify_params) { .issuer = "localhost", .audience = "localhost",
                                                                      .scope = "user" },
                                             &c, NULL),
                                0);
                CU_ASSERT_STRING_EQUAL(strna(token_claims_get_subject(c)), "user://localhost/alice");
                CU_ASSERT_STRING_EQUAL(strna(token_claims_get_authorized_party(c)), EP);
        }

        CU_ASSERT_EQUAL_FATAL(stat(users_file, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
        text = file_text();
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_PTR_NULL(strstr(text, "secret"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, token));

        r = call("user-list", NULL);
        CU_ASSERT_TRUE_FATAL(ctl_reply_is_ok(r));
        CU_ASSERT_EQUAL(json_array_size(json_object_get(ctl_reply_get_result(r), "users")), 2);
        {
                _cleanup_free_ char *dump = json_dumps(ctl_reply_get_result(r), 0);

                CU_ASSERT_PTR_NULL(strstr(dump, "token"));
        }
        ctl_reply_free(r);
}

/* A refused login stores nothing and keeps the earlier login. */
static void test_wrong_password(void) {
        _cleanup_free_ char *before = file_text(), *after = NULL;

        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":\"wrong-password\"}"), 403,
                                "wrong user name or password"));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"carol\",\"password\":\"wrong-password\"}"), 403,
                                "wrong user name or password"));
        after = file_text();
        CU_ASSERT_STRING_EQUAL(strna(before), strna(after));
        CU_ASSERT_EQUAL(users_count(u), 2);
        CU_ASSERT_EQUAL(users_get(u, "alice", NULL, NULL, NULL), 0);
        CU_ASSERT_EQUAL(users_get(u, "carol", NULL, NULL, NULL), -ENOENT);

        /* The domain counts failures: five in all for carol, then 429. */
        for (unsigned i = 0; i < 4; i++)
                CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"carol\",\"password\":\"wrong-password\"}"), 403,
                                        NULL));
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"carol\",\"password\":\"wrong-password\"}"), 429,
                                "too many failed attempts"));
}

/* The device's token refused by the domain, the domain unreachable: the
 * reason says which. */
static void test_domain_problems(void) {
        char *saved = device_token_value;
        ctl_reply *r;

        device_token_value = (char *) "not.a.token";
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":\"alice-secret-1\"}"), 503,
                                "refused the device's token"));
        device_token_value = saved;
        CU_ASSERT_EQUAL(users_get(u, "alice", NULL, NULL, NULL), 0);

        /* Another users object for a domain nobody listens on; the same
         * file, read at start. */
        u = users_free(u);
        server = control_server_free(server);
        CU_ASSERT_EQUAL_FATAL(control_server_new(t.event, sock_path, &server), 0);
        CU_ASSERT_EQUAL_FATAL(new_users("http://127.0.0.1:1", "localhost"), 0);
        CU_ASSERT_EQUAL(users_count(u), 2);
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":\"alice-secret-1\"}"), 502,
                                "cannot reach the domain"));
        CU_ASSERT_EQUAL(users_get(u, "alice", NULL, NULL, NULL), 0);

        /* No domain configured at all. */
        u = users_free(u);
        server = control_server_free(server);
        CU_ASSERT_EQUAL_FATAL(control_server_new(t.event, sock_path, &server), 0);
        CU_ASSERT_EQUAL_FATAL(new_users(NULL, NULL), 0);
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"alice\",\"password\":\"alice-secret-1\"}"), 503,
                                "no domain configured"));
        r = call("user-list", NULL);
        CU_ASSERT_TRUE(ctl_reply_is_ok(r));
        CU_ASSERT_EQUAL(json_array_size(json_object_get(ctl_reply_get_result(r), "users")), 2);
        ctl_reply_free(r);

        /* Back to the real one. */
        u = users_free(u);
        server = control_server_free(server);
        CU_ASSERT_EQUAL_FATAL(control_server_new(t.event, sock_path, &server), 0);
        CU_ASSERT_EQUAL_FATAL(new_users(url, "localhost"), 0);
}

/* An expired token: listed as such, users_get() says -ESTALE, a new
 * login renews it. A file that is not ours is replaced. */
static void test_expired_and_corrupt(void) {
        json_t *doc;
        ctl_reply *r;
        size_t i;
        json_t *x;

        u = users_free(u);
        server = control_server_free(server);
        doc = json_load_file(users_file, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
        json_array_foreach(json_object_get(doc, "users"), i, x)
                if (streq_ptr(json_string_value(json_object_get(x, "name")), "bob"))
                        json_object_set_new(x, "expires_usec", json_integer(1000000));
        CU_ASSERT_EQUAL_FATAL(json_dump_file(doc, users_file, 0), 0);
        json_decref(doc);

        CU_ASSERT_EQUAL_FATAL(control_server_new(t.event, sock_path, &server), 0);
        CU_ASSERT_EQUAL_FATAL(new_users(url, "localhost"), 0);
        CU_ASSERT_EQUAL(users_get(u, "bob", NULL, NULL, NULL), -ESTALE);
        CU_ASSERT_EQUAL(users_get(u, "alice", NULL, NULL, NULL), 0);
        r = call("user-list", NULL);
        CU_ASSERT_TRUE_FATAL(ctl_reply_is_ok(r));
        json_array_foreach(json_object_get(ctl_reply_get_result(r), "users"), i, x)
                CU_ASSERT_EQUAL(json_is_true(json_object_get(x, "valid")),
                                streq_ptr(json_string_value(json_object_get(x, "name")), "alice"));
        ctl_reply_free(r);
        r = call("user-login", "{\"user\":\"bob\",\"password\":\"bob-secret-22\"}");
        CU_ASSERT_TRUE(ctl_reply_is_ok(r));
        ctl_reply_free(r);
        CU_ASSERT_EQUAL(users_get(u, "bob", NULL, NULL, NULL), 0);
        CU_ASSERT_EQUAL(users_count(u), 2);

        /* Logout: gone from memory and file. */
        r = call("user-logout", "{\"user\":\"bob\"}");
        CU_ASSERT_TRUE(ctl_reply_is_ok(r));
        CU_ASSERT_STRING_EQUAL(strna(json_string_value(json_object_get(json_object_get(ctl_reply_get_result(r), "user"),
                                                                       "name"))),
                               "bob");
        ctl_reply_free(r);
        CU_ASSERT_EQUAL(users_get(u, "bob", NULL, NULL, NULL), -ENOENT);
        {
                _cleanup_free_ char *text = file_text();

                CU_ASSERT_PTR_NULL(strstr(strna(text), "\"bob\""));
                CU_ASSERT_PTR_NOT_NULL(strstr(strna(text), "\"alice\""));
        }

        /* Not ours: logged, started empty, replaced at the next change. */
        u = users_free(u);
        server = control_server_free(server);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(users_file, "{\"version\":2}", 13, 0600), 0);
        CU_ASSERT_EQUAL_FATAL(control_server_new(t.event, sock_path, &server), 0);
        CU_ASSERT_EQUAL_FATAL(new_users(url, "localhost"), 0);
        CU_ASSERT_EQUAL(users_count(u), 0);
        r = call("user-login", "{\"user\":\"alice\",\"password\":\"alice-secret-1\"}");
        CU_ASSERT_TRUE(ctl_reply_is_ok(r));
        ctl_reply_free(r);
        {
                _cleanup_free_ char *text = file_text();

                CU_ASSERT_PTR_NOT_NULL(strstr(strna(text), "\"version\":1"));
        }
}

/* The module freed while a login waits for the domain (one that accepts
 * connections and never answers): no answer, no crash, and the client is
 * closed with the server. */
static void test_free_while_pending(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(in);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
                            mute = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        static const char req[] = "{\"id\":1,\"command\":\"user-login\",\"args\":{\"user\":\"bob\",\"password\":\"bob-secret-22\"}}\n";
        char mute_url[64], c;

        CU_ASSERT_FATAL(fd >= 0 && mute >= 0);
        CU_ASSERT_EQUAL_FATAL(bind(mute, (struct sockaddr *) &in, sizeof(in)), 0);
        CU_ASSERT_EQUAL_FATAL(listen(mute, 4), 0);
        CU_ASSERT_EQUAL_FATAL(getsockname(mute, (struct sockaddr *) &in, &len), 0);
        snprintf(mute_url, sizeof(mute_url), "http://127.0.0.1:%u", (unsigned) ntohs(in.sin_port));
        u = users_free(u);
        server = control_server_free(server);
        CU_ASSERT_EQUAL_FATAL(control_server_new(t.event, sock_path, &server), 0);
        CU_ASSERT_EQUAL_FATAL(new_users(mute_url, "localhost"), 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        CU_ASSERT_EQUAL_FATAL(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t) strlen(req));
        for (unsigned i = 0; i < 50; i++)
                (void) sd_event_run(t.event, 10000);
        /* Still waiting: no reply yet. */
        CU_ASSERT_EQUAL(recv(fd, &c, 1, MSG_DONTWAIT), -1);
        CU_ASSERT_EQUAL(control_server_get_n_clients(server), 1);
        /* A second login of bob meanwhile; alice is another matter. */
        CU_ASSERT_TRUE(is_error(call("user-login", "{\"user\":\"bob\",\"password\":\"bob-secret-22\"}"), 409,
                                "already under way"));

        u = users_free(u);
        server = control_server_free(server);
        CU_ASSERT_EQUAL(recv(fd, &c, 1, 0), 0);
        CU_ASSERT_EQUAL(users_count(u), 0);

        CU_ASSERT_EQUAL_FATAL(control_server_new(t.event, sock_path, &server), 0);
        CU_ASSERT_EQUAL_FATAL(new_users(url, "localhost"), 0);
}

static CU_TestInfo tests[] = {
        { "refusals before a login", test_refusals_before_login },
        { "login", test_login },
        { "wrong password", test_wrong_password },
        { "domain problems", test_domain_problems },
        { "expired and corrupt", test_expired_and_corrupt },
        { "freed while pending", test_free_while_pending },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("users", tests, setup, cleanup)
