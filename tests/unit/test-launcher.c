/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The component launcher in fork/exec mode, with real processes: restarts
 * with backoff, giving up, deliberate stops, the prepare handler, the
 * environment a component sees. (systemd mode: tests/system/components-systemd.sh.) */
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "fileio.h"
#include "launcher.h"
#include "macro.h"
#include "tests.h"
#include "time-util.h"

#define MAX_EXITS 32

typedef struct fixture {
        char dir[64];
        char script[128];
        char out[128];
        sd_event *event;
        launcher *l;
        launch_exit exits[MAX_EXITS];
        size_t n_exits;
        pid_t started[MAX_EXITS];
        size_t n_started;
        unsigned prepared;
        launch_instance *inst;
} fixture;

static void on_exit_(launch_instance *i, const launch_exit *e, void *userdata) {
        fixture *f = userdata;

        if (f->n_exits < MAX_EXITS)
                f->exits[f->n_exits++] = *e;
}

/* The owner's handler runs after the launcher's and may free. */
static void free_when_down(launch_instance *i, const launch_exit *e, void *userdata) {
        fixture *f = userdata;

        if (e->stopped || e->gave_up) {
                launch_instance_free(i);
                f->inst = NULL;
        }
}

static void on_started(launch_instance *i, pid_t pid, void *userdata) {
        fixture *f = userdata;

        if (f->n_started < MAX_EXITS)
                f->started[f->n_started++] = pid;
}

static int write_script(fixture *f, const char *body) {
        _cleanup_free_ char *text = NULL;

        if (asprintf(&text, "#!/bin/sh\n%s\n", body) < 0)
                return -ENOMEM;
        if (write_file_atomic(f->script, text, strlen(text), 0755) < 0)
                return -EIO;
        return 0;
}

static int fixture_setup(fixture *f, const launcher_options *o, const char *body) {
        launcher_options opts = *o;

        *f = (fixture) {};
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-launcher.XXXXXX");
        if (!mkdtemp(f->dir))
                return -errno;
        snprintf(f->script, sizeof(f->script), "%s/component", f->dir);
        snprintf(f->out, sizeof(f->out), "%s/out", f->dir);
        if (write_script(f, body) < 0)
                return -EIO;
        if (sd_event_new(&f->event) < 0)
                return -EIO;
        opts.mode = LAUNCHER_FORK;
        if (launcher_new(f->event, &opts, &f->l) < 0)
                return -EIO;
        launcher_set_exit_handler(f->l, on_exit_, f);
        launcher_set_started_handler(f->l, on_started, f);
        return 0;
}

static void fixture_done(fixture *f) {
        _cleanup_free_ char *cmd = NULL;

        launch_instance_free(f->inst);
        launcher_free(f->l);
        sd_event_unref(f->event);
        if (asprintf(&cmd, "rm -rf '%s'", f->dir) >= 0)
                (void) system(cmd);
}

static void run_until(fixture *f, bool (*cond)(fixture *f), usec_t timeout) {
        usec_t deadline = now(CLOCK_MONOTONIC) + timeout;

        while (!(cond && cond(f)) && now(CLOCK_MONOTONIC) < deadline)
                (void) sd_event_run(f->event, 20 * USEC_PER_MSEC);
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

static size_t count_lines(const char *path) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0, n = 0;

        if (read_full_file(path, 1 << 20, &text, &size) < 0)
                return 0;
        for (size_t i = 0; i < size; i++)
                n += text[i] == '\n';
        return n;
}

static launch_spec spec_for(fixture *f) {
        return (launch_spec) {
                .name = "temp",
                .kind = LAUNCH_HYPERTY,
                .executable = f->script,
        };
}

static bool three_exits(fixture *f) {
        return f->n_exits >= 3;
}

