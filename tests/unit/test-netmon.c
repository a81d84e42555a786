/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* netmon against the real kernel: every test runs in a network namespace of
 * its own (unshare(CLONE_NEWNET) at its start; the previous one vanishes with
 * its last reference) and changes links, addresses and routes there with
 * ip(8), then runs the event loop until the expected event arrives. The
 * deadline only guards against hangs; nothing here measures speed. */

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "netmon.h"
#include "tests.h"

#define DEADLINE_USEC (5ULL * 1000 * 1000)

typedef struct record {
        netmon_event_type type;
        int ifindex;
        unsigned changed;
        char name[IFNAMSIZ], old_name[IFNAMSIZ];
        int operstate, old_operstate;
        bool carrier, old_carrier;
        uint32_t mtu, old_mtu;
        char addr[NETMON_ADDR_STRLEN];
        uint32_t addr_flags, old_addr_flags;
        int route_family;
        uint32_t metric;
        char gateway[INET6_ADDRSTRLEN];
        int old_primary, new_primary;
        char old_primary_name[IFNAMSIZ], new_primary_name[IFNAMSIZ];
        char old_primary_addr[NETMON_ADDR_STRLEN], new_primary_addr[NETMON_ADDR_STRLEN];
        int link_query; /* netmon_get_link() on the event's link from inside the callback */
} record;

static struct {
        record ev[4096];
        size_t n;
        unsigned n_ready;
        bool ready_was_set; /* netmon_is_ready() inside the ready callback */
} rec;

typedef struct ctx {
        sd_event *e;
        netmon *m;
} ctx;

static void on_event(netmon *m, const netmon_event *ev, void *userdata) {
        record *r;

        if (rec.n >= ELEMENTSOF(rec.ev))
                return;
        r = &rec.ev[rec.n++];
        *r = (record) { .type = ev->type, .ifindex = ev->ifindex, .changed = ev->changed };
        if (ev->link) {
                snprintf(r->name, sizeof(r->name), "%s", ev->link->name);
                r->operstate = ev->link->operstate;
                r->carrier = ev->link->carrier;
                r->mtu = ev->link->mtu;
                r->link_query = netmon_get_link(m, ev->ifindex, NULL);
        }
        if (ev->old_link) {
                snprintf(r->old_name, sizeof(r->old_name), "%s", ev->old_link->name);
                r->old_operstate = ev->old_link->operstate;
                r->old_carrier = ev->old_link->carrier;
                r->old_mtu = ev->old_link->mtu;
        }
        if (ev->address) {
                snprintf(r->addr, sizeof(r->addr), "%s", ev->address->str);
                r->addr_flags = ev->address->flags;
        }
        if (ev->old_address)
                r->old_addr_flags = ev->old_address->flags;
        if (ev->route) {
                r->route_family = ev->route->family;
                r->metric = ev->route->metric;
                snprintf(r->gateway, sizeof(r->gateway), "%s", ev->route->gateway_str);
        }
        if (ev->old_primary) {
                r->old_primary = ev->old_primary->ifindex;
                snprintf(r->old_primary_name, sizeof(r->old_primary_name), "%s", ev->old_primary->ifname);
                snprintf(r->old_primary_addr, sizeof(r->old_primary_addr), "%s",
                         ev->old_primary->address.family != AF_UNSPEC ? ev->old_primary->address.str : "");
        }
        if (ev->new_primary) {
                r->new_primary = ev->new_primary->ifindex;
                snprintf(r->new_primary_name, sizeof(r->new_primary_name), "%s", ev->new_primary->ifname);
                snprintf(r->new_primary_addr, sizeof(r->new_primary_addr), "%s",
                         ev->new_primary->address.family != AF_UNSPEC ? ev->new_primary->address.str : "");
        }
}

static void on_ready(netmon *m, void *userdata) {
        rec.n_ready++;
        rec.ready_was_set = netmon_is_ready(m);
}

static int sh(const char *fmt, ...) _printf_(1, 2);
static int sh(const char *fmt, ...) {
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
        return r == -1 ? -errno : (WIFEXITED(r) ? WEXITSTATUS(r) : 128);
}
#define SH(...) CU_ASSERT_EQUAL_FATAL(sh(__VA_ARGS__), 0)

static void fresh_netns(void) {
        CU_ASSERT_EQUAL_FATAL(unshare(CLONE_NEWNET), 0);
        SH("ip link set lo up");
        rec.n = 0;
        rec.n_ready = 0;
        rec.ready_was_set = false;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

typedef bool (*pred_t)(ctx *c, const void *arg);

static bool run_until(ctx *c, pred_t pred, const void *arg) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;

        while (!pred(c, arg)) {
                if (now_usec() > deadline)
                        return false;
                if (sd_event_run(c->e, 100 * 1000) < 0)
                        return false;
        }
        return true;
}

/* Runs the loop for as long as there is something to dispatch right away. */
static void run_idle(ctx *c) {
        while (sd_event_run(c->e, 0) > 0)
                ;
}

static bool pred_ready(ctx *c, const void *arg) {
        return rec.n_ready > 0;
}

static void start_full(ctx *c, netmon_filter_t filter, void *filter_userdata, size_t rcvbuf) {
        CU_ASSERT_EQUAL_FATAL(sd_event_new(&c->e), 0);
        CU_ASSERT_EQUAL_FATAL(netmon_new(c->e, &c->m), 0);
        CU_ASSERT_EQUAL(netmon_set_callback(c->m, on_event, NULL), 0);
        CU_ASSERT_EQUAL(netmon_set_ready_callback(c->m, on_ready, NULL), 0);
        if (filter)
                CU_ASSERT_EQUAL(netmon_set_filter(c->m, filter, filter_userdata), 0);
        if (rcvbuf)
                CU_ASSERT_EQUAL(netmon_set_receive_buffer_size(c->m, rcvbuf), 0);
        CU_ASSERT_FALSE(netmon_is_ready(c->m));
        CU_ASSERT_EQUAL_FATAL(netmon_start(c->m), 0);
        CU_ASSERT_EQUAL(netmon_start(c->m), -EBUSY);
        CU_ASSERT_EQUAL(netmon_set_filter(c->m, NULL, NULL), -EBUSY);
        CU_ASSERT_FATAL(run_until(c, pred_ready, NULL));
        CU_ASSERT_TRUE(netmon_is_ready(c->m));
}

