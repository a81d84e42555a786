/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QoS eBPF programs in the running kernel, on real veth interfaces with
 * real UDP and TCP traffic. Needs root.
 *
 * Topology: the test process unshares a private network namespace; a peer
 * child process unshares another one and serves UDP echo and a TCP sink.
 * Both namespaces, and the veth pair between them, die with the processes,
 * so even a crashed run leaves no interface or namespace behind. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "qosbpf.h"
#include "tests.h"

#define OUR_IF "rtbpf0"
#define PEER_IF "rtbpf1"
#define OUR_ADDR "10.213.0.1"
#define PEER_ADDR "10.213.0.2"
#define PEER_ADDR2 "10.213.0.3" /* reached from outside the test cgroup */
#define OUR_ADDR6 "fd00:213::1"
#define PEER_ADDR6 "fd00:213::2"
#define UDP_PORT 7001
#define TCP_PORT 7002
#define CGROUP_ROOT "/sys/fs/cgroup/unified"

static pid_t peer_pid = -1;
static int our_ifindex;
static char cgroup_path[128];

/* --- helpers -------------------------------------------------------------------- */

_printf_(1, 2)
static int run(const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&cmd, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        r = system(cmd);
        if (r != 0)
                fprintf(stderr, "command failed (%d): %s\n", r, cmd);
        return r == 0 ? 0 : -EIO;
}

/* Output of a command, for checks against what iproute2 itself reports. */
_printf_(1, 2)
static char *output_of(const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL;
        char *buf;
        size_t n = 0;
        FILE *f;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&cmd, fmt, ap) < 0)
                cmd = NULL;
        va_end(ap);
        if (!cmd)
                return NULL;
        f = popen(cmd, "r");
        if (!f)
                return NULL;
        buf = calloc(1, 65536);
        if (buf) {
                n = fread(buf, 1, 65535, f);
                buf[n] = '\0';
        }
        pclose(f);
        return buf;
}

static bool our_filter_shown(const char *point) {
        _cleanup_free_ char *out = output_of("tc filter show dev " OUR_IF " %s 2>&1", point);
        char want[64];

        snprintf(want, sizeof(want), "pref %u ", QOSBPF_TC_PRIORITY);
        return out && strstr(out, want);
}

static bool clsact_present(void) {
        _cleanup_free_ char *out = output_of("tc qdisc show dev " OUR_IF " 2>&1");
        return out && strstr(out, "clsact");
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int wait_child(pid_t pid) {
        int status;

        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --- peer ----------------------------------------------------------------------- */

__attribute__((noreturn)) static void peer_serve(int ready_fd) {
        struct pollfd p[64];
        size_t n = 2;
        char buf[65536];
        int one = 1;

        p[0] = (struct pollfd) { .fd = socket(AF_INET, SOCK_DGRAM, 0), .events = POLLIN };
        /* Dual-stack: IPv4 clients arrive as v4-mapped. */
        p[1] = (struct pollfd) { .fd = socket(AF_INET6, SOCK_STREAM, 0), .events = POLLIN };
        if (p[0].fd < 0 || p[1].fd < 0)
                _exit(1);
        (void) setsockopt(p[1].fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        one = 0;
        (void) setsockopt(p[1].fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));

        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        a.sin_port = htons(UDP_PORT);
        if (bind(p[0].fd, (struct sockaddr *) &a, sizeof(a)) < 0)
                _exit(1);
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = in6addr_any, .sin6_port = htons(TCP_PORT) };
        if (bind(p[1].fd, (struct sockaddr *) &a6, sizeof(a6)) < 0 || listen(p[1].fd, 16) < 0)
                _exit(1);

        if (write(ready_fd, "x", 1) != 1)
                _exit(1);
        close(ready_fd);

        for (;;) {
                if (poll(p, n, -1) < 0)
                        continue;
                if (p[0].revents & POLLIN) {
                        struct sockaddr_in from;
                        socklen_t len = sizeof(from);
                        ssize_t k = recvfrom(p[0].fd, buf, sizeof(buf), 0, (struct sockaddr *) &from, &len);
                        if (k > 0)
                                (void) sendto(p[0].fd, buf, k, 0, (struct sockaddr *) &from, len);
                }
                if ((p[1].revents & POLLIN) && n < ELEMENTSOF(p)) {
                        int fd = accept(p[1].fd, NULL, NULL);
                        if (fd >= 0)
                                p[n++] = (struct pollfd) { .fd = fd, .events = POLLIN };
                }
                for (size_t i = 2; i < n; i++) {
                        if (!p[i].revents)
                                continue;
                        if (read(p[i].fd, buf, sizeof(buf)) > 0)
                                continue;
                        /* The client waits for our close to know every
                         * byte arrived. */
                        close(p[i].fd);
                        p[i--] = p[--n];
                }
        }
}

static int peer_start(void) {
        int pipefd[2];
        char c;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                close(pipefd[0]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(1);
                if (system("ip link set lo up") != 0)
                        _exit(1);
                peer_serve(pipefd[1]);
        }
        close(pipefd[1]);
        peer_pid = pid;
        if (read(pipefd[0], &c, 1) != 1) {
                close(pipefd[0]);
                return -EIO;
        }
        close(pipefd[0]);
        return 0;
}

static void remove_cgroup(void) {
        char procs[256];
        _cleanup_fclose_ FILE *f = NULL;

        if (!cgroup_path[0] || access(cgroup_path, F_OK) < 0)
                return;
        /* Anything still inside goes back to the root before rmdir. */
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup_path);
        f = fopen(procs, "re");
        if (f) {
                int pid;
                while (fscanf(f, "%d", &pid) == 1) {
                        FILE *root = fopen(CGROUP_ROOT "/cgroup.procs", "we");
                        if (root) {
                                fprintf(root, "%d\n", pid);
                                fclose(root);
                        }
                }
        }
        for (int i = 0; i < 50 && rmdir(cgroup_path) < 0 && errno == EBUSY; i++)
                usleep(100 * 1000);
}

