/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "ctlproto.h"
#include "tests.h"

static int parse_req(const char *s, ctl_request **ret, ctlproto_error *e) {
        return ctl_request_parse(s, strlen(s), ret, e);
}

/* Asserts that s is rejected with 400 and a description containing want. */
static void assert_bad_request(const char *s, const char *want, bool has_id) {
        ctl_request *r = NULL;
        ctlproto_error e;

        CU_ASSERT_EQUAL(parse_req(s, &r, &e), -EBADMSG);
        CU_ASSERT_PTR_NULL(r);
        CU_ASSERT_EQUAL(e.code, 400);
        CU_ASSERT_EQUAL(e.has_id, has_id);
        if (!strstr(e.description, want))
                fprintf(stderr, "\n  %s -> \"%s\", wanted \"%s\"\n", s, e.description, want);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.description, want));
}

static void test_next_line(void) {
        size_t len = 99, consumed = 99;
        char big[100];

        CU_ASSERT_EQUAL(ctlproto_next_line("", 0, 10, &len, &consumed), 0);
        CU_ASSERT_EQUAL(ctlproto_next_line("abc", 3, 10, &len, &consumed), 0);
        /* Outputs untouched when there is no line. */
        CU_ASSERT_EQUAL(len, 99);
        CU_ASSERT_EQUAL(ctlproto_next_line("ab\ncd\n", 6, 10, &len, &consumed), 1);
        CU_ASSERT_EQUAL(len, 2);
        CU_ASSERT_EQUAL(consumed, 3);
        CU_ASSERT_EQUAL(ctlproto_next_line("\n", 1, 10, &len, &consumed), 1);
        CU_ASSERT_EQUAL(len, 0);

        /* Exactly max bytes before the newline is fine; max+1 is not, even
         * before the newline has arrived. */
        memset(big, 'x', sizeof(big));
        big[10] = '\n';
        CU_ASSERT_EQUAL(ctlproto_next_line(big, 11, 10, &len, &consumed), 1);
        CU_ASSERT_EQUAL(len, 10);
        CU_ASSERT_EQUAL(ctlproto_next_line(big, 10, 10, &len, &consumed), 0);
        big[10] = 'x';
        CU_ASSERT_EQUAL(ctlproto_next_line(big, 11, 10, &len, &consumed), -EMSGSIZE);
        big[11] = '\n';
        CU_ASSERT_EQUAL(ctlproto_next_line(big, 12, 10, &len, &consumed), -EMSGSIZE);
}

static void test_command_names(void) {
        char longname[CTLPROTO_COMMAND_MAX + 2];

        CU_ASSERT_TRUE(ctlproto_command_is_valid("qos"));
        CU_ASSERT_TRUE(ctlproto_command_is_valid("load-hyperty"));
        CU_ASSERT_TRUE(ctlproto_command_is_valid("a2"));
        CU_ASSERT_FALSE(ctlproto_command_is_valid(""));
        CU_ASSERT_FALSE(ctlproto_command_is_valid(NULL));
        CU_ASSERT_FALSE(ctlproto_command_is_valid("Qos"));
        CU_ASSERT_FALSE(ctlproto_command_is_valid("-qos"));
        CU_ASSERT_FALSE(ctlproto_command_is_valid("qos-"));
        CU_ASSERT_FALSE(ctlproto_command_is_valid("2qos"));
        CU_ASSERT_FALSE(ctlproto_command_is_valid("q os"));
        CU_ASSERT_FALSE(ctlproto_command_is_valid("q_os"));
        memset(longname, 'a', sizeof(longname));
        longname[CTLPROTO_COMMAND_MAX] = '\0';
        CU_ASSERT_TRUE(ctlproto_command_is_valid(longname));
        longname[CTLPROTO_COMMAND_MAX] = 'a';
        longname[CTLPROTO_COMMAND_MAX + 1] = '\0';
        CU_ASSERT_FALSE(ctlproto_command_is_valid(longname));
}