static void start(ctx *c) {
        start_full(c, NULL, NULL, 0);
}

static void stop(ctx *c) {
        c->m = netmon_free(c->m);
        c->e = sd_event_unref(c->e);
}

typedef struct ev_match {
        size_t from;
        netmon_event_type type;
        int ifindex; /* 0: any */
        const char *addr; /* NULL: any */
} ev_match;

static const record *find_event(const ev_match *q) {
        for (size_t i = q->from; i < rec.n; i++) {
                const record *r = &rec.ev[i];

                if (r->type != q->type)
                        continue;
                if (q->ifindex > 0 && r->ifindex != q->ifindex)
                        continue;
                if (q->addr && !streq(r->addr, q->addr))
                        continue;
                return r;
        }
        return NULL;
}

static size_t count_events(size_t from, netmon_event_type type, int ifindex) {
        size_t n = 0;

        for (size_t i = from; i < rec.n; i++)
                if (rec.ev[i].type == type && (ifindex <= 0 || rec.ev[i].ifindex == ifindex))
                        n++;
        return n;
}

static bool pred_event(ctx *c, const void *arg) {
        return find_event(arg) != NULL;
}

static const record *wait_event(ctx *c, size_t from, netmon_event_type type, int ifindex,
                                const char *addr) {
        ev_match q = { .from = from, .type = type, .ifindex = ifindex, .addr = addr };

        if (!run_until(c, pred_event, &q))
                return NULL;
        return find_event(&q);
}

/* The last PRIMARY_CHANGED from `from` on whose new primary satisfies the
 * arguments. */
typedef struct primary_match {
        size_t from;
        int ifindex;
        const char *addr;
} primary_match;

static const record *find_primary(const primary_match *q) {
        for (size_t i = q->from; i < rec.n; i++) {
                const record *r = &rec.ev[i];

                if (r->type == NETMON_EVENT_PRIMARY_CHANGED && r->new_primary == q->ifindex &&
                    (!q->addr || streq(r->new_primary_addr, q->addr)))
                        return r;
        }
        return NULL;
}

static bool pred_primary(ctx *c, const void *arg) {
        return find_primary(arg) != NULL;
}

static const record *wait_primary(ctx *c, size_t from, int ifindex, const char *addr) {
        primary_match q = { .from = from, .ifindex = ifindex, .addr = addr };

        if (!run_until(c, pred_primary, &q))
                return NULL;
        return find_primary(&q);
}

typedef struct reason_match {
        int ifindex;
        const char *reason; /* NULL: usable */
} reason_match;

static bool pred_reason(ctx *c, const void *arg) {
        const reason_match *q = arg;
        const char *reason = NULL;
        int r;

        r = netmon_link_is_usable(c->m, q->ifindex, &reason);
        if (r < 0)
                return false;
        if (!q->reason)
                return r == 1;
        return r == 0 && streq(reason, q->reason);
}

static bool wait_reason(ctx *c, int ifindex, const char *reason) {
        reason_match q = { .ifindex = ifindex, .reason = reason };
        const char *got = NULL;

        if (run_until(c, pred_reason, &q))
                return true;
        (void) netmon_link_is_usable(c->m, ifindex, &got);
        fprintf(stderr, "ifindex %d: wanted reason \"%s\", have \"%s\"\n", ifindex, strna(reason),
                strna(got));
        return false;
}

typedef struct oper_match {
        int ifindex;
        netmon_oper_state state;
} oper_match;

static bool pred_oper(ctx *c, const void *arg) {
        const oper_match *q = arg;
        netmon_link_info l;

        return netmon_get_link(c->m, q->ifindex, &l) == 0 && l.operstate == q->state;
}

static bool wait_oper(ctx *c, int ifindex, netmon_oper_state state) {
        oper_match q = { .ifindex = ifindex, .state = state };
        return run_until(c, pred_oper, &q);
}

static bool has_address(ctx *c, int ifindex, const char *str, netmon_address *ret) {
        netmon_address a;

        for (size_t i = 0; netmon_get_address(c->m, ifindex, i, &a) == 0; i++)
                if (streq(a.str, str)) {
                        if (ret)
                                *ret = a;
                        return true;
                }
        return false;
}

static size_t n_addresses(ctx *c, int ifindex, int family) {
        netmon_address a;
        size_t n = 0;

        for (size_t i = 0; netmon_get_address(c->m, ifindex, i, &a) == 0; i++)
                if (a.family == family)
                        n++;
        return n;
}

/* Waits until the kernel reports the link's oper state as up: carrier
 * changes reach the oper state asynchronously (linkwatch). */
static void settle(const char *name) {
        SH("i=0; until ip link show dev %s | grep -q 'state UP'; do "
           "i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.05; done", name);
}

/* vA (10.0.0.2/24, default via 10.0.0.1 metric 100) <-> vB (10.0.0.1/24). */
static void make_veth(void) {
        SH("ip link add vA type veth peer name vB");
        SH("ip addr add 10.0.0.2/24 dev vA");
        SH("ip addr add 10.0.0.1/24 dev vB");
        SH("ip link set vA up && ip link set vB up");
        settle("vA");
        settle("vB");
        SH("ip route add default via 10.0.0.1 dev vA metric 100");
}

/* A link (a veth whose peer is "<name>p", both up) with an address and a
 * default route of the given metric (via gw when given, else on-link).
 * veth rather than dummy: not every kernel has the dummy driver. */