static int suite_init(void) {
        log_open();
        if (unshare(CLONE_NEWNET) < 0)
                return -1;
        if (run("ip link set lo up") < 0)
                return -1;
        if (peer_start() < 0)
                return -1;
        if (run("ip link add " OUR_IF " type veth peer name " PEER_IF) < 0 ||
            run("ip link set " PEER_IF " netns %d", (int) peer_pid) < 0 ||
            run("ip addr add " OUR_ADDR "/24 dev " OUR_IF) < 0 ||
            run("ip link set " OUR_IF " up") < 0 ||
            run("nsenter -t %d -n ip addr add " PEER_ADDR "/24 dev " PEER_IF, (int) peer_pid) < 0 ||
            run("nsenter -t %d -n ip addr add " PEER_ADDR2 "/24 dev " PEER_IF, (int) peer_pid) < 0 ||
            run("ip addr add " OUR_ADDR6 "/64 dev " OUR_IF " nodad") < 0 ||
            run("nsenter -t %d -n ip addr add " PEER_ADDR6 "/64 dev " PEER_IF " nodad", (int) peer_pid) < 0 ||
            run("nsenter -t %d -n ip link set " PEER_IF " up", (int) peer_pid) < 0)
                return -1;
        our_ifindex = if_nametoindex(OUR_IF);
        if (our_ifindex <= 0)
                return -1;
        snprintf(cgroup_path, sizeof(cgroup_path), CGROUP_ROOT "/rtbpf-%d", (int) getpid());
        atexit(remove_cgroup);
        return 0;
}

static int suite_cleanup(void) {
        remove_cgroup();
        if (peer_pid > 0) {
                (void) kill(peer_pid, SIGKILL);
                (void) waitpid(peer_pid, NULL, 0);
                peer_pid = -1;
        }
        return 0;
}

/* Sends n datagrams of size bytes and waits for each echo; returns how many
 * came back. */
static int udp_ping_pong(int n, size_t size) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(UDP_PORT) };
        struct timeval tv = { .tv_sec = 1 };
        char buf[2048] = {}, back[2048];
        int got = 0;

        if (fd < 0 || size > sizeof(buf))
                return -EINVAL;
        inet_pton(AF_INET, PEER_ADDR, &a.sin_addr);
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *) &a, sizeof(a)) < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                if (send(fd, buf, size, 0) != (ssize_t) size)
                        continue;
                if (recv(fd, back, sizeof(back), 0) == (ssize_t) size)
                        got++;
        }
        return got;
}

/* In a child: joins cgroup (if any), sends bytes over TCP to addr (IPv4 or
 * IPv6, the socket's family follows) and waits until the peer has read them
 * all. Returns the child's exit status. */
static int tcp_transfer(const char *cgroup, const char *addr, size_t bytes) {
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(TCP_PORT) };
                struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(TCP_PORT) };
                struct timeval tv = { .tv_sec = 60 };
                bool v6 = strchr(addr, ':');
                static char buf[16384];
                char path[256];
                FILE *f;
                int fd;

                if (cgroup) {
                        snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
                        f = fopen(path, "we");
                        if (!f || fprintf(f, "%d\n", (int) getpid()) < 0 || fclose(f) != 0)
                                _exit(10);
                }
                fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
                if (fd < 0)
                        _exit(11);
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                if (v6 ? inet_pton(AF_INET6, addr, &a6.sin6_addr) != 1 : inet_pton(AF_INET, addr, &a.sin_addr) != 1)
                        _exit(16);
                if (v6 ? connect(fd, (struct sockaddr *) &a6, sizeof(a6)) < 0
                       : connect(fd, (struct sockaddr *) &a, sizeof(a)) < 0)
                        _exit(12);
                for (size_t sent = 0; sent < bytes;) {
                        ssize_t k = send(fd, buf, MIN(sizeof(buf), bytes - sent), 0);
                        if (k <= 0)
                                _exit(13);
                        sent += k;
                }
                if (shutdown(fd, SHUT_WR) < 0)
                        _exit(14);
                if (read(fd, buf, sizeof(buf)) != 0)
                        _exit(15);
                _exit(0);
        }
        return wait_child(pid);
}

/* A program that is not ours, for the filters of "other people": returns
 * verdict for every packet. */
