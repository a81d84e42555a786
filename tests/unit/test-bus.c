/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The runtime message bus on a real socket in a temporary directory, driven
 * by its sd-event loop; the components are plain AF_UNIX clients that read
 * with the same bus reader libhyperty uses. Each test starts a fresh bus. */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "bus-reader.h"
#include "bus.h"
#include "log.h"
#include "message.h"
#include "tests.h"

/* Hang guard for waiting on the loop; never a speed assertion. */
#define WAIT_USEC (10ULL * 1000000ULL)

#define D "example.com"
#define R "runtime://" D "/0f8fad5b-d9cb-469f-a165-70867728950e"
#define UA "11111111-1111-4111-8111-111111111111"
#define UB "22222222-2222-4222-8222-222222222222"
#define A "hyperty://" D "/" UA
#define B "hyperty://" D "/" UB
#define S "runtime://" D "/33333333-3333-4333-8333-333333333333"
#define FAR "hyperty://" D "/44444444-4444-4444-8444-444444444444"
#define REMOTE "runtime://other.org/55555555-5555-4555-8555-555555555555"

static char tmpdir[] = "/tmp/test-bus-XXXXXX";
static char sock_path[100];
static sd_event *event;
static bus *server;
static char tok_a[64], tok_b[64], tok_s[64];

/* What the handlers saw. */
static char events[512];
static unsigned runtime_calls, local_calls;
static int runtime_result;
static unsigned local_result;
static char last_from[256], last_to[256];
static bus_instance_kind last_kind;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static void on_instance(bus *b, const char *address, bool connected, void *userdata) {
        char e[128];

        snprintf(e, sizeof(e), "%s%s ", connected ? "+" : "-",
                 streq(address, A) ? "A" : streq(address, B) ? "B" : streq(address, S) ? "S" : "?");
        strncat(events, e, sizeof(events) - strlen(events) - 1);
}

/* Answers reads with 200 and the resource it was asked; other requests
 * fail with runtime_result. */
static int on_runtime(bus *b, const char *from, bus_instance_kind kind, const rt_message *m, void *userdata) {
        _cleanup_rt_message_ rt_message *answer = NULL;
        json_t *value;

        runtime_calls++;
        snprintf(last_from, sizeof(last_from), "%s", strempty(from));
        last_kind = kind;
        if (rt_message_get_type(m) == RT_MESSAGE_RESPONSE)
                return 0;
        if (runtime_result < 0)
                return runtime_result;
        value = json_pack("{s:s}", "resource", strempty(rt_message_get_resource(m)));
        if (rt_message_new_response(m, NULL, 200, NULL, value, &answer) < 0) {
                json_decref(value);
                return -ENOMEM;
        }
        json_decref(value);
        return bus_send(b, answer);
}

static int on_local(bus *b, const char *from, bus_instance_kind kind, const rt_message *m, const char *to,
                    void *userdata) {
        local_calls++;
        snprintf(last_to, sizeof(last_to), "%s", to);
        return (int) local_result;
}

static void stop(void) {
        server = bus_free(server);
}

static void start(void) {
        _cleanup_free_ char *a = NULL, *b = NULL, *s = NULL;

        stop();
        events[0] = '\0';
        runtime_calls = local_calls = 0;
        runtime_result = 0;
        local_result = 0;
        last_from[0] = last_to[0] = '\0';
        CU_ASSERT_EQUAL_FATAL(bus_new(event, sock_path, R, &server), 0);
        bus_set_instance_handler(server, on_instance, NULL);
        bus_set_runtime_handler(server, on_runtime, NULL);
        CU_ASSERT_EQUAL_FATAL(bus_add_instance(server, A, BUS_INSTANCE_HYPERTY, "producer", &a), 0);
        CU_ASSERT_EQUAL_FATAL(bus_add_instance(server, B, BUS_INSTANCE_HYPERTY, "consumer", &b), 0);
        CU_ASSERT_EQUAL_FATAL(bus_add_instance(server, S, BUS_INSTANCE_PROTOSTUB, "messaging", &s), 0);
        snprintf(tok_a, sizeof(tok_a), "%s", a);
        snprintf(tok_b, sizeof(tok_b), "%s", b);
        snprintf(tok_s, sizeof(tok_s), "%s", s);
}

/* --- a plain client ----------------------------------------------------------- */

typedef struct tclient {
        int fd;
        bus_reader *reader;
        bool eof;
} tclient;

static void tc_free(tclient *t) {
        if (!t)
                return;
        safe_close(t->fd);
        bus_reader_free(t->reader);
        free(t);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(tclient *, tc_free);
#define _cleanup_tc_ _cleanup_(tc_freep)

static tclient *tc_connect(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        tclient *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        if (t->fd < 0 || connect(t->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            bus_reader_new(0, &t->reader) < 0) {
                tc_free(t);
                return NULL;
        }
        return t;
}

/* Writes all of s, running the loop whenever the socket is full (the bus
 * only drains it while its loop runs). Returns false when the bus hung up. */
static bool tc_send_raw(tclient *t, const char *s, size_t n) {
        size_t done = 0;
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (done < n && now_usec() < deadline) {
                ssize_t k = send(t->fd, s + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0 && errno == EAGAIN) {
                        (void) sd_event_run(event, 10000);
                        continue;
                }
                if (k < 0)
                        return false;
                done += (size_t) k;
        }
        return done == n;
}

static bool tc_send(tclient *t, const char *s) {
        return tc_send_raw(t, s, strlen(s));
}

_printf_(2, 3) static bool tc_sendf(tclient *t, const char *format, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int n;

        va_start(ap, format);
        n = vasprintf(&s, format, ap);
        va_end(ap);
        return n >= 0 && tc_send(t, s);
}

/* Runs the loop until a message arrives for t; NULL at the end of the
 * stream or after the hang guard. */
static rt_message *tc_recv(tclient *t) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (now_usec() < deadline) {
                rt_message *m = NULL;
                int k = bus_reader_next(t->reader, &m, NULL);

                if (k == 1)
                        return m;
                if (k < 0 || t->eof)
                        return NULL;
                (void) sd_event_run(event, 10000);
                for (;;) {
                        k = bus_reader_recv(t->reader, t->fd);
                        if (k == 0 || (k < 0 && k != -EAGAIN && k != -ENOBUFS))
                                t->eof = true;
                        if (k <= 0)
                                break;
                }
        }
        return NULL;
}

/* Runs the loop until the bus hung up on t, discarding what comes. */
static bool tc_wait_eof(tclient *t) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (!t->eof && now_usec() < deadline) {
                rt_message *m = tc_recv(t);
                rt_message_free(m);
        }
        return t->eof;
}