static void make_link(const char *name, const char *addr, const char *gw, unsigned metric) {
        SH("ip link add %s type veth peer name %sp", name, name);
        SH("ip link set %s up && ip link set %sp up", name, name);
        settle(name);
        if (addr) {
                SH("ip addr add %s dev %s", addr, name);
        }
        if (gw) {
                SH("ip route add default via %s dev %s metric %u", gw, name, metric);
        } else if (metric > 0) {
                SH("ip route add default dev %s metric %u", name, metric);
        }
}

static int ifindex_of(const char *name) {
        int i = (int) if_nametoindex(name);
        CU_ASSERT(i > 0);
        return i;
}

/* --- tests ------------------------------------------------------------------ */

static void test_initial_dump(void) {
        ctx c = {};
        netmon_link_info l;
        netmon_address a;
        netmon_route rt;
        netmon_primary p;
        int va, vb, d0, n = 0, prev = 0;

        fresh_netns();
        make_veth();
        SH("ip link add d0 type veth peer name d0p");
        va = ifindex_of("vA");
        vb = ifindex_of("vB");
        d0 = ifindex_of("d0");

        start(&c);
        CU_ASSERT_EQUAL(rec.n_ready, 1);
        CU_ASSERT_TRUE(rec.ready_was_set);

        /* The initial state arrives as events before ready. */
        CU_ASSERT_PTR_NOT_NULL(find_event(&(ev_match) { 0, NETMON_EVENT_LINK_NEW, va, NULL }));
        CU_ASSERT_PTR_NOT_NULL(find_event(&(ev_match) { 0, NETMON_EVENT_LINK_NEW, vb, NULL }));
        CU_ASSERT_PTR_NOT_NULL(find_event(&(ev_match) { 0, NETMON_EVENT_LINK_NEW, d0, NULL }));
        CU_ASSERT_PTR_NOT_NULL(find_event(&(ev_match) { 0, NETMON_EVENT_ADDR_NEW, va, "10.0.0.2/24" }));
        const record *r = find_event(&(ev_match) { 0, NETMON_EVENT_ROUTE_NEW, va, NULL });
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_STRING_EQUAL(r->gateway, "10.0.0.1");
        CU_ASSERT_EQUAL(r->metric, 100);
        CU_ASSERT_EQUAL(r->route_family, AF_INET);
        /* Loopback is not watched by default: no events for it. */
        CU_ASSERT_EQUAL(count_events(0, NETMON_EVENT_LINK_NEW, 1), 0);
        CU_ASSERT_EQUAL(count_events(0, NETMON_EVENT_ADDR_NEW, 1), 0);

        CU_ASSERT_EQUAL(netmon_get_link(c.m, va, &l), 0);
        CU_ASSERT_STRING_EQUAL(l.name, "vA");
        CU_ASSERT_EQUAL(l.ifindex, va);
        CU_ASSERT_TRUE(l.flags & IFF_UP);
        CU_ASSERT_FALSE(l.flags & IFF_LOOPBACK);
        CU_ASSERT_EQUAL(l.mtu, 1500);
        CU_ASSERT_TRUE(l.watched);
        CU_ASSERT_EQUAL(netmon_get_link_by_name(c.m, "d0", &l), 0);
        CU_ASSERT_EQUAL(l.ifindex, d0);
        CU_ASSERT_FALSE(l.flags & IFF_UP);
        CU_ASSERT_EQUAL(netmon_get_link(c.m, 1, &l), 0);
        CU_ASSERT_TRUE(l.flags & IFF_LOOPBACK);
        CU_ASSERT_FALSE(l.watched);
        CU_ASSERT_EQUAL(netmon_get_link(c.m, 9999, &l), -ENODEV);
        CU_ASSERT_EQUAL(netmon_get_link_by_name(c.m, "nope", &l), -ENODEV);

        /* Iteration: ascending ifindex, every link once. */
        for (int i = 0; netmon_next_link(c.m, i, &l) >= 0; i = l.ifindex) {
                CU_ASSERT(l.ifindex > prev);
                prev = l.ifindex;
                n++;
        }
        CU_ASSERT_EQUAL(n, 5);

        CU_ASSERT_TRUE(has_address(&c, va, "10.0.0.2/24", &a));
        CU_ASSERT_EQUAL(a.family, AF_INET);
        CU_ASSERT_EQUAL(a.prefixlen, 24);
        CU_ASSERT_STRING_EQUAL(netmon_scope_to_string(a.scope), "global");
        CU_ASSERT_TRUE(netmon_address_is_usable(&a));
        CU_ASSERT_TRUE(has_address(&c, 1, "127.0.0.1/8", &a));
        CU_ASSERT_STRING_EQUAL(netmon_scope_to_string(a.scope), "host");
        CU_ASSERT_FALSE(netmon_address_is_usable(&a));

        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, va, AF_INET, &rt), 0);
        CU_ASSERT_STRING_EQUAL(rt.gateway_str, "10.0.0.1");
        CU_ASSERT_TRUE(rt.has_gateway);
        CU_ASSERT_EQUAL(rt.metric, 100);
        CU_ASSERT_EQUAL(rt.table, RT_TABLE_MAIN);
        CU_ASSERT_EQUAL(rt.ifindex, va);
        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, va, AF_INET6, NULL), -ENOENT);
        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, d0, AF_UNSPEC, NULL), -ENOENT);
        /* Only default routes are kept: not the connected 10.0.0.0/24. */
        CU_ASSERT_EQUAL(netmon_get_route(c.m, va, 1, &rt), -ENOENT);

        CU_ASSERT_TRUE(wait_reason(&c, va, NULL));
        CU_ASSERT_TRUE(wait_reason(&c, d0, "link down"));
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 1);
        CU_ASSERT_EQUAL(p.ifindex, va);
        CU_ASSERT_STRING_EQUAL(p.ifname, "vA");
        CU_ASSERT_STRING_EQUAL(p.address.str, "10.0.0.2/24");

        /* Ready fires once, also when more changes come in. */
        size_t mark = rec.n;
        SH("ip link set d0 mtu 1400");
        r = wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, d0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->changed, NETMON_LINK_CHANGED_MTU);
        CU_ASSERT_EQUAL(r->old_mtu, 1500);
        CU_ASSERT_EQUAL(r->mtu, 1400);
        CU_ASSERT_EQUAL(rec.n_ready, 1);

        stop(&c);
}

