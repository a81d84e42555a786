/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control server on a real socket in a temporary directory, driven by
 * its sd-event loop, talked to by a raw client. */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "control.h"
#include "ctlproto.h"
#include "log.h"
#include "tests.h"

/* Hang guard for waiting on the loop; never a speed assertion. */
#define WAIT_USEC (10ULL * 1000000ULL)

static char tmpdir[] = "/tmp/test-control-XXXXXX";
static char sock_path[100];
static sd_event *event;
static control_server *server;
static unsigned handler_calls;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static int h_echo(control_request *req, json_t **ret_result, void *userdata) {
        handler_calls++;
        *ret_result = json_deep_copy(control_request_get_args(req));
        return 0;
}

static int h_whoami(control_request *req, json_t **ret_result, void *userdata) {
        *ret_result = json_pack("{s:I,s:I,s:I,s:s}", "uid", (json_int_t) control_request_get_peer_uid(req),
                                "gid", (json_int_t) control_request_get_peer_gid(req), "pid",
                                (json_int_t) control_request_get_peer_pid(req), "command",
                                control_request_get_command(req));
        return 0;
}

static int h_eperm(control_request *req, json_t **ret_result, void *userdata) {
        /* A result left behind on failure must not leak or be sent. */
        *ret_result = json_object();
        return -EPERM;
}

static int h_custom(control_request *req, json_t **ret_result, void *userdata) {
        return control_request_set_error(req, 409, "Component %s is busy", "x");
}

static int h_big(control_request *req, json_t **ret_result, void *userdata) {
        json_int_t n = json_integer_value(json_object_get(control_request_get_args(req), "bytes"));
        char *s = malloc(n + 1);

        if (!s)
                return -ENOMEM;
        memset(s, 'b', n);
        s[n] = '\0';
        *ret_result = json_pack("{s:s%}", "data", s, (size_t) n);
        free(s);
        return 0;
}

static int h_not_object(control_request *req, json_t **ret_result, void *userdata) {
        *ret_result = json_integer(3);
        return 0;
}

static int setup(void) {
        int r;

        log_set_max_level(LOG_WARNING);
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(sock_path, sizeof(sock_path), "%s/run/agent.sock", tmpdir);
        if (sd_event_new(&event) < 0)
                return -1;
        r = control_server_new(event, sock_path, &server);
        if (r < 0)
                return -1;
        if (control_server_add_command(server, "echo", h_echo, NULL) < 0 ||
            control_server_add_command(server, "whoami", h_whoami, NULL) < 0 ||
            control_server_add_command(server, "eperm", h_eperm, NULL) < 0 ||
            control_server_add_command(server, "custom", h_custom, NULL) < 0 ||
            control_server_add_command(server, "big", h_big, NULL) < 0 ||
            control_server_add_command(server, "not-object", h_not_object, NULL) < 0)
                return -1;
        return 0;
}

static int teardown(void) {
        char d[300];

        control_server_free(server);
        sd_event_unref(event);
        snprintf(d, sizeof(d), "%s/run", tmpdir);
        (void) rmdir(d);
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
        size_t n = strlen(s), done = 0;

        /* The server only drains the socket while its loop runs. */
        while (done < n) {
                ssize_t k = send(fd, s + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0 && errno == EAGAIN) {
                        (void) sd_event_run(event, 10000);
                        continue;
                }
                if (k < 0)
                        break;
                done += (size_t) k;
        }
        CU_ASSERT_EQUAL(done, n);
}

/* Runs the server until the client has n complete lines or the server hung
 * up; returns what arrived (NUL-terminated) and sets *ret_eof. */
static char *client_recv_lines(int fd, unsigned n, bool *ret_eof) {
        size_t size = 0, alloc = 4096;
        char *buf = malloc(alloc);
        uint64_t deadline = now_usec() + WAIT_USEC;
        unsigned lines = 0;
        bool eof = false;

        while (buf && lines < n && !eof && now_usec() < deadline) {
                ssize_t k;

                (void) sd_event_run(event, 10000);
                for (;;) {
                        if (alloc - size < 4096) {
                                alloc *= 2;
                                buf = realloc(buf, alloc);
                                if (!buf)
                                        return NULL;
                        }
                        k = recv(fd, buf + size, alloc - size - 1, MSG_DONTWAIT);
                        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                                eof = true;
                        if (k <= 0)
                                break;
                        for (ssize_t i = 0; i < k; i++)
                                if (buf[size + i] == '\n')
                                        lines++;
                        size += (size_t) k;
                }
        }
        if (buf)
                buf[size] = '\0';
        if (ret_eof)
                *ret_eof = eof;
        return buf;
}