static rt_message *tc_hello_raw(tclient *t, const char *from, const char *token) {
        if (!tc_sendf(t, "{\"id\":1,\"type\":\"execute\",\"from\":\"%s\",\"to\":\"" R "\","
                         "\"body\":{\"attribute\":\"hello\",\"accessToken\":\"%s\"}}\n", from, token))
                return NULL;
        return tc_recv(t);
}

static tclient *tc_hello(const char *from, const char *token) {
        _cleanup_tc_ tclient *t = tc_connect();
        _cleanup_rt_message_ rt_message *m = NULL;

        if (!t)
                return NULL;
        m = tc_hello_raw(t, from, token);
        if (!m || rt_message_get_type(m) != RT_MESSAGE_RESPONSE || rt_message_get_code(m) != 200)
                return NULL;
        return TAKE_PTR(t);
}

static bool wait_for(bool (*cond)(void)) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (!cond() && now_usec() < deadline)
                (void) sd_event_run(event, 10000);
        return cond();
}

static const char *want_events;
static bool events_are(void) {
        return streq(events, want_events);
}
static bool wait_events(const char *want) {
        want_events = want;
        return wait_for(events_are);
}

/* Checks that m is a response with this id, code and sender. */
static void check_response(const rt_message *m, uint64_t id, int code, const char *from, const char *to) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_type(m), RT_MESSAGE_RESPONSE);
        CU_ASSERT_EQUAL(rt_message_get_id(m), id);
        CU_ASSERT_EQUAL(rt_message_get_code(m), code);
        if (from)
                CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), from);
        if (to)
                CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), to);
}

/* --- tests --------------------------------------------------------------------- */

static void test_socket(void) {
        bus *other = NULL;
        struct stat st;
        char dir[300];

        start();
        CU_ASSERT_EQUAL_FATAL(stat(sock_path, &st), 0);
        CU_ASSERT_TRUE(S_ISSOCK(st.st_mode));
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0666);
        snprintf(dir, sizeof(dir), "%s/run", tmpdir);
        CU_ASSERT_EQUAL_FATAL(stat(dir, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0755);
        CU_ASSERT_STRING_EQUAL(bus_get_path(server), sock_path);
        CU_ASSERT_STRING_EQUAL(bus_get_runtime_address(server), R);

        /* A live bus is not replaced; a stale socket is. The refusals are
         * logged as errors, which is right for the agent and noise here. */
        log_set_max_level(LOG_CRIT);
        CU_ASSERT_EQUAL(bus_new(event, sock_path, R, &other), -EADDRINUSE);
        CU_ASSERT_PTR_NULL(other);
        CU_ASSERT_EQUAL(bus_new(event, sock_path, "hyperty://" D "/" UA, &other), -EINVAL);
        CU_ASSERT_EQUAL(bus_new(event, "relative.sock", R, &other), -EINVAL);
        stop();
        CU_ASSERT_NOT_EQUAL(access(sock_path, F_OK), 0);

        /* Left over by a crashed agent: bound, nobody listening. */
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
                CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
                close(fd);
        }
        start();
        {
                _cleanup_tc_ tclient *t = tc_hello(A, tok_a);
                CU_ASSERT_PTR_NOT_NULL(t);
        }
        stop();

        /* Not a socket: left alone. */
        {
                char path[300];
                int fd;

                snprintf(path, sizeof(path), "%s/run/plain", tmpdir);
                fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
                CU_ASSERT_FATAL(fd >= 0);
                close(fd);
                CU_ASSERT_EQUAL(bus_new(event, path, R, &other), -EEXIST);
                CU_ASSERT_EQUAL(access(path, F_OK), 0);
                unlink(path);
        }
        log_set_max_level(LOG_WARNING);
}

static void test_hello_ok(void) {
        _cleanup_tc_ tclient *t = NULL;
        _cleanup_rt_message_ rt_message *m = NULL;
        json_t *v;

        start();
        CU_ASSERT_FALSE(bus_instance_is_connected(server, A));
        t = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        m = tc_hello_raw(t, A, tok_a);
        check_response(m, 1, 200, R, A);
        v = rt_message_get_value(m);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "runtime")), R);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "address")), A);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "domain")), D);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "kind")), "hyperty");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "connectivity")), "online");
        CU_ASSERT_TRUE(wait_events("+A "));
        CU_ASSERT_TRUE(bus_instance_is_connected(server, A));
        CU_ASSERT_EQUAL(bus_get_n_clients(server), 1u);

        /* The connection going away is reported too. */
        tc_free(TAKE_PTR(t));
        CU_ASSERT_TRUE(wait_events("+A -A "));
        CU_ASSERT_FALSE(bus_instance_is_connected(server, A));
        stop();
}