static void test_exit_is_restarted_with_backoff(void) {
        fixture f;
        launch_spec s;
        _cleanup_free_ char *body = NULL;

        CU_ASSERT_FATAL(asprintf(&body, "echo run >> \"$(dirname \"$0\")/out\"; exit 3") > 0);
        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f,
                                            &(launcher_options) {
                                                    .restart_initial_usec = 200 * USEC_PER_MSEC,
                                                    .restart_max_usec = 400 * USEC_PER_MSEC,
                                                    .restart_burst = 10,
                                            },
                                            body),
                              0);
        s = spec_for(&f);
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &f.inst), 0);
        CU_ASSERT_TRUE(launch_instance_get_pid(f.inst) > 0);
        CU_ASSERT_STRING_EQUAL(launch_instance_get_state(f.inst), "running");
        run_until(&f, three_exits, 20 * USEC_PER_SEC);
        CU_ASSERT_FATAL(f.n_exits >= 3);
        for (size_t i = 0; i < 3; i++) {
                CU_ASSERT_EQUAL(f.exits[i].code, CLD_EXITED);
                CU_ASSERT_EQUAL(f.exits[i].status, 3);
                CU_ASSERT_TRUE(f.exits[i].will_restart);
                CU_ASSERT_FALSE(f.exits[i].gave_up);
                CU_ASSERT_FALSE(f.exits[i].stopped);
                CU_ASSERT_EQUAL(f.exits[i].restarts, i);
                /* Equal jitter: never below half the current step. */
                CU_ASSERT_TRUE(f.exits[i].restart_usec >= 100 * USEC_PER_MSEC);
                CU_ASSERT_TRUE(f.exits[i].restart_usec <= 400 * USEC_PER_MSEC);
        }
        /* Each run was a new process, and really ran. */
        CU_ASSERT_TRUE(f.n_started >= 3);
        CU_ASSERT_NOT_EQUAL(f.started[0], f.started[1]);
        CU_ASSERT_NOT_EQUAL(f.started[1], f.started[2]);
        CU_ASSERT_TRUE(count_lines(f.out) >= 3);
        CU_ASSERT_TRUE(launch_instance_get_restarts(f.inst) >= 2);
        fixture_done(&f);
}

static bool gave_up(fixture *f) {
        return f->n_exits > 0 && f->exits[f->n_exits - 1].gave_up;
}

static void test_crash_loop_gives_up(void) {
        fixture f;
        launch_spec s;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f,
                                            &(launcher_options) {
                                                    .restart_initial_usec = 50 * USEC_PER_MSEC,
                                                    .restart_max_usec = 100 * USEC_PER_MSEC,
                                                    .restart_burst = 3,
                                                    .restart_window_usec = 60 * USEC_PER_SEC,
                                            },
                                            "echo run >> \"$(dirname \"$0\")/out\"; kill -SEGV $$"),
                              0);
        s = spec_for(&f);
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &f.inst), 0);
        run_until(&f, gave_up, 20 * USEC_PER_SEC);
        CU_ASSERT_FATAL(gave_up(&f));
        CU_ASSERT_EQUAL(f.n_exits, 3);
        CU_ASSERT_EQUAL(f.exits[0].code, CLD_KILLED);
        CU_ASSERT_EQUAL(f.exits[0].status, SIGSEGV);
        CU_ASSERT_TRUE(f.exits[1].will_restart);
        CU_ASSERT_FALSE(f.exits[2].will_restart);
        CU_ASSERT_EQUAL(f.exits[2].restarts, 2);
        CU_ASSERT_STRING_EQUAL(launch_instance_get_state(f.inst), "failed");
        CU_ASSERT_EQUAL(launch_instance_get_pid(f.inst), 0);
        /* Nothing after giving up. */
        run_until(&f, NULL, 500 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(f.n_exits, 3);
        CU_ASSERT_EQUAL(count_lines(f.out), 3);
        fixture_done(&f);
}

static bool one_exit(fixture *f) {
        return f->n_exits >= 1;
}

