/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The software manager against a real HTTP/2 package server (lib/h2-server
 * in-process), real SQLite files, real signatures and real files. */
#include <dirent.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "component-store.h"
#include "fileio.h"
#include "log.h"
#include "message.h"
#include "swmgr.h"
#include "test-swm-util.h"
#include "h2-test-util.h"
#include "tests.h"
#include "tls.h"

#define NAME "temp-producer"

typedef struct fixture {
        char dir[64];
        sd_event *event;
        gates *gates;
        swmgr *m;
        swm_pkg_server srv;
        sign_key *key;
        char *pub;
        char *data;
        size_t size;
        char catalogue[64];
        /* The transitions, "STATE/result", in order. */
        char log[64][48];
        size_t n_log;
        bool saw_delivered;
} fixture;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static void on_event(const swmgr_event *ev, void *userdata) {
        fixture *f = userdata;

        if (ev->state == SWM_DELIVERED)
                f->saw_delivered = true;
        if (f->n_log < ELEMENTSOF(f->log))
                snprintf(f->log[f->n_log++], sizeof(f->log[0]), "%s/%d%s", swm_state_to_string(ev->state),
                         ev->result, ev->removed ? "/removed" : "");
}

static int fixture_manager(fixture *f, const char *dm) {
        swmgr_options o = {
                .state_dir = f->dir,
                .catalogue_url = f->catalogue,
                .dm_principal = dm,
                .retry_initial = 20 * USEC_PER_MSEC,
                .retry_max = 50 * USEC_PER_MSEC,
                .retry_attempts = 2,
        };
        int r;

        r = swmgr_new(f->event, f->gates, &o, &f->m);
        if (r < 0)
                return r;
        swmgr_set_event_handler(f->m, on_event, f);
        r = swmgr_add_trusted_publisher(f->m, "acme", f->pub);
        if (r < 0)
                return r;
        return swmgr_start(f->m);
}

/* A package of size bytes; the server serves serve (NULL: the package). */
static int fixture_setup(fixture *f, size_t size, const char *body) {
        *f = (fixture) {};
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-swm-XXXXXX");
        if (!mkdtemp(f->dir))
                return -errno;
        if (sd_event_new(&f->event) < 0 || gates_new(&f->gates) < 0)
                return -ENOMEM;
        if (sign_key_generate(&f->key) < 0 || sign_key_get_public_base64url(f->key, &f->pub) < 0)
                return -EIO;
        f->data = swm_make_script(body ?: "exec sleep 1000", size);
        if (!f->data)
                return -ENOMEM;
        f->size = strlen(f->data);
        if (swm_pkg_server_start(&f->srv, f->event, f->data, f->size) < 0)
                return -EIO;
        snprintf(f->catalogue, sizeof(f->catalogue), "http://127.0.0.1:%u", f->srv.port);
        return 0;
}

