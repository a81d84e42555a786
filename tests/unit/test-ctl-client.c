/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rethinkctl's blocking client against the real control server (in a child
 * process, on its own event loop) and against raw sockets that misbehave. */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "agent-client.h"
#include "control.h"
#include "log.h"
#include "tests.h"

#define TIMEOUT_USEC (10ULL * 1000000ULL)

static char tmpdir[] = "/tmp/test-ctl-client-XXXXXX";
static char server_path[100], raw_path[100];
static pid_t server_pid;

static int h_hello(control_request *req, json_t **ret_result, void *userdata) {
        *ret_result = json_pack("{s:s,s:O}", "hello", "world", "args", control_request_get_args(req));
        return 0;
}

static int h_denied(control_request *req, json_t **ret_result, void *userdata) {
        return control_request_set_error(req, 403, "Not for uid %u", (unsigned) control_request_get_peer_uid(req));
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void run_server(void) {
        sd_event *e = NULL;
        control_server *s = NULL;
        sigset_t mask;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || sd_event_new(&e) < 0 ||
            sd_event_add_signal(e, NULL, SIGTERM, on_term, NULL) < 0 ||
            control_server_new(e, server_path, &s) < 0 ||
            control_server_add_command(s, "hello", h_hello, NULL) < 0 ||
            control_server_add_command(s, "denied", h_denied, NULL) < 0)
                _exit(1);
        (void) sd_event_loop(e);
        control_server_free(s);
        sd_event_unref(e);
        _exit(0);
}

static int setup(void) {
        log_set_max_level(LOG_WARNING);
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(server_path, sizeof(server_path), "%s/agent.sock", tmpdir);
        snprintf(raw_path, sizeof(raw_path), "%s/raw.sock", tmpdir);

        server_pid = fork();
        if (server_pid < 0)
                return -1;
        if (server_pid == 0)
                run_server();

        /* Hang guard while the child binds. */
        for (int i = 0; i < 1000 && access(server_path, F_OK) < 0; i++)
                usleep(10000);
        return access(server_path, F_OK);
}

static int teardown(void) {
        int status;

        kill(server_pid, SIGTERM);
        waitpid(server_pid, &status, 0);
        /* The server removed its socket on the way out. */
        if (access(server_path, F_OK) == 0)
                return -1;
        unlink(raw_path);
        rmdir(tmpdir);
        return 0;
}

/* A listening socket nobody serves. */
static int raw_listen(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        unlink(raw_path);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", raw_path);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
                safe_close(fd);
                return -1;
        }
        return fd;
}

static void test_call_ok(void) {
        _cleanup_agent_client_ agent_client *c = NULL;
        _cleanup_ctl_reply_ ctl_reply *a = NULL, *b = NULL;
        json_t *args = json_pack("{s:i}", "n", 3);

        CU_ASSERT_EQUAL_FATAL(agent_client_connect(server_path, TIMEOUT_USEC, &c), 0);
        CU_ASSERT_EQUAL_FATAL(agent_client_call(c, "hello", args, TIMEOUT_USEC, &a), 0);
        json_decref(args);
        CU_ASSERT_TRUE(ctl_reply_is_ok(a));
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ctl_reply_get_result(a), "hello")), "world");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(ctl_reply_get_result(a), "args"), "n")), 3);

        /* A second call on the same connection gets its own id. */
        CU_ASSERT_EQUAL_FATAL(agent_client_call(c, "hello", NULL, TIMEOUT_USEC, &b), 0);
        CU_ASSERT_TRUE(ctl_reply_is_ok(b));
        CU_ASSERT_NOT_EQUAL(ctl_reply_get_id(a), ctl_reply_get_id(b));
}

static void test_error_replies(void) {
        _cleanup_agent_client_ agent_client *c = NULL;
        _cleanup_ctl_reply_ ctl_reply *a = NULL, *b = NULL;
        char want[64];

        CU_ASSERT_EQUAL_FATAL(agent_client_connect(server_path, TIMEOUT_USEC, &c), 0);
        CU_ASSERT_EQUAL_FATAL(agent_client_call(c, "nope", NULL, TIMEOUT_USEC, &a), 0);
        CU_ASSERT_FALSE(ctl_reply_is_ok(a));
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(a), 404);

        CU_ASSERT_EQUAL_FATAL(agent_client_call(c, "denied", NULL, TIMEOUT_USEC, &b), 0);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(b), 403);
        snprintf(want, sizeof(want), "Not for uid %u", (unsigned) getuid());
        CU_ASSERT_STRING_EQUAL(ctl_reply_get_error_description(b), want);
}