static void test_stable_run_resets(void) {
        fixture f;
        launch_spec s;
        bool any_gave_up = false;

        /* Each run lasts longer than stable_after: a burst of 2 is never
         * reached, however often it exits. */
        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f,
                                            &(launcher_options) {
                                                    .restart_initial_usec = 50 * USEC_PER_MSEC,
                                                    .restart_max_usec = 50 * USEC_PER_MSEC,
                                                    .restart_burst = 2,
                                                    .stable_after_usec = 100 * USEC_PER_MSEC,
                                            },
                                            "sleep 0.3; exit 1"),
                              0);
        s = spec_for(&f);
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &f.inst), 0);
        run_until(&f, three_exits, 20 * USEC_PER_SEC);
        CU_ASSERT_TRUE(f.n_exits >= 3);
        for (size_t i = 0; i < f.n_exits; i++)
                any_gave_up = any_gave_up || f.exits[i].gave_up;
        CU_ASSERT_FALSE(any_gave_up);
        fixture_done(&f);
}

static void test_deliberate_stop(void) {
        fixture f;
        launch_spec s;
        pid_t pid;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f,
                                            &(launcher_options) {
                                                    .restart_initial_usec = 50 * USEC_PER_MSEC,
                                                    .restart_max_usec = 50 * USEC_PER_MSEC,
                                            },
                                            "exec sleep 1000"),
                              0);
        s = spec_for(&f);
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &f.inst), 0);
        pid = launch_instance_get_pid(f.inst);
        CU_ASSERT_TRUE_FATAL(pid > 0);
        CU_ASSERT_EQUAL(launcher_stop(f.inst), 1);
        CU_ASSERT_STRING_EQUAL(launch_instance_get_state(f.inst), "stopping");
        run_until(&f, one_exit, 10 * USEC_PER_SEC);
        CU_ASSERT_FATAL(f.n_exits == 1);
        CU_ASSERT_TRUE(f.exits[0].stopped);
        CU_ASSERT_FALSE(f.exits[0].will_restart);
        CU_ASSERT_EQUAL(f.exits[0].code, CLD_KILLED);
        CU_ASSERT_EQUAL(f.exits[0].status, SIGTERM);
        CU_ASSERT_FALSE(pid_alive(pid));
        CU_ASSERT_STRING_EQUAL(launch_instance_get_state(f.inst), "stopped");
        /* Far longer than the restart delay: still nothing. */
        run_until(&f, NULL, 400 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(f.n_started, 1);
        CU_ASSERT_EQUAL(f.n_exits, 1);
        /* Stopping again is a no-op. */
        CU_ASSERT_EQUAL(launcher_stop(f.inst), 0);
        fixture_done(&f);
}

static void test_stop_stubborn_and_free_from_handler(void) {
        fixture f;
        launch_spec s;
        pid_t pid;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f,
                                            &(launcher_options) {
                                                    .stop_timeout_usec = 300 * USEC_PER_MSEC,
                                            },
                                            "trap '' TERM; echo ready > \"$(dirname \"$0\")/out\"; "
                                            "while :; do sleep 0.1; done"),
                              0);
        s = spec_for(&f);
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &f.inst), 0);
        launch_instance_set_exit_handler(f.inst, free_when_down, &f);
        pid = launch_instance_get_pid(f.inst);
        /* Let the shell install its trap. */
        for (usec_t d = now(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC; count_lines(f.out) < 1 && now(CLOCK_MONOTONIC) < d;)
                (void) sd_event_run(f.event, 20 * USEC_PER_MSEC);
        CU_ASSERT_EQUAL(launcher_stop(f.inst), 1);
        run_until(&f, one_exit, 10 * USEC_PER_SEC);
        CU_ASSERT_FATAL(f.n_exits == 1);
        CU_ASSERT_TRUE(f.exits[0].stopped);
        CU_ASSERT_EQUAL(f.exits[0].code, CLD_KILLED);
        CU_ASSERT_EQUAL(f.exits[0].status, SIGKILL);
        CU_ASSERT_FALSE(pid_alive(pid));
        CU_ASSERT_PTR_NULL(f.inst); /* freed by the handler */
        fixture_done(&f);
}

