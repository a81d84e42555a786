/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deferred replies of the control server (control_request_defer()): a
 * real socket in a temporary directory, the server's sd-event loop, a raw
 * client. The reply comes when the handler's owner answers, after replies
 * to later requests; a client that stopped sending still gets it; one that
 * went away does not, and nothing breaks. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "control.h"
#include "ctlproto.h"
#include "log.h"
#include "tests.h"

/* Hang guard for waiting on the loop; never a speed assertion. */
#define WAIT_USEC (10ULL * 1000000ULL)

static char tmpdir[] = "/tmp/test-control-deferred-XXXXXX";
static char sock_path[100];
static sd_event *event;
static control_server *server;
static control_deferred *pending[4];
static size_t n_pending;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static int h_later(control_request *req, json_t **ret_result, void *userdata) {
        int r;

        if (n_pending >= ELEMENTSOF(pending))
                return control_request_set_error(req, 503, "too many");
        r = control_request_defer(req, &pending[n_pending]);
        if (r < 0)
                return r;
        /* A second defer of the same request is refused. */
        if (control_request_defer(req, &(control_deferred *) { NULL }) != -EINVAL)
                return -EIO;
        n_pending++;
        /* A result left behind by a deferring handler is dropped. */
        *ret_result = json_object();
        return 0;
}

static int h_now(control_request *req, json_t **ret_result, void *userdata) {
        *ret_result = json_pack("{s:s}", "when", "now");
        return 0;
}

static control_deferred *take(void) {
        control_deferred *d;

        CU_ASSERT_FATAL(n_pending > 0);
        d = pending[0];
        memmove(pending, pending + 1, (--n_pending) * sizeof(pending[0]));
        return d;
}

static int setup(void) {
        log_set_max_level(LOG_WARNING);
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", tmpdir);
        if (sd_event_new(&event) < 0 || control_server_new(event, sock_path, &server) < 0)
                return -1;
        if (control_server_add_command(server, "later", h_later, NULL) < 0 ||
            control_server_add_command(server, "now", h_now, NULL) < 0)
                return -1;
        return 0;
}

static int teardown(void) {
        while (n_pending > 0)
                control_deferred_free(take());
        control_server_free(server);
        sd_event_unref(event);
        (void) rmdir(tmpdir);
        return 0;
}

static int client_connect(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static void client_send(int fd, const char *s) {
        CU_ASSERT_EQUAL(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t) strlen(s));
}

static void run_until_pending(size_t n) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (n_pending < n && now_usec() < deadline)
                (void) sd_event_run(event, 10000);
        CU_ASSERT_EQUAL_FATAL(n_pending, n);
}

/* One reply line, running the loop meanwhile; NULL on EOF or timeout.
 * *ret_eof: the server hung up after what was read. */
static ctl_reply *client_reply(int fd, bool *ret_eof) {
        char buf[4096];
        size_t size = 0;
        uint64_t deadline = now_usec() + WAIT_USEC;
        ctl_reply *reply = NULL;
        bool eof = false;

        while (!eof && now_usec() < deadline && !memchr(buf, '\n', size)) {
                ssize_t k;

                (void) sd_event_run(event, 10000);
                /* One byte at a time, so that nothing after the line is consumed. */
                while (size < sizeof(buf) - 1 && !memchr(buf, '\n', size)) {
                        k = recv(fd, buf + size, 1, MSG_DONTWAIT);
                        if (k == 0)
                                eof = true;
                        if (k <= 0)
                                break;
                        size++;
                }
        }
        if (ret_eof)
                *ret_eof = eof;
        if (size == 0 || buf[size - 1] != '\n')
                return NULL;
        if (ctl_reply_parse(buf, size - 1, &reply, NULL) < 0)
                return NULL;
        return reply;
}

static bool wait_for_clients(unsigned n) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (control_server_get_n_clients(server) != n && now_usec() < deadline)
                (void) sd_event_run(event, 10000);
        return control_server_get_n_clients(server) == n;
}

static bool wait_for_hangup(int fd) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (now_usec() < deadline) {
                struct pollfd p = { .fd = fd, .events = POLLRDHUP };

                (void) sd_event_run(event, 10000);
                if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)))
                        return true;
        }
        return false;
}

/* The deferred reply comes after the reply to a later request, with its
 * own id; an error reply the same way. */