static int load_verdict_prog(int verdict) {
        const struct bpf_insn insns[] = {
                { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = verdict },
                { .code = BPF_JMP | BPF_EXIT },
        };
        return bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "foreign", "GPL", insns, ELEMENTSOF(insns), NULL);
}

static int load_foreign_prog(void) {
        return load_verdict_prog(TC_ACT_UNSPEC);
}

static int foreign_attach(int prog_fd, enum bpf_tc_attach_point point, uint32_t handle, uint32_t prio) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = our_ifindex, .attach_point = point);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = prio, .prog_fd = prog_fd);
        return bpf_tc_attach(&hook, &opts);
}

static int filter_query(enum bpf_tc_attach_point point, uint32_t handle, uint32_t prio) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = our_ifindex, .attach_point = point);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = prio);
        return bpf_tc_query(&hook, &opts);
}

/* Attaches from a child that then dies without cleaning up, as a crashed
 * agent would. */
static int crash_after_attach(void) {
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                qosbpf *q = NULL;
                if (qosbpf_new(NULL, &q) < 0 || qosbpf_attach_tc(q, our_ifindex) < 0)
                        _exit(1);
                _exit(0);
        }
        return wait_child(pid);
}

/* --- tests ---------------------------------------------------------------------- */

static void test_probe_and_load(void) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        qosbpf_counters c;

        CU_ASSERT_EQUAL(qosbpf_probe(), 0);
        CU_ASSERT_EQUAL(qosbpf_new(NULL, NULL), -EINVAL);
        CU_ASSERT_EQUAL_FATAL(qosbpf_new(NULL, &q), 0);
        CU_ASSERT_PTR_NOT_NULL(q);
        CU_ASSERT_FALSE(qosbpf_tc_is_attached(q, our_ifindex));
        CU_ASSERT_EQUAL(qosbpf_read_counters(q, our_ifindex, &c), -ENOENT);
        CU_ASSERT_EQUAL(qosbpf_detach_tc(q, our_ifindex), -ENOENT);
        CU_ASSERT_EQUAL(qosbpf_detach_sockops(q), -ENOENT);
        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, 0), -EINVAL);
        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, 999999), -ENODEV);
        CU_ASSERT_FALSE(clsact_present());
        CU_ASSERT_PTR_NULL(qosbpf_free(NULL));
}

static void test_tc_counters(void) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        qosbpf_counters before, after;
        const int n = 50;
        const size_t size = 1000;
        /* Ethernet + IPv4 + UDP headers around each payload. */
        const uint64_t frame = size + 14 + 20 + 8;

        CU_ASSERT_EQUAL_FATAL(qosbpf_new(NULL, &q), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_attach_tc(q, our_ifindex), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, our_ifindex), 0);
        CU_ASSERT_TRUE(qosbpf_tc_is_attached(q, our_ifindex));
        CU_ASSERT_TRUE(our_filter_shown("ingress"));
        CU_ASSERT_TRUE(our_filter_shown("egress"));
        CU_ASSERT_TRUE(clsact_present());

        CU_ASSERT_EQUAL_FATAL(qosbpf_read_counters(q, our_ifindex, &before), 0);
        /* Every datagram comes back: the programs pass traffic unchanged. */
        CU_ASSERT_EQUAL(udp_ping_pong(n, size), n);
        CU_ASSERT_EQUAL_FATAL(qosbpf_read_counters(q, our_ifindex, &after), 0);

        CU_ASSERT(after.tx_packets - before.tx_packets >= (uint64_t) n);
        CU_ASSERT(after.tx_bytes - before.tx_bytes >= n * frame);
        CU_ASSERT(after.rx_packets - before.rx_packets >= (uint64_t) n);
        CU_ASSERT(after.rx_bytes - before.rx_bytes >= n * frame);
        /* And nothing wildly more than was sent (ARP and IPv6 ND aside). */
        CU_ASSERT(after.tx_bytes - before.tx_bytes < n * frame + 4096);

        CU_ASSERT_EQUAL(qosbpf_detach_tc(q, our_ifindex), 0);
        CU_ASSERT_FALSE(qosbpf_tc_is_attached(q, our_ifindex));
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        CU_ASSERT_FALSE(our_filter_shown("egress"));
        CU_ASSERT_EQUAL(filter_query(BPF_TC_INGRESS, QOSBPF_TC_HANDLE, QOSBPF_TC_PRIORITY) < 0, 1);
        /* We created the clsact qdisc and nobody else used it. */
        CU_ASSERT_FALSE(clsact_present());
        CU_ASSERT_EQUAL(qosbpf_read_counters(q, our_ifindex, &after), -ENOENT);
        CU_ASSERT_EQUAL(qosbpf_detach_tc(q, our_ifindex), -ENOENT);

        /* Re-attaching starts from zero again, and free detaches. */
        CU_ASSERT_EQUAL_FATAL(qosbpf_attach_tc(q, our_ifindex), 0);
        CU_ASSERT_EQUAL(qosbpf_read_counters(q, our_ifindex, &after), 0);
        CU_ASSERT(after.tx_packets < (uint64_t) n);
        q = qosbpf_free(q);
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        CU_ASSERT_FALSE(our_filter_shown("egress"));
        CU_ASSERT_FALSE(clsact_present());
}