static void test_request_good(void) {
        _cleanup_ctl_request_ ctl_request *r = NULL, *r2 = NULL;
        _cleanup_free_ char *line = NULL;
        ctlproto_error e;

        CU_ASSERT_EQUAL_FATAL(parse_req("{\"id\": 7, \"command\": \"qos\", \"args\": {\"x\": [1, 2]}}", &r, &e), 0);
        CU_ASSERT_EQUAL(ctl_request_get_id(r), 7);
        CU_ASSERT_STRING_EQUAL(ctl_request_get_command(r), "qos");
        CU_ASSERT_EQUAL(json_array_size(json_object_get(ctl_request_get_args(r), "x")), 2);

        CU_ASSERT_EQUAL_FATAL(ctl_request_format(r, &line), 0);
        CU_ASSERT_STRING_EQUAL(line, "{\"id\":7,\"command\":\"qos\",\"args\":{\"x\":[1,2]}}\n");
        CU_ASSERT_EQUAL_FATAL(ctl_request_parse(line, strlen(line) - 1, &r2, NULL), 0);
        CU_ASSERT_EQUAL(ctl_request_get_id(r2), 7);
        CU_ASSERT_TRUE(json_equal(ctl_request_get_args(r), ctl_request_get_args(r2)));
        r = ctl_request_free(r);
        r2 = ctl_request_free(r2);

        /* No args: an empty object; key order free; largest id. */
        CU_ASSERT_EQUAL_FATAL(parse_req("{\"command\":\"status\",\"id\":9007199254740991}", &r, &e), 0);
        CU_ASSERT_EQUAL(ctl_request_get_id(r), CTLPROTO_ID_MAX);
        CU_ASSERT_TRUE(json_is_object(ctl_request_get_args(r)));
        CU_ASSERT_EQUAL(json_object_size(ctl_request_get_args(r)), 0);
        r = ctl_request_free(r);

        /* A trailing '\r' is whitespace to JSON. */
        CU_ASSERT_EQUAL(parse_req("{\"id\":0,\"command\":\"status\"}\r", &r, &e), 0);
}

static void test_request_bad(void) {
        ctl_request *r = NULL;
        ctlproto_error e;

        assert_bad_request("", "Invalid JSON", false);
        assert_bad_request("{\"id\":1,", "Invalid JSON", false);
        assert_bad_request("[1]", "Expected a JSON object", false);
        assert_bad_request("{\"id\":1,\"command\":\"qos\"} {}", "Invalid JSON", false);
        assert_bad_request("{\"command\":\"qos\"}", "Missing \"id\"", false);
        assert_bad_request("{\"id\":-1,\"command\":\"qos\"}", "\"id\" must be", false);
        assert_bad_request("{\"id\":1.5,\"command\":\"qos\"}", "\"id\" must be", false);
        assert_bad_request("{\"id\":\"1\",\"command\":\"qos\"}", "\"id\" must be", false);
        assert_bad_request("{\"id\":9007199254740992,\"command\":\"qos\"}", "\"id\" must be", false);
        assert_bad_request("{\"id\":1,\"id\":2,\"command\":\"qos\"}", "duplicate", false);
        assert_bad_request("{\"id\":3}", "Missing \"command\"", true);
        assert_bad_request("{\"id\":3,\"command\":\"QOS\"}", "\"command\" must be", true);
        assert_bad_request("{\"id\":3,\"command\":5}", "\"command\" must be", true);
        assert_bad_request("{\"id\":3,\"command\":\"qos\",\"args\":[]}", "\"args\" must be an object", true);
        assert_bad_request("{\"id\":3,\"command\":\"qos\",\"args\":null}", "\"args\" must be an object", true);
        assert_bad_request("{\"id\":3,\"command\":\"qos\",\"extra\":1}", "Unknown key \"extra\"", true);
        assert_bad_request("{\"id\":3,\"command\":\"q\\u0000s\"}", "Invalid JSON", false);
        assert_bad_request("{\"id\":3,\"command\":\"\xff\"}", "Invalid JSON", false);

        /* The id found before the problem is reported for the reply. */
        CU_ASSERT_EQUAL(parse_req("{\"id\":42,\"command\":\"\"}", &r, &e), -EBADMSG);
        CU_ASSERT_TRUE(e.has_id);
        CU_ASSERT_EQUAL(e.id, 42);

        /* Embedded NUL outside a string. */
        CU_ASSERT_EQUAL(ctl_request_parse("{\"id\":1,\0\"command\":\"qos\"}", 26, &r, &e), -EBADMSG);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.description, "NUL"));
}

