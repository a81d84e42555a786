/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "netmon.h"

/* <net/if.h> stops at the BSD flags; <linux/if.h> clashes with it. */
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif
#ifndef IFF_DORMANT
#define IFF_DORMANT 0x20000
#endif

#define NETMON_DEFAULT_RCVBUF (1024 * 1024)
/* Datagrams read per wakeup before yielding to other event sources; epoll
 * is level-triggered, so the rest is read on the next iteration. */
#define NETMON_MAX_BATCH 256
#define NETMON_RETRY_USEC (1000 * 1000)

/* One version of a link: links carry two, the committed one (what queries
 * and callbacks see) and the one being built from the caches, so events can
 * be computed by comparing the two without copying. */
typedef struct link_version {
        bool present;
        netmon_link_info info;
        netmon_address *addrs;
        size_t n_addrs, n_addrs_allocated;
        netmon_route *routes;
        size_t n_routes, n_routes_allocated;
} link_version;

typedef struct link_state {
        int ifindex;
        unsigned cur;
        link_version v[2];
} link_state;

struct netmon {
        sd_event *event;
        sd_event_source *io_source;
        sd_event_source *initial_source;
        sd_event_source *retry_source;

        struct nl_sock *evsock;   /* subscribed to the multicast groups */
        struct nl_sock *syncsock; /* dumps and requests, never subscribed */
        struct nl_cache *link_cache, *addr_cache, *route_cache;
        struct nl_cache *parse_target;

        link_state *links; /* sorted by ifindex */
        size_t n_links, n_links_allocated;

        netmon_primary primary;

        netmon_callback_t cb;
        void *userdata;
        netmon_ready_callback_t ready_cb;
        void *ready_userdata;
        netmon_filter_t filter;
        void *filter_userdata;

        size_t rcvbuf;
        uint64_t n_resyncs;
        bool started;
        bool ready;
        bool dirty;        /* caches changed since the last reconcile */
        bool routes_stale; /* the kernel may have dropped IPv4 routes silently */
        bool need_resync;
};

static int nlerr_to_errno(int nlerr) {
        switch (abs(nlerr)) {
        case 0:
                return 0;
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_AGAIN:
                return -EAGAIN;
        case NLE_INTR:
        case NLE_DUMP_INTR:
                return -EINTR;
        case NLE_BAD_SOCK:
                return -EBADF;
        case NLE_EXIST:
                return -EEXIST;
        case NLE_INVAL:
                return -EINVAL;
        case NLE_RANGE:
                return -ERANGE;
        case NLE_OPNOTSUPP:
                return -EOPNOTSUPP;
        case NLE_AF_NOSUPPORT:
                return -EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:
                return -ENOENT;
        case NLE_NODEV:
                return -ENODEV;
        case NLE_PERM:
                return -EPERM;
        case NLE_NOACCESS:
                return -EACCES;
        case NLE_BUSY:
                return -EBUSY;
        case NLE_MSG_TRUNC:
        case NLE_MSGSIZE:
                return -EMSGSIZE;
        case NLE_PROTO_MISMATCH:
                return -EPROTONOSUPPORT;
        default:
                return -EIO;
        }
}

static const char *const oper_state_names[] = {
        [NETMON_OPER_UNKNOWN] = "unknown",
        [NETMON_OPER_NOTPRESENT] = "notpresent",
        [NETMON_OPER_DOWN] = "down",
        [NETMON_OPER_LOWERLAYERDOWN] = "lowerlayerdown",
        [NETMON_OPER_TESTING] = "testing",
        [NETMON_OPER_DORMANT] = "dormant",
        [NETMON_OPER_UP] = "up",
};

const char *netmon_oper_state_to_string(int state) {
        if (state < 0 || (size_t) state >= ELEMENTSOF(oper_state_names))
                return NULL;
        return oper_state_names[state];
}

const char *netmon_scope_to_string(int scope) {
        switch (scope) {
        case RT_SCOPE_UNIVERSE:
                return "global";
        case RT_SCOPE_SITE:
                return "site";
        case RT_SCOPE_LINK:
                return "link";
        case RT_SCOPE_HOST:
                return "host";
        case RT_SCOPE_NOWHERE:
                return "nowhere";
        default:
                return NULL;
        }
}

static const char *const event_type_names[_NETMON_EVENT_MAX] = {
        [NETMON_EVENT_LINK_NEW] = "link-new",
        [NETMON_EVENT_LINK_CHANGED] = "link-changed",
        [NETMON_EVENT_LINK_DEL] = "link-del",
        [NETMON_EVENT_ADDR_NEW] = "addr-new",
        [NETMON_EVENT_ADDR_CHANGED] = "addr-changed",
        [NETMON_EVENT_ADDR_DEL] = "addr-del",
        [NETMON_EVENT_ROUTE_NEW] = "route-new",
        [NETMON_EVENT_ROUTE_DEL] = "route-del",
        [NETMON_EVENT_PRIMARY_CHANGED] = "primary-changed",
};

const char *netmon_event_type_to_string(netmon_event_type type) {
        if ((unsigned) type >= ELEMENTSOF(event_type_names))
                return NULL;
        return event_type_names[type];
}

bool netmon_address_is_usable(const netmon_address *a) {
        if (!a || (a->family != AF_INET && a->family != AF_INET6))
                return false;
        if (a->scope != RT_SCOPE_UNIVERSE)
                return false;
        return !(a->flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED));
}

