/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/classifier.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/statfs.h>

#include "log.h"
#include "qos_sockops.skel.h"
#include "qos_tc.skel.h"
#include "qosbpf.h"

struct tc_attachment {
        int ifindex;
        bool created_qdisc;
};

struct qosbpf {
        struct qos_tc_bpf *tc;
        struct qos_sockops_bpf *sockops;
        unsigned n_cpus;
        uint32_t ingress_prog_id, egress_prog_id;

        struct tc_attachment tc_attached[QOSBPF_MAX_IFACES];
        size_t n_tc_attached;

        struct bpf_link *sockops_link;
        char *cgroup_path;

        struct ring_buffer *ringbuf;
        sd_event_source *event_source;
        qosbpf_event_handler_t handler;
        void *userdata;
};

_printf_(2, 0)
static int libbpf_print_debug(enum libbpf_print_level level, const char *format, va_list ap) {
        _cleanup_free_ char *s = NULL;
        size_t n;

        if (log_get_max_level() < LOG_DEBUG)
                return 0;
        if (vasprintf(&s, format, ap) < 0)
                return 0;
        n = strlen(s);
        if (n > 0 && s[n - 1] == '\n')
                s[n - 1] = '\0';
        log_debug("libbpf: %s", s);
        return 0;
}

/* libbpf prints warnings to stderr by default; a library must not. */
static void silence_libbpf(void) {
        static bool done;

        if (!done) {
                libbpf_set_print(libbpf_print_debug);
                done = true;
        }
}

/* The kernel answers EINVAL for a program or map type it does not know;
 * callers want to tell that apart from a bug in our arguments. */
static int errno_to_support(int r) {
        return r == -EINVAL || r == -E2BIG ? -EOPNOTSUPP : r;
}

int qosbpf_probe(void) {
        /* r0 = 0; exit: a valid result for both program types (sock_ops
         * must return 0 or 1). */
        const struct bpf_insn insns[] = {
                { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
                { .code = BPF_JMP | BPF_EXIT },
        };
        const enum bpf_prog_type types[] = { BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_SOCK_OPS };
        int fd;

        silence_libbpf();

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                fd = bpf_prog_load(types[i], NULL, "GPL", insns, ELEMENTSOF(insns), NULL);
                if (fd < 0)
                        return log_debug_errno(errno_to_support(-errno), "BPF program type %d not loadable: %m",
                                               types[i]);
                safe_close(fd);
        }

        /* A ring buffer is a power of two of pages. */
        fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, NULL, 0, 0, (uint32_t) sysconf(_SC_PAGESIZE), NULL);
        if (fd < 0)
                return log_debug_errno(errno_to_support(-errno), "BPF ring buffer not available: %m");
        safe_close(fd);

        return 0;
}

static int prog_id(struct bpf_program *p, uint32_t *ret) {
        struct bpf_prog_info info = {};
        uint32_t len = sizeof(info);
        int r;

        r = bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len);
        if (r < 0)
                return r;
        *ret = info.id;
        return 0;
}

int qosbpf_new(const qosbpf_options *opts, qosbpf **ret) {
        _cleanup_qosbpf_ qosbpf *q = NULL;
        int r;

        if (!ret)
                return -EINVAL;

        silence_libbpf();

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;

        r = libbpf_num_possible_cpus();
        if (r < 0)
                return log_debug_errno(r, "Cannot count possible CPUs: %m");
        q->n_cpus = r;

        q->tc = qos_tc_bpf__open();
        if (!q->tc)
                return log_debug_errno(negative_errno(), "Cannot open tc object: %m");
        r = qos_tc_bpf__load(q->tc);
        if (r < 0)
                return log_debug_errno(errno_to_support(r), "Cannot load tc object: %m");

        q->sockops = qos_sockops_bpf__open();
        if (!q->sockops)
                return log_debug_errno(negative_errno(), "Cannot open sock_ops object: %m");
        if (opts)
                q->sockops->rodata->rtt_event_interval_ns =
                        MIN(opts->rtt_event_interval_usec, UINT64_MAX / 1000) * 1000;
        r = qos_sockops_bpf__load(q->sockops);
        if (r < 0)
                return log_debug_errno(errno_to_support(r), "Cannot load sock_ops object: %m");

        r = prog_id(q->tc->progs.qos_tc_ingress, &q->ingress_prog_id);
        if (r >= 0)
                r = prog_id(q->tc->progs.qos_tc_egress, &q->egress_prog_id);
        if (r < 0)
                return log_debug_errno(r, "Cannot get program ids: %m");

        *ret = TAKE_PTR(q);
        return 0;
}