static int prepare(launch_instance *i, launch_spec *spec, void *userdata) {
        fixture *f = userdata;
        static char env_buf[64], tok_buf[64];
        static char *env[3];
        static launch_credential cred;

        f->prepared++;
        snprintf(env_buf, sizeof(env_buf), "GEN=%u", f->prepared);
        snprintf(tok_buf, sizeof(tok_buf), "tok-%u", f->prepared);
        env[0] = env_buf;
        env[1] = (char *) "RETHINK_BUS=/nowhere";
        env[2] = NULL;
        cred = (launch_credential) { "rethink-bus-token", tok_buf };
        spec->environment = env;
        spec->credentials = &cred;
        spec->n_credentials = 1;
        /* Not the handler's to change. */
        spec->name = "other";
        return 0;
}

static void test_prepare_handler(void) {
        fixture f;
        launch_spec s;
        _cleanup_free_ char *text = NULL, *expect = NULL;
        size_t size;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f,
                                            &(launcher_options) {
                                                    .restart_initial_usec = 50 * USEC_PER_MSEC,
                                                    .restart_max_usec = 50 * USEC_PER_MSEC,
                                                    .restart_burst = 10,
                                            },
                                            "echo \"$GEN $RETHINK_BUS_TOKEN $RETHINK_BUS "
                                            "${LAUNCHER_TEST_LEAK:-clean} ${PATH:+path}\" >> out; exit 1"),
                              0);
        launcher_set_prepare_handler(f.l, prepare, &f);
        setenv("LAUNCHER_TEST_LEAK", "leaked", 1);
        s = spec_for(&f);
        s.bus_socket = "/run/test-bus.sock";
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &f.inst), 0);
        run_until(&f, three_exits, 20 * USEC_PER_SEC);
        unsetenv("LAUNCHER_TEST_LEAK");
        CU_ASSERT_TRUE(f.prepared >= 3);
        CU_ASSERT_STRING_EQUAL(launch_instance_get_name(f.inst), "temp");
        CU_ASSERT_EQUAL_FATAL(read_full_file(f.out, 1 << 20, &text, &size), 0);
        /* The working directory is the executable's, the bus is the one
         * the launcher was given (the handler's RETHINK_BUS is replaced),
         * the credential is in the environment, nothing of ours leaks. */
        CU_ASSERT_TRUE(strncmp(text,
                               "1 tok-1 /run/test-bus.sock clean path\n"
                               "2 tok-2 /run/test-bus.sock clean path\n"
                               "3 tok-3 /run/test-bus.sock clean path\n",
                               strlen("1 tok-1 /run/test-bus.sock clean path\n") * 3) == 0);
        if (strncmp(text, "1 tok-1", 7) != 0)
                fprintf(stderr, "component wrote: %s\n", text);
        fixture_done(&f);
}

static int prepare_fails(launch_instance *i, launch_spec *spec, void *userdata) {
        return -EADDRNOTAVAIL;
}

