/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ftw.h>
#include <sys/stat.h>

#include "fileio.h"
#include "identity.h"
#include "tests.h"

static char dir[64];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static void make_dir(void) {
        snprintf(dir, sizeof(dir), "/tmp/identity-test-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void remove_dir(void) {
        (void) nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static mode_t file_mode(const char *name) {
        char p[256];
        struct stat st;

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        if (stat(p, &st) < 0)
                return (mode_t) -1;
        return st.st_mode & 07777;
}

static void test_first_start_and_restart(void) {
        _cleanup_identity_ identity *a = NULL, *b = NULL;
        _cleanup_free_ char *stored = NULL;
        char p[256];

        make_dir();
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &a), 0);
        CU_ASSERT_TRUE(identity_is_new(a));
        CU_ASSERT_TRUE(identity_endpoint_is_valid(identity_get_endpoint(a)));
        /* Derived from the machine id where there is one, never the id itself. */
        CU_ASSERT_TRUE(streq(identity_get_endpoint_source(a), "machine-id") ||
                       streq(identity_get_endpoint_source(a), "random"));
        CU_ASSERT_EQUAL(strncmp(identity_get_endpoint(a), "rt-", 3), 0);
        {
                _cleanup_free_ char *mid = NULL;
                if (read_full_file("/etc/machine-id", 4096, &mid, NULL) >= 0) {
                        mid[strcspn(mid, "\n")] = '\0';
                        CU_ASSERT_PTR_NULL(strstr(identity_get_endpoint(a), mid));
                }
        }
        CU_ASSERT_EQUAL(file_mode(IDENTITY_SIGN_KEY_FILE), 0600);
        CU_ASSERT_EQUAL(file_mode(IDENTITY_TOKEN_KEY_FILE), 0600);
        CU_ASSERT_TRUE(sign_key_has_private(identity_get_sign_key(a)));
        CU_ASSERT_TRUE(token_key_has_private(identity_get_token_key(a)));
        CU_ASSERT_EQUAL(strlen(identity_get_public_key(a)), 43u);

        snprintf(p, sizeof(p), "%s/%s", dir, IDENTITY_ENDPOINT_FILE);
        CU_ASSERT_EQUAL_FATAL(read_full_file(p, 4096, &stored, NULL), 0);
        CU_ASSERT_EQUAL(strncmp(stored, identity_get_endpoint(a), strlen(identity_get_endpoint(a))), 0);

        /* Restart: the same identity, nothing created. */
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &b), 0);
        CU_ASSERT_FALSE(identity_is_new(b));
        CU_ASSERT_STRING_EQUAL(identity_get_endpoint(a), identity_get_endpoint(b));
        CU_ASSERT_STRING_EQUAL(identity_get_endpoint_source(b), "stored");
        CU_ASSERT_STRING_EQUAL(identity_get_public_key(a), identity_get_public_key(b));
        CU_ASSERT_TRUE(sign_key_public_equal(identity_get_sign_key(a), identity_get_sign_key(b)));
        CU_ASSERT_TRUE(token_key_public_equal(identity_get_token_key(a), identity_get_token_key(b)));
        CU_ASSERT_STRING_EQUAL(token_key_get_kid(identity_get_token_key(a)), token_key_get_kid(identity_get_token_key(b)));
        CU_ASSERT_EQUAL(file_mode(IDENTITY_SIGN_KEY_FILE), 0600);
        remove_dir();
}

static void test_two_devices_differ(void) {
        _cleanup_identity_ identity *a = NULL, *b = NULL;
        char d1[64];

        /* Same machine, two state directories: the keys differ; the derived
         * name is the same (it is the machine's), which is why it is
         * stored and can be configured. */
        make_dir();
        snprintf(d1, sizeof(d1), "%s", dir);
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &a), 0);
        make_dir();
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &b), 0);
        CU_ASSERT_STRING_NOT_EQUAL(identity_get_public_key(a), identity_get_public_key(b));
        CU_ASSERT_FALSE(token_key_public_equal(identity_get_token_key(a), identity_get_token_key(b)));
        if (streq(identity_get_endpoint_source(a), "machine-id"))
                CU_ASSERT_STRING_EQUAL(identity_get_endpoint(a), identity_get_endpoint(b));
        remove_dir();
        snprintf(dir, sizeof(dir), "%s", d1);
        remove_dir();
}

