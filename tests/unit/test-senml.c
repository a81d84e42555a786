/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SenML (RFC 8428) validation: the examples of the RFC pass, and each rule
 * refuses what breaks it with a reason naming the rule. */

#include <stdbool.h>
#include <string.h>

#include "senml.h"
#include "tests.h"

static bool ok(const char *text) {
        const char *why = NULL;
        json_t *j = NULL;
        int r = senml_parse(text, strlen(text), &j, &why);

        if (r < 0)
                fprintf(stderr, "refused %s: %s\n", text, why);
        json_decref(j);
        return r == 0 && why == NULL;
}

static bool refused(const char *text, int error, const char *part) {
        const char *why = NULL;
        json_t *j = NULL;
        int r = senml_parse(text, strlen(text), &j, &why);

        if (r != error || j || !why || !strstr(why, part)) {
                fprintf(stderr, "%s: got %d \"%s\"\n", text, r, why ? why : "(no reason)");
                json_decref(j);
                return false;
        }
        return true;
}

static void test_rfc_examples(void) {
        /* RFC 8428 §5.1.1, §5.1.2, §5.1.3 (abridged) */
        CU_ASSERT_TRUE(ok("[{\"n\":\"urn:dev:ow:10e2073a01080063\",\"u\":\"Cel\",\"v\":23.1}]"));
        CU_ASSERT_TRUE(ok("[{\"bn\":\"urn:dev:ow:10e2073a01080063:\",\"n\":\"voltage\",\"u\":\"V\",\"v\":120.1},"
                          "{\"n\":\"current\",\"u\":\"A\",\"v\":1.2}]"));
        CU_ASSERT_TRUE(ok("[{\"bn\":\"urn:dev:ow:10e2073a0108006:\",\"bt\":1.276020076001e+09,\"bu\":\"A\","
                          "\"bver\":5,\"n\":\"voltage\",\"u\":\"V\",\"v\":120.1},"
                          "{\"n\":\"current\",\"t\":-5,\"v\":1.2},{\"n\":\"current\",\"t\":-4,\"v\":1.3}]"));
        CU_ASSERT_TRUE(ok("[{\"n\":\"door\",\"vb\":true},{\"n\":\"label\",\"vs\":\"front door\"},"
                          "{\"n\":\"raw\",\"vd\":\"aGkgdGhlcmU\"},{\"n\":\"energy\",\"s\":12.5,\"ut\":60}]"));
        /* A base value stands in for v; a sum may come with a value. */
        CU_ASSERT_TRUE(ok("[{\"bn\":\"dev/\",\"bv\":10,\"n\":\"a\"},{\"n\":\"b\",\"v\":2},{\"n\":\"c\"}]"));
        CU_ASSERT_TRUE(ok("[{\"n\":\"meter\",\"s\":100,\"v\":3}]"));
}

static void test_structure(void) {
        CU_ASSERT_TRUE(refused("{\"n\":\"x\",\"v\":1}", -EINVAL, "JSON array"));
        CU_ASSERT_TRUE(refused("[]", -EINVAL, "at least one record"));
        CU_ASSERT_TRUE(refused("[1]", -EINVAL, "JSON object"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1}", -EBADMSG, "not valid JSON"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"v\":2}]", -EBADMSG, "not valid JSON"));
        {
                /* SENML_MAX_RECORDS + 1 records */
                char *s = malloc(20 * (SENML_MAX_RECORDS + 1) + 3), *p = s;

                CU_ASSERT_PTR_NOT_NULL_FATAL(s);
                *p++ = '[';
                for (unsigned i = 0; i <= SENML_MAX_RECORDS; i++)
                        p += sprintf(p, "%s{\"n\":\"x\",\"v\":1}", i ? "," : "");
                strcpy(p, "]");
                CU_ASSERT_TRUE(refused(s, -EINVAL, "too many records"));
                free(s);
        }
        {
                char *s = malloc(SENML_MAX_SIZE + 64);

                CU_ASSERT_PTR_NOT_NULL_FATAL(s);
                memset(s, ' ', SENML_MAX_SIZE + 63);
                s[SENML_MAX_SIZE + 63] = '\0';
                s[0] = '[';
                CU_ASSERT_TRUE(refused(s, -EMSGSIZE, "too large"));
                free(s);
        }
}

static void test_labels(void) {
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":\"1\"}]", -EINVAL, "'v' must be a number"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"vs\":1}]", -EINVAL, "'vs' must be a string"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"vb\":1}]", -EINVAL, "'vb' must be true or false"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"vd\":\"a+b/\"}]", -EINVAL, "base64url"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"vd\":\"aGk=\"}]", -EINVAL, "base64url"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"vd\":\"a\"}]", -EINVAL, "base64url"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"t\":\"now\"}]", -EINVAL, "'t' must be a number"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"bver\":0}]", -EINVAL, "'bver'"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"bver\":1.5}]", -EINVAL, "'bver'"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"u\":null}]", -EINVAL, "'u' must be a string"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"foo\":2}]", -EINVAL, "unknown label"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"crit_\":2}]", -EINVAL, "unknown label"));
}

static void test_values(void) {
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\"}]", -EINVAL, "needs a value"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"v\":1,\"vb\":true}]", -EINVAL, "at most one"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\",\"vs\":\"a\",\"vd\":\"YQ\"}]", -EINVAL, "at most one"));
}

static void test_names(void) {
        CU_ASSERT_TRUE(refused("[{\"v\":1}]", -EINVAL, "needs a name"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"\",\"v\":1}]", -EINVAL, "needs a name"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"a b\",\"v\":1}]", -EINVAL, "holds only"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"-x\",\"v\":1}]", -EINVAL, "starts with"));
        CU_ASSERT_TRUE(refused("[{\"bn\":\"_dev\",\"n\":\"x\",\"v\":1}]", -EINVAL, "starts with"));
        CU_ASSERT_TRUE(refused("[{\"n\":\"x\\u00e9\",\"v\":1}]", -EINVAL, "holds only"));
        /* The base name carries over: "dev:" + "-x" is fine. */
        CU_ASSERT_TRUE(ok("[{\"bn\":\"dev:\",\"n\":\"a\",\"v\":1},{\"n\":\"-x\",\"v\":2}]"));
        {
                char s[SENML_MAX_NAME + 64];

                snprintf(s, sizeof(s), "[{\"n\":\"%0*d\",\"v\":1}]", (int) SENML_MAX_NAME + 1, 0);
                CU_ASSERT_TRUE(refused(s, -EINVAL, "too long"));
                snprintf(s, sizeof(s), "[{\"n\":\"%0*d\",\"v\":1}]", (int) SENML_MAX_NAME, 0);
                CU_ASSERT_TRUE(ok(s));
        }
}

static void test_check_parsed(void) {
        const char *why = NULL;
        json_t *j = json_pack("[{s:s,s:f}]", "n", "t", "v", 1.5);

        CU_ASSERT_EQUAL(senml_check(j, &why), 0);
        json_decref(j);
        CU_ASSERT_EQUAL(senml_check(NULL, &why), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(why);
        CU_ASSERT_EQUAL(senml_check(NULL, NULL), -EINVAL);
}

static CU_TestInfo tests[] = {
        { "RFC 8428 examples", test_rfc_examples },
        { "pack structure and limits", test_structure },
        { "labels and their types", test_labels },
        { "one value per record", test_values },
        { "name rules", test_names },
        { "already parsed packs", test_check_parsed },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("senml", tests)