static void test_tc_foreign_filters(void) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        _cleanup_close_ int foreign = -1;

        foreign = load_foreign_prog();
        CU_ASSERT_FATAL(foreign >= 0);
        CU_ASSERT_EQUAL_FATAL(run("tc qdisc add dev " OUR_IF " clsact"), 0);
        CU_ASSERT_EQUAL(foreign_attach(foreign, BPF_TC_INGRESS, 1, 1), 0);
        /* Somebody else's program in our slot on egress. */
        CU_ASSERT_EQUAL(foreign_attach(foreign, BPF_TC_EGRESS, QOSBPF_TC_HANDLE, QOSBPF_TC_PRIORITY), 0);

        CU_ASSERT_EQUAL_FATAL(qosbpf_new(NULL, &q), 0);
        CU_ASSERT_EQUAL(qosbpf_cleanup_stale(our_ifindex), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, our_ifindex), -EEXIST);
        CU_ASSERT_FALSE(qosbpf_tc_is_attached(q, our_ifindex));
        /* The half-done ingress attachment was rolled back... */
        CU_ASSERT_EQUAL(filter_query(BPF_TC_INGRESS, QOSBPF_TC_HANDLE, QOSBPF_TC_PRIORITY), -ENOENT);
        /* ...and the foreign filters are untouched. */
        CU_ASSERT_EQUAL(filter_query(BPF_TC_EGRESS, QOSBPF_TC_HANDLE, QOSBPF_TC_PRIORITY), 0);
        CU_ASSERT_EQUAL(filter_query(BPF_TC_INGRESS, 1, 1), 0);

        {
                LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = our_ifindex, .attach_point = BPF_TC_EGRESS);
                LIBBPF_OPTS(bpf_tc_opts, opts, .handle = QOSBPF_TC_HANDLE, .priority = QOSBPF_TC_PRIORITY);
                CU_ASSERT_EQUAL(bpf_tc_detach(&hook, &opts), 0);
        }

        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, our_ifindex), 0);
        CU_ASSERT_EQUAL(udp_ping_pong(5, 100), 5);
        CU_ASSERT_EQUAL(qosbpf_detach_tc(q, our_ifindex), 0);
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        /* Not our qdisc: it stays, with the other filter in it. */
        CU_ASSERT_TRUE(clsact_present());
        CU_ASSERT_EQUAL(filter_query(BPF_TC_INGRESS, 1, 1), 0);

        CU_ASSERT_EQUAL(run("tc qdisc del dev " OUR_IF " clsact"), 0);
}

/* Our filter gives no verdict, so one after it still decides: here it
 * drops everything, and we have counted the packets before. */
static void test_tc_later_filter_still_runs(void) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        _cleanup_close_ int drop = -1;
        qosbpf_counters before, after;

        drop = load_verdict_prog(TC_ACT_SHOT);
        CU_ASSERT_FATAL(drop >= 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_new(NULL, &q), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_attach_tc(q, our_ifindex), 0);
        CU_ASSERT_EQUAL_FATAL(foreign_attach(drop, BPF_TC_EGRESS, 2, 0xffff), 0);

        CU_ASSERT_EQUAL(qosbpf_read_counters(q, our_ifindex, &before), 0);
        CU_ASSERT_EQUAL(udp_ping_pong(3, 100), 0);
        CU_ASSERT_EQUAL(qosbpf_read_counters(q, our_ifindex, &after), 0);
        CU_ASSERT(after.tx_packets - before.tx_packets >= 3);

        {
                LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = our_ifindex, .attach_point = BPF_TC_EGRESS);
                LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 2, .priority = 0xffff);
                CU_ASSERT_EQUAL(bpf_tc_detach(&hook, &opts), 0);
        }
        CU_ASSERT_EQUAL(udp_ping_pong(3, 100), 3);

        q = qosbpf_free(q);
        CU_ASSERT_FALSE(clsact_present());
}

static void test_tc_stale_cleanup(void) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        _cleanup_close_ int foreign = -1;
        qosbpf_counters c;

        foreign = load_foreign_prog();
        CU_ASSERT_FATAL(foreign >= 0);

        CU_ASSERT_EQUAL_FATAL(crash_after_attach(), 0);
        CU_ASSERT_TRUE(our_filter_shown("ingress"));
        CU_ASSERT_TRUE(our_filter_shown("egress"));
        /* Another tool's filter on the same hook, added after the crash. */
        CU_ASSERT_EQUAL(foreign_attach(foreign, BPF_TC_INGRESS, 1, 1), 0);

        CU_ASSERT_EQUAL(qosbpf_cleanup_stale(our_ifindex), 2);
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        CU_ASSERT_FALSE(our_filter_shown("egress"));
        CU_ASSERT_EQUAL(filter_query(BPF_TC_INGRESS, 1, 1), 0);
        CU_ASSERT_EQUAL(qosbpf_cleanup_stale(our_ifindex), 0);
        CU_ASSERT_EQUAL(qosbpf_cleanup_stale(0), -EINVAL);

        /* attach replaces what a crashed run left, and counts with the new
         * program, not the dead one. */
        CU_ASSERT_EQUAL_FATAL(crash_after_attach(), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_new(NULL, &q), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_attach_tc(q, our_ifindex), 0);
        CU_ASSERT_EQUAL(udp_ping_pong(10, 500), 10);
        CU_ASSERT_EQUAL(qosbpf_read_counters(q, our_ifindex, &c), 0);
        CU_ASSERT(c.tx_packets >= 10);
        CU_ASSERT(c.rx_packets >= 10);
        q = qosbpf_free(q);
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        CU_ASSERT_FALSE(our_filter_shown("egress"));
        CU_ASSERT_EQUAL(filter_query(BPF_TC_INGRESS, 1, 1), 0);

        CU_ASSERT_EQUAL(run("tc qdisc del dev " OUR_IF " clsact"), 0);
        CU_ASSERT_FALSE(clsact_present());
}