static void fixture_done(fixture *f) {
        f->m = swmgr_free(f->m);
        swm_pkg_server_done(&f->srv);
        f->gates = gates_free(f->gates);
        f->event = sd_event_unref(f->event);
        f->key = sign_key_free(f->key);
        free(f->pub);
        free(f->data);
        if (f->dir[0])
                (void) nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void gate(fixture *f, bool open) {
        gates_update(f->gates, open ? QOS_ONLINE : QOS_OFFLINE, false, false);
}

static json_t *descriptor_for(fixture *f, const void *data, size_t size, const sign_key *key, json_t *extra) {
        return swm_make_descriptor(NAME, data, size, key, f->srv.path, extra);
}

static int install(fixture *f, const char *principal, json_t *desc, json_t *acl, char **ret_error) {
        json_t *v = NULL;
        int r;

        r = swmgr_install(f->m, principal, desc, acl, &v, ret_error);
        json_decref(v);
        json_decref(desc);
        json_decref(acl);
        return r;
}

static swm_state state_of(fixture *f, int *ret_result) {
        swm_state s = _SWM_STATE_INVALID;

        if (swmgr_get_state(f->m, NAME, &s, ret_result) < 0)
                return _SWM_STATE_INVALID;
        return s;
}

/* Runs the loop until the component is in state (10 s hang guard). */
static bool run_until_state(fixture *f, swm_state want) {
        uint64_t deadline = now(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;

        while (state_of(f, NULL) != want && now(CLOCK_MONOTONIC) < deadline)
                if (sd_event_run(f->event, 100 * USEC_PER_MSEC) < 0)
                        break;
        return state_of(f, NULL) == want;
}

static void run_for(fixture *f, usec_t usec) {
        uint64_t deadline = now(CLOCK_MONOTONIC) + usec;

        while (now(CLOCK_MONOTONIC) < deadline)
                (void) sd_event_run(f->event, 10 * USEC_PER_MSEC);
}

static char *sub(fixture *f, const char *rel) {
        char *p;

        if (asprintf(&p, "%s/software/%s", f->dir, rel) < 0)
                return NULL;
        return p;
}

static unsigned count_entries(fixture *f, const char *rel) {
        _cleanup_free_ char *p = sub(f, rel);
        DIR *d = p ? opendir(p) : NULL;
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static off_t file_size(fixture *f, const char *rel) {
        _cleanup_free_ char *p = sub(f, rel);
        struct stat st;

        if (!p || stat(p, &st) < 0)
                return -1;
        return st.st_size;
}

static bool log_has(fixture *f, const char *entry) {
        for (size_t i = 0; i < f->n_log; i++)
                if (streq(f->log[i], entry))
                        return true;
        return false;
}

/* --- tests ---------------------------------------------------------------------------- */

static void test_download_verify_consent_install(void) {
        _cleanup_free_ char *exe = NULL;
        uint8_t want[SHA256_DIGEST_SIZE], got[SHA256_DIGEST_SIZE];
        struct stat st;
        json_t *v = NULL;
        int result = -1;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 100 * 1024, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL(state_of(&f, &result), SWM_DELIVERED);
        CU_ASSERT_EQUAL(result, SWM_RESULT_DOWNLOADED);
        /* Delivered is not installed: consent first. */
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 0);
        CU_ASSERT_EQUAL(file_size(&f, "downloads/" NAME ".pkg"), (off_t) f.size);
        CU_ASSERT_STRING_EQUAL(f.srv.last_range, "");

        CU_ASSERT_EQUAL(swmgr_confirm(f.m, "local:uid=0", NAME, &v, NULL), 0);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "state")), "INSTALLED");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(v, "result")), SWM_RESULT_INSTALLED);
        json_decref(v);
        CU_ASSERT_EQUAL(state_of(&f, &result), SWM_INSTALLED);

        exe = sub(&f, "installed/" NAME "/" NAME);
        CU_ASSERT_EQUAL_FATAL(stat(exe, &st), 0);
        CU_ASSERT_TRUE(st.st_mode & S_IXUSR);
        sha256_buffer(f.data, f.size, want);
        CU_ASSERT_EQUAL(sha256_file(exe, got), (int64_t) f.size);
        CU_ASSERT_EQUAL(memcmp(want, got, sizeof(want)), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "downloads"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "staging"), 0);

        /* Every state was reported, in order. */
        CU_ASSERT_EQUAL_FATAL(f.n_log, 6);
        CU_ASSERT_STRING_EQUAL(f.log[0], "INITIAL/0");
        CU_ASSERT_STRING_EQUAL(f.log[1], "DOWNLOAD_STARTED/1");
        CU_ASSERT_STRING_EQUAL(f.log[2], "DOWNLOADED/3");
        CU_ASSERT_STRING_EQUAL(f.log[3], "DELIVERED/3");
        CU_ASSERT_STRING_EQUAL(f.log[4], "INSTALLING/3");
        CU_ASSERT_STRING_EQUAL(f.log[5], "INSTALLED/2");

        /* A second confirm is refused: never a double install. */
        CU_ASSERT_EQUAL(swmgr_confirm(f.m, "local:uid=0", NAME, NULL, NULL), -EBUSY);
        fixture_done(&f);
}

static void check_rejected(fixture *f, int want_result, const char *reason_part) {
        json_t *v = NULL;
        int result = -1;

        CU_ASSERT_TRUE(run_until_state(f, SWM_INITIAL));
        CU_ASSERT_EQUAL(state_of(f, &result), SWM_INITIAL);
        CU_ASSERT_EQUAL(result, want_result);
        CU_ASSERT_FALSE(f->saw_delivered);
        CU_ASSERT_EQUAL(count_entries(f, "downloads"), 0);
        CU_ASSERT_EQUAL(count_entries(f, "installed"), 0);
        CU_ASSERT_EQUAL(swmgr_confirm(f->m, "local:uid=0", NAME, NULL, NULL), -EBUSY);
        CU_ASSERT_EQUAL(swmgr_get(f->m, "local:uid=0", NAME, &v, NULL), 0);
        if (reason_part)
                CU_ASSERT_PTR_NOT_NULL(strstr(strna(json_string_value(json_object_get(v, "reason"))), reason_part));
        json_decref(v);
}

static void test_corrupt_byte(void) {
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        /* The descriptor describes the original; one byte differs on the wire. */
        json_t *d = descriptor_for(&f, f.data, f.size, f.key, NULL);
        f.srv.data[1000] ^= 0x01;
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", d, NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_INTEGRITY, "sha256");
        CU_ASSERT_TRUE(log_has(&f, "DOWNLOAD_STARTED/1"));
        fixture_done(&f);
}

static void test_wrong_signature(void) {
        _cleanup_sign_key_ sign_key *other = NULL;
        fixture f;
        json_t *d;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&other), 0);
        /* Signed by another key but claiming the trusted publisher. */
        d = descriptor_for(&f, f.data, f.size, other, NULL);
        json_object_set_new(d, "publisher", json_string(f.pub));
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", d, NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_INTEGRITY, "signature");
        fixture_done(&f);
}

static void test_unsupported_package(void) {
        static const char zip[] = "PK\003\004 not an executable";
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 1000, NULL), 0);
        swm_pkg_server_done(&f.srv);
        CU_ASSERT_EQUAL_FATAL(swm_pkg_server_start(&f.srv, f.event, zip, sizeof(zip)), 0);
        snprintf(f.catalogue, sizeof(f.catalogue), "http://127.0.0.1:%u", f.srv.port);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        /* Correctly signed, but nothing the device can run. */
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, zip, sizeof(zip), f.key, NULL), NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_UNSUPPORTED_PACKAGE, "not an executable");
        fixture_done(&f);
}

