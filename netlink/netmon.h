/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* netmon: the netlink view of the QoS User Agent.
 *
 * Keeps libnl route caches of links, addresses and default routes in sync
 * with the kernel through an event socket on sd-event, and turns every
 * change into a netmon_event: links appearing, changing (oper state,
 * carrier, flags, MTU, name) and going away, addresses and default routes
 * coming and going, and changes of the derived primary interface/address
 * (mobility).
 *
 * Events are computed by comparing the committed state before and after a
 * batch of netlink messages, so a message that changes nothing relevant
 * (statistics, lifetimes, queue length, ...) produces no event, and a full
 * resync after a socket overrun produces exactly the events for what was
 * missed.
 *
 * Pointers handed to callbacks are valid during the callback only. Callbacks
 * may call the query functions but must not free the netmon object. */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct netmon netmon;

/* Kernel operational states (RFC 2863, IF_OPER_* in linux/if.h). */
typedef enum netmon_oper_state {
        NETMON_OPER_UNKNOWN = 0,
        NETMON_OPER_NOTPRESENT = 1,
        NETMON_OPER_DOWN = 2,
        NETMON_OPER_LOWERLAYERDOWN = 3,
        NETMON_OPER_TESTING = 4,
        NETMON_OPER_DORMANT = 5,
        NETMON_OPER_UP = 6,
} netmon_oper_state;

typedef struct netmon_link_info {
        int ifindex;
        char name[IFNAMSIZ];
        netmon_oper_state operstate;
        bool carrier;
        unsigned flags; /* IFF_* as reported by the kernel */
        uint32_t mtu;
        bool watched;   /* passes the filter: events are delivered for it */
} netmon_link_info;

typedef union netmon_in_addr {
        struct in_addr in;
        struct in6_addr in6;
} netmon_in_addr;

/* Large enough for "ffff:...:255.255.255.255/128". */
#define NETMON_ADDR_STRLEN (INET6_ADDRSTRLEN + 4)

typedef struct netmon_address {
        int ifindex;
        int family; /* AF_INET, AF_INET6; AF_UNSPEC: no address */
        netmon_in_addr addr;
        uint8_t prefixlen;
        uint8_t scope;  /* RT_SCOPE_* */
        uint32_t flags; /* IFA_F_* */
        char str[NETMON_ADDR_STRLEN]; /* "address/prefixlen" */
} netmon_address;

/* One default route (destination prefix length 0, main table, unicast) via
 * one next hop; a multipath route yields one entry per next hop. */
typedef struct netmon_route {
        int ifindex; /* output interface */
        int family;
        uint32_t metric;
        uint32_t table;
        bool has_gateway;
        netmon_in_addr gateway;
        char gateway_str[INET6_ADDRSTRLEN]; /* "" without gateway */
} netmon_route;

typedef struct netmon_primary {
        int ifindex; /* 0: there is no primary interface */
        char ifname[IFNAMSIZ];
        netmon_address address; /* family AF_UNSPEC: no address */
} netmon_primary;

typedef struct netmon_stats {
        uint64_t rx_bytes, tx_bytes;
        uint64_t rx_packets, tx_packets;
        uint64_t rx_errors, tx_errors;
        uint64_t rx_dropped, tx_dropped;
} netmon_stats;

typedef enum netmon_event_type {
        NETMON_EVENT_LINK_NEW,
        NETMON_EVENT_LINK_CHANGED,
        NETMON_EVENT_LINK_DEL,
        NETMON_EVENT_ADDR_NEW,
        NETMON_EVENT_ADDR_CHANGED, /* flags or scope changed, e.g. DAD done */
        NETMON_EVENT_ADDR_DEL,
        NETMON_EVENT_ROUTE_NEW,
        NETMON_EVENT_ROUTE_DEL,
        NETMON_EVENT_PRIMARY_CHANGED,
        _NETMON_EVENT_MAX,
} netmon_event_type;

/* What a LINK_CHANGED event changed. */
enum {
        NETMON_LINK_CHANGED_OPERSTATE = 1u << 0,
        NETMON_LINK_CHANGED_CARRIER = 1u << 1,
        NETMON_LINK_CHANGED_FLAGS = 1u << 2, /* IFF_UP, IFF_RUNNING, IFF_LOWER_UP, IFF_DORMANT */
        NETMON_LINK_CHANGED_MTU = 1u << 3,
        NETMON_LINK_CHANGED_NAME = 1u << 4,
};

