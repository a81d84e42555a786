/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "address.h"
#include "tests.h"

#define UUID "0f8fad5b-d9cb-469f-a165-70867728950e"

static void check_valid(const char *s, rt_address_scheme scheme, const char *authority, const char *path) {
        _cleanup_rt_address_ rt_address *a = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        r = rt_address_parse(s, &a, &reason);
        if (r < 0)
                fprintf(stderr, "unexpected failure for %s: %s\n", s, strna(reason));
        CU_ASSERT_EQUAL_FATAL(r, 0);
        CU_ASSERT_PTR_NULL(reason);
        CU_ASSERT_EQUAL(rt_address_get_scheme(a), scheme);
        CU_ASSERT_STRING_EQUAL(rt_address_get_authority(a), authority);
        CU_ASSERT_STRING_EQUAL(rt_address_get_path(a), path);
        CU_ASSERT_STRING_EQUAL(rt_address_to_string(a), s);
        CU_ASSERT_TRUE(rt_address_is_valid(s));
}

static void check_invalid(const char *s, int error, const char *reason_part) {
        rt_address *a = (rt_address *) 0x1;
        _cleanup_free_ char *reason = NULL;
        int r;

        r = rt_address_parse(s, &a, &reason);
        if (r != error || !reason || !strstr(reason, reason_part))
                fprintf(stderr, "for '%s': r=%d reason=%s\n", strna(s), r, strna(reason));
        CU_ASSERT_EQUAL(r, error);
        /* Output untouched on failure. */
        CU_ASSERT_PTR_EQUAL(a, (rt_address *) 0x1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, reason_part));
        CU_ASSERT_FALSE(rt_address_is_valid(s));
}

static void test_valid_each_scheme(void) {
        check_valid("runtime://example.com/" UUID, RT_ADDRESS_RUNTIME, "example.com", UUID);
        check_valid("hyperty://sub.example-1.org/" UUID, RT_ADDRESS_HYPERTY, "sub.example-1.org", UUID);
        check_valid("user://google.com/alice", RT_ADDRESS_USER, "google.com", "alice");
        check_valid("user://idp.example/alice@example.com", RT_ADDRESS_USER, "idp.example", "alice@example.com");
        check_valid("user://idp.example/j%C3%B6rg", RT_ADDRESS_USER, "idp.example", "j%C3%B6rg");
        check_valid("ctxt://example.com/room-1", RT_ADDRESS_CTXT, "example.com", "room-1");
        check_valid("ctxt://example.com/building/2/room_3/temperature", RT_ADDRESS_CTXT, "example.com",
                    "building/2/room_3/temperature");
        check_valid("domain://msg-node.example.com/sm", RT_ADDRESS_DOMAIN, "msg-node.example.com", "sm");
        check_valid("domain://registry.example.com", RT_ADDRESS_DOMAIN, "registry.example.com", "");
        check_valid("domain://localhost", RT_ADDRESS_DOMAIN, "localhost", "");
}

static void test_valid_ip_literals(void) {
        check_valid("runtime://192.168.1.20/" UUID, RT_ADDRESS_RUNTIME, "192.168.1.20", UUID);
        check_valid("hyperty://[::1]/" UUID, RT_ADDRESS_HYPERTY, "[::1]", UUID);
        check_valid("ctxt://[2001:db8::1]/a", RT_ADDRESS_CTXT, "[2001:db8::1]", "a");
        check_valid("domain://127.0.0.1/sm", RT_ADDRESS_DOMAIN, "127.0.0.1", "sm");
        /* Digits are fine in labels as long as the last label is not all
         * digits. */
        check_valid("domain://1.2.3.example", RT_ADDRESS_DOMAIN, "1.2.3.example", "");
}

static void test_invalid_scheme_and_shape(void) {
        check_invalid(NULL, -EINVAL, "no address");
        check_invalid("", -EINVAL, "empty");
        check_invalid("example.com/x", -EINVAL, "'://'");
        check_invalid("http://example.com/x", -EINVAL, "unknown scheme");
        check_invalid("RUNTIME://example.com/" UUID, -EINVAL, "unknown scheme");
        check_invalid("://example.com", -EINVAL, "unknown scheme");
        check_invalid("averyveryverylongscheme://example.com", -EINVAL, "unknown scheme");
        check_invalid("ctxt://", -EINVAL, "missing host");
        check_invalid("ctxt:///a", -EINVAL, "missing host");
}

