/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libhyperty against a bus peer on a real Unix socket: the test plays the
 * runtime byte for byte, so every assertion is on what really went over
 * the wire; the last tests run it against the agent's own bus server. */
#include <errno.h>
#include <unistd.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "bus-reader.h"
#include "bus.h"
#include "fileio.h"
#include "hyperty.h"
#include "macro.h"
#include "message.h"
#include "tests.h"
#include "time-util.h"

#define ADDRESS "hyperty://example.org/0b8f5e52-53f4-4f42-9d3a-55a3a1e1b0a1"
#define RUNTIME "runtime://example.org/6c1e1f2a-43a4-4b2b-8a0e-6d1f2a3b4c5d"
#define TOKEN "dGVzdC10b2tlbi10aGF0LWlzLWxvbmctZW5vdWdoLXRvLWJl"
#define WAIT_USEC (10 * USEC_PER_SEC)

typedef struct fixture {
        sd_event *e;
        char dir[64];
        char path[96];
        int listen_fd;
        int conn_fd;
        bus_reader *reader;
        hyperty *h;

        unsigned n_up, n_down;
        unsigned n_connectivity;
        char connectivity[16];
        unsigned n_messages;
        rt_message *message;  /* the last one */
        unsigned n_responses;
        rt_message *responses[16];
        void *response_tags[16];
        bool free_in_handler;
} fixture;

static fixture fx;

static void on_state(hyperty *h, bool up, void *userdata) {
        fixture *f = userdata;

        if (up)
                f->n_up++;
        else
                f->n_down++;
}

static void on_connectivity(hyperty *h, const char *state, void *userdata) {
        fixture *f = userdata;

        f->n_connectivity++;
        snprintf(f->connectivity, sizeof(f->connectivity), "%s", state);
}

static rt_message *copy_message(const rt_message *m) {
        _cleanup_free_ char *json = NULL;
        rt_message *c = NULL;

        if (rt_message_to_json(m, &json) < 0 || rt_message_parse(json, strlen(json), NULL, &c, NULL) < 0)
                return NULL;
        return c;
}

static void on_message(hyperty *h, const rt_message *m, void *userdata) {
        fixture *f = userdata;

        f->n_messages++;
        rt_message_free(f->message);
        f->message = copy_message(m);
}

static void on_response(hyperty *h, const rt_message *m, void *userdata) {
        if (fx.n_responses >= ELEMENTSOF(fx.responses))
                return;
        fx.response_tags[fx.n_responses] = userdata;
        fx.responses[fx.n_responses++] = copy_message(m);
        if (fx.free_in_handler)
                fx.h = hyperty_free(fx.h);
}

static void fixture_reset_records(void) {
        for (unsigned i = 0; i < fx.n_responses; i++)
                fx.responses[i] = rt_message_free(fx.responses[i]);
        fx.n_responses = 0;
        fx.message = rt_message_free(fx.message);
        fx.n_messages = 0;
}

static int fixture_listen(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fx.path);
        (void) unlink(fx.path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
                safe_close(fd);
                return -errno;
        }
        fx.listen_fd = fd;
        return 0;
}

static void fixture_setup_with(const hyperty_options *extra) {
        hyperty_options o = {
                .bus_path = fx.path,
                .address = ADDRESS,
                .runtime = RUNTIME,
                .token = TOKEN,
                .reconnect_initial_usec = 50 * USEC_PER_MSEC,
                .reconnect_max_usec = 200 * USEC_PER_MSEC,
        };

        memset(&fx, 0, sizeof(fx));
        fx.listen_fd = fx.conn_fd = -1;
        snprintf(fx.dir, sizeof(fx.dir), "/tmp/test-hyperty-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(fx.dir));
        snprintf(fx.path, sizeof(fx.path), "%s/bus.sock", fx.dir);
        CU_ASSERT_EQUAL_FATAL(sd_event_new(&fx.e), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_listen(), 0);
        if (extra && extra->request_timeout_usec)
                o.request_timeout_usec = extra->request_timeout_usec;
        if (extra && extra->token)
                o.token = extra->token;
        CU_ASSERT_EQUAL_FATAL(hyperty_new(fx.e, &o, &fx.h), 0);
        hyperty_set_state_handler(fx.h, on_state, &fx);
        hyperty_set_connectivity_handler(fx.h, on_connectivity, &fx);
        hyperty_set_message_handler(fx.h, on_message, &fx);
}

static void fixture_setup(void) {
        fixture_setup_with(NULL);
}

static void fixture_teardown(void) {
        fixture_reset_records();
        fx.h = hyperty_free(fx.h);
        fx.reader = bus_reader_free(fx.reader);
        fx.conn_fd = safe_close(fx.conn_fd);
        fx.listen_fd = safe_close(fx.listen_fd);
        (void) unlink(fx.path);
        (void) rmdir(fx.dir);
        fx.e = sd_event_unref(fx.e);
}

/* Runs the loop until cond holds or WAIT_USEC passed. */
static bool run_until(bool (*cond)(void)) {
        usec_t end = now(CLOCK_MONOTONIC) + WAIT_USEC;

        while (!cond()) {
                if (now(CLOCK_MONOTONIC) > end)
                        return false;
                if (sd_event_run(fx.e, 20 * USEC_PER_MSEC) < 0)
                        return false;
        }
        return true;
}

static void run_for(usec_t usec) {
        usec_t end = now(CLOCK_MONOTONIC) + usec;

        while (now(CLOCK_MONOTONIC) < end)
                (void) sd_event_run(fx.e, 10 * USEC_PER_MSEC);
}

static bool try_accept(void) {
        int fd = accept4(fx.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0)
                return false;
        safe_close(fx.conn_fd);
        fx.conn_fd = fd;
        bus_reader_free(fx.reader);
        fx.reader = NULL;
        return bus_reader_new(0, &fx.reader) >= 0;
}

static rt_message *peer_got;
static int peer_error;

static bool try_peer_recv(void) {
        int r;

        r = bus_reader_next(fx.reader, &peer_got, NULL);
        if (r == 1)
                return true;
        if (r < 0) {
                peer_error = r;
                return true;
        }
        r = bus_reader_recv(fx.reader, fx.conn_fd);
        if (r == 0) {
                peer_error = -ECONNRESET;
                return true;
        }
        return false;
}

/* The next message libhyperty wrote; NULL after WAIT_USEC or on EOF. */
static rt_message *peer_recv(void) {
        peer_got = NULL;
        peer_error = 0;
        if (!run_until(try_peer_recv) || peer_error < 0)
                return NULL;
        return TAKE_PTR(peer_got);
}

static bool has_two_responses(void) {
        return fx.n_responses >= 2;
}

static bool has_one_response(void) {
        return fx.n_responses >= 1;
}

static bool hyperty_gone(void) {
        return fx.h == NULL;
}

static bool peer_has_nothing(usec_t usec) {
        _cleanup_rt_message_ rt_message *m = NULL;

        run_for(usec);
        if (bus_reader_recv(fx.reader, fx.conn_fd) == 0)
                return true;
        return bus_reader_next(fx.reader, &m, NULL) == 0;
}

static int peer_send(const char *line) {
        size_t n = strlen(line);
        _cleanup_free_ char *l = NULL;

        if (asprintf(&l, "%s\n", line) < 0)
                return -ENOMEM;
        return send(fx.conn_fd, l, n + 1, MSG_NOSIGNAL) == (ssize_t) (n + 1) ? 0 : -errno;
}

/* Asserts body == expected (JSON text), as jansson compares. */
static bool body_is(const rt_message *m, const char *expected) {
        json_t *want = json_loads(expected, 0, NULL);
        bool eq = want && json_equal(rt_message_get_body(m), want);

        if (!eq) {
                _cleanup_free_ char *got = json_dumps(rt_message_get_body(m), JSON_COMPACT);
                fprintf(stderr, "\n  body %s\n  want %s\n", strna(got), expected);
        }
        json_decref(want);
        return eq;
}

static unsigned up_target;

static bool is_up(void) {
        return fx.n_up >= up_target;
}

/* Accepts, checks the hello and answers it. */
static void peer_hello(const char *connectivity) {
        _cleanup_rt_message_ rt_message *hello = NULL;
        _cleanup_free_ char *answer = NULL;

        CU_ASSERT_TRUE_FATAL(run_until(try_accept));
        hello = peer_recv();
        CU_ASSERT_PTR_NOT_NULL_FATAL(hello);
        CU_ASSERT_EQUAL(rt_message_get_type(hello), RT_MESSAGE_EXECUTE);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(hello), ADDRESS);
        CU_ASSERT_EQUAL(rt_message_get_n_to(hello), 1);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(hello, 0), RUNTIME);
        CU_ASSERT_TRUE(body_is(hello, "{\"attribute\":\"hello\",\"accessToken\":\"" TOKEN "\"}"));
        CU_ASSERT_FALSE(hyperty_is_connected(fx.h));

        CU_ASSERT_FATAL(asprintf(&answer,
                                 "{\"id\":%llu,\"type\":\"response\",\"from\":\"" RUNTIME "\",\"to\":\"" ADDRESS
                                 "\",\"body\":{\"code\":200,\"description\":\"hello\",\"value\":{\"runtime\":\"" RUNTIME
                                 "\",\"address\":\"" ADDRESS "\",\"domain\":\"example.org\",\"kind\":\"hyperty\","
                                 "\"connectivity\":\"%s\"}}}",
                                 (unsigned long long) rt_message_get_id(hello), connectivity) > 0);
        CU_ASSERT_EQUAL_FATAL(peer_send(answer), 0);
        up_target = fx.n_up + 1;
        CU_ASSERT_TRUE_FATAL(run_until(is_up));
        CU_ASSERT_TRUE(hyperty_is_connected(fx.h));
}