static void test_hello_refused(void) {
        _cleanup_tc_ tclient *bad = NULL, *unknown = NULL, *other = NULL, *early = NULL, *garbage = NULL;
        _cleanup_rt_message_ rt_message *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL;
        char wrong[64];

        start();
        /* A token of the right form that is not A's. */
        snprintf(wrong, sizeof(wrong), "%s", tok_a);
        wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
        bad = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
        m1 = tc_hello_raw(bad, A, wrong);
        check_response(m1, 1, 401, R, A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(m1), "hello refused: invalid token for this address");
        CU_ASSERT_TRUE(tc_wait_eof(bad));

        /* An address nobody registered gets the same answer. */
        unknown = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(unknown);
        m2 = tc_hello_raw(unknown, FAR, tok_a);
        check_response(m2, 1, 401, R, FAR);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(m2), rt_message_get_description(m1));
        CU_ASSERT_TRUE(tc_wait_eof(unknown));

        /* B's token with A's address: the token is the instance's. */
        other = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(other);
        m3 = tc_hello_raw(other, A, tok_b);
        check_response(m3, 1, 401, R, NULL);
        CU_ASSERT_TRUE(tc_wait_eof(other));

        /* Anything else first. */
        early = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(early);
        CU_ASSERT_TRUE(tc_send(early, "{\"id\":4,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        m4 = tc_recv(early);
        check_response(m4, 4, 401, R, A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(m4), "hello expected as the first message");
        CU_ASSERT_TRUE(tc_wait_eof(early));

        /* Not even a message. */
        garbage = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(garbage);
        CU_ASSERT_TRUE(tc_send(garbage, "hello?\n"));
        CU_ASSERT_TRUE(tc_wait_eof(garbage));

        CU_ASSERT_STRING_EQUAL(events, "");
        CU_ASSERT_FALSE(bus_instance_is_connected(server, A));
        CU_ASSERT_EQUAL(runtime_calls, 0u);
        stop();
}

static void test_hello_timeout(void) {
        _cleanup_tc_ tclient *t = NULL, *late = NULL;

        start();
        bus_set_limits(server, 0, 0, 200 * 1000);
        t = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        /* Half a hello does not count. */
        CU_ASSERT_TRUE(tc_send(t, "{\"id\":1,\"type\":\"execute\""));
        CU_ASSERT_TRUE(tc_wait_eof(t));
        CU_ASSERT_EQUAL(bus_get_n_clients(server), 0u);

        /* One that says hello in time stays past the timeout. */
        late = tc_hello(A, tok_a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(late);
        {
                uint64_t until = now_usec() + 400 * 1000;
                while (now_usec() < until)
                        (void) sd_event_run(event, 10000);
        }
        CU_ASSERT_TRUE(bus_instance_is_connected(server, A));
        stop();
}

static void test_route_between_instances(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL;
        _cleanup_rt_message_ rt_message *got = NULL, *reply = NULL, *multi_a = NULL, *multi_b = NULL;

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);

        CU_ASSERT_TRUE(tc_send(a, "{\"id\":7,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\","
                                  "\"body\":{\"resource\":\"ctxt://" D "/" UB "/temperature\"}}\n"));
        got = tc_recv(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT_EQUAL(rt_message_get_type(got), RT_MESSAGE_READ);
        CU_ASSERT_EQUAL(rt_message_get_id(got), 7u);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(got), A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_resource(got), "ctxt://" D "/" UB "/temperature");

        /* The answer correlates by id and comes from B. */
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":7,\"type\":\"response\",\"from\":\"" B "\",\"to\":\"" A "\","
                                  "\"body\":{\"code\":200,\"value\":[{\"n\":\"t\",\"v\":21.5}]}}\n"));
        reply = tc_recv(a);
        check_response(reply, 7, 200, B, A);

        /* Several recipients: each gets the message once, as sent. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":8,\"type\":\"update\",\"from\":\"" A "\",\"to\":[\"" A "\",\"" B "\"],"
                                  "\"body\":{\"value\":1}}\n"));
        multi_a = tc_recv(a);
        multi_b = tc_recv(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(multi_a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(multi_b);
        CU_ASSERT_TRUE(rt_message_equal(multi_a, multi_b));
        CU_ASSERT_EQUAL(rt_message_get_n_to(multi_b), 2u);
        stop();
}

static void test_unknown_and_unconnected(void) {
        _cleanup_tc_ tclient *a = NULL;
        _cleanup_rt_message_ rt_message *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;

        start();
        a = tc_hello(A, tok_a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);

        /* No instance, no route. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":20,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" REMOTE "\",\"body\":{}}\n"));
        e1 = tc_recv(a);
        check_response(e1, 20, 404, REMOTE, A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(e1), "no route to destination");

        /* B is known but not connected. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":21,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        e2 = tc_recv(a);
        check_response(e2, 21, 503, B, A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(e2), "destination not connected");

        /* One error per recipient that could not be reached, in order. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":22,\"type\":\"read\",\"from\":\"" A "\",\"to\":[\"" B "\",\"" A "\",\"" REMOTE "\"],\"body\":{}}\n"));
        e3 = tc_recv(a);
        check_response(e3, 22, 503, B, A);
        rt_message_free(tc_recv(a)); /* its own copy */
        e4 = tc_recv(a);
        check_response(e4, 22, 404, REMOTE, A);
        stop();
}