static void test_untrusted_publisher(void) {
        _cleanup_sign_key_ sign_key *other = NULL;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(sign_key_generate(&other), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, other, NULL), NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_INTEGRITY, "not trusted");
        /* Refused before a single byte was fetched. */
        CU_ASSERT_EQUAL(f.srv.requests, 0);
        fixture_done(&f);
}

static void test_constraints(void) {
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);

        CU_ASSERT_EQUAL(install(&f, "local:uid=0",
                                descriptor_for(&f, f.data, f.size, f.key,
                                               json_pack("{s:{s:s}}", "constraints", "runtimeVersion", "9.0.0")),
                                NULL, NULL),
                        0);
        check_rejected(&f, SWM_RESULT_UPDATE_ERROR, "runtime version");

        /* A failed component may be replaced by a new order. */
        CU_ASSERT_EQUAL(install(&f, "local:uid=0",
                                descriptor_for(&f, f.data, f.size, f.key,
                                               json_pack("{s:{s:[s]}}", "constraints", "arch", "sparc64")),
                                NULL, NULL),
                        0);
        check_rejected(&f, SWM_RESULT_UPDATE_ERROR, "hardware");

        CU_ASSERT_EQUAL(install(&f, "local:uid=0",
                                descriptor_for(&f, f.data, f.size, f.key,
                                               json_pack("{s:{s:I}}", "constraints", "diskBytes",
                                                         (json_int_t) 4503599627370496LL)),
                                NULL, NULL),
                        0);
        check_rejected(&f, SWM_RESULT_STORAGE_FULL, "storage");
        CU_ASSERT_EQUAL(f.srv.requests, 0);

        /* Compatible constraints pass. */
        CU_ASSERT_EQUAL(install(&f, "local:uid=0",
                                descriptor_for(&f, f.data, f.size, f.key,
                                               json_pack("{s:{s:s, s:I}}", "constraints", "runtimeVersion", "0.1",
                                                         "diskBytes", (json_int_t) 1024)),
                                NULL, NULL),
                        0);
        CU_ASSERT_TRUE(run_until_state(&f, SWM_DELIVERED));
        fixture_done(&f);
}

static void test_cancel_leaves_nothing(void) {
        json_t *v = NULL;
        int result = -1;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 50000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL(swmgr_cancel(f.m, "local:uid=0", NAME, &v, NULL), 0);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "reason")), "cancelled");
        json_decref(v);
        CU_ASSERT_EQUAL(state_of(&f, &result), SWM_INITIAL);
        CU_ASSERT_EQUAL(result, SWM_RESULT_INITIAL);
        CU_ASSERT_EQUAL(count_entries(&f, "downloads"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "staging"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 0);
        CU_ASSERT_EQUAL(swmgr_confirm(f.m, "local:uid=0", NAME, NULL, NULL), -EBUSY);
        fixture_done(&f);
}

