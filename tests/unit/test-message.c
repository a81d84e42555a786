/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "message.h"
#include "tests.h"

#define RUNTIME "runtime://example.com/0f8fad5b-d9cb-469f-a165-70867728950e"
#define HYPERTY "hyperty://example.com/7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define HYPERTY2 "hyperty://other.example/16fd2706-8baf-433b-82eb-8c7fada847da"
#define CTXT "ctxt://example.com/room-1/temperature"
#define SM "domain://msg-node.example.com/sm"

/* A message with the given type and body, from HYPERTY to RUNTIME. */
#define MSG(type, body) \
        "{\"id\":1,\"type\":\"" type "\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":" body "}"

static rt_message *parse_ok(const char *json) {
        _cleanup_free_ char *reason = NULL;
        rt_message *m = NULL;
        int r;

        r = rt_message_parse(json, strlen(json), NULL, &m, &reason);
        if (r < 0)
                fprintf(stderr, "unexpected failure (%d) for %s: %s\n", r, json, strna(reason));
        CU_ASSERT_EQUAL(r, 0);
        CU_ASSERT_PTR_NULL(reason);
        return m;
}

static void check_bad_n(const void *data, size_t size, const rt_message_limits *limits, int error,
                        const char *reason_part) {
        rt_message *m = (rt_message *) 0x1;
        _cleanup_free_ char *reason = NULL;
        int r;

        r = rt_message_parse(data, size, limits, &m, &reason);
        if (r != error || !reason || !strstr(reason, reason_part))
                fprintf(stderr, "for %.*s: r=%d reason=%s\n", (int) MIN(size, 200u), (const char *) data, r,
                        strna(reason));
        CU_ASSERT_EQUAL(r, error);
        /* Nothing half-built escapes. */
        CU_ASSERT_PTR_EQUAL(m, (rt_message *) 0x1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, reason_part));
}

static void check_bad(const char *json, int error, const char *reason_part) {
        check_bad_n(json, strlen(json), NULL, error, reason_part);
}

static void roundtrip(const rt_message *m) {
        _cleanup_rt_message_ rt_message *again = NULL;
        _cleanup_free_ char *json = NULL;

        CU_ASSERT_EQUAL_FATAL(rt_message_to_json(m, &json), 0);
        CU_ASSERT_PTR_NULL(strchr(json, '\n'));
        CU_ASSERT_EQUAL_FATAL(rt_message_parse(json, strlen(json), NULL, &again, NULL), 0);
        CU_ASSERT_TRUE(rt_message_equal(m, again));
}

static void test_all_types_valid(void) {
        static const struct {
                const char *json;
                rt_message_type type;
        } cases[] = {
                { MSG("create", "{\"value\":{\"name\":\"sensor\"},\"resource\":\"" CTXT "\"}"), RT_MESSAGE_CREATE },
                { MSG("read", "{\"resource\":\"" CTXT "\",\"attribute\":\"unit\"}"), RT_MESSAGE_READ },
                { MSG("update", "{\"value\":[{\"n\":\"t\",\"v\":21.5}],\"attribute\":\"values\"}"), RT_MESSAGE_UPDATE },
                { MSG("delete", "{\"resource\":\"" CTXT "\"}"), RT_MESSAGE_DELETE },
                { MSG("subscribe", "{\"resource\":\"" CTXT "\",\"accessToken\":\"eyJ0\"}"), RT_MESSAGE_SUBSCRIBE },
                { MSG("unsubscribe", "{\"resource\":\"" CTXT "\"}"), RT_MESSAGE_UNSUBSCRIBE },
                { MSG("response", "{\"code\":200,\"description\":\"OK\",\"value\":42}"), RT_MESSAGE_RESPONSE },
                { MSG("forward", "{\"value\":{\"inner\":true}}"), RT_MESSAGE_FORWARD },
                { MSG("execute", "{\"criteria\":{\"method\":\"reboot\"}}"), RT_MESSAGE_EXECUTE },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_rt_message_ rt_message *m = parse_ok(cases[i].json);

                CU_ASSERT_PTR_NOT_NULL_FATAL(m);
                CU_ASSERT_EQUAL(rt_message_get_type(m), cases[i].type);
                CU_ASSERT_EQUAL(rt_message_get_id(m), 1);
                CU_ASSERT_STRING_EQUAL(rt_message_get_from(m), HYPERTY);
                CU_ASSERT_EQUAL(rt_message_get_n_to(m), 1);
                CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), RUNTIME);
                CU_ASSERT_PTR_NULL(rt_message_get_to(m, 1));
                roundtrip(m);
        }
}