static void test_from_checks(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL, *s = NULL;
        _cleanup_rt_message_ rt_message *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *relayed = NULL;

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        s = tc_hello(S, tok_s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);

        /* A hyperty speaks only for itself. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":30,\"type\":\"read\",\"from\":\"" B "\",\"to\":\"" B "\",\"body\":{}}\n"));
        e1 = tc_recv(a);
        check_response(e1, 30, 403, B, B);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(e1), "'from' is not the sender's own address");

        /* A protostub relays foreign addresses ... */
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":31,\"type\":\"update\",\"from\":\"ctxt://other.org/x/t\",\"to\":\"" B "\",\"body\":{\"value\":2}}\n"));
        relayed = tc_recv(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(relayed);
        CU_ASSERT_EQUAL(rt_message_get_id(relayed), 31u);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(relayed), "ctxt://other.org/x/t");

        /* ... but never this device's: an instance, the runtime, a local
         * hyperty's resources. */
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":32,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        e2 = tc_recv(s);
        check_response(e2, 32, 403, B, A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(e2), "'from' names an address of this device");
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":33,\"type\":\"read\",\"from\":\"" R "\",\"to\":\"" B "\",\"body\":{}}\n"));
        e3 = tc_recv(s);
        check_response(e3, 33, 403, B, R);
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":34,\"type\":\"update\",\"from\":\"ctxt://" D "/" UA "/t\",\"to\":\"" B "\",\"body\":{}}\n"));
        e4 = tc_recv(s);
        check_response(e4, 34, 403, B, NULL);

        /* An answer in the name of a local resource (the domain answering
         * a publication to it) is relayed from the domain's protostub
         * only: it orders nothing. */
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":36,\"type\":\"response\",\"from\":\"ctxt://" D "/" UA "/t\",\"to\":\"" A "\",\"body\":{\"code\":200}}\n"));
        /* (A response is never answered with an error: it is dropped; the
         * next thing A gets is 37.) A request to nowhere, answered, shows
         * the bus has dealt with 36 before the route is set. */
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":40,\"type\":\"read\",\"from\":\"" S "\",\"to\":\"hyperty://" D "/00000000-0000-4000-8000-0000000000ff\",\"body\":{}}\n"));
        {
                _cleanup_rt_message_ rt_message *sync = tc_recv(s);
                CU_ASSERT_PTR_NOT_NULL_FATAL(sync);
                CU_ASSERT_EQUAL(rt_message_get_id(sync), 40u);
        }
        CU_ASSERT_EQUAL(bus_set_domain_route(server, D, S), 0);
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":37,\"type\":\"response\",\"from\":\"ctxt://" D "/" UA "/t\",\"to\":\"" A "\",\"body\":{\"code\":200}}\n"));
        {
                _cleanup_rt_message_ rt_message *answer = tc_recv(a);
                CU_ASSERT_PTR_NOT_NULL_FATAL(answer);
                CU_ASSERT_EQUAL(rt_message_get_id(answer), 37u);
        }
        CU_ASSERT_EQUAL(bus_remove_domain_route(server, D), 0);

        /* One message, one copy per recipient, and at most 16 of them. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":38,\"type\":\"read\",\"from\":\"" A "\",\"to\":[\"" B "\",\"" B "\",\"" B "\"],\"body\":{}}\n"));
        {
                _cleanup_rt_message_ rt_message *once = tc_recv(b);
                CU_ASSERT_PTR_NOT_NULL_FATAL(once);
                CU_ASSERT_EQUAL(rt_message_get_id(once), 38u);
        }
        {
                char line[4096];
                size_t n = (size_t) snprintf(line, sizeof(line),
                                             "{\"id\":39,\"type\":\"read\",\"from\":\"" A "\",\"to\":[");
                _cleanup_rt_message_ rt_message *e5 = NULL;

                for (int k = 0; k < 17; k++)
                        n += (size_t) snprintf(line + n, sizeof(line) - n, "%s\"hyperty://" D "/00000000-0000-4000-8000-%012d\"",
                                               k ? "," : "", k);
                snprintf(line + n, sizeof(line) - n, "],\"body\":{}}\n");
                CU_ASSERT_TRUE(tc_send(a, line));
                e5 = tc_recv(a);
                CU_ASSERT_PTR_NOT_NULL_FATAL(e5);
                CU_ASSERT_EQUAL(rt_message_get_id(e5), 39u);
                CU_ASSERT_EQUAL(rt_message_get_code(e5), 400);
        }

        /* Nothing of the refused reached B: the next thing it gets is this. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":35,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        {
                _cleanup_rt_message_ rt_message *next = tc_recv(b);
                CU_ASSERT_PTR_NOT_NULL_FATAL(next);
                CU_ASSERT_EQUAL(rt_message_get_id(next), 35u);
        }
        stop();
}

static void test_domain_route(void) {
        _cleanup_tc_ tclient *a = NULL, *s = NULL;
        static const char *const via_stub[] = {
                FAR,
                "runtime://" D "/66666666-6666-4666-8666-666666666666",
                "ctxt://" D "/room-1/temperature",
                "domain://registry." D,
                "domain://msg-node." D "/sm",
                "domain://" D,
        };

        start();
        CU_ASSERT_EQUAL(bus_set_domain_route(server, "Bad_Domain", S), -EINVAL);
        CU_ASSERT_EQUAL(bus_set_domain_route(server, D, R), -EINVAL);
        CU_ASSERT_EQUAL(bus_set_domain_route(server, D, A), -EINVAL);
        CU_ASSERT_EQUAL(bus_remove_domain_route(server, D), -ENOENT);
        CU_ASSERT_EQUAL_FATAL(bus_set_domain_route(server, D, S), 0);
        a = tc_hello(A, tok_a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);

        /* Stub not connected yet. */
        {
                _cleanup_rt_message_ rt_message *e = NULL;
                CU_ASSERT_TRUE(tc_send(a, "{\"id\":40,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"domain://registry." D "\",\"body\":{}}\n"));
                e = tc_recv(a);
                check_response(e, 40, 503, "domain://registry." D, A);
        }

        s = tc_hello(S, tok_s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        for (size_t i = 0; i < ELEMENTSOF(via_stub); i++) {
                _cleanup_rt_message_ rt_message *got = NULL;

                CU_ASSERT_TRUE(tc_sendf(a, "{\"id\":%zu,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"%s\",\"body\":{}}\n",
                                        41 + i, via_stub[i]));
                got = tc_recv(s);
                CU_ASSERT_PTR_NOT_NULL_FATAL(got);
                CU_ASSERT_EQUAL(rt_message_get_id(got), 41 + i);
                CU_ASSERT_STRING_EQUAL(rt_message_get_to(got, 0), via_stub[i]);
        }

        /* Not D: hyperty://x.D is another host, domain://notexample.com
         * another domain. */
        {
                _cleanup_rt_message_ rt_message *e1 = NULL, *e2 = NULL;

                CU_ASSERT_TRUE(tc_send(a, "{\"id\":50,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"hyperty://x." D "/" UB "\",\"body\":{}}\n"));
                e1 = tc_recv(a);
                check_response(e1, 50, 404, NULL, A);
                CU_ASSERT_TRUE(tc_send(a, "{\"id\":51,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"domain://not" D "\",\"body\":{}}\n"));
                e2 = tc_recv(a);
                check_response(e2, 51, 404, NULL, A);
        }

        /* What the stub relays for D and nobody here takes does not go back
         * to it. */
        {
                _cleanup_rt_message_ rt_message *e = NULL;
                CU_ASSERT_TRUE(tc_send(s, "{\"id\":52,\"type\":\"read\",\"from\":\"" REMOTE "\",\"to\":\"" FAR "\",\"body\":{}}\n"));
                e = tc_recv(s);
                check_response(e, 52, 404, FAR, REMOTE);
        }

        /* Routes go away. */
        CU_ASSERT_EQUAL(bus_remove_domain_route(server, D), 0);
        {
                _cleanup_rt_message_ rt_message *e = NULL;
                CU_ASSERT_TRUE(tc_send(a, "{\"id\":53,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"domain://registry." D "\",\"body\":{}}\n"));
                e = tc_recv(a);
                check_response(e, 53, 404, NULL, A);
        }
        stop();
}

static void test_runtime_handler(void) {
        _cleanup_tc_ tclient *a = NULL, *s = NULL;
        _cleanup_rt_message_ rt_message *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL, *r5 = NULL;

        start();
        a = tc_hello(A, tok_a);
        s = tc_hello(S, tok_s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);

        CU_ASSERT_TRUE(tc_send(a, "{\"id\":60,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" R "\",\"body\":{\"resource\":\"ctxt://" D "/connectivity\"}}\n"));
        r1 = tc_recv(a);
        check_response(r1, 60, 200, R, A);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(rt_message_get_value(r1), "resource")),
                               "ctxt://" D "/connectivity");
        CU_ASSERT_EQUAL(runtime_calls, 1u);
        CU_ASSERT_STRING_EQUAL(last_from, A);
        CU_ASSERT_EQUAL(last_kind, BUS_INSTANCE_HYPERTY);

        /* A remote runtime asks through the stub: the answer goes back the
         * same way (the domain route is the stub's). */
        CU_ASSERT_EQUAL(bus_set_domain_route(server, "other.org", S), 0);
        CU_ASSERT_TRUE(tc_send(s, "{\"id\":61,\"type\":\"read\",\"from\":\"" REMOTE "\",\"to\":\"" R "\",\"body\":{}}\n"));
        r2 = tc_recv(s);
        check_response(r2, 61, 200, R, REMOTE);
        CU_ASSERT_STRING_EQUAL(last_from, S);
        CU_ASSERT_EQUAL(last_kind, BUS_INSTANCE_PROTOSTUB);

        /* A handler's failure becomes the error response. */
        runtime_result = -ENOENT;
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":62,\"type\":\"execute\",\"from\":\"" A "\",\"to\":\"" R "\",\"body\":{\"attribute\":\"loadHyperty\"}}\n"));
        r3 = tc_recv(a);
        check_response(r3, 62, 404, R, A);
        runtime_result = -EOPNOTSUPP;
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":63,\"type\":\"execute\",\"from\":\"" A "\",\"to\":\"" R "\",\"body\":{}}\n"));
        r4 = tc_recv(a);
        check_response(r4, 63, 501, R, A);
        runtime_result = 0;

        /* A second hello is not the runtime's business. */
        CU_ASSERT_TRUE(tc_sendf(a, "{\"id\":64,\"type\":\"execute\",\"from\":\"" A "\",\"to\":\"" R "\","
                                   "\"body\":{\"attribute\":\"hello\",\"accessToken\":\"%s\"}}\n", tok_a));
        r5 = tc_recv(a);
        check_response(r5, 64, 409, R, A);
        CU_ASSERT_EQUAL(runtime_calls, 4u);

        /* No handler: the runtime is not there. */
        bus_set_runtime_handler(server, NULL, NULL);
        {
                _cleanup_rt_message_ rt_message *e = NULL;
                CU_ASSERT_TRUE(tc_send(a, "{\"id\":65,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" R "\",\"body\":{}}\n"));
                e = tc_recv(a);
                check_response(e, 65, 503, R, A);
        }
        stop();
}

static void test_bad_lines(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL;
        _cleanup_rt_message_ rt_message *e1 = NULL, *e2 = NULL, *e3 = NULL, *ok = NULL;

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);

        /* Not JSON: answered with id 0 from the runtime. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":70,\"type\":\n"));
        e1 = tc_recv(a);
        check_response(e1, 0, 400, R, A);
        CU_ASSERT_PTR_NOT_NULL(strstr(rt_message_get_description(e1), "invalid JSON"));

        /* JSON, not a message: the id and the addressee are kept. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":71,\"type\":\"poke\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        e2 = tc_recv(a);
        check_response(e2, 71, 400, B, A);
        CU_ASSERT_PTR_NOT_NULL(strstr(rt_message_get_description(e2), "field 'type'"));

        /* A bad recipient: the runtime answers. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":72,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"Hyperty://x\",\"body\":{}}\n"));
        e3 = tc_recv(a);
        check_response(e3, 72, 400, R, A);

        /* The connection still works, and B never saw the bad lines. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":73,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        ok = tc_recv(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
        CU_ASSERT_EQUAL(rt_message_get_id(ok), 73u);
        CU_ASSERT_TRUE(bus_instance_is_connected(server, A));
        stop();
}

static void test_overlong_line(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL;
        _cleanup_rt_message_ rt_message *e = NULL;
        _cleanup_free_ char *big = malloc(BUS_LINE_MAX + 200);

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);

        strcpy(big, "{\"id\":80,\"type\":\"update\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{\"value\":\"");
        memset(big + strlen(big), 'x', BUS_LINE_MAX);
        strcpy(big + BUS_LINE_MAX, "\"}}\n");
        /* The bus may hang up before it has read everything. */
        (void) tc_send(a, big);
        e = tc_recv(a);
        check_response(e, 0, 413, R, A);
        CU_ASSERT_TRUE(tc_wait_eof(a));
        CU_ASSERT_TRUE(wait_events("+A +B -A "));
        /* B got nothing of it. */
        CU_ASSERT_EQUAL(bus_reader_pending(b->reader), 0u);
        CU_ASSERT_TRUE(bus_instance_is_connected(server, B));

        /* Under the limit as sent, over it as the bus writes it again
         * (1e300 becomes 1.0000000000000001e+300): answered, not cut. */
        a = (tc_free(a), tc_hello(A, tok_a));
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        {
                _cleanup_rt_message_ rt_message *too_big = NULL, *after = NULL;
                size_t n;

                n = (size_t) sprintf(big, "{\"id\":81,\"type\":\"update\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{\"value\":[1e300");
                while (n < BUS_LINE_MAX - 100)
                        n += (size_t) sprintf(big + n, ",1e300");
                strcpy(big + n, "]}}\n");
                CU_ASSERT_TRUE(tc_send(a, big));
                too_big = tc_recv(a);
                check_response(too_big, 81, 413, B, A);
                CU_ASSERT_STRING_EQUAL(rt_message_get_description(too_big), "message too large for the bus");
                CU_ASSERT_TRUE(tc_send(a, "{\"id\":82,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
                after = tc_recv(b);
                CU_ASSERT_PTR_NOT_NULL_FATAL(after);
                CU_ASSERT_EQUAL(rt_message_get_id(after), 82u);
        }
        CU_ASSERT_EQUAL(bus_reader_pending(b->reader), 0u);
        CU_ASSERT_TRUE(bus_instance_is_connected(server, B));
        stop();
}

static void test_slow_reader(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ char *line = NULL;
        rt_message *e = NULL;
        unsigned sent = 0;
        int code = 0;

        start();
        /* A small queue, so that the socket buffers fill first and the
         * queue is over its limit soon. */
        bus_set_limits(server, 0, 64 * 1024, 0);
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);

        line = malloc(40000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(line);
        /* B never reads. A sends until the bus gives up on B, which A
         * hears as a 503 for the message that did not fit. */
        while (code == 0 && sent < 2000) {
                int n = snprintf(line, 40000, "{\"id\":%u,\"type\":\"update\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{\"value\":\"",
                                 100 + sent);
                memset(line + n, 'y', 30000);
                strcpy(line + n + 30000, "\"}}\n");
                CU_ASSERT_TRUE_FATAL(tc_send(a, line));
                sent++;
                (void) sd_event_run(event, 0);
                if (!bus_instance_is_connected(server, B)) {
                        e = tc_recv(a);
                        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
                        code = rt_message_get_code(e);
                        CU_ASSERT_STRING_EQUAL(rt_message_get_from(e), B);
                        rt_message_free(e);
                }
        }
        CU_ASSERT_EQUAL(code, 503);
        CU_ASSERT_TRUE(wait_events("+A +B -B "));

        /* The loop was never blocked: A and a newcomer are served. */
        c = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":99,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        {
                _cleanup_rt_message_ rt_message *got = tc_recv(c);
                CU_ASSERT_PTR_NOT_NULL_FATAL(got);
                CU_ASSERT_EQUAL(rt_message_get_id(got), 99u);
        }
        stop();
}

static void test_replacement(void) {
        _cleanup_tc_ tclient *first = NULL, *second = NULL, *b = NULL;
        _cleanup_rt_message_ rt_message *got = NULL;

        start();
        first = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(first);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        second = tc_hello(A, tok_a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(second);
        CU_ASSERT_TRUE(tc_wait_eof(first));
        CU_ASSERT_TRUE(wait_events("+A +B -A +A "));
        CU_ASSERT_EQUAL(bus_get_n_clients(server), 2u);

        /* Messages for A go to the new connection. */
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":90,\"type\":\"read\",\"from\":\"" B "\",\"to\":\"" A "\",\"body\":{}}\n"));
        got = tc_recv(second);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT_EQUAL(rt_message_get_id(got), 90u);
        stop();
}

static void test_remove_instance(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL, *again = NULL;
        _cleanup_rt_message_ rt_message *e = NULL, *refused = NULL;
        _cleanup_free_ char *tok = NULL;

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(bus_remove_instance(server, A), 0);
        CU_ASSERT_EQUAL(bus_remove_instance(server, A), -ENOENT);
        CU_ASSERT_TRUE(tc_wait_eof(a));
        CU_ASSERT_TRUE(wait_events("+A +B -A "));

        /* Its address is unknown now, its token worthless. */
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":95,\"type\":\"read\",\"from\":\"" B "\",\"to\":\"" A "\",\"body\":{}}\n"));
        e = tc_recv(b);
        check_response(e, 95, 404, A, B);
        again = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(again);
        refused = tc_hello_raw(again, A, tok_a);
        check_response(refused, 1, 401, R, A);

        /* Added again, it gets a new token. */
        CU_ASSERT_EQUAL(bus_add_instance(server, A, BUS_INSTANCE_HYPERTY, "producer", &tok), 0);
        CU_ASSERT_STRING_NOT_EQUAL(tok, tok_a);
        CU_ASSERT_EQUAL(strlen(tok), 43u);
        stop();
}

