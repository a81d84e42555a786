/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Global M2M Resource Directory on a real SQLite file: which
 * subscriptions a publication reaches (whole path segments), last values
 * and reporters, group commits and what a reopened file still holds. */

#include <ftw.h>
#include <jansson.h>
#include <stdbool.h>

#include "db.h"
#include "rd.h"
#include "tests.h"

#define D "ctxt://example.org"

static char dir[64];
static sd_event *event;

/* The schema msg.c migrates, so that rd can be tested on its own file. */
static const char *const schema[] = {
        "CREATE TABLE resources (resource TEXT PRIMARY KEY, reporter TEXT, reporter_runtime TEXT, value TEXT,"
        " updated_usec INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE subscriptions (resource TEXT NOT NULL, subscriber TEXT NOT NULL, runtime TEXT NOT NULL,"
        " created_usec INTEGER NOT NULL, PRIMARY KEY (resource, subscriber)) WITHOUT ROWID;",
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static int setup(void) {
        snprintf(dir, sizeof(dir), "/tmp/rd-test-XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        return sd_event_new(&event) < 0 ? -1 : 0;
}

static int cleanup(void) {
        event = sd_event_unref(event);
        (void) nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static void open_rd(const char *name, db **ret_db, rd **ret_rd) {
        char path[128];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        CU_ASSERT_EQUAL_FATAL(db_open(path, 0, ret_db, NULL), 0);
        CU_ASSERT_FATAL(db_migrate(*ret_db, schema, 1) >= 0);
        CU_ASSERT_EQUAL_FATAL(rd_new(event, *ret_db, ret_rd), 0);
}

typedef struct seen {
        char list[1024];
        unsigned n;
} seen;

static int collect(const char *subscriber, const char *runtime, void *userdata) {
        seen *s = userdata;

        s->n++;
        strncat(s->list, subscriber, sizeof(s->list) - strlen(s->list) - 2);
        strcat(s->list, ";");
        return 0;
}

static unsigned reach(rd *r, const char *resource, seen *s) {
        memset(s, 0, sizeof(*s));
        CU_ASSERT_EQUAL(rd_foreach_subscriber(r, resource, collect, s), 0);
        return s->n;
}

static void test_prefixes(void) {
        db *d = NULL;
        rd *r = NULL;
        seen s;

        open_rd("prefix.db", &d, &r);
        CU_ASSERT_EQUAL(rd_subscribe(r, D "/a", "hyperty://x/1", "runtime://x/1"), 1);
        CU_ASSERT_EQUAL(rd_subscribe(r, D "/a/b", "hyperty://x/2", "runtime://x/2"), 1);
        CU_ASSERT_EQUAL(rd_subscribe(r, D "/ab", "hyperty://x/3", "runtime://x/3"), 1);
        /* Subscribing again is no new subscription. */
        CU_ASSERT_EQUAL(rd_subscribe(r, D "/a", "hyperty://x/1", "runtime://x/9"), 0);
        CU_ASSERT_EQUAL(rd_get_n_subscriptions(r), 3);

        CU_ASSERT_EQUAL(reach(r, D "/a/b/c", &s), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(s.list, "hyperty://x/1;"));
        CU_ASSERT_PTR_NOT_NULL(strstr(s.list, "hyperty://x/2;"));
        CU_ASSERT_EQUAL(reach(r, D "/a", &s), 1);
        CU_ASSERT_EQUAL(reach(r, D "/ab", &s), 1);
        CU_ASSERT_STRING_EQUAL(s.list, "hyperty://x/3;");
        CU_ASSERT_EQUAL(reach(r, D "/abc", &s), 0);
        CU_ASSERT_EQUAL(reach(r, D "/b", &s), 0);

        CU_ASSERT_EQUAL(rd_unsubscribe(r, D "/a", "hyperty://x/1"), 0);
        CU_ASSERT_EQUAL(rd_unsubscribe(r, D "/a", "hyperty://x/1"), -ENOENT);
        CU_ASSERT_EQUAL(rd_unsubscribe(r, D "/zzz", "hyperty://x/1"), -ENOENT);
        CU_ASSERT_EQUAL(reach(r, D "/a/b/c", &s), 1);
        CU_ASSERT_EQUAL(rd_get_n_subscriptions(r), 2);
        rd_free(r);
        db_close(d);
}

static unsigned flushes;
static int last_flush_error = 1;

static void on_flushed(int error, void *userdata) {
        flushes++;
        last_flush_error = error;
}

static void test_values_and_reopen(void) {
        db *d = NULL;
        rd *r = NULL;
        json_t *v1 = json_loads("[{\"n\":\"t\",\"v\":1}]", 0, NULL), *v2 = json_loads("[{\"n\":\"t\",\"v\":2}]", 0, NULL);
        json_t *got = NULL;
        const char *reporter = NULL, *runtime = NULL;

        open_rd("values.db", &d, &r);
        rd_set_flush_handler(r, on_flushed, NULL);
        CU_ASSERT_EQUAL(rd_get(r, D "/t", NULL, NULL, NULL), -ENOENT);
        CU_ASSERT_EQUAL(rd_publish(r, D "/t", "hyperty://x/1", NULL, v1), -EINVAL);
        CU_ASSERT_EQUAL(rd_publish(r, D "/t", "hyperty://x/1", "runtime://x/1", v1), 0);
        CU_ASSERT_EQUAL(rd_publish(r, D "/t", "hyperty://x/1", "runtime://x/1", v2), 0);
        CU_ASSERT_EQUAL(rd_publish(r, D "/u", "hyperty://x/2", "runtime://x/2", v1), 0);
        CU_ASSERT_TRUE(rd_has_pending(r));
        CU_ASSERT_EQUAL(rd_get(r, D "/t", &got, &reporter, &runtime), 0);
        CU_ASSERT_TRUE(json_equal(got, v2));
        CU_ASSERT_STRING_EQUAL(reporter, "hyperty://x/1");
        CU_ASSERT_STRING_EQUAL(runtime, "runtime://x/1");

        /* One group commit once the loop is idle. */
        CU_ASSERT_EQUAL(flushes, 0);
        while (sd_event_run(event, 0) > 0)
                ;
        CU_ASSERT_EQUAL(flushes, 1);
        CU_ASSERT_EQUAL(last_flush_error, 0);
        CU_ASSERT_FALSE(rd_has_pending(r));

        CU_ASSERT_EQUAL(rd_subscribe(r, D "/t", "hyperty://x/5", "runtime://x/5"), 1);
        CU_ASSERT_EQUAL(rd_remove(r, D "/u"), 0);
        CU_ASSERT_EQUAL(rd_remove(r, D "/u"), -ENOENT);
        rd_free(r);
        db_close(d);

        /* Reopened: value, reporter and subscription are back, the removed
         * resource is not. */
        open_rd("values.db", &d, &r);
        got = NULL;
        CU_ASSERT_EQUAL(rd_get(r, D "/t", &got, &reporter, &runtime), 0);
        CU_ASSERT_TRUE(json_equal(got, v2));
        CU_ASSERT_STRING_EQUAL(reporter, "hyperty://x/1");
        CU_ASSERT_EQUAL(rd_get(r, D "/u", NULL, NULL, NULL), -ENOENT);
        CU_ASSERT_EQUAL(rd_get_n_subscriptions(r), 1);

        /* Pending values are written when the directory is freed. */
        CU_ASSERT_EQUAL(rd_publish(r, D "/t", "hyperty://x/1", "runtime://x/1", v1), 0);
        rd_free(r);
        db_close(d);
        open_rd("values.db", &d, &r);
        CU_ASSERT_EQUAL(rd_get(r, D "/t", &got, NULL, NULL), 0);
        CU_ASSERT_TRUE(json_equal(got, v1));
        rd_free(r);
        db_close(d);
        json_decref(v1);
        json_decref(v2);
}

static void test_many_pending_flush_at_once(void) {
        db *d = NULL;
        rd *r = NULL;
        json_t *v = json_loads("[{\"n\":\"t\",\"v\":1}]", 0, NULL);
        char name[64];

        open_rd("many.db", &d, &r);
        for (unsigned i = 0; i < RD_DIRTY_MAX - 1; i++) {
                snprintf(name, sizeof(name), D "/r/%u", i);
                CU_ASSERT_EQUAL(rd_publish(r, name, "hyperty://x/1", "runtime://x/1", v), 0);
        }
        CU_ASSERT_TRUE(rd_has_pending(r));
        CU_ASSERT_EQUAL(rd_publish(r, D "/r/last", "hyperty://x/1", "runtime://x/1", v), 0);
        CU_ASSERT_FALSE(rd_has_pending(r));
        rd_free(r);
        db_close(d);
        json_decref(v);
}

static CU_TestInfo tests[] = {
        { "subscriptions reach whole-segment sub-resources", test_prefixes },
        { "last values, group commit, reopen", test_values_and_reopen },
        { "a full batch is written at once", test_many_pending_flush_at_once },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("domain-msg-rd", tests, setup, cleanup)
