/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "descriptor.h"
#include "tests.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
/* 64 and 32 bytes of zeros in base64url. */
#define SIG "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define PUB "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

/* A valid hyperty descriptor with "extra" spliced in before the end. */
static char *make(const char *extra) {
        char *s;

        if (asprintf(&s,
                     "{\"type\":\"hyperty\",\"objectName\":\"temp-producer\",\"version\":\"1.2.0\","
                     "\"hypertyType\":[\"context\"],\"sha256\":\"" SHA "\",\"signature\":\"" SIG
                     "\",\"publisher\":\"" PUB "\"%s}",
                     extra) < 0)
                return NULL;
        return s;
}

static int parse(const char *text, descriptor **ret, char **ret_reason) {
        return descriptor_parse(text, strlen(text), ret, ret_reason);
}

static void expect_invalid(const char *extra, int error, const char *reason_part) {
        _cleanup_free_ char *text = make(extra), *reason = NULL;
        descriptor *d = NULL;

        CU_ASSERT_EQUAL(parse(text, &d, &reason), error);
        CU_ASSERT_PTR_NULL(d);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
        if (!strstr(reason, reason_part))
                fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", reason, reason_part);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, reason_part));
}

static void test_valid(void) {
        _cleanup_free_ char *text = make(",\"description\":\"Room temperature\",\"dataObjects\":[\"ctxt://example.com/room-1\"],"
                                         "\"constraints\":{\"runtimeVersion\":\"0.1.0\",\"arch\":[\"x86_64\",\"aarch64\"],"
                                         "\"diskBytes\":65536},\"configuration\":{\"interval\":5}");
        _cleanup_descriptor_ descriptor *d = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE], sig[SIGN_SIGNATURE_SIZE];

        CU_ASSERT_EQUAL_FATAL(parse(text, &d, NULL), 0);
        CU_ASSERT_EQUAL(descriptor_get_kind(d), DESCRIPTOR_HYPERTY);
        CU_ASSERT_STRING_EQUAL(descriptor_get_name(d), "temp-producer");
        CU_ASSERT_STRING_EQUAL(descriptor_get_version(d), "1.2.0");
        CU_ASSERT_STRING_EQUAL(descriptor_get_sha256(d), SHA);
        CU_ASSERT_STRING_EQUAL(descriptor_get_publisher(d), PUB);
        CU_ASSERT_PTR_NULL(descriptor_get_source_package_url(d));
        descriptor_get_digest(d, digest);
        CU_ASSERT_EQUAL(digest[0], 0x01);
        CU_ASSERT_EQUAL(digest[31], 0xef);
        descriptor_get_signature(d, sig);
        CU_ASSERT_EQUAL(sig[63], 0);
        CU_ASSERT_TRUE(json_is_object(json_object_get(descriptor_get_json(d), "configuration")));
}

static void test_kinds(void) {
        _cleanup_descriptor_ descriptor *d = NULL;
        const char *stub = "{\"type\":\"protocolstub\",\"objectName\":\"msg\",\"version\":\"1\",\"sha256\":\"" SHA
                           "\",\"signature\":\"" SIG "\",\"publisher\":\"" PUB
                           "\",\"sourcePackageURL\":\"https://catalogue.example.com/catalogue/packages/" SHA "\"}";

        CU_ASSERT_EQUAL_FATAL(parse(stub, &d, NULL), 0);
        CU_ASSERT_EQUAL(descriptor_get_kind(d), DESCRIPTOR_PROTOCOLSTUB);
        CU_ASSERT_STRING_EQUAL(descriptor_get_source_package_url(d),
                               "https://catalogue.example.com/catalogue/packages/" SHA);

        CU_ASSERT_EQUAL(descriptor_kind_from_string("runtime"), DESCRIPTOR_RUNTIME);
        CU_ASSERT_EQUAL(descriptor_kind_from_string("Hyperty"), _DESCRIPTOR_KIND_INVALID);
        CU_ASSERT_EQUAL(descriptor_kind_from_string(NULL), _DESCRIPTOR_KIND_INVALID);
        CU_ASSERT_STRING_EQUAL(descriptor_kind_to_string(DESCRIPTOR_PROTOCOLSTUB), "protocolstub");
        CU_ASSERT_PTR_NULL(descriptor_kind_to_string(_DESCRIPTOR_KIND_MAX));
}