static void test_invalid_authority(void) {
        check_invalid("domain://Example.com", -EINVAL, "lowercase");
        check_invalid("domain://example.com:8080", -EINVAL, "port");
        check_invalid("domain://bob@example.com", -EINVAL, "user information");
        check_invalid("domain://exa_mple.com", -EINVAL, "not allowed in host name");
        check_invalid("domain://exa mple.com", -EINVAL, "not allowed in host name");
        check_invalid("domain://example..com", -EINVAL, "empty label");
        check_invalid("domain://example.com.", -EINVAL, "empty label");
        check_invalid("domain://.example.com", -EINVAL, "empty label");
        check_invalid("domain://-example.com", -EINVAL, "'-'");
        check_invalid("domain://example-.com", -EINVAL, "'-'");
        check_invalid("domain://999.1.1.1", -EINVAL, "IPv4");
        check_invalid("domain://1.2.3", -EINVAL, "IPv4");
        check_invalid("domain://01.2.3.4", -EINVAL, "IPv4");
        check_invalid("domain://[::1", -EINVAL, "unterminated");
        check_invalid("domain://[]", -EINVAL, "unterminated");
        check_invalid("domain://[0:0::1]", -EINVAL, "canonical");
        check_invalid("domain://[2001:DB8::1]", -EINVAL, "canonical");
        check_invalid("domain://[fe80::1%eth0]", -EINVAL, "IPv6");
        check_invalid("user://192.168.1.1/alice", -EINVAL, "identity provider");
        check_invalid("user://[::1]/alice", -EINVAL, "identity provider");
}

static void test_invalid_path(void) {
        check_invalid("runtime://example.com", -EINVAL, "UUID");
        check_invalid("runtime://example.com/" UUID "/x", -EINVAL, "exactly one");
        check_invalid("hyperty://example.com/0F8FAD5B-D9CB-469F-A165-70867728950E", -EINVAL, "lowercase UUID");
        check_invalid("hyperty://example.com/0f8fad5bd9cb469fa16570867728950e", -EINVAL, "UUID");
        check_invalid("hyperty://example.com/{0f8fad5b-d9cb-469f-a165-70867728950e}", -EINVAL, "not allowed");
        check_invalid("user://google.com", -EINVAL, "user id");
        check_invalid("user://google.com/a/b", -EINVAL, "user id");
        check_invalid("ctxt://example.com", -EINVAL, "resource path");
        check_invalid("ctxt://example.com/", -EINVAL, "empty path segment");
        check_invalid("ctxt://example.com/a//b", -EINVAL, "empty path segment");
        check_invalid("ctxt://example.com/a/", -EINVAL, "empty path segment");
        check_invalid("domain://example.com/", -EINVAL, "empty path segment");
        check_invalid("ctxt://example.com/a/../b", -EINVAL, "'..'");
        check_invalid("ctxt://example.com/./b", -EINVAL, "'.'");
        check_invalid("ctxt://example.com/a b", -EINVAL, "whitespace");
        check_invalid("ctxt://example.com/a\tb", -EINVAL, "whitespace");
        check_invalid("ctxt://example.com/a\nb", -EINVAL, "control");
        check_invalid("ctxt://example.com/a\x7f", -EINVAL, "control");
        check_invalid("ctxt://example.com/a?x=1", -EINVAL, "not allowed in path");
        check_invalid("ctxt://example.com/a#frag", -EINVAL, "not allowed in path");
        check_invalid("ctxt://example.com/a\\b", -EINVAL, "not allowed in path");
        check_invalid("ctxt://example.com/\xc3\xa9", -EINVAL, "not allowed in path");
        check_invalid("ctxt://example.com/a%2", -EINVAL, "truncated");
        check_invalid("ctxt://example.com/a%", -EINVAL, "truncated");
        check_invalid("ctxt://example.com/a%c3%a9", -EINVAL, "upper-case");
        check_invalid("ctxt://example.com/a%0A", -EINVAL, "control");
        check_invalid("ctxt://example.com/a%00", -EINVAL, "control");
        check_invalid("ctxt://example.com/a%2Fb", -EINVAL, "'/'");
        check_invalid("ctxt://example.com/%2E%2E", -EINVAL, "unreserved");
        check_invalid("ctxt://example.com/%41", -EINVAL, "unreserved");
}