/* --- tc ----------------------------------------------------------------------- */

static struct tc_attachment *find_tc(qosbpf *q, int ifindex) {
        for (size_t i = 0; i < q->n_tc_attached; i++)
                if (q->tc_attached[i].ifindex == ifindex)
                        return &q->tc_attached[i];
        return NULL;
}

bool qosbpf_tc_is_attached(qosbpf *q, int ifindex) {
        return q && find_tc(q, ifindex);
}

static const char *tc_point_name(enum bpf_tc_attach_point point) {
        return point == BPF_TC_INGRESS ? "ingress" : "egress";
}

/* Counts the filters of every owner on one clsact hook. libbpf has no dump
 * of filters, and deleting the qdisc would take other people's with it. */
static int count_tc_filters(int ifindex, uint32_t parent) {
        struct nl_sock *sk;
        struct nl_cache *cache = NULL;
        int r;

        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r >= 0)
                r = rtnl_cls_alloc_cache(sk, ifindex, parent, &cache);
        if (r < 0) {
                log_debug("Cannot list tc filters of ifindex %d: %s", ifindex, nl_geterror(r));
                r = -EIO;
        } else {
                r = nl_cache_nitems(cache);
                nl_cache_free(cache);
        }
        nl_socket_free(sk);
        return r;
}

static bool clsact_is_empty(int ifindex) {
        return count_tc_filters(ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)) == 0 &&
                count_tc_filters(ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)) == 0;
}

static int tc_detach_one(int ifindex, enum bpf_tc_attach_point point) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = QOSBPF_TC_HANDLE, .priority = QOSBPF_TC_PRIORITY);

        return bpf_tc_detach(&hook, &opts);
}

/* The name libbpf gave the filter at our handle and priority
 * ("<program>:[<id>]", TCA_BPF_NAME), from an rtnetlink dump of the hook.
 * Dumps need no privilege, unlike bpf_prog_get_fd_by_id(), which needs
 * CAP_SYS_ADMIN that the hardened unit does not grant. 1 and the name if
 * found, 0 if the slot holds no bpf filter. */
static int tc_filter_name(int ifindex, enum bpf_tc_attach_point point, char *ret_name, size_t size) {
        uint32_t parent = TC_H_MAKE(TC_H_CLSACT,
                                    point == BPF_TC_INGRESS ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
        struct {
                struct nlmsghdr nh;
                struct tcmsg tc;
        } req = {
                .nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg)),
                .nh.nlmsg_type = RTM_GETTFILTER,
                .nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                .nh.nlmsg_seq = 1,
                .tc.tcm_family = AF_UNSPEC,
                .tc.tcm_ifindex = ifindex,
                .tc.tcm_parent = parent,
        };
        _cleanup_close_ int fd = -1;
        _Alignas(struct nlmsghdr) char buf[16384];
        int found = 0;

        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return negative_errno();
        if (send(fd, &req, req.nh.nlmsg_len, 0) < 0)
                return negative_errno();

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);

                if (n < 0)
                        return negative_errno();
                for (struct nlmsghdr *nh = (struct nlmsghdr *) buf; NLMSG_OK(nh, (size_t) n);
                     nh = NLMSG_NEXT(nh, n)) {
                        struct tcmsg *tc = NLMSG_DATA(nh);
                        const char *kind = NULL, *name = NULL;
                        struct rtattr *opts = NULL;
                        int len;

                        if (nh->nlmsg_type == NLMSG_DONE)
                                return found;
                        if (nh->nlmsg_type == NLMSG_ERROR) {
                                struct nlmsgerr *e = NLMSG_DATA(nh);
                                /* No clsact qdisc: nothing can sit in the slot. */
                                return e->error == -EINVAL || e->error == -ENOENT ? 0 : e->error;
                        }
                        if (nh->nlmsg_type != RTM_NEWTFILTER || found ||
                            tc->tcm_handle != QOSBPF_TC_HANDLE ||
                            TC_H_MAJ(tc->tcm_info) >> 16 != QOSBPF_TC_PRIORITY)
                                continue;

                        len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*tc));
                        for (struct rtattr *a = (struct rtattr *) ((char *) tc + NLMSG_ALIGN(sizeof(*tc)));
                             RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                                if (a->rta_type == TCA_KIND)
                                        kind = RTA_DATA(a);
                                else if (a->rta_type == TCA_OPTIONS)
                                        opts = a;
                        }
                        if (!kind || !streq(kind, "bpf") || !opts)
                                continue;

                        len = RTA_PAYLOAD(opts);
                        for (struct rtattr *a = RTA_DATA(opts); RTA_OK(a, len); a = RTA_NEXT(a, len))
                                if (a->rta_type == TCA_BPF_NAME)
                                        name = RTA_DATA(a);
                        snprintf(ret_name, size, "%s", strempty(name));
                        found = 1;
                }
        }
}