static void test_reply_later(void) {
        _cleanup_close_ int fd = client_connect();
        ctl_reply *r;

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":1,\"command\":\"later\"}\n{\"id\":2,\"command\":\"now\"}\n");
        run_until_pending(1);
        r = client_reply(fd, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(ctl_reply_get_id(r), 2);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ctl_reply_get_result(r), "when")), "now");
        ctl_reply_free(r);

        CU_ASSERT_EQUAL(control_deferred_reply(take(), json_pack("{s:s}", "when", "later")), 0);
        r = client_reply(fd, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(ctl_reply_get_id(r), 1);
        CU_ASSERT_TRUE(ctl_reply_is_ok(r));
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ctl_reply_get_result(r), "when")), "later");
        ctl_reply_free(r);

        client_send(fd, "{\"id\":3,\"command\":\"later\"}\n");
        run_until_pending(1);
        CU_ASSERT_EQUAL(control_deferred_fail(take(), 403, "the domain said no"), 0);
        r = client_reply(fd, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(ctl_reply_get_id(r), 3);
        CU_ASSERT_FALSE(ctl_reply_is_ok(r));
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(r), 403);
        CU_ASSERT_STRING_EQUAL(ctl_reply_get_error_description(r), "the domain said no");
        ctl_reply_free(r);

        /* A result that is not an object becomes a 500, as for handlers. */
        client_send(fd, "{\"id\":4,\"command\":\"later\"}\n");
        run_until_pending(1);
        CU_ASSERT_EQUAL(control_deferred_reply(take(), json_integer(5)), 0);
        r = client_reply(fd, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(ctl_reply_get_id(r), 4);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(r), 500);
        ctl_reply_free(r);
}

/* A client that stopped sending (shutdown(SHUT_WR)) still gets the
 * deferred reply; then the server closes. */
static void test_half_closed(void) {
        _cleanup_close_ int fd = client_connect();
        ctl_reply *r;
        bool eof = false;

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":7,\"command\":\"later\"}\n");
        CU_ASSERT_EQUAL(shutdown(fd, SHUT_WR), 0);
        run_until_pending(1);
        /* Some turns of the loop: the server must not give up on it. */
        for (unsigned i = 0; i < 10; i++)
                (void) sd_event_run(event, 10000);
        CU_ASSERT_EQUAL(control_server_get_n_clients(server), 1);

        CU_ASSERT_EQUAL(control_deferred_reply(take(), NULL), 0);
        r = client_reply(fd, &eof);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(ctl_reply_get_id(r), 7);
        CU_ASSERT_TRUE(ctl_reply_is_ok(r));
        ctl_reply_free(r);
        CU_ASSERT_TRUE(wait_for_hangup(fd));
        CU_ASSERT_TRUE(wait_for_clients(0));
}

/* Given up without an answer: a half-closed client is then closed. */
static void test_given_up(void) {
        _cleanup_close_ int fd = client_connect();

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":8,\"command\":\"later\"}\n");
        CU_ASSERT_EQUAL(shutdown(fd, SHUT_WR), 0);
        run_until_pending(1);
        CU_ASSERT_PTR_NULL(control_deferred_free(take()));
        CU_ASSERT_TRUE(wait_for_hangup(fd));
        CU_ASSERT_TRUE(wait_for_clients(0));
}

/* The client went away: the answer is dropped. */
static void test_client_gone(void) {
        int fd = client_connect();

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":9,\"command\":\"later\"}\n{\"id\":10,\"command\":\"later\"}\n");
        run_until_pending(2);
        close(fd);
        CU_ASSERT_TRUE(wait_for_clients(0));
        CU_ASSERT_EQUAL(control_deferred_reply(take(), json_object()), 0);
        CU_ASSERT_EQUAL(control_deferred_fail(take(), 500, "late"), 0);

        /* The server serves the next client as before. */
        fd = client_connect();
        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":11,\"command\":\"now\"}\n");
        {
                ctl_reply *r = client_reply(fd, NULL);

                CU_ASSERT_PTR_NOT_NULL(r);
                CU_ASSERT_EQUAL(ctl_reply_get_id(r), 11);
                ctl_reply_free(r);
        }
        close(fd);
        CU_ASSERT_TRUE(wait_for_clients(0));
}

/* The server freed while an answer is due (agent shutdown): the owner can
 * still answer or free it. */
static void test_server_gone(void) {
        char path[96];
        control_server *s = NULL;
        int fd;

        snprintf(path, sizeof(path), "%s/other.sock", tmpdir);
        CU_ASSERT_EQUAL_FATAL(control_server_new(event, path, &s), 0);
        CU_ASSERT_EQUAL_FATAL(control_server_add_command(s, "later", h_later, NULL), 0);
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                CU_ASSERT_FATAL(fd >= 0);
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
                CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        }
        client_send(fd, "{\"id\":1,\"command\":\"later\"}\n{\"id\":2,\"command\":\"later\"}\n");
        run_until_pending(2);
        control_server_free(s);
        CU_ASSERT_EQUAL(control_deferred_reply(take(), json_object()), 0);
        CU_ASSERT_PTR_NULL(control_deferred_free(take()));
        close(fd);
}

static CU_TestInfo tests[] = {
        { "reply later", test_reply_later },
        { "half-closed client", test_half_closed },
        { "given up", test_given_up },
        { "client gone", test_client_gone },
        { "server gone", test_server_gone },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("control-deferred", tests, setup, teardown)