static void test_gate_pause_and_resume_with_range(void) {
        _cleanup_free_ char *pkg = NULL;
        uint8_t want[SHA256_DIGEST_SIZE], got[SHA256_DIGEST_SIZE];
        char expect[64];
        off_t partial, later;
        uint64_t deadline;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 512 * 1024, NULL), 0);
        f.srv.chunk = 4096;
        f.srv.interval = 5 * USEC_PER_MSEC;
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);

        /* Gate closed: accepted, but nothing is fetched. */
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        run_for(&f, 100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(f.srv.requests, 0);
        CU_ASSERT_EQUAL(state_of(&f, NULL), SWM_DOWNLOAD_STARTED);

        gate(&f, true);
        deadline = now(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
        while (file_size(&f, "downloads/" NAME ".part") < 64 * 1024 && now(CLOCK_MONOTONIC) < deadline)
                (void) sd_event_run(f.event, 10 * USEC_PER_MSEC);
        gate(&f, false);
        partial = file_size(&f, "downloads/" NAME ".part");
        CU_ASSERT_TRUE(partial >= 64 * 1024);
        CU_ASSERT_TRUE(partial < (off_t) f.size);
        CU_ASSERT_EQUAL(state_of(&f, NULL), SWM_DOWNLOAD_STARTED);

        /* Closed: the partial stays as it is. */
        run_for(&f, 200 * USEC_PER_MSEC);
        later = file_size(&f, "downloads/" NAME ".part");
        CU_ASSERT_EQUAL(later, partial);
        CU_ASSERT_EQUAL(f.srv.requests, 1);

        gate(&f, true);
        CU_ASSERT_TRUE(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL(f.srv.requests, 2);
        snprintf(expect, sizeof(expect), "bytes=%jd-", (intmax_t) partial);
        CU_ASSERT_STRING_EQUAL(f.srv.last_range, expect);
        CU_ASSERT_STRING_EQUAL(f.srv.last_if_range, f.srv.etag);
        pkg = sub(&f, "downloads/" NAME ".pkg");
        sha256_buffer(f.data, f.size, want);
        CU_ASSERT_EQUAL(sha256_file(pkg, got), (int64_t) f.size);
        CU_ASSERT_EQUAL(memcmp(want, got, sizeof(want)), 0);
        fixture_done(&f);
}

static void test_server_ignores_range(void) {
        off_t partial;
        uint64_t deadline;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 256 * 1024, NULL), 0);
        f.srv.chunk = 4096;
        f.srv.interval = 5 * USEC_PER_MSEC;
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        deadline = now(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
        while (file_size(&f, "downloads/" NAME ".part") < 32 * 1024 && now(CLOCK_MONOTONIC) < deadline)
                (void) sd_event_run(f.event, 10 * USEC_PER_MSEC);
        gate(&f, false);
        partial = file_size(&f, "downloads/" NAME ".part");
        CU_ASSERT_TRUE(partial > 0);
        /* 200 with everything: the partial is truncated, not appended to. */
        f.srv.ignore_range = true;
        f.srv.chunk = 0;
        gate(&f, true);
        CU_ASSERT_TRUE(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL(file_size(&f, "downloads/" NAME ".pkg"), (off_t) f.size);
        fixture_done(&f);
}

static void test_not_found_no_retry(void) {
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        f.srv.fail_status = 404;
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_INVALID_URI, "not found");
        run_for(&f, 150 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(f.srv.requests, 1);
        fixture_done(&f);
}

static void test_server_errors_bounded_retries(void) {
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        f.srv.fail_status = 503;
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_CONNECTION_LOST, "attempts");
        /* One attempt plus retry_attempts retries, then it stops. */
        CU_ASSERT_EQUAL(f.srv.requests, 3);
        fixture_done(&f);
}

static void test_stalled_server(void) {
        swmgr_options o;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 64 * 1024, NULL), 0);
        /* One chunk, then silence on an open connection. */
        f.srv.chunk = 4096;
        f.srv.interval = 3600 * USEC_PER_SEC;
        o = (swmgr_options) { .state_dir = f.dir, .catalogue_url = f.catalogue,
                              .retry_initial = 10 * USEC_PER_MSEC, .retry_max = 20 * USEC_PER_MSEC,
                              .retry_attempts = 1, .stall_timeout = 200 * USEC_PER_MSEC };
        CU_ASSERT_EQUAL_FATAL(swmgr_new(f.event, f.gates, &o, &f.m), 0);
        swmgr_set_event_handler(f.m, on_event, &f);
        CU_ASSERT_EQUAL(swmgr_add_trusted_publisher(f.m, "acme", f.pub), 0);
        CU_ASSERT_EQUAL_FATAL(swmgr_start(f.m), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_CONNECTION_LOST, "no data");
        /* The retry resumed after the first chunk, it did not start over. */
        CU_ASSERT_EQUAL(f.srv.requests, 2);
        CU_ASSERT_STRING_EQUAL(f.srv.last_range, "bytes=4096-");
        fixture_done(&f);
}

static void test_connection_refused(void) {
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        /* Nothing listens there once the server is gone. */
        f.srv.server = h2_server_free(f.srv.server);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_CONNECTION_LOST, "connection lost");
        fixture_done(&f);
}

static void test_acl(void) {
        _cleanup_free_ char *error = NULL;
        json_t *v = NULL;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, "dm:example.com"), 0);
        gate(&f, true);

        /* Creating is for the local admin and the domain's DM server. */
        CU_ASSERT_EQUAL(install(&f, "local:uid=1000", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, &error),
                        -EACCES);
        CU_ASSERT_PTR_NOT_NULL(error);
        CU_ASSERT_EQUAL(swmgr_error_to_status(-EACCES), 403);
        CU_ASSERT_EQUAL(state_of(&f, NULL), _SWM_STATE_INVALID);
        CU_ASSERT_EQUAL(f.n_log, 0);
        CU_ASSERT_EQUAL(f.srv.requests, 0);

        CU_ASSERT_EQUAL(install(&f, "dm:example.com", descriptor_for(&f, f.data, f.size, f.key, NULL),
                                json_pack("{s:s}", "local:uid=1000", "r"), NULL),
                        0);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));

        /* uid 1000 may read but not consent, nor cancel, nor uninstall. */
        CU_ASSERT_EQUAL(swmgr_get(f.m, "local:uid=1000", NAME, &v, NULL), 0);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(v, "acl"), "owner")),
                               "dm:example.com");
        json_decref(v);
        CU_ASSERT_EQUAL(swmgr_confirm(f.m, "local:uid=1000", NAME, NULL, NULL), -EACCES);
        CU_ASSERT_EQUAL(swmgr_cancel(f.m, "local:uid=1000", NAME, NULL, NULL), -EACCES);
        CU_ASSERT_EQUAL(swmgr_uninstall(f.m, "local:uid=1000", NAME, NULL, NULL), -EACCES);
        CU_ASSERT_EQUAL(swmgr_confirm(f.m, "dm:other.org", NAME, NULL, NULL), -EACCES);
        CU_ASSERT_EQUAL(state_of(&f, NULL), SWM_DELIVERED);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 0);

        /* Someone without read does not see it listed. */
        CU_ASSERT_EQUAL(swmgr_list(f.m, "local:uid=2000", &v), 0);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(v, "components")), 0);
        json_decref(v);
        CU_ASSERT_EQUAL(swmgr_list(f.m, "local:uid=1000", &v), 0);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(v, "components")), 1);
        json_decref(v);

        /* The local admin got every right at creation (steps 10-11). */
        CU_ASSERT_EQUAL(swmgr_confirm(f.m, "local:uid=0", NAME, NULL, NULL), 0);
        CU_ASSERT_EQUAL(state_of(&f, NULL), SWM_INSTALLED);
        fixture_done(&f);
}