static void connect_and_hello(void) {
        CU_ASSERT_EQUAL_FATAL(hyperty_connect(fx.h), 0);
        peer_hello("online");
}

/* --- environment ------------------------------------------------------------------------------ */

static void clear_env(void) {
        unsetenv("RETHINK_BUS");
        unsetenv("RETHINK_ADDRESS");
        unsetenv("RETHINK_RUNTIME");
        unsetenv("RETHINK_BUS_TOKEN");
        unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_env(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char dir[] = "/tmp/test-hyperty-cred-XXXXXX";
        _cleanup_free_ char *cred = NULL;
        hyperty *h = NULL;

        CU_ASSERT_EQUAL_FATAL(sd_event_new(&e), 0);
        clear_env();

        /* Nothing set: the address is missing. */
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        CU_ASSERT_PTR_NULL(h);

        setenv("RETHINK_ADDRESS", ADDRESS, 1);
        setenv("RETHINK_RUNTIME", RUNTIME, 1);
        /* No token anywhere. */
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);

        setenv("RETHINK_BUS_TOKEN", "env-token-0123456789", 1);
        CU_ASSERT_EQUAL_FATAL(hyperty_new(e, NULL, &h), 0);
        CU_ASSERT_STRING_EQUAL(hyperty_get_address(h), ADDRESS);
        CU_ASSERT_STRING_EQUAL(hyperty_get_runtime(h), RUNTIME);
        CU_ASSERT_PTR_NULL(hyperty_get_domain(h));
        CU_ASSERT_FALSE(hyperty_is_connected(h));
        h = hyperty_free(h);

        /* Invalid values are refused, each on its own. */
        setenv("RETHINK_ADDRESS", "user://idp.example.org/alice", 1);
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        setenv("RETHINK_ADDRESS", "hyperty://Example.org/x", 1);
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        setenv("RETHINK_ADDRESS", ADDRESS, 1);
        setenv("RETHINK_RUNTIME", ADDRESS, 1);
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        setenv("RETHINK_RUNTIME", RUNTIME, 1);
        setenv("RETHINK_BUS", "relative/bus.sock", 1);
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        setenv("RETHINK_BUS", "/x/"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789", 1);
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        unsetenv("RETHINK_BUS");
        setenv("RETHINK_BUS_TOKEN", "has space", 1);
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        CU_ASSERT_PTR_NULL(h);

        /* The credential wins over the environment; its newline goes. */
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        CU_ASSERT_FATAL(asprintf(&cred, "%s/rethink-bus-token", dir) > 0);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(cred, TOKEN "\n", strlen(TOKEN) + 1, 0600), 0);
        clear_env();
        setenv("CREDENTIALS_DIRECTORY", dir, 1);
        setenv("RETHINK_BUS_TOKEN", "env-token-0123456789", 1);

        fixture_setup();
        fx.h = hyperty_free(fx.h);
        {
                hyperty_options o = { .bus_path = fx.path, .address = ADDRESS, .runtime = RUNTIME };

                CU_ASSERT_EQUAL_FATAL(hyperty_new(fx.e, &o, &fx.h), 0);
                hyperty_set_state_handler(fx.h, on_state, &fx);
        }
        /* peer_hello() checks the token on the wire. */
        connect_and_hello();
        fixture_teardown();

        /* A credential directory without the file: the environment. */
        setenv("RETHINK_ADDRESS", ADDRESS, 1);
        setenv("RETHINK_RUNTIME", RUNTIME, 1);
        CU_ASSERT_EQUAL(unlink(cred), 0);
        CU_ASSERT_EQUAL_FATAL(hyperty_new(e, NULL, &h), 0);
        h = hyperty_free(h);
        /* An empty credential is an error, not a fall-back. */
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(cred, "\n", 1, 0600), 0);
        CU_ASSERT_EQUAL(hyperty_new(e, NULL, &h), -EINVAL);
        (void) unlink(cred);
        (void) rmdir(dir);
        clear_env();
}

