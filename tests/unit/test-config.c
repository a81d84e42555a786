/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tests.h"

#define SEC 1000000ULL

/* Field by field: the struct has padding. */
static bool params_equal(const qos_params *a, const qos_params *b) {
        return a->rtt_threshold_usec == b->rtt_threshold_usec &&
               a->retrans_threshold_per_mille == b->retrans_threshold_per_mille &&
               a->rto_threshold == b->rto_threshold && a->rto_window_usec == b->rto_window_usec &&
               a->degrade_after_usec == b->degrade_after_usec &&
               a->degrade_after_samples == b->degrade_after_samples &&
               a->recover_after_usec == b->recover_after_usec &&
               a->recover_after_samples == b->recover_after_samples;
}

static agent_config *defaults(void) {
        agent_config *c = NULL;

        CU_ASSERT_EQUAL_FATAL(config_new(&c), 0);
        return c;
}

/* Loads text as "agent.conf"; returns the error or NULL. */
static char *load(const agent_config *t, const char *text, agent_config **ret) {
        char *error = NULL;
        int r = config_load_string(t, "agent.conf", text, ret, &error);

        if (r >= 0) {
                CU_ASSERT_PTR_NULL(error);
        } else {
                CU_ASSERT_PTR_NOT_NULL(error);
        }
        return error;
}

static void test_defaults(void) {
        _cleanup_config_ agent_config *c = defaults();
        qos_params p, d;

        CU_ASSERT_STRING_EQUAL(config_get_path(c), "/etc/rethink/agent.conf");
        CU_ASSERT_EQUAL(config_get_log_level(c), LOG_INFO);
        CU_ASSERT_STRING_EQUAL(config_get_control_socket(c), "/run/rethink/agent.sock");
        CU_ASSERT_PTR_NULL(config_get_watch(c)[0]);
        CU_ASSERT_PTR_NULL(config_get_metered(c)[0]);
        CU_ASSERT_TRUE(config_interface_watched(c, "eth0", false));
        CU_ASSERT_FALSE(config_interface_watched(c, "lo", true));
        CU_ASSERT_FALSE(config_interface_metered(c, "wwan0"));
        config_get_qos_params(c, &p);
        qos_params_default(&d);
        /* The documented defaults are the state machine's defaults. */
        CU_ASSERT_TRUE(params_equal(&p, &d));
        CU_ASSERT_EQUAL(p.rtt_threshold_usec, 300000);
        CU_ASSERT_EQUAL(config_get_poll_interval_usec(c), 2 * SEC);
        CU_ASSERT_EQUAL(config_get_sample_interval_usec(c), 60 * SEC);
        CU_ASSERT_FALSE(config_get_downloads_on_metered(c));
        CU_ASSERT_TRUE(config_get_bpf(c));
        CU_ASSERT_PTR_NULL(config_get_cgroup_path(c));
}