static void test_orders_json(void) {
        _cleanup_free_ char *error = NULL;
        json_t *order, *v = NULL;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, "dm:example.com"), 0);
        gate(&f, true);
        order = json_pack("{s:s, s:o}", "order", "install", "descriptor",
                          descriptor_for(&f, f.data, f.size, f.key, NULL));
        CU_ASSERT_EQUAL(swmgr_order(f.m, "dm:example.com", order, &v, NULL), 0);
        json_decref(order);
        json_decref(v);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));

        order = json_pack("{s:s, s:s, s:i}", "order", "confirm", "name", NAME, "x", 1);
        CU_ASSERT_EQUAL(swmgr_order(f.m, "dm:example.com", order, NULL, &error), -EINVAL);
        json_decref(order);
        order = json_pack("{s:s, s:s}", "order", "reboot", "name", NAME);
        CU_ASSERT_EQUAL(swmgr_order(f.m, "dm:example.com", order, NULL, NULL), -EINVAL);
        json_decref(order);
        order = json_pack("{s:s, s:s}", "order", "confirm", "name", "nope");
        CU_ASSERT_EQUAL(swmgr_order(f.m, "dm:example.com", order, NULL, NULL), -ENOENT);
        json_decref(order);
        CU_ASSERT_EQUAL(state_of(&f, NULL), SWM_DELIVERED);

        order = json_pack("{s:s, s:s}", "order", "confirm", "name", NAME);
        CU_ASSERT_EQUAL(swmgr_order(f.m, "dm:example.com", order, &v, NULL), 0);
        json_decref(order);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "state")), "INSTALLED");
        json_decref(v);

        /* Bad descriptors are refused whole. */
        order = json_pack("{s:s, s:{s:s}}", "order", "install", "descriptor", "objectName", "x");
        CU_ASSERT_EQUAL(swmgr_order(f.m, "dm:example.com", order, NULL, NULL), -EINVAL);
        json_decref(order);
        fixture_done(&f);
}

static rt_message *message(rt_message_type type, json_t *value) {
        rt_message *m = NULL;
        json_t *body = value ? json_pack("{s:o}", "value", value) : json_object();

        (void) rt_message_new(type, 7, "domain://dm.example.com", "runtime://example.com/0b8f4a5e-5a8c-4a4e-9b1e-2f0c6f1b7d3a",
                              body, &m);
        json_decref(body);
        return m;
}

static void test_messages(void) {
        rt_message *req, *resp = NULL;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 20000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, "dm:example.com"), 0);
        gate(&f, true);

        req = message(RT_MESSAGE_CREATE, json_pack("{s:s, s:o}", "order", "install", "descriptor",
                                                   descriptor_for(&f, f.data, f.size, f.key, NULL)));
        CU_ASSERT_PTR_NOT_NULL_FATAL(req);
        CU_ASSERT_EQUAL(swmgr_handle_message(f.m, "dm:example.com", req, &resp), 0);
        CU_ASSERT_EQUAL(rt_message_get_type(resp), RT_MESSAGE_RESPONSE);
        CU_ASSERT_EQUAL(rt_message_get_id(resp), 7);
        CU_ASSERT_EQUAL(rt_message_get_code(resp), 201);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(rt_message_get_value(resp), "name")), NAME);
        rt_message_free(resp);
        rt_message_free(req);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));

        /* Another domain has no rights: 403, nothing changes. */
        req = message(RT_MESSAGE_EXECUTE, json_pack("{s:s, s:s}", "order", "confirm", "name", NAME));
        CU_ASSERT_EQUAL(swmgr_handle_message(f.m, "dm:other.org", req, &resp), 0);
        CU_ASSERT_EQUAL(rt_message_get_code(resp), 403);
        CU_ASSERT_PTR_NOT_NULL(rt_message_get_description(resp));
        rt_message_free(resp);
        CU_ASSERT_EQUAL(state_of(&f, NULL), SWM_DELIVERED);

        CU_ASSERT_EQUAL(swmgr_handle_message(f.m, "dm:example.com", req, &resp), 0);
        CU_ASSERT_EQUAL(rt_message_get_code(resp), 200);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(rt_message_get_value(resp), "state")), "INSTALLED");
        rt_message_free(resp);
        rt_message_free(req);

        req = message(RT_MESSAGE_READ, NULL);
        CU_ASSERT_EQUAL(swmgr_handle_message(f.m, "dm:example.com", req, &resp), 0);
        CU_ASSERT_EQUAL(rt_message_get_code(resp), 200);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(rt_message_get_value(resp), "components")), 1);
        rt_message_free(resp);
        rt_message_free(req);

        req = message(RT_MESSAGE_SUBSCRIBE, NULL);
        CU_ASSERT_EQUAL(swmgr_handle_message(f.m, "dm:example.com", req, &resp), 0);
        CU_ASSERT_EQUAL(rt_message_get_code(resp), 400);
        rt_message_free(resp);
        rt_message_free(req);
        fixture_done(&f);
}

static bool pid_alive(pid_t pid) {
        char path[64], state = 0;
        FILE *fp;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        fp = fopen(path, "re");
        if (!fp)
                return false;
        if (fscanf(fp, "%*d %*s %c", &state) != 1)
                state = 0;
        fclose(fp);
        return state != 0 && state != 'Z';
}