/* --- connection and hello -------------------------------------------------------------------- */

static void test_hello(void) {
        fixture_setup();

        /* Nothing goes out before the hello is answered. */
        CU_ASSERT_EQUAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, RUNTIME, NULL, NULL, NULL, NULL), -ENOTCONN);
        connect_and_hello();
        CU_ASSERT_EQUAL(fx.n_up, 1);
        CU_ASSERT_STRING_EQUAL(hyperty_get_domain(fx.h), "example.org");
        CU_ASSERT_STRING_EQUAL(hyperty_get_connectivity(fx.h), "online");
        CU_ASSERT_EQUAL(fx.n_connectivity, 1);
        CU_ASSERT_STRING_EQUAL(fx.connectivity, "online");
        /* Connecting again while connected changes nothing. */
        CU_ASSERT_EQUAL(hyperty_connect(fx.h), 0);
        CU_ASSERT_TRUE(peer_has_nothing(100 * USEC_PER_MSEC));
        fixture_teardown();
}

static void test_hello_refused(void) {
        _cleanup_rt_message_ rt_message *hello = NULL, *again = NULL;
        _cleanup_free_ char *answer = NULL;

        fixture_setup();
        CU_ASSERT_EQUAL_FATAL(hyperty_connect(fx.h), 0);
        CU_ASSERT_TRUE_FATAL(run_until(try_accept));
        hello = peer_recv();
        CU_ASSERT_PTR_NOT_NULL_FATAL(hello);
        CU_ASSERT_FATAL(asprintf(&answer,
                                 "{\"id\":%llu,\"type\":\"response\",\"from\":\"" RUNTIME "\",\"to\":\"" ADDRESS
                                 "\",\"body\":{\"code\":401,\"description\":\"bad token\"}}",
                                 (unsigned long long) rt_message_get_id(hello)) > 0);
        CU_ASSERT_EQUAL_FATAL(peer_send(answer), 0);

        /* It closes, never counts as up, and tries again later. */
        CU_ASSERT_PTR_NULL(peer_recv());
        CU_ASSERT_EQUAL(peer_error, -ECONNRESET);
        CU_ASSERT_EQUAL(fx.n_up, 0);
        CU_ASSERT_EQUAL(fx.n_down, 0);
        CU_ASSERT_FALSE(hyperty_is_connected(fx.h));
        CU_ASSERT_TRUE_FATAL(run_until(try_accept));
        again = peer_recv();
        CU_ASSERT_PTR_NOT_NULL_FATAL(again);
        CU_ASSERT_STRING_EQUAL(rt_message_get_attribute(again), "hello");
        /* Ids are never reused across connections. */
        CU_ASSERT(rt_message_get_id(again) > rt_message_get_id(hello));
        fixture_teardown();
}

static void test_connect_retries_until_listening(void) {
        fixture_setup();
        /* No server yet: connecting still succeeds as a start. */
        fx.listen_fd = safe_close(fx.listen_fd);
        (void) unlink(fx.path);
        CU_ASSERT_EQUAL_FATAL(hyperty_connect(fx.h), 0);
        run_for(300 * USEC_PER_MSEC);
        CU_ASSERT_FALSE(hyperty_is_connected(fx.h));
        CU_ASSERT_EQUAL_FATAL(fixture_listen(), 0);
        peer_hello("degraded");
        CU_ASSERT_STRING_EQUAL(fx.connectivity, "degraded");
        fixture_teardown();
}

/* --- requests and responses ------------------------------------------------------------------- */

static void test_correlation(void) {
        _cleanup_rt_message_ rt_message *a = NULL, *b = NULL;
        _cleanup_free_ char *ra = NULL, *rb = NULL;
        uint64_t ida = 0, idb = 0;
        int tag_a, tag_b;

        fixture_setup();
        connect_and_hello();

        CU_ASSERT_EQUAL_FATAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, "ctxt://example.org/x/a", NULL,
                                           on_response, &tag_a, &ida), 0);
        CU_ASSERT_EQUAL_FATAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, "ctxt://example.org/x/b", NULL,
                                           on_response, &tag_b, &idb), 0);
        CU_ASSERT_NOT_EQUAL(ida, idb);
        CU_ASSERT_EQUAL(hyperty_get_n_pending(fx.h), 2);
        a = peer_recv();
        b = peer_recv();
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(rt_message_get_id(a), ida);
        CU_ASSERT_EQUAL(rt_message_get_id(b), idb);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(a), ADDRESS);

        /* Answered in the other order; a stray id reaches nobody. */
        CU_ASSERT_FATAL(asprintf(&rb,
                                 "{\"id\":%llu,\"type\":\"response\",\"from\":\"ctxt://example.org/x/b\",\"to\":\"" ADDRESS
                                 "\",\"body\":{\"code\":404}}",
                                 (unsigned long long) idb) > 0);
        CU_ASSERT_FATAL(asprintf(&ra,
                                 "{\"id\":%llu,\"type\":\"response\",\"from\":\"ctxt://example.org/x/a\",\"to\":\"" ADDRESS
                                 "\",\"body\":{\"code\":200,\"value\":[{\"n\":\"a\",\"v\":1}]}}",
                                 (unsigned long long) ida) > 0);
        CU_ASSERT_EQUAL(peer_send("{\"id\":999999,\"type\":\"response\",\"from\":\"" RUNTIME "\",\"to\":\"" ADDRESS
                                  "\",\"body\":{\"code\":200}}"),
                        0);
        CU_ASSERT_EQUAL(peer_send(rb), 0);
        CU_ASSERT_EQUAL(peer_send(ra), 0);
        CU_ASSERT_TRUE(run_until(has_two_responses));
        run_for(50 * USEC_PER_MSEC);

        CU_ASSERT_EQUAL_FATAL(fx.n_responses, 2);
        CU_ASSERT_PTR_EQUAL(fx.response_tags[0], &tag_b);
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[0]), 404);
        CU_ASSERT_PTR_EQUAL(fx.response_tags[1], &tag_a);
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[1]), 200);
        CU_ASSERT_EQUAL(hyperty_get_n_pending(fx.h), 0);
        /* Responses never reach the message handler. */
        CU_ASSERT_EQUAL(fx.n_messages, 0);
        fixture_teardown();
}