static void test_names(void) {
        CU_ASSERT_TRUE(descriptor_name_is_valid("a"));
        CU_ASSERT_TRUE(descriptor_name_is_valid("Temp.producer_2-x"));
        CU_ASSERT_FALSE(descriptor_name_is_valid(""));
        CU_ASSERT_FALSE(descriptor_name_is_valid("."));
        CU_ASSERT_FALSE(descriptor_name_is_valid(".."));
        CU_ASSERT_FALSE(descriptor_name_is_valid("-a"));
        CU_ASSERT_FALSE(descriptor_name_is_valid("a/b"));
        CU_ASSERT_FALSE(descriptor_name_is_valid("a b"));
        CU_ASSERT_FALSE(descriptor_name_is_valid(NULL));
        CU_ASSERT_TRUE(descriptor_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        CU_ASSERT_FALSE(descriptor_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

static void test_invalid_fields(void) {
        expect_invalid(",\"extra\":1", -EINVAL, "unknown field");
        expect_invalid(",\"description\":5", -EINVAL, "field 'description'");
        expect_invalid(",\"dataObjects\":[]", -EINVAL, "field 'dataObjects'");
        expect_invalid(",\"dataObjects\":[\"a\\u0001b\"]", -EINVAL, "field 'dataObjects[0]'");
        expect_invalid(",\"constraints\":[]", -EINVAL, "field 'constraints'");
        expect_invalid(",\"constraints\":{\"cpu\":1}", -EINVAL, "unknown constraint");
        expect_invalid(",\"constraints\":{\"diskBytes\":-1}", -EINVAL, "field 'constraints.diskBytes'");
        expect_invalid(",\"constraints\":{\"diskBytes\":1.5}", -EINVAL, "field 'constraints.diskBytes'");
        expect_invalid(",\"constraints\":{\"arch\":\"x86_64\"}", -EINVAL, "field 'constraints.arch'");
        expect_invalid(",\"constraints\":{\"arch\":[\"x86 64\"]}", -EINVAL, "field 'constraints.arch[0]'");
        expect_invalid(",\"constraints\":{\"runtimeVersion\":\"\"}", -EINVAL, "field 'constraints.runtimeVersion'");
        expect_invalid(",\"configuration\":[1]", -EINVAL, "field 'configuration'");
        expect_invalid(",\"sourcePackageURL\":\"http://x/catalogue/packages/" SHA "\"", -EINVAL,
                       "field 'sourcePackageURL'");
        expect_invalid(",\"sourcePackageURL\":\"/catalogue/packages/other\"", -EINVAL, "field 'sourcePackageURL'");
        expect_invalid(",\"sourcePackageURL\":\"/x" SHA "\"", -EINVAL, "field 'sourcePackageURL'");
        expect_invalid(",\"sourcePackageURL\":\"/p/" SHA "?a\"", -EINVAL, "field 'sourcePackageURL'");
        /* Duplicates are rejected, so the one we validate is the one stored. */
        expect_invalid(",\"objectName\":\"other\"", -EBADMSG, "duplicate object key");
}

static void test_required(void) {
        static const char *const required[] = { "type", "objectName", "version", "sha256", "signature", "publisher" };

        for (size_t i = 0; i < ELEMENTSOF(required); i++) {
                _cleanup_free_ char *text = make(""), *reason = NULL, *want = NULL;
                _cleanup_free_ char *cut = NULL;
                json_t *j = json_loads(text, 0, NULL);
                descriptor *d = NULL;

                CU_ASSERT_PTR_NOT_NULL_FATAL(j);
                json_object_del(j, required[i]);
                cut = json_dumps(j, JSON_COMPACT);
                json_decref(j);
                CU_ASSERT_EQUAL(parse(cut, &d, &reason), -EINVAL);
                CU_ASSERT_PTR_NULL(d);
                CU_ASSERT_TRUE(asprintf(&want, "field '%s': missing", required[i]) > 0);
                CU_ASSERT_PTR_NOT_NULL(reason && strstr(reason, want));
        }
}

static void test_invalid_values(void) {
        static const struct {
                const char *key, *value;
        } cases[] = {
                { "type", "\"Hyperty\"" },         { "type", "1" },
                { "objectName", "\"../x\"" },      { "objectName", "\"\"" },
                { "version", "\"1 2\"" },          { "version", "1" },
                { "sha256", "\"" SHA "0\"" },      { "sha256", "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"" },
                { "signature", "\"" PUB "\"" },    { "signature", "\"" SIG "=\"" },
                { "publisher", "\"" SIG "\"" },    { "publisher", "\"AAAA+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"" },
                { "hypertyType", "[]" },           { "hypertyType", "\"context\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = make(""), *reason = NULL, *cut = NULL, *want = NULL;
                json_t *j = json_loads(text, 0, NULL);
                descriptor *d = NULL;

                CU_ASSERT_PTR_NOT_NULL_FATAL(j);
                json_object_set_new(j, cases[i].key, json_loads(cases[i].value, JSON_DECODE_ANY, NULL));
                cut = json_dumps(j, JSON_COMPACT);
                json_decref(j);
                CU_ASSERT_EQUAL(parse(cut, &d, &reason), -EINVAL);
                CU_ASSERT_PTR_NULL(d);
                CU_ASSERT_TRUE(asprintf(&want, "field '%s'", cases[i].key) > 0);
                if (!reason || !strstr(reason, want))
                        fprintf(stderr, "case %zu: reason \"%s\"\n", i, strna(reason));
                CU_ASSERT_PTR_NOT_NULL(reason && strstr(reason, want));
        }
}

static void test_kind_rules(void) {
        _cleanup_free_ char *reason = NULL;
        descriptor *d = NULL;
        const char *runtime_with_type = "{\"type\":\"runtime\",\"objectName\":\"rt\",\"version\":\"1\",\"hypertyType\":[\"x\"],"
                                        "\"sha256\":\"" SHA "\",\"signature\":\"" SIG "\",\"publisher\":\"" PUB "\"}";

        CU_ASSERT_EQUAL(parse(runtime_with_type, &d, &reason), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(reason && strstr(reason, "only allowed for a hyperty"));
}

static void test_limits(void) {
        _cleanup_free_ char *reason = NULL, *big = NULL, *deep = NULL;
        descriptor *d = NULL;
        size_t n = DESCRIPTOR_MAX_SIZE + 1;

        big = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, ' ', n);
        CU_ASSERT_EQUAL(descriptor_parse(big, n, &d, &reason), -EMSGSIZE);
        free(reason);
        reason = NULL;

        deep = make(",\"configuration\":{\"a\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}");
        CU_ASSERT_EQUAL(parse(deep, &d, &reason), -E2BIG);
        free(reason);
        reason = NULL;

        CU_ASSERT_EQUAL(descriptor_parse("{\"type\":\0}", 11, &d, &reason), -EBADMSG);
        free(reason);
        reason = NULL;
        CU_ASSERT_EQUAL(parse("[1,2]", &d, &reason), -EINVAL);
        free(reason);
        reason = NULL;
        CU_ASSERT_EQUAL(parse("{", &d, &reason), -EBADMSG);
        free(reason);
        reason = NULL;
        CU_ASSERT_EQUAL(parse("", &d, NULL), -EBADMSG);
        CU_ASSERT_PTR_NULL(d);
}

static CU_TestInfo tests[] = {
        { "valid descriptor", test_valid },
        { "kinds and source URL", test_kinds },
        { "object names", test_names },
        { "invalid fields", test_invalid_fields },
        { "required fields", test_required },
        { "invalid values", test_invalid_values },
        { "hypertyType only for hyperties", test_kind_rules },
        { "size, depth, syntax", test_limits },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("descriptor", tests)