static void test_uninstall_failure(void) {
        _cleanup_free_ char *trash = NULL, *error = NULL;
        json_t *v = NULL;
        int result = -1;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 4000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL_FATAL(swmgr_confirm(f.m, "local:uid=0", NAME, NULL, NULL), 0);

        /* The files cannot be taken out of service (no trash to move them to). */
        trash = sub(&f, "trash");
        CU_ASSERT_EQUAL_FATAL(rmdir(trash), 0);
        CU_ASSERT_EQUAL(swmgr_uninstall(f.m, "local:uid=0", NAME, &v, &error), -EIO);
        CU_ASSERT_PTR_NULL(v);
        CU_ASSERT_PTR_NOT_NULL(error);
        CU_ASSERT_EQUAL(state_of(&f, &result), SWM_INSTALLED);
        CU_ASSERT_EQUAL(result, SWM_RESULT_UNINSTALL_FAILURE);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 1);

        /* Once that is fixed, uninstall works. */
        CU_ASSERT_EQUAL_FATAL(mkdir(trash, 0750), 0);
        CU_ASSERT_EQUAL(swmgr_uninstall(f.m, "local:uid=0", NAME, NULL, NULL), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 0);
        fixture_done(&f);
}

static void test_stubborn_component_killed(void) {
        uint64_t deadline;
        pid_t pid;
        fixture f;

        /* Ignores SIGTERM: deactivation must still end it. */
        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 4000, "trap '' TERM; while :; do sleep 1; done"), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL_FATAL(swmgr_confirm(f.m, "local:uid=0", NAME, NULL, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(swmgr_activate(f.m, "local:uid=0", NAME, NULL, NULL), 0);
        pid = swmgr_get_pid(f.m, NAME);
        CU_ASSERT_TRUE_FATAL(pid > 0);
        run_for(&f, 200 * USEC_PER_MSEC); /* let the shell install its trap */
        CU_ASSERT_EQUAL(swmgr_deactivate(f.m, "local:uid=0", NAME, NULL, NULL), 0);
        deadline = now(CLOCK_MONOTONIC) + 20 * USEC_PER_SEC;
        while (swmgr_get_pid(f.m, NAME) > 0 && now(CLOCK_MONOTONIC) < deadline)
                (void) sd_event_run(f.event, 100 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(swmgr_get_pid(f.m, NAME), 0);
        CU_ASSERT_FALSE(pid_alive(pid));
        fixture_done(&f);
}

static void test_activate_deactivate_uninstall(void) {
        _cleanup_free_ char *inst = NULL;
        uint64_t deadline;
        json_t *v = NULL;
        pid_t pid;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 8000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL(swmgr_activate(f.m, "local:uid=0", NAME, NULL, NULL), -EBUSY);
        CU_ASSERT_EQUAL_FATAL(swmgr_confirm(f.m, "local:uid=0", NAME, NULL, NULL), 0);

        CU_ASSERT_EQUAL(swmgr_activate(f.m, "local:uid=0", NAME, &v, NULL), 0);
        CU_ASSERT_TRUE(json_is_true(json_object_get(v, "active")));
        json_decref(v);
        pid = swmgr_get_pid(f.m, NAME);
        CU_ASSERT_TRUE_FATAL(pid > 0);
        CU_ASSERT_TRUE(pid_alive(pid));

        CU_ASSERT_EQUAL(swmgr_deactivate(f.m, "local:uid=0", NAME, NULL, NULL), 0);
        deadline = now(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
        while (swmgr_get_pid(f.m, NAME) > 0 && now(CLOCK_MONOTONIC) < deadline)
                (void) sd_event_run(f.event, 10 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(swmgr_get_pid(f.m, NAME), 0);
        CU_ASSERT_FALSE(pid_alive(pid));

        CU_ASSERT_EQUAL(swmgr_activate(f.m, "local:uid=0", NAME, NULL, NULL), 0);
        pid = swmgr_get_pid(f.m, NAME);
        CU_ASSERT_TRUE(pid > 0);

        /* Uninstall stops it and removes everything but nothing else. */
        CU_ASSERT_EQUAL(swmgr_uninstall(f.m, "local:uid=0", NAME, &v, NULL), 0);
        CU_ASSERT_TRUE(json_is_true(json_object_get(v, "removed")));
        json_decref(v);
        CU_ASSERT_FALSE(pid_alive(pid));
        CU_ASSERT_EQUAL(state_of(&f, NULL), _SWM_STATE_INVALID);
        inst = sub(&f, "installed/" NAME);
        CU_ASSERT_FALSE(access(inst, F_OK) == 0);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "trash"), 0);
        CU_ASSERT_TRUE(log_has(&f, "UNINSTALLING/2"));
        CU_ASSERT_EQUAL(swmgr_uninstall(f.m, "local:uid=0", NAME, NULL, NULL), -ENOENT);
        fixture_done(&f);
}

/* Restarting the manager on the same state directory, with the files as a
 * crash at a given point would have left them. */
static void test_recovery(void) {
        _cleanup_free_ char *pkg = NULL, *staging = NULL, *staged = NULL, *inst = NULL, *junk = NULL, *db = NULL;
        _cleanup_component_store_ component_store *st = NULL;
        component_record rec = {};
        int result = -1;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 30000, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE_FATAL(run_until_state(&f, SWM_DELIVERED));
        f.m = swmgr_free(f.m);

        /* Crash in INSTALLING after the package moved into staging. */
        pkg = sub(&f, "downloads/" NAME ".pkg");
        staging = sub(&f, "staging/" NAME);
        staged = sub(&f, "staging/" NAME "/" NAME);
        inst = sub(&f, "installed/" NAME);
        if (asprintf(&db, "%s/components.db", f.dir) < 0)
                db = NULL;
        CU_ASSERT_EQUAL_FATAL(component_store_open(db, &st, NULL), 0);
        CU_ASSERT_EQUAL_FATAL(component_store_get(st, NAME, &rec), 0);
        free(rec.state);
        rec.state = strdup("INSTALLING");
        CU_ASSERT_EQUAL(component_store_put(st, &rec), 0);
        st = component_store_free(st);
        CU_ASSERT_EQUAL(mkdir(staging, 0755), 0);
        CU_ASSERT_EQUAL(rename(pkg, staged), 0);
        /* Orphans of all kinds. */
        junk = sub(&f, "downloads/ghost.part");
        CU_ASSERT_EQUAL(write_file_atomic(junk, "x", 1, 0600), 0);
        free(junk);
        junk = sub(&f, "installed/ghost");
        CU_ASSERT_EQUAL(mkdir(junk, 0755), 0);
        free(junk);
        junk = sub(&f, "trash/old.1234");
        CU_ASSERT_EQUAL(mkdir(junk, 0755), 0);

        f.n_log = 0;
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        CU_ASSERT_EQUAL(state_of(&f, &result), SWM_INSTALLED);
        CU_ASSERT_EQUAL(result, SWM_RESULT_INSTALLED);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 1);
        CU_ASSERT_EQUAL(count_entries(&f, "staging"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "downloads"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "trash"), 0);
        f.m = swmgr_free(f.m);

        /* Crash in INSTALLING after the final rename: completes, never
         * installs twice. */
        CU_ASSERT_EQUAL_FATAL(component_store_open(db, &st, NULL), 0);
        component_record_done(&rec);
        CU_ASSERT_EQUAL_FATAL(component_store_get(st, NAME, &rec), 0);
        free(rec.state);
        rec.state = strdup("INSTALLING");
        CU_ASSERT_EQUAL(component_store_put(st, &rec), 0);
        st = component_store_free(st);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        CU_ASSERT_EQUAL(state_of(&f, &result), SWM_INSTALLED);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 1);
        f.m = swmgr_free(f.m);

        /* Crash in UNINSTALLING: finishes the removal. */
        CU_ASSERT_EQUAL_FATAL(component_store_open(db, &st, NULL), 0);
        component_record_done(&rec);
        CU_ASSERT_EQUAL_FATAL(component_store_get(st, NAME, &rec), 0);
        free(rec.state);
        rec.state = strdup("UNINSTALLING");
        CU_ASSERT_EQUAL(component_store_put(st, &rec), 0);
        st = component_store_free(st);
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        CU_ASSERT_EQUAL(state_of(&f, NULL), _SWM_STATE_INVALID);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 0);
        component_record_done(&rec);
        fixture_done(&f);
}