static void test_length_limits(void) {
        const char *prefix = "ctxt://example.com/";
        char s[RT_ADDRESS_MAX_LEN + 2];
        char host[300];

        /* Exactly at the limit passes, one byte over fails. */
        memset(s, 'a', sizeof(s));
        memcpy(s, prefix, strlen(prefix));
        s[RT_ADDRESS_MAX_LEN] = '\0';
        CU_ASSERT_TRUE(rt_address_is_valid(s));
        s[RT_ADDRESS_MAX_LEN] = 'a';
        s[RT_ADDRESS_MAX_LEN + 1] = '\0';
        check_invalid(s, -ENAMETOOLONG, "longer than 1024");

        /* A 63-byte label passes, 64 fails. */
        snprintf(host, sizeof(host), "domain://%.63s.example", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        CU_ASSERT_TRUE(rt_address_is_valid(host));
        snprintf(host, sizeof(host), "domain://%.64s.example", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        check_invalid(host, -EINVAL, "label longer than 63");

        /* 253 bytes of host name pass, 254 fail: four 62-byte labels plus
         * dots make 251, then ".x" or ".xy". */
        {
                char name[260];

                memset(name, 'b', 251);
                name[251] = '\0';
                for (int i = 1; i < 4; i++)
                        name[i * 63 - 1] = '.';
                CU_ASSERT_EQUAL(strlen(name), 251);
                snprintf(host, sizeof(host), "domain://%s.x", name);
                CU_ASSERT_TRUE(rt_address_is_valid(host));
                snprintf(host, sizeof(host), "domain://%s.xy", name);
                check_invalid(host, -EINVAL, "longer than 253");
        }
}

static void test_scheme_strings(void) {
        for (rt_address_scheme s = 0; s < _RT_ADDRESS_SCHEME_MAX; s++)
                CU_ASSERT_EQUAL(rt_address_scheme_from_string(rt_address_scheme_to_string(s)), s);
        CU_ASSERT_STRING_EQUAL(rt_address_scheme_to_string(RT_ADDRESS_CTXT), "ctxt");
        CU_ASSERT_EQUAL(rt_address_scheme_from_string("ctxt://"), -EINVAL);
        CU_ASSERT_EQUAL(rt_address_scheme_from_string("Ctxt"), -EINVAL);
        CU_ASSERT_EQUAL(rt_address_scheme_from_string(""), -EINVAL);
        CU_ASSERT_EQUAL(rt_address_scheme_from_string(NULL), -EINVAL);
        CU_ASSERT_PTR_NULL(rt_address_scheme_to_string(_RT_ADDRESS_SCHEME_MAX));
        CU_ASSERT_PTR_NULL(rt_address_scheme_to_string(_RT_ADDRESS_SCHEME_INVALID));
}

static void test_prefix_and_equal(void) {
        _cleanup_rt_address_ rt_address *a = NULL, *b = NULL, *c = NULL;

        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://d/a/b", "ctxt://d/a"), 1);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://d/a", "ctxt://d/a"), 1);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://d/ab", "ctxt://d/a"), 0);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://d/a", "ctxt://d/a/b"), 0);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://d2/a", "ctxt://d/a"), 0);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://d.e/a", "ctxt://d/a"), 0);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("domain://x/sm", "domain://x"), 1);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("domain://xy/sm", "domain://x"), 0);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://x/sm", "domain://x"), 0);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("ctxt://d/a/b", "ctxt://d/a/"), -EINVAL);
        CU_ASSERT_EQUAL(rt_address_string_has_prefix("nope", "ctxt://d/a"), -EINVAL);

        CU_ASSERT_EQUAL_FATAL(rt_address_parse("ctxt://d/a/b/c", &a, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(rt_address_parse("ctxt://d/a", &b, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(rt_address_parse("ctxt://d/a", &c, NULL), 0);
        CU_ASSERT_TRUE(rt_address_has_prefix(a, b));
        CU_ASSERT_FALSE(rt_address_has_prefix(b, a));
        CU_ASSERT_TRUE(rt_address_equal(b, c));
        CU_ASSERT_FALSE(rt_address_equal(a, b));
        CU_ASSERT_FALSE(rt_address_has_prefix(NULL, b));
}

static void test_no_reason_wanted_and_free_null(void) {
        rt_address *a = NULL;

        /* A NULL ret_reason still fails with the same error. */
        CU_ASSERT_EQUAL(rt_address_parse("ctxt://d", &a, NULL), -EINVAL);
        CU_ASSERT_PTR_NULL(a);
        CU_ASSERT_PTR_NULL(rt_address_free(NULL));
        CU_ASSERT_EQUAL(rt_address_parse("ctxt://d/x", &a, NULL), 0);
        a = rt_address_free(a);
        CU_ASSERT_PTR_NULL(a);
}

static CU_TestInfo tests[] = {
        { "valid address of each scheme", test_valid_each_scheme },
        { "valid IP literals", test_valid_ip_literals },
        { "invalid scheme and shape", test_invalid_scheme_and_shape },
        { "invalid authority", test_invalid_authority },
        { "invalid path", test_invalid_path },
        { "length limits", test_length_limits },
        { "scheme strings", test_scheme_strings },
        { "prefix and equality", test_prefix_and_equal },
        { "no reason wanted, free NULL", test_no_reason_wanted_and_free_null },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("address", tests)