static void test_responses_not_answered(void) {
        _cleanup_tc_ tclient *a = NULL;
        _cleanup_rt_message_ rt_message *first = NULL;

        start();
        a = tc_hello(A, tok_a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        /* A response nobody can take, a response from somebody else, a
         * response that does not parse: none is answered. The first thing
         * A gets back is the answer to the request after them. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":100,\"type\":\"response\",\"from\":\"" A "\",\"to\":\"" REMOTE "\",\"body\":{\"code\":200}}\n"));
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":101,\"type\":\"response\",\"from\":\"" B "\",\"to\":\"" B "\",\"body\":{\"code\":200}}\n"));
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":102,\"type\":\"response\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":103,\"type\":\"response\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{\"code\":200}}\n"));
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":104,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" REMOTE "\",\"body\":{}}\n"));
        first = tc_recv(a);
        check_response(first, 104, 404, REMOTE, A);
        stop();
}

static bool local_called_twice(void) {
        return local_calls >= 2;
}

static void test_local_resources(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL, *s = NULL;
        _cleanup_rt_message_ rt_message *fwd = NULL, *other = NULL, *e = NULL;

        start();
        bus_set_local_resource_handler(server, on_local, NULL);
        CU_ASSERT_EQUAL_FATAL(bus_set_domain_route(server, D, S), 0);
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        s = tc_hello(S, tok_s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);

        /* A publication of A's resource: the directory takes it and wants it
         * on the domain too. */
        local_result = BUS_LOCAL_TAKEN | BUS_LOCAL_FORWARD;
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":110,\"type\":\"update\",\"from\":\"" A "\",\"to\":\"ctxt://" D "/" UA "/temperature\",\"body\":{\"value\":[{\"n\":\"t\",\"v\":20}]}}\n"));
        fwd = tc_recv(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(fwd);
        CU_ASSERT_EQUAL(rt_message_get_id(fwd), 110u);
        CU_ASSERT_EQUAL(local_calls, 1u);
        CU_ASSERT_STRING_EQUAL(last_to, "ctxt://" D "/" UA "/temperature");

        /* Taken only: the stub sees nothing, the next it sees is id 112. */
        local_result = BUS_LOCAL_TAKEN;
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":111,\"type\":\"read\",\"from\":\"" B "\",\"to\":\"ctxt://" D "/" UA "\",\"body\":{}}\n"));
        CU_ASSERT_TRUE(wait_for(local_called_twice));
        /* Not taken: on to the domain route. */
        local_result = 0;
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":112,\"type\":\"read\",\"from\":\"" B "\",\"to\":\"ctxt://" D "/" UB "/humidity\",\"body\":{}}\n"));
        other = tc_recv(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(other);
        CU_ASSERT_EQUAL(rt_message_get_id(other), 112u);
        CU_ASSERT_EQUAL(local_calls, 3u);

        /* Not a local hyperty's: the handler is not asked. */
        rt_message_free(other);
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":113,\"type\":\"read\",\"from\":\"" B "\",\"to\":\"ctxt://" D "/" UA "x/t\",\"body\":{}}\n"));
        other = tc_recv(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(other);
        CU_ASSERT_EQUAL(rt_message_get_id(other), 113u);
        CU_ASSERT_EQUAL(local_calls, 3u);

        /* The handler's error is the answer. */
        local_result = (unsigned) -EACCES;
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":114,\"type\":\"update\",\"from\":\"" B "\",\"to\":\"ctxt://" D "/" UA "/t\",\"body\":{}}\n"));
        e = tc_recv(b);
        check_response(e, 114, 403, "ctxt://" D "/" UA "/t", B);
        stop();
}