/* Which of our programs sits at our handle and priority on this hook:
 * 1 and its id in *ret_id if one of ours (by name), 0 if the slot is empty,
 * -EEXIST if somebody else's filter holds it. */
static int tc_query_ours(int ifindex, enum bpf_tc_attach_point point, uint32_t *ret_id) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = QOSBPF_TC_HANDLE, .priority = QOSBPF_TC_PRIORITY);
        const char *want = point == BPF_TC_INGRESS ? QOSBPF_TC_INGRESS_PROG : QOSBPF_TC_EGRESS_PROG;
        char name[BPF_OBJ_NAME_LEN + 32];
        size_t n = strlen(want);
        int r;

        r = bpf_tc_query(&hook, &opts);
        /* ENOENT: no such filter; EINVAL: no clsact qdisc to look in. */
        if (r == -ENOENT || r == -EINVAL)
                return 0;
        if (r < 0)
                return r;

        r = tc_filter_name(ifindex, point, name, sizeof(name));
        if (r < 0)
                return r;
        if (r == 0)
                return 0;
        /* libbpf names the filter "<program name>:[<program id>]". */
        if (strncmp(name, want, n) != 0 || name[n] != ':')
                return -EEXIST;

        if (ret_id)
                *ret_id = opts.prog_id;
        return 1;
}

int qosbpf_cleanup_stale(int ifindex) {
        const enum bpf_tc_attach_point points[] = { BPF_TC_INGRESS, BPF_TC_EGRESS };
        int removed = 0, r;

        if (ifindex <= 0)
                return -EINVAL;

        silence_libbpf();

        for (size_t i = 0; i < ELEMENTSOF(points); i++) {
                r = tc_query_ours(ifindex, points[i], NULL);
                if (r == -EEXIST) {
                        log_debug("ifindex %d %s: foreign filter at handle 0x%x prio 0x%x, left alone.",
                                  ifindex, tc_point_name(points[i]), QOSBPF_TC_HANDLE, QOSBPF_TC_PRIORITY);
                        continue;
                }
                if (r < 0)
                        return log_debug_errno(r, "Cannot query tc filters of ifindex %d: %m", ifindex);
                if (r == 0)
                        continue;

                r = tc_detach_one(ifindex, points[i]);
                if (r < 0 && r != -ENOENT)
                        return log_debug_errno(r, "Cannot remove stale %s filter of ifindex %d: %m",
                                               tc_point_name(points[i]), ifindex);
                log_debug("Removed stale %s filter of ifindex %d.", tc_point_name(points[i]), ifindex);
                removed++;
        }

        return removed;
}

static int tc_attach_one(qosbpf *q, int ifindex, enum bpf_tc_attach_point point) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = QOSBPF_TC_HANDLE, .priority = QOSBPF_TC_PRIORITY);
        struct bpf_program *p = point == BPF_TC_INGRESS ? q->tc->progs.qos_tc_ingress : q->tc->progs.qos_tc_egress;

        opts.prog_fd = bpf_program__fd(p);
        return bpf_tc_attach(&hook, &opts);
}