static void test_timeout(void) {
        hyperty_options o = { .request_timeout_usec = 200 * USEC_PER_MSEC };
        _cleanup_rt_message_ rt_message *req = NULL;
        _cleanup_free_ char *late = NULL;
        uint64_t id = 0;
        int tag;

        fixture_setup_with(&o);
        connect_and_hello();
        CU_ASSERT_EQUAL_FATAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, "ctxt://example.org/x/a", NULL,
                                           on_response, &tag, &id), 0);
        req = peer_recv();
        CU_ASSERT_PTR_NOT_NULL_FATAL(req);
        CU_ASSERT_TRUE(run_until(has_one_response));

        CU_ASSERT_EQUAL_FATAL(fx.n_responses, 1);
        CU_ASSERT_EQUAL(rt_message_get_type(fx.responses[0]), RT_MESSAGE_RESPONSE);
        CU_ASSERT_EQUAL(rt_message_get_id(fx.responses[0]), id);
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[0]), 408);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(fx.responses[0]), "ctxt://example.org/x/a");
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(fx.responses[0], 0), ADDRESS);
        CU_ASSERT_EQUAL(hyperty_get_n_pending(fx.h), 0);

        /* The real answer after the 408 reaches nobody, and the
         * connection stays. */
        CU_ASSERT_FATAL(asprintf(&late,
                                 "{\"id\":%llu,\"type\":\"response\",\"from\":\"ctxt://example.org/x/a\",\"to\":\"" ADDRESS
                                 "\",\"body\":{\"code\":200}}",
                                 (unsigned long long) id) > 0);
        CU_ASSERT_EQUAL(peer_send(late), 0);
        run_for(100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(fx.n_responses, 1);
        CU_ASSERT_TRUE(hyperty_is_connected(fx.h));
        fixture_teardown();
}

static bool is_down(void) {
        return fx.n_down > 0;
}

static void test_lost_and_reconnect(void) {
        _cleanup_(json_decrefp) json_t *crit = json_pack("{s:s}", "resource", "temperature");
        int tag;

        fixture_setup();
        connect_and_hello();
        CU_ASSERT_EQUAL_FATAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, "ctxt://example.org/x/a", NULL,
                                           on_response, &tag, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(hyperty_discover(fx.h, crit, on_response, &tag), 0);
        CU_ASSERT_EQUAL(hyperty_get_n_pending(fx.h), 2);

        /* The runtime goes away. */
        fx.conn_fd = safe_close(fx.conn_fd);
        CU_ASSERT_TRUE_FATAL(run_until(is_down));
        CU_ASSERT_EQUAL_FATAL(fx.n_responses, 2);
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[0]), 503);
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[1]), 503);
        CU_ASSERT_FALSE(hyperty_is_connected(fx.h));
        CU_ASSERT_EQUAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, RUNTIME, NULL, NULL, NULL, NULL), -ENOTCONN);

        /* It comes back by itself, says hello again and is up again. */
        peer_hello("offline");
        CU_ASSERT_EQUAL(fx.n_up, 2);
        CU_ASSERT_STRING_EQUAL(fx.connectivity, "offline");
        fixture_teardown();
}

static void test_free_in_handler(void) {
        int tag;

        fixture_setup();
        connect_and_hello();
        CU_ASSERT_EQUAL_FATAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, "ctxt://example.org/x/a", NULL,
                                           on_response, &tag, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, "ctxt://example.org/x/b", NULL,
                                           on_response, &tag, NULL), 0);
        /* The first 503 frees the object: the second is never delivered. */
        fx.free_in_handler = true;
        fx.conn_fd = safe_close(fx.conn_fd);
        CU_ASSERT_TRUE(run_until(hyperty_gone));
        run_for(100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(fx.n_responses, 1);
        CU_ASSERT_PTR_NULL(fx.h);
        fixture_teardown();
}

/* --- messages from the runtime ---------------------------------------------------------------- */

static bool has_two_connectivity(void) {
        return fx.n_connectivity >= 2;
}

static bool has_message(void) {
        return fx.n_messages > 0;
}

static void test_incoming(void) {
        _cleanup_rt_message_ rt_message *reply = NULL;

        fixture_setup();
        connect_and_hello();

        /* Connectivity from the runtime goes to its own handler, only on a
         * change. */
        CU_ASSERT_EQUAL(peer_send("{\"id\":7,\"type\":\"execute\",\"from\":\"" RUNTIME "\",\"to\":\"" ADDRESS
                                  "\",\"body\":{\"attribute\":\"connectivity\",\"value\":{\"state\":\"online\"}}}"),
                        0);
        CU_ASSERT_EQUAL(peer_send("{\"id\":8,\"type\":\"execute\",\"from\":\"" RUNTIME "\",\"to\":\"" ADDRESS
                                  "\",\"body\":{\"attribute\":\"connectivity\",\"value\":{\"state\":\"degraded\"}}}"),
                        0);
        CU_ASSERT_TRUE(run_until(has_two_connectivity));
        CU_ASSERT_EQUAL(fx.n_connectivity, 2);
        CU_ASSERT_STRING_EQUAL(fx.connectivity, "degraded");
        CU_ASSERT_STRING_EQUAL(hyperty_get_connectivity(fx.h), "degraded");
        CU_ASSERT_EQUAL(fx.n_messages, 0);

        /* A bad line is dropped; the connection stays. */
        CU_ASSERT_EQUAL(peer_send("{\"id\":9,\"type\":\"bogus\"}"), 0);
        /* The same execute from anybody else is an ordinary message. */
        CU_ASSERT_EQUAL(peer_send("{\"id\":10,\"type\":\"update\",\"from\":\"hyperty://example.org/"
                                  "11111111-2222-4333-8444-555555555555\",\"to\":\"ctxt://example.org/"
                                  "0b8f5e52-53f4-4f42-9d3a-55a3a1e1b0a1/switch\",\"body\":{\"resource\":"
                                  "\"ctxt://example.org/0b8f5e52-53f4-4f42-9d3a-55a3a1e1b0a1/switch\","
                                  "\"value\":[{\"n\":\"switch\",\"vb\":true}]}}"),
                        0);
        CU_ASSERT_TRUE_FATAL(run_until(has_message));
        CU_ASSERT_EQUAL(fx.n_messages, 1);
        CU_ASSERT_EQUAL(rt_message_get_type(fx.message), RT_MESSAGE_UPDATE);
        CU_ASSERT_TRUE(hyperty_is_connected(fx.h));

        /* The reply comes from our own address (the bus takes no other),
         * to the sender, with the request's id. */
        CU_ASSERT_EQUAL_FATAL(hyperty_reply(fx.h, fx.message, 200, "switched", NULL), 0);
        reply = peer_recv();
        CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
        CU_ASSERT_EQUAL(rt_message_get_type(reply), RT_MESSAGE_RESPONSE);
        CU_ASSERT_EQUAL(rt_message_get_id(reply), 10);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(reply), ADDRESS);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(reply, 0),
                               "hyperty://example.org/11111111-2222-4333-8444-555555555555");
        CU_ASSERT_TRUE(body_is(reply, "{\"code\":200,\"description\":\"switched\"}"));
        fixture_teardown();
}