typedef struct netmon_event {
        netmon_event_type type;
        int ifindex;                      /* 0 for PRIMARY_CHANGED */
        const netmon_link_info *link;     /* link state now; before deletion for LINK_DEL */
        const netmon_link_info *old_link; /* LINK_CHANGED: state before */
        unsigned changed;                 /* LINK_CHANGED: NETMON_LINK_CHANGED_* */
        const netmon_address *address;    /* ADDR_*: the address (new version) */
        const netmon_address *old_address; /* ADDR_CHANGED: old version */
        const netmon_route *route;        /* ROUTE_* */
        const netmon_primary *old_primary; /* PRIMARY_CHANGED */
        const netmon_primary *new_primary; /* PRIMARY_CHANGED */
} netmon_event;

typedef void (*netmon_callback_t)(netmon *m, const netmon_event *event, void *userdata);
typedef void (*netmon_ready_callback_t)(netmon *m, void *userdata);
/* Decides whether a link is watched; called with the link's current name
 * after every batch of changes. Events are delivered for watched links only;
 * a rename into (out of) the watched set is followed by ADDR_NEW/ROUTE_NEW
 * (ROUTE_DEL/ADDR_DEL) for what the link has (had). */
typedef bool (*netmon_filter_t)(const netmon_link_info *link, void *userdata);

int netmon_new(sd_event *e, netmon **ret);
netmon *netmon_free(netmon *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(netmon *, netmon_free);
#define _cleanup_netmon_ _cleanup_(netmon_freep)

/* Configuration; the filter and buffer size only before netmon_start()
 * (-EBUSY after). Without a filter every link but loopback is watched. */
int netmon_set_callback(netmon *m, netmon_callback_t cb, void *userdata);
int netmon_set_ready_callback(netmon *m, netmon_ready_callback_t cb, void *userdata);
int netmon_set_filter(netmon *m, netmon_filter_t filter, void *userdata);
/* Receive buffer of the event socket; 0 means the default (1 MiB). */
int netmon_set_receive_buffer_size(netmon *m, size_t bytes);

/* A ready-made filter: userdata is a NULL-terminated array of fnmatch(3)
 * patterns; a link is watched when its name matches one of them. */
bool netmon_filter_patterns(const netmon_link_info *link, void *userdata);

/* Subscribes, dumps links, addresses and routes, and attaches to the event
 * loop. The initial state is delivered as LINK_NEW/ADDR_NEW/ROUTE_NEW/
 * PRIMARY_CHANGED events from the loop, followed by the ready callback. */
int netmon_start(netmon *m);
bool netmon_is_ready(netmon *m);
/* How many full resyncs (after socket overruns) happened. */
uint64_t netmon_get_n_resyncs(netmon *m);

/* Queries on the committed state. Iterate with
 *   for (int i = 0; netmon_next_link(m, i, &link) >= 0; i = link.ifindex)
 * Return -ENOENT at the end / when there is no such entry, -ENODEV for an
 * unknown link. */
int netmon_next_link(netmon *m, int after_ifindex, netmon_link_info *ret);
int netmon_get_link(netmon *m, int ifindex, netmon_link_info *ret);
int netmon_get_link_by_name(netmon *m, const char *name, netmon_link_info *ret);
int netmon_get_address(netmon *m, int ifindex, size_t i, netmon_address *ret);
int netmon_get_route(netmon *m, int ifindex, size_t i, netmon_route *ret);
/* The preferred default route of a link for a family (AF_UNSPEC: either);
 * ret may be NULL to only ask whether there is one. */
int netmon_get_default_route(netmon *m, int ifindex, int family, netmon_route *ret);
/* Fresh counters: one RTM_GETLINK round trip to the kernel per call. */
int netmon_get_stats(netmon *m, int ifindex, netmon_stats *ret);

/* 1 when the link can carry traffic, 0 when not with *ret_reason set to
 * "link down", "no carrier", "link dormant", "no usable address" or "no
 * default route"; -ENODEV for an unknown link. */
int netmon_link_is_usable(netmon *m, int ifindex, const char **ret_reason);
/* 1 and *ret filled when there is a primary interface, 0 (and ret zeroed,
 * ifindex 0) when not. */
int netmon_get_primary(netmon *m, netmon_primary *ret);

/* Global scope, and not tentative or failed duplicate address detection. */
bool netmon_address_is_usable(const netmon_address *a);

const char *netmon_oper_state_to_string(int state);
const char *netmon_scope_to_string(int scope);
const char *netmon_event_type_to_string(netmon_event_type type);