static void test_recovery_resumes_download(void) {
        char expect[64];
        off_t partial;
        uint64_t deadline;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 256 * 1024, NULL), 0);
        f.srv.chunk = 4096;
        f.srv.interval = 5 * USEC_PER_MSEC;
        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        deadline = now(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
        while (file_size(&f, "downloads/" NAME ".part") < 32 * 1024 && now(CLOCK_MONOTONIC) < deadline)
                (void) sd_event_run(f.event, 10 * USEC_PER_MSEC);
        f.m = swmgr_free(f.m);
        partial = file_size(&f, "downloads/" NAME ".part");
        CU_ASSERT_TRUE(partial > 0 && partial < (off_t) f.size);
        f.srv.chunk = 0;

        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        CU_ASSERT_TRUE(run_until_state(&f, SWM_DELIVERED));
        snprintf(expect, sizeof(expect), "bytes=%jd-", (intmax_t) partial);
        CU_ASSERT_STRING_EQUAL(f.srv.last_range, expect);
        /* The entity tag survived the restart in the database. */
        CU_ASSERT_STRING_EQUAL(f.srv.last_if_range, f.srv.etag);
        fixture_done(&f);
}

static void test_https_download(void) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *tls = NULL;
        H2TestCerts certs = {};
        swmgr_options o;
        fixture f;

        CU_ASSERT_EQUAL_FATAL(h2_test_certs_make(&certs), 0);
        CU_ASSERT_EQUAL_FATAL(tls_server_ctx_new(certs.cert, certs.key, &tls), 0);
        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 40000, NULL), 0);
        /* Same package, now over TLS. */
        swm_pkg_server_done(&f.srv);
        CU_ASSERT_EQUAL_FATAL(swm_pkg_server_start_tls(&f.srv, f.event, f.data, f.size, tls), 0);
        snprintf(f.catalogue, sizeof(f.catalogue), "https://127.0.0.1:%u", f.srv.port);

        /* A CA that did not sign the server: the download fails, 52. */
        o = (swmgr_options) { .state_dir = f.dir, .catalogue_url = f.catalogue, .ca_file = certs.other_ca,
                              .retry_initial = 10 * USEC_PER_MSEC, .retry_max = 20 * USEC_PER_MSEC,
                              .retry_attempts = 1 };
        CU_ASSERT_EQUAL_FATAL(swmgr_new(f.event, f.gates, &o, &f.m), 0);
        CU_ASSERT_EQUAL(swmgr_add_trusted_publisher(f.m, "acme", f.pub), 0);
        CU_ASSERT_EQUAL_FATAL(swmgr_start(f.m), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        check_rejected(&f, SWM_RESULT_CONNECTION_LOST, NULL);
        CU_ASSERT_EQUAL(f.srv.requests, 0);
        f.m = swmgr_free(f.m);

        o.ca_file = certs.ca;
        CU_ASSERT_EQUAL_FATAL(swmgr_new(f.event, f.gates, &o, &f.m), 0);
        CU_ASSERT_EQUAL(swmgr_add_trusted_publisher(f.m, "acme", f.pub), 0);
        CU_ASSERT_EQUAL_FATAL(swmgr_start(f.m), 0);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE(run_until_state(&f, SWM_DELIVERED));
        CU_ASSERT_EQUAL(f.srv.requests, 1);
        fixture_done(&f);
        h2_test_certs_remove(&certs);
}