static void test_link_down_up(void) {
        ctx c = {};
        netmon_link_info l;
        const record *r;
        size_t mark;
        int va;

        fresh_netns();
        make_veth();
        va = ifindex_of("vA");
        start(&c);
        CU_ASSERT_FATAL(wait_reason(&c, va, NULL));

        mark = rec.n;
        SH("ip link set vA down");
        CU_ASSERT_TRUE(wait_reason(&c, va, "link down"));
        r = wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, va, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_TRUE(r->changed & NETMON_LINK_CHANGED_FLAGS);
        CU_ASSERT_TRUE(r->changed & NETMON_LINK_CHANGED_OPERSTATE);
        CU_ASSERT_TRUE(r->changed & NETMON_LINK_CHANGED_CARRIER);
        CU_ASSERT_EQUAL(r->old_operstate, NETMON_OPER_UP);
        CU_ASSERT_EQUAL(r->operstate, NETMON_OPER_DOWN);
        CU_ASSERT_TRUE(r->old_carrier);
        CU_ASSERT_FALSE(r->carrier);
        CU_ASSERT_STRING_EQUAL(netmon_oper_state_to_string(r->operstate), "down");
        /* IPv4 flushes the link's routes without a notification. */
        r = wait_event(&c, mark, NETMON_EVENT_ROUTE_DEL, va, NULL);
        CU_ASSERT_PTR_NOT_NULL(r);
        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, va, AF_INET, NULL), -ENOENT);
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, 0, NULL));

        mark = rec.n;
        SH("ip link set vA up");
        SH("ip route add default via 10.0.0.1 dev vA metric 100");
        CU_ASSERT_TRUE(wait_reason(&c, va, NULL));
        r = find_event(&(ev_match) { mark, NETMON_EVENT_LINK_CHANGED, va, NULL });
        CU_ASSERT_PTR_NOT_NULL(r);
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ROUTE_NEW, va, NULL));
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, va, "10.0.0.2/24"));

        /* The carrier of a veth follows its peer. */
        mark = rec.n;
        SH("ip link set vB down");
        CU_ASSERT_TRUE(wait_reason(&c, va, "no carrier"));
        r = wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, va, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_TRUE(r->changed & NETMON_LINK_CHANGED_CARRIER);
        CU_ASSERT_TRUE(r->old_carrier);
        CU_ASSERT_FALSE(r->carrier);
        CU_ASSERT_EQUAL(netmon_get_link(c.m, va, &l), 0);
        CU_ASSERT_TRUE(l.flags & IFF_UP);
        CU_ASSERT_FALSE(l.carrier);
        /* A route survives a carrier loss; the link is still not primary. */
        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, va, AF_INET, NULL), 0);
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, 0, NULL));

        mark = rec.n;
        SH("ip link set vB up");
        CU_ASSERT_TRUE(wait_reason(&c, va, NULL));
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, va, "10.0.0.2/24"));

        stop(&c);
}

static void test_address_del_add(void) {
        ctx c = {};
        const record *r;
        size_t mark;
        int va;

        fresh_netns();
        make_veth();
        va = ifindex_of("vA");
        start(&c);
        CU_ASSERT_FATAL(wait_reason(&c, va, NULL));

        mark = rec.n;
        SH("ip addr del 10.0.0.2/24 dev vA");
        r = wait_event(&c, mark, NETMON_EVENT_ADDR_DEL, va, "10.0.0.2/24");
        CU_ASSERT_PTR_NOT_NULL(r);
        CU_ASSERT_TRUE(wait_reason(&c, va, "no usable address"));
        CU_ASSERT_FALSE(has_address(&c, va, "10.0.0.2/24", NULL));
        /* Without an IPv4 address the kernel drops IPv4 routes silently. */
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ROUTE_DEL, va, NULL));

        mark = rec.n;
        SH("ip addr add 10.0.0.3/24 dev vA");
        r = wait_event(&c, mark, NETMON_EVENT_ADDR_NEW, va, "10.0.0.3/24");
        CU_ASSERT_PTR_NOT_NULL(r);
        CU_ASSERT_TRUE(wait_reason(&c, va, "no default route"));
        SH("ip route add default via 10.0.0.1 dev vA");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ROUTE_NEW, va, NULL));
        CU_ASSERT_TRUE(wait_reason(&c, va, NULL));
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, va, "10.0.0.3/24"));

        /* A link-scope address alone is not usable. */
        mark = rec.n;
        SH("ip addr add 169.254.7.7/16 dev vA scope link");
        SH("ip addr del 10.0.0.3/24 dev vA");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ADDR_DEL, va, "10.0.0.3/24"));
        CU_ASSERT_TRUE(has_address(&c, va, "169.254.7.7/16", NULL));
        CU_ASSERT_TRUE(wait_reason(&c, va, "no usable address"));

        stop(&c);
}