static void test_line_over_limit_closes(void) {
        size_t n = RT_MESSAGE_MAX_SIZE_DEFAULT + 10;
        _cleanup_free_ char *big = malloc(n);

        fixture_setup();
        connect_and_hello();
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, 'x', n);
        CU_ASSERT_EQUAL((size_t) send(fx.conn_fd, big, n, MSG_NOSIGNAL), n);
        CU_ASSERT_TRUE(run_until(is_down));
        /* ...and it comes back. */
        peer_hello("online");
        fixture_teardown();
}

/* --- the documented message forms ------------------------------------------------------------- */

static rt_message *expect_sent(rt_message_type type, const char *to, const char *body) {
        rt_message *m = peer_recv();

        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_type(m), type);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), ADDRESS);
        CU_ASSERT_EQUAL(rt_message_get_n_to(m), 1);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), to);
        CU_ASSERT_TRUE(body_is(m, body));
        return m;
}

#define CTXT "ctxt://example.org/0b8f5e52-53f4-4f42-9d3a-55a3a1e1b0a1"
#define PEER_CTXT "ctxt://example.org/11111111-2222-4333-8444-555555555555/temperature"
#define STUB "runtime://example.org/22222222-3333-4444-8555-666666666666"

static void test_forms(void) {
        _cleanup_(json_decrefp) json_t *reg = NULL, *senml = NULL, *bad = NULL, *crit = NULL, *target = NULL,
                                       *sw = NULL;
        _cleanup_free_ char *res = NULL;
        int tag;

        fixture_setup();
        connect_and_hello();

        res = hyperty_resource_address(fx.h, "temperature");
        CU_ASSERT_STRING_EQUAL(res, CTXT "/temperature");
        CU_ASSERT_PTR_NULL(hyperty_resource_address(fx.h, "bad name"));

        reg = json_loads("{\"resources\":[\"temperature\",\"switch\"],\"dataSchemes\":[\"ctxt\"],"
                         "\"acl\":{\"read\":[\"*\"]}}", 0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_register(fx.h, reg, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_CREATE, RUNTIME,
                                    "{\"attribute\":\"registration\",\"value\":{\"resources\":[\"temperature\","
                                    "\"switch\"],\"dataSchemes\":[\"ctxt\"],\"acl\":{\"read\":[\"*\"]}}}"));
        CU_ASSERT_EQUAL(hyperty_get_n_pending(fx.h), 1);

        senml = json_loads("[{\"bn\":\"" CTXT "/\",\"n\":\"temperature\",\"u\":\"Cel\",\"v\":21.5}]", 0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_publish(fx.h, "temperature", senml), 0);
        rt_message_free(expect_sent(RT_MESSAGE_UPDATE, CTXT "/temperature",
                                    "{\"resource\":\"" CTXT "/temperature\",\"value\":[{\"bn\":\"" CTXT
                                    "/\",\"n\":\"temperature\",\"u\":\"Cel\",\"v\":21.5}]}"));
        /* Fire and forget: nothing waits. */
        CU_ASSERT_EQUAL(hyperty_get_n_pending(fx.h), 1);

        /* Not SenML: refused before anything is sent. */
        bad = json_loads("[{\"n\":\"temperature\",\"v\":1,\"vs\":\"x\"}]", 0, NULL);
        CU_ASSERT_EQUAL(hyperty_publish(fx.h, "temperature", bad), -EINVAL);
        CU_ASSERT_EQUAL(hyperty_update(fx.h, NULL, PEER_CTXT, bad, NULL, NULL), -EINVAL);
        CU_ASSERT_EQUAL(hyperty_subscribe(fx.h, NULL, "hyperty://example.org/x", NULL, NULL), -EINVAL);

        CU_ASSERT_EQUAL_FATAL(hyperty_subscribe(fx.h, NULL, PEER_CTXT, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_SUBSCRIBE, "domain://msg-node.example.org/sm",
                                    "{\"resource\":\"" PEER_CTXT "\"}"));
        CU_ASSERT_EQUAL_FATAL(hyperty_subscribe(fx.h, STUB, PEER_CTXT, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_SUBSCRIBE, STUB, "{\"resource\":\"" PEER_CTXT "\"}"));
        CU_ASSERT_EQUAL_FATAL(hyperty_unsubscribe(fx.h, NULL, PEER_CTXT, NULL, NULL), 0);
        rt_message_free(expect_sent(RT_MESSAGE_UNSUBSCRIBE, "domain://msg-node.example.org/sm",
                                    "{\"resource\":\"" PEER_CTXT "\"}"));
        CU_ASSERT_EQUAL_FATAL(hyperty_read(fx.h, NULL, PEER_CTXT, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_READ, PEER_CTXT, "{\"resource\":\"" PEER_CTXT "\"}"));

        sw = json_loads("[{\"n\":\"switch\",\"vb\":true}]", 0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_update(fx.h, NULL, PEER_CTXT, sw, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_UPDATE, PEER_CTXT,
                                    "{\"resource\":\"" PEER_CTXT "\",\"value\":[{\"n\":\"switch\",\"vb\":true}]}"));
        CU_ASSERT_EQUAL_FATAL(hyperty_update(fx.h, STUB, PEER_CTXT, sw, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_UPDATE, STUB,
                                    "{\"resource\":\"" PEER_CTXT "\",\"value\":[{\"n\":\"switch\",\"vb\":true}]}"));

        crit = json_loads("{\"resource\":\"temperature\",\"status\":\"live\"}", 0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_discover(fx.h, crit, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_READ, "domain://registry.example.org",
                                    "{\"criteria\":{\"resource\":\"temperature\",\"status\":\"live\"}}"));

        target = json_loads("{\"peer\":\"https://10.0.0.2:8444\",\"domain\":\"example.org\"}", 0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_load_protostub(fx.h, target, on_response, &tag), 0);
        rt_message_free(expect_sent(RT_MESSAGE_EXECUTE, RUNTIME,
                                    "{\"attribute\":\"loadProtoStub\",\"value\":{\"peer\":\"https://10.0.0.2:8444\","
                                    "\"domain\":\"example.org\"}}"));

        /* Arguments are borrowed: the caller's references are intact. */
        CU_ASSERT_EQUAL(reg->refcount, 1);
        CU_ASSERT_EQUAL(senml->refcount, 1);
        CU_ASSERT_EQUAL(crit->refcount, 1);
        fixture_teardown();
}