/* Receives one reply and parses it. */
static ctl_reply *client_reply(int fd) {
        _cleanup_free_ char *s = client_recv_lines(fd, 1, NULL);
        ctl_reply *reply = NULL;
        char *nl;

        if (!s || !(nl = strchr(s, '\n')))
                return NULL;
        if (ctl_reply_parse(s, nl - s, &reply, NULL) < 0)
                return NULL;
        return reply;
}

static bool wait_for_clients(unsigned n) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (control_server_get_n_clients(server) != n && now_usec() < deadline)
                (void) sd_event_run(event, 10000);
        return control_server_get_n_clients(server) == n;
}

/* Runs the server until it hangs up on fd. */
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

static void test_socket_mode(void) {
        struct stat st;

        CU_ASSERT_EQUAL_FATAL(stat(sock_path, &st), 0);
        CU_ASSERT_TRUE(S_ISSOCK(st.st_mode));
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0660);
        CU_ASSERT_STRING_EQUAL(control_server_get_path(server), sock_path);
}

static void test_good_request(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        json_t *result;

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":17,\"command\":\"echo\",\"args\":{\"hello\":\"world\",\"n\":[1,2]}}\n");
        reply = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        CU_ASSERT_TRUE(ctl_reply_is_ok(reply));
        CU_ASSERT_EQUAL(ctl_reply_get_id(reply), 17);
        result = ctl_reply_get_result(reply);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(result, "hello")), "world");
        CU_ASSERT_EQUAL(json_array_size(json_object_get(result, "n")), 2);
}

static void test_pipelined(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_free_ char *s = NULL;
        char *line, *save = NULL;
        int64_t want = 1;
        bool eof;

        CU_ASSERT_FATAL(fd >= 0);
        /* Three requests in one write, the third split over two writes. */
        client_send(fd, "{\"id\":1,\"command\":\"echo\"}\n{\"id\":2,\"command\":\"nope\"}\n{\"id\":3,\"com");
        (void) sd_event_run(event, 10000);
        client_send(fd, "mand\":\"whoami\"}\n");
        s = client_recv_lines(fd, 3, &eof);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_FALSE(eof);
        for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                _cleanup_ctl_reply_ ctl_reply *r = NULL;

                CU_ASSERT_EQUAL_FATAL(ctl_reply_parse(line, strlen(line), &r, NULL), 0);
                /* In order. */
                CU_ASSERT_EQUAL(ctl_reply_get_id(r), want);
                CU_ASSERT_EQUAL(ctl_reply_is_ok(r), want != 2);
                want++;
        }
        CU_ASSERT_EQUAL(want, 4);
}

static void test_unknown_command(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":5,\"command\":\"frobnicate\"}\n");
        reply = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        CU_ASSERT_FALSE(ctl_reply_is_ok(reply));
        CU_ASSERT_EQUAL(ctl_reply_get_id(reply), 5);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(reply), 404);
        CU_ASSERT_PTR_NOT_NULL(strstr(ctl_reply_get_error_description(reply), "frobnicate"));
}

static void test_malformed_json(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_ctl_reply_ ctl_reply *reply = NULL, *after = NULL, *schema = NULL;
        unsigned calls = handler_calls;

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":6,\"command\":\"echo\",}\n");
        reply = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(reply), 400);
        CU_ASSERT_EQUAL(ctl_reply_get_id(reply), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(ctl_reply_get_error_description(reply), "Invalid JSON"));

        /* Valid JSON, wrong schema: the id is kept. */
        client_send(fd, "{\"id\":8,\"command\":\"echo\",\"args\":[1]}\n");
        schema = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(schema);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(schema), 400);
        CU_ASSERT_EQUAL(ctl_reply_get_id(schema), 8);
        CU_ASSERT_PTR_NOT_NULL(strstr(ctl_reply_get_error_description(schema), "\"args\""));
        /* Nothing was half-applied. */
        CU_ASSERT_EQUAL(handler_calls, calls);

        /* The connection is still good. */
        client_send(fd, "{\"id\":7,\"command\":\"echo\"}\n");
        after = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(after);
        CU_ASSERT_TRUE(ctl_reply_is_ok(after));
        CU_ASSERT_EQUAL(ctl_reply_get_id(after), 7);
}

