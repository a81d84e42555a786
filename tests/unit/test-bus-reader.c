/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bus's NDJSON reader: lines split over feeds, several per feed, bad
 * lines that do not stop the stream, over-long lines that do, and the
 * reader on a real socket pair. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus-reader.h"
#include "message.h"
#include "tests.h"

#define H "hyperty://example.com/7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define R "runtime://example.com/0f8fad5b-d9cb-469f-a165-70867728950e"
#define MSG(id) "{\"id\":" #id ",\"type\":\"read\",\"from\":\"" H "\",\"to\":\"" R "\",\"body\":{}}"

static bus_reader *new_reader(size_t max) {
        bus_reader *r = NULL;

        CU_ASSERT_EQUAL_FATAL(bus_reader_new(max, &r), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        return r;
}

static void feed_all(bus_reader *r, const char *s) {
        CU_ASSERT_EQUAL(bus_reader_feed(r, s, strlen(s)), strlen(s));
}

/* Takes the next message and returns its id, or -1 and the error. */
static int64_t next_id(bus_reader *r, int *ret) {
        _cleanup_rt_message_ rt_message *m = NULL;
        int k = bus_reader_next(r, &m, NULL);

        if (ret)
                *ret = k;
        if (k != 1)
                return -1;
        CU_ASSERT_PTR_NOT_NULL(m);
        return (int64_t) rt_message_get_id(m);
}

static void test_split_across_feeds(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(0);
        const char *line = MSG(7) "\n";
        size_t n = strlen(line);
        int k;

        /* Byte by byte: nothing comes out before the '\n'. */
        for (size_t i = 0; i + 1 < n; i++) {
                CU_ASSERT_EQUAL(bus_reader_feed(r, line + i, 1), 1u);
                CU_ASSERT_EQUAL(next_id(r, &k), -1);
                CU_ASSERT_EQUAL(k, 0);
        }
        CU_ASSERT_EQUAL(bus_reader_pending(r), n - 1);
        CU_ASSERT_EQUAL(bus_reader_feed(r, line + n - 1, 1), 1u);
        CU_ASSERT_EQUAL(next_id(r, &k), 7);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, 0);
        CU_ASSERT_EQUAL(bus_reader_pending(r), 0u);
}

static void test_several_per_feed(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(0);
        int k;

        /* Blank lines and CRLF endings are tolerated; the third message is
         * incomplete and waits for the rest. */
        feed_all(r, MSG(1) "\n\n  \r\n" MSG(2) "\r\n" "{\"id\":3,\"ty");
        CU_ASSERT_EQUAL(next_id(r, NULL), 1);
        CU_ASSERT_EQUAL(next_id(r, NULL), 2);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, 0);
        feed_all(r, "pe\":\"read\",\"from\":\"" H "\",\"to\":[\"" R "\"],\"body\":{}}\n" MSG(4) "\n");
        CU_ASSERT_EQUAL(next_id(r, NULL), 3);
        CU_ASSERT_EQUAL(next_id(r, NULL), 4);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, 0);
}

static void test_bad_json(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(0);
        _cleanup_rt_message_ rt_message *m = NULL, *answer = NULL;
        bus_reader_error e;
        int k;

        feed_all(r, "{\"id\":5,\"type\":\n" MSG(6) "\n");
        k = bus_reader_next(r, &m, &e);
        CU_ASSERT_EQUAL(k, -EBADMSG);
        CU_ASSERT_PTR_NULL(m);
        CU_ASSERT_EQUAL(e.error, -EBADMSG);
        CU_ASSERT_EQUAL(e.code, 400);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e.reason);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.reason, "invalid JSON"));
        CU_ASSERT_FALSE(e.has_id);
        /* Not JSON: nobody to answer. */
        CU_ASSERT_EQUAL(bus_reader_answer_invalid(r, R, &answer), -EBADMSG);
        CU_ASSERT_PTR_NULL(answer);
        /* The stream goes on. */
        CU_ASSERT_EQUAL(next_id(r, NULL), 6);
        CU_ASSERT_EQUAL(bus_reader_answer_invalid(r, R, &answer), -ENODATA);
}