bool netmon_filter_patterns(const netmon_link_info *link, void *userdata) {
        char **patterns = userdata;

        if (!link || !patterns)
                return false;
        for (char **p = patterns; *p; p++)
                if (fnmatch(*p, link->name, 0) == 0)
                        return true;
        return false;
}

/* --- link table ---------------------------------------------------------- */

/* Index of the link, or of where it would be inserted. */
static size_t link_search(netmon *m, int ifindex, bool *ret_found) {
        size_t lo = 0, hi = m->n_links;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (m->links[mid].ifindex == ifindex) {
                        *ret_found = true;
                        return mid;
                }
                if (m->links[mid].ifindex < ifindex)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

static link_state *link_find(netmon *m, int ifindex) {
        bool found;
        size_t i = link_search(m, ifindex, &found);

        return found ? &m->links[i] : NULL;
}

static link_version *link_committed(netmon *m, int ifindex) {
        link_state *l = link_find(m, ifindex);

        if (!l || !l->v[l->cur].present)
                return NULL;
        return &l->v[l->cur];
}

static link_state *link_find_or_insert(netmon *m, int ifindex) {
        bool found;
        size_t i = link_search(m, ifindex, &found);

        if (found)
                return &m->links[i];

        if (m->n_links == m->n_links_allocated) {
                size_t n = MAX(m->n_links_allocated * 2, (size_t) 8);
                link_state *p = reallocarray(m->links, n, sizeof(*p));

                if (!p)
                        return NULL;
                m->links = p;
                m->n_links_allocated = n;
        }
        memmove(m->links + i + 1, m->links + i, (m->n_links - i) * sizeof(*m->links));
        m->links[i] = (link_state) { .ifindex = ifindex };
        m->n_links++;
        return &m->links[i];
}

static void link_state_done(link_state *l) {
        for (size_t i = 0; i < ELEMENTSOF(l->v); i++) {
                free(l->v[i].addrs);
                free(l->v[i].routes);
        }
}

static int grow(void **p, size_t *allocated, size_t need, size_t size) {
        size_t n;
        void *q;

        if (need <= *allocated)
                return 0;
        n = MAX(need, MAX(*allocated * 2, (size_t) 4));
        q = reallocarray(*p, n, size);
        if (!q)
                return -ENOMEM;
        *p = q;
        *allocated = n;
        return 0;
}

/* --- converting libnl objects ------------------------------------------------ */

static bool in_addr_from_nl(struct nl_addr *a, int family, netmon_in_addr *ret) {
        size_t len = family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);

        if (!a || nl_addr_get_family(a) != family || nl_addr_get_len(a) != len)
                return false;
        memset(ret, 0, sizeof(*ret));
        memcpy(ret, nl_addr_get_binary_addr(a), len);
        return true;
}

static void format_in_addr(int family, const netmon_in_addr *a, char *buf, size_t n) {
        if (!inet_ntop(family, a, buf, n))
                buf[0] = '\0';
}

static void link_info_from_nl(struct rtnl_link *lk, netmon_link_info *ret) {
        const char *name = rtnl_link_get_name(lk);
        unsigned flags = rtnl_link_get_flags(lk);
        uint8_t operstate = rtnl_link_get_operstate(lk);

        ret->ifindex = rtnl_link_get_ifindex(lk);
        snprintf(ret->name, sizeof(ret->name), "%s", name ?: "");
        ret->operstate = operstate < ELEMENTSOF(oper_state_names) ? operstate : NETMON_OPER_UNKNOWN;
        ret->flags = flags;
        ret->mtu = rtnl_link_get_mtu(lk);
        /* IFF_LOWER_UP is only reported while the link is up; IFLA_CARRIER
         * is the carrier itself. */
        ret->carrier = rtnl_link_get_carrier(lk) || (flags & IFF_LOWER_UP);
}

static bool address_from_nl(struct rtnl_addr *a, netmon_address *ret) {
        int family = rtnl_addr_get_family(a);
        size_t l;

        if (family != AF_INET && family != AF_INET6)
                return false;
        *ret = (netmon_address) {
                .ifindex = rtnl_addr_get_ifindex(a),
                .family = family,
                .prefixlen = (uint8_t) rtnl_addr_get_prefixlen(a),
                .scope = (uint8_t) rtnl_addr_get_scope(a),
                .flags = rtnl_addr_get_flags(a),
        };
        if (!in_addr_from_nl(rtnl_addr_get_local(a), family, &ret->addr))
                return false;
        format_in_addr(family, &ret->addr, ret->str, sizeof(ret->str));
        l = strlen(ret->str);
        snprintf(ret->str + l, sizeof(ret->str) - l, "/%u", ret->prefixlen);
        return true;
}

/* Default routes of the main table only: that is what decides where traffic
 * to the domain goes; other routes are dropped before they reach a cache. */
static bool route_is_relevant(int family, unsigned dst_len, unsigned src_len, uint32_t table,
                              unsigned type) {
        return (family == AF_INET || family == AF_INET6) && dst_len == 0 && src_len == 0 &&
               table == RT_TABLE_MAIN && type == RTN_UNICAST;
}