static void test_default_route_del_add(void) {
        ctx c = {};
        const record *r;
        size_t mark;
        int d1;

        fresh_netns();
        make_link("d1", "192.0.2.2/24", "192.0.2.1", 50);
        d1 = ifindex_of("d1");
        start(&c);
        CU_ASSERT_FATAL(wait_reason(&c, d1, NULL));

        mark = rec.n;
        SH("ip route del default via 192.0.2.1 dev d1");
        r = wait_event(&c, mark, NETMON_EVENT_ROUTE_DEL, d1, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_STRING_EQUAL(r->gateway, "192.0.2.1");
        CU_ASSERT_EQUAL(r->metric, 50);
        CU_ASSERT_TRUE(wait_reason(&c, d1, "no default route"));
        r = wait_primary(&c, mark, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->old_primary, d1);
        CU_ASSERT_STRING_EQUAL(r->old_primary_addr, "192.0.2.2/24");
        CU_ASSERT_STRING_EQUAL(r->new_primary_addr, "");

        /* Other routes make no events; the MTU change after them is the
         * barrier that proves their messages were processed. */
        mark = rec.n;
        SH("ip route add 198.51.100.0/24 via 192.0.2.1 dev d1");
        SH("ip route add default via 192.0.2.1 dev d1 table 100");
        SH("ip link set d1 mtu 1300");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, d1, NULL));
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_ROUTE_NEW, 0), 0);
        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, d1, AF_UNSPEC, NULL), -ENOENT);

        mark = rec.n;
        SH("ip route add default via 192.0.2.1 dev d1 metric 70");
        r = wait_event(&c, mark, NETMON_EVENT_ROUTE_NEW, d1, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->metric, 70);
        CU_ASSERT_TRUE(wait_reason(&c, d1, NULL));
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, d1, "192.0.2.2/24"));

        stop(&c);
}

static void test_rename(void) {
        ctx c = {};
        const record *r;
        netmon_link_info l;
        size_t mark;
        int va;

        fresh_netns();
        make_veth();
        va = ifindex_of("vA");
        start(&c);

        mark = rec.n;
        SH("ip link set vA down && ip link set vA name vRenamed && ip link set vRenamed up");
        for (;;) {
                r = wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, va, NULL);
                CU_ASSERT_PTR_NOT_NULL_FATAL(r);
                if (r->changed & NETMON_LINK_CHANGED_NAME)
                        break;
                mark = (size_t) (r - rec.ev) + 1;
        }
        CU_ASSERT_STRING_EQUAL(r->old_name, "vA");
        CU_ASSERT_STRING_EQUAL(r->name, "vRenamed");
        CU_ASSERT_EQUAL(r->ifindex, va);
        CU_ASSERT_EQUAL(netmon_get_link_by_name(c.m, "vA", &l), -ENODEV);
        CU_ASSERT_EQUAL(netmon_get_link_by_name(c.m, "vRenamed", &l), 0);
        CU_ASSERT_EQUAL(l.ifindex, va);

        stop(&c);
}

static void test_delete_primary(void) {
        ctx c = {};
        const record *r;
        netmon_primary p;
        size_t mark;
        int d1, d2;

        fresh_netns();
        make_link("d1", "192.0.2.2/24", "192.0.2.1", 10);
        make_link("d2", "198.51.100.2/24", "198.51.100.1", 20);
        d1 = ifindex_of("d1");
        d2 = ifindex_of("d2");
        start(&c);
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 1);
        CU_ASSERT_EQUAL(p.ifindex, d1);

        mark = rec.n;
        SH("ip link del d1");
        r = wait_event(&c, mark, NETMON_EVENT_LINK_DEL, d1, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_STRING_EQUAL(r->name, "d1");
        /* Callbacks see the committed state: the link is gone already. */
        CU_ASSERT_EQUAL(r->link_query, -ENODEV);
        CU_ASSERT_EQUAL(netmon_get_link(c.m, d1, NULL), -ENODEV);
        r = wait_primary(&c, mark, d2, "198.51.100.2/24");
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->old_primary, d1);
        CU_ASSERT_STRING_EQUAL(r->old_primary_name, "d1");
        CU_ASSERT_STRING_EQUAL(r->new_primary_name, "d2");
        CU_ASSERT_STRING_EQUAL(r->old_primary_addr, "192.0.2.2/24");

        mark = rec.n;
        SH("ip link del d2");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_LINK_DEL, d2, NULL));
        r = wait_primary(&c, mark, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->old_primary, d2);
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 0);
        CU_ASSERT_EQUAL(p.ifindex, 0);

        stop(&c);
}

static void test_mobility(void) {
        ctx c = {};
        const record *r;
        netmon_primary p;
        size_t mark;
        int d1, d2;

        fresh_netns();
        make_link("d1", "192.0.2.2/24", NULL, 100);
        make_link("d2", "198.51.100.2/24", NULL, 200);
        d1 = ifindex_of("d1");
        d2 = ifindex_of("d2");
        start(&c);
        r = find_primary(&(primary_match) { 0, d1, "192.0.2.2/24" });
        CU_ASSERT_PTR_NOT_NULL(r);
        CU_ASSERT_EQUAL(count_events(0, NETMON_EVENT_PRIMARY_CHANGED, 0), 1);

        /* The better route goes: the other link takes over. */
        mark = rec.n;
        SH("ip route del default dev d1");
        r = wait_primary(&c, mark, d2, "198.51.100.2/24");
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->old_primary, d1);
        CU_ASSERT_STRING_EQUAL(r->old_primary_addr, "192.0.2.2/24");
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_PRIMARY_CHANGED, 0), 1);

        /* Same link, new address: a mobility event of its own. */
        mark = rec.n;
        SH("ip addr add 203.0.113.7/24 dev d2");
        SH("ip addr del 198.51.100.2/24 dev d2");
        r = wait_primary(&c, mark, d2, "203.0.113.7/24");
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->old_primary, d2);
        CU_ASSERT_STRING_EQUAL(r->old_primary_addr, "198.51.100.2/24");
        /* Adding the second address did not move the primary address. */
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_PRIMARY_CHANGED, 0), 1);

        /* A better route comes back. */
        mark = rec.n;
        SH("ip route add default dev d1 metric 50");
        r = wait_primary(&c, mark, d1, "192.0.2.2/24");
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->old_primary, d2);
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 1);
        CU_ASSERT_EQUAL(p.ifindex, d1);

        /* IPv4 wins a metric tie against IPv6. */
        mark = rec.n;
        SH("ip -6 addr add 2001:db8:9::2/64 dev d2 nodad");
        SH("ip -6 route add default dev d2 metric 50");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ROUTE_NEW, d2, NULL));
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 1);
        CU_ASSERT_EQUAL(p.ifindex, d1);
        /* A better IPv6 route moves the primary; its address stays IPv4,
         * as d2 also has an IPv4 default route. */
        SH("ip -6 route add default dev d2 metric 40");
        r = wait_primary(&c, mark, d2, "203.0.113.7/24");
        CU_ASSERT_PTR_NOT_NULL(r);

        stop(&c);
}