static void test_request_too_long(void) {
        size_t n = CTLPROTO_LINE_MAX + 1;
        _cleanup_free_ char *s = malloc(n + 1);
        ctl_request *r = NULL;
        ctlproto_error e;
        int k;

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        k = snprintf(s, n + 1, "{\"id\":1,\"command\":\"qos\",\"args\":{\"pad\":\"");
        memset(s + k, 'x', n - k - 3);
        memcpy(s + n - 3, "\"}}", 4);
        CU_ASSERT_EQUAL(strlen(s), n);
        CU_ASSERT_EQUAL(ctl_request_parse(s, n, &r, &e), -EBADMSG);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.description, "too long"));
        /* One byte less fits. */
        memmove(s + k, s + k + 1, n - k);
        CU_ASSERT_EQUAL(ctl_request_parse(s, n - 1, &r, &e), 0);
        ctl_request_free(r);
}

static void test_request_new_invalid(void) {
        ctl_request *r = NULL;
        json_t *a = json_array();

        CU_ASSERT_EQUAL(ctl_request_new(-1, "qos", NULL, &r), -EINVAL);
        CU_ASSERT_EQUAL(ctl_request_new(1, "Bad", NULL, &r), -EINVAL);
        CU_ASSERT_EQUAL(ctl_request_new(1, "qos", a, &r), -EINVAL);
        CU_ASSERT_PTR_NULL(r);
        json_decref(a);
        CU_ASSERT_PTR_NULL(ctl_request_free(NULL));
}

static void test_reply_roundtrip(void) {
        _cleanup_ctl_reply_ ctl_reply *ok = NULL, *err = NULL, *p = NULL;
        _cleanup_free_ char *line = NULL;
        json_t *result = json_pack("{s:s,s:b}", "state", "online", "open", 1);

        CU_ASSERT_EQUAL_FATAL(ctl_reply_new_ok(5, result, &ok), 0);
        json_decref(result);
        CU_ASSERT_EQUAL_FATAL(ctl_reply_format(ok, &line), 0);
        CU_ASSERT_STRING_EQUAL(line, "{\"id\":5,\"ok\":true,\"result\":{\"state\":\"online\",\"open\":true}}\n");
        CU_ASSERT_EQUAL_FATAL(ctl_reply_parse(line, strlen(line), &p, NULL), 0);
        CU_ASSERT_TRUE(ctl_reply_is_ok(p));
        CU_ASSERT_EQUAL(ctl_reply_get_id(p), 5);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ctl_reply_get_result(p), "state")), "online");
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(p), 0);
        CU_ASSERT_PTR_NULL(ctl_reply_get_error_description(p));
        p = ctl_reply_free(p);
        free(line);
        line = NULL;

        CU_ASSERT_EQUAL_FATAL(ctl_reply_new_error(-1, 404, "Unknown command \"x\"", &err), 0);
        CU_ASSERT_EQUAL_FATAL(ctl_reply_format(err, &line), 0);
        CU_ASSERT_STRING_EQUAL(line, "{\"id\":null,\"ok\":false,\"error\":{\"code\":404,\"description\":\"Unknown command \\\"x\\\"\"}}\n");
        CU_ASSERT_EQUAL_FATAL(ctl_reply_parse(line, strlen(line), &p, NULL), 0);
        CU_ASSERT_FALSE(ctl_reply_is_ok(p));
        CU_ASSERT_EQUAL(ctl_reply_get_id(p), -1);
        CU_ASSERT_EQUAL(ctl_reply_get_error_code(p), 404);
        CU_ASSERT_STRING_EQUAL(ctl_reply_get_error_description(p), "Unknown command \"x\"");
        CU_ASSERT_PTR_NULL(ctl_reply_get_result(p));
}