static bool route_object_is_relevant(struct rtnl_route *r) {
        struct nl_addr *dst = rtnl_route_get_dst(r), *src = rtnl_route_get_src(r);

        return route_is_relevant(rtnl_route_get_family(r), dst ? nl_addr_get_prefixlen(dst) : 0,
                                 src ? nl_addr_get_prefixlen(src) : 0, rtnl_route_get_table(r),
                                 rtnl_route_get_type(r));
}

static void prune_routes(netmon *m) {
        struct nl_object *o, *next;

        for (o = nl_cache_get_first(m->route_cache); o; o = next) {
                next = nl_cache_get_next(o);
                if (!route_object_is_relevant((struct rtnl_route *) o))
                        nl_cache_remove(o);
        }
}

/* --- events ---------------------------------------------------------------- */

static void emit(netmon *m, const netmon_event *ev) {
        if (m->cb)
                m->cb(m, ev, m->userdata);
}

static void emit_simple(netmon *m, netmon_event_type type, const link_version *v,
                        const netmon_address *a, const netmon_route *r) {
        netmon_event ev = {
                .type = type,
                .ifindex = v->info.ifindex,
                .link = &v->info,
                .address = a,
                .route = r,
        };
        emit(m, &ev);
}

static bool address_same(const netmon_address *a, const netmon_address *b) {
        return a->family == b->family && a->prefixlen == b->prefixlen &&
               memcmp(&a->addr, &b->addr, sizeof(a->addr)) == 0;
}

/* Flags whose change matters to a consumer; lifetimes and the like are not
 * even stored. */
#define ADDR_FLAGS_RELEVANT \
        (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_OPTIMISTIC | IFA_F_SECONDARY | \
         IFA_F_PERMANENT)

static const netmon_address *address_find(const link_version *v, const netmon_address *a) {
        for (size_t i = 0; i < v->n_addrs; i++)
                if (address_same(&v->addrs[i], a))
                        return &v->addrs[i];
        return NULL;
}

static bool route_same(const netmon_route *a, const netmon_route *b) {
        return a->family == b->family && a->metric == b->metric && a->table == b->table &&
               a->has_gateway == b->has_gateway &&
               memcmp(&a->gateway, &b->gateway, sizeof(a->gateway)) == 0;
}

static bool route_find(const link_version *v, const netmon_route *r) {
        for (size_t i = 0; i < v->n_routes; i++)
                if (route_same(&v->routes[i], r))
                        return true;
        return false;
}

#define LINK_FLAGS_RELEVANT (IFF_UP | IFF_RUNNING | IFF_LOWER_UP | IFF_DORMANT)

static unsigned link_diff(const netmon_link_info *a, const netmon_link_info *b) {
        unsigned changed = 0;

        if (a->operstate != b->operstate)
                changed |= NETMON_LINK_CHANGED_OPERSTATE;
        if (a->carrier != b->carrier)
                changed |= NETMON_LINK_CHANGED_CARRIER;
        if ((a->flags ^ b->flags) & LINK_FLAGS_RELEVANT)
                changed |= NETMON_LINK_CHANGED_FLAGS;
        if (a->mtu != b->mtu)
                changed |= NETMON_LINK_CHANGED_MTU;
        if (!streq(a->name, b->name))
                changed |= NETMON_LINK_CHANGED_NAME;
        return changed;
}

static void emit_link(netmon *m, const link_version *old, const link_version *new) {
        if (!old->present && !new->present)
                return;

        if (!old->present) {
                if (!new->info.watched)
                        return;
                emit_simple(m, NETMON_EVENT_LINK_NEW, new, NULL, NULL);
                for (size_t i = 0; i < new->n_addrs; i++)
                        emit_simple(m, NETMON_EVENT_ADDR_NEW, new, &new->addrs[i], NULL);
                for (size_t i = 0; i < new->n_routes; i++)
                        emit_simple(m, NETMON_EVENT_ROUTE_NEW, new, NULL, &new->routes[i]);
                return;
        }

        if (!new->present) {
                if (!old->info.watched)
                        return;
                for (size_t i = 0; i < old->n_routes; i++)
                        emit_simple(m, NETMON_EVENT_ROUTE_DEL, old, NULL, &old->routes[i]);
                for (size_t i = 0; i < old->n_addrs; i++)
                        emit_simple(m, NETMON_EVENT_ADDR_DEL, old, &old->addrs[i], NULL);
                emit_simple(m, NETMON_EVENT_LINK_DEL, old, NULL, NULL);
                return;
        }

        unsigned changed = link_diff(&old->info, &new->info);
        /* A rename can move a link into or out of the watched set: the rename
         * itself is reported to whoever watched it on either side. */
        if (changed != 0 && (old->info.watched || new->info.watched)) {
                netmon_event ev = {
                        .type = NETMON_EVENT_LINK_CHANGED,
                        .ifindex = new->info.ifindex,
                        .link = &new->info,
                        .old_link = &old->info,
                        .changed = changed,
                };
                emit(m, &ev);
        }

        /* Compare what the consumer was told with what it should know now:
         * a link renamed into the watched set brings its addresses and
         * routes as new, one renamed out of it takes them away. */
        static const link_version nothing = {};
        const link_version *told = old->info.watched ? old : &nothing;
        const link_version *now = new->info.watched ? new : &nothing;

        for (size_t i = 0; i < told->n_routes; i++)
                if (!route_find(now, &told->routes[i]))
                        emit_simple(m, NETMON_EVENT_ROUTE_DEL, new, NULL, &told->routes[i]);
        for (size_t i = 0; i < told->n_addrs; i++)
                if (!address_find(now, &told->addrs[i]))
                        emit_simple(m, NETMON_EVENT_ADDR_DEL, new, &told->addrs[i], NULL);
        for (size_t i = 0; i < now->n_addrs; i++) {
                const netmon_address *a = &now->addrs[i], *o = address_find(told, a);

                if (!o)
                        emit_simple(m, NETMON_EVENT_ADDR_NEW, new, a, NULL);
                else if (o->scope != a->scope || ((o->flags ^ a->flags) & ADDR_FLAGS_RELEVANT)) {
                        netmon_event ev = {
                                .type = NETMON_EVENT_ADDR_CHANGED,
                                .ifindex = new->info.ifindex,
                                .link = &new->info,
                                .address = a,
                                .old_address = o,
                        };
                        emit(m, &ev);
                }
        }
        for (size_t i = 0; i < now->n_routes; i++)
                if (!route_find(told, &now->routes[i]))
                        emit_simple(m, NETMON_EVENT_ROUTE_NEW, new, NULL, &now->routes[i]);
}