static void test_tc_interface_vanishes(void) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        qosbpf_counters c;
        int a, b;

        CU_ASSERT_EQUAL_FATAL(run("ip link add rtbpf2 type veth peer name rtbpf3"), 0);
        CU_ASSERT_EQUAL_FATAL(run("ip link add rtbpf4 type veth peer name rtbpf5"), 0);
        a = (int) if_nametoindex("rtbpf2");
        b = (int) if_nametoindex("rtbpf4");
        CU_ASSERT_FATAL(a > 0 && b > 0);

        CU_ASSERT_EQUAL_FATAL(qosbpf_new(NULL, &q), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, a), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, b), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_tc(q, our_ifindex), 0);

        /* Explicit detach after the interface went away is no error and
         * leaves the others alone. */
        CU_ASSERT_EQUAL(run("ip link del rtbpf2"), 0);
        CU_ASSERT_EQUAL(qosbpf_detach_tc(q, a), 0);
        CU_ASSERT_FALSE(qosbpf_tc_is_attached(q, a));
        CU_ASSERT_TRUE(qosbpf_tc_is_attached(q, b));
        CU_ASSERT_TRUE(our_filter_shown("ingress"));
        CU_ASSERT_EQUAL(qosbpf_read_counters(q, our_ifindex, &c), 0);

        /* Free copes with one gone without a detach. */
        CU_ASSERT_EQUAL(run("ip link del rtbpf4"), 0);
        q = qosbpf_free(q);
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        CU_ASSERT_FALSE(our_filter_shown("egress"));
        CU_ASSERT_FALSE(clsact_present());
}

static void test_default_cgroup(void) {
        _cleanup_free_ char *path = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char line[512] = "", want[600];

        /* This process sits in the root of the v2 hierarchy or below it. */
        f = fopen("/proc/self/cgroup", "re");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        while (fgets(line, sizeof(line), f) && strncmp(line, "0::", 3) != 0)
                ;
        line[strcspn(line, "\n")] = '\0';
        snprintf(want, sizeof(want), "%s%s", CGROUP_ROOT, streq(line + 3, "/") ? "" : line + 3);

        CU_ASSERT_EQUAL_FATAL(qosbpf_default_cgroup(&path), 0);
        CU_ASSERT_STRING_EQUAL(path, want);
}

struct events {
        unsigned n_retrans, n_rto, n_rtt, n_other;
        qosbpf_event last_retrans;
};

static int on_event(qosbpf *q, const qosbpf_event *ev, void *userdata) {
        struct events *e = userdata;

        switch (ev->type) {
        case QOSBPF_EVENT_RETRANS:
                e->n_retrans++;
                e->last_retrans = *ev;
                break;
        case QOSBPF_EVENT_RTO:
                e->n_rto++;
                break;
        case QOSBPF_EVENT_RTT:
                e->n_rtt++;
                break;
        default:
                e->n_other++;
        }
        return 0;
}

static void run_loop_until(sd_event *e, const unsigned *counter, uint64_t timeout_usec) {
        uint64_t end = now_usec() + timeout_usec;

        while (*counter == 0 && now_usec() < end)
                (void) sd_event_run(e, 100 * 1000);
        /* Whatever else is already queued. */
        (void) sd_event_run(e, 0);
}

struct seen {
        qosbpf_addr want;
        unsigned matches;
};

static int count_addr(const qosbpf_tcp_stats *s, void *userdata) {
        struct seen *seen = userdata;

        if (s->remote.family == seen->want.family && s->remote.in.s_addr == seen->want.in.s_addr)
                seen->matches++;
        return 0;
}