static void test_bad_specs_and_names(void) {
        fixture f;
        launch_spec s;
        launch_instance *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ char *u1 = NULL, *u2 = NULL, *u3 = NULL;

        CU_ASSERT_EQUAL_FATAL(fixture_setup(&f, &(launcher_options) {}, "exec sleep 1000"), 0);
        if (sd_booted() <= 0) {
                launcher *l = NULL;

                CU_ASSERT_EQUAL(launcher_new(f.event, &(launcher_options) { .mode = LAUNCHER_AUTO }, &l), 0);
                CU_ASSERT_EQUAL(launcher_get_mode(l), LAUNCHER_FORK);
                launcher_free(l);
        }
        CU_ASSERT_EQUAL(launcher_new(f.event, &(launcher_options) { .unit_prefix = "bad prefix" }, &(launcher *) { NULL }),
                        -EINVAL);

        s = spec_for(&f);
        s.name = "../etc";
        CU_ASSERT_EQUAL(launcher_start(f.l, &s, &a), -EINVAL);
        s = spec_for(&f);
        s.executable = "relative/path";
        CU_ASSERT_EQUAL(launcher_start(f.l, &s, &a), -EINVAL);
        s = spec_for(&f);
        s.environment = (char *[]) { (char *) "NOEQUALS", NULL };
        CU_ASSERT_EQUAL(launcher_start(f.l, &s, &a), -EINVAL);
        s = spec_for(&f);
        s.credentials = &(launch_credential) { "../x", "v" };
        s.n_credentials = 1;
        CU_ASSERT_EQUAL(launcher_start(f.l, &s, &a), -EINVAL);
        s = spec_for(&f);
        s.executable = "/nonexistent/component";
        s.working_directory = f.dir;
        /* execve fails in the child: an exit like any other (status 203). */
        CU_ASSERT_EQUAL(launcher_start(f.l, &s, &a), 0);
        run_until(&f, one_exit, 10 * USEC_PER_SEC);
        CU_ASSERT_EQUAL(f.n_exits, 1);
        CU_ASSERT_EQUAL(f.exits[0].status, 203);
        a = launch_instance_free(a);

        /* Several instances of one component, told apart by their keys. */
        s = spec_for(&f);
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &a), 0);
        CU_ASSERT_EQUAL(launcher_start(f.l, &s, &c), -EEXIST);
        s.key = "example.org";
        CU_ASSERT_EQUAL_FATAL(launcher_start(f.l, &s, &b), 0);
        CU_ASSERT_STRING_NOT_EQUAL(launch_instance_get_unit(a), launch_instance_get_unit(b));
        CU_ASSERT_EQUAL(fnmatch("rethink-hyperty-temp-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]"
                                ".service",
                                launch_instance_get_unit(a), 0),
                        0);
        CU_ASSERT_EQUAL(launcher_unit_name("rethink", LAUNCH_PROTOSTUB, "messaging", "main", &u1), 0);
        CU_ASSERT_EQUAL(launcher_unit_name("rethink", LAUNCH_PROTOSTUB, "messaging", "main", &u2), 0);
        CU_ASSERT_EQUAL(launcher_unit_name("rethink", LAUNCH_PROTOSTUB, "messaging", "other", &u3), 0);
        CU_ASSERT_STRING_EQUAL(u1, u2);
        CU_ASSERT_STRING_NOT_EQUAL(u1, u3);
        CU_ASSERT_EQUAL(strncmp(u1, "rethink-protostub-messaging-", 28), 0);

        /* Freeing kills and reaps at once. */
        {
                pid_t pa = launch_instance_get_pid(a), pb = launch_instance_get_pid(b);

                CU_ASSERT_TRUE(pa > 0 && pb > 0 && pa != pb);
                a = launch_instance_free(a);
                b = launch_instance_free(b);
                CU_ASSERT_FALSE(pid_alive(pa));
                CU_ASSERT_FALSE(pid_alive(pb));
        }

        /* A failing prepare handler fails the first start, to the caller. */
        launcher_set_prepare_handler(f.l, prepare_fails, NULL);
        s = spec_for(&f);
        CU_ASSERT_EQUAL(launcher_start(f.l, &s, &a), -EADDRNOTAVAIL);
        CU_ASSERT_PTR_NULL(a);
        fixture_done(&f);
}

static CU_TestInfo tests[] = {
        { "exit: restarted after a backoff", test_exit_is_restarted_with_backoff },
        { "crash loop: gives up after the burst", test_crash_loop_gives_up },
        { "stable runs forget earlier exits", test_stable_run_resets },
        { "deliberate stop: never restarted", test_deliberate_stop },
        { "stop: SIGKILL after the timeout; free from the handler", test_stop_stubborn_and_free_from_handler },
        { "prepare handler: fresh environment and credential each start", test_prepare_handler },
        { "bad specs, several instances, unit names, free", test_bad_specs_and_names },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("launcher", tests)
