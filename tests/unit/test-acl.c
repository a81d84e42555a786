/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "acl.h"
#include "tests.h"

static void test_principals(void) {
        _cleanup_free_ char *p = NULL;

        CU_ASSERT_TRUE(acl_principal_is_valid("dm:example.com"));
        CU_ASSERT_TRUE(acl_principal_is_valid("local:uid=0"));
        CU_ASSERT_TRUE(acl_principal_is_valid("local:uid=1000"));
        CU_ASSERT_TRUE(acl_principal_is_valid("user://idp.example.com/alice"));
        CU_ASSERT_TRUE(acl_principal_is_valid("*"));
        CU_ASSERT_FALSE(acl_principal_is_valid(NULL));
        CU_ASSERT_FALSE(acl_principal_is_valid(""));
        CU_ASSERT_FALSE(acl_principal_is_valid("dm:"));
        CU_ASSERT_FALSE(acl_principal_is_valid("dm:a/b"));
        CU_ASSERT_FALSE(acl_principal_is_valid("local:uid="));
        CU_ASSERT_FALSE(acl_principal_is_valid("local:uid=01"));
        CU_ASSERT_FALSE(acl_principal_is_valid("local:uid=-1"));
        CU_ASSERT_FALSE(acl_principal_is_valid("local:uid=4294967295"));
        CU_ASSERT_FALSE(acl_principal_is_valid("alice"));
        CU_ASSERT_FALSE(acl_principal_is_valid("user://a b"));
        CU_ASSERT_FALSE(acl_principal_is_valid("://x"));

        CU_ASSERT_EQUAL(acl_principal_local(1000, &p), 0);
        CU_ASSERT_STRING_EQUAL(p, "local:uid=1000");
}

static void test_rights_strings(void) {
        char buf[ACL_RIGHTS_STRING_MAX];
        unsigned r = 99;

        CU_ASSERT_EQUAL(acl_rights_from_string("rwxd", &r), 0);
        CU_ASSERT_EQUAL(r, ACL_ALL);
        CU_ASSERT_EQUAL(acl_rights_from_string("rx", &r), 0);
        CU_ASSERT_EQUAL(r, ACL_READ | ACL_EXECUTE);
        CU_ASSERT_EQUAL(acl_rights_from_string("-", &r), 0);
        CU_ASSERT_EQUAL(r, 0);
        r = 7;
        CU_ASSERT_EQUAL(acl_rights_from_string("xr", &r), -EINVAL);
        CU_ASSERT_EQUAL(acl_rights_from_string("rr", &r), -EINVAL);
        CU_ASSERT_EQUAL(acl_rights_from_string("q", &r), -EINVAL);
        CU_ASSERT_EQUAL(acl_rights_from_string("", &r), -EINVAL);
        CU_ASSERT_EQUAL(r, 7);
        CU_ASSERT_STRING_EQUAL(acl_rights_to_string(ACL_ALL, buf), "rwxd");
        CU_ASSERT_STRING_EQUAL(acl_rights_to_string(ACL_WRITE | ACL_DELETE, buf), "wd");
        CU_ASSERT_STRING_EQUAL(acl_rights_to_string(0, buf), "-");
}

static void test_check(void) {
        _cleanup_acl_ acl *a = NULL;

        CU_ASSERT_EQUAL(acl_new("*", &a), -EINVAL);
        CU_ASSERT_EQUAL_FATAL(acl_new("dm:example.com", &a), 0);
        CU_ASSERT_STRING_EQUAL(acl_get_owner(a), "dm:example.com");
        /* The owner holds everything without an entry. */
        CU_ASSERT_TRUE(acl_check(a, "dm:example.com", ACL_ALL));
        CU_ASSERT_FALSE(acl_check(a, "local:uid=1000", ACL_READ));

        CU_ASSERT_EQUAL(acl_set(a, "local:uid=1000", ACL_READ | ACL_EXECUTE), 0);
        CU_ASSERT_TRUE(acl_check(a, "local:uid=1000", ACL_READ));
        CU_ASSERT_TRUE(acl_check(a, "local:uid=1000", ACL_EXECUTE));
        CU_ASSERT_FALSE(acl_check(a, "local:uid=1000", ACL_READ | ACL_DELETE));
        CU_ASSERT_FALSE(acl_check(a, "local:uid=1000", 0));
        CU_ASSERT_FALSE(acl_check(a, "local:uid=1001", ACL_READ));

        /* "*" adds to everyone. */
        CU_ASSERT_EQUAL(acl_set(a, "*", ACL_READ), 0);
        CU_ASSERT_TRUE(acl_check(a, "local:uid=1001", ACL_READ));
        CU_ASSERT_FALSE(acl_check(a, "local:uid=1001", ACL_WRITE));

        /* 0 removes. */
        CU_ASSERT_EQUAL(acl_set(a, "local:uid=1000", 0), 0);
        CU_ASSERT_EQUAL(acl_get_rights(a, "local:uid=1000"), ACL_READ);
        CU_ASSERT_EQUAL(acl_get_n_entries(a), 1);
        CU_ASSERT_EQUAL(acl_set(a, "bogus", ACL_READ), -EINVAL);
        CU_ASSERT_EQUAL(acl_set(a, "local:uid=5", 1u << 7), -EINVAL);
}