static void test_reply_bad(void) {
        static const char *const bad[] = {
                "{\"id\":1,\"ok\":true}",
                "{\"id\":null,\"ok\":true,\"result\":{}}",
                "{\"id\":1,\"ok\":true,\"result\":{},\"error\":{\"code\":400,\"description\":\"\"}}",
                "{\"id\":1,\"ok\":false}",
                "{\"id\":1,\"ok\":false,\"error\":{\"code\":200,\"description\":\"x\"}}",
                "{\"id\":1,\"ok\":false,\"error\":{\"code\":400}}",
                "{\"id\":1,\"ok\":false,\"error\":{\"code\":400,\"description\":\"x\",\"more\":1}}",
                "{\"id\":1,\"ok\":false,\"result\":{},\"error\":{\"code\":400,\"description\":\"x\"}}",
                "{\"id\":1,\"ok\":1,\"result\":{}}",
                "{\"ok\":true,\"result\":{}}",
                "{\"id\":1,\"ok\":true,\"result\":[]}",
                "{\"id\":1,\"ok\":true,\"result\":{},\"x\":0}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ctl_reply *r = NULL;
                ctlproto_error e;

                CU_ASSERT_EQUAL(ctl_reply_parse(bad[i], strlen(bad[i]), &r, &e), -EBADMSG);
                CU_ASSERT_PTR_NULL(r);
                CU_ASSERT(e.description[0] != '\0');
        }
}

static void test_reply_description_sanitised(void) {
        _cleanup_ctl_reply_ ctl_reply *r = NULL, *p = NULL;
        _cleanup_free_ char *line = NULL, *big = NULL;

        /* Invalid UTF-8 is cut where it starts, so a reply can always be
         * serialised. */
        CU_ASSERT_EQUAL_FATAL(ctl_reply_new_error(1, 500, "caf\xc3\xa9 \xff oops", &r), 0);
        CU_ASSERT_STRING_EQUAL(ctl_reply_get_error_description(r), "caf\xc3\xa9 ");
        r = ctl_reply_free(r);

        big = malloc(CTLPROTO_DESCRIPTION_MAX + 10);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, 'y', CTLPROTO_DESCRIPTION_MAX + 9);
        big[CTLPROTO_DESCRIPTION_MAX + 9] = '\0';
        CU_ASSERT_EQUAL_FATAL(ctl_reply_new_error(1, 500, big, &r), 0);
        CU_ASSERT_EQUAL(strlen(ctl_reply_get_error_description(r)), CTLPROTO_DESCRIPTION_MAX);
        CU_ASSERT_EQUAL_FATAL(ctl_reply_format(r, &line), 0);
        CU_ASSERT_EQUAL(ctl_reply_parse(line, strlen(line), &p, NULL), 0);

        CU_ASSERT_EQUAL(ctl_reply_new_error(1, 200, "x", &p), -EINVAL);
}

static void test_errno_codes(void) {
        CU_ASSERT_EQUAL(ctlproto_errno_to_code(-EINVAL), 400);
        CU_ASSERT_EQUAL(ctlproto_errno_to_code(-EPERM), 403);
        CU_ASSERT_EQUAL(ctlproto_errno_to_code(-EACCES), 403);
        CU_ASSERT_EQUAL(ctlproto_errno_to_code(-ENOENT), 404);
        CU_ASSERT_EQUAL(ctlproto_errno_to_code(-EIO), 500);
        CU_ASSERT_EQUAL(ctlproto_code_to_errno(403), -EACCES);
        CU_ASSERT_EQUAL(ctlproto_code_to_errno(503), -EIO);
}

static CU_TestInfo tests[] = {
        { "line framing", test_next_line },
        { "command names", test_command_names },
        { "good requests", test_request_good },
        { "bad requests", test_request_bad },
        { "over-long request", test_request_too_long },
        { "request constructor", test_request_new_invalid },
        { "reply round trip", test_reply_roundtrip },
        { "bad replies", test_reply_bad },
        { "error description sanitised", test_reply_description_sanitised },
        { "errno and codes", test_errno_codes },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("ctlproto", tests)