static int counters_reset(qosbpf *q, int ifindex) {
        _cleanup_free_ struct qosbpf_tc_value *zero = NULL;
        uint32_t key = ifindex;

        zero = calloc(q->n_cpus, sizeof(*zero));
        if (!zero)
                return -ENOMEM;
        return bpf_map__update_elem(q->tc->maps.qos_tc_counters, &key, sizeof(key), zero,
                                    q->n_cpus * sizeof(*zero), BPF_ANY);
}

static void counters_remove(qosbpf *q, int ifindex) {
        uint32_t key = ifindex;

        (void) bpf_map__delete_elem(q->tc->maps.qos_tc_counters, &key, sizeof(key), 0);
}

static void tc_destroy_qdisc_if_unused(int ifindex) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);

        if (!clsact_is_empty(ifindex))
                return;
        (void) bpf_tc_hook_destroy(&hook);
}

int qosbpf_attach_tc(qosbpf *q, int ifindex) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
        bool created;
        int r;

        if (!q || ifindex <= 0)
                return -EINVAL;
        if (find_tc(q, ifindex))
                return 0;
        if (q->n_tc_attached >= ELEMENTSOF(q->tc_attached))
                return -E2BIG;

        r = bpf_tc_hook_create(&hook);
        if (r < 0 && r != -EEXIST)
                return log_debug_errno(r, "Cannot create clsact qdisc on ifindex %d: %m", ifindex);
        created = r >= 0;

        r = qosbpf_cleanup_stale(ifindex);
        if (r < 0)
                goto fail;

        /* Counters exist before the programs can see a packet. */
        r = counters_reset(q, ifindex);
        if (r < 0)
                goto fail;

        r = tc_attach_one(q, ifindex, BPF_TC_INGRESS);
        if (r < 0) {
                log_debug_errno(r, "Cannot attach ingress filter to ifindex %d: %m", ifindex);
                goto fail_counters;
        }
        r = tc_attach_one(q, ifindex, BPF_TC_EGRESS);
        if (r < 0) {
                log_debug_errno(r, "Cannot attach egress filter to ifindex %d: %m", ifindex);
                (void) tc_detach_one(ifindex, BPF_TC_INGRESS);
                goto fail_counters;
        }

        q->tc_attached[q->n_tc_attached++] = (struct tc_attachment) {
                .ifindex = ifindex,
                .created_qdisc = created,
        };
        log_debug("Attached tc programs to ifindex %d%s.", ifindex, created ? " (created clsact)" : "");
        return 0;

fail_counters:
        counters_remove(q, ifindex);
fail:
        if (created)
                tc_destroy_qdisc_if_unused(ifindex);
        return r;
}

int qosbpf_detach_tc(qosbpf *q, int ifindex) {
        const enum bpf_tc_attach_point points[] = { BPF_TC_INGRESS, BPF_TC_EGRESS };
        struct tc_attachment *a;
        int ret = 0, r;

        if (!q)
                return -EINVAL;
        a = find_tc(q, ifindex);
        if (!a)
                return -ENOENT;

        for (size_t i = 0; i < ELEMENTSOF(points); i++) {
                uint32_t want = points[i] == BPF_TC_INGRESS ? q->ingress_prog_id : q->egress_prog_id;
                uint32_t id = 0;

                r = tc_query_ours(ifindex, points[i], &id);
                /* Gone with the interface, or replaced by somebody: nothing
                 * of ours to remove there. */
                if (r == -ENODEV || r == 0 || r == -EEXIST || (r > 0 && id != want))
                        continue;
                if (r > 0)
                        r = tc_detach_one(ifindex, points[i]);
                if (r < 0 && r != -ENOENT && r != -ENODEV) {
                        log_debug_errno(r, "Cannot detach %s filter from ifindex %d: %m",
                                        tc_point_name(points[i]), ifindex);
                        if (ret == 0)
                                ret = r;
                }
        }

        if (a->created_qdisc)
                tc_destroy_qdisc_if_unused(ifindex);
        counters_remove(q, ifindex);

        *a = q->tc_attached[--q->n_tc_attached];
        log_debug("Detached tc programs from ifindex %d.", ifindex);
        return ret;
}