static void test_accessors(void) {
        _cleanup_rt_message_ rt_message *m = NULL, *r = NULL;

        m = parse_ok("{\"id\":9007199254740991,\"type\":\"subscribe\",\"from\":\"" HYPERTY "\",\"to\":[\"" SM
                     "\",\"" HYPERTY2 "\"],\"body\":{\"resource\":\"" CTXT "\",\"criteria\":{\"every\":5},"
                     "\"attribute\":\"t\",\"accessToken\":\"tok\",\"value\":[1,2],\"x-extra\":{\"k\":1}}}\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(rt_message_get_id(m), RT_MESSAGE_ID_MAX);
        CU_ASSERT_EQUAL(rt_message_get_n_to(m), 2);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 0), SM);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(m, 1), HYPERTY2);
        CU_ASSERT_STRING_EQUAL(rt_message_get_resource(m), CTXT);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(rt_message_get_criteria(m), "every")), 5);
        CU_ASSERT_STRING_EQUAL(rt_message_get_attribute(m), "t");
        CU_ASSERT_STRING_EQUAL(rt_message_get_access_token(m), "tok");
        CU_ASSERT_EQUAL(json_array_size(rt_message_get_value(m)), 2);
        /* Unknown body fields are the application's and pass through. */
        CU_ASSERT_PTR_NOT_NULL(json_object_get(rt_message_get_body(m), "x-extra"));
        CU_ASSERT_EQUAL(rt_message_get_code(m), -ENODATA);
        CU_ASSERT_PTR_NULL(rt_message_get_description(m));
        roundtrip(m);

        r = parse_ok(MSG("response", "{\"code\":404}"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(rt_message_get_code(r), 404);
        CU_ASSERT_PTR_NULL(rt_message_get_description(r));
        CU_ASSERT_PTR_NULL(rt_message_get_value(r));
        CU_ASSERT_PTR_NULL(rt_message_get_resource(r));
}

static void test_roundtrip_keeps_form(void) {
        _cleanup_rt_message_ rt_message *single = NULL, *array = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;

        single = parse_ok(MSG("read", "{}"));
        array = parse_ok("{\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":[\"" RUNTIME "\"],\"body\":{}}");
        CU_ASSERT_PTR_NOT_NULL_FATAL(single);
        CU_ASSERT_PTR_NOT_NULL_FATAL(array);
        CU_ASSERT_FALSE(rt_message_equal(single, array));
        CU_ASSERT_EQUAL_FATAL(rt_message_to_json(single, &a), 0);
        CU_ASSERT_EQUAL_FATAL(rt_message_to_json(array, &b), 0);
        CU_ASSERT_STRING_EQUAL(a, MSG("read", "{}"));
        CU_ASSERT_STRING_EQUAL(b, "{\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":[\"" RUNTIME
                                  "\"],\"body\":{}}");
        roundtrip(single);
        roundtrip(array);
}

static void test_serialise_is_one_line(void) {
        _cleanup_rt_message_ rt_message *m = NULL;
        _cleanup_free_ char *json = NULL;

        m = parse_ok(MSG("update", "{\"value\":\"line1\\nline2\\r\\u2028\",\"attribute\":\"a\\tb\"}"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(json_string_value(rt_message_get_value(m)), "line1\nline2\r\xe2\x80\xa8");
        CU_ASSERT_EQUAL_FATAL(rt_message_to_json(m, &json), 0);
        CU_ASSERT_PTR_NULL(strchr(json, '\n'));
        CU_ASSERT_PTR_NULL(strchr(json, '\r'));
        roundtrip(m);
}

static void test_response_construction(void) {
        _cleanup_rt_message_ rt_message *req = NULL, *resp = NULL, *multi = NULL, *resp2 = NULL, *err = NULL;
        rt_message *untouched = (rt_message *) 0x1;
        json_t *value;

        req = parse_ok("{\"id\":77,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" CTXT "\",\"body\":{}}");
        CU_ASSERT_PTR_NOT_NULL_FATAL(req);

        value = json_pack("{s:f}", "temperature", 21.5);
        CU_ASSERT_EQUAL_FATAL(rt_message_new_response(req, NULL, 200, "OK", value, &resp), 0);
        CU_ASSERT_EQUAL(rt_message_get_type(resp), RT_MESSAGE_RESPONSE);
        CU_ASSERT_EQUAL(rt_message_get_id(resp), 77);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(resp), CTXT);
        CU_ASSERT_EQUAL(rt_message_get_n_to(resp), 1);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(resp, 0), HYPERTY);
        CU_ASSERT_EQUAL(rt_message_get_code(resp), 200);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(resp), "OK");
        CU_ASSERT_TRUE(json_equal(rt_message_get_value(resp), value));
        /* value is borrowed: the caller's object stays its own. */
        CU_ASSERT_EQUAL(value->refcount, 1);
        json_object_set_new(value, "temperature", json_real(0));
        CU_ASSERT_FALSE(json_equal(rt_message_get_value(resp), value));
        json_decref(value);
        roundtrip(resp);

        /* Status codes outside 100-599 are refused. */
        CU_ASSERT_EQUAL(rt_message_new_response(req, NULL, 99, NULL, NULL, &untouched), -ERANGE);
        CU_ASSERT_EQUAL(rt_message_new_response(req, NULL, 600, NULL, NULL, &untouched), -ERANGE);
        CU_ASSERT_EQUAL(rt_message_new_response(req, NULL, -200, NULL, NULL, &untouched), -ERANGE);
        CU_ASSERT_EQUAL(rt_message_new_response(req, NULL, 100, NULL, NULL, &resp2), 0);
        resp2 = rt_message_free(resp2);
        CU_ASSERT_EQUAL(rt_message_new_response(req, NULL, 599, NULL, NULL, &resp2), 0);
        CU_ASSERT_PTR_NULL(rt_message_get_description(resp2));
        resp2 = rt_message_free(resp2);

        /* A response is never answered. */
        CU_ASSERT_EQUAL(rt_message_new_response(resp, NULL, 200, NULL, NULL, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(rt_message_new_error(resp, NULL, 400, "no", &untouched), -EINVAL);

        /* Invalid responder address, invalid UTF-8 description. */
        CU_ASSERT_EQUAL(rt_message_new_response(req, "not-an-address", 200, NULL, NULL, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(rt_message_new_response(req, NULL, 200, "bad \xff", NULL, &untouched), -EINVAL);
        CU_ASSERT_PTR_EQUAL(untouched, (rt_message *) 0x1);

        /* Several recipients: the first by default, or the one named. */
        multi = parse_ok("{\"id\":5,\"type\":\"execute\",\"from\":\"" HYPERTY "\",\"to\":[\"" RUNTIME "\",\"" HYPERTY2
                         "\"],\"body\":{}}");
        CU_ASSERT_PTR_NOT_NULL_FATAL(multi);
        CU_ASSERT_EQUAL_FATAL(rt_message_new_response(multi, HYPERTY2, 202, NULL, NULL, &resp2), 0);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(resp2), HYPERTY2);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(resp2, 0), HYPERTY);
        resp2 = rt_message_free(resp2);
        CU_ASSERT_EQUAL_FATAL(rt_message_new_response(multi, NULL, 202, NULL, NULL, &resp2), 0);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(resp2), RUNTIME);

        /* Errors need 400-599. */
        CU_ASSERT_EQUAL(rt_message_new_error(req, NULL, 200, "fine", &untouched), -ERANGE);
        CU_ASSERT_EQUAL(rt_message_new_error(req, NULL, 399, "fine", &untouched), -ERANGE);
        CU_ASSERT_EQUAL_FATAL(rt_message_new_error(req, NULL, 404, "field 'resource': not found", &err), 0);
        CU_ASSERT_EQUAL(rt_message_get_code(err), 404);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(err), "field 'resource': not found");
        CU_ASSERT_PTR_NULL(rt_message_get_value(err));
        CU_ASSERT_EQUAL(rt_message_get_id(err), 77);
        roundtrip(err);
}

static void test_error_for_invalid(void) {
        static const char bad_body[] = "{\"id\":12,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":[\"" RUNTIME
                                       "\"],\"body\":{\"criteria\":7}}";
        static const char bad_resp[] = MSG("response", "{\"code\":\"200\"}");
        static const char no_id[] = "{\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{}}";
        static const char bad_from[] = "{\"id\":3,\"type\":\"read\",\"from\":\"x\",\"to\":\"" RUNTIME "\",\"body\":{}}";
        _cleanup_rt_message_ rt_message *e = NULL, *e2 = NULL;
        _cleanup_free_ char *reason = NULL;
        rt_message *untouched = (rt_message *) 0x1, *m = NULL;

        CU_ASSERT_EQUAL(rt_message_parse(bad_body, strlen(bad_body), NULL, &m, &reason), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
        CU_ASSERT_EQUAL_FATAL(rt_message_new_error_for_invalid(bad_body, strlen(bad_body), NULL, NULL, 400, reason, &e),
                              0);
        CU_ASSERT_EQUAL(rt_message_get_id(e), 12);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(e), RUNTIME);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(e, 0), HYPERTY);
        CU_ASSERT_EQUAL(rt_message_get_code(e), 400);
        CU_ASSERT_STRING_EQUAL(rt_message_get_description(e), reason);

        /* An explicit responder overrides the recovered "to". */
        CU_ASSERT_EQUAL_FATAL(rt_message_new_error_for_invalid(bad_body, strlen(bad_body), NULL, SM, 400, NULL, &e2), 0);
        CU_ASSERT_STRING_EQUAL(rt_message_get_from(e2), SM);

        CU_ASSERT_EQUAL(rt_message_new_error_for_invalid(bad_resp, strlen(bad_resp), NULL, NULL, 400, "x", &untouched),
                        -EINVAL);
        CU_ASSERT_EQUAL(rt_message_new_error_for_invalid(no_id, strlen(no_id), NULL, NULL, 400, "x", &untouched),
                        -EBADMSG);
        CU_ASSERT_EQUAL(rt_message_new_error_for_invalid(bad_from, strlen(bad_from), NULL, NULL, 400, "x", &untouched),
                        -EBADMSG);
        CU_ASSERT_EQUAL(rt_message_new_error_for_invalid("{{", 2, NULL, NULL, 400, "x", &untouched), -EBADMSG);
        CU_ASSERT_EQUAL(rt_message_new_error_for_invalid(bad_body, strlen(bad_body), NULL, NULL, 200, "x", &untouched),
                        -ERANGE);
        CU_ASSERT_PTR_EQUAL(untouched, (rt_message *) 0x1);
}

static void test_new(void) {
        _cleanup_rt_message_ rt_message *m = NULL, *multi = NULL, *empty = NULL;
        rt_message *untouched = (rt_message *) 0x1;
        const char *to[] = { RUNTIME, HYPERTY2 };
        const char *bad_to[] = { RUNTIME, "ctxt://example.com/a/../b" };
        json_t *body, *deep, *inner;

        body = json_pack("{s:s,s:{s:i}}", "resource", CTXT, "criteria", "n", 1);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_SUBSCRIBE, 3, HYPERTY, SM, body, &m), 0);
        /* The body is borrowed: our reference is still the only one. */
        CU_ASSERT_EQUAL(body->refcount, 1);
        CU_ASSERT_STRING_EQUAL(rt_message_get_resource(m), CTXT);
        roundtrip(m);

        CU_ASSERT_EQUAL_FATAL(rt_message_new_multi(RT_MESSAGE_FORWARD, 4, HYPERTY, to, 2, body, &multi), 0);
        CU_ASSERT_EQUAL(rt_message_get_n_to(multi), 2);
        CU_ASSERT_STRING_EQUAL(rt_message_get_to(multi, 1), HYPERTY2);
        roundtrip(multi);

        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_READ, 0, HYPERTY, CTXT, NULL, &empty), 0);
        CU_ASSERT_EQUAL(json_object_size(rt_message_get_body(empty)), 0);
        roundtrip(empty);

        CU_ASSERT_EQUAL(rt_message_new_multi(RT_MESSAGE_FORWARD, 4, HYPERTY, bad_to, 2, body, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(rt_message_new_multi(RT_MESSAGE_FORWARD, 4, HYPERTY, to, 0, body, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_READ, 1, "user://1.2.3.4/x", CTXT, NULL, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_READ, 1, HYPERTY, NULL, NULL, &untouched), -EINVAL);
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_READ, RT_MESSAGE_ID_MAX + 1, HYPERTY, CTXT, NULL, &untouched),
                        -ERANGE);
        CU_ASSERT_EQUAL(rt_message_new(_RT_MESSAGE_TYPE_MAX, 1, HYPERTY, CTXT, NULL, &untouched), -EINVAL);
        /* A response needs a code; a request may not carry one. */
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_RESPONSE, 1, HYPERTY, CTXT, NULL, &untouched), -EINVAL);
        json_object_set_new(body, "code", json_integer(200));
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_READ, 1, HYPERTY, CTXT, body, &untouched), -EINVAL);
        json_decref(body);

        body = json_array();
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_READ, 1, HYPERTY, CTXT, body, &untouched), -EINVAL);
        json_decref(body);

        /* What a parser would refuse cannot be built either. */
        body = json_object();
        json_object_set_new(body, "value", json_stringn("a\0b", 3));
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_UPDATE, 1, HYPERTY, CTXT, body, &untouched), -EINVAL);
        json_decref(body);

        body = json_object();
        json_object_setn_new(body, "k\0y", 3, json_true());
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_UPDATE, 1, HYPERTY, CTXT, body, &untouched), -EINVAL);
        json_decref(body);

        /* body is depth 2; 30 nested arrays in it make 32 in all: allowed;
         * one more is not. */
        body = json_object();
        deep = json_array();
        json_object_set_new(body, "value", deep);
        for (int i = 1; i < 30; i++) {
                inner = json_array();
                json_array_append_new(deep, inner);
                deep = inner;
        }
        m = rt_message_free(m);
        CU_ASSERT_EQUAL_FATAL(rt_message_new(RT_MESSAGE_UPDATE, 1, HYPERTY, CTXT, body, &m), 0);
        roundtrip(m);
        json_array_append_new(deep, json_object());
        CU_ASSERT_EQUAL(rt_message_new(RT_MESSAGE_UPDATE, 1, HYPERTY, CTXT, body, &untouched), -E2BIG);
        json_decref(body);

        CU_ASSERT_PTR_EQUAL(untouched, (rt_message *) 0x1);
}