static void test_output_bound(void) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_free_ char *pad = NULL;
        size_t n = 60 * 1024;
        int r = 0;
        unsigned sent = 0;

        fixture_setup();
        connect_and_hello();
        pad = malloc(n + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
        memset(pad, 'a', n);
        pad[n] = '\0';
        body = json_pack("{s:s}", "value", pad);
        /* The peer reads nothing: the socket buffer and then the 1 MiB
         * queue fill up, and sending says so instead of growing. */
        for (unsigned i = 0; i < 200; i++) {
                r = hyperty_send(fx.h, RT_MESSAGE_FORWARD, NULL, RUNTIME, body, NULL, NULL, NULL);
                if (r < 0)
                        break;
                sent++;
                (void) sd_event_run(fx.e, 0);
        }
        CU_ASSERT_EQUAL(r, -ENOBUFS);
        CU_ASSERT(sent > HYPERTY_OUTPUT_MAX / (n + 100));
        /* A message over the line limit is refused as such. */
        {
                _cleanup_free_ char *huge = malloc(RT_MESSAGE_MAX_SIZE_DEFAULT + 1);
                _cleanup_(json_decrefp) json_t *hb = NULL;

                CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
                memset(huge, 'b', RT_MESSAGE_MAX_SIZE_DEFAULT);
                huge[RT_MESSAGE_MAX_SIZE_DEFAULT] = '\0';
                hb = json_pack("{s:s}", "value", huge);
                CU_ASSERT_EQUAL(hyperty_send(fx.h, RT_MESSAGE_FORWARD, NULL, RUNTIME, hb, NULL, NULL, NULL),
                                -EMSGSIZE);
        }
        CU_ASSERT_TRUE(hyperty_is_connected(fx.h));
        fixture_teardown();
}

/* --- against the agent's bus server (daemon/bus.c) ------------------------------------------------ */

typedef struct real_bus {
        bus *bus;
        char *token;
        char *stub_token;
        hyperty *stub;          /* the protostub on the domain route for example.org */
        rt_message *at_runtime; /* the last message the runtime's handler got */
        unsigned n_at_runtime;
        rt_message *at_stub;    /* the last message the protostub got */
        unsigned n_at_stub;
        bool answer_runtime;
} real_bus;

static real_bus rb;

static int on_real_runtime(bus *b, const char *from, bus_instance_kind kind, const rt_message *m, void *userdata) {
        _cleanup_rt_message_ rt_message *resp = NULL;
        int r;

        rt_message_free(rb.at_runtime);
        rb.at_runtime = copy_message(m);
        rb.n_at_runtime++;
        if (!rb.answer_runtime || rt_message_get_type(m) == RT_MESSAGE_RESPONSE)
                return 0;
        r = rt_message_new_response(m, NULL, 200, "registered", NULL, &resp);
        if (r < 0)
                return r;
        return bus_send(b, resp);
}

static void on_stub_message(hyperty *h, const rt_message *m, void *userdata) {
        rt_message_free(rb.at_stub);
        rb.at_stub = copy_message(m);
        rb.n_at_stub++;
}

static bool stub_and_hyperty_up(void) {
        return hyperty_is_connected(rb.stub) && hyperty_is_connected(fx.h);
}

static int real_bus_start(void) {
        int r;

        r = bus_new(fx.e, fx.path, RUNTIME, &rb.bus);
        if (r < 0)
                return r;
        bus_set_runtime_handler(rb.bus, on_real_runtime, NULL);
        free(rb.token);
        rb.token = NULL;
        return bus_add_instance(rb.bus, ADDRESS, BUS_INSTANCE_HYPERTY, "test", &rb.token);
}

static void real_setup(bool with_stub) {
        hyperty_options o;

        memset(&rb, 0, sizeof(rb));
        fixture_setup();
        /* The bus listens itself. */
        fx.h = hyperty_free(fx.h);
        fx.listen_fd = safe_close(fx.listen_fd);
        (void) unlink(fx.path);
        CU_ASSERT_EQUAL_FATAL(real_bus_start(), 0);

        o = (hyperty_options) { .bus_path = fx.path, .address = ADDRESS, .runtime = RUNTIME, .token = rb.token,
                                .reconnect_initial_usec = 50 * USEC_PER_MSEC,
                                .reconnect_max_usec = 200 * USEC_PER_MSEC };
        CU_ASSERT_EQUAL_FATAL(hyperty_new(fx.e, &o, &fx.h), 0);
        hyperty_set_state_handler(fx.h, on_state, &fx);
        hyperty_set_connectivity_handler(fx.h, on_connectivity, &fx);
        hyperty_set_message_handler(fx.h, on_message, &fx);
        CU_ASSERT_EQUAL_FATAL(hyperty_connect(fx.h), 0);

        if (with_stub) {
                CU_ASSERT_EQUAL_FATAL(bus_add_instance(rb.bus, STUB, BUS_INSTANCE_PROTOSTUB, "messaging", &rb.stub_token), 0);
                CU_ASSERT_EQUAL_FATAL(bus_set_domain_route(rb.bus, "example.org", STUB), 0);
                o.address = STUB;
                o.token = rb.stub_token;
                CU_ASSERT_EQUAL_FATAL(hyperty_new(fx.e, &o, &rb.stub), 0);
                hyperty_set_message_handler(rb.stub, on_stub_message, NULL);
                CU_ASSERT_EQUAL_FATAL(hyperty_connect(rb.stub), 0);
                CU_ASSERT_TRUE_FATAL(run_until(stub_and_hyperty_up));
        } else {
                up_target = 1;
                CU_ASSERT_TRUE_FATAL(run_until(is_up));
        }
}