int qosbpf_read_counters(qosbpf *q, int ifindex, qosbpf_counters *ret) {
        _cleanup_free_ struct qosbpf_tc_value *v = NULL;
        qosbpf_counters sum = {};
        uint32_t key = ifindex;
        int r;

        if (!q || !ret)
                return -EINVAL;
        if (!find_tc(q, ifindex))
                return -ENOENT;

        v = calloc(q->n_cpus, sizeof(*v));
        if (!v)
                return -ENOMEM;
        r = bpf_map__lookup_elem(q->tc->maps.qos_tc_counters, &key, sizeof(key), v, q->n_cpus * sizeof(*v), 0);
        if (r < 0)
                return r;

        for (unsigned i = 0; i < q->n_cpus; i++) {
                sum.rx_packets += v[i].rx_packets;
                sum.rx_bytes += v[i].rx_bytes;
                sum.tx_packets += v[i].tx_packets;
                sum.tx_bytes += v[i].tx_bytes;
        }
        *ret = sum;
        return 0;
}

/* --- sock_ops ------------------------------------------------------------------ */

/* The mount point of the cgroup v2 hierarchy, from mountinfo: field 5 is the
 * mount point, the field after " - " the file system type. */
static int cgroup2_mount_point(char **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;

        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();

        while (getline(&line, &size, f) >= 0) {
                char root[4096], where[4096], fstype[64];
                const char *dash;
                char *p;

                dash = strstr(line, " - ");
                if (!dash || sscanf(dash, " - %63s", fstype) != 1 || !streq(fstype, "cgroup2"))
                        continue;
                if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, where) != 2)
                        continue;
                /* A bind mount of a subtree would shift every path. */
                if (!streq(root, "/"))
                        continue;
                p = strdup(where);
                if (!p)
                        return -ENOMEM;
                *ret = p;
                return 0;
        }
        return -ENOMEDIUM;
}

int qosbpf_default_cgroup(char **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL, *mnt = NULL;
        size_t size = 0;
        int r;

        if (!ret)
                return -EINVAL;

        r = cgroup2_mount_point(&mnt);
        if (r < 0)
                return r;

        f = fopen("/proc/self/cgroup", "re");
        if (!f)
                return negative_errno();

        /* The unified hierarchy is the line with id 0 and no controllers. */
        while (getline(&line, &size, f) >= 0) {
                size_t n;
                char *p;

                if (strncmp(line, "0::", 3) != 0)
                        continue;
                n = strlen(line);
                if (n > 0 && line[n - 1] == '\n')
                        line[--n] = '\0';
                if (streq(line + 3, "/"))
                        p = strdup(mnt);
                else if (asprintf(&p, "%s%s", mnt, line + 3) < 0)
                        p = NULL;
                if (!p)
                        return -ENOMEM;
                *ret = p;
                return 0;
        }
        return -ENOMEDIUM;
}

int qosbpf_attach_sockops(qosbpf *q, const char *cgroup_path) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        struct bpf_link *link;
        struct statfs sfs;
        int r;

        if (!q)
                return -EINVAL;
        if (q->sockops_link)
                return -EBUSY;

        if (cgroup_path) {
                path = strdup(cgroup_path);
                if (!path)
                        return -ENOMEM;
        } else {
                r = qosbpf_default_cgroup(&path);
                if (r < 0)
                        return log_debug_errno(r, "Cannot find our own cgroup: %m");
        }

        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_debug_errno(negative_errno(), "Cannot open cgroup %s: %m", path);
        if (fstatfs(fd, &sfs) < 0)
                return negative_errno();
        if (sfs.f_type != CGROUP2_SUPER_MAGIC)
                return log_debug_errno(EMEDIUMTYPE, "%s is not a cgroup v2 directory.", path);

        /* A link, not a plain attachment: the kernel detaches it when the
         * last reference goes, i.e. when we exit, even by crashing. */
        link = bpf_program__attach_cgroup(q->sockops->progs.qos_sockops, fd);
        if (!link)
                return log_debug_errno(negative_errno(), "Cannot attach sock_ops to %s: %m", path);

        q->sockops_link = link;
        q->cgroup_path = TAKE_PTR(path);
        log_debug("Attached sock_ops program to %s.", q->cgroup_path);
        return 0;
}