static void test_sockops(void) {
        const qosbpf_options opts = { .rtt_event_interval_usec = 50 * 1000 };
        _cleanup_qosbpf_ qosbpf *q = NULL;
        _cleanup_close_ int cgfd = -1;
        struct events ev = {};
        qosbpf_tcp_stats s, s2, s6;
        qosbpf_addr peer, peer2, peer6, mapped;
        struct seen seen = {};
        sd_event *e = NULL;
        char buf[INET6_ADDRSTRLEN];
        uint32_t prog_cnt = 0;

        CU_ASSERT_EQUAL_FATAL(mkdir(cgroup_path, 0755), 0);
        cgfd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CU_ASSERT_FATAL(cgfd >= 0);

        CU_ASSERT_EQUAL_FATAL(qosbpf_new(&opts, &q), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_sockops(q, CGROUP_ROOT "/rtbpf-does-not-exist"), -ENOENT);
        CU_ASSERT_EQUAL(qosbpf_attach_sockops(q, "/proc"), -EMEDIUMTYPE);
        CU_ASSERT_EQUAL_FATAL(qosbpf_attach_sockops(q, cgroup_path), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_sockops(q, cgroup_path), -EBUSY);
        CU_ASSERT_STRING_EQUAL(qosbpf_sockops_cgroup(q), cgroup_path);
        CU_ASSERT_EQUAL(bpf_prog_query(cgfd, BPF_CGROUP_SOCK_OPS, 0, NULL, NULL, &prog_cnt), 0);
        CU_ASSERT_EQUAL(prog_cnt, 1);

        CU_ASSERT_EQUAL_FATAL(sd_event_new(&e), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_attach_event(q, e, on_event, &ev), 0);
        CU_ASSERT_EQUAL(qosbpf_attach_event(q, e, on_event, &ev), -EBUSY);

        CU_ASSERT_EQUAL_FATAL(qosbpf_addr_from_string(PEER_ADDR, &peer), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_addr_from_string(PEER_ADDR2, &peer2), 0);
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_lookup(q, &peer, &s), -ENOENT);

        /* Clean path, from inside the cgroup: RTT is measured. */
        CU_ASSERT_EQUAL_FATAL(tcp_transfer(cgroup_path, PEER_ADDR, 64 * 1024), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_tcp_stats_lookup(q, &peer, &s), 0);
        CU_ASSERT_STRING_EQUAL(qosbpf_addr_to_string(&s.remote, buf, sizeof(buf)), PEER_ADDR);
        CU_ASSERT(s.rtt_samples > 0);
        CU_ASSERT(s.srtt_us > 0);
        CU_ASSERT(s.segs_out >= 10);
        CU_ASSERT(s.last_update_usec > 0 && s.last_update_usec <= now_usec());
        /* v4-mapped IPv6 names the same entry. */
        CU_ASSERT_EQUAL(qosbpf_addr_from_string("::ffff:" PEER_ADDR, &mapped), 0);
        CU_ASSERT_EQUAL(mapped.family, AF_INET6);
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_lookup(q, &mapped, &s2), 0);
        CU_ASSERT_EQUAL(s2.rtt_samples, s.rtt_samples);

        run_loop_until(e, &ev.n_rtt, 5 * 1000 * 1000);
        CU_ASSERT(ev.n_rtt > 0);

        /* IPv6 has its own entry... */
        CU_ASSERT_EQUAL(qosbpf_addr_from_string(PEER_ADDR6, &peer6), 0);
        CU_ASSERT_EQUAL(tcp_transfer(cgroup_path, PEER_ADDR6, 32 * 1024), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_tcp_stats_lookup(q, &peer6, &s6), 0);
        CU_ASSERT_EQUAL(s6.remote.family, AF_INET6);
        CU_ASSERT_STRING_EQUAL(qosbpf_addr_to_string(&s6.remote, buf, sizeof(buf)), PEER_ADDR6);
        CU_ASSERT(s6.rtt_samples > 0);
        CU_ASSERT(s6.srtt_us > 0);
        /* ...while an IPv6 socket talking to a v4-mapped address adds to
         * the IPv4 entry. */
        CU_ASSERT_EQUAL(tcp_transfer(cgroup_path, "::ffff:" PEER_ADDR, 32 * 1024), 0);
        CU_ASSERT_EQUAL_FATAL(qosbpf_tcp_stats_lookup(q, &peer, &s2), 0);
        CU_ASSERT(s2.rtt_samples > s.rtt_samples);
        CU_ASSERT(s2.segs_out > s.segs_out);
        s = s2;

        /* A process outside the cgroup is not watched. */
        CU_ASSERT_EQUAL(tcp_transfer(NULL, PEER_ADDR2, 16 * 1024), 0);
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_lookup(q, &peer2, &s2), -ENOENT);

        /* 30% of the data segments lost at the receiver. */
        CU_ASSERT_EQUAL_FATAL(run("nsenter -t %d -n nft -f - <<'EOF'\n"
                                  "table inet rtbpf {\n"
                                  "  chain input {\n"
                                  "    type filter hook input priority 0; policy accept;\n"
                                  "    tcp dport %d meta length > 200 numgen random mod 100 < 30 drop\n"
                                  "  }\n"
                                  "}\n"
                                  "EOF",
                                  (int) peer_pid, TCP_PORT),
                              0);
        CU_ASSERT_EQUAL(tcp_transfer(cgroup_path, PEER_ADDR, 256 * 1024), 0);
        CU_ASSERT_EQUAL(run("nsenter -t %d -n nft delete table inet rtbpf", (int) peer_pid), 0);

        CU_ASSERT_EQUAL_FATAL(qosbpf_tcp_stats_lookup(q, &peer, &s2), 0);
        CU_ASSERT(s2.retrans > s.retrans);
        CU_ASSERT(s2.segs_out > s.segs_out);
        CU_ASSERT(qosbpf_tcp_stats_retrans_per_mille(&s2) > 0);
        CU_ASSERT(qosbpf_tcp_stats_retrans_per_mille(&s2) <= 1000);

        run_loop_until(e, &ev.n_retrans, 10 * 1000 * 1000);
        fprintf(stderr, "\n# lossy: srtt=%uus samples=%" PRIu64 " segs_out=%" PRIu64 " retrans=%" PRIu64
                " rto=%" PRIu64 " (%u per mille); events: retrans=%u rto=%u rtt=%u\n",
                s2.srtt_us, s2.rtt_samples, s2.segs_out, s2.retrans, s2.rto,
                qosbpf_tcp_stats_retrans_per_mille(&s2), ev.n_retrans, ev.n_rto, ev.n_rtt);
        CU_ASSERT(ev.n_retrans > 0);
        CU_ASSERT_EQUAL(ev.n_other, 0);
        CU_ASSERT_EQUAL(ev.last_retrans.remote.family, AF_INET);
        CU_ASSERT_STRING_EQUAL(qosbpf_addr_to_string(&ev.last_retrans.remote, buf, sizeof(buf)), PEER_ADDR);
        CU_ASSERT_EQUAL(ev.last_retrans.remote_port, TCP_PORT);
        CU_ASSERT(ev.last_retrans.value > 0);
        CU_ASSERT_EQUAL(qosbpf_events_dropped(q), 0);

        seen.want = peer;
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_foreach(q, count_addr, &seen), 0);
        CU_ASSERT_EQUAL(seen.matches, 1);

        /* Free detaches the link: nothing stays on the cgroup. */
        q = qosbpf_free(q);
        CU_ASSERT_EQUAL(bpf_prog_query(cgfd, BPF_CGROUP_SOCK_OPS, 0, NULL, NULL, &prog_cnt), 0);
        CU_ASSERT_EQUAL(prog_cnt, 0);
        sd_event_unref(e);

        remove_cgroup();
        CU_ASSERT_NOT_EQUAL(access(cgroup_path, F_OK), 0);
}