/* --- derived state ------------------------------------------------------------- */

static const char *link_layer_reason(const netmon_link_info *info) {
        if (!(info->flags & IFF_UP) || info->operstate == NETMON_OPER_NOTPRESENT)
                return "link down";
        if (!info->carrier || info->operstate == NETMON_OPER_DOWN ||
            info->operstate == NETMON_OPER_LOWERLAYERDOWN)
                return "no carrier";
        if (info->operstate == NETMON_OPER_DORMANT || info->operstate == NETMON_OPER_TESTING)
                return "link dormant";
        return NULL;
}

static bool version_has_usable_address(const link_version *v, int family) {
        for (size_t i = 0; i < v->n_addrs; i++)
                if (v->addrs[i].family == family && netmon_address_is_usable(&v->addrs[i]))
                        return true;
        return false;
}

static bool version_has_route(const link_version *v, int family) {
        for (size_t i = 0; i < v->n_routes; i++)
                if (v->routes[i].family == family)
                        return true;
        return false;
}

/* A family is usable on a link when the link layer is fine and the link has
 * both a usable address and a default route of that family. */
static bool version_family_usable(const link_version *v, int family) {
        return !link_layer_reason(&v->info) && version_has_usable_address(v, family) &&
               version_has_route(v, family);
}

static const char *version_reason(const link_version *v) {
        const char *r = link_layer_reason(&v->info);

        if (r)
                return r;
        if (!version_has_usable_address(v, AF_INET) && !version_has_usable_address(v, AF_INET6))
                return "no usable address";
        if (!version_family_usable(v, AF_INET) && !version_family_usable(v, AF_INET6))
                return "no default route";
        return NULL;
}

/* Lower is better: deprecated addresses and IPv4 secondaries / IPv6
 * temporary addresses (the same flag bit) only when nothing else is left. */
static unsigned address_rank(const netmon_address *a) {
        return ((a->flags & IFA_F_DEPRECATED) ? 2 : 0) + ((a->flags & IFA_F_SECONDARY) ? 1 : 0);
}

static void pick_address(const link_version *v, int family, const netmon_address *current,
                         netmon_address *ret) {
        const netmon_address *best = NULL;

        for (size_t i = 0; i < v->n_addrs; i++) {
                const netmon_address *a = &v->addrs[i];

                if (a->family != family || !netmon_address_is_usable(a))
                        continue;
                if (!best || address_rank(a) < address_rank(best) ||
                    (address_rank(a) == address_rank(best) &&
                     memcmp(&a->addr, &best->addr, sizeof(a->addr)) < 0))
                        best = a;
        }
        if (!best) {
                *ret = (netmon_address) { .family = AF_UNSPEC };
                return;
        }
        /* Keep the current primary address while it is as good as any: a
         * change of it means re-registration upstream. */
        if (current && current->family == family && current->ifindex == v->info.ifindex) {
                const netmon_address *c = address_find(v, current);

                if (c && netmon_address_is_usable(c) && address_rank(c) == address_rank(best))
                        best = c;
        }
        *ret = *best;
}

static void compute_primary(netmon *m, netmon_primary *ret) {
        const link_version *best_v = NULL;
        const netmon_route *best_r = NULL;

        for (size_t i = 0; i < m->n_links; i++) {
                const link_version *v = &m->links[i].v[m->links[i].cur];

                if (!v->present || !v->info.watched || (v->info.flags & IFF_LOOPBACK))
                        continue;
                for (size_t j = 0; j < v->n_routes; j++) {
                        const netmon_route *r = &v->routes[j];

                        if (!version_family_usable(v, r->family))
                                continue;
                        /* Lowest metric; IPv4 before IPv6 on a tie; then the
                         * lower ifindex, which the link order gives. */
                        if (!best_r || r->metric < best_r->metric ||
                            (r->metric == best_r->metric && r->family == AF_INET &&
                             best_r->family == AF_INET6)) {
                                best_r = r;
                                best_v = v;
                        }
                }
        }

        *ret = (netmon_primary) { .address.family = AF_UNSPEC };
        if (!best_v)
                return;

        ret->ifindex = best_v->info.ifindex;
        memcpy(ret->ifname, best_v->info.name, sizeof(ret->ifname));
        const netmon_address *current = m->primary.ifindex == ret->ifindex ? &m->primary.address : NULL;
        if (version_family_usable(best_v, AF_INET))
                pick_address(best_v, AF_INET, current, &ret->address);
        else
                pick_address(best_v, AF_INET6, current, &ret->address);
}