static void test_bad_message(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(0);
        _cleanup_rt_message_ rt_message *m = NULL, *answer = NULL;
        bus_reader_error e;
        int k;

        /* Valid JSON, unknown type. */
        feed_all(r, "{\"id\":9,\"type\":\"poke\",\"from\":\"" H "\",\"to\":\"" R "\",\"body\":{}}\n");
        k = bus_reader_next(r, &m, &e);
        CU_ASSERT_EQUAL(k, -EINVAL);
        CU_ASSERT_EQUAL(e.code, 400);
        CU_ASSERT_TRUE(e.has_id);
        CU_ASSERT_EQUAL(e.id, 9u);
        CU_ASSERT_FALSE(e.is_response);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e.reason);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.reason, "field 'type'"));

        CU_ASSERT_EQUAL_FATAL(bus_reader_answer_invalid(r, NULL, &answer), 0);
        CU_ASSERT_EQUAL(rt_message_get_type(answer), RT_MESSAGE_RESPONSE);
        CU_ASSERT_EQUAL(rt_message_get_id(answer), 9u);
        CU_ASSERT_EQUAL(rt_message_get_code(answer), 400);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(answer), R);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(answer, 0), H);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(answer), e.reason);
        answer = rt_message_free(answer);

        /* A bad "to": the fallback responder answers. */
        feed_all(r, "{\"id\":10,\"type\":\"read\",\"from\":\"" H "\",\"to\":\"nowhere\",\"body\":{}}\n");
        CU_ASSERT_EQUAL(bus_reader_next(r, &m, &e), -EINVAL);
        CU_ASSERT_EQUAL(bus_reader_answer_invalid(r, NULL, &answer), -EBADMSG);
        CU_ASSERT_EQUAL_FATAL(bus_reader_answer_invalid(r, R, &answer), 0);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(answer), R);
        CU_ASSERT_EQUAL(rt_message_get_id(answer), 10u);
        answer = rt_message_free(answer);

        /* A broken response is never answered. */
        feed_all(r, "{\"id\":11,\"type\":\"response\",\"from\":\"" R "\",\"to\":\"" H "\",\"body\":{}}\n");
        CU_ASSERT_EQUAL(bus_reader_next(r, &m, &e), -EINVAL);
        CU_ASSERT_TRUE(e.is_response);
        CU_ASSERT_EQUAL(bus_reader_answer_invalid(r, R, &answer), -EINVAL);

        /* id out of range. */
        feed_all(r, "{\"id\":9007199254740992,\"type\":\"read\",\"from\":\"" H "\",\"to\":\"" R "\",\"body\":{}}\n");
        CU_ASSERT_EQUAL(bus_reader_next(r, &m, &e), -ERANGE);
        CU_ASSERT_FALSE(e.has_id);
        CU_ASSERT_EQUAL(e.code, 400);
        CU_ASSERT_EQUAL(bus_reader_answer_invalid(r, R, &answer), -EBADMSG);

        /* Too deep. */
        feed_all(r, "{\"id\":12,\"type\":\"read\",\"from\":\"" H "\",\"to\":\"" R "\",\"body\":{\"value\":"
                    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}\n");
        CU_ASSERT_EQUAL(bus_reader_next(r, &m, &e), -E2BIG);
        CU_ASSERT_EQUAL(e.code, 400);

        CU_ASSERT_EQUAL(bus_reader_next(r, &m, &e), 0);
}

static void test_over_long(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(128);
        _cleanup_free_ char *big = malloc(200);
        int k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, ' ', 200);
        /* Exactly the limit is fine (blank, so skipped). */
        CU_ASSERT_EQUAL(bus_reader_feed(r, big, 128), 128u);
        CU_ASSERT_EQUAL(bus_reader_feed(r, "\n", 1), 1u);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, 0);

        /* One more byte is not; the reader takes at most limit + 1 bytes and
         * then only says -EMSGSIZE. */
        CU_ASSERT_EQUAL(bus_reader_feed(r, big, 200), 129u);
        CU_ASSERT_EQUAL(bus_reader_feed(r, "\n", 1), 0u);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, -EMSGSIZE);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, -EMSGSIZE);
}