static void test_every_key(void) {
        _cleanup_config_ agent_config *t = defaults(), *c = NULL;
        _cleanup_free_ char *error = NULL;
        qos_params p;

        error = load(t,
                     "# every key\n"
                     "[Agent]\n"
                     "LogLevel=debug\n"
                     "ControlSocket=/run/test/agent.sock\n"
                     "[Interfaces]\n"
                     "Watch=eth* wlan0, wwan?\n"
                     "Metered=wwan*\n"
                     "[QoS]\n"
                     "RttThresholdMs=150\n"
                     "RetransmitThresholdPerMille=20\n"
                     "RtoThreshold=5\n"
                     "RtoWindowSec=30\n"
                     "DegradeAfterSec=7\n"
                     "DegradeAfterSamples=4\n"
                     "RecoverAfterSec=40\n"
                     "RecoverAfterSamples=6\n"
                     "PollIntervalSec=3\n"
                     "SampleIntervalSec=0\n"
                     "[Gate]\n"
                     "DownloadsOnMetered=yes\n"
                     "[BPF]\n"
                     "Enable=no\n"
                     "CgroupPath=/sys/fs/cgroup/unified/test\n",
                     &c);
        CU_ASSERT_PTR_NULL_FATAL(error);
        CU_ASSERT_EQUAL(config_get_log_level(c), LOG_DEBUG);
        CU_ASSERT_STRING_EQUAL(config_get_control_socket(c), "/run/test/agent.sock");
        CU_ASSERT_STRING_EQUAL(config_get_watch(c)[0], "eth*");
        CU_ASSERT_STRING_EQUAL(config_get_watch(c)[1], "wlan0");
        CU_ASSERT_STRING_EQUAL(config_get_watch(c)[2], "wwan?");
        CU_ASSERT_PTR_NULL(config_get_watch(c)[3]);
        CU_ASSERT_TRUE(config_interface_watched(c, "eth1", false));
        CU_ASSERT_TRUE(config_interface_watched(c, "wwan0", false));
        CU_ASSERT_FALSE(config_interface_watched(c, "wwan10", false));
        CU_ASSERT_FALSE(config_interface_watched(c, "veth0", false));
        CU_ASSERT_TRUE(config_interface_metered(c, "wwan0"));
        CU_ASSERT_FALSE(config_interface_metered(c, "eth0"));
        config_get_qos_params(c, &p);
        CU_ASSERT_EQUAL(p.rtt_threshold_usec, 150000);
        CU_ASSERT_EQUAL(p.retrans_threshold_per_mille, 20);
        CU_ASSERT_EQUAL(p.rto_threshold, 5);
        CU_ASSERT_EQUAL(p.rto_window_usec, 30 * SEC);
        CU_ASSERT_EQUAL(p.degrade_after_usec, 7 * SEC);
        CU_ASSERT_EQUAL(p.degrade_after_samples, 4);
        CU_ASSERT_EQUAL(p.recover_after_usec, 40 * SEC);
        CU_ASSERT_EQUAL(p.recover_after_samples, 6);
        CU_ASSERT_EQUAL(config_get_poll_interval_usec(c), 3 * SEC);
        CU_ASSERT_EQUAL(config_get_sample_interval_usec(c), 0);
        CU_ASSERT_TRUE(config_get_downloads_on_metered(c));
        CU_ASSERT_FALSE(config_get_bpf(c));
        CU_ASSERT_STRING_EQUAL(config_get_cgroup_path(c), "/sys/fs/cgroup/unified/test");
        /* The watch list includes loopback only when it is named. */
        CU_ASSERT_FALSE(config_interface_watched(c, "lo", true));
}

static void test_last_wins_and_empty_resets(void) {
        _cleanup_config_ agent_config *t = defaults(), *c = NULL;
        _cleanup_free_ char *error = NULL;
        qos_params p;

        error = load(t, "[QoS]\nRttThresholdMs=100\nRttThresholdMs=200\nRtoThreshold=9\nRtoThreshold=\n"
                        "[Interfaces]\nMetered=a\nMetered=b\n", &c);
        CU_ASSERT_PTR_NULL_FATAL(error);
        config_get_qos_params(c, &p);
        CU_ASSERT_EQUAL(p.rtt_threshold_usec, 200000);
        CU_ASSERT_EQUAL(p.rto_threshold, 3);
        CU_ASSERT_STRING_EQUAL(config_get_metered(c)[0], "b");
        CU_ASSERT_PTR_NULL(config_get_metered(c)[1]);
}

static void check_bad(const char *text, const char *want) {
        _cleanup_config_ agent_config *t = defaults(), *c = NULL;
        _cleanup_free_ char *error = load(t, text, &c);

        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        if (!streq(error, want))
                fprintf(stderr, "got \"%s\", want \"%s\"\n", error, want);
        CU_ASSERT_STRING_EQUAL(error, want);
}