static void test_json_roundtrip(void) {
        _cleanup_acl_ acl *a = NULL, *b = NULL;
        json_t *j = NULL, *e;
        const char *why = NULL;

        CU_ASSERT_EQUAL_FATAL(acl_new("local:uid=0", &a), 0);
        CU_ASSERT_EQUAL(acl_set(a, "dm:example.com", ACL_ALL), 0);
        CU_ASSERT_EQUAL(acl_set(a, "local:uid=1000", ACL_READ), 0);
        CU_ASSERT_EQUAL_FATAL(acl_to_json(a, &j), 0);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "owner")), "local:uid=0");
        e = json_object_get(j, "entries");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "dm:example.com")), "rwxd");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "local:uid=1000")), "r");
        CU_ASSERT_EQUAL_FATAL(acl_from_json(j, &b, &why), 0);
        CU_ASSERT_EQUAL(acl_get_rights(b, "local:uid=1000"), ACL_READ);
        CU_ASSERT_EQUAL(acl_get_rights(b, "dm:example.com"), ACL_ALL);
        json_decref(j);
}

static void test_json_strict_all_or_nothing(void) {
        _cleanup_acl_ acl *a = NULL, *b = NULL;
        const char *why = NULL;
        json_t *j;

        j = json_loads("{\"owner\": \"local:uid=0\", \"entries\": {}, \"x\": 1}", 0, NULL);
        CU_ASSERT_EQUAL(acl_from_json(j, &b, &why), -EINVAL);
        CU_ASSERT_PTR_NULL(b);
        CU_ASSERT_PTR_NOT_NULL(why);
        json_decref(j);
        j = json_loads("{\"owner\": \"nobody\", \"entries\": {}}", 0, NULL);
        CU_ASSERT_EQUAL(acl_from_json(j, &b, &why), -EINVAL);
        json_decref(j);

        CU_ASSERT_EQUAL_FATAL(acl_new("local:uid=0", &a), 0);
        /* The second entry is bad: the first must not be applied either. */
        j = json_loads("{\"local:uid=7\": \"r\", \"local:uid=8\": \"rq\"}", 0, NULL);
        why = NULL;
        CU_ASSERT_EQUAL(acl_apply_entries(a, j, &why), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(why);
        CU_ASSERT_EQUAL(acl_get_n_entries(a), 0);
        CU_ASSERT_FALSE(acl_check(a, "local:uid=7", ACL_READ));
        json_decref(j);
        j = json_loads("{\"bad principal\": \"r\"}", 0, NULL);
        CU_ASSERT_EQUAL(acl_apply_entries(a, j, &why), -EINVAL);
        json_decref(j);
}

static void test_entries_bounded(void) {
        _cleanup_acl_ acl *a = NULL;
        char p[32];

        CU_ASSERT_EQUAL_FATAL(acl_new("local:uid=0", &a), 0);
        for (unsigned i = 0; i < ACL_ENTRIES_MAX; i++) {
                snprintf(p, sizeof(p), "local:uid=%u", 100 + i);
                CU_ASSERT_EQUAL(acl_set(a, p, ACL_READ), 0);
        }
        CU_ASSERT_EQUAL(acl_set(a, "local:uid=99999", ACL_READ), -E2BIG);
        /* Changing an existing entry is still fine. */
        CU_ASSERT_EQUAL(acl_set(a, "local:uid=100", ACL_ALL), 0);
}

static CU_TestInfo tests[] = {
        { "principals", test_principals },
        { "rights strings", test_rights_strings },
        { "check", test_check },
        { "json roundtrip", test_json_roundtrip },
        { "json strict, all or nothing", test_json_strict_all_or_nothing },
        { "entries bounded", test_entries_bounded },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("acl", tests)
