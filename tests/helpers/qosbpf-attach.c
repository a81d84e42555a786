/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qosbpf-attach [--stats] IFNAME...
 *
 * Attaches the tc counter programs to the named interfaces of the current
 * network namespace, prints "ready", and waits for SIGTERM or SIGINT; then
 * prints each interface's counters and detaches. For benchmarks and manual
 * checks: the overhead of the programs is measured with this running.
 *
 * --stats turns on the kernel's run-time statistics of BPF programs while
 * it runs (BPF_ENABLE_STATS: undone when we exit, no sysctl touched) and
 * prints the programs' invocations and nanoseconds spent. The statistics
 * cost time themselves: not for throughput runs. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <inttypes.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>

#include "log.h"
#include "qosbpf.h"

/* Finds the program in our tc slot through the kernel, as any tool could. */
static void print_prog_stats(const char *ifname, int ifindex, enum bpf_tc_attach_point point) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = QOSBPF_TC_HANDLE, .priority = QOSBPF_TC_PRIORITY);
        struct bpf_prog_info info = {};
        uint32_t len = sizeof(info);
        _cleanup_close_ int fd = -1;

        if (bpf_tc_query(&hook, &opts) < 0)
                return;
        fd = bpf_prog_get_fd_by_id(opts.prog_id);
        if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
                return;
        printf("%s %s run_cnt=%llu run_time_ns=%llu avg_ns=%.1f\n", ifname, info.name,
               (unsigned long long) info.run_cnt, (unsigned long long) info.run_time_ns,
               info.run_cnt ? (double) info.run_time_ns / info.run_cnt : 0.0);
}

int main(int argc, char *argv[]) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        _cleanup_close_ int stats_fd = -1;
        sd_event *e = NULL;
        int ifindex[64];
        sigset_t mask;
        int r, n;

        log_open();

        if (argc > 1 && streq(argv[1], "--stats")) {
                stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
                if (stats_fd < 0) {
                        log_error_errno(stats_fd, "Cannot enable BPF statistics: %m");
                        return 1;
                }
                argv++;
                argc--;
        }
        n = argc - 1;

        if (n < 1 || n > (int) ELEMENTSOF(ifindex)) {
                fprintf(stderr, "Usage: %s [--stats] IFNAME...\n", program_invocation_short_name);
                return 2;
        }

        r = qosbpf_new(NULL, &q);
        if (r < 0) {
                log_error_errno(r, "Cannot load the eBPF programs: %m");
                return 1;
        }

        for (int i = 0; i < n; i++) {
                ifindex[i] = (int) if_nametoindex(argv[i + 1]);
                if (ifindex[i] <= 0) {
                        log_error("No interface %s.", argv[i + 1]);
                        return 1;
                }
                r = qosbpf_attach_tc(q, ifindex[i]);
                if (r < 0) {
                        log_error_errno(r, "Cannot attach to %s: %m", argv[i + 1]);
                        return 1;
                }
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return 1;

        r = sd_event_default(&e);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, NULL, NULL);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the event loop: %m");
                sd_event_unref(e);
                return 1;
        }

        printf("ready\n");
        fflush(stdout);

        r = sd_event_loop(e);
        sd_event_unref(e);

        for (int i = 0; i < n; i++) {
                qosbpf_counters c;

                if (qosbpf_read_counters(q, ifindex[i], &c) < 0)
                        continue;
                printf("%s rx_packets=%" PRIu64 " rx_bytes=%" PRIu64 " tx_packets=%" PRIu64
                       " tx_bytes=%" PRIu64 "\n",
                       argv[i + 1], c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes);
                if (stats_fd >= 0) {
                        print_prog_stats(argv[i + 1], ifindex[i], BPF_TC_INGRESS);
                        print_prog_stats(argv[i + 1], ifindex[i], BPF_TC_EGRESS);
                }
        }
        return r < 0 ? 1 : 0;
}