static void test_bad_envelope(void) {
        check_bad("", -EBADMSG, "empty input");
        check_bad("not json", -EBADMSG, "invalid JSON");
        check_bad("{\"id\":1,", -EBADMSG, "end of input");
        check_bad("[1,2]", -EINVAL, "expected a JSON object");
        check_bad("\"read\"", -EINVAL, "expected a JSON object");
        check_bad("42", -EINVAL, "expected a JSON object");
        check_bad("null", -EINVAL, "expected a JSON object");

        check_bad("{\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{}}", -EINVAL,
                  "field 'id': missing");
        check_bad("{\"id\":1,\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{}}", -EINVAL,
                  "field 'type': missing");
        check_bad("{\"id\":1,\"type\":\"read\",\"to\":\"" RUNTIME "\",\"body\":{}}", -EINVAL, "field 'from': missing");
        check_bad("{\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"body\":{}}", -EINVAL, "field 'to': missing");
        check_bad("{\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\"}", -EINVAL,
                  "field 'body': missing");
}

#define WITH_ID(id) "{\"id\":" id ",\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{}}"
#define WITH_TYPE(t) "{\"id\":1,\"type\":" t ",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{}}"
#define WITH_FROM(f) "{\"id\":1,\"type\":\"read\",\"from\":" f ",\"to\":\"" RUNTIME "\",\"body\":{}}"
#define WITH_TO(t) "{\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":" t ",\"body\":{}}"