static int send_frames(int ifindex, unsigned n, size_t len) {
        _cleanup_close_ int fd = -1;
        unsigned char frame[1500] = {};
        struct sockaddr_ll sll = {
                .sll_family = AF_PACKET,
                .sll_ifindex = ifindex,
                .sll_halen = ETH_ALEN,
                .sll_addr = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
        };

        if (len > sizeof(frame) || len < ETH_HLEN)
                return -EINVAL;
        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        memset(frame, 0xff, ETH_ALEN);
        frame[6] = 0x02; /* locally administered source */
        frame[12] = 0x88; /* local experimental ethertype */
        frame[13] = 0xb5;
        for (unsigned i = 0; i < n; i++)
                if (sendto(fd, frame, len, 0, (struct sockaddr *) &sll, sizeof(sll)) != (ssize_t) len)
                        return -errno;
        return 0;
}

typedef struct rx_match {
        int ifindex;
        uint64_t packets, bytes;
} rx_match;

static bool pred_rx(ctx *c, const void *arg) {
        const rx_match *q = arg;
        netmon_stats s;

        return netmon_get_stats(c->m, q->ifindex, &s) == 0 && s.rx_packets >= q->packets &&
               s.rx_bytes >= q->bytes;
}

static void test_statistics_no_spurious_events(void) {
        ctx c = {};
        netmon_stats a0, a1, b0;
        const record *r;
        size_t mark;
        int va, vb;

        fresh_netns();
        make_veth();
        va = ifindex_of("vA");
        vb = ifindex_of("vB");
        start(&c);
        /* Let both ends settle (oper state follows carrier asynchronously). */
        CU_ASSERT_FATAL(wait_reason(&c, va, NULL));
        CU_ASSERT_FATAL(wait_oper(&c, vb, NETMON_OPER_UP));

        CU_ASSERT_EQUAL_FATAL(netmon_get_stats(c.m, va, &a0), 0);
        CU_ASSERT_EQUAL_FATAL(netmon_get_stats(c.m, vb, &b0), 0);
        CU_ASSERT_EQUAL(netmon_get_stats(c.m, 9999, &a1), -ENODEV);

        mark = rec.n;
        CU_ASSERT_EQUAL_FATAL(send_frames(va, 50, 200), 0);
        CU_ASSERT_EQUAL_FATAL(netmon_get_stats(c.m, va, &a1), 0);
        CU_ASSERT(a1.tx_packets >= a0.tx_packets + 50);
        CU_ASSERT(a1.tx_bytes >= a0.tx_bytes + 50 * 200);
        CU_ASSERT(run_until(&c, pred_rx,
                            &(rx_match) { vb, b0.rx_packets + 50, b0.rx_bytes + 50 * 200 }));

        /* Messages that carry the new counters but no relevant change. */
        SH("ip link set vA txqueuelen 500");
        SH("ip link set vA alias uplink");
        CU_ASSERT_EQUAL(send_frames(va, 10, 100), 0);
        SH("ip link set vA txqueuelen 600");
        /* The barrier: netlink is ordered, so once the MTU change is seen
         * every message before it has been processed. */
        SH("ip link set vA mtu 1400");
        r = wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, va, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(r->changed, NETMON_LINK_CHANGED_MTU);
        CU_ASSERT_EQUAL(r->mtu, 1400);
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_LINK_CHANGED, va), 1);
        run_idle(&c);
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_LINK_CHANGED, va), 1);
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_PRIMARY_CHANGED, 0), 0);

        stop(&c);
}