int qosbpf_detach_sockops(qosbpf *q) {
        int r;

        if (!q)
                return -EINVAL;
        if (!q->sockops_link)
                return -ENOENT;

        r = bpf_link__destroy(q->sockops_link);
        q->sockops_link = NULL;
        free(q->cgroup_path);
        q->cgroup_path = NULL;
        return r;
}

const char *qosbpf_sockops_cgroup(qosbpf *q) {
        return q ? q->cgroup_path : NULL;
}

static void key_to_addr(uint32_t family, const uint32_t addr[4], qosbpf_addr *ret) {
        *ret = (qosbpf_addr) {};
        if (family == QOSBPF_AF_INET) {
                ret->family = AF_INET;
                ret->in.s_addr = addr[0];
        } else {
                ret->family = AF_INET6;
                memcpy(&ret->in6, addr, sizeof(ret->in6));
        }
}

/* Mirrors make_key() of the program: v4-mapped is IPv4, unused words zero. */
static int addr_to_key(const qosbpf_addr *a, struct qosbpf_tcp_key *ret) {
        struct qosbpf_tcp_key k = {};

        if (a->family == AF_INET) {
                k.family = QOSBPF_AF_INET;
                k.addr[0] = a->in.s_addr;
        } else if (a->family == AF_INET6) {
                if (IN6_IS_ADDR_V4MAPPED(&a->in6)) {
                        k.family = QOSBPF_AF_INET;
                        memcpy(&k.addr[0], &a->in6.s6_addr[12], 4);
                } else {
                        k.family = QOSBPF_AF_INET6;
                        memcpy(k.addr, &a->in6, sizeof(k.addr));
                }
        } else
                return -EAFNOSUPPORT;

        *ret = k;
        return 0;
}

static void value_to_stats(const struct qosbpf_tcp_key *k, const struct qosbpf_tcp_value *v,
                           qosbpf_tcp_stats *ret) {
        *ret = (qosbpf_tcp_stats) {
                /* The kernel keeps srtt >= 1 (in 1/8 us) once measured;
                 * rounding up keeps "measured" distinct from 0. */
                .srtt_us = (v->srtt_x8 + 7) / 8,
                .rtt_samples = v->rtt_samples,
                .segs_out = v->segs_out,
                .retrans = v->retrans,
                .rto = v->rto,
                .last_update_usec = v->last_update_ns / 1000,
        };
        key_to_addr(k->family, k->addr, &ret->remote);
}

int qosbpf_tcp_stats_lookup(qosbpf *q, const qosbpf_addr *remote, qosbpf_tcp_stats *ret) {
        struct qosbpf_tcp_value v;
        struct qosbpf_tcp_key k;
        int r;

        if (!q || !remote || !ret)
                return -EINVAL;
        r = addr_to_key(remote, &k);
        if (r < 0)
                return r;
        r = bpf_map__lookup_elem(q->sockops->maps.qos_tcp_stats, &k, sizeof(k), &v, sizeof(v), 0);
        if (r < 0)
                return r;
        value_to_stats(&k, &v, ret);
        return 0;
}

int qosbpf_tcp_stats_foreach(qosbpf *q, qosbpf_tcp_stats_func_t f, void *userdata) {
        struct bpf_map *map;
        struct qosbpf_tcp_key k, next;
        bool first = true;
        int r;

        if (!q || !f)
                return -EINVAL;
        map = q->sockops->maps.qos_tcp_stats;

        for (;;) {
                struct qosbpf_tcp_value v;
                qosbpf_tcp_stats s;

                r = bpf_map__get_next_key(map, first ? NULL : &k, &next, sizeof(next));
                if (r == -ENOENT)
                        return 0;
                if (r < 0)
                        return r;
                first = false;
                k = next;

                r = bpf_map__lookup_elem(map, &k, sizeof(k), &v, sizeof(v), 0);
                if (r == -ENOENT) /* evicted meanwhile */
                        continue;
                if (r < 0)
                        return r;
                value_to_stats(&k, &v, &s);
                r = f(&s, userdata);
                if (r < 0)
                        return r;
        }
}

unsigned qosbpf_tcp_stats_retrans_per_mille(const qosbpf_tcp_stats *s) {
        if (!s || s->segs_out == 0)
                return 0;
        /* Retransmissions are also counted in segs_out; clamp anyway, the
         * two counters are read at slightly different moments. */
        return (unsigned) MIN(s->retrans * 1000 / s->segs_out, 1000u);
}

