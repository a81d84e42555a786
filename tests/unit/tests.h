/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* CUnit glue shared by the unit suites: each test file lists its tests in a
 * CU_TestInfo array and calls TESTS_MAIN(). The last line a suite prints,
 * "# RESULT passed=N failed=M", is what tests/run-all adds up. */

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

static inline int tests_run(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                            CU_CleanupFunc cleanup) {
        CU_SuiteInfo suites[] = {
                { (char *) suite, init, cleanup, NULL, NULL, tests },
                CU_SUITE_INFO_NULL,
        };
        unsigned run, failed;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return 2;
        if (CU_register_suites(suites) != CUE_SUCCESS) {
                fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
                CU_cleanup_registry();
                return 2;
        }
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        run = CU_get_number_of_tests_run();
        failed = CU_get_number_of_tests_failed();
        /* A suite whose init failed ran nothing: count that as a failure,
         * never as success. */
        if (CU_get_number_of_suites_failed() > 0 && run == 0)
                failed = 1;
        printf("\n# RESULT passed=%u failed=%u\n", run - (failed > run ? run : failed), failed);
        CU_cleanup_registry();
        return failed ? 1 : 0;
}

#define TESTS_MAIN(suite, tests) \
        int main(void) { return tests_run(suite, tests, NULL, NULL); }
#define TESTS_MAIN_FIXTURE(suite, tests, init, cleanup) \
        int main(void) { return tests_run(suite, tests, init, cleanup); }