static bool primary_same(const netmon_primary *a, const netmon_primary *b) {
        if (a->ifindex != b->ifindex || a->address.family != b->address.family)
                return false;
        if (a->address.family == AF_UNSPEC)
                return true;
        return address_same(&a->address, &b->address);
}

/* --- reconcile: caches -> committed state -> events -------------------------- */

static int build_next(netmon *m) {
        struct nl_object *o;
        int r;

        for (size_t i = 0; i < m->n_links; i++) {
                link_version *n = &m->links[i].v[m->links[i].cur ^ 1];

                n->present = false;
                n->n_addrs = n->n_routes = 0;
        }

        for (o = nl_cache_get_first(m->link_cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_link *lk = (struct rtnl_link *) o;
                link_state *l;
                link_version *n;

                if (rtnl_link_get_family(lk) != AF_UNSPEC || rtnl_link_get_ifindex(lk) <= 0)
                        continue;
                l = link_find_or_insert(m, rtnl_link_get_ifindex(lk));
                if (!l)
                        return -ENOMEM;
                n = &l->v[l->cur ^ 1];
                n->present = true;
                link_info_from_nl(lk, &n->info);
                n->info.watched = m->filter ? m->filter(&n->info, m->filter_userdata)
                                            : !(n->info.flags & IFF_LOOPBACK);
        }

        for (o = nl_cache_get_first(m->addr_cache); o; o = nl_cache_get_next(o)) {
                netmon_address a;
                link_state *l;
                link_version *n;

                if (!address_from_nl((struct rtnl_addr *) o, &a))
                        continue;
                l = link_find(m, a.ifindex);
                if (!l)
                        continue;
                n = &l->v[l->cur ^ 1];
                if (!n->present)
                        continue;
                r = grow((void **) &n->addrs, &n->n_addrs_allocated, n->n_addrs + 1, sizeof(a));
                if (r < 0)
                        return r;
                n->addrs[n->n_addrs++] = a;
        }

        for (o = nl_cache_get_first(m->route_cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_route *rt = (struct rtnl_route *) o;
                int family = rtnl_route_get_family(rt), nh_n = rtnl_route_get_nnexthops(rt);

                if (!route_object_is_relevant(rt))
                        continue;
                for (int i = 0; i < nh_n; i++) {
                        struct rtnl_nexthop *nh = rtnl_route_nexthop_n(rt, i);
                        netmon_route route = {
                                .family = family,
                                .metric = rtnl_route_get_priority(rt),
                                .table = rtnl_route_get_table(rt),
                        };
                        link_state *l;
                        link_version *n;

                        if (!nh)
                                continue;
                        route.ifindex = rtnl_route_nh_get_ifindex(nh);
                        route.has_gateway =
                                in_addr_from_nl(rtnl_route_nh_get_gateway(nh), family, &route.gateway);
                        if (route.has_gateway)
                                format_in_addr(family, &route.gateway, route.gateway_str,
                                               sizeof(route.gateway_str));
                        l = link_find(m, route.ifindex);
                        if (!l)
                                continue;
                        n = &l->v[l->cur ^ 1];
                        if (!n->present)
                                continue;
                        r = grow((void **) &n->routes, &n->n_routes_allocated, n->n_routes + 1,
                                 sizeof(route));
                        if (r < 0)
                                return r;
                        n->routes[n->n_routes++] = route;
                }
        }

        return 0;
}

static void schedule_retry(netmon *m);

static int reconcile(netmon *m) {
        netmon_primary old_primary;
        size_t k;
        int r;

        r = build_next(m);
        if (r < 0) {
                /* Nothing was committed; try again from a fresh dump, as no
                 * message may come to trigger another attempt. */
                schedule_retry(m);
                return log_debug_errno(r, "netmon: failed to build link state: %m");
        }
        m->dirty = false;

        /* Commit everything first, so that callbacks querying other links
         * see the new state. */
        for (size_t i = 0; i < m->n_links; i++)
                m->links[i].cur ^= 1;

        for (size_t i = 0; i < m->n_links; i++) {
                link_state *l = &m->links[i];

                emit_link(m, &l->v[l->cur ^ 1], &l->v[l->cur]);
        }

        for (size_t i = k = 0; i < m->n_links; i++) {
                if (m->links[i].v[m->links[i].cur].present)
                        m->links[k++] = m->links[i];
                else
                        link_state_done(&m->links[i]);
        }
        m->n_links = k;

        old_primary = m->primary;
        compute_primary(m, &m->primary);
        if (!primary_same(&old_primary, &m->primary)) {
                netmon_event ev = {
                        .type = NETMON_EVENT_PRIMARY_CHANGED,
                        .old_primary = &old_primary,
                        .new_primary = &m->primary,
                };
                log_debug("netmon: primary %s %s -> %s %s", old_primary.ifname,
                          old_primary.address.str, m->primary.ifname, m->primary.address.str);
                emit(m, &ev);
        }
        return 0;
}

/* --- sockets and dumps -------------------------------------------------------- */

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void parse_cb(struct nl_object *obj, void *arg) {
        netmon *m = arg;
        int r;

        r = nl_cache_include(m->parse_target, obj, NULL, NULL);
        if (r < 0) {
                /* The cache no longer matches the kernel. */
                log_debug("netmon: failed to include object: %s", nl_geterror(r));
                m->need_resync = true;
        }
}

static bool link_cache_has_up(netmon *m, int ifindex) {
        struct rtnl_link *lk = rtnl_link_get(m->link_cache, ifindex);
        bool up;

        if (!lk)
                return false;
        up = rtnl_link_get_flags(lk) & IFF_UP;
        rtnl_link_put(lk);
        return up;
}

static int on_message(struct nl_msg *msg, void *arg) {
        struct nlmsghdr *h = nlmsg_hdr(msg);
        netmon *m = arg;
        int r;

        switch (h->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK: {
                const struct ifinfomsg *ifi = nlmsg_data(h);

                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)) || ifi->ifi_family != AF_UNSPEC)
                        return NL_SKIP;
                /* IPv4 drops the routes of a link going down, or gone,
                 * without telling anyone. */
                if (h->nlmsg_type == RTM_DELLINK ||
                    (!(ifi->ifi_flags & IFF_UP) && link_cache_has_up(m, ifi->ifi_index)))
                        m->routes_stale = true;
                m->parse_target = m->link_cache;
                break;
        }
        case RTM_NEWADDR:
        case RTM_DELADDR: {
                const struct ifaddrmsg *ifa = nlmsg_data(h);

                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)) ||
                    (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
                        return NL_SKIP;
                /* The same for the routes of a deleted IPv4 address (its
                 * preferred source) or of a link's last IPv4 address. */
                if (h->nlmsg_type == RTM_DELADDR && ifa->ifa_family == AF_INET)
                        m->routes_stale = true;
                m->parse_target = m->addr_cache;
                break;
        }
        case RTM_NEWROUTE:
        case RTM_DELROUTE: {
                const struct rtmsg *rtm = nlmsg_data(h);

                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)) ||
                    !route_is_relevant(rtm->rtm_family, rtm->rtm_dst_len, rtm->rtm_src_len,
                                       rtm->rtm_table, rtm->rtm_type))
                        return NL_SKIP;
                m->parse_target = m->route_cache;
                break;
        }
        default:
                return NL_SKIP;
        }

        r = nl_msg_parse(msg, parse_cb, m);
        if (r < 0) {
                log_debug("netmon: failed to parse message type %u: %s", h->nlmsg_type,
                          nl_geterror(r));
                m->need_resync = true;
        }
        m->dirty = true;
        return NL_OK;
}