/* --- events ------------------------------------------------------------------ */

static int on_ringbuf_record(void *userdata, void *data, size_t size) {
        const struct qosbpf_tcp_event *e = data;
        qosbpf *q = userdata;
        qosbpf_event ev;

        if (size < sizeof(*e))
                return 0;

        ev = (qosbpf_event) {
                .type = e->type,
                .remote_port = e->remote_port,
                .local_port = e->local_port,
                .srtt_us = (e->srtt_x8 + 7) / 8,
                .value = e->value,
                .timestamp_usec = e->timestamp_ns / 1000,
        };
        key_to_addr(e->family, e->addr, &ev.remote);

        return q->handler ? q->handler(q, &ev, q->userdata) : 0;
}

static int on_ringbuf_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        qosbpf *q = userdata;
        int r;

        r = ring_buffer__consume(q->ringbuf);
        if (r < 0)
                log_debug_errno(r, "Ring buffer consumption stopped: %m");
        /* Never fail: sd-event would disable the source for good. */
        return 0;
}

int qosbpf_attach_event(qosbpf *q, sd_event *e, qosbpf_event_handler_t handler, void *userdata) {
        struct ring_buffer *rb;
        int r;

        if (!q || !e || !handler)
                return -EINVAL;
        if (q->event_source)
                return -EBUSY;

        rb = ring_buffer__new(bpf_map__fd(q->sockops->maps.qos_tcp_events), on_ringbuf_record, q, NULL);
        if (!rb)
                return log_debug_errno(negative_errno(), "Cannot set up ring buffer: %m");

        r = sd_event_add_io(e, &q->event_source, ring_buffer__epoll_fd(rb), EPOLLIN, on_ringbuf_io, q);
        if (r < 0) {
                ring_buffer__free(rb);
                return log_debug_errno(r, "Cannot watch ring buffer: %m");
        }
        (void) sd_event_source_set_description(q->event_source, "qosbpf-ringbuf");

        q->ringbuf = rb;
        q->handler = handler;
        q->userdata = userdata;
        return 0;
}

void qosbpf_detach_event(qosbpf *q) {
        if (!q)
                return;
        /* The source watches the ring buffer's epoll fd: gone first. */
        q->event_source = sd_event_source_disable_unref(q->event_source);
        ring_buffer__free(q->ringbuf);
        q->ringbuf = NULL;
        q->handler = NULL;
        q->userdata = NULL;
}

uint64_t qosbpf_events_dropped(qosbpf *q) {
        if (!q || !q->sockops || !q->sockops->bss)
                return 0;
        return __atomic_load_n(&q->sockops->bss->events_dropped, __ATOMIC_RELAXED);
}

/* --- addresses -------------------------------------------------------------- */

const char *qosbpf_addr_to_string(const qosbpf_addr *a, char *buf, size_t size) {
        if (!a || !buf)
                return NULL;
        return inet_ntop(a->family, a->family == AF_INET ? (const void *) &a->in : (const void *) &a->in6, buf,
                         size);
}

int qosbpf_addr_from_string(const char *s, qosbpf_addr *ret) {
        qosbpf_addr a = {};

        if (!s || !ret)
                return -EINVAL;
        if (inet_pton(AF_INET, s, &a.in) == 1)
                a.family = AF_INET;
        else if (inet_pton(AF_INET6, s, &a.in6) == 1)
                a.family = AF_INET6;
        else
                return -EINVAL;
        *ret = a;
        return 0;
}

/* --- teardown ---------------------------------------------------------------- */

qosbpf *qosbpf_free(qosbpf *q) {
        if (!q)
                return NULL;

        qosbpf_detach_event(q);
        if (q->sockops_link)
                (void) qosbpf_detach_sockops(q);
        while (q->n_tc_attached > 0)
                (void) qosbpf_detach_tc(q, q->tc_attached[q->n_tc_attached - 1].ifindex);

        qos_sockops_bpf__destroy(q->sockops);
        qos_tc_bpf__destroy(q->tc);
        free(q->cgroup_path);
        free(q);
        return NULL;
}