static void test_ipv6(void) {
        ctx c = {};
        netmon_address a;
        netmon_route rt;
        netmon_primary p;
        const record *r;
        size_t mark;
        int d6, va;

        fresh_netns();
        make_link("d6", NULL, NULL, 0);
        SH("ip -6 addr add 2001:db8:1::10/64 dev d6 nodad");
        SH("ip -6 route add default via 2001:db8:1::1 dev d6 metric 300");
        d6 = ifindex_of("d6");
        start(&c);

        CU_ASSERT_TRUE(wait_reason(&c, d6, NULL));
        CU_ASSERT_TRUE(has_address(&c, d6, "2001:db8:1::10/64", &a));
        CU_ASSERT_EQUAL(a.family, AF_INET6);
        CU_ASSERT_EQUAL(a.prefixlen, 64);
        CU_ASSERT_STRING_EQUAL(netmon_scope_to_string(a.scope), "global");
        CU_ASSERT_FALSE(a.flags & IFA_F_TENTATIVE);
        CU_ASSERT_TRUE(netmon_address_is_usable(&a));
        CU_ASSERT_EQUAL(n_addresses(&c, d6, AF_INET), 0);
        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, d6, AF_INET6, &rt), 0);
        CU_ASSERT_STRING_EQUAL(rt.gateway_str, "2001:db8:1::1");
        CU_ASSERT_EQUAL(rt.metric, 300);
        CU_ASSERT_EQUAL(rt.family, AF_INET6);
        CU_ASSERT_EQUAL(netmon_get_default_route(c.m, d6, AF_INET, NULL), -ENOENT);
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 1);
        CU_ASSERT_EQUAL(p.ifindex, d6);
        CU_ASSERT_STRING_EQUAL(p.address.str, "2001:db8:1::10/64");
        /* A deprecated address is usable, but not preferred as primary. */
        mark = rec.n;
        SH("ip -6 addr add 2001:db8:1::2/64 dev d6 nodad preferred_lft 0");
        r = wait_event(&c, mark, NETMON_EVENT_ADDR_NEW, d6, "2001:db8:1::2/64");
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_TRUE(r->addr_flags & IFA_F_DEPRECATED);
        CU_ASSERT_TRUE(has_address(&c, d6, "2001:db8:1::2/64", &a));
        CU_ASSERT_TRUE(netmon_address_is_usable(&a));
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 1);
        CU_ASSERT_STRING_EQUAL(p.address.str, "2001:db8:1::10/64");
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_PRIMARY_CHANGED, 0), 0);

        /* Link-local addresses are never usable. */
        for (size_t i = 0; netmon_get_address(c.m, d6, i, &a) == 0; i++)
                if (a.scope == RT_SCOPE_LINK) {
                        CU_ASSERT_STRING_EQUAL(netmon_scope_to_string(a.scope), "link");
                        CU_ASSERT_FALSE(netmon_address_is_usable(&a));
                }

        /* Without carrier, duplicate address detection cannot run and the
         * address stays tentative: present, but not usable. */
        SH("ip link add vA type veth peer name vB && ip link set vA up");
        va = ifindex_of("vA");
        /* Shorter DAD, only to stay well inside the hang guard. */
        SH("sysctl -qw net.ipv6.neigh.vA.retrans_time_ms=200 "
           "net.ipv6.conf.vA.router_solicitation_delay=0 || true");
        SH("ip -6 route add default dev vA metric 100");
        mark = rec.n;
        SH("ip -6 addr add 2001:db8:2::5/64 dev vA");
        r = wait_event(&c, mark, NETMON_EVENT_ADDR_NEW, va, "2001:db8:2::5/64");
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_TRUE(r->addr_flags & IFA_F_TENTATIVE);
        CU_ASSERT_TRUE(has_address(&c, va, "2001:db8:2::5/64", &a));
        CU_ASSERT_FALSE(netmon_address_is_usable(&a));

        /* Carrier comes, DAD completes: the address changes to usable. */
        mark = rec.n;
        SH("ip link set vB up");
        r = wait_event(&c, mark, NETMON_EVENT_ADDR_CHANGED, va, "2001:db8:2::5/64");
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_TRUE(r->old_addr_flags & IFA_F_TENTATIVE);
        CU_ASSERT_FALSE(r->addr_flags & IFA_F_TENTATIVE);
        CU_ASSERT_TRUE(wait_reason(&c, va, NULL));
        /* Its IPv6 route (metric 100) beats d6's (300). */
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, va, "2001:db8:2::5/64"));

        mark = rec.n;
        SH("ip -6 addr del 2001:db8:2::5/64 dev vA");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ADDR_DEL, va, "2001:db8:2::5/64"));
        CU_ASSERT_TRUE(wait_reason(&c, va, "no usable address"));
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, d6, "2001:db8:1::10/64"));

        stop(&c);
}

typedef struct count_match {
        int ifindex;
        size_t n;
} count_match;

static bool pred_n_addresses(ctx *c, const void *arg) {
        const count_match *q = arg;
        return n_addresses(c, q->ifindex, AF_INET) == q->n && netmon_get_n_resyncs(c->m) > 0;
}

static void test_overrun_resync(void) {
        ctx c = {};
        size_t mark, n_new = 0, n_dup = 0;
        int d1;

        fresh_netns();
        make_link("d1", NULL, NULL, 0);
        d1 = ifindex_of("d1");
        /* A tiny receive buffer, and the loop does not run while 300
         * addresses (and their local routes) are added: the socket
         * overflows. */
        start_full(&c, NULL, NULL, 4096);
        CU_ASSERT_EQUAL(netmon_get_n_resyncs(c.m), 0);

        mark = rec.n;
        SH("i=0; while [ $i -lt 300 ]; do echo \"address add 10.9.$((i / 200)).$((i %% 200 + 1))/32 dev d1\"; "
           "i=$((i + 1)); done | ip -batch -");
        CU_ASSERT_TRUE(run_until(&c, pred_n_addresses, &(count_match) { d1, 300 }));
        CU_ASSERT(netmon_get_n_resyncs(c.m) >= 1);

        /* Each address was announced exactly once, from messages or from the
         * resync's comparison, never lost and never twice. */
        for (size_t i = mark; i < rec.n; i++)
                if (rec.ev[i].type == NETMON_EVENT_ADDR_NEW && rec.ev[i].ifindex == d1) {
                        n_new++;
                        for (size_t j = i + 1; j < rec.n; j++)
                                if (rec.ev[j].type == NETMON_EVENT_ADDR_NEW &&
                                    streq(rec.ev[i].addr, rec.ev[j].addr))
                                        n_dup++;
                }
        CU_ASSERT_EQUAL(n_new, 300);
        CU_ASSERT_EQUAL(n_dup, 0);

        /* And it keeps following changes afterwards. */
        mark = rec.n;
        SH("ip addr del 10.9.0.1/32 dev d1");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ADDR_DEL, d1, "10.9.0.1/32"));

        stop(&c);
}