/* Drops every capability that BPF or tc needs, as an agent running without
 * privileges would have. */
static int drop_bpf_caps(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];
        const int caps[] = { CAP_BPF, CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_PERFMON };

        for (size_t i = 0; i < ELEMENTSOF(caps); i++)
                (void) prctl(PR_CAPBSET_DROP, caps[i], 0, 0, 0);
        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(caps); i++) {
                d[caps[i] / 32].effective &= ~(1U << (caps[i] % 32));
                d[caps[i] / 32].permitted &= ~(1U << (caps[i] % 32));
                d[caps[i] / 32].inheritable &= ~(1U << (caps[i] % 32));
        }
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

/* The hardened unit's set: CAP_BPF and CAP_NET_ADMIN, but no
 * CAP_SYS_ADMIN, so program ids cannot be turned into fds. */
static int drop_sys_admin(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];

        (void) prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0);
        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        d[CAP_SYS_ADMIN / 32].effective &= ~(1U << (CAP_SYS_ADMIN % 32));
        d[CAP_SYS_ADMIN / 32].permitted &= ~(1U << (CAP_SYS_ADMIN % 32));
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

/* Runs fn in a child that has the unit's capabilities only. */
static int run_without_sys_admin(int (*fn)(void)) {
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (drop_sys_admin() < 0)
                        _exit(100);
                _exit(fn());
        }
        return wait_child(pid);
}

static int attach_and_detach(void) {
        qosbpf *q = NULL;

        if (qosbpf_new(NULL, &q) < 0)
                return 1;
        if (qosbpf_attach_tc(q, our_ifindex) < 0)
                return 2;
        if (qosbpf_detach_tc(q, our_ifindex) < 0)
                return 3;
        q = qosbpf_free(q);
        return 0;
}

static int attach_and_crash(void) {
        qosbpf *q = NULL;

        if (qosbpf_new(NULL, &q) < 0 || qosbpf_attach_tc(q, our_ifindex) < 0)
                return 1;
        return 0;
}

static int cleanup_stale_expect_two(void) {
        return qosbpf_cleanup_stale(our_ifindex) == 2 ? 0 : 1;
}

static void test_tc_without_sys_admin(void) {
        CU_ASSERT_EQUAL(run_without_sys_admin(attach_and_detach), 0);
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        CU_ASSERT_FALSE(our_filter_shown("egress"));

        CU_ASSERT_EQUAL_FATAL(run_without_sys_admin(attach_and_crash), 0);
        CU_ASSERT_TRUE(our_filter_shown("ingress"));
        CU_ASSERT_EQUAL(run_without_sys_admin(cleanup_stale_expect_two), 0);
        CU_ASSERT_FALSE(our_filter_shown("ingress"));
        CU_ASSERT_FALSE(our_filter_shown("egress"));
        (void) run("tc qdisc del dev " OUR_IF " clsact");
}

static bool is_permission_error(int r) {
        return r == -EPERM || r == -EACCES;
}