static void close_event_socket(netmon *m) {
        m->io_source = sd_event_source_disable_unref(m->io_source);
        if (m->evsock) {
                nl_socket_free(m->evsock);
                m->evsock = NULL;
        }
}

/* Subscribes before anything is dumped, so no change can fall between the
 * dump and the subscription; a change seen by both is applied twice, which
 * is harmless as every message carries the whole object. */
static int open_event_socket(netmon *m) {
        struct nl_sock *sk;
        int r, fd, size;

        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        nl_socket_disable_seq_check(sk);
        r = nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_message, m);
        if (r < 0)
                goto fail;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                goto fail;
        r = nl_socket_add_memberships(sk, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR,
                                      RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, 0);
        if (r < 0)
                goto fail;
        r = nl_socket_set_nonblocking(sk);
        if (r < 0)
                goto fail;

        fd = nl_socket_get_fd(sk);
        size = (int) MIN(m->rcvbuf ?: NETMON_DEFAULT_RCVBUF, (size_t) (INT32_MAX / 2));
        /* Beyond rmem_max needs privileges; without them take what we get. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));

        r = sd_event_add_io(m->event, &m->io_source, fd, EPOLLIN, on_io, m);
        if (r < 0) {
                nl_socket_free(sk);
                return r;
        }
        (void) sd_event_source_set_description(m->io_source, "netmon-netlink");
        m->evsock = sk;
        return 0;

fail:
        nl_socket_free(sk);
        return nlerr_to_errno(r);
}

static int dump_all(netmon *m) {
        int r;

        if (!m->link_cache) {
                r = rtnl_link_alloc_cache(m->syncsock, AF_UNSPEC, &m->link_cache);
                if (r < 0)
                        return nlerr_to_errno(r);
        } else if ((r = nl_cache_refill(m->syncsock, m->link_cache)) < 0)
                return nlerr_to_errno(r);

        if (!m->addr_cache) {
                r = rtnl_addr_alloc_cache(m->syncsock, &m->addr_cache);
                if (r < 0)
                        return nlerr_to_errno(r);
        } else if ((r = nl_cache_refill(m->syncsock, m->addr_cache)) < 0)
                return nlerr_to_errno(r);

        if (!m->route_cache) {
                r = rtnl_route_alloc_cache(m->syncsock, AF_UNSPEC, 0, &m->route_cache);
                if (r < 0)
                        return nlerr_to_errno(r);
        } else if ((r = nl_cache_refill(m->syncsock, m->route_cache)) < 0)
                return nlerr_to_errno(r);
        prune_routes(m);

        m->routes_stale = false;
        m->need_resync = false;
        m->dirty = true;
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata);

static void schedule_retry(netmon *m) {
        int r;

        if (m->retry_source)
                return;
        r = sd_event_add_time_relative(m->event, &m->retry_source, CLOCK_MONOTONIC,
                                       NETMON_RETRY_USEC, 0, on_retry, m);
        if (r < 0)
                log_debug_errno(r, "netmon: failed to schedule resync retry: %m");
}

/* After an overrun the queue holds messages older than the ones that were
 * lost; applying them on top of a fresh dump could resurrect deleted
 * objects. So the socket is replaced (which drops the queue) and the new one
 * subscribes before the dump, exactly as at start-up. */