static void test_configured_endpoint(void) {
        _cleanup_identity_ identity *a = NULL, *b = NULL, *c = NULL;

        make_dir();
        CU_ASSERT_EQUAL(identity_load(dir, "bad endpoint", &a), -EINVAL);
        CU_ASSERT_PTR_NULL(a);
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, "urn:dev:ops:sensor-1", &a), 0);
        CU_ASSERT_STRING_EQUAL(identity_get_endpoint(a), "urn:dev:ops:sensor-1");
        CU_ASSERT_STRING_EQUAL(identity_get_endpoint_source(a), "configured");
        /* The override is not stored: without it the derived name comes back. */
        CU_ASSERT_EQUAL(file_mode(IDENTITY_ENDPOINT_FILE), (mode_t) -1);
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &b), 0);
        CU_ASSERT_STRING_NOT_EQUAL(identity_get_endpoint(b), "urn:dev:ops:sensor-1");
        /* The keys are the device's whatever it is called. */
        CU_ASSERT_STRING_EQUAL(identity_get_public_key(a), identity_get_public_key(b));
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &c), 0);
        CU_ASSERT_STRING_EQUAL(identity_get_endpoint(b), identity_get_endpoint(c));
        remove_dir();
}

static void test_endpoint_validity(void) {
        char big[80];

        CU_ASSERT_TRUE(identity_endpoint_is_valid("a"));
        CU_ASSERT_TRUE(identity_endpoint_is_valid("urn:dev:ops:32473-Sensor-1"));
        CU_ASSERT_TRUE(identity_endpoint_is_valid("rt-0123456789abcdef0123456789abcdef"));
        CU_ASSERT_FALSE(identity_endpoint_is_valid(""));
        CU_ASSERT_FALSE(identity_endpoint_is_valid(NULL));
        CU_ASSERT_FALSE(identity_endpoint_is_valid("-a"));
        CU_ASSERT_FALSE(identity_endpoint_is_valid("a/b"));
        CU_ASSERT_FALSE(identity_endpoint_is_valid("a&lt=1"));
        memset(big, 'a', 64);
        big[64] = '\0';
        CU_ASSERT_TRUE(identity_endpoint_is_valid(big));
        big[64] = 'a';
        big[65] = '\0';
        CU_ASSERT_FALSE(identity_endpoint_is_valid(big));
}

static void test_bad_files_kept(void) {
        _cleanup_identity_ identity *a = NULL;
        _cleanup_free_ char *after = NULL;
        char p[256];
        const char *junk = "not a key\n";

        make_dir();
        snprintf(p, sizeof(p), "%s/%s", dir, IDENTITY_SIGN_KEY_FILE);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, junk, strlen(junk), 0600), 0);
        CU_ASSERT_TRUE(identity_load(dir, NULL, &a) < 0);
        CU_ASSERT_PTR_NULL(a);
        /* A device that replaced its key would lose its registration. */
        CU_ASSERT_EQUAL(read_full_file(p, 4096, &after, NULL), 0);
        CU_ASSERT_STRING_EQUAL(after, junk);
        remove_dir();

        /* A P-256 key where the Ed25519 one belongs is refused too. */
        make_dir();
        {
                _cleanup_identity_ identity *b = NULL;
                char q[256];

                CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &b), 0);
                snprintf(p, sizeof(p), "%s/%s", dir, IDENTITY_SIGN_KEY_FILE);
                snprintf(q, sizeof(q), "%s/%s", dir, IDENTITY_TOKEN_KEY_FILE);
                CU_ASSERT_EQUAL_FATAL(rename(q, p), 0);
                b = identity_free(b);
                CU_ASSERT_TRUE(identity_load(dir, NULL, &b) < 0);
        }
        remove_dir();

        /* A stored endpoint that is not one. */
        make_dir();
        snprintf(p, sizeof(p), "%s/%s", dir, IDENTITY_ENDPOINT_FILE);
        CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, "a b\n", 4, 0644), 0);
        CU_ASSERT_EQUAL(identity_load(dir, NULL, &a), -EBADMSG);
        remove_dir();
}

static void test_key_mode_tightened(void) {
        _cleanup_identity_ identity *a = NULL, *b = NULL;
        char p[256];

        make_dir();
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &a), 0);
        snprintf(p, sizeof(p), "%s/%s", dir, IDENTITY_SIGN_KEY_FILE);
        CU_ASSERT_EQUAL_FATAL(chmod(p, 0644), 0);
        CU_ASSERT_EQUAL_FATAL(identity_load(dir, NULL, &b), 0);
        CU_ASSERT_EQUAL(file_mode(IDENTITY_SIGN_KEY_FILE), 0600);
        CU_ASSERT_STRING_EQUAL(identity_get_public_key(a), identity_get_public_key(b));
        remove_dir();
}

static CU_TestInfo tests[] = {
        { "first start creates, restart reuses", test_first_start_and_restart },
        { "two state directories, two key pairs", test_two_devices_differ },
        { "configured endpoint overrides, not stored", test_configured_endpoint },
        { "endpoint name validity", test_endpoint_validity },
        { "unreadable identity files are refused, not replaced", test_bad_files_kept },
        { "a key file open to others is set to 0600", test_key_mode_tightened },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("identity", tests)