static void test_no_permission(void) {
        pid_t pid;

        CU_ASSERT_FATAL(mkdir(cgroup_path, 0755) == 0 || errno == EEXIST);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                qosbpf *q = NULL, *q2 = NULL;
                int r, fails = 0;

                if (qosbpf_new(NULL, &q) < 0)
                        _exit(100);
                if (drop_bpf_caps() < 0)
                        _exit(101);

#define EXPECT_PERM(expr)                                                        \
        do {                                                                     \
                r = (expr);                                                      \
                if (!is_permission_error(r)) {                                   \
                        fprintf(stderr, "%s: got %d, want -EPERM/-EACCES\n", #expr, r); \
                        fails++;                                                 \
                }                                                                \
        } while (0)

                EXPECT_PERM(qosbpf_probe());
                EXPECT_PERM(qosbpf_new(NULL, &q2));
                if (q2)
                        fails++;
                EXPECT_PERM(qosbpf_attach_tc(q, our_ifindex));
                if (qosbpf_tc_is_attached(q, our_ifindex))
                        fails++;
                /* Recent kernels check privileges when a program is
                 * loaded, not when a link to a cgroup is made: the
                 * program fd loaded before the drop is the permission. */
                r = qosbpf_attach_sockops(q, cgroup_path);
                if (r == 0 ? !qosbpf_sockops_cgroup(q) : !is_permission_error(r)) {
                        fprintf(stderr, "qosbpf_attach_sockops: got %d\n", r);
                        fails++;
                }
                q = qosbpf_free(q);
                _exit(fails);
        }
        CU_ASSERT_EQUAL(wait_child(pid), 0);
        /* The failed attempts left nothing behind. */
        CU_ASSERT_FALSE(clsact_present());
        remove_cgroup();
}

static void test_nothing_left(void) {
        _cleanup_free_ char *netns = output_of("ip netns list 2>&1");
        char path[128];

        CU_ASSERT_EQUAL(filter_query(BPF_TC_INGRESS, QOSBPF_TC_HANDLE, QOSBPF_TC_PRIORITY) < 0, 1);
        CU_ASSERT_EQUAL(filter_query(BPF_TC_EGRESS, QOSBPF_TC_HANDLE, QOSBPF_TC_PRIORITY) < 0, 1);
        CU_ASSERT_FALSE(clsact_present());
        CU_ASSERT_NOT_EQUAL(access(cgroup_path, F_OK), 0);
        snprintf(path, sizeof(path), "rtbpf%d", (int) getpid());
        CU_ASSERT_PTR_NOT_NULL(netns);
        CU_ASSERT_PTR_NULL(netns ? strstr(netns, path) : NULL);
}

static void test_addr_and_rate(void) {
        qosbpf_tcp_stats st = {};
        qosbpf_addr a;
        char buf[INET6_ADDRSTRLEN];

        CU_ASSERT_EQUAL(qosbpf_addr_from_string("192.0.2.7", &a), 0);
        CU_ASSERT_EQUAL(a.family, AF_INET);
        CU_ASSERT_STRING_EQUAL(qosbpf_addr_to_string(&a, buf, sizeof(buf)), "192.0.2.7");
        CU_ASSERT_EQUAL(qosbpf_addr_from_string("2001:db8::1", &a), 0);
        CU_ASSERT_EQUAL(a.family, AF_INET6);
        CU_ASSERT_STRING_EQUAL(qosbpf_addr_to_string(&a, buf, sizeof(buf)), "2001:db8::1");
        CU_ASSERT_EQUAL(qosbpf_addr_from_string("not-an-address", &a), -EINVAL);
        CU_ASSERT_EQUAL(qosbpf_addr_from_string("", &a), -EINVAL);
        CU_ASSERT_EQUAL(qosbpf_addr_from_string(NULL, &a), -EINVAL);

        CU_ASSERT_EQUAL(qosbpf_tcp_stats_retrans_per_mille(&st), 0);
        st.segs_out = 2000;
        st.retrans = 3;
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_retrans_per_mille(&st), 1);
        st.retrans = 500;
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_retrans_per_mille(&st), 250);
        st.retrans = 5000;
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_retrans_per_mille(&st), 1000);
        CU_ASSERT_EQUAL(qosbpf_tcp_stats_retrans_per_mille(NULL), 0);
}

static CU_TestInfo tests[] = {
        { "addresses and retransmit rate", test_addr_and_rate },
        { "probe and load", test_probe_and_load },
        { "tc counters on veth", test_tc_counters },
        { "tc leaves foreign filters and qdisc", test_tc_foreign_filters },
        { "tc filters after ours still run", test_tc_later_filter_still_runs },
        { "tc stale cleanup after a crash", test_tc_stale_cleanup },
        { "tc on an interface that vanishes", test_tc_interface_vanishes },
        { "default cgroup", test_default_cgroup },
        { "sock_ops RTT, retransmits, ring buffer", test_sockops },
        { "tc with CAP_BPF and CAP_NET_ADMIN only", test_tc_without_sys_admin },
        { "no permission: distinct errors", test_no_permission },
        { "nothing left behind", test_nothing_left },
        CU_TEST_INFO_NULL,
};

int main(void) {
        /* Without root there are no namespaces, veths or BPF to test with;
         * say so instead of failing. As root, everything must work. */
        if (geteuid() != 0) {
                printf("# SKIP test-qosbpf: needs root\n# RESULT passed=0 failed=0 skipped=1\n");
                return 0;
        }
        return tests_run("qosbpf", tests, suite_init, suite_cleanup);
}