static int resync(netmon *m) {
        int r;

        m->n_resyncs++;
        close_event_socket(m);
        r = open_event_socket(m);
        if (r >= 0)
                r = dump_all(m);
        if (r < 0) {
                log_debug_errno(r, "netmon: resync failed, retrying: %m");
                m->need_resync = true;
                schedule_retry(m);
                return r;
        }
        return reconcile(m);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        netmon *m = userdata;

        m->retry_source = sd_event_source_unref(m->retry_source);
        (void) resync(m);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        netmon *m = userdata;
        int r;

        for (unsigned i = 0; i < NETMON_MAX_BATCH; i++) {
                r = nl_recvmsgs_default(m->evsock);
                if (r == -NLE_AGAIN)
                        break;
                if (r == -NLE_NOMEM) {
                        /* ENOBUFS (libnl folds it into NLE_NOMEM): the
                         * kernel dropped messages. */
                        log_debug("netmon: event socket overrun, resyncing");
                        m->need_resync = true;
                        break;
                }
                if (r < 0) {
                        log_debug("netmon: receive failed: %s", nl_geterror(r));
                        m->need_resync = true;
                        break;
                }
        }

        if (m->need_resync) {
                (void) resync(m);
                return 0;
        }

        if (m->routes_stale) {
                r = nl_cache_refill(m->syncsock, m->route_cache);
                if (r < 0) {
                        log_debug("netmon: route refill failed: %s", nl_geterror(r));
                        (void) resync(m);
                        return 0;
                }
                prune_routes(m);
                m->routes_stale = false;
                m->dirty = true;
        }

        if (m->dirty)
                (void) reconcile(m);
        return 0;
}

static int on_initial(sd_event_source *s, void *userdata) {
        netmon *m = userdata;

        m->initial_source = sd_event_source_disable_unref(m->initial_source);
        if (m->dirty)
                (void) reconcile(m);
        m->ready = true;
        if (m->ready_cb)
                m->ready_cb(m, m->ready_userdata);
        return 0;
}

/* --- public API ---------------------------------------------------------------- */

int netmon_new(sd_event *e, netmon **ret) {
        netmon *m;

        if (!e || !ret)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        m->primary.address.family = AF_UNSPEC;
        *ret = m;
        return 0;
}

static void netmon_stop(netmon *m) {
        m->initial_source = sd_event_source_disable_unref(m->initial_source);
        m->retry_source = sd_event_source_disable_unref(m->retry_source);
        close_event_socket(m);
        if (m->syncsock) {
                nl_socket_free(m->syncsock);
                m->syncsock = NULL;
        }
        if (m->link_cache)
                nl_cache_free(m->link_cache);
        if (m->addr_cache)
                nl_cache_free(m->addr_cache);
        if (m->route_cache)
                nl_cache_free(m->route_cache);
        m->link_cache = m->addr_cache = m->route_cache = NULL;
}