static void test_send_and_broadcast(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL, *s = NULL;
        _cleanup_rt_message_ rt_message *m = NULL, *got = NULL, *ga = NULL, *gb = NULL, *gs = NULL, *reg = NULL;
        json_t *body;

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);

        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_EXECUTE, bus_next_id(server), R, A, NULL, &m), 0);
        CU_ASSERT_EQUAL(bus_send(server, m), 0);
        got = tc_recv(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT_TRUE(rt_message_equal(m, got));
        rt_message_free(m);

        /* Known and away; unknown; the domain through its stub. */
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_READ, bus_next_id(server), R, S, NULL, &m), 0);
        CU_ASSERT_EQUAL(bus_send(server, m), -ENOTCONN);
        rt_message_free(m);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_READ, bus_next_id(server), R, REMOTE, NULL, &m), 0);
        CU_ASSERT_EQUAL(bus_send(server, m), -EHOSTUNREACH);
        rt_message_free(m);
        CU_ASSERT_EQUAL(bus_set_domain_route(server, D, S), 0);
        s = tc_hello(S, tok_s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_CREATE, bus_next_id(server), R, "domain://registry." D, NULL, &m), 0);
        CU_ASSERT_EQUAL(bus_send(server, m), 0);
        reg = tc_recv(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(reg, 0), "domain://registry." D);
        m = rt_message_free(m);

        /* The connectivity execute, to each with its own address. */
        CU_ASSERT_EQUAL(bus_set_connectivity(server, "sideways"), -EINVAL);
        CU_ASSERT_EQUAL(bus_set_connectivity(server, "degraded"), 0);
        body = json_pack("{s:s,s:{s:s}}", "attribute", "connectivity", "value", "state", "degraded");
        CU_ASSERT_EQUAL(bus_broadcast(server, RT_MESSAGE_EXECUTE, body), 3);
        json_decref(body);
        ga = tc_recv(a);
        gb = tc_recv(b);
        gs = tc_recv(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ga);
        CU_ASSERT_PTR_NOT_NULL_FATAL(gb);
        CU_ASSERT_PTR_NOT_NULL_FATAL(gs);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(ga, 0), A);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(gb, 0), B);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(gs, 0), S);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(ga), R);
        CU_ASSERT_STRING_EQUAL(rt_message_get_attribute(gb), "connectivity");
        CU_ASSERT_NOT_EQUAL(rt_message_get_id(ga), rt_message_get_id(gb));

        /* The answer to the runtime's request reaches its handler. */
        {
                unsigned calls = runtime_calls;
                CU_ASSERT_TRUE(tc_sendf(a, "{\"id\":%" PRIu64 ",\"type\":\"response\",\"from\":\"" A "\",\"to\":\"" R "\",\"body\":{\"code\":200}}\n",
                                        rt_message_get_id(ga)));
                CU_ASSERT_TRUE(tc_send(a, "{\"id\":120,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" R "\",\"body\":{}}\n"));
                rt_message_free(tc_recv(a));
                CU_ASSERT_EQUAL(runtime_calls, calls + 2);
        }
        stop();
}