static void test_bad_fields(void) {
        _cleanup_rt_message_ rt_message *zero = NULL, *max = NULL;

        zero = parse_ok(WITH_ID("0"));
        CU_ASSERT_PTR_NOT_NULL(zero);
        max = parse_ok(WITH_ID("9007199254740991"));
        CU_ASSERT_EQUAL(rt_message_get_id(max), RT_MESSAGE_ID_MAX);

        check_bad(WITH_ID("\"1\""), -EINVAL, "field 'id': expected an integer");
        check_bad(WITH_ID("-1"), -ERANGE, "field 'id'");
        check_bad(WITH_ID("1.0"), -EINVAL, "field 'id': expected an integer");
        check_bad(WITH_ID("1e3"), -EINVAL, "field 'id': expected an integer");
        check_bad(WITH_ID("9007199254740992"), -ERANGE, "field 'id'");
        check_bad(WITH_ID("9223372036854775807"), -ERANGE, "field 'id'");
        /* Too big even for jansson's 64-bit integers. */
        check_bad(WITH_ID("99999999999999999999999"), -EBADMSG, "number too big");
        check_bad(WITH_ID("null"), -EINVAL, "field 'id'");

        check_bad(WITH_TYPE("5"), -EINVAL, "field 'type': expected a string");
        check_bad(WITH_TYPE("\"READ\""), -EINVAL, "field 'type': unknown message type");
        check_bad(WITH_TYPE("\"notify\""), -EINVAL, "field 'type': unknown message type");
        check_bad(WITH_TYPE("\"\""), -EINVAL, "field 'type': unknown message type");

        check_bad(WITH_FROM("1"), -EINVAL, "field 'from': expected an address string");
        check_bad(WITH_FROM("[\"" HYPERTY "\"]"), -EINVAL, "field 'from': expected an address string");
        check_bad(WITH_FROM("\"http://example.com/x\""), -EINVAL, "field 'from': unknown scheme");
        check_bad(WITH_FROM("\"hyperty://example.com/not-a-uuid\""), -EINVAL, "field 'from'");

        check_bad(WITH_TO("[]"), -EINVAL, "field 'to': expected at least one address");
        check_bad(WITH_TO("{}"), -EINVAL, "field 'to': expected an address string or an array of addresses");
        check_bad(WITH_TO("7"), -EINVAL, "field 'to': expected an address string or an array of addresses");
        check_bad(WITH_TO("[1]"), -EINVAL, "field 'to[0]': expected an address string");
        check_bad(WITH_TO("[\"" RUNTIME "\",\"ctxt://example.com/a//b\"]"), -EINVAL, "field 'to[1]': empty path");
        check_bad(WITH_TO("\"ctxt://Example.com/a\""), -EINVAL, "field 'to': host name must be lowercase");
}