static void test_disk_full(void) {
        char tmpfs[96];
        int result = -1;
        fixture f;

        if (geteuid() != 0) {
                fprintf(stderr, "not root: disk full test skipped\n");
                return;
        }
        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, 2 * 1024 * 1024, NULL), 0);
        /* A private mount namespace: the tmpfs vanishes with this process
         * whatever happens. */
        CU_ASSERT_EQUAL_FATAL(unshare(CLONE_NEWNS), 0);
        CU_ASSERT_EQUAL_FATAL(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        snprintf(tmpfs, sizeof(tmpfs), "%s/small", f.dir);
        CU_ASSERT_EQUAL_FATAL(mkdir(tmpfs, 0700), 0);
        CU_ASSERT_EQUAL_FATAL(mount("rtsw-tmpfs", tmpfs, "tmpfs", 0, "size=1m"), 0);
        snprintf(f.dir + strlen(f.dir), sizeof(f.dir) - strlen(f.dir), "/small");

        CU_ASSERT_EQUAL_FATAL(fixture_manager(&f, NULL), 0);
        gate(&f, true);
        CU_ASSERT_EQUAL(install(&f, "local:uid=0", descriptor_for(&f, f.data, f.size, f.key, NULL), NULL, NULL), 0);
        CU_ASSERT_TRUE(run_until_state(&f, SWM_INITIAL));
        CU_ASSERT_EQUAL(state_of(&f, &result), SWM_INITIAL);
        CU_ASSERT_EQUAL(result, SWM_RESULT_STORAGE_FULL);
        CU_ASSERT_FALSE(f.saw_delivered);
        /* The partial is gone, nothing half-installed. */
        CU_ASSERT_EQUAL(count_entries(&f, "downloads"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "installed"), 0);
        CU_ASSERT_EQUAL(count_entries(&f, "staging"), 0);
        f.m = swmgr_free(f.m);
        (void) umount2(tmpfs, MNT_DETACH);
        f.dir[strlen(f.dir) - strlen("/small")] = '\0';
        fixture_done(&f);
}

static CU_TestInfo tests[] = {
        { "download, verify, consent, install", test_download_verify_consent_install },
        { "corrupt byte: 53, never delivered", test_corrupt_byte },
        { "wrong signature: 53", test_wrong_signature },
        { "untrusted publisher: 53 before download", test_untrusted_publisher },
        { "not an executable: 54", test_unsupported_package },
        { "constraints: 57 runtime/arch, 50 disk", test_constraints },
        { "cancel leaves nothing", test_cancel_leaves_nothing },
        { "gate closes and opens: resume with Range", test_gate_pause_and_resume_with_range },
        { "server ignores Range: start over", test_server_ignores_range },
        { "404: 56 without retry", test_not_found_no_retry },
        { "503: bounded retries, 52", test_server_errors_bounded_retries },
        { "connection refused: 52", test_connection_refused },
        { "stalled server: retried, then 52", test_stalled_server },
        { "ACL refusals change nothing", test_acl },
        { "JSON orders", test_orders_json },
        { "activate, deactivate, uninstall", test_activate_deactivate_uninstall },
        { "a component ignoring SIGTERM is killed", test_stubborn_component_killed },
        { "uninstall failure: 59, still installed", test_uninstall_failure },
        { "orders in reTHINK messages", test_messages },
        { "recovery: installing, orphans, uninstalling", test_recovery },
        { "recovery: download resumes with Range", test_recovery_resumes_download },
        { "https with the configured CA only", test_https_download },
        { "disk full: 50, partial removed", test_disk_full },
        CU_TEST_INFO_NULL,
};

static int init(void) {
        if (!getenv("RETHINK_LOG_LEVEL"))
                log_set_max_level(LOG_WARNING);
        signal(SIGPIPE, SIG_IGN);
        return 0;
}

TESTS_MAIN_FIXTURE("swm", tests, init, NULL)