static void test_overlong_line(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_free_ char *big = malloc(CTLPROTO_LINE_MAX + 100);
        _cleanup_free_ char *s = NULL;
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        unsigned calls = handler_calls;
        char *nl;
        bool eof = false;

        CU_ASSERT_FATAL(fd >= 0 && big);
        strcpy(big, "{\"id\":9,\"command\":\"echo\",\"args\":{\"pad\":\"");
        memset(big + strlen(big), 'x', CTLPROTO_LINE_MAX);
        strcpy(big + CTLPROTO_LINE_MAX, "\"}}\n{\"id\":10,\"command\":\"echo\"}\n");
        client_send(fd, big);
        s = client_recv_lines(fd, 2, &eof);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        nl = strchr(s, '\n');
        CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
        CU_ASSERT_EQUAL_FATAL(ctl_reply_parse(s, nl - s, &reply, NULL), 0);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(reply), 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(ctl_reply_get_error_description(reply), "too long"));
        /* Then the server hangs up: exactly one reply, no request after it
         * answered, no handler run. */
        CU_ASSERT_TRUE(eof);
        CU_ASSERT_STRING_EQUAL(nl + 1, "");
        CU_ASSERT_EQUAL(handler_calls, calls);
        CU_ASSERT_TRUE(wait_for_clients(0));
}

static void test_disconnect_mid_request(void) {
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        unsigned calls = handler_calls;
        int fd = client_connect();

        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_TRUE(wait_for_clients(1));
        client_send(fd, "{\"id\":11,\"command\":\"echo\",\"args\":{\"a\":");
        (void) sd_event_run(event, 10000);
        close(fd);
        CU_ASSERT_TRUE(wait_for_clients(0));
        CU_ASSERT_EQUAL(handler_calls, calls);

        /* A complete request followed by a hang-up is still answered (the
         * reply just has nowhere to go) and does not upset the server. */
        fd = client_connect();
        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":12,\"command\":\"echo\"}\n");
        shutdown(fd, SHUT_WR);
        reply = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL(reply);
        close(fd);
        CU_ASSERT_TRUE(wait_for_clients(0));
        CU_ASSERT_EQUAL(handler_calls, calls + 1);
}

static void test_peer_credentials(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        json_t *result;

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":13,\"command\":\"whoami\"}\n");
        reply = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        result = ctl_reply_get_result(reply);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(result, "uid")), getuid());
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(result, "gid")), getgid());
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(result, "pid")), getpid());
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(result, "command")), "whoami");
}

static void test_handler_errors(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_ctl_reply_ ctl_reply *a = NULL, *b = NULL, *c = NULL;

        CU_ASSERT_FATAL(fd >= 0);
        client_send(fd, "{\"id\":14,\"command\":\"eperm\"}\n");
        a = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(a), 403);
        CU_ASSERT_STRING_EQUAL(ctl_reply_get_error_description(a), strerror(EPERM));

        client_send(fd, "{\"id\":15,\"command\":\"custom\"}\n");
        b = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(b), 409);
        CU_ASSERT_STRING_EQUAL(ctl_reply_get_error_description(b), "Component x is busy");

        client_send(fd, "{\"id\":16,\"command\":\"not-object\"}\n");
        c = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(c), 500);
}

static void test_registration(void) {
        CU_ASSERT_EQUAL(control_server_add_command(server, "echo", h_echo, NULL), -EEXIST);
        CU_ASSERT_EQUAL(control_server_add_command(server, "Bad name", h_echo, NULL), -EINVAL);
        CU_ASSERT_EQUAL(control_server_add_command(server, "x", NULL, NULL), -EINVAL);
}

static void test_reply_too_large(void) {
        _cleanup_close_ int fd = client_connect();
        _cleanup_ctl_reply_ ctl_reply *small = NULL, *large = NULL;

        CU_ASSERT_FATAL(fd >= 0);
        control_server_set_limits(server, 0, 8192, 0);
        client_send(fd, "{\"id\":18,\"command\":\"big\",\"args\":{\"bytes\":1000}}\n");
        small = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(small);
        CU_ASSERT_TRUE(ctl_reply_is_ok(small));
        client_send(fd, "{\"id\":19,\"command\":\"big\",\"args\":{\"bytes\":10000}}\n");
        large = client_reply(fd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(large);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(large), 500);
        CU_ASSERT_EQUAL(ctl_reply_get_id(large), 19);
        control_server_set_limits(server, 0, CONTROL_OUTPUT_MAX, 0);
}

/* A client that sends requests but never reads must not block the server
 * or make it buffer without bound; it is dropped when the idle timer
 * fires, while others are served all along. */