static void test_filter_and_loopback(void) {
        char *patterns[] = { (char *) "wan*", (char *) "lo", NULL };
        ctx c = {};
        netmon_link_info l;
        netmon_primary p;
        size_t mark;
        int wan, other;

        fresh_netns();
        make_link("wan0", "192.0.2.2/24", NULL, 100);
        make_link("other0", "198.51.100.2/24", NULL, 10);
        SH("ip addr add 203.0.113.1/32 dev lo");
        SH("ip route add default dev lo metric 1");
        wan = ifindex_of("wan0");
        other = ifindex_of("other0");

        start_full(&c, netmon_filter_patterns, patterns, 0);
        CU_ASSERT_PTR_NOT_NULL(find_event(&(ev_match) { 0, NETMON_EVENT_LINK_NEW, wan, NULL }));
        CU_ASSERT_PTR_NOT_NULL(find_event(&(ev_match) { 0, NETMON_EVENT_LINK_NEW, 1, NULL }));
        CU_ASSERT_EQUAL(count_events(0, NETMON_EVENT_LINK_NEW, other), 0);
        CU_ASSERT_EQUAL(count_events(0, NETMON_EVENT_ADDR_NEW, other), 0);
        CU_ASSERT_EQUAL(netmon_get_link(c.m, other, &l), 0);
        CU_ASSERT_FALSE(l.watched);
        CU_ASSERT_EQUAL(netmon_get_link(c.m, 1, &l), 0);
        CU_ASSERT_TRUE(l.watched);

        /* Loopback has the best route and is watched, other0 the second
         * best but is not watched: wan0 is primary. */
        CU_ASSERT_EQUAL(netmon_get_primary(c.m, &p), 1);
        CU_ASSERT_EQUAL(p.ifindex, wan);
        CU_ASSERT_STRING_EQUAL(p.address.str, "192.0.2.2/24");

        mark = rec.n;
        SH("ip link set other0 mtu 1300");
        SH("ip link set wan0 mtu 1300");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, wan, NULL));
        CU_ASSERT_EQUAL(count_events(mark, NETMON_EVENT_LINK_CHANGED, other), 0);

        /* Renamed into the watched set: the rename is reported, and what the
         * link has arrives as new. Taken down first, it lost its route;
         * a new one makes it primary. */
        mark = rec.n;
        SH("ip link set other0 down && ip link set other0 name wan1 && ip link set wan1 up");
        const record *r = wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, other, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_TRUE(r->changed & NETMON_LINK_CHANGED_NAME);
        CU_ASSERT_STRING_EQUAL(r->old_name, "other0");
        CU_ASSERT_EQUAL(netmon_get_link(c.m, other, &l), 0);
        CU_ASSERT_TRUE(l.watched);
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ADDR_NEW, other, "198.51.100.2/24"));
        SH("ip route add default dev wan1 metric 10");
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, other, "198.51.100.2/24"));

        /* Renamed out of it: its address goes away with the rename (the
         * link keeps it), and it stops being primary. */
        mark = rec.n;
        SH("ip link set wan1 down && ip link set wan1 name zz1 && ip link set zz1 up");
        r = wait_event(&c, mark, NETMON_EVENT_LINK_CHANGED, other, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_STRING_EQUAL(r->name, "zz1");
        CU_ASSERT_PTR_NOT_NULL(wait_event(&c, mark, NETMON_EVENT_ADDR_DEL, other, "198.51.100.2/24"));
        CU_ASSERT_TRUE(has_address(&c, other, "198.51.100.2/24", NULL));
        CU_ASSERT_PTR_NOT_NULL(wait_primary(&c, mark, wan, "192.0.2.2/24"));

        stop(&c);
}

static void test_strings(void) {
        CU_ASSERT_STRING_EQUAL(netmon_oper_state_to_string(NETMON_OPER_UP), "up");
        CU_ASSERT_STRING_EQUAL(netmon_oper_state_to_string(NETMON_OPER_DORMANT), "dormant");
        CU_ASSERT_STRING_EQUAL(netmon_oper_state_to_string(NETMON_OPER_LOWERLAYERDOWN), "lowerlayerdown");
        CU_ASSERT_STRING_EQUAL(netmon_oper_state_to_string(NETMON_OPER_UNKNOWN), "unknown");
        CU_ASSERT_PTR_NULL(netmon_oper_state_to_string(7));
        CU_ASSERT_PTR_NULL(netmon_oper_state_to_string(-1));
        CU_ASSERT_STRING_EQUAL(netmon_scope_to_string(RT_SCOPE_LINK), "link");
        CU_ASSERT_PTR_NULL(netmon_scope_to_string(17));
        CU_ASSERT_STRING_EQUAL(netmon_event_type_to_string(NETMON_EVENT_PRIMARY_CHANGED), "primary-changed");
        CU_ASSERT_PTR_NULL(netmon_event_type_to_string(_NETMON_EVENT_MAX));
        CU_ASSERT_FALSE(netmon_address_is_usable(NULL));
        CU_ASSERT_FALSE(netmon_address_is_usable(&(netmon_address) { .family = AF_INET6,
                                                                     .flags = IFA_F_DADFAILED }));
        CU_ASSERT_TRUE(netmon_address_is_usable(&(netmon_address) { .family = AF_INET6,
                                                                    .flags = IFA_F_DEPRECATED }));
        CU_ASSERT_EQUAL(netmon_new(NULL, NULL), -EINVAL);
        CU_ASSERT_PTR_NULL(netmon_free(NULL));
}

static int suite_init(void) {
        /* Never touch the host's interfaces: fail the whole suite if a
         * private namespace cannot be had. */
        if (unshare(CLONE_NEWNET) < 0) {
                fprintf(stderr, "unshare(CLONE_NEWNET): %m\n");
                return -1;
        }
        return 0;
}

static CU_TestInfo tests[] = {
        { "initial dump", test_initial_dump },
        { "link down/up and peer carrier", test_link_down_up },
        { "address removed/added", test_address_del_add },
        { "default route removed/added", test_default_route_del_add },
        { "rename", test_rename },
        { "delete primary", test_delete_primary },
        { "mobility", test_mobility },
        { "statistics, no spurious events", test_statistics_no_spurious_events },
        { "IPv6 and tentative addresses", test_ipv6 },
        { "overrun resync", test_overrun_resync },
        { "filter and loopback", test_filter_and_loopback },
        { "strings", test_strings },
        CU_TEST_INFO_NULL,
};

TESTS_MAIN_FIXTURE("netmon", tests, suite_init, NULL)
