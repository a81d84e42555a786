/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The software manager's journal entries: fields, priorities, MESSAGE_IDs
 * (distinct and explained in the catalog). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "swmgr-journal.h"
#include "tests.h"

typedef struct entry {
        int level;
        char fields[24][160];
        size_t n;
} entry;

static entry entries[16];
static size_t n_entries;

static void sink(int level, char **fields, void *userdata) {
        entry *e;

        if (n_entries >= ELEMENTSOF(entries))
                return;
        e = &entries[n_entries++];
        e->level = level;
        e->n = 0;
        for (char **f = fields; *f && e->n < ELEMENTSOF(e->fields); f++)
                snprintf(e->fields[e->n++], sizeof(e->fields[0]), "%s", *f);
}

static const char *field(const entry *e, const char *key) {
        size_t n = strlen(key);

        for (size_t i = 0; i < e->n; i++)
                if (strncmp(e->fields[i], key, n) == 0 && e->fields[i][n] == '=')
                        return e->fields[i] + n + 1;
        return NULL;
}

#define CHECK_FIELD(e, key, value)                                      \
        do {                                                            \
                const char *_v = field((e), (key));                     \
                CU_ASSERT_PTR_NOT_NULL(_v);                             \
                if (_v)                                                 \
                        CU_ASSERT_STRING_EQUAL(_v, (value));            \
        } while (0)

static int setup(void) {
        log_set_sink(sink, NULL);
        log_set_max_level(LOG_INFO);
        return 0;
}

static int teardown(void) {
        log_set_sink(NULL, NULL);
        return 0;
}

static void test_transition(void) {
        n_entries = 0;
        swmgr_journal_transition("sensor", "1.2.0", "DELIVERED", "INSTALLING", 3,
                                 "successfully downloaded and verified", "installing", false, "dm:example.com");
        swmgr_journal_transition("sensor", "1.2.0", "DOWNLOAD_STARTED", "INITIAL", 53, "integrity check failure",
                                 "package does not match its sha256", false, NULL);
        CU_ASSERT_EQUAL_FATAL(n_entries, 2);
        CU_ASSERT_EQUAL(entries[0].level, LOG_INFO);
        CHECK_FIELD(&entries[0], "MESSAGE_ID", SWM_MESSAGE_ID_TRANSITION);
        CHECK_FIELD(&entries[0], "COMPONENT", "sensor");
        CHECK_FIELD(&entries[0], "COMPONENT_VERSION", "1.2.0");
        CHECK_FIELD(&entries[0], "SWM_STATE", "INSTALLING");
        CHECK_FIELD(&entries[0], "SWM_PREV_STATE", "DELIVERED");
        CHECK_FIELD(&entries[0], "SWM_RESULT", "3");
        CHECK_FIELD(&entries[0], "SWM_REASON", "installing");
        CHECK_FIELD(&entries[0], "SWM_ACTIVE", "no");
        CHECK_FIELD(&entries[0], "SWM_PRINCIPAL", "dm:example.com");
        /* Errors stand out: their own MESSAGE_ID, at warning. */
        CU_ASSERT_EQUAL(entries[1].level, LOG_WARNING);
        CHECK_FIELD(&entries[1], "MESSAGE_ID", SWM_MESSAGE_ID_FAILED);
        CHECK_FIELD(&entries[1], "SWM_RESULT", "53");
        CHECK_FIELD(&entries[1], "SWM_PRINCIPAL", "");
        CU_ASSERT_PTR_NOT_NULL(strstr(strna(field(&entries[1], "MESSAGE")), "sha256"));
}

static void test_other_entries(void) {
        n_entries = 0;
        swmgr_journal_download("sensor", "1", false, 4096, "offline");
        swmgr_journal_consent("sensor", "1", false, "local:uid=0");
        swmgr_journal_process("sensor", "1", 1234, true);
        swmgr_journal_removed("sensor", "1", "local:uid=0");
        swmgr_journal_refused("local:uid=1000", "confirm", "sensor", "write");
        swmgr_journal_recovery("sensor", "1", "INSTALLING");
        CU_ASSERT_EQUAL_FATAL(n_entries, 6);
        CHECK_FIELD(&entries[0], "MESSAGE_ID", SWM_MESSAGE_ID_DOWNLOAD);
        CHECK_FIELD(&entries[0], "SWM_BYTES", "4096");
        CHECK_FIELD(&entries[0], "SWM_DOWNLOAD", "paused");
        CHECK_FIELD(&entries[1], "MESSAGE_ID", SWM_MESSAGE_ID_CONSENT);
        CHECK_FIELD(&entries[1], "SWM_CONSENT", "rejected");
        CHECK_FIELD(&entries[2], "MESSAGE_ID", SWM_MESSAGE_ID_PROCESS);
        CHECK_FIELD(&entries[2], "SWM_PID", "1234");
        CHECK_FIELD(&entries[3], "MESSAGE_ID", SWM_MESSAGE_ID_REMOVED);
        CHECK_FIELD(&entries[4], "MESSAGE_ID", SWM_MESSAGE_ID_REFUSED);
        CU_ASSERT_EQUAL(entries[4].level, LOG_NOTICE);
        CHECK_FIELD(&entries[4], "SWM_ORDER", "confirm");
        CHECK_FIELD(&entries[4], "SWM_RIGHT", "write");
        CHECK_FIELD(&entries[4], "SWM_PRINCIPAL", "local:uid=1000");
        CHECK_FIELD(&entries[5], "MESSAGE_ID", SWM_MESSAGE_ID_RECOVERY);
        CHECK_FIELD(&entries[5], "SWM_STATE", "INSTALLING");
}

static void test_ids_are_distinct_and_in_catalog(void) {
        const char *ids[] = {
                SWM_MESSAGE_ID_TRANSITION, SWM_MESSAGE_ID_FAILED, SWM_MESSAGE_ID_DOWNLOAD,
                SWM_MESSAGE_ID_CONSENT,    SWM_MESSAGE_ID_PROCESS, SWM_MESSAGE_ID_REMOVED,
                SWM_MESSAGE_ID_REFUSED,    SWM_MESSAGE_ID_RECOVERY,
        };
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *catalog = NULL;
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                CU_ASSERT_EQUAL(strlen(ids[i]), 32);
                for (size_t k = i + 1; k < ELEMENTSOF(ids); k++)
                        CU_ASSERT_STRING_NOT_EQUAL(ids[i], ids[k]);
        }
        f = fopen("units/rethink.catalog", "re");
        if (!f)
                f = fopen("../../../units/rethink.catalog", "re");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT(getdelim(&catalog, &n, '\0', f) > 0);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                char header[64];

                snprintf(header, sizeof(header), "-- %s\n", ids[i]);
                CU_ASSERT_PTR_NOT_NULL(strstr(catalog, header));
        }
}

static CU_TestInfo tests[] = {
        { "transitions and failures", test_transition },
        { "download, consent, process, removal, refusal, recovery", test_other_entries },
        { "MESSAGE_IDs distinct and in the catalog", test_ids_are_distinct_and_in_catalog },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("swm-journal", tests, setup, teardown)