/* Lines of random bytes: each is answered exactly once with a 400, none
 * reaches anybody, the connection and the bus go on. */
static void test_garbage(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL;
        unsigned seed = 1, answers = 0, lines = 300;
        char line[600];

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);

        for (unsigned i = 0; i < lines; i++) {
                size_t n = 1 + (size_t) rand_r(&seed) % (sizeof(line) - 2);

                line[0] = '{';
                for (size_t k = 1; k < n; k++) {
                        line[k] = (char) (rand_r(&seed) & 0xff);
                        if (line[k] == '\n')
                                line[k] = '"';
                }
                line[n] = '\n';
                CU_ASSERT_TRUE_FATAL(tc_send_raw(a, line, n + 1));
                /* Read as we go, so A never stalls on its own answers. */
                while (bus_reader_pending(a->reader) > 0 || answers < i / 2) {
                        _cleanup_rt_message_ rt_message *e = tc_recv(a);
                        if (!e)
                                break;
                        CU_ASSERT_EQUAL(rt_message_get_code(e), 400);
                        answers++;
                }
        }
        while (answers < lines) {
                _cleanup_rt_message_ rt_message *e = tc_recv(a);
                if (!e)
                        break;
                CU_ASSERT_EQUAL(rt_message_get_code(e), 400);
                CU_ASSERT_STRING_EQUAL(rt_message_get_from(e), R);
                answers++;
        }
        CU_ASSERT_EQUAL(answers, lines);

        CU_ASSERT_TRUE(tc_send(a, "{\"id\":140,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" B "\",\"body\":{}}\n"));
        {
                _cleanup_rt_message_ rt_message *got = tc_recv(b);
                CU_ASSERT_PTR_NOT_NULL_FATAL(got);
                CU_ASSERT_EQUAL(rt_message_get_id(got), 140u);
        }
        CU_ASSERT_STRING_EQUAL(events, "+A +B ");
        stop();
}