static void test_connect_errors(void) {
        agent_client *c = NULL;
        char missing[128];
        int fd;

        snprintf(missing, sizeof(missing), "%s/missing.sock", tmpdir);
        CU_ASSERT_EQUAL(agent_client_connect(missing, TIMEOUT_USEC, &c), -ENOENT);

        /* Bound but not listening: what a dead agent leaves behind. */
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                unlink(raw_path);
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", raw_path);
                CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        }
        CU_ASSERT_EQUAL(agent_client_connect(raw_path, TIMEOUT_USEC, &c), -ECONNREFUSED);
        CU_ASSERT_PTR_NULL(c);
        close(fd);
}

static void test_timeout(void) {
        _cleanup_agent_client_ agent_client *c = NULL;
        _cleanup_close_ int l = raw_listen();
        ctl_reply *reply = NULL;

        CU_ASSERT_FATAL(l >= 0);
        /* The backlog takes the connection; nobody ever answers. */
        CU_ASSERT_EQUAL_FATAL(agent_client_connect(raw_path, TIMEOUT_USEC, &c), 0);
        CU_ASSERT_EQUAL(agent_client_call(c, "status", NULL, 200000, &reply), -ETIMEDOUT);
        CU_ASSERT_PTR_NULL(reply);
}

/* Connects a client to a raw server and returns the server's end. */
static int raw_pair(agent_client **ret, int *ret_listener) {
        int l = raw_listen(), fd;

        if (l < 0 || agent_client_connect(raw_path, TIMEOUT_USEC, ret) < 0)
                return -1;
        fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        *ret_listener = l;
        return fd;
}

static void test_hangup_and_bad_replies(void) {
        static const char *const bad[] = {
                "garbage\n",
                "{\"id\":999,\"ok\":true,\"result\":{}}\n", /* not our id */
                "{\"id\":1,\"ok\":true}\n",
        };
        ctl_reply *reply = NULL;

        {
                _cleanup_agent_client_ agent_client *c = NULL;
                _cleanup_close_ int l = -1;
                int fd = raw_pair(&c, &l);

                CU_ASSERT_FATAL(fd >= 0);
                /* A partial line, then the hang-up. */
                CU_ASSERT_EQUAL(write(fd, "{\"id\":1,", 8), 8);
                close(fd);
                CU_ASSERT_EQUAL(agent_client_call(c, "status", NULL, TIMEOUT_USEC, &reply), -ECONNRESET);
        }

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_agent_client_ agent_client *c = NULL;
                _cleanup_close_ int l = -1, fd = raw_pair(&c, &l);

                CU_ASSERT_FATAL(fd >= 0);
                CU_ASSERT_EQUAL((size_t) write(fd, bad[i], strlen(bad[i])), strlen(bad[i]));
                CU_ASSERT_EQUAL(agent_client_call(c, "status", NULL, TIMEOUT_USEC, &reply), -EBADMSG);
        }

        /* A reply with "id": null is the server refusing us: handed back. */
        {
                static const char busy[] = "{\"id\":null,\"ok\":false,\"error\":{\"code\":503,\"description\":\"Too many clients\"}}\n";
                _cleanup_agent_client_ agent_client *c = NULL;
                _cleanup_close_ int l = -1, fd = raw_pair(&c, &l);

                CU_ASSERT_FATAL(fd >= 0);
                CU_ASSERT_EQUAL(write(fd, busy, strlen(busy)), (ssize_t) strlen(busy));
                CU_ASSERT_EQUAL_FATAL(agent_client_call(c, "status", NULL, TIMEOUT_USEC, &reply), 0);
                CU_ASSERT_EQUAL(ctl_reply_get_error_code(reply), 503);
                ctl_reply_free(reply);
        }
        CU_ASSERT_EQUAL(agent_client_call(NULL, "status", NULL, 0, &reply), -EINVAL);
}

static CU_TestInfo tests[] = {
        { "call", test_call_ok },
        { "error replies", test_error_replies },
        { "connect errors", test_connect_errors },
        { "timeout", test_timeout },
        { "hang-up and bad replies", test_hangup_and_bad_replies },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("ctl-client", tests, setup, teardown)