static void test_bad_body(void) {
        check_bad(MSG("read", "[]"), -EINVAL, "field 'body': expected an object");
        check_bad(MSG("read", "\"x\""), -EINVAL, "field 'body': expected an object");
        check_bad(MSG("read", "null"), -EINVAL, "field 'body': expected an object");

        check_bad(MSG("response", "{}"), -EINVAL, "field 'body.code': missing");
        check_bad(MSG("response", "{\"code\":\"200\"}"), -EINVAL, "field 'body.code': expected an integer");
        check_bad(MSG("response", "{\"code\":200.0}"), -EINVAL, "field 'body.code': expected an integer");
        check_bad(MSG("response", "{\"code\":99}"), -ERANGE, "field 'body.code'");
        check_bad(MSG("response", "{\"code\":600}"), -ERANGE, "field 'body.code'");
        check_bad(MSG("response", "{\"code\":-404}"), -ERANGE, "field 'body.code'");
        check_bad(MSG("response", "{\"code\":4294967496}"), -ERANGE, "field 'body.code'");
        check_bad(MSG("response", "{\"code\":200,\"description\":1}"), -EINVAL,
                  "field 'body.description': expected a string");
        check_bad(MSG("read", "{\"code\":200}"), -EINVAL, "field 'body.code': only allowed in a response");
        check_bad(MSG("read", "{\"description\":\"x\"}"), -EINVAL, "field 'body.description': only allowed");

        check_bad(MSG("read", "{\"resource\":5}"), -EINVAL, "field 'body.resource': expected an address string");
        check_bad(MSG("read", "{\"resource\":\"ctxt://example.com\"}"), -EINVAL, "field 'body.resource'");
        check_bad(MSG("read", "{\"criteria\":\"all\"}"), -EINVAL, "field 'body.criteria': expected an object");
        check_bad(MSG("read", "{\"criteria\":[]}"), -EINVAL, "field 'body.criteria': expected an object");
        check_bad(MSG("read", "{\"attribute\":1}"), -EINVAL, "field 'body.attribute': expected a string");
        check_bad(MSG("read", "{\"accessToken\":{}}"), -EINVAL, "field 'body.accessToken': expected a string");
}