static void test_hang_up(void) {
        _cleanup_tc_ tclient *a = NULL, *b = NULL;
        _cleanup_rt_message_ rt_message *answer = NULL;

        start();
        a = tc_hello(A, tok_a);
        b = tc_hello(B, tok_b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);

        /* A last request, then the write side closed: still answered. */
        CU_ASSERT_TRUE(tc_send(a, "{\"id\":130,\"type\":\"read\",\"from\":\"" A "\",\"to\":\"" R "\",\"body\":{}}\n"));
        CU_ASSERT_EQUAL(shutdown(a->fd, SHUT_WR), 0);
        answer = tc_recv(a);
        check_response(answer, 130, 200, R, A);
        CU_ASSERT_TRUE(tc_wait_eof(a));

        /* Half a line, then gone: nothing of it reaches anybody. */
        CU_ASSERT_TRUE(tc_send(b, "{\"id\":131,\"type\":\"read\",\"from\":\"" B "\",\"to\":\"" R "\""));
        (void) sd_event_run(event, 10000);
        tc_free(TAKE_PTR(b));
        CU_ASSERT_TRUE(wait_events("+A +B -A -B "));
        CU_ASSERT_EQUAL(runtime_calls, 1u);
        CU_ASSERT_EQUAL(bus_get_n_clients(server), 0u);
        stop();
}

static void test_limits_and_args(void) {
        _cleanup_tc_ tclient *one = NULL, *two = NULL, *three = NULL;
        _cleanup_free_ char *tok = NULL;

        start();
        CU_ASSERT_EQUAL(bus_add_instance(server, A, BUS_INSTANCE_HYPERTY, "x", &tok), -EEXIST);
        CU_ASSERT_EQUAL(bus_add_instance(server, R, BUS_INSTANCE_PROTOSTUB, "x", &tok), -EINVAL);
        CU_ASSERT_EQUAL(bus_add_instance(server, FAR, BUS_INSTANCE_PROTOSTUB, "x", &tok), -EINVAL);
        CU_ASSERT_EQUAL(bus_add_instance(server, REMOTE, BUS_INSTANCE_HYPERTY, "x", &tok), -EINVAL);
        CU_ASSERT_EQUAL(bus_add_instance(server, "hyperty://" D "/not-a-uuid", BUS_INSTANCE_HYPERTY, "x", &tok), -EINVAL);
        CU_ASSERT_PTR_NULL(tok);
        CU_ASSERT_PTR_NULL(bus_free(NULL));

        bus_set_limits(server, 2, 0, 0);
        one = tc_connect();
        two = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(one);
        CU_ASSERT_PTR_NOT_NULL_FATAL(two);
        {
                uint64_t deadline = now_usec() + WAIT_USEC;
                while (bus_get_n_clients(server) < 2 && now_usec() < deadline)
                        (void) sd_event_run(event, 10000);
        }
        CU_ASSERT_EQUAL(bus_get_n_clients(server), 2u);
        three = tc_connect();
        CU_ASSERT_PTR_NOT_NULL_FATAL(three);
        CU_ASSERT_TRUE(tc_wait_eof(three));
        CU_ASSERT_EQUAL(bus_get_n_clients(server), 2u);

        /* Without hello, at most BUS_HELLO_PENDING_MAX connections, whatever
         * room is left in all. */
        bus_set_limits(server, BUS_HELLO_PENDING_MAX + 10, 0, 0);
        {
                tclient *waiting[BUS_HELLO_PENDING_MAX];
                _cleanup_tc_ tclient *extra = NULL;
                uint64_t deadline = now_usec() + WAIT_USEC;

                for (size_t k = 2; k < BUS_HELLO_PENDING_MAX; k++)
                        waiting[k] = tc_connect();
                while (bus_get_n_clients(server) < BUS_HELLO_PENDING_MAX && now_usec() < deadline)
                        (void) sd_event_run(event, 10000);
                CU_ASSERT_EQUAL(bus_get_n_clients(server), BUS_HELLO_PENDING_MAX);
                extra = tc_connect();
                CU_ASSERT_PTR_NOT_NULL_FATAL(extra);
                CU_ASSERT_TRUE(tc_wait_eof(extra));
                CU_ASSERT_EQUAL(bus_get_n_clients(server), BUS_HELLO_PENDING_MAX);
                for (size_t k = 2; k < BUS_HELLO_PENDING_MAX; k++)
                        tc_free(waiting[k]);
        }
        stop();
}

static int setup(void) {
        log_set_max_level(LOG_WARNING);
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(sock_path, sizeof(sock_path), "%s/run/bus.sock", tmpdir);
        return sd_event_new(&event) < 0 ? -1 : 0;
}

static int teardown(void) {
        char d[300];

        stop();
        sd_event_unref(event);
        snprintf(d, sizeof(d), "%s/run", tmpdir);
        (void) rmdir(d);
        (void) rmdir(tmpdir);
        return 0;
}

static CU_TestInfo tests[] = {
        { "socket file", test_socket },
        { "hello", test_hello_ok },
        { "hello refused", test_hello_refused },
        { "hello timeout", test_hello_timeout },
        { "routing between instances", test_route_between_instances },
        { "unknown and unconnected destinations", test_unknown_and_unconnected },
        { "from checks", test_from_checks },
        { "domain routes", test_domain_route },
        { "runtime handler", test_runtime_handler },
        { "bad lines", test_bad_lines },
        { "over-long line", test_overlong_line },
        { "slow reader", test_slow_reader },
        { "replacement", test_replacement },
        { "instance removal", test_remove_instance },
        { "responses are never answered", test_responses_not_answered },
        { "local resources", test_local_resources },
        { "send and broadcast", test_send_and_broadcast },
        { "garbage lines", test_garbage },
        { "hang-ups", test_hang_up },
        { "limits and arguments", test_limits_and_args },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("bus", tests, setup, teardown)
