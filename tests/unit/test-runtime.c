/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The runtime's pure parts: instance addresses. The runtime on a live bus
 * with real components is tests/integration/m2m-exchange.sh. */
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "runtime.h"
#include "tests.h"

#define R "runtime://example.org/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a01"
#define R2 "runtime://example.org/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a02"

static char *addr(const char *rt_addr, launch_kind kind, const char *component, const char *key) {
        char *a = NULL;

        CU_ASSERT_EQUAL(runtime_instance_address(rt_addr, "example.org", kind, component, key, &a), 0);
        return a;
}

static void test_instance_address(void) {
        _cleanup_free_ char *h = addr(R, LAUNCH_HYPERTY, "producer", "main"),
                            *again = addr(R, LAUNCH_HYPERTY, "producer", NULL),
                            *other_key = addr(R, LAUNCH_HYPERTY, "producer", "peer:https://10.0.0.2:8444"),
                            *other_comp = addr(R, LAUNCH_HYPERTY, "consumer", "main"),
                            *other_rt = addr(R2, LAUNCH_HYPERTY, "producer", "main"),
                            *stub = addr(R, LAUNCH_PROTOSTUB, "messaging", "main");
        char *none = NULL;

        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        /* Stable: the same inputs (NULL key = "main") give the same address. */
        CU_ASSERT_STRING_EQUAL(h, again);
        CU_ASSERT_TRUE(rt_address_is_valid(h));
        CU_ASSERT_EQUAL(strncmp(h, "hyperty://example.org/", 22), 0);
        CU_ASSERT_EQUAL(strncmp(stub, "runtime://example.org/", 22), 0);
        CU_ASSERT_TRUE(rt_address_is_valid(stub));
        /* Version 8, variant 10 in the UUID. */
        CU_ASSERT_EQUAL(h[22 + 14], '8');
        CU_ASSERT_PTR_NOT_NULL(strchr("89ab", h[22 + 19]));
        /* Distinct for another key, component or runtime. */
        CU_ASSERT_STRING_NOT_EQUAL(h, other_key);
        CU_ASSERT_STRING_NOT_EQUAL(h, other_comp);
        CU_ASSERT_STRING_NOT_EQUAL(h, other_rt);

        CU_ASSERT_EQUAL(runtime_instance_address("not-an-address", "example.org", LAUNCH_HYPERTY, "x", "main", &none),
                        -EINVAL);
        CU_ASSERT_EQUAL(runtime_instance_address(R, "Bad_Domain", LAUNCH_HYPERTY, "x", "main", &none), -EINVAL);
        CU_ASSERT_PTR_NULL(none);
}

static CU_TestInfo tests[] = {
        { "instance addresses are stable and distinct", test_instance_address },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("runtime", tests)