static void real_teardown(void) {
        rb.stub = hyperty_free(rb.stub);
        fx.h = hyperty_free(fx.h);
        rb.bus = bus_free(rb.bus);
        rb.at_runtime = rt_message_free(rb.at_runtime);
        rb.at_stub = rt_message_free(rb.at_stub);
        free(rb.token);
        free(rb.stub_token);
        memset(&rb, 0, sizeof(rb));
        fixture_teardown();
}

static void test_real_hello(void) {
        real_setup(false);
        CU_ASSERT_TRUE(bus_instance_is_connected(rb.bus, ADDRESS));
        CU_ASSERT_STRING_EQUAL(hyperty_get_domain(fx.h), "example.org");
        CU_ASSERT_STRING_EQUAL(hyperty_get_connectivity(fx.h), "online");
        CU_ASSERT_STRING_EQUAL(fx.connectivity, "online");
        CU_ASSERT_EQUAL(fx.n_up, 1);
        real_teardown();
}

static void test_real_bad_token(void) {
        hyperty *h = NULL;
        hyperty_options o;

        real_setup(false);
        o = (hyperty_options) { .bus_path = fx.path, .address = ADDRESS, .runtime = RUNTIME,
                                .token = "bm90LXRoZS10b2tlbi1vZi10aGlzLWluc3RhbmNl" };
        CU_ASSERT_EQUAL_FATAL(hyperty_new(fx.e, &o, &h), 0);
        CU_ASSERT_EQUAL_FATAL(hyperty_connect(h), 0);
        run_for(400 * USEC_PER_MSEC);
        /* Refused every time; the instance with the right token keeps its
         * connection. */
        CU_ASSERT_FALSE(hyperty_is_connected(h));
        CU_ASSERT_TRUE(hyperty_is_connected(fx.h));
        CU_ASSERT_EQUAL(fx.n_down, 0);
        hyperty_free(h);
        real_teardown();
}

static bool runtime_got_one(void) {
        return rb.n_at_runtime > 0;
}

static bool has_response(void) {
        return fx.n_responses > 0;
}

static void test_real_register(void) {
        _cleanup_(json_decrefp) json_t *reg = NULL;
        int tag;

        real_setup(false);
        rb.answer_runtime = true;
        reg = json_loads("{\"resources\":[\"temperature\",\"switch\"],\"dataSchemes\":[\"ctxt\"],\"acl\":{\"*\":\"rw\"}}",
                         0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_register(fx.h, reg, on_response, &tag), 0);
        CU_ASSERT_TRUE_FATAL(run_until(has_response));
        CU_ASSERT_TRUE_FATAL(runtime_got_one());

        /* What the runtime's services got, exactly. */
        CU_ASSERT_EQUAL(rt_message_get_type(rb.at_runtime), RT_MESSAGE_CREATE);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(rb.at_runtime), ADDRESS);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(rb.at_runtime, 0), RUNTIME);
        CU_ASSERT_TRUE(body_is(rb.at_runtime,
                               "{\"attribute\":\"registration\",\"value\":{\"resources\":[\"temperature\",\"switch\"],"
                               "\"dataSchemes\":[\"ctxt\"],\"acl\":{\"*\":\"rw\"}}}"));
        /* And the answer came back to the right request. */
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[0]), 200);
        CU_ASSERT_EQUAL(rt_message_get_id(fx.responses[0]), rt_message_get_id(rb.at_runtime));
        CU_ASSERT_PTR_EQUAL(fx.response_tags[0], &tag);
        real_teardown();
}

static unsigned stub_target;

static bool stub_got(void) {
        return rb.n_at_stub >= stub_target;
}

static void test_real_domain_route(void) {
        _cleanup_(json_decrefp) json_t *senml = NULL, *crit = NULL;
        int tag;

        real_setup(true);

        /* A publication of a resource of this instance goes on to the
         * domain (no Local RD handler here), as it was sent. */
        senml = json_loads("[{\"bn\":\"" CTXT "/\",\"n\":\"temperature\",\"u\":\"Cel\",\"v\":21.5}]", 0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_publish(fx.h, "temperature", senml), 0);
        stub_target = 1;
        CU_ASSERT_TRUE_FATAL(run_until(stub_got));
        CU_ASSERT_EQUAL(rt_message_get_type(rb.at_stub), RT_MESSAGE_UPDATE);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(rb.at_stub), ADDRESS);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(rb.at_stub, 0), CTXT "/temperature");
        CU_ASSERT_TRUE(body_is(rb.at_stub, "{\"resource\":\"" CTXT "/temperature\",\"value\":[{\"bn\":\"" CTXT
                                           "/\",\"n\":\"temperature\",\"u\":\"Cel\",\"v\":21.5}]}"));

        /* A subscription goes to the subscription manager; the domain's
         * answer, relayed by the stub, reaches the subscriber's handler. */
        CU_ASSERT_EQUAL_FATAL(hyperty_subscribe(fx.h, NULL, PEER_CTXT, on_response, &tag), 0);
        stub_target = 2;
        CU_ASSERT_TRUE_FATAL(run_until(stub_got));
        CU_ASSERT_EQUAL(rt_message_get_type(rb.at_stub), RT_MESSAGE_SUBSCRIBE);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(rb.at_stub, 0), "domain://msg-node.example.org/sm");
        CU_ASSERT_TRUE(body_is(rb.at_stub, "{\"resource\":\"" PEER_CTXT "\"}"));
        {
                _cleanup_(json_decrefp) json_t *last = json_loads("[{\"n\":\"temperature\",\"v\":20}]", 0, NULL);
                _cleanup_rt_message_ rt_message *answer = NULL;

                CU_ASSERT_EQUAL_FATAL(rt_message_new_response(rb.at_stub, NULL, 200, "subscribed", last, &answer), 0);
                CU_ASSERT_EQUAL_FATAL(hyperty_send_message(rb.stub, answer), 0);
        }
        CU_ASSERT_TRUE_FATAL(run_until(has_response));
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[0]), 200);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(fx.responses[0]), "domain://msg-node.example.org/sm");

        /* A publication from the domain reaches the message handler. */
        {
                _cleanup_(json_decrefp) json_t *body = json_loads(
                        "{\"resource\":\"" PEER_CTXT "\",\"value\":[{\"n\":\"temperature\",\"v\":22}]}", 0, NULL);

                CU_ASSERT_EQUAL_FATAL(hyperty_send(rb.stub, RT_MESSAGE_UPDATE, PEER_CTXT, ADDRESS, body, NULL, NULL,
                                                   NULL), 0);
        }
        CU_ASSERT_TRUE_FATAL(run_until(has_message));
        CU_ASSERT_EQUAL(rt_message_get_type(fx.message), RT_MESSAGE_UPDATE);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(fx.message), PEER_CTXT);

        /* Discovery goes to the registry. */
        crit = json_loads("{\"resource\":\"temperature\",\"status\":\"live\"}", 0, NULL);
        CU_ASSERT_EQUAL_FATAL(hyperty_discover(fx.h, crit, on_response, &tag), 0);
        stub_target = 3;
        CU_ASSERT_TRUE_FATAL(run_until(stub_got));
        CU_ASSERT_EQUAL(rt_message_get_type(rb.at_stub), RT_MESSAGE_READ);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(rb.at_stub, 0), "domain://registry.example.org");
        CU_ASSERT_TRUE(body_is(rb.at_stub, "{\"criteria\":{\"resource\":\"temperature\",\"status\":\"live\"}}"));
        real_teardown();
}