static void test_strict_json(void) {
        static const char with_nul[] = MSG("read", "{\"attribute\":\"a\0b\"}");
        static const char odd_key[] = "{\"a b\":1,\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME
                                      "\",\"body\":{}}";
        _cleanup_free_ char *reason = NULL;
        rt_message *m = NULL;

        check_bad("{\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{},\"extra\":1}",
                  -EINVAL, "field 'extra': unknown top-level field");
        /* An odd key is not echoed back. */
        check_bad("{\"id\":1,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME
                  "\",\"body\":{},\"a b\\n\":1}",
                  -EINVAL, "unknown top-level field");
        CU_ASSERT_EQUAL(rt_message_parse(odd_key, strlen(odd_key), NULL, &m, &reason), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
        CU_ASSERT_PTR_NULL(strstr(reason, "a b"));

        check_bad("{\"id\":1,\"id\":2,\"type\":\"read\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{}}",
                  -EBADMSG, "duplicate object key");
        check_bad(MSG("read", "{\"value\":{\"k\":1,\"k\":2}}"), -EBADMSG, "duplicate object key");
        check_bad(MSG("read", "{}") " x", -EBADMSG, "trailing data");
        check_bad(MSG("read", "{}") MSG("read", "{}"), -EBADMSG, "trailing data");
        check_bad_n(with_nul, sizeof(with_nul) - 1, NULL, -EBADMSG, "NUL byte");
        /* A NUL right after a valid message is garbage too, not an end. */
        check_bad_n(MSG("read", "{}") "\0", sizeof(MSG("read", "{}")), NULL, -EBADMSG, "NUL byte");
        check_bad(MSG("read", "{\"attribute\":\"a\\u0000b\"}"), -EBADMSG, "\\u0000");
        check_bad(MSG("read", "{\"attribute\":\"\xff\xfe\"}"), -EBADMSG, "UTF-8");
        check_bad(MSG("read", "{\"value\":NaN}"), -EBADMSG, "invalid JSON");
}

/* A message whose body.value holds `levels` nested arrays, `inner` in the
 * middle; the message is depth 2 + levels. */
static char *nested(unsigned levels, const char *inner) {
        char *s = NULL;
        size_t n;
        FILE *f = open_memstream(&s, &n);

        if (!f)
                return NULL;
        fputs("{\"id\":1,\"type\":\"update\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME "\",\"body\":{\"value\":", f);
        for (unsigned i = 0; i < levels; i++)
                fputc('[', f);
        fputs(inner, f);
        for (unsigned i = 0; i < levels; i++)
                fputc(']', f);
        fputs("}}", f);
        fclose(f);
        return s;
}

static void test_depth_limit(void) {
        _cleanup_free_ char *d32 = nested(30, ""), *d33 = nested(31, ""), *d3000 = nested(3000, "");
        _cleanup_free_ char *d5 = nested(3, "");
        _cleanup_free_ char *brackets_in_string = nested(30, "\"[[[[{{{{\\\"[[[[{{{{\\\\\"");
        _cleanup_free_ char *escaped_backslash = nested(1, "\"\\\\\",[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
        _cleanup_rt_message_ rt_message *m = NULL, *m2 = NULL, *m3 = NULL;
        rt_message_limits tight = { .max_depth = 5 };

        CU_ASSERT_PTR_NOT_NULL_FATAL(d32);
        CU_ASSERT_EQUAL(rt_message_parse(d32, strlen(d32), NULL, &m, NULL), 0);
        roundtrip(m);
        check_bad(d33, -E2BIG, "deeper than 32");
        /* Far beyond jansson's own limit: still our clean error. */
        check_bad(d3000, -E2BIG, "deeper than 32");

        CU_ASSERT_EQUAL(rt_message_parse(d5, strlen(d5), &tight, &m2, NULL), 0);
        check_bad_n(d32, strlen(d32), &tight, -E2BIG, "deeper than 5");

        /* Brackets inside strings, also after escaped quotes, do not count. */
        CU_ASSERT_EQUAL(rt_message_parse(brackets_in_string, strlen(brackets_in_string), NULL, &m3, NULL), 0);
        /* An escaped backslash ends in a real closing quote: the brackets
         * after it count. */
        check_bad(escaped_backslash, -E2BIG, "deeper than 32");
}

static char *sized_message(size_t total) {
        static const char head[] = "{\"id\":1,\"type\":\"update\",\"from\":\"" HYPERTY "\",\"to\":\"" RUNTIME
                                   "\",\"body\":{\"value\":\"";
        static const char tail[] = "\"}}";
        size_t pad = total - (sizeof(head) - 1) - (sizeof(tail) - 1);
        char *s = malloc(total + 1);

        if (!s)
                return NULL;
        memcpy(s, head, sizeof(head) - 1);
        memset(s + sizeof(head) - 1, 'x', pad);
        memcpy(s + sizeof(head) - 1 + pad, tail, sizeof(tail));
        return s;
}

static void test_size_limit(void) {
        _cleanup_free_ char *at = sized_message(RT_MESSAGE_MAX_SIZE_DEFAULT);
        _cleanup_free_ char *over = sized_message(RT_MESSAGE_MAX_SIZE_DEFAULT + 1);
        _cleanup_rt_message_ rt_message *m = NULL, *m2 = NULL;
        rt_message_limits small = { .max_size = 200 }, big = { .max_size = 128 * 1024 };

        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        CU_ASSERT_PTR_NOT_NULL_FATAL(over);
        CU_ASSERT_EQUAL(strlen(at), RT_MESSAGE_MAX_SIZE_DEFAULT);
        CU_ASSERT_EQUAL(rt_message_parse(at, strlen(at), NULL, &m, NULL), 0);
        check_bad(over, -EMSGSIZE, "exceeds the limit of 65536 bytes");
        check_bad_n(at, strlen(at), &small, -EMSGSIZE, "limit of 200 bytes");
        CU_ASSERT_EQUAL(rt_message_parse(over, strlen(over), &big, &m2, NULL), 0);
}

static void test_type_strings(void) {
        for (rt_message_type t = 0; t < _RT_MESSAGE_TYPE_MAX; t++)
                CU_ASSERT_EQUAL(rt_message_type_from_string(rt_message_type_to_string(t)), t);
        CU_ASSERT_STRING_EQUAL(rt_message_type_to_string(RT_MESSAGE_UNSUBSCRIBE), "unsubscribe");
        CU_ASSERT_EQUAL(rt_message_type_from_string("Read"), -EINVAL);
        CU_ASSERT_EQUAL(rt_message_type_from_string(NULL), -EINVAL);
        CU_ASSERT_PTR_NULL(rt_message_type_to_string(_RT_MESSAGE_TYPE_MAX));
        CU_ASSERT_PTR_NULL(rt_message_type_to_string(_RT_MESSAGE_TYPE_INVALID));
        CU_ASSERT_PTR_NULL(rt_message_free(NULL));
}

static void test_status_for_error(void) {
        CU_ASSERT_EQUAL(rt_message_status_for_error(-EMSGSIZE), 413);
        CU_ASSERT_EQUAL(rt_message_status_for_error(-EBADMSG), 400);
        CU_ASSERT_EQUAL(rt_message_status_for_error(-EINVAL), 400);
        CU_ASSERT_EQUAL(rt_message_status_for_error(-ERANGE), 400);
        CU_ASSERT_EQUAL(rt_message_status_for_error(-E2BIG), 400);
        CU_ASSERT_EQUAL(rt_message_status_for_error(-ENOMEM), 500);
}

static CU_TestInfo tests[] = {
        { "all nine types valid", test_all_types_valid },
        { "accessors", test_accessors },
        { "round trip keeps the form of 'to'", test_roundtrip_keeps_form },
        { "serialisation is one line", test_serialise_is_one_line },
        { "response construction", test_response_construction },
        { "error response for invalid input", test_error_for_invalid },
        { "rt_message_new", test_new },
        { "bad envelope", test_bad_envelope },
        { "bad fields", test_bad_fields },
        { "bad body", test_bad_body },
        { "strict JSON", test_strict_json },
        { "depth limit", test_depth_limit },
        { "size limit", test_size_limit },
        { "type strings", test_type_strings },
        { "status code for a parse error", test_status_for_error },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("message", tests)