static void test_bad_values_name_the_key(void) {
        check_bad("[QoS]\n\n\n\n\n\n\n\n\n\n\nRttThresholdMs=abc\n",
                  "agent.conf:12: [QoS] RttThresholdMs=abc: not a number");
        check_bad("[QoS]\nRttThresholdMs=-5\n", "agent.conf:2: [QoS] RttThresholdMs=-5: not a number");
        check_bad("[QoS]\nRttThresholdMs=10ms\n", "agent.conf:2: [QoS] RttThresholdMs=10ms: not a number");
        check_bad("[QoS]\nRttThresholdMs=0\n",
                  "agent.conf:2: [QoS] RttThresholdMs=0: out of range (1-600000)");
        check_bad("[QoS]\nRetransmitThresholdPerMille=1001\n",
                  "agent.conf:2: [QoS] RetransmitThresholdPerMille=1001: out of range (1-1000)");
        check_bad("[QoS]\nRtoThreshold=65\n", "agent.conf:2: [QoS] RtoThreshold=65: out of range (1-64)");
        check_bad("[QoS]\nRtoWindowSec=0\n", "agent.conf:2: [QoS] RtoWindowSec=0: out of range (1-3600)");
        check_bad("[QoS]\nDegradeAfterSec=x\n", "agent.conf:2: [QoS] DegradeAfterSec=x: not a number");
        check_bad("[QoS]\nDegradeAfterSamples=0\n",
                  "agent.conf:2: [QoS] DegradeAfterSamples=0: out of range (1-1000)");
        check_bad("[QoS]\nRecoverAfterSec=99999999999999999999\n",
                  "agent.conf:2: [QoS] RecoverAfterSec=99999999999999999999: out of range (0-3600)");
        check_bad("[QoS]\nRecoverAfterSamples=1.5\n",
                  "agent.conf:2: [QoS] RecoverAfterSamples=1.5: not a number");
        check_bad("[QoS]\nPollIntervalSec=0\n", "agent.conf:2: [QoS] PollIntervalSec=0: out of range (1-3600)");
        check_bad("[QoS]\nSampleIntervalSec=one\n", "agent.conf:2: [QoS] SampleIntervalSec=one: not a number");
        check_bad("[Gate]\nDownloadsOnMetered=maybe\n",
                  "agent.conf:2: [Gate] DownloadsOnMetered=maybe: not a boolean (yes/no)");
        check_bad("[BPF]\nEnable=2\n", "agent.conf:2: [BPF] Enable=2: not a boolean (yes/no)");
        check_bad("[BPF]\nCgroupPath=relative/path\n",
                  "agent.conf:2: [BPF] CgroupPath=relative/path: not an absolute path");
        check_bad("[Agent]\nLogLevel=loud\n",
                  "agent.conf:2: [Agent] LogLevel=loud: not a log level (debug, info, notice, warning, err)");
        check_bad("[Agent]\nControlSocket=agent.sock\n",
                  "agent.conf:2: [Agent] ControlSocket=agent.sock: not an absolute path");
        check_bad("[Agent]\nControlSocket=/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                  "agent.conf:2: [Agent] ControlSocket=/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: path too long for a socket");
        check_bad("[Interfaces]\nWatch=eth0 a/b\n",
                  "agent.conf:2: [Interfaces] Watch=eth0 a/b: invalid interface name or glob \"a/b\"");
        check_bad("[Interfaces]\nMetered=averyveryverylongname\n",
                  "agent.conf:2: [Interfaces] Metered=averyveryverylongname: invalid interface name or glob \"averyveryverylongname\"");
        check_bad("[QoS]\nRttTreshold=5\n", "agent.conf:2: [QoS] RttTreshold=5: unknown key");
        check_bad("[Qos]\nRttThresholdMs=5\n", "agent.conf:2: [Qos] RttThresholdMs=5: unknown key");
        check_bad("[QoS]\nnonsense\n", "agent.conf:2: expected Key=Value");
        check_bad("RttThresholdMs=5\n", "agent.conf:1: assignment outside of any [Section]");
}

static int parse_args(agent_config *c, char **error, ...) {
        char *argv[16] = { (char *) "rethink-agent" };
        int argc = 1;
        va_list ap;

        va_start(ap, error);
        for (char *a; (a = va_arg(ap, char *)) && argc < 15;)
                argv[argc++] = a;
        va_end(ap);
        argv[argc] = NULL;
        return config_parse_argv(c, argc, argv, error);
}

static void test_flags_override_file(void) {
        _cleanup_config_ agent_config *t = defaults(), *c = NULL, *again = NULL;
        _cleanup_free_ char *error = NULL, *e2 = NULL;
        qos_params p;

        CU_ASSERT_EQUAL(parse_args(t, &error, "--rtt-threshold-ms=80", "--metered", "wwan0", "--bpf=no",
                                   "--downloads-on-metered=yes", "--log-level=warning",
                                   "--control-socket=/tmp/x.sock", "--watch=eth0", "--poll-interval-sec=1",
                                   "--sample-interval-sec=5", "--cgroup-path=/sys/fs/cgroup", NULL),
                        0);
        CU_ASSERT_PTR_NULL(error);
        free(error);
        error = load(t, "[QoS]\nRttThresholdMs=500\nRtoThreshold=7\n[BPF]\nEnable=yes\n", &c);
        CU_ASSERT_PTR_NULL_FATAL(error);
        config_get_qos_params(c, &p);
        CU_ASSERT_EQUAL(p.rtt_threshold_usec, 80000);   /* flag beats file */
        CU_ASSERT_EQUAL(p.rto_threshold, 7);            /* file beats default */
        CU_ASSERT_FALSE(config_get_bpf(c));
        CU_ASSERT_TRUE(config_get_downloads_on_metered(c));
        CU_ASSERT_TRUE(config_interface_metered(c, "wwan0"));
        CU_ASSERT_EQUAL(config_get_log_level(c), LOG_WARNING);
        CU_ASSERT_STRING_EQUAL(config_get_control_socket(c), "/tmp/x.sock");
        CU_ASSERT_FALSE(config_interface_watched(c, "eth1", false));
        CU_ASSERT_EQUAL(config_get_poll_interval_usec(c), 1 * SEC);
        CU_ASSERT_EQUAL(config_get_sample_interval_usec(c), 5 * SEC);
        CU_ASSERT_STRING_EQUAL(config_get_cgroup_path(c), "/sys/fs/cgroup");

        /* A reload from the loaded config keeps the flags. */
        e2 = load(c, "[QoS]\nRttThresholdMs=900\n", &again);
        CU_ASSERT_PTR_NULL_FATAL(e2);
        config_get_qos_params(again, &p);
        CU_ASSERT_EQUAL(p.rtt_threshold_usec, 80000);
        CU_ASSERT_EQUAL(p.rto_threshold, 3);
}

static void test_bad_flags(void) {
        struct {
                const char *arg, *want;
        } cases[] = {
                { "--rtt-threshold-ms=abc", "--rtt-threshold-ms=abc: not a number ([QoS] RttThresholdMs)" },
                { "--bpf=perhaps", "--bpf=perhaps: not a boolean (yes/no) ([BPF] Enable)" },
                { "--watch=a/b", "--watch=a/b: invalid interface name or glob \"a/b\" ([Interfaces] Watch)" },
                { "--no-such-flag", "--no-such-flag: unknown option" },
                { "--config=", "--config=: empty path" },
                { "stray", "stray: unexpected argument" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_config_ agent_config *t = defaults();
                _cleanup_free_ char *error = NULL;

                CU_ASSERT_EQUAL(parse_args(t, &error, cases[i].arg, NULL), -EINVAL);
                CU_ASSERT_PTR_NOT_NULL_FATAL(error);
                CU_ASSERT_STRING_EQUAL(error, cases[i].want);
        }
}

static void test_help_and_version(void) {
        _cleanup_config_ agent_config *t = defaults();
        _cleanup_free_ char *error = NULL;
        int saved = dup(STDOUT_FILENO);

        /* Keep the test output readable. */
        CU_ASSERT_PTR_NOT_NULL(freopen("/dev/null", "w", stdout));
        CU_ASSERT_EQUAL(parse_args(t, &error, "--help", NULL), CONFIG_ARGV_EXIT);
        CU_ASSERT_EQUAL(parse_args(t, &error, "--version", NULL), CONFIG_ARGV_EXIT);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        CU_ASSERT_PTR_NULL(error);
}

static void test_files(void) {
        _cleanup_config_ agent_config *t = defaults(), *c = NULL;
        _cleanup_free_ char *error = NULL;
        char path[] = "/tmp/test-config-XXXXXX";
        int fd = mkstemp(path);
        FILE *f;

        CU_ASSERT_FATAL(fd >= 0);
        f = fdopen(fd, "w");
        fputs("[QoS]\nRttThresholdMs=123\n", f);
        fclose(f);

        /* --config names a file that exists. */
        CU_ASSERT_EQUAL(parse_args(t, &error, "--config", path, NULL), 0);
        CU_ASSERT_EQUAL(config_load(t, &c, &error), 0);
        CU_ASSERT_STRING_EQUAL(config_get_path(c), path);
        c = config_free(c);

        /* --config names a missing file: an error. */
        unlink(path);
        CU_ASSERT_EQUAL(config_load(t, &c, &error), -ENOENT);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(error);
        CU_ASSERT_PTR_NOT_NULL(strstr(error, path));
}

static void test_cgroup_from_proc(void) {
        static const char mountinfo[] =
                "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
                "30 22 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n";
        static const char mountinfo_escaped[] = "30 22 0:26 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        char *p = NULL;

        CU_ASSERT_EQUAL(config_cgroup_from_proc("1:name=systemd:/x\n0::/system.slice/rethink-agent.service\n",
                                                mountinfo, &p), 0);
        CU_ASSERT_STRING_EQUAL(p, "/sys/fs/cgroup/unified/system.slice/rethink-agent.service");
        free(p);
        CU_ASSERT_EQUAL(config_cgroup_from_proc("0::/\n", mountinfo, &p), 0);
        CU_ASSERT_STRING_EQUAL(p, "/sys/fs/cgroup/unified");
        free(p);
        /* Outside our cgroup namespace: the root. */
        CU_ASSERT_EQUAL(config_cgroup_from_proc("0::/../../foo\n", mountinfo, &p), 0);
        CU_ASSERT_STRING_EQUAL(p, "/sys/fs/cgroup/unified");
        free(p);
        CU_ASSERT_EQUAL(config_cgroup_from_proc("0::/a\n", mountinfo_escaped, &p), 0);
        CU_ASSERT_STRING_EQUAL(p, "/mnt/my cg/a");
        free(p);
        /* No cgroup2 mount known: the documented default. */
        CU_ASSERT_EQUAL(config_cgroup_from_proc(NULL, NULL, &p), 0);
        CU_ASSERT_STRING_EQUAL(p, "/sys/fs/cgroup/unified");
        free(p);
}

/* The shipped agent.conf lists every key with its default: uncommented it
 * must load and change nothing. */
static void test_shipped_file_is_the_defaults(void) {
        _cleanup_config_ agent_config *t = defaults(), *c = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        qos_params p, d;
        size_t n = 0, keys = 0;
        char *w;

        f = fopen("units/conf/agent.conf", "re");
        if (!f)
                f = fopen("../../../units/conf/agent.conf", "re");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_FATAL(getdelim(&text, &n, '\0', f) > 0);
        /* "#Key=" at the start of a line becomes "Key=". */
        w = text;
        for (char *r = text; *r; r++) {
                if (*r == '#' && (r == text || r[-1] == '\n') && r[1] >= 'A' && r[1] <= 'Z' &&
                    strchr(r, '=') && strchr(r, '=') < strchrnul(r, '\n')) {
                        keys++;
                        continue;
                }
                *w++ = *r;
        }
        *w = '\0';
        /* Every key the parser knows is documented in the shipped file. */
        CU_ASSERT_EQUAL(keys, config_n_keys());
        error = load(t, text, &c);
        CU_ASSERT_PTR_NULL_FATAL(error);
        config_get_qos_params(c, &p);
        qos_params_default(&d);
        CU_ASSERT_TRUE(params_equal(&p, &d));
        CU_ASSERT_EQUAL(config_get_log_level(c), LOG_INFO);
        CU_ASSERT_STRING_EQUAL(config_get_control_socket(c), "/run/rethink/agent.sock");
        CU_ASSERT_EQUAL(config_get_poll_interval_usec(c), 2 * SEC);
        CU_ASSERT_EQUAL(config_get_sample_interval_usec(c), 60 * SEC);
        CU_ASSERT_FALSE(config_get_downloads_on_metered(c));
        CU_ASSERT_TRUE(config_get_bpf(c));
        CU_ASSERT_PTR_NULL(config_get_cgroup_path(c));
        CU_ASSERT_PTR_NULL(config_get_watch(c)[0]);
}

static CU_TestInfo tests[] = {
        { "shipped agent.conf holds the defaults", test_shipped_file_is_the_defaults },
        { "defaults", test_defaults },
        { "every key", test_every_key },
        { "last assignment wins, empty resets", test_last_wins_and_empty_resets },
        { "bad values name the key", test_bad_values_name_the_key },
        { "flags override the file", test_flags_override_file },
        { "bad flags name the flag and key", test_bad_flags },
        { "--help and --version", test_help_and_version },
        { "files", test_files },
        { "cgroup from /proc", test_cgroup_from_proc },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN("config", tests)