static void test_real_no_route(void) {
        int tag;

        real_setup(false);
        /* Nobody for example.org: the bus answers at once, not the
         * timeout. */
        CU_ASSERT_EQUAL_FATAL(hyperty_subscribe(fx.h, NULL, PEER_CTXT, on_response, &tag), 0);
        CU_ASSERT_TRUE_FATAL(run_until(has_response));
        CU_ASSERT(rt_message_get_code(fx.responses[0]) == 404 || rt_message_get_code(fx.responses[0]) == 503);
        CU_ASSERT_EQUAL(hyperty_get_n_pending(fx.h), 0);
        real_teardown();
}

static bool connectivity_is_degraded(void) {
        return streq(fx.connectivity, "degraded");
}

static void test_real_connectivity(void) {
        _cleanup_(json_decrefp) json_t *body = NULL;

        real_setup(false);
        CU_ASSERT_EQUAL_FATAL(bus_set_connectivity(rb.bus, "degraded"), 0);
        body = json_pack("{s:s,s:{s:s}}", "attribute", "connectivity", "value", "state", "degraded");
        CU_ASSERT_EQUAL(bus_broadcast(rb.bus, RT_MESSAGE_EXECUTE, body), 1);
        CU_ASSERT_TRUE(run_until(connectivity_is_degraded));
        CU_ASSERT_EQUAL(fx.n_connectivity, 2);
        CU_ASSERT_STRING_EQUAL(hyperty_get_connectivity(fx.h), "degraded");
        CU_ASSERT_EQUAL(fx.n_messages, 0);
        real_teardown();
}

static void test_real_dropped_and_back(void) {
        _cleanup_(json_decrefp) json_t *big = NULL;
        _cleanup_rt_message_ rt_message *m = NULL;
        int tag;

        real_setup(false);
        /* A request the runtime never answers is pending... */
        CU_ASSERT_EQUAL_FATAL(hyperty_send(fx.h, RT_MESSAGE_READ, NULL, RUNTIME, NULL, on_response, &tag, NULL), 0);
        CU_ASSERT_TRUE_FATAL(run_until(runtime_got_one));

        /* ...when the bus drops the connection (a queue over its limit),
         * keeping the instance: the pending request is answered 503, and
         * the SDK comes back with the same token. */
        bus_set_limits(rb.bus, 0, 64, 0);
        big = json_pack("{s:s}", "value", "0123456789012345678901234567890123456789012345678901234567890123456789");
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_UPDATE, bus_next_id(rb.bus), RUNTIME, ADDRESS, big, &m), 0);
        CU_ASSERT_NOT_EQUAL(bus_send(rb.bus, m), 0);
        bus_set_limits(rb.bus, 0, BUS_OUTPUT_MAX, 0);

        CU_ASSERT_TRUE_FATAL(run_until(is_down));
        CU_ASSERT_EQUAL_FATAL(fx.n_responses, 1);
        CU_ASSERT_EQUAL(rt_message_get_code(fx.responses[0]), 503);
        up_target = 2;
        CU_ASSERT_TRUE_FATAL(run_until(is_up));
        CU_ASSERT_TRUE(bus_instance_is_connected(rb.bus, ADDRESS));

        /* The bus goes away altogether: down, and no hello succeeds with a
         * token the new bus does not know. */
        rb.bus = bus_free(rb.bus);
        fx.n_down = 0;
        CU_ASSERT_TRUE_FATAL(run_until(is_down));
        CU_ASSERT_EQUAL_FATAL(real_bus_start(), 0);
        run_for(400 * USEC_PER_MSEC);
        CU_ASSERT_FALSE(hyperty_is_connected(fx.h));
        real_teardown();
}

/* The component's loop ends cleanly on SIGTERM (how it is stopped). */
static void test_event_loop_stops_on_sigterm(void) {
        sd_event *e = NULL;

        CU_ASSERT_EQUAL_FATAL(hyperty_event_new(&e), 0);
        CU_ASSERT_EQUAL(kill(getpid(), SIGTERM), 0);
        CU_ASSERT_EQUAL(sd_event_loop(e), 0);
        sd_event_unref(e);
        CU_ASSERT_EQUAL(hyperty_event_new(NULL), -EINVAL);
}

static CU_TestInfo tests[] = {
        { "environment", test_env },
        { "hello", test_hello },
        { "hello refused", test_hello_refused },
        { "connect retries until the bus listens", test_connect_retries_until_listening },
        { "request/response correlation", test_correlation },
        { "timeout answers 408", test_timeout },
        { "lost bus answers 503 and reconnects", test_lost_and_reconnect },
        { "free inside a handler", test_free_in_handler },
        { "connectivity and messages", test_incoming },
        { "line over the limit closes", test_line_over_limit_closes },
        { "documented message forms", test_forms },
        { "bounded output", test_output_bound },
        { "real bus: hello", test_real_hello },
        { "real bus: wrong token", test_real_bad_token },
        { "real bus: registration reaches the runtime", test_real_register },
        { "real bus: domain route forms and answers", test_real_domain_route },
        { "real bus: no route answers at once", test_real_no_route },
        { "real bus: connectivity broadcast", test_real_connectivity },
        { "real bus: dropped, back, bus gone", test_real_dropped_and_back },
        { "the event loop stops on SIGTERM", test_event_loop_stops_on_sigterm },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("hyperty", tests)