netmon *netmon_free(netmon *m) {
        if (!m)
                return NULL;
        netmon_stop(m);
        for (size_t i = 0; i < m->n_links; i++)
                link_state_done(&m->links[i]);
        free(m->links);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

int netmon_set_callback(netmon *m, netmon_callback_t cb, void *userdata) {
        if (!m)
                return -EINVAL;
        m->cb = cb;
        m->userdata = userdata;
        return 0;
}

int netmon_set_ready_callback(netmon *m, netmon_ready_callback_t cb, void *userdata) {
        if (!m)
                return -EINVAL;
        m->ready_cb = cb;
        m->ready_userdata = userdata;
        return 0;
}

int netmon_set_filter(netmon *m, netmon_filter_t filter, void *userdata) {
        if (!m)
                return -EINVAL;
        if (m->started)
                return -EBUSY;
        m->filter = filter;
        m->filter_userdata = userdata;
        return 0;
}

int netmon_set_receive_buffer_size(netmon *m, size_t bytes) {
        if (!m)
                return -EINVAL;
        if (m->started)
                return -EBUSY;
        m->rcvbuf = bytes;
        return 0;
}

int netmon_start(netmon *m) {
        int r;

        if (!m)
                return -EINVAL;
        if (m->started)
                return -EBUSY;

        m->syncsock = nl_socket_alloc();
        if (!m->syncsock)
                return -ENOMEM;
        r = nl_connect(m->syncsock, NETLINK_ROUTE);
        if (r < 0) {
                r = nlerr_to_errno(r);
                goto fail;
        }

        r = open_event_socket(m);
        if (r < 0)
                goto fail;

        r = dump_all(m);
        if (r < 0)
                goto fail;

        /* The initial state goes out from the loop like every later change,
         * never from inside this call. */
        r = sd_event_add_defer(m->event, &m->initial_source, on_initial, m);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(m->initial_source, "netmon-initial");

        m->started = true;
        return 0;

fail:
        log_debug_errno(r, "netmon: failed to start: %m");
        netmon_stop(m);
        return r;
}

bool netmon_is_ready(netmon *m) {
        return m && m->ready;
}

uint64_t netmon_get_n_resyncs(netmon *m) {
        return m ? m->n_resyncs : 0;
}

int netmon_next_link(netmon *m, int after_ifindex, netmon_link_info *ret) {
        if (!m || !ret)
                return -EINVAL;
        for (size_t i = 0; i < m->n_links; i++) {
                const link_state *l = &m->links[i];

                if (l->ifindex > after_ifindex && l->v[l->cur].present) {
                        *ret = l->v[l->cur].info;
                        return 0;
                }
        }
        return -ENOENT;
}

int netmon_get_link(netmon *m, int ifindex, netmon_link_info *ret) {
        link_version *v;

        if (!m)
                return -EINVAL;
        v = link_committed(m, ifindex);
        if (!v)
                return -ENODEV;
        if (ret)
                *ret = v->info;
        return 0;
}

int netmon_get_link_by_name(netmon *m, const char *name, netmon_link_info *ret) {
        if (!m || !name)
                return -EINVAL;
        for (size_t i = 0; i < m->n_links; i++) {
                const link_version *v = &m->links[i].v[m->links[i].cur];

                if (v->present && streq(v->info.name, name)) {
                        if (ret)
                                *ret = v->info;
                        return 0;
                }
        }
        return -ENODEV;
}

int netmon_get_address(netmon *m, int ifindex, size_t i, netmon_address *ret) {
        link_version *v;

        if (!m || !ret)
                return -EINVAL;
        v = link_committed(m, ifindex);
        if (!v)
                return -ENODEV;
        if (i >= v->n_addrs)
                return -ENOENT;
        *ret = v->addrs[i];
        return 0;
}

int netmon_get_route(netmon *m, int ifindex, size_t i, netmon_route *ret) {
        link_version *v;

        if (!m || !ret)
                return -EINVAL;
        v = link_committed(m, ifindex);
        if (!v)
                return -ENODEV;
        if (i >= v->n_routes)
                return -ENOENT;
        *ret = v->routes[i];
        return 0;
}

int netmon_get_default_route(netmon *m, int ifindex, int family, netmon_route *ret) {
        const netmon_route *best = NULL;
        link_version *v;

        if (!m)
                return -EINVAL;
        v = link_committed(m, ifindex);
        if (!v)
                return -ENODEV;
        for (size_t i = 0; i < v->n_routes; i++) {
                const netmon_route *r = &v->routes[i];

                if (family != AF_UNSPEC && r->family != family)
                        continue;
                if (!best || r->metric < best->metric ||
                    (r->metric == best->metric && r->family == AF_INET && best->family == AF_INET6))
                        best = r;
        }
        if (!best)
                return -ENOENT;
        if (ret)
                *ret = *best;
        return 0;
}

int netmon_get_stats(netmon *m, int ifindex, netmon_stats *ret) {
        struct rtnl_link *lk = NULL;
        int r;

        if (!m || !ret || ifindex <= 0)
                return -EINVAL;
        if (!m->syncsock)
                return -ENOTCONN;
        r = rtnl_link_get_kernel(m->syncsock, ifindex, NULL, &lk);
        if (r < 0)
                return r == -NLE_OBJ_NOTFOUND ? -ENODEV : nlerr_to_errno(r);

        *ret = (netmon_stats) {
                .rx_bytes = rtnl_link_get_stat(lk, RTNL_LINK_RX_BYTES),
                .tx_bytes = rtnl_link_get_stat(lk, RTNL_LINK_TX_BYTES),
                .rx_packets = rtnl_link_get_stat(lk, RTNL_LINK_RX_PACKETS),
                .tx_packets = rtnl_link_get_stat(lk, RTNL_LINK_TX_PACKETS),
                .rx_errors = rtnl_link_get_stat(lk, RTNL_LINK_RX_ERRORS),
                .tx_errors = rtnl_link_get_stat(lk, RTNL_LINK_TX_ERRORS),
                .rx_dropped = rtnl_link_get_stat(lk, RTNL_LINK_RX_DROPPED),
                .tx_dropped = rtnl_link_get_stat(lk, RTNL_LINK_TX_DROPPED),
        };
        rtnl_link_put(lk);
        return 0;
}

int netmon_link_is_usable(netmon *m, int ifindex, const char **ret_reason) {
        const char *reason;
        link_version *v;

        if (!m)
                return -EINVAL;
        v = link_committed(m, ifindex);
        if (!v)
                return -ENODEV;
        reason = version_reason(v);
        if (reason) {
                if (ret_reason)
                        *ret_reason = reason;
                return 0;
        }
        return 1;
}

int netmon_get_primary(netmon *m, netmon_primary *ret) {
        if (!m || !ret)
                return -EINVAL;
        *ret = m->primary;
        return m->primary.ifindex > 0;
}