static void test_abusive_client(void) {
        _cleanup_close_ int good = -1;
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;
        static const char req[] = "{\"id\":20,\"command\":\"big\",\"args\":{\"bytes\":16000}}\n";
        size_t sent = 0;
        int bad, sndbuf = 4096;

        control_server_set_limits(server, 0, 0, 1000 * 1000ULL);
        bad = client_connect();
        CU_ASSERT_FATAL(bad >= 0);
        (void) setsockopt(bad, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        (void) setsockopt(bad, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));

        /* Send until the server stops taking requests (or it evidently
         * never will). */
        for (unsigned idle = 0; idle < 50 && sent < 32U * 1024U * 1024U;) {
                ssize_t k = send(bad, req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k > 0) {
                        sent += (size_t) k;
                        idle = 0;
                } else
                        idle++;
                (void) sd_event_run(event, 1000);
                if (k < 0 && errno != EAGAIN)
                        break;
        }
        /* It was throttled: each 50-byte request asks for 16 kB, and the
         * server stopped reading long before answering 32 MB worth. */
        CU_ASSERT(sent > 0);
        CU_ASSERT(sent < 32U * 1024U * 1024U);
        CU_ASSERT_TRUE(wait_for_clients(1));

        /* Meanwhile others are served. */
        good = client_connect();
        CU_ASSERT_FATAL(good >= 0);
        client_send(good, "{\"id\":21,\"command\":\"echo\"}\n");
        reply = client_reply(good);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        CU_ASSERT_EQUAL(ctl_reply_get_id(reply), 21);

        /* The bad one is hung up on when its idle timer fires. Polling for
         * the hang-up, unlike reading, gives the server no progress. */
        CU_ASSERT_TRUE(wait_for_hangup(bad));
        close(bad);

        /* And the server goes on serving. */
        safe_close(good);
        good = client_connect();
        CU_ASSERT_FATAL(good >= 0);
        reply = ctl_reply_free(reply);
        client_send(good, "{\"id\":22,\"command\":\"echo\"}\n");
        reply = client_reply(good);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        CU_ASSERT_EQUAL(ctl_reply_get_id(reply), 22);
        control_server_set_limits(server, 0, 0, CONTROL_IDLE_TIMEOUT_USEC);
}

static void test_too_many_clients(void) {
        _cleanup_close_ int a = -1, b = -1, c = -1;
        _cleanup_ctl_reply_ ctl_reply *reply = NULL;

        CU_ASSERT_TRUE(wait_for_clients(0));
        control_server_set_limits(server, 2, 0, 0);
        a = client_connect();
        b = client_connect();
        CU_ASSERT_TRUE(wait_for_clients(2));
        c = client_connect();
        CU_ASSERT_FATAL(c >= 0);
        reply = client_reply(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(reply), 503);
        CU_ASSERT_EQUAL(control_server_get_n_clients(server), 2);
        control_server_set_limits(server, CONTROL_CLIENTS_MAX, 0, 0);
}

static void test_stale_and_live_socket(void) {
        _cleanup_free_ char *path = NULL, *file = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        control_server *s = NULL, *s2 = NULL;
        struct stat st;
        int fd;

        CU_ASSERT_FATAL(asprintf(&path, "%s/stale.sock", tmpdir) > 0);
        CU_ASSERT_FATAL(asprintf(&file, "%s/file", tmpdir) > 0);

        /* A socket file left by a dead process. */
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(fd);
        CU_ASSERT_EQUAL_FATAL(control_server_new(event, path, &s), 0);

        /* A live one is not taken over, and is left in place. */
        CU_ASSERT_EQUAL(control_server_new(event, path, &s2), -EADDRINUSE);
        CU_ASSERT_PTR_NULL(s2);
        CU_ASSERT_EQUAL(stat(path, &st), 0);

        /* Freeing removes the file. */
        control_server_free(s);
        CU_ASSERT_EQUAL(stat(path, &st), -1);
        CU_ASSERT_EQUAL(errno, ENOENT);

        /* Something that is not a socket is never removed. */
        fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        close(fd);
        CU_ASSERT_EQUAL(control_server_new(event, file, &s2), -EEXIST);
        CU_ASSERT_EQUAL(stat(file, &st), 0);
        unlink(file);

        CU_ASSERT_EQUAL(control_server_new(event, "relative.sock", &s2), -EINVAL);
}

static CU_TestInfo tests[] = {
        { "socket mode 0660", test_socket_mode },
        { "good request", test_good_request },
        { "pipelined requests", test_pipelined },
        { "unknown command", test_unknown_command },
        { "malformed JSON", test_malformed_json },
        { "over-long line", test_overlong_line },
        { "disconnect mid-request", test_disconnect_mid_request },
        { "peer credentials", test_peer_credentials },
        { "handler errors", test_handler_errors },
        { "command registration", test_registration },
        { "reply too large", test_reply_too_large },
        { "abusive client", test_abusive_client },
        { "too many clients", test_too_many_clients },
        { "stale and live socket", test_stale_and_live_socket },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("control", tests, setup, teardown)