static void test_over_long_after_good(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(0);
        _cleanup_free_ char *big = malloc(BUS_LINE_MAX + 10);
        size_t fed;
        int k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, 'x', BUS_LINE_MAX + 10);
        feed_all(r, MSG(1) "\n");
        fed = bus_reader_feed(r, big, BUS_LINE_MAX + 10);
        CU_ASSERT(fed < BUS_LINE_MAX + 10);
        CU_ASSERT_EQUAL(next_id(r, NULL), 1);
        /* Room again after the good line went: the rest fits, the line is
         * still too long. */
        CU_ASSERT(bus_reader_feed(r, big + fed, BUS_LINE_MAX + 10 - fed) > 0);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, -EMSGSIZE);
}

static void test_line_round_trip(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(0);
        _cleanup_rt_message_ rt_message *m = NULL, *back = NULL, *big = NULL;
        _cleanup_free_ char *line = NULL, *s = NULL;
        json_t *body;
        size_t n = 0;

        body = json_pack("{s:s,s:[i,i]}", "attribute", "x\ny", "value", 1, 2);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_UPDATE, 42, H, R, body, &m), 0);
        json_decref(body);
        CU_ASSERT_EQUAL_FATAL(bus_message_to_line(m, &line, &n), 0);
        CU_ASSERT_EQUAL(strlen(line), n);
        CU_ASSERT_EQUAL(line[n - 1], '\n');
        CU_ASSERT_PTR_EQUAL(strchr(line, '\n'), line + n - 1);
        feed_all(r, line);
        CU_ASSERT_EQUAL(bus_reader_next(r, &back, NULL), 1);
        CU_ASSERT_TRUE(rt_message_equal(m, back));

        /* The writer refuses what a reader would have to close for. */
        s = malloc(BUS_LINE_MAX + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        memset(s, 'a', BUS_LINE_MAX);
        s[BUS_LINE_MAX] = '\0';
        body = json_pack("{s:s}", "value", s);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_UPDATE, 43, H, R, body, &big), 0);
        json_decref(body);
        free(line);
        line = NULL;
        CU_ASSERT_EQUAL(bus_message_to_line(big, &line, &n), -EMSGSIZE);
        CU_ASSERT_PTR_NULL(line);
}

static void test_recv(void) {
        _cleanup_bus_reader_ bus_reader *r = new_reader(0);
        int sv[2], k;

        CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        CU_ASSERT_EQUAL(bus_reader_recv(r, sv[0]), -EAGAIN);
        CU_ASSERT_EQUAL(write(sv[1], MSG(3) "\n" MSG(4), strlen(MSG(3) "\n" MSG(4))),
                        (ssize_t) strlen(MSG(3) "\n" MSG(4)));
        CU_ASSERT(bus_reader_recv(r, sv[0]) > 0);
        CU_ASSERT_EQUAL(next_id(r, NULL), 3);
        CU_ASSERT_EQUAL(next_id(r, &k), -1);
        CU_ASSERT_EQUAL(k, 0);
        CU_ASSERT_EQUAL(write(sv[1], "\n", 1), 1);
        close(sv[1]);
        CU_ASSERT_EQUAL(bus_reader_recv(r, sv[0]), 1);
        CU_ASSERT_EQUAL(next_id(r, NULL), 4);
        CU_ASSERT_EQUAL(bus_reader_recv(r, sv[0]), 0);
        close(sv[0]);
}

static void test_args(void) {
        bus_reader *r = NULL;
        rt_message *m = NULL;

        CU_ASSERT_EQUAL(bus_reader_new(0, NULL), -EINVAL);
        CU_ASSERT_EQUAL(bus_reader_new(SIZE_MAX, &r), -EINVAL);
        CU_ASSERT_PTR_NULL(r);
        CU_ASSERT_PTR_NULL(bus_reader_free(NULL));
        CU_ASSERT_EQUAL(bus_reader_next(NULL, &m, NULL), -EINVAL);
        CU_ASSERT_EQUAL(bus_message_to_line(NULL, NULL, NULL), -EINVAL);
}

static CU_TestInfo tests[] = {
        { "split across feeds", test_split_across_feeds },
        { "several per feed", test_several_per_feed },
        { "bad JSON", test_bad_json },
        { "bad message", test_bad_message },
        { "over-long line", test_over_long },
        { "over-long line after a good one", test_over_long_after_good },
        { "line round trip and writer limit", test_line_round_trip },
        { "recv from a socket", test_recv },
        { "arguments", test_args },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("bus-reader", tests)
